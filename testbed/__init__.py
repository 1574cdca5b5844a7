"""ELB Lab: AWS Elastic Load Balancing reproduced on real packets.

Layers, lowest first; a module imports only from its own layer or lower ones (checked by
tests/unit/test_layers.py, function-level imports included):

  base        errors, paths, schemas, naming, rpc, messages, asks, waiting, maglev,
              accesslog, packets
  template    CloudFormation text -> resolved resources with line numbers
  model       typed, frozen, validated stack model
  plan        pure: addresses, ports, switches, load balancer nodes, flows to be
  topologies  the Mininet construction of a plan (Topo classes and the node/link build)
  lab         processes, state, events, controller process, services, faults, teardown,
              ownership, Lab API
  dataplane   controllers (os-ken apps), health, lb, alb, gwlb, roles: what runs in a lab
  stack       the holder process: a running stack and its control plane
  observe     traffic, probes, snmp, metrics, analysis, results
  experiments reproducible experiments
  cluster     servers for a lab across machines: the server harness, `cluster check`
  cli         the `testbed` command

The folders controllers/, topologies/, experiments/ and templates/ sit at the top of the
checkout (they are part of the project's shape); testbed/controllers etc. are symbolic links
to them, so that a checkout imports them under this package's namespace exactly as an
installed wheel does (testbed.controllers, ...).
"""
