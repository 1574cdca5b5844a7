"""Column layouts of the tables the lab writes (CSV) and testbed.analysis reads.

One tidy row per observation. Times are Unix epoch seconds (float). A column that does not
apply to a row is empty in CSV / NaN in pandas.
"""

from __future__ import annotations

# Load client: one row per request (HTTP), connection (TCP) or datagram exchange (UDP).
REQUEST_COLUMNS = (
    "client",  # lab host that sent it
    "target",  # what it connected to: name or address, with :port
    "proto",  # http | tcp | udp
    "seq",  # 0, 1, 2 ... per client run
    "start",  # when the request started (epoch s)
    "latency_ms",  # until the full answer (or the error)
    "status",  # HTTP status code; 0 for tcp/udp answers
    "error",  # empty when it worked; else timeout | refused | reset | bad-answer | ...
    "backend",  # instance logical id that answered
    "backend_ip",  # its address
    "backend_az",  # its AZ
    "seen_ip",  # client address as the backend saw it (client IP preservation)
    "seen_port",  # client port as the backend saw it
    "bytes",  # bytes received
)

# SNMP poller: one row per polled object instance.
SNMP_COLUMNS = (
    "time",  # when the answer arrived (epoch s)
    "host",  # lab host polled
    "object",  # MIB name, e.g. IF-MIB::ifHCInOctets
    "index",  # instance index ("2" for ifIndex 2, "0" for scalars)
    "value",  # numeric value, or text for strings
    "type",  # Counter32 | Counter64 | Gauge32 | Integer | TimeTicks | OctetString | ...
    "error",  # empty, or timeout | noSuchObject | ...
)

# Target health changes (NLB/ALB/GWLB): one row per transition.
TARGET_EVENT_COLUMNS = ("time", "load_balancer", "target_group", "target", "old", "new", "reason")

# CloudWatch-style metrics: one row per metric per dimension set per second.
METRIC_COLUMNS = (
    "time",  # start of the one-second period (epoch s)
    "namespace",  # AWS/NetworkELB | AWS/ApplicationELB | AWS/GatewayELB | Lab/Host
    "metric",  # e.g. NewFlowCount, ActiveFlowCount, ProcessedBytes, HealthyHostCount
    "load_balancer",  # dimension (empty if none)
    "target_group",  # dimension
    "target",  # dimension: instance id / host
    "value",
    "unit",  # Count | Bytes | Seconds | Percent | Count/Second | Bytes/Second
)
