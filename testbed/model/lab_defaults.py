"""What the lab adds to a real template so it serves with no edits.

- An instance that a load balancer targets and that has no lab role gets the http-backend
  role on its target port(s) (Metadata.Lab.Role: none opts out): state.default_roles.
- A template with an internet gateway and no Lab::Internet::Client gets one (Internet1,
  198.51.100.10): state.lab_made.
"""

from __future__ import annotations

from testbed.errors import BadInput
from testbed.model.state import BuildState


def apply(state: BuildState) -> list[BadInput]:
    """Add the lab's defaults to a fully built state; the problems found (usually none)."""
    # Issue 11 contract: filled by the lab-defaults work.
    return []
