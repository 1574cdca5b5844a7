"""The servers of a lab that spans several (issue 18): how to reach them, what runs where.

`prepare` (in the holder, before anything is built) resolves each server's underlay address
(`ssh -G` with the lab's ssh config), probes which tunnels each kernel makes, chooses the
kind every server can (GRE where gretap exists, else VXLAN; testbed.topologies.cluster), and
places the plan (testbed.plan.placement). The result is kept in the lab's folder
(servers.json) so that every later command finds it: `testbed exec` and the lab's programs
run a host's command on its server (hostexec.netns_argv), status shows the server of each
host, and the teardown (also `testbed clean` after a kill -9) removes what the lab made on
every server by its prefix.

The lab's folder must be at the same path on every server (the programs a remote host runs
write their logs and TMPDIR there): on one machine's harness, TESTBED_STATE_DIR outside /run
(each harness server has its own /run).
"""

from __future__ import annotations

from pathlib import Path

from testbed import naming
from testbed.errors import BadInput, LabError
from testbed.plan.network import NetworkPlan
from testbed.plan.placement import FRONT_END, LOCAL, place, shaping_note
from testbed.topologies.cluster import (
    LabServers,
    ServerAccess,
    choose_tunnel,
    clean_server,
    local_address_towards,
    probe_shaping,
    probe_tunnels,
    resolve_address,
    server_leftovers,
)

SERVERS_FILE = naming.SERVERS_FILE


_CACHE: dict[str, tuple[float, LabServers | None]] = {}


def load(lab: str) -> LabServers | None:
    """The servers of lab `lab` (None: a lab on this machine only)."""
    path = naming.lab_dir(lab) / SERVERS_FILE
    try:
        mtime = path.stat().st_mtime
    except FileNotFoundError:
        return None
    cached = _CACHE.get(lab)
    if cached is not None and cached[0] == mtime:
        return cached[1]
    servers = LabServers.from_json(path.read_text())
    _CACHE[lab] = (mtime, servers)
    return servers


def check_ssh_config(ssh_config: str | None) -> str | None:
    """The ssh config's absolute path; BadInput when it is given and missing."""
    if ssh_config is None:
        return None
    path = Path(ssh_config).resolve()
    if not path.is_file():
        raise BadInput(f"--ssh-config {ssh_config}: no such file")
    return str(path)


def prepare(
    lab: str,
    plan: NetworkPlan,
    servers: dict[str, str],
    ssh_config: str | None,
    tunnel_rate: int | None = None,
    delay_ms: float = 0.0,
) -> LabServers:
    """Reach every server, choose the tunnel, place the plan. LabError when a server cannot
    be reached or no tunnel kind works everywhere; BadInput when the mapping does not fit
    the template (testbed.plan.placement), or a tunnel rate is asked for and a server has
    no tbf qdisc. delay_ms: the template's InterAzDelayMs (said not applied on tunnels)."""
    place(plan, servers)  # the mapping fits the template: BadInput before any ssh
    front = servers.get(FRONT_END, LOCAL)
    if front != LOCAL:
        raise BadInput(
            f"--servers {FRONT_END}={front}: the front end is the machine `testbed up` runs on "
            f"(leave it out, or give {LOCAL})"
        )
    access: dict[str, ServerAccess] = {LOCAL: ServerAccess(LOCAL, "127.0.0.1")}
    for key, server in sorted(servers.items()):
        if key == FRONT_END or server in access:
            continue
        access[server] = ServerAccess(server, resolve_address(server, ssh_config), ssh_config)
    remotes = [a for a in access.values() if not a.local]
    front_address = local_address_towards(remotes[0].address) if remotes else "127.0.0.1"
    access[LOCAL] = ServerAccess(LOCAL, front_address)
    found = {}
    for a in access.values():
        try:
            found[a.name] = probe_tunnels(lab, a)
        except Exception as exc:  # ssh that does not answer, a timeout
            raise LabError(f"server {a.name} ({a.address}) does not answer: {exc}") from exc
    lab_dir = naming.lab_dir(lab)
    for a in remotes:
        # The programs a remote host runs use the lab's folder (TMPDIR, logs, the CA).
        if a.run(f"test -d {lab_dir} && echo shared", check=False).strip() != "shared":
            raise LabError(
                f"the lab's folder {lab_dir} is not visible on server {a.name}: the folder "
                "must be at the same path on every server (TESTBED_STATE_DIR on a shared "
                "path; on a harness of this machine, outside /run: each of its servers has "
                "its own /run)"
            )
    tunnel, why = choose_tunnel(found)
    if tunnel == "ssh":
        raise LabError(
            "not yet: only ssh tunnels work on every server; the lab makes VXLAN or GRE "
            f"tunnels ({why})"
        )
    shaped = tunnel_rate or delay_ms
    qdiscs = {a.name: probe_shaping(lab, a) for a in access.values()} if shaped else {}
    no_tbf = sorted(s for s, found in qdiscs.items() if "tbf" not in found)
    if tunnel_rate and no_tbf:
        raise BadInput(
            f"--tunnel-rate: no tbf qdisc on {', '.join(no_tbf)} (tc qdisc add ... tbf "
            "fails): the tunnels' rate cannot be held there",
            hint="leave --tunnel-rate out (the underlay's rate), or load sch_tbf there",
        )
    netem = bool(qdiscs) and all("netem" in found for found in qdiscs.values())
    placed = place(plan, servers, tunnel=tunnel, tunnel_rate=tunnel_rate)
    shaping = shaping_note(tunnel_rate, delay_ms, netem)
    return LabServers(placed, access, front_address, why, ssh_config, shaping)


def teardown_remote(lab: str, servers: LabServers | None = None) -> list[str]:
    """Remove what lab `lab` made on its remote servers (by its prefix); what was removed,
    "server: thing" each."""
    servers = servers or load(lab)
    if servers is None:
        return []
    removed = []
    for access in servers.remote():
        # A server that does not answer (gone, unreachable) is said, not fatal: what the
        # lab has on this machine and the other servers still goes.
        try:
            removed += [f"{access.name}: {x}" for x in clean_server(lab, access)]
        except Exception as exc:
            removed.append(f"{access.name}: NOT CLEANED (does not answer: {exc})")
    return removed


def remote_leftovers(lab: str, servers: LabServers | None = None) -> list[str]:
    """What of lab `lab` exists on its remote servers, "server: thing" each."""
    servers = servers or load(lab)
    if servers is None:
        return []
    return [f"{a.name}: {x}" for a in servers.remote() for x in server_leftovers(lab, a)]


def from_option(text: str, ssh_config: str | None) -> dict[str, ServerAccess]:
    """Servers named by `--servers` (for `testbed clean --servers` when the lab's folder is
    gone): each one's access, the front end left out."""
    from testbed.plan.placement import parse_servers

    out = {}
    for key, server in parse_servers(text).items():
        if key == FRONT_END or server == LOCAL:
            continue
        out[server] = ServerAccess(server, server, ssh_config)
    return out


def clean_servers(lab: str, accesses: dict[str, ServerAccess]) -> list[str]:
    """clean_server of lab `lab` on each of `accesses`."""
    removed = []
    for access in accesses.values():
        removed += [f"{access.name}: {x}" for x in clean_server(lab, access)]
    return removed


def host_server(lab: str, host: str) -> ServerAccess | None:
    """The server host `host` of lab `lab` runs on; None: this machine."""
    servers = load(lab)
    if servers is None:
        return None
    access = servers.server_of(host)
    if access is None and "/" in host:
        access = servers.server_of(host.split("/")[0])
    return access


def describe_host(lab: str, host: str) -> str:
    """The server of a host for people: "localhost" or the server's name."""
    access = host_server(lab, host)
    return LOCAL if access is None else access.name


__all__ = ["LabError", "LabServers", "load", "prepare", "teardown_remote"]
