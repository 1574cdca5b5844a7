"""`testbed plan`: the change set of updating a running lab to a new template (read-only)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from testbed.cli.common import add_params, add_template, params_dict, subcommand
from testbed.errors import BadInput
from testbed.lab.stack_source import running_template
from testbed.model.changeset import plan_document, render
from testbed.model.changeset_diff import StackTemplate, compute_change_set

EPILOG = """\
examples:
  testbed plan alb templates/alb.yaml -p CanaryWeight=50
  testbed plan alb my-alb.yaml --json | jq '.Changes[].ResourceChange.Replacement'
  testbed plan alb my-alb.yaml --out alb.plan.json     save it for testbed update --plan

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


def cmd_plan(args: Any) -> int:
    source = running_template(args.name)
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
        stack_name=args.name,
        region=source.region,
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
        Path(args.out).write_text(json.dumps(document, indent=1) + "\n")
    if args.json:
        print(json.dumps(change_set.to_dict(), indent=1))
    else:
        print(render(change_set))
        if args.out:
            print(f"plan saved to {args.out}")
    return 0
