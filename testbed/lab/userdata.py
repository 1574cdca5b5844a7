"""Starting a host's UserData: for template instances when the lab is built and for instances
Auto Scaling launches while it runs.

The script runs once in the host's namespace (and cgroup), with the lab's host tools
(cfn-signal, cfn-init) where real UserData expects /opt/aws/bin, in a private tmpfs over the
usual web-server directories so that it never writes the machine's own files. Its start and
end are stack events (USERDATA_STARTED / USERDATA_COMPLETE / USERDATA_FAILED).
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable

from testbed.lab.events import EventLog
from testbed.lab.hostexec import host_dir, netns_argv
from testbed.lab.hosttools import lab_paths
from testbed.lab.procs import LAB_LABEL, ProcessJournal
from testbed.lab.programs import host_env
from testbed.plan.network import HostPlan

EVENT_TYPE = "Lab::UserData"
WHAT = "user-data"  # journal label

# Where real UserData writes a web server's files (echo ... > /var/www/html/index.html). A
# host shares the machine's files, so UserData sees an empty private tmpfs on each of these
# that exists: `ip netns exec` runs it in a mount namespace of its own (mounts made there never
# reach the machine), so the machine's own files are never written. Missing ones stay missing.
SERVER_DIRS = (
    "/var/www",
    "/etc/httpd",
    "/etc/apache2",
    "/etc/nginx",
    "/usr/share/nginx",
    "/srv",
)
_SANDBOX = (
    'for d in "$@"; do [ "$d" = -- ] && break; '
    '[ -d "$d" ] && mount -t tmpfs -o mode=755 lab-userdata "$d"; done; '
    'while [ "$1" != -- ]; do shift; done; shift; exec "$@"'
)


def sandboxed(argv: list[str]) -> list[str]:
    """argv run with a private tmpfs over each existing SERVER_DIRS directory."""
    return ["sh", "-c", _SANDBOX, "user-data", *SERVER_DIRS, "--", *argv]


def start_user_data(
    lab: str,
    journal: ProcessJournal,
    events: EventLog,
    host: HostPlan,
    on_exit: Callable[[int], None] | None = None,
) -> subprocess.Popen:
    """Start `host`'s UserData (host.user_data must be set), journaled; a thread reports how
    it ended (and calls on_exit with its exit code first)."""
    user_data = host.user_data or ""
    hdir = host_dir(lab, host.name)
    hdir.mkdir(parents=True, exist_ok=True)
    script = hdir / "user-data"
    # /opt/aws/bin/cfn-signal and friends are the lab's tools here.
    script.write_text(lab_paths(user_data))
    script.chmod(0o755)
    argv = [str(script)] if user_data.startswith("#!") else ["sh", str(script)]
    log = hdir / "user-data.log"
    # The host tools' lab and host (the host is cfn-signal's default UniqueId).
    env = dict(host_env(), **{LAB_LABEL: lab}, TESTBED_HOST=host.name)
    proc = journal.start(
        netns_argv(lab, host.name, sandboxed(argv), env=env, cwd=hdir, record=WHAT),
        what=WHAT,
        host=host.name,
        log=log,
        env=env,
        cwd=hdir,
    )
    events.emit(host.name, EVENT_TYPE, "USERDATA_STARTED", f"pid {proc.pid}, log {log}")

    def wait() -> None:
        code = proc.wait()
        if on_exit is not None:
            on_exit(code)
        status = "USERDATA_COMPLETE" if code == 0 else "USERDATA_FAILED"
        events.emit(host.name, EVENT_TYPE, status, f"exit code {code}")

    threading.Thread(target=wait, daemon=True, name=f"userdata:{host.name}").start()
    return proc
