"""`testbed demo`: the quick start's main job on the embedded default template.

Brings the stack up, shows its hosts and addresses, measures which host reaches which address
and compares it with what AWS allows, fetches a page through the internet gateway, and tears
the lab down. Returns 0 only if the lab behaved as AWS does.
"""

from __future__ import annotations

import contextlib
import json
import time

from testbed.cli.common import hosts_table
from testbed.lab import reachability
from testbed.lab.api import Lab, start_lab, stop_lab
from testbed.lab.events import Event
from testbed.paths import DEFAULT_TEMPLATE
from testbed.plan.network import NetworkPlan
from testbed.waiting import WaitTimeout


def _print_event(ev: Event) -> None:
    print(ev.line(), flush=True)


def demo(
    template: str | None = None,
    params: dict[str, str] | None = None,
    name: str = "demo",
    keep: bool = False,
) -> int:
    """Run the demonstration; returns the process exit code."""
    template = template or str(DEFAULT_TEMPLATE)
    print(f"== 1. bring up {template} as lab {name!r}", flush=True)
    started = time.monotonic()
    # Without --keep the lab is this command's: torn down however the command ends.
    state = start_lab(template, params, name=name, on_event=_print_event, owned=not keep)
    up_s = time.monotonic() - started
    ok = False
    try:
        lab = Lab(name)
        plan = lab.plan
        print(f"\nready in {up_s:.1f} s, {state.get('datapath')} datapath\n")
        print(f"== 2. hosts and addresses\n{hosts_table(state['hosts'])}\n", flush=True)
        print("== 3. reachability (ping from every host to every address)", flush=True)
        why = reachability.verdicts(plan)  # AWS's verdict and, for a drop, which layer
        want = {pair: v.passes for pair, v in why.items()}
        got = reachability.measure(lab, plan)
        print(reachability.format_matrix(plan, got, want))
        diffs = reachability.differences(got, want, why)
        if diffs:
            print("\nNOT as AWS allows:\n  " + "\n  ".join(diffs))
        else:
            print(
                "\nok = reachable, -- = not; every cell matches AWS's rules (VPC local "
                "route,\ninternet gateway 1:1 NAT for public instances, nothing to private "
                "ones,\nsecurity groups and network ACLs). `testbed reach` says which layer "
                "drops what."
            )
        ok = not diffs
        ok &= _http_demo(lab, plan)
    finally:
        if keep:
            print(f"\nlab {name} left running: testbed down {name}")
        else:
            t = time.monotonic()
            stop_lab(name)
            print(f"\n== 5. lab {name} torn down in {time.monotonic() - t:.1f} s")
    print("\ndemo " + ("passed" if ok else "FAILED"))
    return 0 if ok else 1


def _http_demo(lab: Lab, plan: NetworkPlan) -> bool:
    client = next((h for h in plan.hosts if h.kind == "client"), None)
    web = next((h for h in plan.hosts if h.public_ip and h.role == "http-backend"), None)
    if client is None or web is None:
        return True
    print(
        f"\n== 4. HTTP from {client.name} ({client.ip}) to {web.name}'s public address "
        f"{web.public_ip}",
        flush=True,
    )
    tries: list[str] = []

    def answered() -> str | None:
        tries.append(lab.host(client.name).cmd(f"curl -s -m 2 http://{web.public_ip}/"))
        return tries[-1] if tries[-1].strip().startswith("{") else None

    with contextlib.suppress(WaitTimeout):  # reported below with what was seen
        lab.wait_for(answered, 10, f"{web.name} to answer", interval=0.25)
    out = tries[-1] if tries else ""
    try:
        answer = json.loads(out)
    except ValueError:
        print(f"no answer: {out.strip()[:200]}")
        return False
    print(json.dumps(answer, indent=1))
    seen = answer.get("client", {}).get("ip")
    print(
        f"{answer.get('instance')} ({answer.get('ip')}) answered and saw the client as "
        f"{seen}: the internet gateway translated {web.public_ip} -> {web.ip}."
    )
    return answer.get("instance") == web.name and seen == client.ip
