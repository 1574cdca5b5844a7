"""The appliance's BPF data path: its programs and loader build (clang, libbpf), the loader
says why it cannot start (the appliance then falls back), attaches to and detaches from a
link in a network namespace of its own, and the Python side's pure parts (the firewall by
mark, the stats text, the fallback's reason).

Without clang or libbpf's headers the build tests skip, saying so; under CI=true that is a
failure: CI's machine is provisioned (scripts/provision installs clang-14 and libbpf-dev)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from testbed.gwlb import build_fastpath, firewall
from testbed.gwlb.appliance import Appliance, FastPath, parse_stats


def _tools_or_skip() -> str:
    clang, missing = build_fastpath.bpf_tools()
    if clang is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI's machine should be provisioned for BPF: {missing}")
        pytest.skip(f"the BPF data path cannot be built here: {missing}")
    return clang


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path]:
    clang = _tools_or_skip()
    out = tmp_path_factory.mktemp("bpf")
    obj, loader = out / "appliance-bpf.o", out / "appliance-bpf-loader"
    build_fastpath.compile_bpf(obj, loader, clang)
    return obj, loader


def test_programs_and_loader_build(built):
    obj, loader = built
    assert obj.read_bytes()[:4] == b"\x7fELF"
    assert os.access(loader, os.X_OK)


def test_build_names_the_files_after_all_their_sources(tmp_path, monkeypatch):
    _tools_or_skip()
    monkeypatch.setenv(build_fastpath.DIR_ENV, str(tmp_path))
    assert build_fastpath.find_bpf() is None
    stale = tmp_path / "appliance-bpf-loader-0000000000000000"
    stale.write_text("")
    obj, loader = build_fastpath.build_bpf()
    digest = build_fastpath.bpf_digest()
    assert (obj.name, loader.name) == (
        f"appliance-bpf-{digest}.o",
        f"appliance-bpf-loader-{digest}",
    )
    assert build_fastpath.find_bpf() == (obj, loader)
    assert not stale.exists()  # builds of other sources are removed
    assert build_fastpath.build_bpf() == (obj, loader)  # again: nothing to do


def test_loader_says_why_it_cannot_start(built, tmp_path):
    _, loader = built
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    args = (str(tmp_path / "missing.o"), "lo", "127.0.0.1", "1500", "lo")
    fast = FastPath(loader, str(tmp_path / "stats.txt"), args, ready=True)
    try:
        with pytest.raises(RuntimeError, match=r"cannot open .*missing\.o"):
            fast.start(a.fileno(), b.fileno(), b.fileno())
    finally:
        fast.stop()
        a.close()
        b.close()
    assert fast.proc is not None
    assert fast.proc.returncode == 1


# Runs in a network namespace of its own (unshare -n): a veth pair, the loader on one end.
ATTACH = textwrap.dedent(
    """
    import json, socket, subprocess, sys
    from pathlib import Path
    from testbed.gwlb.appliance import FastPath
    obj, loader, stats = sys.argv[1:4]
    def ip(*a):
        subprocess.run(["ip", *a], check=True)
    ip("link", "add", "v0", "type", "veth", "peer", "name", "v1")
    ip("link", "add", "t0", "type", "veth", "peer", "name", "t1")
    for dev in ("v0", "v1", "t0"):
        ip("link", "set", dev, "up")
    ip("addr", "add", "10.9.0.1/24", "dev", "v0")
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    fast = FastPath(Path(loader), stats, (obj, "v0", "10.9.0.1", "1500", "t0"), ready=True)
    fast.start(sock.fileno(), a.fileno(), b.fileno())
    def show(hook):
        cmd = ["tc", "filter", "show", "dev", "v0", hook]
        return subprocess.run(cmd, capture_output=True, text=True).stdout
    seen = {"ingress": show("ingress"), "egress": show("egress")}
    fast.ask(b"H")
    fast.ask(b"R")
    counters, flows = fast.stats()
    fast.stop()
    qdisc = subprocess.run(["tc", "qdisc", "show", "dev", "v0"], capture_output=True, text=True)
    print(json.dumps({**seen, "counters": counters, "flows": len(flows),
                      "after": qdisc.stdout, "status": fast.proc.returncode}))
    """
)


def test_loader_attaches_and_detaches_in_a_namespace(built, tmp_path):
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare (a network namespace of its own)")
    obj, loader = built
    argv = ["unshare", "-n", sys.executable, "-c", ATTACH, str(obj), str(loader)]
    proc = subprocess.run(
        [*argv, str(tmp_path / "stats.txt")], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.splitlines()[-1])  # after what FastPath.start says
    assert "from_gwlb" in got["ingress"]
    assert "to_gwlb" in got["egress"]
    assert got["counters"]["geneve_in"] == 0
    assert "tun_errors" in got["counters"]
    assert got["flows"] == 0
    assert "clsact" not in got["after"]  # it took its hooks with it
    assert got["status"] == 0


def test_appliance_says_why_there_is_no_bpf_data_path(tmp_path, monkeypatch):
    monkeypatch.setenv(build_fastpath.DIR_ENV, str(tmp_path))
    reason = Appliance("Fw1", "10.0.2.4", []).try_bpf(firewall.DEFAULT_MSS)
    assert reason is not None
    assert "python -m testbed.gwlb.build_fastpath" in reason


def test_ruleset_by_mark():
    script = firewall.ruleset(["tcp dport 23 drop"], mark=firewall.MARK)
    for line in (
        'iifname "tun-in" meta mark set 0x6081',  # the slow path's packets
        "meta mark != 0x6081 accept",
        'counter name "inspected"',
        'tcp dport 23 counter name "dropped" drop',
        'meta mark 0x6081 counter name "passed"',
        "meta mark 0x6081 tcp flags & (syn | rst) == syn tcp option maxseg size > 1392",
    ):
        assert line in script
    assert "tun-out" not in script
    assert 'iifname != "tun-in"' not in script
    assert "chain marked" not in firewall.ruleset(["tcp dport 23 drop"])


def test_stats_of_the_loader_parse_as_the_compiled_data_paths():
    key = bytes([6, 198, 51, 100, 10, 10, 0, 1, 10]) + (40000).to_bytes(2, "big") + b"\x00\x50"
    text = (
        "appliance-bpf-loader 1234\ngeneve_in 7\ngeneve_out 5\nbytes_in 700\nbytes_out 500\n"
        "bad 1\norphans 0\nhung 0\ntun_errors 0\nflow_count 2\n"
        f"flow 2000 {key.hex()} 10.0.0.5 3 180 1 {'00' * 40}\n"
        f"flow 1000 {key[:9].hex()} 10.0.0.5 4 240 0 {'00' * 40}\n"
    )
    counters, flows = parse_stats(text)
    assert (counters["geneve_in"], counters["bad"], counters["flow_count"]) == (7, 1, 2)
    assert list(flows) == [key[:9], key]  # oldest first
    assert flows[key][1:4] == [("10.0.0.5", 6081), 3, 180]
