"""`aws` in a lab host: the AWS CLI commands real UserData runs against the lab, answered from
the lab's holder; every other command fails as the real CLI does without credentials.

    aws [--region R] [--output json|text] elb describe-instance-health \\
        --load-balancer-name NAME [--instances ID ...] [--query JMESPATH]

NAME is the Classic Load Balancer's name (what Ref gives: LoadBalancerName, or the one made
like CloudFormation's) or its logical id. The answer is {"InstanceStates": [...]} with AWS's
fields (InstanceId, State, ReasonCode, Description) from the lab's registry
(testbed.lab.classic_health); --instances keeps those instances, in the order given (one not
registered is "Unknown", as on AWS); --query is JMESPath (the `jmespath` package, as the CLI's);
the output is the CLI's: JSON indented by 4 (a string result keeps its quotes:
"InService"), or --output text (tab-separated, the CLI's layout).

Exit codes are the CLI v2's: 0, 252 for a command line it cannot parse, 254 for an error of
the service (LoadBalancerNotFound), 255 for anything else (a command the lab does not answer).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from testbed import asks, rpc
from testbed.lab.classic_health import instance_health
from testbed.lab.hosttools.context import HostContext, ToolError, context
from testbed.lab.state import read_state
from testbed.naming import HOLDER_SOCK

TOOL = "aws"
NAMES_FILE = "aws/classic-load-balancers.json"  # in the lab folder, written by the builder
ANSWERED = ("elb describe-instance-health",)
AWS_FIELDS = ("InstanceId", "State", "ReasonCode", "Description")
NOT_REGISTERED = "Instance is not currently registered with the LoadBalancer."
USAGE_ERROR, SERVICE_ERROR, OTHER_ERROR = 252, 254, 255


class ServiceError(Exception):
    """An error of the service, as the CLI prints it: (code, operation, message)."""

    def __init__(self, code: str, message: str, operation: str = "DescribeInstanceHealth"):
        super().__init__(
            f"An error occurred ({code}) when calling the {operation} operation: {message}"
        )


# ---- what the builder leaves for the tool ---------------------------------------------------


def write_names(lab_dir: Path, names: dict[str, str]) -> None:
    """{logical id: name} of the lab's Classic Load Balancers (the tool takes either)."""
    path = lab_dir / NAMES_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(names, indent=1, sort_keys=True))


def read_names(lab_dir: Path) -> dict[str, str]:
    try:
        data = json.loads((lab_dir / NAMES_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def logical_id(names: dict[str, str], name: str) -> str:
    """The CLB that `name` (its name or logical id) means; ServiceError otherwise."""
    for lid, lb_name in names.items():
        if name in (lb_name, lid):
            return lid
    raise ServiceError("LoadBalancerNotFound", f"There is no ACTIVE Load Balancer named '{name}'")


# ---- the command line -----------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:
        raise ToolError(message)


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog=TOOL, add_help=False)
    p.add_argument("--region")
    p.add_argument("--output", default="json")
    p.add_argument("--query")
    p.add_argument("--profile")
    p.add_argument("--endpoint-url")
    p.add_argument("--no-verify-ssl", action="store_true")
    p.add_argument("--no-paginate", action="store_true")
    p.add_argument("--no-cli-pager", action="store_true")
    p.add_argument("--debug", action="store_true")
    p.add_argument("--load-balancer-name")
    p.add_argument("--instances", nargs="+", default=None)
    p.add_argument("words", nargs="*")
    return p


def parse(argv: Sequence[str]) -> argparse.Namespace:
    """The global options, the command's words and its options (in any order, as the CLI
    takes them). --instances takes the ids that follow it (the CLI's list syntax; also
    InstanceId=i-1 shorthand and a JSON list)."""
    args, rest = parser().parse_known_intermixed_args(list(argv))
    if rest:
        raise ToolError(f"Unknown options: {', '.join(rest)}")
    args.instances = _instance_ids(args.instances) if args.instances is not None else None
    return args


def _instance_ids(values: list[str]) -> list[str]:
    ids: list[str] = []
    for value in values:
        text = value.strip()
        if text.startswith("["):
            try:
                items = json.loads(text)
            except ValueError as exc:
                raise ToolError(f"--instances: bad JSON {text!r}") from exc
            ids += [i["InstanceId"] if isinstance(i, dict) else str(i) for i in items]
        else:
            for part in text.split(","):
                part = part.strip()
                if part:
                    ids.append(part.removeprefix("InstanceId="))
    return ids


# ---- the answer -------------------------------------------------------------------------------


def instance_states(
    rows: list[dict[str, Any]], wanted: list[str] | None, known: set[str] | None
) -> dict[str, Any]:
    """{"InstanceStates": [...]} with AWS's fields, of `wanted` instances (all when None).
    An id the lab knows but the CLB has not registered is Unknown; `known` (the lab's instance
    ids, None: not known) decides whether an id is an instance at all."""
    by_id = {r["InstanceId"]: {k: r.get(k) for k in AWS_FIELDS} for r in rows}
    if wanted is None:
        return {"InstanceStates": [by_id[i] for i in sorted(by_id)]}
    out = []
    for iid in wanted:
        if iid in by_id:
            out.append(by_id[iid])
        elif known is None or iid in known:
            out.append(
                {
                    "InstanceId": iid,
                    "State": "Unknown",
                    "ReasonCode": "N/A",
                    "Description": NOT_REGISTERED,
                }
            )
        else:
            raise ServiceError("InvalidInstance", f"Could not find EC2 instance {iid}.")
    return {"InstanceStates": out}


def apply_query(data: Any, query: str | None) -> Any:
    if not query:
        return data
    import jmespath  # the CLI's own JMESPath; only a --query needs it
    from jmespath.exceptions import JMESPathError

    try:
        return jmespath.search(query, data)
    except JMESPathError as exc:
        raise ToolError(f"Bad value for --query {query}: {exc}") from exc


def render(data: Any, output: str) -> str:
    """What the CLI prints for `data` with --output json or text."""
    if output == "json":
        return json.dumps(data, indent=4, ensure_ascii=False) + "\n"
    if output == "text":
        lines: list[str] = []
        _text(data, lines, None)
        return "".join(line + "\n" for line in lines)
    raise ToolError(f"--output {output}: the lab's aws stand-in prints json and text")


def _text(
    item: Any, lines: list[str], identifier: str | None, keys: list[str] | None = None
) -> None:
    """The AWS CLI's text layout: a dict's scalars on one line (sorted by key, after the
    upper-cased name it was found under), its lists and dicts below; a list of dicts one
    line each, with the union of their scalar keys."""
    if isinstance(item, dict):
        if keys is None:
            keys = sorted(k for k, v in item.items() if not isinstance(v, (dict, list)))
        scalars = [_scalar(item.get(k, "")) for k in keys]
        if scalars:
            lines.append("\t".join(([identifier.upper()] if identifier else []) + scalars))
        for key in sorted(set(item) - set(keys)):
            _text(item[key], lines, key)
    elif isinstance(item, list):
        if not item:
            return
        if any(isinstance(e, dict) for e in item):
            union = sorted(
                {
                    k
                    for e in item
                    if isinstance(e, dict)
                    for k, v in e.items()
                    if not isinstance(v, (dict, list))
                }
            )
            for e in item:
                _text(e, lines, identifier, union if isinstance(e, dict) else None)
            return
        scalars = [e for e in item if not isinstance(e, list)]
        if scalars:
            if identifier:
                lines += [f"{identifier.upper()}\t{_scalar(e)}" for e in scalars]
            else:
                lines.append("\t".join(_scalar(e) for e in scalars))
        for e in item:
            if isinstance(e, list):
                _text(e, lines, identifier)
    else:
        lines.append(_scalar(item))


def _scalar(value: Any) -> str:
    return str(value)


# ---- running it -------------------------------------------------------------------------------


def describe_instance_health(args: argparse.Namespace, ctx: HostContext) -> dict[str, Any]:
    if not args.load_balancer_name:
        raise ToolError("the following arguments are required: --load-balancer-name")
    lid = logical_id(read_names(ctx.lab_dir), args.load_balancer_name)
    try:
        reply = asks.holder_targets(str(ctx.lab_dir / HOLDER_SOCK), lb=lid, tg=lid)
    except (rpc.RpcUnavailable, rpc.RpcRefused, OSError) as exc:
        raise ServiceError(
            "ServiceUnavailable", f"the lab's holder does not answer: {exc}"
        ) from exc
    rows = instance_health(reply["targets"], lid)
    return instance_states(rows, args.instances, _known_ids(ctx))


def _known_ids(ctx: HostContext) -> set[str] | None:
    hosts = (read_state(ctx.lab_dir) or {}).get("hosts")
    if not hosts:
        return None
    return {h.get("instance_id") or f"i-{h['name']}" for h in hosts if h.get("kind") == "instance"}


def main(argv: list[str], ctx: HostContext | None = None) -> int:
    try:
        args = parse(argv)
    except ToolError as err:
        print(f"{TOOL}: error: {err}", file=sys.stderr)
        return USAGE_ERROR
    command = " ".join(args.words[:2])
    if command not in ANSWERED:
        print(
            f"{TOOL}: the lab's aws stand-in answers only: {', '.join(ANSWERED)} "
            f"(not {' '.join(args.words) or 'an empty command'}); the lab has no AWS "
            "credentials or network",
            file=sys.stderr,
        )
        return OTHER_ERROR
    if len(args.words) > 2:
        print(f"{TOOL}: error: Unknown options: {', '.join(args.words[2:])}", file=sys.stderr)
        return USAGE_ERROR
    try:
        ctx = ctx or context()
        data = describe_instance_health(args, ctx)
        out = render(apply_query(data, args.query), args.output)
    except ServiceError as err:
        print(f"\n{err}", file=sys.stderr)
        return SERVICE_ERROR
    except ToolError as err:
        print(f"{TOOL}: error: {err}", file=sys.stderr)
        return USAGE_ERROR
    sys.stdout.write(out)
    return 0
