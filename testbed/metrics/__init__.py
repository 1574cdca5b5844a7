"""CloudWatch-style metrics of a lab, one row per metric per dimension set per period.

Sources (testbed.metrics.sources) take snapshots of counters and gauges; the collector turns
successive snapshots into per-second values in testbed.schemas.METRIC_COLUMNS. Load balancer
capabilities add their own sources (flow statistics, health, HAProxy stats) to SOURCES.
"""
