"""Golden plans: a digest of the plan.json of every example template (templates/ and
tests/integration/templates/), built as a lab's first stack (qualifier ""). Issue 14 (stacks
added to a lab get qualified names) must change nothing for it: the digests are those of the
plans the code at bdd6b09 built, before qualifiers existed. Regenerate only on purpose:
  .venv/bin/python -m tests.unit.plan_golden > tests/unit/plan_golden.json
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from testbed.model import load_model
from testbed.plan.network import NetworkPlan, build_plan

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).with_name("plan_golden.json")
LAB = "lab"
ZONE_BASE = 100


def template_paths() -> list[str]:
    """Every example template, relative to the repository root, sorted."""
    return sorted(
        str(p.relative_to(ROOT))
        for d in ("templates", "tests/integration/templates")
        for p in (ROOT / d).rglob("*")
        if p.suffix in (".yaml", ".yml", ".json")
    )


def plan_of(rel: str, qualifier: str = "") -> NetworkPlan:
    """The plan of one example template as stack "lab" of lab "lab" (KeyName given to the
    AWS samples, which have no default for it); errors propagate."""
    path = ROOT / rel
    params = {"KeyName": "lab-key"} if "KeyName:" in path.read_text() else {}
    model = load_model(str(path), params, stack_name=LAB, qualifier=qualifier)
    return build_plan(model, LAB, zone_base=ZONE_BASE, qualifier=qualifier)


def plan_text(rel: str) -> str:
    """plan.json of one template, or "ERROR <type>: <message>" for a template that is bad input
    on purpose (the message names the file relative to the root)."""
    try:
        return plan_of(rel).to_json()
    except Exception as err:  # a bad template's error is golden too
        message = str(err).replace(f"{ROOT}{os.sep}", "")
        return f"ERROR {type(err).__name__}: {message}"


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def digests() -> dict[str, str]:
    return {rel: digest(plan_text(rel)) for rel in template_paths()}


if __name__ == "__main__":
    print(json.dumps(digests(), indent=1, sort_keys=True))
