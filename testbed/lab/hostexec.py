"""Commands inside a lab host: its network namespace, with TMPDIR pointing into the lab.

Mininet hosts share the machine's file system. Each host gets its own temporary directory
(TMPDIR, which mktemp, Python's tempfile and most tools honour) inside the lab's folder, so
their scratch files go away with the lab. /tmp itself is not replaced: the project may live
under /tmp (CI clones do), and a bind mount over /tmp would hide it from programs in hosts.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path

from testbed import naming
from testbed.lab import certs, cgroups

HOSTS_DIR = "hosts"


def host_dir(lab: str, host: str) -> Path:
    """Per-host directory in the lab folder: logs, UserData, the host's TMPDIR."""
    return naming.lab_dir(lab) / HOSTS_DIR / host


def host_tmp(lab: str, host: str) -> Path:
    """The host's TMPDIR (created on first use)."""
    tmp = host_dir(lab, host) / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    tmp.chmod(0o1777)
    return tmp


# Joins the cgroup whose cgroup.procs is $0, then becomes the command: the same PID, so
# what it starts counts as the host's CPU from its first instruction. A join that fails (the
# cgroup went away meanwhile) must not keep the command from running.
_JOIN_CGROUP = '{ echo $$ > "$0"; } 2>/dev/null; exec "$@"'


def remote_env(env: Mapping[str, str] | None) -> dict[str, str]:
    """What of a program's environment is carried to a host on another server (ssh passes
    none): PATH (the lab's host tools first) and the lab's own TESTBED_* variables (the lab,
    the host, the Python that runs the host tools, the state directory)."""
    return {k: v for k, v in sorted((env or {}).items()) if k == "PATH" or k.startswith("TESTBED_")}


def netns_argv(
    lab: str,
    host: str,
    argv: Sequence[str],
    env: Mapping[str, str] | None = None,
    cwd: Path | str | None = None,
    record: str | None = "process",
) -> list[str]:
    """argv that runs `argv` inside host `host` of lab `lab`, in the host's cgroup when it
    has one (testbed.lab.cgroups: its CPU time is the host's).

    env and cwd: the environment and directory the caller gives the process it starts; on
    this machine they apply as they are, for a host on another server they are carried to
    the command there (remote_env's part of env; cwd, which must exist there too).

    record: for a host on another server, the label the command records itself under on its
    server (its PID there, testbed.topologies.cluster.record_self_prefix), so the lab can end
    it there by PID; None for a command the caller waits for (nothing to end later)."""
    ns = naming.netns_name(lab, host)
    if (naming.lab_dir(lab) / naming.SERVERS_FILE).exists():
        # A lab across servers (issue 18): a host on another server runs it there, over ssh.
        from testbed.lab.servers import host_server
        from testbed.topologies.cluster import record_self_prefix

        access = host_server(lab, host)
        if access is not None:
            trust = [f"{k}={v}" for k, v in certs.trust_env(naming.lab_dir(lab)).items()]
            carried = [f"{k}={v}" for k, v in remote_env(env).items()]
            remote = ["ip", "netns", "exec", ns, "env", f"TMPDIR={host_tmp(lab, host)}"]
            command = "exec " + shlex.join([*remote, *carried, *trust, *argv])
            if cwd is not None:
                command = f"cd {shlex.quote(str(cwd))} && {command}"
            # Recorded on its server by its PID there (ended there by it: fault stop,
            # teardown); in the host's cgroup there when it has one (its CPU is the host's).
            if record is not None:
                command = record_self_prefix(lab, host, record) + command
            return [*access.ssh(), cgroups.remote_join_prefix(lab, host) + command]
    # Every program in a lab host trusts the lab's CA (and the public ones): curl, Python's
    # ssl and requests verify the lab's certificates without -k (testbed.lab.certs).
    trust = [f"{k}={v}" for k, v in certs.trust_env(naming.lab_dir(lab)).items()]
    run = ["ip", "netns", "exec", ns, "env", f"TMPDIR={host_tmp(lab, host)}", *trust, *argv]
    cgroup = cgroups.path(lab, host)
    if cgroup is None:
        return run
    return ["sh", "-c", _JOIN_CGROUP, str(cgroup / "cgroup.procs"), *run]
