"""`testbed plan`: the change set of updating a running lab to a new template (read-only)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from testbed import naming
from testbed.cli.common import add_params, add_template, params_dict, subcommand
from testbed.errors import BadInput
from testbed.lab.stack_source import lab_view, running_template
from testbed.lab.state import read_state
from testbed.model.changeset import plan_document, render
from testbed.model.changeset_diff import StackTemplate, compute_change_set

EPILOG = """\
examples:
  testbed plan alb templates/alb.yaml -p CanaryWeight=50
  testbed plan alb my-alb.yaml --json | jq '.Changes[].ResourceChange.Replacement'
  testbed plan alb my-alb.yaml --out alb.plan.json     save it for testbed update --plan
  testbed plan net app-v2.yaml --stack app               a stack added with up --into

Like create-change-set + describe-change-set: one row per logical id, Add, Modify or Remove.
A Modify shows its Replacement (True, False or Conditional, as AWS computes it from the
changed properties' RequiresRecreation: Always, Conditionally or Never, taken from AWS's
resource schemas and the CloudFormation reference's "Update requires" lines) and one line per
changed property with its Evaluation (Static, or Dynamic when the value is only known once a
resource it refers to is replaced) and ChangeSource (DirectModification, ParameterReference,
ResourceReference, ResourceAttribute). The last column says what the lab would do: replaced,
interrupted (e.g. an instance stopped for a new InstanceType) or in place.

Nothing in the lab changes. A template with errors exits 2 with file:line, as testbed up.
A saved plan records a digest of the template and parameters the lab runs: applying it after
the lab changed is refused."""


def register(sub: Any) -> None:
    p = subcommand(
        sub,
        "plan",
        cmd_plan,
        "what updating a running lab to a new template would change (a change set)",
        epilog=EPILOG,
    )
    p.add_argument("name", help="lab name")
    add_template(p, "the new template (YAML or JSON)")
    add_params(p)
    p.add_argument("--json", action="store_true", help="the change set as AWS's JSON")
    p.add_argument("--out", metavar="FILE", help="save the plan (JSON) for testbed update --plan")
    p.add_argument(
        "--stack",
        metavar="S",
        help="a stack of the lab other than its first (testbed stacks LAB lists them); its "
        "imports resolve to the other stacks' exports",
    )


def other_exports(lab: str, stack: str) -> dict[str, Any]:
    """The exports of the lab's stacks other than `stack` (what its Fn::ImportValue reads)."""
    state = read_state(naming.lab_dir(lab)) or {}
    out: dict[str, Any] = {}
    for rec in state.get("stacks") or []:
        if rec.get("name") != stack:
            out.update(rec.get("exports") or {})
    return out


def qualifier_of(lab: str, stack: str) -> str:
    """Plan-name qualifier of stack `stack` of lab `lab` ("" for its first stack)."""
    state = read_state(naming.lab_dir(lab)) or {}
    for rec in state.get("stacks") or []:
        if rec.get("name") == stack:
            return str(rec.get("qualifier") or "")
    return ""


def cmd_plan(args: Any) -> int:
    source = running_template(args.name, args.stack)
    stack = args.stack or args.name
    if source.note:
        print(f"note: {source.note}", file=sys.stderr)
    try:
        text = Path(args.template).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise BadInput(f"cannot read the template: {err}", file=args.template) from None
    params = params_dict(args.params)
    change_set = compute_change_set(
        StackTemplate(source.text, source.path, source.params),
        StackTemplate(text, args.template, params),
        stack_name=stack,
        region=source.region,
        imports=other_exports(args.name, stack),
        lab=lab_view(args.name, stack) if args.stack else None,
        qualifier=qualifier_of(args.name, stack),
    )
    if args.out:
        document = plan_document(
            change_set,
            lab=args.name,
            base_digest=source.digest,
            template=str(Path(args.template).resolve()),
            template_text=text,
            params=params,
        )
        if args.stack and args.stack != args.name:
            document["Stack"] = args.stack
        Path(args.out).write_text(json.dumps(document, indent=1) + "\n")
    if args.json:
        print(json.dumps(change_set.to_dict(), indent=1))
    else:
        print(render(change_set))
        if args.out:
            print(f"plan saved to {args.out}")
    return 0
