"""cfn-lint's rules on a template (testbed validate --lint): AWS's own linter, beside the lab's
checks. Its findings are advice; they never change validate's exit code."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Finding:
    """One cfn-lint match: rule id (E3012, W3010, I...), line and message."""

    rule: str
    line: int | None
    message: str

    @property
    def severity(self) -> str:
        return {"E": "error", "W": "warning", "I": "info"}.get(self.rule[:1], "error")


def lint_text(text: str, region: str) -> list[Finding]:
    """cfn-lint's findings for a template's text, in line order."""
    # Imported here: loading cfn-lint's rules takes a second that only --lint should pay.
    from cfnlint.api import lint

    matches: list[Any] = lint(text, regions=[region])
    found = [
        Finding(str(m.rule.id), getattr(m, "linenumber", None), str(m.message)) for m in matches
    ]
    return sorted(found, key=lambda f: (f.line or 0, f.rule))


def counts(findings: list[Finding]) -> str:
    """'2 errors, 1 warning' (or 'no findings')."""
    if not findings:
        return "no findings"
    parts = []
    for severity in ("error", "warning", "info"):
        n = sum(1 for f in findings if f.severity == severity)
        if n:
            parts.append(f"{n} {severity}{'s' if n > 1 and severity != 'info' else ''}")
    return ", ".join(parts)
