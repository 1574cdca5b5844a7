"""SNMP as a metric source: each host's own interface counters, polled over the lab network.

Unlike the other sources (one snapshot per period, taken from here), SNMP runs the lab's
pollers inside vantage hosts for the whole collection (testbed.snmp.manager.monitor) and
turns their per-second rates into metric rows afterwards: Lab/Host SnmpInOctets and
SnmpOutOctets per host and interface.
"""

from __future__ import annotations

import csv
import tempfile
from pathlib import Path
from typing import Any

from testbed.schemas import METRIC_COLUMNS
from testbed.snmp.manager import monitor

OBJECTS = {"IF-MIB::ifHCInOctets": "SnmpInOctets", "IF-MIB::ifHCOutOctets": "SnmpOutOctets"}


def collect_snmp(lab_name: str, duration: float, interval: float) -> list[dict[str, Any]]:
    """Poll every agent of the lab for `duration` s; metric rows (Bytes/Second)."""
    with tempfile.TemporaryDirectory(prefix="tb-metrics-") as tmp:
        rows_csv, rates_csv = Path(tmp) / "rows.csv", Path(tmp) / "rates.csv"
        monitor(
            lab_name,
            rows_csv,
            objects=list(OBJECTS),
            interval=interval,
            duration=duration,
            rates_out=rates_csv,
        )
        with open(rates_csv, newline="") as f:
            rates = list(csv.DictReader(f))
    return rates_to_metrics(rates)


def rates_to_metrics(rates: list[dict[str, str]]) -> list[dict[str, Any]]:
    """Metric rows from the poller's rate rows (rows with an error have no rate)."""
    out = []
    for r in rates:
        metric = OBJECTS.get(r.get("object", ""))
        if metric is None or r.get("error") or r.get("value") in ("", None):
            continue
        out.append(
            dict(
                zip(
                    METRIC_COLUMNS,
                    (
                        float(r["time"]),
                        "Lab/Host",
                        metric,
                        "",
                        "",
                        f"{r['host']}/if{r['index']}",
                        round(float(r["value"]), 3),
                        "Bytes/Second",
                    ),
                )
            )
        )
    return out
