"""`testbed cluster check`: can these servers carry a lab's availability zones?

For each server, over ssh with keys only (BatchMode): who we are there (root, or sudo without
a password), the versions of mnexec, Open vSwitch (and whether it answers), HAProxy and snmpd,
whether a VXLAN and a gretap device can be created (a uniquely named test device, deleted at
once), and whether the server reaches the front end's controller port: this machine opens a
TCP port on the address it uses towards that server and the server connects to it.

The probe is one shell script sent on ssh's stdin (`sh -s`), printing KEY=VALUE lines; the
verdict (`judge`) is pure and unit-tested.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import secrets
import socket
import subprocess
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from testbed import naming
from testbed.cluster.servers import ServerSpec
from testbed.errors import LabError

TUNNELS = ("gretap", "vxlan")  # preference order: Cluster Edition's own GRE link first
VERSIONS = ("mnexec", "ovs", "haproxy", "snmpd")
NEEDED_FOR = {
    "mnexec": "Mininet nodes (Debian package mininet)",
    "ovs": "the AZ's switches (Debian package openvswitch-switch)",
    "haproxy": "ALB/CLB nodes (Debian package haproxy)",
    "snmpd": "instances' SNMP agents (Debian package snmpd)",
}
SSH_TIMEOUT = 40.0

# $1: a name prefix for the test devices (tb-ckXXXX-), $2: the front end's address, $3: port.
PROBE_SCRIPT = r"""
pre=$1 fe=$2 port=$3
say() { printf '%s=%s\n' "$1" "$(printf '%s' "$2" | tr '\n' ' ' | sed 's/ *$//')"; }
say user "$(id -un)"
say hostname "$(hostname)"
say kernel "$(uname -r)"
S=
if [ "$(id -u)" = 0 ]; then say root root
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then S="sudo -n"; say root sudo
else say root none
fi
if command -v mnexec >/dev/null 2>&1; then
    v=$(mnexec -v 2>/dev/null | head -n1)
    [ -n "$v" ] || v=$(dpkg-query -W -f='${Version}' mininet 2>/dev/null)
    say mnexec "${v:-present}"
else say mnexec missing
fi
if command -v ovs-vsctl >/dev/null 2>&1; then
    say ovs "$(ovs-vsctl --version 2>/dev/null | head -n1 | awk '{print $NF}')"
    if $S ovs-vsctl --timeout=5 show >/dev/null 2>&1; then say ovs_running yes
    else say ovs_running no
    fi
else say ovs missing
fi
if command -v haproxy >/dev/null 2>&1; then
    say haproxy "$(haproxy -v 2>&1 | head -n1 | awk '{print $3}')"
else say haproxy missing
fi
if command -v snmpd >/dev/null 2>&1; then
    say snmpd "$(snmpd -v 2>&1 | awk '/version/ {print $NF; exit}')"
else say snmpd missing
fi
tunnel() {
    kind=$1 dev=$2; shift 2
    if out=$($S ip link add "$dev" "$@" 2>&1); then
        $S ip link del "$dev" 2>/dev/null
        say "tunnel_$kind" ok
    else
        say "tunnel_$kind" "${out:-failed}"
    fi
}
tunnel vxlan "${pre}vx" type vxlan id 4242 remote "$fe" dstport 4789
tunnel gretap "${pre}gt" type gretap remote "$fe"
if out=$(timeout 5 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$fe" "$port" 2>&1); then
    say reach ok
else
    say reach "${out:-no answer in 5 s}"
fi
say done yes
"""


@dataclass
class ServerResult:
    zone: str
    host: str
    address: str = ""  # the server's address, as this machine resolves it
    front_end: str = ""  # address:port the server was asked to reach
    ssh: str = ""  # "ok" or why not
    facts: dict[str, str] = field(default_factory=dict)  # the probe's KEY=VALUE lines
    seen_from: list[str] = field(default_factory=list)  # peers our port saw connect
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def tunnels(self) -> dict[str, str]:
        return {t: self.facts.get(f"tunnel_{t}", "not checked") for t in TUNNELS}

    def usable_tunnels(self) -> list[str]:
        return [t for t, v in self.tunnels().items() if v == "ok"]

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ok"] = self.ok
        d["tunnels"] = self.tunnels()
        d["versions"] = {k: self.facts.get(k, "") for k in VERSIONS}
        return d


@dataclass
class CheckReport:
    servers: list[ServerResult]
    tunnel: str | None  # the tunnel type every server can create (None: none is common)
    problems: list[str] = field(default_factory=list)  # about the servers together

    @property
    def ok(self) -> bool:
        return not self.problems and all(s.ok for s in self.servers)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "tunnel": self.tunnel,
            "problems": self.problems,
            "servers": [s.as_dict() for s in self.servers],
        }


def parse_facts(text: str) -> dict[str, str]:
    """The probe's KEY=VALUE lines (anything else, e.g. a login banner, is ignored)."""
    facts = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.replace("_", "").isalnum():
            facts[key] = value.strip()
    return facts


def judge(result: ServerResult) -> None:
    """Fill result.problems (what makes the server unusable) and result.notes (facts worth
    knowing that do not) from its ssh outcome and facts."""
    f = result.facts
    result.problems, result.notes = [], []
    if result.ssh != "ok":
        result.problems.append(f"ssh: {result.ssh}")
        return
    if f.get("done") != "yes":
        result.problems.append("the probe did not run to its end (see --json facts)")
    if f.get("root") == "none":
        result.problems.append(
            f"user {f.get('user', '?')} is not root and cannot sudo without a password"
            " (sudo -n true failed)"
        )
    for tool in VERSIONS:
        if f.get(tool, "missing") == "missing":
            result.problems.append(f"{tool} missing: needed for {NEEDED_FOR[tool]}")
    if f.get("ovs", "missing") != "missing" and f.get("ovs_running") != "yes":
        result.problems.append("Open vSwitch does not answer (ovs-vsctl show): start it")
    tunnels = result.tunnels()
    for kind, outcome in tunnels.items():
        if outcome != "ok":
            result.notes.append(f"{kind}: {outcome}")
    if not result.usable_tunnels():
        result.problems.append("no tunnel device can be created (neither gretap nor vxlan)")
    reach = f.get("reach", "not checked")
    if reach != "ok":
        result.problems.append(f"cannot reach the front end's controller port {result.front_end}:"
                               f" {reach}")  # fmt: skip


def common_tunnel(results: Sequence[ServerResult]) -> str | None:
    """The preferred tunnel type every server that answered can create, or None."""
    answered = [r for r in results if r.ssh == "ok"]
    for kind in TUNNELS:
        if answered and all(kind in r.usable_tunnels() for r in answered):
            return kind
    return None


def summarize(results: list[ServerResult]) -> CheckReport:
    for r in results:
        judge(r)
    tunnel = common_tunnel(results)
    problems = []
    answered = [r for r in results if r.ssh == "ok"]
    if len(answered) > 1 and tunnel is None and all(r.usable_tunnels() for r in answered):
        problems.append(
            "no tunnel type is available on every server: inter-AZ links cannot be made"
        )
    return CheckReport(results, tunnel, problems)


# -- running it ---------------------------------------------------------------------------
def ssh_base(ssh_config: Path | None) -> list[str]:
    base = ["ssh"]
    if ssh_config is not None:
        base += ["-F", str(ssh_config)]
    return [*base, "-o", "BatchMode=yes", "-o", "ConnectTimeout=5"]


def resolve(host: str, ssh_config: Path | None) -> str:
    """The IPv4 address ssh would connect to for `host` (its config's HostName, resolved)."""
    out = subprocess.run(
        [*ssh_base(ssh_config), "-G", host], capture_output=True, text=True, timeout=10
    )
    if out.returncode != 0:
        raise LabError(f"ssh -G {host}: {out.stderr.strip()}")
    name = host.rsplit("@", 1)[-1]
    for line in out.stdout.splitlines():
        if line.startswith("hostname "):
            name = line.split(None, 1)[1].strip()
    with contextlib.suppress(ValueError):
        return str(ipaddress.IPv4Address(name))
    try:
        return str(socket.getaddrinfo(name, None, socket.AF_INET)[0][4][0])
    except OSError as e:
        raise LabError(f"cannot resolve {name}: {e}") from e


def local_address_towards(address: str) -> str:
    """This machine's source address for packets to `address` (where the server finds us)."""
    out = subprocess.run(
        ["ip", "-j", "route", "get", address], capture_output=True, text=True, timeout=10
    )
    try:
        return str(json.loads(out.stdout)[0]["prefsrc"])
    except (ValueError, IndexError, KeyError) as e:
        raise LabError(f"no route from this machine to {address}: {out.stderr.strip()}") from e


class PortListener:
    """A TCP port open on `address` for the check; records who connected."""

    def __init__(self, address: str, port: int = 0) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind((address, port))
        except OSError as e:
            self.sock.close()
            raise LabError(f"cannot open {address}:{port} for the check: {e.strerror}") from e
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        bound = self.sock.getsockname()
        self.address: str = bound[0]
        self.port: int = bound[1]
        self.peers: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, peer = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.peers.append(peer[0])
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


@contextlib.contextmanager
def listeners(addresses: set[str], port: int) -> Iterator[dict[str, PortListener]]:
    opened: dict[str, PortListener] = {}
    try:
        for a in sorted(addresses):
            opened[a] = PortListener(a, port)
        yield opened
    finally:
        for listener in opened.values():
            listener.close()


def probe(spec: ServerSpec, ssh_config: Path | None, front_end: str, port: int) -> ServerResult:
    """Run the probe on one server (the port must be open already)."""
    result = ServerResult(spec.zone, spec.host, front_end=f"{front_end}:{port}")
    pre = naming.prefix("ck" + secrets.token_hex(2))  # tb-ckXXXX-: its test devices
    argv = [*ssh_base(ssh_config), spec.host, f"sh -s -- {pre} {front_end} {port}"]
    try:
        out = subprocess.run(
            argv, input=PROBE_SCRIPT, capture_output=True, text=True, timeout=SSH_TIMEOUT
        )
    except subprocess.TimeoutExpired:
        result.ssh = f"no answer in {SSH_TIMEOUT:g} s"
        return result
    if out.returncode == 255:  # ssh's own failure: connection, host key, authentication
        last = out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed"
        result.ssh = last.removeprefix("ssh: ")
        return result
    result.ssh = "ok"
    result.facts = parse_facts(out.stdout)
    return result


def run_check(
    specs: Sequence[ServerSpec],
    ssh_config: Path | None = None,
    port: int = 0,
    front_end: str | None = None,
) -> CheckReport:
    """Check every server (in parallel) and judge them."""
    results: dict[ServerSpec, ServerResult] = {}
    where: dict[ServerSpec, str] = {}
    for spec in specs:
        try:
            address = resolve(spec.host, ssh_config)
            where[spec] = front_end or local_address_towards(address)
            results[spec] = ServerResult(spec.zone, spec.host, address=address)
        except LabError as e:
            results[spec] = ServerResult(spec.zone, spec.host, ssh=str(e))
    with listeners(set(where.values()), port) as ports:
        todo = list(where)
        with ThreadPoolExecutor(max_workers=max(1, min(8, len(todo)))) as pool:
            done = pool.map(lambda s: probe(s, ssh_config, where[s], ports[where[s]].port), todo)
            for spec, result in zip(todo, done):
                result.address = results[spec].address
                results[spec] = result
        for spec in todo:
            listener = ports[where[spec]]
            results[spec].seen_from = sorted({p for p in listener.peers
                                              if p == results[spec].address})  # fmt: skip
    return summarize([results[s] for s in specs])


# -- output ---------------------------------------------------------------------------------
def _yes(outcome: str) -> str:
    return "yes" if outcome == "ok" else "no"


def table_rows(report: CheckReport) -> list[list[str]]:
    rows = []
    for r in report.servers:
        f = r.facts
        t = r.tunnels()
        ran = r.ssh == "ok"
        rows.append(
            [
                r.zone,
                r.host,
                r.address or "?",
                "ok" if ran else "FAILED",
                f.get("root", "-") if ran else "-",
                *[f.get(k, "-") if ran else "-" for k in VERSIONS],
                _yes(t["vxlan"]) if ran else "-",
                _yes(t["gretap"]) if ran else "-",
                ("ok" if f.get("reach") == "ok" else "FAILED") if ran else "-",
                "OK" if r.ok else "FAIL",
            ]
        )
    return rows


HEADERS = ["ZONE", "HOST", "ADDRESS", "SSH", "ROOT", "MNEXEC", "OVS", "HAPROXY", "SNMPD",
           "VXLAN", "GRETAP", "CONTROLLER", "VERDICT"]  # fmt: skip


def report_text(report: CheckReport, table: Any) -> str:
    """The human report; `table` is the CLI's table formatter (rows, headers)."""
    lines = [table(table_rows(report), HEADERS), ""]
    for r in report.servers:
        for p in r.problems:
            lines.append(f"  {r.zone} ({r.host}): FAIL: {p}")
        for note in r.notes:
            lines.append(f"  {r.zone} ({r.host}): note: {note}")
    lines += [f"  {p}" for p in report.problems]
    if report.tunnel:
        lines.append(f"tunnel for inter-AZ links: {report.tunnel} (every server can create it)")
    n = len(report.servers)
    bad = [r.zone for r in report.servers if not r.ok]
    if report.ok:
        lines.append(f"verdict: OK, all {n} server{'s' if n != 1 else ''} can carry a zone")
    else:
        lines.append(
            "verdict: FAIL"
            + (f" ({', '.join(bad)} cannot carry a zone)" if bad else "")
            + (f": {'; '.join(report.problems)}" if report.problems and not bad else "")
        )
    return "\n".join(lines)
