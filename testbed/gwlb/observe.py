"""Reading a running GWLB lab from outside: node status and flows, appliance status, and
which appliance carried which flow (tests and the gwlb experiment use these; target states
come from the Lab API: lab.target_state, lab.wait_target_state).

Both GWLB datapaths answer alike ("datapath" in a node's status: "switch" when Open vSwitch
steers and the node reads its counters and conntrack, "node" when the node process does the
work). Flow rows say whether the flow is `established`; their fwd_packets / rev_packets are
None on the switch datapath (its conntrack counts nothing): the appliances' own per-flow
counters tell whether a flow goes on. A switch-datapath node reads its counters every 0.5 s:
node_status_since waits for a read taken after a moment.

    node_status(lab, "GWLB-1a")["appliances"]      # per-appliance counters of that node
    node_status_since(lab, "GWLB-1a", t0)          # counters read after t0 (time.time())
    node_flows(lab, "GWLB-1a")                      # its flow table (the newest 10000)
    node_flows(lab, "GWLB-1a", end="10.0.4.4:9000", max_age_s=30)   # flows of one server, recent
    appliance_status(lab, "FwA1")["firewall"]       # inspected / dropped / passed
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any
from urllib.parse import urlencode

from testbed.errors import LabError
from testbed.lab.api import Lab
from testbed.lab.hostexec import host_dir
from testbed.lab.launch import APPLIANCE_STATUS_FILE
from testbed.lab.launch import GWLB_NODE_ADMIN_PORT as ADMIN_PORT

NODE_POLL_S = 0.2  # how often a node's view is read while waiting for it
NODE_SEES_S = 5.0  # nodes ask the holder every 0.5 s: the margin for a state to reach one
# ovs-vswitchd's revalidators add the datapath's packet counts to its OpenFlow flows every
# 500 ms (other_config:max-revalidator): a read of the switch counts a packet this late
SWITCH_STATS_LAG_S = 1.2


def _admin(lab: Lab, host: str, path: str) -> Any:
    proc = lab.host(host).run(
        # Generous: on a busy machine (tests in parallel) a node can take seconds to answer.
        ["curl", "-s", "-m", "15", f"http://127.0.0.1:{ADMIN_PORT}{path}"],
        timeout=30,
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


def node_status_since(lab: Lab, host: str, since: float, timeout: float = 5.0) -> dict[str, Any]:
    """A GWLB node's counters once they include everything before `since` (time.time()): on
    the switch datapath, from a read of the switch taken SWITCH_STATS_LAG_S after it; the
    node datapath counts as packets pass."""

    def fresh() -> dict[str, Any] | None:
        status = node_status(lab, host)
        read_at = status.get("counters_read_at")
        return status if read_at is None or read_at > since + SWITCH_STATS_LAG_S else None

    return lab.wait_for(fresh, timeout, f"{host}'s counters read after {since:.3f}", interval=0.1)


def node_flows(
    lab: Lab,
    host: str,
    end: str | None = None,
    max_age_s: float | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """A GWLB node's flow table: a, b ("ip[:port]"), proto, appliance, cookie, established,
    packets (None on the switch datapath), age_s.
    end: only flows with this endpoint ("ip:port" or "ip"); max_age_s: only flows created
    since; limit: the newest rows kept (the node's default is 10000)."""
    query = urlencode(
        {
            k: v
            for k, v in (("end", end), ("max_age_s", max_age_s), ("limit", limit))
            if v is not None
        }
    )
    return _admin(lab, host, "/flows" + (f"?{query}" if query else ""))


def appliance_status(lab: Lab, host: str) -> dict[str, Any]:
    """An appliance's last status file (rewritten every second)."""
    return json.loads((host_dir(lab.name, host) / APPLIANCE_STATUS_FILE).read_text())


def wait_status_after(lab: Lab, hosts: list[str], since: float, timeout: float = 5.0) -> None:
    """Until every appliance of `hosts` has written a status file taken at or after `since`
    (time.time()): its counters then include everything that happened before."""

    def stale() -> list[str]:
        return [h for h in hosts if appliance_status(lab, h)["time"] < since]

    lab.wait_for(
        lambda: not stale(), timeout, f"fresh status files of {', '.join(hosts)}", last=stale
    )


def firewall_packets(lab: Lab, hosts: list[str], counter: str) -> int:
    """Sum of one firewall counter (inspected, dropped, passed) over appliances."""
    return sum(
        appliance_status(lab, h)["firewall"].get(counter, {}).get("packets", 0) for h in hosts
    )


def tcp_flows_by_client_port(
    flows: list[dict[str, Any]],
    client_ip: str,
    server: str,
) -> dict[int, dict[str, Any]]:
    """Rows of the TCP flows between client_ip (any port) and server ("ip:port"), by the
    client's port: with the address and the server fixed, the port names the whole 5-tuple.
    (A port alone does not: a node's table holds thousands of older flows to other servers
    and ports with the same client ports, idle ones included for 350 s.)"""
    out = {}
    for f in flows:
        ends = [f["a"], f["b"]]
        if f["proto"] != 6 or server not in ends:
            continue
        ip, _, port = ends[1 - ends.index(server)].partition(":")
        if ip == client_ip and port:
            out[int(port)] = f
    return out


def wait_node_sees(lab: Lab, node: str, instance: str, state: str, timeout: float) -> None:
    """Until the GWLB node `node` has taken `state` for appliance `instance` (nodes ask the
    holder every 0.5 s: a state there is not yet a state in the data path)."""

    def seen() -> bool:
        return any(
            a["key"].startswith(f"i-{instance}:") and a["state"] == state
            for a in node_status(lab, node)["appliances"]
        )

    lab.wait_for(seen, timeout, f"{node} to see {instance} {state}", interval=NODE_POLL_S)


def wait_appliances_healthy(
    lab: Lab, tg: str, by_node: dict[str, list[str]], timeout: float = 60.0
) -> None:
    """Until the appliances of `tg` are healthy in the holder and in the view of the GWLB
    nodes that steer to them ({node: [appliance, ...]}): only then do new flows spread
    over all of them."""
    for node, appliances in by_node.items():
        for appliance in appliances:
            lab.wait_target_state(tg, appliance, "healthy", timeout)
            wait_node_sees(lab, node, appliance, "healthy", NODE_SEES_S)


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
