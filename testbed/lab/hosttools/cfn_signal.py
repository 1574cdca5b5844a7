"""cfn-signal in a lab host: AWS's options, reported to the lab by a file (no network).

    cfn-signal -e $? --stack STACK --resource LogicalId --region REGION   (resource signal)
    cfn-signal -e $? -r "reason" 'https://...wait condition handle URL'   (handle signal)

As AWS documents it: -e/--exit-code decides (0 success, else failure) and then -s/--success
is ignored; without -e, -s true|false (default true). -i/--id is the signal's UniqueId
(default: the instance, here the host's name). Credentials, --role, --url and the proxies are
accepted and have no meaning in the lab.
"""

from __future__ import annotations

import argparse
import sys
import time

from testbed.lab.hosttools.context import HostContext, ToolError, context, fail
from testbed.lab.signals import Signal, handle_key, resource_key, write_signal

TOOL = "cfn-signal"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=TOOL, description="Signal a lab resource (CreationPolicy).")
    p.add_argument("url", nargs="?", help="a WaitConditionHandle URL (Ref of the handle)")
    p.add_argument("-s", "--success", default="true", help="true or false (default true)")
    p.add_argument("-e", "--exit-code", type=int, help="0: success, else failure")
    p.add_argument("-r", "--reason", default="", help="the status reason")
    p.add_argument("-d", "--data", default="", help="data sent with a wait condition signal")
    p.add_argument("-i", "--id", help="the signal's UniqueId (default: this host)")
    p.add_argument("--stack", help="stack name or id")
    p.add_argument("--resource", help="logical id of the resource to signal")
    p.add_argument("--region")
    # Accepted for compatibility; without meaning in the lab.
    for flag in ("--role", "--url", "--http-proxy", "--https-proxy", "--access-key"):
        p.add_argument(flag)
    p.add_argument("--secret-key")
    p.add_argument("-f", "--credential-file")
    return p


def signal_of(args: argparse.Namespace, host: str | None) -> Signal:
    if args.exit_code is not None:
        success = args.exit_code == 0
    else:
        if args.success.lower() not in ("true", "false"):
            raise ToolError(f"--success must be true or false, not {args.success!r}")
        success = args.success.lower() == "true"
    return Signal(
        unique_id=args.id or host or "lab-host",
        success=success,
        reason=args.reason,
        data=args.data,
        sent=time.time(),
    )


def target_key(args: argparse.Namespace, ctx: HostContext) -> str:
    """The signal folder: the resource named, or the wait condition of the handle URL."""
    expected = ctx.expected()
    if args.resource or args.stack:
        if not (args.resource and args.stack):
            raise ToolError("a resource signal needs both --stack and --resource")
        qualifier = ctx.check_stack(args.stack)
        waits = ctx.stack_expected(args.stack).get("resources", [])
        if args.resource not in waits:
            raise ToolError(
                f"ValidationError: resource {args.resource} of stack {args.stack} "
                f"does not wait for signals (no CreationPolicy; resources waiting: "
                f"{', '.join(waits) or 'none'})"
            )
        return resource_key(qualifier + args.resource)
    if args.url:
        if args.url.strip() not in ctx.handles():
            raise ToolError(
                f"no wait condition of stack {expected.get('stack')} uses the handle {args.url}"
            )
        return handle_key(args.url)
    raise ToolError("give --stack and --resource, or a wait condition handle URL")


def main(argv: list[str], ctx: HostContext | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        ctx = ctx or context()
        key = target_key(args, ctx)
        signal = signal_of(args, ctx.host)
        write_signal(ctx.lab_dir, key, signal)
    except ToolError as err:
        return fail(TOOL, err)
    target = args.resource or "the wait condition"
    print(
        f"{TOOL}: {signal.status} signal for {target} (UniqueId {signal.unique_id})",
        file=sys.stderr,
    )
    return 0
