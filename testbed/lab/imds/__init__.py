"""The instance metadata service (IMDS): http://169.254.169.254/ inside every lab instance.

Real UserData asks it who it runs on (latest/meta-data/instance-id, placement/availability-
zone, network/interfaces/macs/..., latest/dynamic/instance-identity/document) and hands the
answers to cfn-init, the AWS CLI (the lab's `aws` host tool) or its own configuration. The
lab answers what EC2's IMDS answers for that instance, from the lab's model and plan, with
IMDSv1 and IMDSv2 (PUT /latest/api/token, then the token in X-aws-ec2-metadata-token) both
allowed, as AWS's default for instances launched without MetadataOptions.

One server for the whole lab (testbed.lab.imds.server), run by the holder: an asyncio loop
in one thread listening on one socket per instance, each socket created inside that
instance's network namespace (setns into it, bind 169.254.169.254:80 on the instance's
loopback, setns back; the socket stays in the instance's namespace). The socket that
accepted a connection says which instance asks: no routing, no address of the lab involved,
and no security group (AWS's IMDS is not subject to them either). An instance launched while
the lab runs gets its socket before its UserData starts; a terminated one loses it before its
namespace is removed.

- metadata: what one instance's IMDS holds (the tree of categories, listings, the identity
  document), pure;
- protocol: one HTTP request to the answer (tokens, status codes), pure;
- server: the sockets and the loop;
- remote: the same server run on another server of a lab across servers (issue 18), for
  the instances there (sockets can only be made in namespaces of one's own machine).
"""
