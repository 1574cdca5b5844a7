"""Requests/s of the http-backend role on one core, with and without keep-alive.

The backend (one asyncio process) is pinned to one CPU and wrk to the other. Measured on the
backend's own host (loopback: the server alone) and from another host of the same subnet
(through the lab's switch). Writes bench_backend.csv, summary.csv and bench_backend.png.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from testbed.lab.api import Lab, random_name
from testbed.lab.procs import ProcessJournal
from testbed.lab.programs import running_role
from testbed.paths import DEFAULT_TEMPLATE
from testbed.results import ResultsDir
from testbed.traffic import wrk

if TYPE_CHECKING:  # pandas is imported where the data is (the CLI starts faster)
    import pandas as pd

TEMPLATE = str(DEFAULT_TEMPLATE)
PARAMS = {
    "seconds": (5.0, "length of each wrk run"),
    "repeats": (3, "runs per case"),
    "connections": (50, "wrk connections"),
    "seed": (None, "recorded for re-runs"),
}
BACKEND, PEER = "WebA2", "WebA1"  # WebA1 is not in WebA2's subnet: through the router


def run(params: dict[str, Any], results: ResultsDir) -> dict[str, Any]:
    import os

    import pandas as pd

    rows = []
    cpus = sorted(os.sched_getaffinity(0))
    with Lab.up(TEMPLATE, name=random_name("bb")) as lab:
        plan = lab.plan
        backend = plan.host(BACKEND)
        recs = running_role(ProcessJournal(lab.dir), backend)
        server_cpu, client_cpu = cpus[-1], cpus[0]
        for r in recs:
            os.sched_setaffinity(r.pid, {server_cpu})
        url = f"http://{backend.ip}/"
        cases = [("loopback", BACKEND), ("via switch", PEER)]
        for where, client in cases:
            for keepalive in (True, False):
                for rep in range(params["repeats"]):
                    res = _pinned_wrk(lab, client, url, params, keepalive, client_cpu)
                    row = {
                        "path": where,
                        "keepalive": keepalive,
                        "repeat": rep,
                        "requests_per_second": res["requests_per_second"],
                        "p50_ms": res.get("p50_ms"),
                        "p99_ms": res.get("p99_ms"),
                        "errors": res["errors"],
                        "server_cpu": server_cpu,
                    }
                    rows.append(row)
                    print(
                        f"  {where:10s} keep-alive={keepalive!s:5s} run {rep + 1}: "
                        f"{row['requests_per_second']:9.0f} req/s, p99 {row['p99_ms']} ms",
                        flush=True,
                    )
    df = pd.DataFrame(rows)
    df.to_csv(results.file("bench_backend.csv"), index=False)
    summary = (
        df.groupby(["path", "keepalive"])
        .agg(
            requests_per_second=("requests_per_second", "median"),
            p99_ms=("p99_ms", "median"),
            errors=("errors", "sum"),
        )
        .reset_index()
    )
    summary.to_csv(results.file("summary.csv"), index=False)
    print("\nmedian:\n" + summary.to_string(index=False))
    _plot(summary, results.file("bench_backend.png"))
    return {"median": summary.to_dict(orient="records")}


def _pinned_wrk(
    lab: Lab, client: str, url: str, params: dict[str, Any], keepalive: bool, cpu: int
) -> dict[str, Any]:
    import os

    # wrk is started by `ip netns exec`; pin this process's children by pinning ourselves.
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        return wrk(
            lab,
            client,
            url,
            seconds=params["seconds"],
            connections=params["connections"],
            keepalive=keepalive,
        )
    finally:
        os.sched_setaffinity(0, before)


def _plot(summary: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    labels = [
        f"{p}\n{'keep-alive' if k else 'new conn.'}"
        for p, k in zip(summary["path"], summary["keepalive"])
    ]
    ax.bar(labels, summary["requests_per_second"])
    ax.axhline(2000, color="red", linestyle="--", label="target 2,000 req/s")
    ax.set_ylabel("requests/s (median)")
    ax.set_title("http-backend on one core")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
