"""The lab machinery: build a lab from its plan and tear it down, exactly.

Processes recorded by PID (procs), the state file and event log, the Mininet build of the
plan's topology (builder, with testbed.topologies), the controller process, the lab's own
services (DNS, SNMP agents), the programs hosts run (launch), conntrack zones, scoped
teardown, the process a lab belongs to and how its end is noticed (owner); and the client
side of a running lab (api.Lab), which talks to its holder process (testbed.stack.holder)
over a Unix socket.
"""
