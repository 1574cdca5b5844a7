"""Golden flow sets: every plan the unit tests and the example templates make, and a digest of
the flows the whole controller logic (forwarding, NLBs, groups and ACLs) gives each switch.
A lab with one address space must keep exactly these flows (issue 14: VPC-aware forwarding
changes nothing for it). Regenerate only on purpose:
  .venv/bin/python -m tests.unit.flows_golden > tests/unit/flows_golden.json
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

from testbed.controllers.forwarding import Forwarding
from testbed.controllers.nlb import NlbLogic
from testbed.controllers.security import SecurityLogic
from testbed.model import load_model
from testbed.plan.network import NetworkPlan, build_plan
from tests.handmade import two_az_model
from tests.nlb_fixture import nlb_plan
from tests.ports_fixture import nat_plan, with_interfaces
from tests.security_fixture import acl, base_plan, entry, group, secured, tcp

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
GOLDEN = Path(__file__).with_name("flows_golden.json")


def _secured() -> NetworkPlan:
    web = group("Web", ingress=(tcp(80), tcp(22, cidr="10.0.0.0/16")))
    lb = group("Lb", ingress=(tcp(80),))
    plan = secured(
        (web, lb),
        {"WebA2": ("Web",), "WebB2": ("Web",), "WebA1": ("Web", "Lb")},
        (acl("Acl", ("PrivA",), entry(100, False, 6, ports=(80, 80)), entry(100, True)),),
    )
    return plan


def _secured_nlb() -> NetworkPlan:
    base = nlb_plan()
    hosts = {h.name for h in base.hosts}
    members: dict[str, tuple[str, ...]] = {n: ("Web",) for n in ("NLB-1a", "WebA2") if n in hosts}
    return secured((group("Web", ingress=(tcp(80),)),), members, plan=base)


def _template(name: str, params: dict[str, str] | None = None) -> Callable[[], NetworkPlan]:
    def make() -> NetworkPlan:
        stem = Path(name).stem
        return build_plan(load_model(str(TEMPLATES / name), params, stack_name=stem), stem)

    return make


PLANS: dict[str, Callable[[], NetworkPlan]] = {
    "two_az": lambda: build_plan(two_az_model(), "t"),
    "two_az_no_igw": lambda: build_plan(two_az_model(with_igw=False), "t"),
    "security_base": base_plan,
    "secured": _secured,
    "nlb": nlb_plan,
    "nlb_cross_snat_sticky": lambda: nlb_plan(True, False, "source_ip"),
    "nlb_internal": lambda: nlb_plan(scheme="internal"),
    "nlb_secured": _secured_nlb,
    "nat": nat_plan,
    "nat_private": lambda: nat_plan(public=False),
    "interfaces": lambda: with_interfaces(build_plan(two_az_model(), "t")),
    **{
        f"template:{n}": _template(n)
        for n in ("alb.yaml", "classic.yaml", "default.yaml", "gwlb.yaml", "nlb.yaml")
    },
}


def digests(plan: NetworkPlan) -> dict[str, str]:
    """switch name -> sha256 of its sorted flows (forwarding + NLB + security)."""
    fw, nlb, sec = Forwarding(plan), NlbLogic(plan, table_size=61), SecurityLogic(plan)
    out = {}
    for s in plan.switches:
        flows = fw.flows_for(s.dpid) + nlb.flows_for(s.dpid) + sec.flows_for(s.dpid)
        text = "\n".join(sorted(repr(f) for f in flows))
        out[s.name] = f"{len(flows)}:{hashlib.sha256(text.encode()).hexdigest()}"
    return out


def everything() -> dict[str, dict[str, str]]:
    return {name: digests(make()) for name, make in PLANS.items()}


if __name__ == "__main__":
    print(json.dumps(everything(), indent=1, sort_keys=True))
