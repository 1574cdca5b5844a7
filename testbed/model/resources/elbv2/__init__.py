"""AWS::ElasticLoadBalancingV2 types: LoadBalancer, TargetGroup, Listener, ListenerRule,
ListenerCertificate.

Importing this package registers them. Their frozen objects (testbed.model.elbv2_types) are
kept in BuildState.extras["elbv2"], which becomes StackModel.extras["elbv2"].
"""

from __future__ import annotations

from testbed.model.resources.elbv2 import (  # noqa: F401  (registers their types)
    listener,
    listener_certificate,
    load_balancer,
    rule,
    target_group,
)
