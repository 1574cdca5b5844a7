"""cfn-get-metadata, cfn-hup, and the shims of package and service managers."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from testbed.lab.hosttools.context import HostContext, ToolError, context, fail, helper_parser
from testbed.lab.signals import init_file

INIT_KEY = "AWS::CloudFormation::Init"


# Queries answer "not installed"; everything else (install, start, enable) succeeds doing
# nothing, as it would on AWS, so that UserData goes on to its cfn-signal.
QUERIES = ("rpm",)


def shim_message(tool: str) -> str:
    return (
        f"lab: {tool} is not emulated in the lab (a host shares the machine's files): nothing "
        "was done; a load balancer's target serves with the lab's http-backend role instead"
    )


def shim(tool: str) -> int:
    """A package or service manager: say what was not done. Installing and starting succeed
    (the role stands in for the server, as AWS would have run it); queries fail."""
    print(shim_message(tool), file=sys.stderr)
    return 1 if tool in QUERIES else 0


def hup(argv: list[str]) -> int:
    """cfn-hup watches metadata changes; a lab stack is never updated in place."""
    print(
        "lab: cfn-hup is not needed in the lab (a lab's stack is not updated in place); exiting",
        file=sys.stderr,
    )
    return 0


def metadata_parser() -> argparse.ArgumentParser:
    p = helper_parser("cfn-get-metadata", "Print a resource's metadata.")
    p.add_argument("-k", "--key", help="a key, e.g. AWS::CloudFormation::Init.config.files")
    return p


def select(metadata: dict[str, Any], key: str | None) -> Any:
    """The value under `key`: a top-level key, then a dotted path below it."""
    if not key:
        return metadata
    if key.startswith(INIT_KEY):
        value: Any = metadata.get(INIT_KEY)
        rest = key[len(INIT_KEY) :].lstrip(".")
    else:
        raise ToolError(f"key {key} not found (the lab keeps {INIT_KEY} only)")
    for part in rest.split(".") if rest else ():
        if not isinstance(value, dict) or part not in value:
            raise ToolError(f"key {key} not found")
        value = value[part]
    return value


def get_metadata(argv: list[str], ctx: HostContext | None = None) -> int:
    args = metadata_parser().parse_args(argv)
    try:
        ctx = ctx or context()
        qualifier = ctx.check_stack(args.stack)
        path = init_file(ctx.lab_dir, qualifier + args.resource)
        init = json.loads(path.read_text()) if path.exists() else None
        metadata = {} if init is None else {INIT_KEY: init}
        print(json.dumps(select(metadata, args.key), indent=2))
    except ToolError as err:
        return fail("cfn-get-metadata", err)
    return 0
