"""What a host tool knows about where it runs: the lab (TESTBED_LAB), the host
(TESTBED_HOST), the lab's folder, and the checks every helper makes of --stack."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testbed import naming
from testbed.lab.hostexec import host_dir
from testbed.lab.procs import LAB_LABEL
from testbed.lab.signals import read_expected

LAB_ENV = LAB_LABEL  # TESTBED_LAB: every process of a lab has it
HOST_ENV = "TESTBED_HOST"


class ToolError(Exception):
    """What a helper prints (prefixed with its name) before it exits with code 1."""


@dataclass(frozen=True)
class HostContext:
    lab: str
    host: str | None
    lab_dir: Path

    @property
    def host_dir(self) -> Path | None:
        return host_dir(self.lab, self.host) if self.host else None

    def expected(self) -> dict[str, Any]:
        found = read_expected(self.lab_dir)
        if found is None:
            raise ToolError(f"lab {self.lab} has no stack to signal (no {self.lab_dir}/signals)")
        return found

    def check_stack(self, stack: str | None) -> str:
        """A --stack that names no stack of the lab fails as on AWS. The stack's qualifier:
        "" for the lab's first stack (and no --stack), "S." for a stack added to the lab
        (issue 14), whose resources' metadata and signals are kept under S.LogicalId."""
        return self.stack_expected(stack).get("qualifier", "")

    def stack_expected(self, stack: str | None) -> dict[str, Any]:
        """What stack `stack` waits for (resources, handles) and its qualifier."""
        expected = self.expected()
        name = expected.get("stack")
        if stack is None or name in (stack, *_arn_names(stack)):
            return expected
        added = expected.get("stacks") or {}
        for other in (stack, *_arn_names(stack)):
            if other in added:
                return dict(added[other])
        raise ToolError(
            f"ValidationError: Stack {stack} does not exist (this lab's stacks: "
            f"{', '.join([str(name), *added])})"
        )

    def handles(self) -> dict[str, str]:
        """Every wait condition handle URL of the lab's stacks -> its resource."""
        expected = self.expected()
        found = dict(expected.get("handles") or {})
        for other in (expected.get("stacks") or {}).values():
            found.update(other.get("handles") or {})
        return found


def _arn_names(stack: str) -> tuple[str, ...]:
    # arn:aws:cloudformation:REGION:ACCOUNT:stack/NAME/UUID (AWS::StackId) names NAME.
    parts = stack.split(":stack/", 1)
    return (parts[1].split("/", 1)[0],) if len(parts) == 2 else ()


def context(env: Mapping[str, str] | None = None) -> HostContext:
    env = os.environ if env is None else env
    lab = env.get(LAB_ENV)
    if not lab:
        raise ToolError(
            f"not inside a lab host ({LAB_ENV} is not set): run it from UserData or "
            "`testbed exec LAB HOST -- ...`"
        )
    return HostContext(lab, env.get(HOST_ENV) or None, naming.lab_dir(lab))


def fail(tool: str, error: ToolError) -> int:
    print(f"{tool}: {error}", file=sys.stderr)
    return 1


def helper_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """The options every AWS helper script (cfn-init, cfn-get-metadata) takes: the stack and
    resource it reads, and AWS's credential and proxy options, accepted and unused here."""
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("-s", "--stack", required=True)
    p.add_argument("-r", "--resource", required=True)
    p.add_argument("--region")
    for flag in ("--role", "-u", "--url", "--http-proxy", "--https-proxy", "--access-key"):
        p.add_argument(flag)
    p.add_argument("--secret-key")
    p.add_argument("-f", "--credential-file")
    return p
