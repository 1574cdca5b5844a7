"""Reading a running GWLB lab from outside: node status and flows, appliance status, target
states, and which appliance carried which flow (tests and the gwlb experiment use these).

    node_status(lab, "GWLB-1a")["appliances"]      # per-appliance counters of that node
    node_flows(lab, "GWLB-1a")                      # its flow table
    appliance_status(lab, "FwA1")["firewall"]       # inspected / dropped / passed
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from testbed.errors import LabError
from testbed.roles.appliance import STATUS_FILE as APPLIANCE_STATUS
from testbed.roles.gateway_node import ADMIN_PORT

TG_STATES_POLL_S = 0.2


def _admin(lab: Any, host: str, path: str) -> Any:
    proc = lab.host(host).run(["curl", "-s", "-m", "5", f"http://127.0.0.1:{ADMIN_PORT}{path}"],
                              timeout=15)
    if proc.returncode != 0:
        raise LabError(f"the GWLB node {host} does not answer on 127.0.0.1:{ADMIN_PORT} "
                       f"(curl exit {proc.returncode})")
    return json.loads(proc.stdout)


def node_status(lab: Any, host: str) -> dict[str, Any]:
    """A GWLB node's counters (as in its gwlb-status.json, but current)."""
    return _admin(lab, host, "/status")


def node_flows(lab: Any, host: str) -> list[dict[str, Any]]:
    """A GWLB node's flow table: a, b ("ip[:port]"), proto, appliance, cookie, packets."""
    return _admin(lab, host, "/flows")


def appliance_status(lab: Any, host: str) -> dict[str, Any]:
    """An appliance's last status file (rewritten every second)."""
    path = Path(lab.dir) / "hosts" / host / APPLIANCE_STATUS
    return json.loads(path.read_text())


def firewall_packets(lab: Any, hosts: list[str], counter: str) -> int:
    """Sum of one firewall counter (inspected, dropped, passed) over appliances."""
    return sum(appliance_status(lab, h)["firewall"].get(counter, {}).get("packets", 0)
               for h in hosts)


def appliance_by_client_port(flows: list[dict[str, Any]], prefix: str = "198.51.100.",
                             ) -> dict[int, str]:
    """Client port -> appliance key, for 5-tuple flows of internet clients."""
    out = {}
    for f in flows:
        for side in ("a", "b"):
            ip, _, port = str(f[side]).partition(":")
            if ip.startswith(prefix) and port:
                out[int(port)] = f["appliance"]
    return out


def target_state(lab: Any, tg: str, instance: str) -> str:
    """State of an instance target ('removed' once it is gone)."""
    from testbed.cli.targets import describe

    rows = [r for r in describe(lab.name, tg) if r["Target"]["Id"] == f"i-{instance}"]
    return rows[0]["TargetHealth"]["State"] if rows else "removed"


def wait_target_state(lab: Any, tg: str, instance: str, state: str, timeout: float) -> float:
    """Seconds until the target reaches `state`; LabError after `timeout`."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if target_state(lab, tg, instance) == state:
            return time.monotonic() - t0
        time.sleep(TG_STATES_POLL_S)
    raise LabError(f"{instance} of {tg} is not {state} after {timeout:.0f} s "
                   f"(it is {target_state(lab, tg, instance)})")


def flows_in_captures(rows_by_appliance: dict[str, list[dict[str, Any]]],
                      ) -> dict[tuple, dict[str, Any]]:
    """Per inner flow (its two endpoints, sorted) in decoded GENEVE captures: the appliances
    that saw it, the directions seen and the flow cookies."""
    seen: dict[tuple, dict[str, Any]] = defaultdict(
        lambda: {"appliances": set(), "directions": set(), "cookies": set()})
    for appliance, rows in rows_by_appliance.items():
        for row in rows:
            if row["src"] is None:
                continue
            ends = tuple(sorted([(row["src"], row["src_port"]), (row["dst"], row["dst_port"])],
                                key=str))
            flow = seen[(row["proto"], *ends)]
            flow["appliances"].add(appliance)
            flow["directions"].add((row["src"], row["src_port"]))
            flow["cookies"].add(row["flow_cookie"])
    return dict(seen)
