"""Lab bring-up and teardown time and memory against the number of hosts (up to 100).

For each size, a template with that many instances (spread over two AZs, plus one internet
client) is generated into the results directory, brought up and torn down `repeats` times.
Writes bench_lab.csv (one row per run), summary.csv (median per size) and bench_lab.png.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from testbed import naming
from testbed.errors import LabError
from testbed.lab import system
from testbed.lab.api import random_name, start_lab, stop_lab
from testbed.lab.procs import ProcessJournal
from testbed.lab.teardown import leftovers
from testbed.paths import DEFAULT_TEMPLATE
from testbed.results import ResultsDir

if TYPE_CHECKING:  # pandas is imported where the data is (the CLI starts faster)
    import pandas as pd

TEMPLATE = str(DEFAULT_TEMPLATE)
PARAMS = {
    "sizes": ([4, 10, 25, 50, 100], "numbers of instances to try"),
    "repeats": (3, "runs per size"),
    "role": ("none", "role of the generated instances (none or http-backend)"),
    "seed": (None, "recorded for re-runs (the benchmark itself is deterministic)"),
}


def generated_template(n: int, role: str) -> str:
    """A stack with n instances over two AZs (two subnets each) and one internet client."""
    lines = [
        'AWSTemplateFormatVersion: "2010-09-09"',
        f"Description: bench_lab stack with {n} instances",
        "Resources:",
        "  VPC: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.0.0.0/16}}",
        "  IGW: {Type: AWS::EC2::InternetGateway}",
        "  Attach: {Type: AWS::EC2::VPCGatewayAttachment, "
        "Properties: {VpcId: !Ref VPC, InternetGatewayId: !Ref IGW}}",
        "  Rt: {Type: AWS::EC2::RouteTable, Properties: {VpcId: !Ref VPC}}",
        "  Default: {Type: AWS::EC2::Route, DependsOn: Attach, Properties: "
        "{RouteTableId: !Ref Rt, DestinationCidrBlock: 0.0.0.0/0, GatewayId: !Ref IGW}}",
    ]
    subnets = []
    for i, az in enumerate(["a", "a", "b", "b"]):
        name = f"Sub{i}"
        subnets.append(name)
        public = "true" if i % 2 == 0 else "false"
        lines.append(
            f"  {name}: {{Type: AWS::EC2::Subnet, Properties: {{VpcId: !Ref VPC, "
            f"AvailabilityZone: us-east-1{az}, CidrBlock: 10.0.{i}.0/24, "
            f"MapPublicIpOnLaunch: {public}}}}}"
        )
        if i % 2 == 0:
            lines.append(
                f"  Assoc{i}: {{Type: AWS::EC2::SubnetRouteTableAssociation, "
                f"Properties: {{SubnetId: !Ref {name}, RouteTableId: !Ref Rt}}}}"
            )
    for k in range(n):
        lines.append(
            f"  Web{k}: {{Type: AWS::EC2::Instance, Metadata: {{Lab: {{Role: {role}}}}},"
            f" Properties: {{SubnetId: !Ref {subnets[k % 4]}}}}}"
        )
    lines.append("  Client: {Type: Lab::Internet::Client}")
    return "\n".join(lines) + "\n"


def mem_available_kb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1])
    return 0


def rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def lab_rss_kb(name: str, state: dict[str, Any]) -> int:
    """Resident memory of the lab's own processes: holder, controller, host processes."""
    pids = {state["pid"]}
    pids |= {r.pid for r in ProcessJournal(naming.lab_dir(name)).records()}
    for ns in system.list_netns():
        if ns.startswith(naming.prefix(name)):
            pids |= set(system.netns_pids(ns))
    return sum(rss_kb(p) for p in pids)


def ovs_rss_kb() -> int:
    out = system.run(["pidof", "ovs-vswitchd"], check=False).stdout.split()
    return sum(rss_kb(int(p)) for p in out)


def run(params: dict[str, Any], results: ResultsDir) -> dict[str, Any]:
    import pandas as pd

    rows = []
    for n in params["sizes"]:
        template = results.file(f"stack-{n}.yaml")
        template.write_text(generated_template(n, params["role"]))
        for rep in range(params["repeats"]):
            name = random_name("bl")
            mem0, ovs0 = mem_available_kb(), ovs_rss_kb()
            t0 = time.monotonic()
            try:
                state = start_lab(str(template), name=name)
            except LabError as exc:
                # Where one machine stops carrying a lab is a result too: recorded, and no
                # larger size is tried. (A lab that failed to start cleaned itself up.)
                failed = {"hosts": n + 1, "instances": n, "repeat": rep, "error": str(exc)}
                failed["up_s"] = round(time.monotonic() - t0, 3)
                rows.append(failed)
                print(
                    f"  {n:4d} instances, run {rep + 1}: FAILED after "
                    f"{failed['up_s']:.0f} s: {exc}",
                    flush=True,
                )
                break
            try:
                up_s = time.monotonic() - t0
                ready_s = state["ready"] - state["created"]
                lab_kb = lab_rss_kb(name, state)
                used_kb = mem0 - mem_available_kb()
                ovs_kb = ovs_rss_kb() - ovs0
            finally:
                t1 = time.monotonic()
                stop_lab(name)
                down_s = time.monotonic() - t1
            left = sum(len(v) for v in leftovers(name).values())
            row = {
                "hosts": n + 1,
                "instances": n,
                "repeat": rep,
                "up_s": round(up_s, 3),
                "holder_ready_s": round(ready_s, 3),
                "down_s": round(down_s, 3),
                "lab_rss_mb": round(lab_kb / 1024, 1),
                "ovs_rss_delta_mb": round(ovs_kb / 1024, 1),
                "mem_used_mb": round(used_kb / 1024, 1),
                "leftovers": left,
                "datapath": state.get("datapath"),
            }
            rows.append(row)
            print(
                f"  {n:4d} instances, run {rep + 1}: up {up_s:5.2f} s, down {down_s:5.2f} s,"
                f" lab RSS {row['lab_rss_mb']:7.1f} MB, machine +{row['mem_used_mb']:.0f} MB",
                flush=True,
            )
        if rows and rows[-1].get("error"):
            break
    df = pd.DataFrame(rows)
    df.to_csv(results.file("bench_lab.csv"), index=False)
    failures = df[df["error"].notna()] if "error" in df else df.iloc[0:0]
    df = df[df["error"].isna()] if "error" in df else df
    if df.empty:
        raise LabError(f"no lab came up, the smallest size failed: {failures.iloc[0]['error']}")
    summary = (
        df.groupby("hosts")
        .agg(
            up_s=("up_s", "median"),
            down_s=("down_s", "median"),
            lab_rss_mb=("lab_rss_mb", "median"),
            mem_used_mb=("mem_used_mb", "median"),
            ovs_rss_delta_mb=("ovs_rss_delta_mb", "median"),
            leftovers=("leftovers", "sum"),
        )
        .reset_index()
    )
    summary.to_csv(results.file("summary.csv"), index=False)
    print("\nmedian per size:\n" + summary.to_string(index=False))
    _plot(summary, results.file("bench_lab.png"))
    default = _default_template_run()
    broke = None
    if len(failures):
        first = failures.iloc[0]
        broke = {"instances": int(first["instances"]), "error": str(first["error"])}
        print(f"\none machine stopped at {broke['instances']} instances: {broke['error']}")
    return {
        "median_by_hosts": summary.to_dict(orient="records"),
        "failed_at": broke,
        "default_template": default,
    }


def _default_template_run() -> dict[str, float]:
    """The issue's reference point: the embedded default template, up and down once."""
    name = random_name("bd")
    t0 = time.monotonic()
    try:
        start_lab(TEMPLATE, name=name)
        up = time.monotonic() - t0
    finally:
        t1 = time.monotonic()
        stop_lab(name)
        down = time.monotonic() - t1
    print(f"\ndefault template: up {up:.2f} s, down {down:.2f} s")
    return {"up_s": round(up, 3), "down_s": round(down, 3)}


def _plot(summary: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(summary["hosts"], summary["up_s"], "o-", label="up")
    ax1.plot(summary["hosts"], summary["down_s"], "s-", label="down")
    ax1.set_xlabel("hosts")
    ax1.set_ylabel("seconds (median)")
    ax1.set_title("bring-up and teardown time")
    ax1.legend()
    ax2.plot(summary["hosts"], summary["lab_rss_mb"], "o-", label="lab processes RSS")
    ax2.plot(summary["hosts"], summary["mem_used_mb"], "s-", label="machine memory used")
    ax2.set_xlabel("hosts")
    ax2.set_ylabel("MB (median)")
    ax2.set_title("memory")
    ax2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
