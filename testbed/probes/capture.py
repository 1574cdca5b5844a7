"""Packet captures on a lab host's eth0: tcpdump in the host's namespace writes a pcap into the
host's folder of the lab (open it in Wireshark), bounded in time and packets, always stopped.

    with start_capture(lab.host("WebA1"), "tcp port 80", label="web") as cap:
        ...                                   # make traffic
    print(cap.path, cap.packets)              # stopped when the block ends, whatever happened

    path = capture(lab.host("WebA1"), "icmp", seconds=5, max_packets=10)   # blocking
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import subprocess
import time
from pathlib import Path
from types import TracebackType

from testbed.errors import BadInput, LabError
from testbed.lab.api import LabHost
from testbed.lab.hostexec import host_dir
from testbed.lab.procs import group_running
from testbed.waiting import wait_for

CAPTURES_DIR = "captures"
READY_TIMEOUT_S = 10.0
STOP_GRACE_S = 5.0
MAX_SECONDS = 3600.0
# The last packets of a probe are on the wire when its client returns; give the capture a
# moment to take them in before it stops.
SETTLE_S = 0.3


def captures_dir(lab: str, host: str) -> Path:
    """Where a host's pcaps go (inside the lab folder: removed with the lab)."""
    path = host_dir(lab, host) / CAPTURES_DIR
    path.mkdir(parents=True, exist_ok=True)
    return path


def tcpdump_argv(
    bpf: str,
    pcap: Path,
    max_seconds: float,
    max_packets: int | None,
    interface: str = "eth0",
    snaplen: int = 0,
) -> list[str]:
    """tcpdump bounded by `timeout` (SIGINT, so the pcap is closed properly; SIGKILL 2 s
    later), packet-buffered so the file is readable even if it is killed."""
    argv = [
        "timeout",
        "-s",
        "INT",
        "-k",
        "2",
        f"{max_seconds:g}",
        "tcpdump",
        "-i",
        interface,
        "-n",
        "-U",
        "--immediate-mode",
        "--time-stamp-precision=nano",
        "-Z",
        "root",
        "-s",
        str(snaplen),
        "-w",
        str(pcap),
    ]
    if max_packets is not None:
        argv += ["-c", str(max_packets)]
    return [*argv, bpf] if bpf else argv


class Capture:
    """One tcpdump running in a lab host; a context manager that always stops it."""

    def __init__(
        self,
        host: LabHost,
        bpf: str,
        path: Path,
        max_seconds: float = 60.0,
        max_packets: int | None = 100_000,
        interface: str = "eth0",
    ) -> None:
        if not 0 < max_seconds <= MAX_SECONDS:
            raise BadInput(f"capture time must be in (0, {MAX_SECONDS:g}] s, not {max_seconds}")
        if max_packets is not None and max_packets < 1:
            raise BadInput(f"capture packet count must be at least 1, not {max_packets}")
        self.host = host
        self.bpf = bpf
        self.path = path
        self.log = path.with_suffix(".log")
        self.max_seconds = max_seconds
        self.max_packets = max_packets
        self.interface = interface
        self.proc: subprocess.Popen | None = None

    def start(self) -> Capture:
        """Start tcpdump and return once it listens (its filter is attached by then)."""
        argv = tcpdump_argv(self.bpf, self.path, self.max_seconds, self.max_packets, self.interface)
        with open(self.log, "wb") as log:
            # Own session: `timeout` and tcpdump form one process group we can end together.
            self.proc = self.host.popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_ready()
        except BaseException:
            self.kill()
            raise
        return self

    def _wait_ready(self) -> None:
        def listening() -> bool:
            text = self.log_text()
            if "listening on" in text:
                return True
            if self.proc is not None and self.proc.poll() is not None:
                if "syntax error" in text or "can't parse filter" in text:
                    raise BadInput(f"bad capture filter {self.bpf!r}: {text.strip()}")
                raise LabError(
                    f"tcpdump on {self.host.name} exited at once "
                    f"({self.proc.returncode}): {text.strip()[-300:]}"
                )
            return False

        wait_for(
            listening,
            READY_TIMEOUT_S,
            f"tcpdump on {self.host.name} to listen",
            interval=0.02,
            last=lambda: self.log_text().strip()[-300:] or "(nothing logged)",
        )

    def stop(self, settle_s: float = SETTLE_S) -> Path:
        """Let the last packets in, stop tcpdump (SIGINT: it closes the pcap), return it."""
        if self.proc is None:
            raise LabError("capture was never started")
        if self.proc.poll() is None:
            time.sleep(settle_s)
            self._signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.path

    def kill(self) -> None:
        """End the capture's process group at once (no-op when it already ended)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        pgid = self.proc.pid  # start_new_session: the leader's PID names the group
        self._signal(signal.SIGKILL)
        self.proc.wait()
        # `timeout` is reaped; its tcpdump, killed in the same instant, may still be exiting.
        # Return once the whole group is gone, so "stopped" means nothing is left running.
        wait_for(
            lambda: not group_running(pgid),
            STOP_GRACE_S,
            f"the capture on {self.host.name} to end",
            interval=0.01,
        )

    def _signal(self, sig: int) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)  # the group we started: timeout and its tcpdump

    def log_text(self) -> str:
        """tcpdump's messages (its start line and the final packet counts)."""
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    @property
    def packets(self) -> int | None:
        """Packets tcpdump wrote, from its final report (None while it runs)."""
        m = re.search(r"(\d+) packets? captured", self.log_text())
        return int(m.group(1)) if m else None

    @property
    def dropped(self) -> int | None:
        """Packets the kernel dropped before tcpdump could read them."""
        m = re.search(r"(\d+) packets? dropped by kernel", self.log_text())
        return int(m.group(1)) if m else None

    @property
    def hit_packet_limit(self) -> bool:
        """True when the capture stopped because it reached max_packets (may miss some)."""
        return self.max_packets is not None and self.packets == self.max_packets

    def __enter__(self) -> Capture:
        return self.start() if self.proc is None else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc_type is None:
                self.stop()
        finally:
            self.kill()


def start_capture(
    host: LabHost,
    bpf: str,
    *,
    label: str = "capture",
    max_seconds: float = 60.0,
    max_packets: int | None = 100_000,
    interface: str = "eth0",
) -> Capture:
    """A started capture on `host` (a LabHost) into captures/<label>-<time>-<id>.pcap."""
    if not re.fullmatch(r"[\w.-]+", label):
        raise BadInput(f"capture label {label!r}: use letters, digits, '.', '_' or '-'")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = captures_dir(host.lab, host.name) / f"{label}-{stamp}-{secrets.token_hex(2)}.pcap"
    return Capture(host, bpf, path, max_seconds, max_packets, interface).start()


def capture(
    host: LabHost,
    bpf: str,
    *,
    seconds: float,
    max_packets: int | None = None,
    label: str = "capture",
) -> Path:
    """Capture on `host` until `seconds` pass or `max_packets` arrive; the pcap's path."""
    cap = start_capture(host, bpf, label=label, max_seconds=seconds, max_packets=max_packets)
    try:
        assert cap.proc is not None
        # `timeout` should have ended it: kill below.
        with contextlib.suppress(subprocess.TimeoutExpired):
            cap.proc.wait(timeout=seconds + STOP_GRACE_S)
    finally:
        cap.kill()
    return cap.path
