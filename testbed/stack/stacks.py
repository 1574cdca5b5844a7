"""The stacks of one lab (issue 14): each one's template, model, status, outputs and exports,
in creation order, and who imports what. Pure: no processes.

The lab's first stack is named after the lab and keeps bare plan names (qualifier "");
a stack added with `testbed up T --into LAB --stack-name S` has qualifier "S.". A stack whose
export another stack imports cannot be deleted, as on AWS; deleting the whole lab goes
newest first, so an importer always goes before its exporter.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from testbed.errors import BadInput
from testbed.model.lab_view import LabStackModel, LabView
from testbed.model.types import StackModel


def qualifier_of(stack: str, first: bool) -> str:
    """Plan-name qualifier of a stack: "" for the lab's first, "S." for the others."""
    return "" if first else f"{stack}."


@dataclass
class StackRecord:
    """One stack of the lab."""

    name: str  # AWS stack name; the first stack's is the lab's name
    qualifier: str  # "" for the first stack, f"{name}." for the others
    template: str
    params: dict[str, str]
    model: StackModel
    status: str  # CREATE_IN_PROGRESS ... DELETE_COMPLETE
    created: float
    updated: float | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    template_text: str | None = None
    reason: str | None = None
    hosts: tuple[str, ...] = ()  # plan names of its hosts

    @property
    def exports(self) -> dict[str, Any]:
        return dict(self.model.exports)

    @property
    def imports(self) -> frozenset[str]:
        """Export names this stack's template imported (Fn::ImportValue)."""
        return self.model.imported

    @property
    def event_key(self) -> str:
        """Event.stack of this stack's events: "" for the lab's first stack."""
        return self.qualifier[:-1] if self.qualifier else ""

    def to_state(self) -> dict[str, Any]:
        """The stack in state.json's "stacks" (what `testbed stacks` reads)."""
        return {
            "name": self.name,
            "qualifier": self.qualifier,
            "status": self.status,
            "reason": self.reason,
            "created": self.created,
            "updated": self.updated,
            "template": self.template,
            "template_text": self.template_text,  # what `testbed plan --stack` compares
            "params": dict(self.params),
            "outputs": dict(self.outputs),
            "exports": self.exports,
            "imports": sorted(self.imports),
            "hosts": list(self.hosts),
        }


class LabStacks:
    """The lab's stacks in creation order; the lab's export registry; the delete order."""

    def __init__(self) -> None:
        self._records: dict[str, StackRecord] = {}

    def __iter__(self) -> Iterator[StackRecord]:
        return iter(list(self._records.values()))

    def __len__(self) -> int:
        return len(self._records)

    def __contains__(self, name: object) -> bool:
        return name in self._records

    def add(self, rec: StackRecord) -> None:
        """Append a stack (BadInput if the lab has one of that name, as AWS says it)."""
        if rec.name in self._records:
            raise BadInput(f"Stack [{rec.name}] already exists")
        self._records[rec.name] = rec

    def remove(self, name: str) -> StackRecord:
        return self._records.pop(self.get(name).name)

    def get(self, name: str) -> StackRecord:
        rec = self._records.get(name)
        if rec is None:
            raise BadInput(
                f"Stack with id {name} does not exist",
                hint=f"the stacks of this lab: {', '.join(self.names()) or 'none'}",
            )
        return rec

    def names(self) -> list[str]:
        """In creation order."""
        return list(self._records)

    def updated(
        self,
        name: str,
        template: str,
        template_text: str | None,
        params: dict[str, Any],
        outputs: dict[str, Any],
        model: StackModel,
    ) -> None:
        """Stack `name` runs a new template (testbed update): UPDATE_COMPLETE, its outputs
        and exports follow the new model. A lab without stack records (none kept) is left."""
        if name not in self._records:
            return
        rec = self._records[name]
        rec.template, rec.template_text = template, template_text
        rec.params = {k: str(v) for k, v in params.items()}
        rec.outputs, rec.model = dict(outputs), model
        rec.status, rec.updated = "UPDATE_COMPLETE", time.time()

    def newest_first(self) -> list[StackRecord]:
        """The order `testbed down LAB` deletes them in (importers before exporters)."""
        return list(reversed(self._records.values()))

    def exports(self, excluding: str | None = None) -> dict[str, Any]:
        """Export name -> value, over every stack but `excluding`."""
        return {
            name: value
            for rec in self._records.values()
            if rec.name != excluding
            for name, value in rec.exports.items()
        }

    def exporter(self, export: str) -> str | None:
        """The stack that exports `export` (None: no stack does)."""
        return next((r.name for r in self._records.values() if export in r.exports), None)

    def importers(self, stack: str) -> dict[str, list[str]]:
        """Each export of `stack` that other stacks import -> those stacks (creation order)."""
        rec = self.get(stack)
        used: dict[str, list[str]] = {}
        for export in rec.exports:
            users = [r.name for r in self._records.values() if r is not rec and export in r.imports]
            if users:
                used[export] = users
        return used

    def delete_refusal(self, stack: str) -> str | None:
        """Why `stack` cannot be deleted, in AWS's words (None: it can)."""
        for export, users in self.importers(stack).items():
            return f"Export {export} cannot be deleted as it is in use by {users[0]}"
        return None

    def update_refusal(self, stack: str, exports: Mapping[str, Any]) -> str | None:
        """Why `stack` cannot take a template whose exports are `exports`, in AWS's words:
        an export another stack imports may neither go nor change value (None: it can)."""
        if stack not in self._records:
            return None
        for export, users in self.importers(stack).items():
            if export not in exports or exports[export] != self.get(stack).exports.get(export):
                return f"Export {export} cannot be updated as it is in use by {users[0]}"
        return None

    def view(
        self, excluding: str | None = None, vpc_spaces: Mapping[str, int] | None = None
    ) -> LabView:
        """The lab as a new (or rebuilt) stack `excluding` sees it (testbed.model.lab_view)."""
        return LabView.of(
            [
                LabStackModel(r.name, r.qualifier, r.model)
                for r in self._records.values()
                if r.name != excluding
            ],
            vpc_spaces=vpc_spaces,
        )

    def to_state(self) -> list[dict[str, Any]]:
        """state.json's "stacks", in creation order."""
        return [r.to_state() for r in self._records.values()]
