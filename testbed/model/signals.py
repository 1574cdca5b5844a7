"""CreationPolicy.ResourceSignal and Metadata AWS::CloudFormation::Init of a resource.

A resource with a CreationPolicy is complete only after its cfn-signal success signals arrive
(Count, default 1) within its Timeout (ISO 8601 duration such as PT15M); the lab's builder
waits for them (testbed.lab.signals). cfn-init reads the Init metadata kept here.
"""

from __future__ import annotations

from typing import Any

from testbed.model.state import BuildState
from testbed.template.intrinsics import Scope
from testbed.template.nodes import LDict


def read_creation_policy(raw: LDict, logical_id: str, state: BuildState, scope: Scope) -> None:
    """Record raw["CreationPolicy"] in state.signal_policies; BadInput when it is malformed."""
    # Issue 11 contract: filled by the signals work.


def read_cfn_init(metadata: Any, logical_id: str, state: BuildState, scope: Scope) -> None:
    """Keep Metadata["AWS::CloudFormation::Init"] (resolved, plain) in state.cfn_init."""
    # Issue 11 contract: filled by the signals work.
