"""SNMP manager: MIB names, counter maths, an asyncio client and poller, and the lab glue
that runs pollers inside lab hosts (agents are only reachable over the lab network).

    testbed snmp get NAME HOST OID...      testbed snmp walk NAME HOST OID
    testbed monitor NAME --interval 1s --duration 30s --out ifs.csv
"""
