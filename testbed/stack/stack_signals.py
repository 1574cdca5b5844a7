"""Resource signals and cfn-init metadata of a stack added to a running lab (issue 14).

The lab's first stack keeps them under bare logical ids (LabBuilder). A stack S added with
`testbed up T --into LAB --stack-name S` keeps them under S.LogicalId: cfn-init/S.Web.json,
signals/resource-S.Web/; expected.json's "stacks" tells the host tools (cfn-init, cfn-signal,
cfn-get-metadata) that --stack S exists and what it waits for. Its resources with a
CreationPolicy stay CREATE_IN_PROGRESS until their signals arrive, as the first stack's do:
a failure signal or a timeout fails the stack's create (rollback).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from testbed.lab.signals import (
    SignalWaiter,
    add_expected_stack,
    init_file,
    remove_expected_stack,
)
from testbed.model import StackModel

Emit = Callable[[str, str, str], object]  # (logical id, status, reason): the stack's ids


class StackSignals:
    """One added stack's metadata files, expected signals and the wait for them."""

    def __init__(self, lab_dir: Path, stack: str, qualifier: str, model: StackModel) -> None:
        self.lab_dir, self.stack, self.qualifier, self.model = lab_dir, stack, qualifier, model

    def prepare(self) -> None:
        """Before its hosts start: their cfn-init metadata and what cfn-signal may send."""
        for lid, init in self.model.cfn_init.items():
            path = init_file(self.lab_dir, self.qualifier + lid)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(init, indent=1))
        add_expected_stack(self.lab_dir, self.stack, self.qualifier, self.model.signal_policies)

    def waiter(self, emit: Emit) -> SignalWaiter:
        """A waiter on qualified ids whose events carry the stack's own logical ids."""
        size = len(self.qualifier)

        def unqualified(qualified: str, status: str, reason: str) -> None:
            emit(qualified[size:], status, reason)

        return SignalWaiter(self.lab_dir, unqualified)

    def remove(self) -> None:
        """The stack is gone: its metadata files, its expected entry, its signals."""
        for lid in self.model.cfn_init:
            init_file(self.lab_dir, self.qualifier + lid).unlink(missing_ok=True)
        remove_expected_stack(self.lab_dir, self.stack, self.qualifier)
