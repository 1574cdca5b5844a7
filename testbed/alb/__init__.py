"""The application load balancer's data plane: HAProxy on each ALB node, driven by the plan.

config   haproxy.cfg of one node from its LoadBalancerPlan (rules, actions, backends, logs)
patterns AWS rule wildcards as PCRE, and HAProxy's quoting
runtime  HAProxy's runtime API (stats socket, master CLI): target states, dynamic servers,
         seamless reloads; used by the lab's holder
node     the node's program (role "application-node"): HAProxy plus the health checker
stats    CloudWatch-style AWS/ApplicationELB metrics from `show stat`
"""
