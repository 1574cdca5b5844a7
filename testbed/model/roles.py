"""The programs a template can give a host (Metadata.Lab.Role), and the internal roles of
load balancer nodes. What each runs is testbed.lab.launch; the programs themselves live in
testbed.roles, testbed.gwlb, testbed.alb and testbed.lb."""

from __future__ import annotations

# Roles a template may name; "none" starts nothing.
TEMPLATE_ROLES = ("appliance", "http-backend", "load-client", "none")
# The programs of load balancer nodes ("<lb type>-node"), never named in templates.
NODE_ROLES = ("application-node", "classic-node", "gateway-node", "network-node")
# Roles of hosts the plan makes for other resources (a Lambda function an ALB invokes), never
# named by a template's Metadata.Lab.Role.
LAB_HOST_ROLES = ("lambda-runtime",)
ROLE_NAMES = TEMPLATE_ROLES
