"""Reading a running GWLB lab from outside: node status and flows, appliance status, and
which appliance carried which flow (tests and the gwlb experiment use these; target states
come from the Lab API: lab.target_state, lab.wait_target_state).

    node_status(lab, "GWLB-1a")["appliances"]      # per-appliance counters of that node
    node_flows(lab, "GWLB-1a")                      # its flow table
    appliance_status(lab, "FwA1")["firewall"]       # inspected / dropped / passed
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from testbed.errors import LabError
from testbed.lab.api import Lab
from testbed.lab.hostexec import host_dir
from testbed.lab.launch import APPLIANCE_STATUS_FILE
from testbed.lab.launch import GWLB_NODE_ADMIN_PORT as ADMIN_PORT


def _admin(lab: Lab, host: str, path: str) -> Any:
    proc = lab.host(host).run(
        ["curl", "-s", "-m", "5", f"http://127.0.0.1:{ADMIN_PORT}{path}"], timeout=15
    )
    if proc.returncode != 0:
        raise LabError(
            f"the GWLB node {host} does not answer on 127.0.0.1:{ADMIN_PORT} "
            f"(curl exit {proc.returncode})"
        )
    return json.loads(proc.stdout)


def node_status(lab: Lab, host: str) -> dict[str, Any]:
    """A GWLB node's counters (as in its gwlb-status.json, but current)."""
    return _admin(lab, host, "/status")


def node_flows(lab: Lab, host: str) -> list[dict[str, Any]]:
    """A GWLB node's flow table: a, b ("ip[:port]"), proto, appliance, cookie, packets."""
    return _admin(lab, host, "/flows")


def appliance_status(lab: Lab, host: str) -> dict[str, Any]:
    """An appliance's last status file (rewritten every second)."""
    return json.loads((host_dir(lab.name, host) / APPLIANCE_STATUS_FILE).read_text())


def firewall_packets(lab: Lab, hosts: list[str], counter: str) -> int:
    """Sum of one firewall counter (inspected, dropped, passed) over appliances."""
    return sum(
        appliance_status(lab, h)["firewall"].get(counter, {}).get("packets", 0) for h in hosts
    )


def appliance_by_client_port(
    flows: list[dict[str, Any]],
    prefix: str = "198.51.100.",
) -> dict[int, str]:
    """Client port -> appliance key, for 5-tuple flows of internet clients."""
    out = {}
    for f in flows:
        for side in ("a", "b"):
            ip, _, port = str(f[side]).partition(":")
            if ip.startswith(prefix) and port:
                out[int(port)] = f["appliance"]
    return out


def flows_in_captures(
    rows_by_appliance: dict[str, list[dict[str, Any]]],
) -> dict[tuple, dict[str, Any]]:
    """Per inner flow (its two endpoints, sorted) in decoded GENEVE captures: the appliances
    that saw it, the directions seen and the flow cookies."""
    seen: dict[tuple, dict[str, Any]] = defaultdict(
        lambda: {"appliances": set(), "directions": set(), "cookies": set()}
    )
    for appliance, rows in rows_by_appliance.items():
        for row in rows:
            if row["src"] is None:
                continue
            ends = tuple(
                sorted([(row["src"], row["src_port"]), (row["dst"], row["dst_port"])], key=str)
            )
            flow = seen[(row["proto"], *ends)]
            flow["appliances"].add(appliance)
            flow["directions"].add((row["src"], row["src_port"]))
            flow["cookies"].add(row["flow_cookie"])
    return dict(seen)
