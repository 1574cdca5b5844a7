#!/usr/bin/env python3
"""Write tests/durations.json (seconds per test module, what a parallel run hands out
first: tests/conftest.py) from the JUnit XML files of a whole run, e.g.

    scripts/test --junitxml=/tmp/junit.xml      # each pass writes it: give each its own
    python3 scripts/test_durations.py /tmp/junit-1.xml /tmp/junit-2.xml

A test's module is its classname's path (tests.integration.test_alb.TestX -> the file)."""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def module_of(classname: str) -> str:
    parts = classname.split(".")
    for end in range(len(parts), 0, -1):
        path = Path(*parts[:end]).with_suffix(".py")
        if (REPO / path).is_file():
            return path.as_posix()
    return ""


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    seconds: dict[str, float] = defaultdict(float)
    for name in argv:
        for case in ET.parse(name).iter("testcase"):
            module = module_of(case.get("classname", ""))
            if module:
                seconds[module] += float(case.get("time", "0") or 0)
    ordered = dict(sorted(((m, round(s, 1)) for m, s in seconds.items()), key=lambda x: -x[1]))
    out = REPO / "tests" / "durations.json"
    out.write_text(json.dumps(ordered, indent=1) + "\n")
    print(f"{out}: {len(ordered)} modules, {sum(ordered.values()):.0f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
