"""Pure parts of testbed.lab.cgroups: finding the cgroup2 mount, paths, cpu.stat."""

from pathlib import Path

from testbed.lab import cgroups
from testbed.lab.hostexec import netns_argv

HYBRID = """\
tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0
cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0
"""
PURE_V2 = "sysfs /sys sysfs rw 0 0\ncgroup2 /sys/fs/cgroup cgroup2 rw,nsdelegate 0 0\n"


def test_mount_on_a_hybrid_machine_is_the_unified_one():
    assert cgroups.cgroup2_mount(HYBRID) == Path("/sys/fs/cgroup/unified")


def test_mount_on_a_pure_v2_machine():
    assert cgroups.cgroup2_mount(PURE_V2) == Path("/sys/fs/cgroup")


def test_no_cgroup2():
    assert cgroups.cgroup2_mount("cgroup /sys/fs/cgroup/cpu cgroup rw 0 0\n") is None


def test_escaped_mount_point():
    text = "cgroup2 /mnt/my\\040cgroups cgroup2 rw 0 0\n"
    assert cgroups.cgroup2_mount(text) == Path("/mnt/my cgroups")


def test_paths_carry_the_lab_prefix():
    root = Path("/sys/fs/cgroup")
    assert cgroups.lab_path(root, "lab1") == root / "elb-testbed" / "tb-lab1"
    assert cgroups.host_path(root, "lab1", "Web-1") == root / "elb-testbed" / "tb-lab1" / "Web-1"


def test_usage_usec():
    text = "usage_usec 624474\nuser_usec 621355\nsystem_usec 3119\n"
    assert cgroups.usage_usec(text) == 624474
    assert cgroups.usage_usec("user_usec 3\n") is None


def test_netns_argv_joins_the_cgroup_only_when_it_exists(monkeypatch, tmp_path):
    monkeypatch.setattr(cgroups, "path", lambda lab, host: None)
    monkeypatch.setattr("testbed.lab.hostexec.host_tmp", lambda lab, host: tmp_path)
    plain = netns_argv("lab1", "Web", ["true"])
    assert plain[:3] == ["ip", "netns", "exec"]
    assert plain[-1] == "true"
    monkeypatch.setattr(cgroups, "path", lambda lab, host: tmp_path / "cg")
    joined = netns_argv("lab1", "Web", ["true"])
    assert joined[0] == "sh"
    assert joined[3] == str(tmp_path / "cg" / "cgroup.procs")
    assert joined[4:] == plain
