"""Health checker of one load balancer node: runs inside the node's namespace.

Asks the lab's holder which targets this node checks (those in its AZ), checks each on its
own interval from the node's address (real TCP connects, HTTP GETs, TLS handshakes and
HTTPS GETs through the lab network, so a target sees checks from the node as on AWS), and
reports every result back.

    python -m testbed.lb.health_checker --lb MyNLB --az us-east-1a --source 10.0.0.5 \
        --holder /run/elb-testbed/default/holder.sock
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import Callable
from functools import partial
from typing import TypeVar

from testbed import asks
from testbed.health import checks
from testbed.health.checks import CheckResult
from testbed.messages import HealthCheckResult, HealthCheckSpec

T = TypeVar("T")

REFRESH_S = 1.0


class Checker:
    def __init__(self, lb: str, az: str, source: str, holder: str) -> None:
        self.lb, self.az, self.source, self.holder = lb, az, source, holder
        self.plan: dict[tuple[str, str, str], HealthCheckSpec] = {}
        self.due: dict[tuple[str, str, str], float] = {}
        self.running: set[tuple[str, str, str]] = set()
        self.results: list[HealthCheckResult] = []

    async def call(self, ask: Callable[[], T]) -> T:
        """A request to the holder (blocking socket I/O) off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(None, ask)

    async def refresh(self) -> None:
        reply = await self.call(partial(asks.holder_health_checks, self.holder, self.lb, self.az))
        checks = {(c["lb"], c["tg"], c["key"]): c for c in reply["checks"]}
        now = time.monotonic()
        for key in checks:
            self.due.setdefault(key, now)  # a new target is checked at once
        for key in list(self.due):
            if key not in checks:
                del self.due[key]
        self.plan = checks

    async def check(self, key: tuple[str, str, str]) -> None:
        c = self.plan[key]
        try:
            # TCP, HTTP, SSL (a TLS handshake) or HTTPS; TLS certificates are not verified.
            res = await checks.check(
                c["protocol"],
                c["ip"],
                c["port"],
                c["timeout_s"],
                c["path"],
                c["matcher"],
                self.source,
                c.get("headers"),
            )
        except Exception as exc:  # a broken check is a failed check, never a dead checker
            res = CheckResult(False, f"{type(exc).__name__}: {exc}", 0.0)
        self.results.append(
            {
                "lb": key[0],
                "tg": key[1],
                "key": key[2],
                "ok": res.ok,
                "detail": res.detail,
                "latency_ms": round(res.latency_ms, 3),
                "time": time.time(),
            }
        )
        self.running.discard(key)

    async def run(self) -> None:
        next_refresh = 0.0
        while True:
            now = time.monotonic()
            if now >= next_refresh:
                try:
                    await self.refresh()
                except Exception as exc:
                    print(
                        f"health checker: cannot reach the holder: {exc}",
                        file=sys.stderr,
                        flush=True,
                    )
                next_refresh = now + REFRESH_S
            for key, due in list(self.due.items()):
                if due <= now and key not in self.running and key in self.plan:
                    self.running.add(key)
                    self.due[key] = due + float(self.plan[key]["interval_s"])
                    if self.due[key] < now:  # fell behind (a slow check): do not burst
                        self.due[key] = now + float(self.plan[key]["interval_s"])
                    asyncio.get_running_loop().create_task(self.check(key))
            if self.results:
                batch, self.results = self.results, []
                try:
                    await self.call(partial(asks.holder_health_report, self.holder, batch))
                except Exception as exc:
                    print(f"health checker: report lost: {exc}", file=sys.stderr, flush=True)
            await asyncio.sleep(0.05)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--lb", required=True)
    ap.add_argument("--az", required=True)
    ap.add_argument("--source", required=True, help="the node's address (checks come from it)")
    ap.add_argument("--holder", required=True, help="the lab holder's socket")
    a = ap.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(Checker(a.lb, a.az, a.source, a.holder).run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
