"""What a running lab was built from: its template text, parameters and region.

    source = running_template("alb")
    source.text, source.params, source.digest

`testbed plan` compares a new template with this; `testbed update --plan FILE` checks that a
saved plan was made against this same source (testbed.model.changeset.check_plan_base).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testbed import naming
from testbed.errors import BadInput
from testbed.lab.state import holder_alive, read_state
from testbed.model.changeset import template_digest


@dataclass(frozen=True)
class RunningTemplate:
    """The template a lab runs: its file (for messages), text, parameters and region."""

    path: str
    text: str
    params: dict[str, Any] = field(default_factory=dict)
    region: str = "us-east-1"
    note: str | None = None  # why the text may not be what the lab was built from

    @property
    def digest(self) -> str:
        return template_digest(self.text, self.params)


def running_template(name: str) -> RunningTemplate:
    """The template of running lab `name`; BadInput if there is no such running lab."""
    naming.validate_lab_name(name)
    state = read_state(naming.lab_dir(name))
    if state is None:
        raise BadInput(f"no lab named {name!r}", hint="testbed status lists the labs")
    if not holder_alive(state):
        raise BadInput(f"lab {name!r} is not running", hint="testbed status lists the labs")
    path = str(state.get("template") or "")
    text = state.get("template_text")
    note = None
    if not isinstance(text, str):
        # A lab built before labs kept their template's text: its file as it is now.
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise BadInput(
                f"lab {name} does not keep its template's text and its file cannot be read: {err}"
            ) from None
        note = (
            f"lab {name} does not keep its template's text; {path} is read as it is now "
            "(if it was edited since the lab was built, the plan shows less)"
        )
    return RunningTemplate(
        path,
        text,
        dict(state.get("params") or {}),
        str(state.get("region") or "us-east-1"),
        note,
    )
