"""Commands inside a lab host: its network namespace, plus a private /tmp.

Mininet hosts share the machine's file system; giving each host its own /tmp (a directory in
the lab's folder, bind-mounted in the mount namespace that `ip netns exec` creates anyway)
keeps files that programs in a host write to /tmp inside the lab, where teardown removes them,
and makes hosts behave more like separate instances.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from testbed.lab import naming

HOSTS_DIR = "hosts"


def host_dir(lab: str, host: str) -> Path:
    """Per-host directory in the lab folder: logs, UserData, the host's /tmp."""
    return naming.lab_dir(lab) / HOSTS_DIR / host


def netns_argv(lab: str, host: str, argv: Sequence[str], private_tmp: bool = True) -> list[str]:
    """argv that runs `argv` inside host `host` of lab `lab`."""
    ns = naming.netns_name(lab, host)
    if not private_tmp:
        return ["ip", "netns", "exec", ns, *argv]
    tmp = host_dir(lab, host) / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    tmp.chmod(0o1777)
    # $0 is the directory to mount; "$@" the command. If the bind mount is refused (a
    # restricted container), the command still runs, with the shared /tmp.
    script = 'mount --bind "$0" /tmp 2>/dev/null; exec "$@"'
    return ["ip", "netns", "exec", ns, "sh", "-c", script, str(tmp), *argv]
