"""testbed validate: check templates without building anything.

One template: its errors (all of them, exit 2), or what the lab will make of it: each resource
type with what the lab does with it (emulated / inert / refused, from testbed.model.catalog).
--lint adds cfn-lint's findings; --summary takes many files and directories, one line each.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Any

from testbed.cli.common import add_params, params_dict, subcommand, table
from testbed.cli.lint import Finding, counts, lint_text
from testbed.cli.validate_many import STATUSES, Verdict, judge, template_files
from testbed.errors import BadInput
from testbed.model import catalog, load_model
from testbed.model.certificate_names import name_warnings
from testbed.model.resources.custom import lab_attributes
from testbed.paths import resolve_template
from testbed.plan.network import build_plan
from testbed.template import transforms
from testbed.template.yaml_loader import load_text

EPILOG = """\
examples:
  testbed validate templates/default.yaml
  testbed validate my.yaml --param VpcCidr=10.1.0.0/16 --region eu-west-1
  testbed validate my.yaml --lint          # also AWS's linter (cfn-lint) on the file
  testbed validate ~/cfn-samples --summary # every template under a directory, one line each

What the lab does with each resource type:
  emulated  built in the lab with real packets (VPCs, subnets, instances, load balancers
            (ALB, NLB, GWLB, classic), Auto Scaling groups and their launch templates,
            policies and CloudWatch alarms...)
  inert     accepted with no packets (IAM, logs, SNS, SQS, S3, KMS, ...): a CREATE_COMPLETE
            event says "not emulated"; Ref and GetAtt give AWS-shaped values (ARNs, names)
  not emulated  accepted like inert ones so the rest comes up, but their packets are missing
            (containers, databases, IPv6 routes, alarms on metrics the lab has not...):
            a warning here and at up says what is missing
  refused   what cannot run here (nested stacks, macros): an error naming the resource
A custom resource (Custom::*) runs a Lambda function in AWS: the lab refuses it unless its
Metadata: {Lab: {Attributes: {...}, PhysicalId: ...}} gives what the function would return.
Transform: AWS::Serverless-2016-10-31 templates go through AWS's SAM translator first.

--lint runs cfn-lint's rules and prints their findings (rule, line, message) beside the
lab's. They are advice: the exit code is the lab's own verdict (2 when the template is
invalid), whatever cfn-lint finds.

--summary validates many templates (files, or directories searched for *.yaml, *.yml,
*.json and *.template files that look like CloudFormation) and prints one line each, then a
count. A parameter without a Default is one AWS would ask for: the line says "needs values
for: A, B" and the template is checked with stand-in values (used for nothing else); if the
rest is valid it is "valid with parameters"; when a stand-in does not fit the template's
constraints the line is "needs values for: ..." only ("needs parameters"). Exit 0 when every
template is valid (with or without parameters), 2 otherwise. --param is for one template.

Errors name the file, the line and the resource; exit code 2."""


def register(sub: Any) -> None:
    p = subcommand(
        sub,
        "validate",
        run,
        "check templates; nothing is started",
        epilog=EPILOG,
    )
    p.add_argument(
        "templates",
        nargs="+",
        metavar="TEMPLATE",
        help="a template file (YAML or JSON) or an embedded template's name; with --summary, "
        "any number of files and directories",
    )
    add_params(p)
    p.add_argument("--region", default="us-east-1", help="AWS::Region (default us-east-1)")
    p.add_argument("--lint", action="store_true", help="also run cfn-lint's rules on the file")
    p.add_argument(
        "--summary", action="store_true", help="one line per template (files and directories)"
    )


def run(args: Any) -> int:
    if args.summary:
        return _summary(args)
    if len(args.templates) > 1 or Path(args.templates[0]).is_dir():
        raise BadInput(
            "validate takes one template; for several files or a directory add --summary",
            hint=f"testbed validate {' '.join(args.templates)} --summary",
        )
    path = resolve_template(args.templates[0])
    findings = _lint(path, args.region) if args.lint else []
    _print_types(path, args.region)
    try:
        model = load_model(path, params_dict(args.params), region=args.region)
        build_plan(model, "check")  # layout checks the lab itself makes
    except BadInput:
        _print_findings(findings, args.lint)
        raise
    print(
        f"{path}: valid — {len(model.resource_types)} resources, "
        f"{len(model.azs)} AZs ({', '.join(model.azs)})"
    )
    inert = sorted(lid for lid, r in model.inert.items() if r.kind != "not-emulated")
    missing = sorted(lid for lid, r in model.inert.items() if r.kind == "not-emulated")
    if inert:
        print(f"inert ({len(inert)}, created with a 'not emulated' event): " + ", ".join(inert))
    if missing:
        print(
            f"warning: {len(missing)} resources are not emulated — their packets are missing "
            "from the lab (see the notes above): " + ", ".join(missing)
        )
    if model.ignored:
        print(
            "ignored (AWS-only, no meaning in the lab): "
            + ", ".join(f"{i.logical_id}.{i.property}" for i in model.ignored)
        )
    for _resource, text in name_warnings(model):
        print(text)
    _print_findings(findings, args.lint)
    return 0


def _resource_types(path: str, region: str) -> Counter[tuple[str, bool]]:
    """(type name, a custom resource with Metadata.Lab.Attributes) -> how many resources
    declare it (after SAM); empty when unreadable."""
    try:
        with open(path, encoding="utf-8") as handle:
            doc = transforms.apply(load_text(handle.read(), path), path, region=region)
    except (OSError, UnicodeDecodeError, BadInput):
        return Counter()  # loading the model reports why
    section = doc.get("Resources")
    if not isinstance(section, dict):
        return Counter()
    return Counter(
        (decl["Type"], lab_attributes(decl.get("Metadata")) is not None)
        for decl in section.values()
        if isinstance(decl, dict) and isinstance(decl.get("Type"), str)
    )


def _print_types(path: str, region: str) -> None:
    types = _resource_types(path, region)
    if not types:
        return
    rows = []
    by_support: Counter[str] = Counter()
    for (name, given), count in sorted(types.items()):
        found = catalog.support(name, region)
        if found is None:
            support, note = "unknown", "not an AWS resource type"
        elif catalog.is_custom(name) and given:
            support, note = catalog.INERT, "custom resource: attributes from Metadata.Lab"
        else:
            support = found.support
            note = "" if support == catalog.EMULATED else found.note
        rows.append((count, name, support, note))
        by_support[support] += count
    print(table(rows, ("count", "type", "lab", "note")))
    print(", ".join(f"{n} {s}" for s, n in sorted(by_support.items())))
    print()


def _lint(path: str, region: str) -> list[Finding]:
    try:
        with open(path, encoding="utf-8") as handle:
            return lint_text(handle.read(), region)
    except (OSError, UnicodeDecodeError):
        return []  # loading the model reports why


def _print_findings(findings: list[Finding], asked: bool) -> None:
    if not asked:
        return
    print(f"cfn-lint: {counts(findings)}")
    for f in findings:
        print(f"  {f.rule} line {f.line}: {f.message}")


def _summary(args: Any) -> int:
    if args.params:
        raise BadInput(
            "--param is for one template; with --summary, parameters without a Default "
            "are reported as needed"
        )
    files, skipped = template_files(args.templates)
    verdicts = []
    for path in files:
        try:
            verdict = judge(path, args.region)
        except Exception as err:  # a lab bug on one template must not hide the others' lines
            problem = BadInput(f"the lab failed on this template ({type(err).__name__}: {err})")
            verdict = Verdict(path, "invalid", errors=[problem])
        verdicts.append(verdict)
        line = verdict.line()
        if args.lint:
            line += f" — cfn-lint: {counts(_lint(path, args.region))}"
        print(line)
        sys.stdout.flush()
    status = Counter(v.status for v in verdicts)
    parts = [f"{status[s]} {s}" for s in STATUSES]
    note = f" (skipped {skipped} files that are not CloudFormation)" if skipped else ""
    print(f"{len(verdicts)} templates: {', '.join(parts)}{note}")
    return 0 if verdicts and all(v.ok for v in verdicts) else 2
