"""Test-wide setup: integration tests run only where a real lab can run, else they are
skipped with the reason `testbed doctor` gives."""

from __future__ import annotations

import functools

import pytest


@functools.lru_cache(maxsize=1)
def lab_problems() -> tuple[str, ...]:
    from testbed.lab.capabilities import detect

    return tuple(detect().problems)


def pytest_collection_modifyitems(config, items):
    needs_lab = [i for i in items if i.get_closest_marker("integration")]
    if not needs_lab:
        return
    problems = lab_problems()
    if problems:
        skip = pytest.mark.skip(reason="no lab can run here: " + "; ".join(problems))
        for item in needs_lab:
            item.add_marker(skip)
