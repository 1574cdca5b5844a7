"""The Rules section: assertions about parameter values, checked before anything is built.

Each rule has an optional RuleCondition and a list of Assertions ({Assert, AssertDescription});
a false assertion is an error that says its AssertDescription, as CloudFormation does. Rule
functions that read the AWS account (Fn::RefAll, Fn::ValueOf, Fn::ValueOfAll) cannot be
answered in the lab: their assertions are skipped.
"""

from __future__ import annotations

from typing import Any

from testbed.errors import BadInput
from testbed.template.intrinsics import FollowUp, Scope, as_text, function_key, resolve
from testbed.template.nodes import LDict, describe, did_you_mean, line_of

RULE_KEYS = ("RuleCondition", "Assertions")
ASSERTION_KEYS = ("Assert", "AssertDescription")
BOOLEAN = (
    "Fn::And",
    "Fn::Or",
    "Fn::Not",
    "Fn::Equals",
    "Fn::Contains",
    "Fn::EachMemberEquals",
    "Fn::EachMemberIn",
)
ACCOUNT_READERS = ("Fn::RefAll", "Fn::ValueOf", "Fn::ValueOfAll")


class _Unanswerable(Exception):
    """The expression reads the AWS account, which the lab does not have."""


def _text(value: Any) -> str:
    text = as_text(value)
    return text if text is not None else repr(value)


class _Evaluator:
    def __init__(self, scope: Scope, owner: str) -> None:
        self.scope, self.owner = scope, owner

    def fail(self, message: str, line: int | None) -> BadInput:
        return BadInput(message, line=line, logical_id=self.owner)

    def value(self, expr: Any, line: int | None) -> Any:
        key = function_key(expr, self.owner, line) if isinstance(expr, dict) else None
        if key in ACCOUNT_READERS:
            raise _Unanswerable
        if key in BOOLEAN:
            return self.truth(expr, line)
        if isinstance(expr, list):
            return [self.value(item, line_of(expr, i, line)) for i, item in enumerate(expr)]
        return resolve(expr, self.scope, owner=self.owner, line=line)

    def strings(self, expr: Any, line: int | None, what: str) -> list[str]:
        value = self.value(expr, line)
        if not isinstance(value, list):
            raise self.fail(f"{what} must be a list, not {describe(value)}", line)
        return [_text(v) for v in value]

    def truth(self, expr: Any, line: int | None) -> bool:
        key = function_key(expr, self.owner, line) if isinstance(expr, dict) else None
        if key not in BOOLEAN:
            raise self.fail(
                f"an assertion must be one of {', '.join(BOOLEAN)}, not {key or describe(expr)}",
                line,
            )
        arg = expr[key]
        at = line_of(expr, key, line)
        if not isinstance(arg, list) or not arg:
            raise self.fail(f"{key} expects a list, not {describe(arg)}", at)
        if key == "Fn::Not":
            return not self.truth(arg[0], at)
        if key in ("Fn::And", "Fn::Or"):
            results = [self.truth(item, line_of(arg, i, at)) for i, item in enumerate(arg)]
            return all(results) if key == "Fn::And" else any(results)
        if len(arg) != 2:
            raise self.fail(f"{key} expects a list of 2 items", at)
        if key == "Fn::Equals":
            left, right = (self.value(item, at) for item in arg)
            return _text(left) == _text(right)
        if key == "Fn::Contains":
            return _text(self.value(arg[1], at)) in self.strings(arg[0], at, "the list")
        if key == "Fn::EachMemberEquals":
            wanted = _text(self.value(arg[1], at))
            return all(v == wanted for v in self.strings(arg[0], at, "the list"))
        allowed = self.strings(arg[1], at, "the allowed values")
        return all(v in allowed for v in self.strings(arg[0], at, "the list"))


def _check_keys(decl: LDict, keys: tuple[str, ...], owner: str, errors: list[BadInput]) -> bool:
    good = True
    for key in decl:
        if key not in keys:
            good = False
            errors.append(
                BadInput(
                    f"unknown key {key!r} in a rule",
                    line=decl.line_of(key),
                    logical_id=owner,
                    hint=did_you_mean(key, keys),
                )
            )
    return good


def _check_rule(name: str, rule: Any, line: int | None, scope: Scope) -> list[BadInput]:
    errors: list[BadInput] = []
    if not isinstance(rule, LDict) or "Assertions" not in rule:
        return [BadInput("a rule must be a mapping with Assertions", line=line, logical_id=name)]
    if not _check_keys(rule, RULE_KEYS, name, errors):
        return errors
    evaluator = _Evaluator(scope, name)
    try:
        if "RuleCondition" in rule and not evaluator.truth(
            rule["RuleCondition"], rule.line_of("RuleCondition")
        ):
            return errors
    except (_Unanswerable, FollowUp):
        return errors
    except BadInput as err:
        return [err]
    assertions = rule["Assertions"]
    if not isinstance(assertions, list) or not assertions:
        return [
            BadInput(
                "Assertions must be a non-empty list",
                line=rule.line_of("Assertions"),
                logical_id=name,
            )
        ]
    for index, assertion in enumerate(assertions):
        at = line_of(assertions, index, rule.line_of("Assertions"))
        if not isinstance(assertion, LDict) or "Assert" not in assertion:
            errors.append(
                BadInput("an assertion must be a mapping with Assert", line=at, logical_id=name)
            )
            continue
        if not _check_keys(assertion, ASSERTION_KEYS, name, errors):
            continue
        try:
            holds = evaluator.truth(assertion["Assert"], assertion.line_of("Assert"))
        except (_Unanswerable, FollowUp):
            continue  # not answerable here / the parameter's own error is reported
        except BadInput as err:
            errors.append(err)
            continue
        if not holds:
            description = as_text(assertion.get("AssertDescription"))
            errors.append(
                BadInput(
                    f"rule {name} fails: {description or 'its assertion is false'}",
                    line=at,
                    logical_id=name,
                )
            )
    return errors


def check_rules(section: Any, scope: Scope, *, section_line: int | None = None) -> list[BadInput]:
    """Every problem with the Rules section, false assertions included."""
    if section is None:
        return []
    if not isinstance(section, LDict):
        return [BadInput(f"Rules must be a mapping, not {describe(section)}", line=section_line)]
    errors: list[BadInput] = []
    for name, rule in section.items():
        errors.extend(_check_rule(name, rule, section.line_of(name), scope))
    return errors
