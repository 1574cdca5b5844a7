"""The `testbed` command: build, inspect and tear down ELB labs; run experiments.

Exit codes: 0 ok, 1 failure, 2 bad input (template errors, unknown lab or host, wrong flags),
130 Ctrl-C, 128+N ended by signal N (SIGTERM and SIGHUP end a command as Ctrl-C does: what it
was doing is undone, labs it made are torn down).
"""

from __future__ import annotations

import argparse
import sys

from testbed.cli import (
    asg,
    cert,
    cluster,
    doctor,
    drift,
    experiments,
    hostcmds,
    lifecycle,
    metrics,
    plan,
    probe,
    reach,
    report,
    snmp,
    targets,
    traffic,
    validate,
)
from testbed.errors import BadInput, Terminated, TestbedError
from testbed.lab.owner import unwind_on_termination

EPILOG = """\
quick start:
  testbed doctor                         what this machine supports
  testbed validate templates/default.yaml
  testbed up templates/default.yaml      build the stack (lab name: default)
  testbed status default                 hosts, addresses, outputs
  testbed exec default Client1 -- curl -s http://203.0.113.10/
  testbed down default
  testbed demo                           all of the above in one go

Every command has --help with examples."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="testbed",
        description="ELB Lab: AWS Elastic Load Balancing on real packets, "
        "from CloudFormation-style templates.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in (
        doctor,
        validate,
        lifecycle,
        plan,
        hostcmds,
        targets,
        cert,
        drift,
        asg,
        traffic,
        metrics,
        snmp,
        experiments,
        report,
        probe,
        reach,
        cluster,
    ):
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `testbed` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with unwind_on_termination():
            return int(args.func(args) or 0)
    except BadInput as exc:
        print(f"error: {exc.format()}", file=sys.stderr)
        return 2
    except TestbedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Terminated as exc:
        print(f"terminated by {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Output piped into `head` and friends: stop quietly, as Unix tools do.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
