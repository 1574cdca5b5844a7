"""Per-host services the lab runs besides roles (e.g. an SNMP agent), started at host start.

Each service module exposes `start(ctx, host) -> None`; `start_services` calls every one for
every host. Services record their processes in the lab's journal (ctx.journal.start) so that
teardown ends them by PID.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testbed.lab.events import EventLog
from testbed.lab.procs import ProcessJournal
from testbed.plan.network import HostPlan, NetworkPlan


@dataclass
class ServiceContext:
    lab: str
    lab_dir: Path
    plan: NetworkPlan
    journal: ProcessJournal
    events: EventLog
    env: dict[str, str]


# Module names under testbed.lab.services, started in this order.
SERVICES: tuple[str, ...] = ("dns", "trapd", "snmpd")


def start_services(ctx: ServiceContext, host: HostPlan) -> list[Any]:
    """Start every per-host service for `host`; returns what the services returned."""
    import importlib

    return [
        importlib.import_module(f"testbed.lab.services.{name}").start(ctx, host)
        for name in SERVICES
    ]
