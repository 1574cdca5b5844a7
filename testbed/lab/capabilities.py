"""What this machine can do for a lab: OVS datapath kind, netem, HTB, GENEVE, TUN, tools.

Kernel features are probed for real, in a throw-away namespace (`tbprobe-PID`, which never
matches a lab prefix), because loadable-module support differs between these machines (no
modules: userspace OVS, no netem, no GENEVE) and the Vagrant VM (all of them).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from testbed import naming
from testbed.lab import system


@dataclass
class Capabilities:
    root: bool
    ovs_running: bool
    ovs_version: str | None
    kernel_datapath: bool
    netem: bool
    htb: bool
    geneve: bool
    tun: bool
    kernel: str
    tools: dict[str, str | None] = field(default_factory=dict)
    python: dict[str, str | None] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def can_run_lab(self) -> bool:
        return not self.problems

    def default_datapath(self) -> str:
        """'kernel' where the OVS kernel module is loaded, else 'user' (netdev)."""
        return "kernel" if self.kernel_datapath else "user"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["can_run_lab"] = self.can_run_lab
        d["default_datapath"] = self.default_datapath()
        return d


TOOLS = {
    "ovs-vsctl": ["ovs-vsctl", "--version"],
    "mnexec": ["mnexec", "-v"],
    "haproxy": ["haproxy", "-v"],
    "snmpd": ["snmpd", "-v"],
    "iperf3": ["iperf3", "--version"],
    "tcpdump": ["tcpdump", "--version"],
    "ethtool": ["ethtool", "--version"],
    "nft": ["nft", "--version"],
    "wrk": ["wrk", "-v"],
    "dnsmasq": ["/usr/sbin/dnsmasq", "--version"],
}
PYTHON_PACKAGES = ["os-ken", "mininet", "scapy", "pysnmp", "pandas", "matplotlib", "PyYAML"]


def _version_line(argv: list[str]) -> str | None:
    if not shutil.which(argv[0]):
        return None
    try:
        proc = system.run(argv, check=False, timeout=10)
    except Exception:
        return None
    text = (proc.stdout + proc.stderr).strip()
    m = re.search(r"\d+\.\d+(\.\d+)?", text)
    return m.group(0) if m else (text.splitlines()[0][:60] if text else "present")


def _probe_kernel() -> dict[str, bool]:
    """Try netem, HTB, GENEVE and TUN inside a throw-away namespace."""
    ns = f"tbprobe-{os.getpid()}"
    results = {"netem": False, "htb": False, "geneve": False, "tun": False}
    if system.run(["ip", "netns", "add", ns], check=False).returncode != 0:
        return results
    try:

        def ok(*argv: str) -> bool:
            return system.run(["ip", "netns", "exec", ns, *argv], check=False).returncode == 0

        # veth, not dummy: the dummy driver is a module that some kernels here lack.
        ok("ip", "link", "add", "d0", "type", "veth", "peer", "name", "d1")
        results["netem"] = ok("tc", "qdisc", "add", "dev", "d0", "root", "netem", "delay", "1ms")
        results["htb"] = ok("tc", "qdisc", "add", "dev", "d1", "root", "handle", "1:", "htb")
        results["geneve"] = ok(
            "ip", "link", "add", "g0", "type", "geneve", "id", "1", "remote", "192.0.2.1"
        )
        results["tun"] = Path("/dev/net/tun").exists() and ok(
            "ip", "tuntap", "add", "dev", "t0", "mode", "tun"
        )
    finally:
        system.run(["ip", "netns", "delete", ns], check=False)
    return results


# GWLB steering in the switch (issue 15): OVS's geneve port type, a flow-based GENEVE port and
# the TLV map of AWS's GENEVE options (class 0x0108: endpoint id, attachment, flow cookie).
GWLB_TLV_CLASS = 0x0108
GWLB_TLV_MAP = ",".join(
    f"{{class={GWLB_TLV_CLASS:#06x},type={t},len={n}}}->tun_metadata{i}"
    for i, (t, n) in enumerate(((1, 8), (2, 8), (3, 4)))
)
GWLB_SWITCH_CACHE = "gwlb-switch-capability.json"  # in naming.state_root(): once per boot
PROBE_OFPORT = 64000


@dataclass(frozen=True)
class GwlbSwitch:
    """Whether OVS can steer GWLB traffic here (testbed.plan.gwlb_datapath) and what the probe
    found: "OVS 3.1.0 userspace, geneve + TLV class 0x0108", or why not."""

    available: bool
    note: str


def gwlb_switch(bridge: str, fresh: bool = False) -> GwlbSwitch:
    """Probe once per machine (and OVS version): a throw-away netdev bridge `bridge` (named
    with a lab's prefix, so that its cleanup finds it), a flow-based GENEVE port on it, the
    TLV map, then the bridge removed again. The result is cached in the state root (tmpfs:
    until the next boot); fresh probes again. A probe that could not run is not cached."""
    version = _version_line(TOOLS["ovs-vsctl"])
    cache = naming.state_root() / GWLB_SWITCH_CACHE
    if not fresh:
        try:
            cached = json.loads(cache.read_text())
            if cached.get("ovs_version") == version:
                return GwlbSwitch(bool(cached["available"]), str(cached["note"]))
        except (OSError, ValueError, KeyError):
            pass
    result, definite = _probe_gwlb_switch(bridge, version)
    if definite:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(
            json.dumps({"ovs_version": version, "available": result.available, "note": result.note})
        )
        os.replace(tmp, cache)
    return result


def _probe_gwlb_switch(bridge: str, version: str | None) -> tuple[GwlbSwitch, bool]:
    """(the result, whether it is definite: a machine fact rather than a passing failure)."""
    if version is None:
        return GwlbSwitch(False, "Open vSwitch is not installed"), False
    types = system.run(
        ["ovs-vsctl", "--timeout=10", "get", "Open_vSwitch", ".", "iface_types"], check=False
    )
    if types.returncode != 0:
        return GwlbSwitch(False, "Open vSwitch does not answer"), False
    if "geneve" not in types.stdout:
        return GwlbSwitch(False, f"OVS {version} has no geneve interface type"), True
    port = f"{bridge}0"[: naming.IFNAMSIZ]
    # A local_ip of its own (TEST-NET-2 benchmark range, by PID): two probes at once, or a lab's
    # own flow-based port, never make this one a duplicate ("File exists").
    local_ip = f"198.18.{(os.getpid() >> 8) & 0xFF}.{os.getpid() & 0xFF}"
    try:
        made = system.run(
            [
                "ovs-vsctl", "--timeout=20",
                "--", "--may-exist", "add-br", bridge,
                "--", "set", "bridge", bridge, "datapath_type=netdev", "fail_mode=secure",
                "--", "add-port", bridge, port,
                "--", "set", "interface", port, "type=geneve", "options:remote_ip=flow",
                "options:key=flow", f"options:local_ip={local_ip}",
                f"ofport_request={PROBE_OFPORT}",
            ],
            check=False,
        )  # fmt: skip
        if made.returncode != 0:
            return GwlbSwitch(False, f"probe bridge: {made.stderr.strip()[:200]}"), False
        ofport = system.run(
            ["ovs-vsctl", "--timeout=10", "get", "interface", port, "ofport", "error"],
            check=False,
        ).stdout.split("\n")
        if ofport[0].strip() != str(PROBE_OFPORT):
            error = ofport[1].strip() if len(ofport) > 1 else ""
            return GwlbSwitch(False, f"a flow-based GENEVE port was refused: {error}"), True
        tlv = system.run(
            ["ovs-ofctl", "-O", "OpenFlow13", "add-tlv-map", bridge, GWLB_TLV_MAP], check=False
        )
        if tlv.returncode != 0:
            text = (tlv.stderr or tlv.stdout).strip().splitlines()
            return GwlbSwitch(False, f"TLV map refused: {text[0] if text else '?'}"), True
    finally:
        system.run(["ovs-vsctl", "--timeout=20", "--if-exists", "del-br", bridge], check=False)
    return GwlbSwitch(
        True, f"OVS {version} userspace, geneve + TLV class {GWLB_TLV_CLASS:#06x}"
    ), True


def detect() -> Capabilities:
    """Probe the machine (takes a fraction of a second)."""
    problems = []
    root = os.geteuid() == 0
    if not root:
        problems.append("not root: a lab needs root (network namespaces, OVS)")
    ovs_version = _version_line(TOOLS["ovs-vsctl"])
    ovs_running = (
        bool(ovs_version)
        and system.run(["ovs-vsctl", "--timeout=3", "show"], check=False).returncode == 0
    )
    if not ovs_version:
        problems.append("Open vSwitch is not installed (run scripts/provision)")
    elif not ovs_running:
        problems.append(
            "Open vSwitch is not running (start it: scripts/provision or "
            "/usr/share/openvswitch/scripts/ovs-ctl start)"
        )
    tools = {name: _version_line(argv) for name, argv in TOOLS.items()}
    if not tools["mnexec"]:
        problems.append("Mininet (mnexec) is not installed (apt-get install mininet)")
    python: dict[str, str | None] = {}
    for pkg in PYTHON_PACKAGES:
        try:
            python[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            python[pkg] = None
    if python["os-ken"] is None:
        problems.append("os-ken is not installed in this Python (pip install os-ken)")
    try:
        import mininet.net  # noqa: F401  (only whether it imports)
    except ImportError:
        problems.append(
            "the mininet Python module is not importable: use the venv made "
            "with --system-site-packages"
        )
    kernel = (
        _probe_kernel() if root else {"netem": False, "htb": False, "geneve": False, "tun": False}
    )
    return Capabilities(
        root=root,
        ovs_running=ovs_running,
        ovs_version=ovs_version,
        kernel_datapath=Path("/sys/module/openvswitch").exists(),
        kernel=platform.release(),
        tools=tools,
        python=python,
        problems=problems,
        **kernel,
    )
