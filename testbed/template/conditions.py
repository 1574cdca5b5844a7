"""The Conditions section: named booleans built from Fn::Equals/And/Or/Not and Condition.

Conditions depend only on parameters, pseudo parameters and mappings, so they are all known
before any resource is looked at; that lets the engine drop conditional resources and follow
only the taken branch of Fn::If when it works out dependencies.
"""

from __future__ import annotations

import re
from typing import Any

from testbed.errors import BadInput
from testbed.template.intrinsics import NO_VALUE, Scope, as_text, function_key, resolve
from testbed.template.nodes import LDict, describe, did_you_mean, line_of

# AWS accepts more than letters and digits in condition names: & and _ (cfn-lint's schema) and
# hyphens (aws-samples/aws-refarch-wordpress templates/aws-refarch-wordpress-03-efsfilesystem.yaml
# at ad192b9605b988643e8cb381fc7293da05d0ffad, an AWS reference stack, names one UseAWS-ManagedCMK).
NAME = re.compile(r"^[A-Za-z0-9&_-]{1,255}$")
FUNCTIONS = ("Fn::Equals", "Fn::And", "Fn::Or", "Fn::Not", "Condition")


def _comparable(value: Any) -> Any:
    # "5" equals 5 and "true" equals true: CloudFormation compares the text of values.
    if isinstance(value, list):
        return tuple(_comparable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((str(k), repr(_comparable(v))) for k, v in value.items()))
    text = as_text(value)
    return text if text is not None else repr(value)


class ConditionTable:
    """Evaluates named conditions on demand, once each, detecting loops between them."""

    def __init__(self, section: Any, scope: Scope, *, section_line: int | None = None) -> None:
        if section is None:
            section = LDict(line=section_line)
        if not isinstance(section, LDict):
            raise BadInput(
                f"Conditions must be a mapping, not {describe(section)}", line=section_line
            )
        self.section = section
        self.scope = scope
        self._values: dict[str, bool] = {}
        self._failed: dict[str, BadInput] = {}
        self._evaluating: list[str] = []

    @property
    def names(self) -> list[str]:
        """Declared condition names, in template order."""
        return list(self.section)

    def value(self, name: str, *, owner: str | None = None, line: int | None = None) -> bool:
        """The truth of condition `name`; BadInput if unknown, malformed or circular."""
        if name not in self.section:
            known = ", ".join(self.section) or "none are declared"
            raise BadInput(
                f"unknown condition {name!r} (conditions: {known})",
                line=line,
                logical_id=owner,
                hint=did_you_mean(name, self.section),
            )
        if name in self._values:
            return self._values[name]
        if name in self._failed:
            raise self._failed[name]
        if name in self._evaluating:
            loop = [*self._evaluating[self._evaluating.index(name) :], name]
            raise BadInput(
                f"conditions refer to each other in a loop: {' -> '.join(loop)}",
                line=self.section.line_of(loop[0]),
                logical_id=loop[0],
            )
        self._evaluating.append(name)
        try:
            result = self.evaluate(self.section[name], owner=name, line=self.section.line_of(name))
        except BadInput as err:
            # Remember the failure so that each broken condition is reported once.
            self._failed[name] = err
            raise
        finally:
            self._evaluating.pop()
        self._values[name] = result
        return result

    def evaluate(self, expr: Any, *, owner: str, line: int | None) -> bool:
        """Evaluate one condition expression (a condition function or {Condition: Name})."""
        key = function_key(expr, owner, line) if isinstance(expr, dict) else None
        if key is None and isinstance(expr, dict) and list(expr) == ["Condition"]:
            key = "Condition"
        if key not in FUNCTIONS:
            shown = f"{key}" if key else describe(expr)
            raise BadInput(
                f"a condition must be one of {', '.join(FUNCTIONS)}, not {shown}",
                line=line,
                logical_id=owner,
            )
        arg = expr[key]
        at = line_of(expr, key, line)
        if key == "Condition":
            if not isinstance(arg, str):
                raise BadInput(
                    f"Condition needs a condition name, not {describe(arg)}",
                    line=at,
                    logical_id=owner,
                )
            return self.value(arg, owner=owner, line=at)
        sizes = {"Fn::Equals": (2, 2), "Fn::And": (2, 10), "Fn::Or": (2, 10), "Fn::Not": (1, 1)}
        low, high = sizes[key]
        if not isinstance(arg, list) or not low <= len(arg) <= high:
            count = "2" if low == high == 2 else "1" if high == 1 else "2 to 10"
            raise BadInput(
                f"{key} expects a list of {count} item(s), not {describe(arg)}",
                line=at,
                logical_id=owner,
            )
        if key == "Fn::Equals":
            left, right = (
                resolve(item, self.scope, owner=owner, line=line_of(arg, i, at))
                for i, item in enumerate(arg)
            )
            if left is NO_VALUE or right is NO_VALUE:
                raise BadInput("Fn::Equals cannot compare AWS::NoValue", line=at, logical_id=owner)
            return _comparable(left) == _comparable(right)
        results = [
            self.evaluate(item, owner=owner, line=line_of(arg, i, at)) for i, item in enumerate(arg)
        ]
        if key == "Fn::Not":
            return not results[0]
        return all(results) if key == "Fn::And" else any(results)

    def check_all(self) -> list[BadInput]:
        """Evaluate every declared condition, returning the problems found."""
        errors: list[BadInput] = []
        for name in self.section:
            if not NAME.match(name):
                errors.append(
                    BadInput(
                        "condition names may contain only letters, digits, &, _ and -",
                        line=self.section.line_of(name),
                        logical_id=name,
                    )
                )
                continue
            try:
                self.value(name)
            except BadInput as err:
                if not any(err is seen for seen in errors):
                    errors.append(err)
        return errors
