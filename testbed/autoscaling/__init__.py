"""Auto Scaling in a running lab (AWS::AutoScaling::*, AWS::CloudWatch::Alarm).

Pure logic, testable with a fake clock:
  timescale   Metadata.Lab.TimeScale: AWS's durations -> the lab's
  group       one group's instances, lifecycle (hooks), AZ balance, termination policies,
              health replacement, desired capacity, scaling activities
  metricstore CloudWatch-style datapoints of the metrics the lab samples (periods, statistics)
  alarms      CloudWatch alarm evaluation (M of N datapoints, missing data)
  policies    target tracking, step and simple scaling: desired capacity from metrics/alarms
  schedule    scheduled actions (Unix cron in a time zone, start/end)
The runtime (service) runs in the lab's holder: it samples metrics, evaluates alarms,
policies and schedules, and carries out what the groups decide (testbed.lab.instances
launches and terminates hosts; the load balancers' registry registers and drains them).
"""
