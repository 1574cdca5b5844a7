"""The Mininet side of a lab: what it is made of and how it is built.

vpc       VpcTopo: switches, hosts and links of a lab, declared from its network plan;
network   VpcNetwork: the Mininet objects built from it resource by resource, hosts
          configured, switches started (used by testbed.lab.builder);
attached  the Mininet CLI over a running lab's namespaces (testbed cli).
"""
