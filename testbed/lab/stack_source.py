"""What a running lab was built from: its template text, parameters and region.

    source = running_template("alb")
    source.text, source.params, source.digest

`testbed plan` compares a new template with this; `testbed update --plan FILE` checks that a
saved plan was made against this same source (testbed.model.changeset.check_plan_base).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testbed import naming
from testbed.errors import BadInput
from testbed.lab.state import holder_alive, read_state
from testbed.model import load_model_text
from testbed.model.changeset import template_digest
from testbed.model.lab_view import LabStackModel, LabView
from testbed.naming import PLAN_FILE
from testbed.plan.network import NetworkPlan


@dataclass(frozen=True)
class RunningTemplate:
    """The template a lab runs: its file (for messages), text, parameters and region."""

    path: str
    text: str
    params: dict[str, Any] = field(default_factory=dict)
    region: str = "us-east-1"
    note: str | None = None  # why the text may not be what the lab was built from

    @property
    def digest(self) -> str:
        return template_digest(self.text, self.params)


def running_template(name: str, stack: str | None = None) -> RunningTemplate:
    """The template of running lab `name` (of its stack `stack` when that is not the lab's
    first); BadInput if there is no such running lab or stack."""
    naming.validate_lab_name(name)
    state = read_state(naming.lab_dir(name))
    if state is None:
        raise BadInput(f"no lab named {name!r}", hint="testbed status lists the labs")
    if not holder_alive(state):
        raise BadInput(f"lab {name!r} is not running", hint="testbed status lists the labs")
    if stack and stack != name:
        records = {r.get("name"): r for r in state.get("stacks") or []}
        rec = records.get(stack)
        if rec is None:
            raise BadInput(
                f"Stack with id {stack} does not exist",
                hint=f"the stacks of lab {name}: {', '.join(map(str, records)) or name}",
            )
        text = rec.get("template_text")
        if not isinstance(text, str):
            raise BadInput(f"stack {stack} of lab {name} does not keep its template's text")
        return RunningTemplate(
            str(rec.get("template") or ""),
            text,
            dict(rec.get("params") or {}),
            str(state.get("region") or "us-east-1"),
        )
    path = str(state.get("template") or "")
    text = state.get("template_text")
    note = None
    if not isinstance(text, str):
        # A lab built before labs kept their template's text: its file as it is now.
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise BadInput(
                f"lab {name} does not keep its template's text and its file cannot be read: {err}"
            ) from None
        note = (
            f"lab {name} does not keep its template's text; {path} is read as it is now "
            "(if it was edited since the lab was built, the plan shows less)"
        )
    return RunningTemplate(
        path,
        text,
        dict(state.get("params") or {}),
        str(state.get("region") or "us-east-1"),
        note,
    )


def lab_view(name: str, excluding: str) -> LabView | None:
    """The lab `name` as its stack `excluding` sees it (the other stacks' models rebuilt
    from the templates they keep, in creation order), None when it has no other stack:
    what `testbed plan --stack S` validates the new template in."""
    state = read_state(naming.lab_dir(name)) or {}
    records = [r for r in state.get("stacks") or [] if isinstance(r.get("template_text"), str)]
    if len(records) < 2:
        return None
    plan = NetworkPlan.from_json((naming.lab_dir(name) / PLAN_FILE).read_text())
    spaces = {v.name: v.space for v in plan.vpcs}
    region = str(state.get("region") or "us-east-1")
    built: list[LabStackModel] = []
    for rec in records:
        if rec.get("name") == excluding:
            continue
        model = load_model_text(
            rec["template_text"],
            filename=str(rec.get("template") or rec.get("name")),
            params=dict(rec.get("params") or {}),
            stack_name=str(rec["name"]),
            region=region,
            qualifier=str(rec.get("qualifier") or ""),
            lab=LabView.of(built, vpc_spaces=spaces) if built else None,
        )
        built.append(LabStackModel(str(rec["name"]), str(rec.get("qualifier") or ""), model))
    return LabView.of(built, vpc_spaces=spaces)
