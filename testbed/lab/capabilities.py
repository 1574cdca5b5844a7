"""What this machine can do for a lab: OVS datapath kind, netem, HTB, GENEVE, TUN, tools.

Kernel features are probed for real, in a throw-away namespace (`tbprobe-PID`, which never
matches a lab prefix), because loadable-module support differs between these machines (no
modules: userspace OVS, no netem, no GENEVE) and the Vagrant VM (all of them).
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

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
