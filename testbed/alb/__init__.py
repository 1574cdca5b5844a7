"""The HAProxy data plane of the application and classic load balancers, driven by the plan.

config    haproxy.cfg of one node from its LoadBalancerPlan (ALB: rules, actions, backends,
          logs; the global and defaults sections of both)
classic   a Classic Load Balancer's frontends and backends (one per listener, HTTP or TCP)
servers   which servers each backend holds and which take requests (ALB fails open, CLB not)
logformat the lab's access-log line as HAProxy log formats (HTTP requests, TCP connections)
patterns  AWS rule wildcards as PCRE, and HAProxy's quoting
runtime   HAProxy's runtime API (stats socket, master CLI): target states, dynamic servers,
          seamless reloads; used by the lab's holder
node      the node's program (roles "application-node", "classic-node"): HAProxy plus the
          health checker
stats     CloudWatch-style AWS/ApplicationELB and AWS/ELB metrics from `show stat`
"""
