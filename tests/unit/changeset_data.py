"""A template with one resource of each type the change-set tests change (valid in the lab)."""

BASE = """\
AWSTemplateFormatVersion: "2010-09-09"
Parameters:
  Env: {Type: String, Default: dev, AllowedValues: [dev, prod]}
  Port: {Type: Number, Default: 80}
Conditions:
  IsProd: !Equals [!Ref Env, prod]
Resources:
  VPC:
    Type: AWS::EC2::VPC
    Properties: {CidrBlock: 10.0.0.0/16, EnableDnsHostnames: true}
  IGW:
    Type: AWS::EC2::InternetGateway
  Attach:
    Type: AWS::EC2::VPCGatewayAttachment
    Properties: {VpcId: !Ref VPC, InternetGatewayId: !Ref IGW}
  Public:
    Type: AWS::EC2::RouteTable
    Properties: {VpcId: !Ref VPC}
  Default:
    Type: AWS::EC2::Route
    DependsOn: Attach
    Properties: {RouteTableId: !Ref Public, DestinationCidrBlock: 0.0.0.0/0, GatewayId: !Ref IGW}
  Extra:
    Type: AWS::EC2::Route
    DependsOn: Attach
    Properties:
      RouteTableId: !Ref Public
      DestinationCidrBlock: 198.51.100.0/24
      GatewayId: !Ref IGW
  SubnetA:
    Type: AWS::EC2::Subnet
    Properties:
      VpcId: !Ref VPC
      CidrBlock: 10.0.1.0/24
      AvailabilityZone: us-east-1a
      MapPublicIpOnLaunch: true
  SubnetB:
    Type: AWS::EC2::Subnet
    Properties:
      VpcId: !Ref VPC
      CidrBlock: 10.0.2.0/24
      AvailabilityZone: us-east-1b
      MapPublicIpOnLaunch: true
  AssocA:
    Type: AWS::EC2::SubnetRouteTableAssociation
    Properties: {SubnetId: !Ref SubnetA, RouteTableId: !Ref Public}
  AssocB:
    Type: AWS::EC2::SubnetRouteTableAssociation
    Properties: {SubnetId: !Ref SubnetB, RouteTableId: !Ref Public}
  Acl:
    Type: AWS::EC2::NetworkAcl
    Properties: {VpcId: !Ref VPC}
  AclIn:
    Type: AWS::EC2::NetworkAclEntry
    Properties:
      NetworkAclId: !Ref Acl
      RuleNumber: 100
      Protocol: 6
      RuleAction: allow
      CidrBlock: 0.0.0.0/0
      PortRange: {From: 80, To: 80}
  WebSG:
    Type: AWS::EC2::SecurityGroup
    Properties:
      GroupDescription: web
      VpcId: !Ref VPC
      SecurityGroupIngress: [{IpProtocol: tcp, FromPort: 80, ToPort: 80, CidrIp: 0.0.0.0/0}]
  SshIn:
    Type: AWS::EC2::SecurityGroupIngress
    Properties:
      GroupId: !Ref WebSG
      IpProtocol: tcp
      FromPort: 22
      ToPort: 22
      CidrIp: 10.0.0.0/16
  Web1:
    Type: AWS::EC2::Instance
    Metadata: {Note: first}
    Properties:
      SubnetId: !Ref SubnetA
      InstanceType: t3.micro
      ImageId: ami-12345678
      SecurityGroupIds: [!Ref WebSG]
      Tags: [{Key: Name, Value: web1}]
  Web2:
    Type: AWS::EC2::Instance
    Properties: {SubnetId: !Ref SubnetB, InstanceType: t3.micro, PrivateIpAddress: 10.0.2.10}
  Eni:
    Type: AWS::EC2::NetworkInterface
    Properties: {SubnetId: !Ref SubnetA, GroupSet: [!Ref WebSG]}
  Eip:
    Type: AWS::EC2::EIP
    Properties: {Domain: vpc}
  Nat:
    Type: AWS::EC2::NatGateway
    Properties: {SubnetId: !Ref SubnetA, AllocationId: !GetAtt Eip.AllocationId}
  ALB:
    Type: AWS::ElasticLoadBalancingV2::LoadBalancer
    Properties:
      Type: application
      Scheme: internet-facing
      Subnets: [!Ref SubnetA, !Ref SubnetB]
      SecurityGroups: [!Ref WebSG]
  TG:
    Type: AWS::ElasticLoadBalancingV2::TargetGroup
    Properties:
      VpcId: !Ref VPC
      Port: !Ref Port
      Protocol: HTTP
      HealthCheckPath: /
      HealthCheckIntervalSeconds: !If [IsProd, 10, 30]
      Targets: [{Id: !Ref Web1}, {Id: !Ref Web2}]
  Listener:
    Type: AWS::ElasticLoadBalancingV2::Listener
    Properties:
      LoadBalancerArn: !Ref ALB
      Port: 80
      Protocol: HTTP
      DefaultActions: [{Type: forward, TargetGroupArn: !Ref TG}]
  Rule:
    Type: AWS::ElasticLoadBalancingV2::ListenerRule
    Properties:
      ListenerArn: !Ref Listener
      Priority: 10
      Conditions: [{Field: path-pattern, Values: [/api/*]}]
      Actions: [{Type: forward, TargetGroupArn: !Ref TG}]
  CLB:
    Type: AWS::ElasticLoadBalancing::LoadBalancer
    Properties:
      Subnets: [!Ref SubnetA, !Ref SubnetB]
      Listeners: [{LoadBalancerPort: "80", InstancePort: "80", Protocol: HTTP}]
      HealthCheck:
        Target: "HTTP:80/"
        HealthyThreshold: "2"
        UnhealthyThreshold: "2"
        Interval: "10"
        Timeout: "5"
      Instances: [!Ref Web1]
  LT:
    Type: AWS::EC2::LaunchTemplate
    Properties:
      LaunchTemplateData:
        InstanceType: t3.micro
        ImageId: ami-12345678
        SecurityGroupIds: [!Ref WebSG]
  ASG:
    Type: AWS::AutoScaling::AutoScalingGroup
    Properties:
      MinSize: "1"
      MaxSize: "3"
      VPCZoneIdentifier: [!Ref SubnetA, !Ref SubnetB]
      LaunchTemplate: {LaunchTemplateId: !Ref LT, Version: !GetAtt LT.LatestVersionNumber}
      TargetGroupARNs: [!Ref TG]
  Policy:
    Type: AWS::AutoScaling::ScalingPolicy
    Properties:
      AutoScalingGroupName: !Ref ASG
      PolicyType: SimpleScaling
      AdjustmentType: ChangeInCapacity
      ScalingAdjustment: 1
  Alarm:
    Type: AWS::CloudWatch::Alarm
    Properties:
      Namespace: AWS/EC2
      MetricName: CPUUtilization
      Statistic: Average
      Period: 60
      EvaluationPeriods: 1
      Threshold: 70
      ComparisonOperator: GreaterThanThreshold
      Dimensions: [{Name: AutoScalingGroupName, Value: !Ref ASG}]
      AlarmActions: [!Ref Policy]
  Zone:
    Type: AWS::Route53::HostedZone
    Properties: {Name: example.com, VPCs: [{VPCId: !Ref VPC, VPCRegion: us-east-1}]}
  Record:
    Type: AWS::Route53::RecordSet
    Properties:
      HostedZoneId: !Ref Zone
      Name: www.example.com.
      Type: A
      TTL: "60"
      ResourceRecords: [!GetAtt Web1.PrivateIp]
"""
