"""The plan: pure functions from a validated stack model to what a lab will be.

network: switches, ports, hosts, links, subnets, route tables, addresses;
balancers: load balancers, nodes, listeners, target groups, conntrack zones;
changes: what differs between two plans (what a running lab can take live).
Nothing here starts a process or touches the machine, so all of it is unit-tested.
"""
