"""Containers that remember where they came from in the template text.

The loader returns these instead of plain dict/list so that every later error can point at a
1-based line. They behave exactly like dict and list; the line information is extra.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any


class LDict(dict):
    """A mapping with `line` (its own first line) and `lines` (key -> line of that key)."""

    def __init__(self, *args: Any, line: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.line = line
        self.lines: dict[str, int] = {}
        # The text of scalars YAML read as something else (No -> false, 010 -> 8), by key.
        self.texts: dict[str, str] = {}

    def line_of(self, key: str) -> int | None:
        """Line of `key` if known, else the mapping's own line."""
        return self.lines.get(key, self.line)


class LList(list):
    """A sequence with `line` (its own first line) and `lines` (index -> line of that item)."""

    def __init__(self, *args: Any, line: int | None = None) -> None:
        super().__init__(*args)
        self.line = line
        self.lines: list[int | None] = []
        # The text of scalars YAML read as something else (No -> false, 010 -> 8), by index.
        self.texts: dict[int, str] = {}

    def line_of(self, index: int) -> int | None:
        """Line of item `index` if known, else the sequence's own line."""
        if 0 <= index < len(self.lines) and self.lines[index] is not None:
            return self.lines[index]
        return self.line


def line_of(container: Any, key: Any, default: int | None = None) -> int | None:
    """Line of container[key] when the container tracks lines, else `default`."""
    if isinstance(container, (LDict, LList)):
        found = container.line_of(key)
        return found if found is not None else default
    return default


def did_you_mean(word: str, choices: Iterable[str], *, cutoff: float = 0.6) -> str | None:
    """A 'did you mean X?' hint for a misspelt name, or None when nothing is close."""
    options = [c for c in choices if isinstance(c, str)]
    close = difflib.get_close_matches(word, options, n=1, cutoff=cutoff)
    if not close and options:
        # Case mistakes (subnetid) are the most common typo in CloudFormation templates.
        lowered = {c.lower(): c for c in options}
        if word.lower() in lowered:
            close = [lowered[word.lower()]]
    return f"did you mean {close[0]}?" if close else None


def describe(value: Any) -> str:
    """A short name for a value's type, as a template author would call it."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__
