"""testbed validate: check a template without building anything."""

from __future__ import annotations

from typing import Any

from testbed.cli.common import add_params, add_template, params_dict, subcommand
from testbed.model import load_model
from testbed.plan.network import build_plan


def register(sub: Any) -> None:
    p = subcommand(
        sub,
        "validate",
        run,
        "check a template; nothing is started",
        epilog="examples:\n  testbed validate templates/default.yaml\n"
        "  testbed validate my.yaml --param VpcCidr=10.1.0.0/16\n\n"
        "Errors name the file, the line and the resource; exit code 2.",
    )
    add_template(p)
    add_params(p)
    p.add_argument("--region", default="us-east-1", help="AWS::Region (default us-east-1)")


def run(args: Any) -> int:
    model = load_model(args.template, params_dict(args.params), region=args.region)
    build_plan(model, "check")  # layout checks the lab itself makes
    kinds: dict[str, int] = {}
    for t in model.resource_types.values():
        kinds[t] = kinds.get(t, 0) + 1
    print(
        f"{args.template}: valid — {len(model.resource_types)} resources, "
        f"{len(model.azs)} AZs ({', '.join(model.azs)})"
    )
    for t, n in sorted(kinds.items()):
        print(f"  {n:3d} {t}")
    if model.ignored:
        print(
            "ignored (AWS-only, no meaning in the lab): "
            + ", ".join(f"{i.logical_id}.{i.property}" for i in model.ignored)
        )
    return 0
