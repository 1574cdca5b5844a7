"""A cgroup (v2) per lab host, so that a host's CPU time is its own, not the machine's.

Every lab host shares the machine's CPUs and /proc; what Auto Scaling's CPUUtilization needs
is the CPU its own processes used. Each host gets <cgroup2 mount>/elb-testbed/tb-<lab>/<host>/,
which its Mininet shell and every process started in it join (hostexec.netns_argv), and
`cpu.stat usage_usec` counts them (and their children) even without the cpu controller, so
this works on a hybrid v1 machine (cgroup2 at /sys/fs/cgroup/unified) as on a pure v2 one
(/sys/fs/cgroup). Without a writable cgroup2 mount the lab runs without per-host CPU.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import shlex
from pathlib import Path

from testbed import naming
from testbed.waiting import WaitTimeout, wait_for

TOP = naming.CGROUP_TOP  # the one directory the lab makes at the top of the hierarchy
MOUNTS = Path("/proc/self/mounts")
REMOVE_TIMEOUT = 2.0  # a process that was just killed leaves its cgroup within milliseconds


def cgroup2_mount(mounts_text: str) -> Path | None:
    """The first cgroup2 mount point in /proc/mounts text (None: no cgroup v2)."""
    for line in mounts_text.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[2] == "cgroup2":
            # /proc/mounts escapes spaces, tabs, newlines and backslashes as octal.
            return Path(_unescape(fields[1]))
    return None


def _unescape(field: str) -> str:
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def lab_path(mount: Path, lab: str) -> Path:
    """The directory of lab `lab` under a cgroup2 mount."""
    return mount / TOP / naming.prefix(lab).rstrip("-")


def host_path(mount: Path, lab: str, host: str) -> Path:
    """The cgroup directory of one host of lab `lab` under a cgroup2 mount."""
    return lab_path(mount, lab) / host


def usage_usec(cpu_stat_text: str) -> int | None:
    """usage_usec of a cpu.stat file's text (None when it has none)."""
    for line in cpu_stat_text.splitlines():
        key, _, value = line.partition(" ")
        if key == "usage_usec" and value.strip().isdigit():
            return int(value)
    return None


@functools.cache
def mount() -> Path | None:
    """This machine's cgroup2 mount, if there is one."""
    try:
        return cgroup2_mount(MOUNTS.read_text())
    except OSError:
        return None


def available() -> bool:
    """True when hosts can get cgroups of their own (a cgroup2 mount we may write to)."""
    root = mount()
    return root is not None and os.access(root, os.W_OK)


def path(lab: str, host: str) -> Path | None:
    """The host's cgroup directory when it exists (None: none was made)."""
    root = mount()
    if root is None:
        return None
    found = host_path(root, lab, host)
    return found if found.is_dir() else None


def create(lab: str, host: str) -> Path | None:
    """Make the host's cgroup (kept if it exists); None when cgroups are not available."""
    if not available():
        return None
    root = mount()
    assert root is not None
    where = host_path(root, lab, host)
    try:
        where.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None  # e.g. a read-only or delegated hierarchy: the lab runs without
    return where


def join(lab: str, host: str, pid: int) -> bool:
    """Move process `pid` (e.g. a host's Mininet shell) into the host's cgroup."""
    where = path(lab, host)
    if where is None:
        return False
    try:
        (where / "cgroup.procs").write_text(f"{pid}\n")
    except OSError:  # it exited meanwhile
        return False
    return True


# ---- hosts on another server (a lab across servers, issue 18) ----------------------------
# Their cgroups are made, joined and read on their server, over ssh: the same directories
# under that server's cgroup2 mount (testbed.topologies.cluster.remote_cgroup_dir).


def remote_create_script(lab: str, pids: dict[str, int]) -> str:
    """Shell, run on a server: a cgroup for each of its hosts (host -> its shell's PID there),
    the shell moved in; one line "cgroup HOST" per host that has one. Nothing when the server
    has no writable cgroup2 mount."""
    from testbed.topologies.cluster import CGROUP_MOUNT_SH, remote_cgroup_dir

    d = remote_cgroup_dir(lab)
    script = f'{CGROUP_MOUNT_SH}; [ -n "$m" ] && [ -w "$m" ] || exit 0; '
    for host, pid in sorted(pids.items()):
        h = shlex.quote(host)
        script += (
            f"mkdir -p {d}/{h} 2>/dev/null && echo {int(pid)} > {d}/{h}/cgroup.procs "
            f"&& echo cgroup {h}; "
        )
    return script + "true"


def remote_join_prefix(lab: str, host: str) -> str:
    """Shell put before a command run on a host's server: the shell that runs it joins the
    host's cgroup there (when it has one), then execs the command (the same PID)."""
    from testbed.topologies.cluster import CGROUP_MOUNT_SH, remote_cgroup_dir

    procs = f"{remote_cgroup_dir(lab)}/{shlex.quote(host)}/cgroup.procs"
    return f'{{ {CGROUP_MOUNT_SH}; [ -n "$m" ] && echo $$ > {procs}; }} 2>/dev/null; '


def remote_usage_script(lab: str, host: str) -> str:
    """Shell, run on a host's server: its cgroup's cpu.stat."""
    from testbed.topologies.cluster import CGROUP_MOUNT_SH, remote_cgroup_dir

    return f"{CGROUP_MOUNT_SH}; cat {remote_cgroup_dir(lab)}/{shlex.quote(host)}/cpu.stat"


def cpu_usage_s(lab: str, host: str) -> float | None:
    """CPU seconds the host's processes used so far (None: no cgroup for it). A host on
    another server: read there, over ssh."""
    if (naming.lab_dir(lab) / naming.SERVERS_FILE).exists():
        from testbed.lab.servers import host_server

        access = host_server(lab, host)
        if access is not None:
            try:
                usec = usage_usec(access.run(remote_usage_script(lab, host), timeout=10))
            except Exception:  # the server does not answer, no cgroup there
                return None
            return None if usec is None else usec / 1e6
    where = path(lab, host)
    if where is None:
        return None
    try:
        usec = usage_usec((where / "cpu.stat").read_text())
    except OSError:
        return None
    return None if usec is None else usec / 1e6


def remove(lab: str, host: str) -> None:
    """Remove the host's cgroup once its processes are gone (they must be ended first)."""
    where = path(lab, host)
    if where is not None:
        _rmdir(where)


def remove_all(lab: str) -> None:
    """Remove every cgroup of lab `lab`, then elb-testbed/ if no other lab has one there."""
    root = mount()
    if root is None:
        return
    mine = lab_path(root, lab)
    if mine.is_dir():
        for child in sorted(p for p in mine.iterdir() if p.is_dir()):
            _rmdir(child)
        _rmdir(mine)
    with contextlib.suppress(OSError):  # another lab's cgroups are still there
        (root / TOP).rmdir()


def _rmdir(where: Path) -> None:
    """rmdir a cgroup; EBUSY while its last processes finish exiting: retried briefly."""

    def removed() -> bool:
        try:
            where.rmdir()
        except FileNotFoundError:
            return True
        except OSError as exc:
            if exc.errno == errno.EBUSY:
                return False
            raise
        return True

    # Something of the lab still running in it (teardown's process sweep comes first): the
    # directory is left for the next `testbed clean` rather than fail the teardown.
    with contextlib.suppress(WaitTimeout, OSError):
        wait_for(removed, REMOVE_TIMEOUT, f"cgroup {where} to empty", interval=0.02)


def lab_cgroup_dirs(lab: str) -> list[str]:
    """Cgroup directories lab `lab` still has, its own and its hosts' (leftover checks)."""
    root = mount()
    if root is None or not lab_path(root, lab).is_dir():
        return []
    mine = lab_path(root, lab)
    return [str(mine), *sorted(str(p) for p in mine.iterdir() if p.is_dir())]
