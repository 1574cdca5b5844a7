"""Test-wide setup.

Integration tests run only where a real lab can run. Elsewhere they are skipped with the
reason `testbed doctor` gives, except in CI (CI=true): there a machine that cannot run a lab
is a broken CI machine, and the run fails at once naming the problems.

Order: every test must pass whatever runs before it (a test that changes its module's lab
restores it). `--reverse` runs each module's tests in reverse order, `--shuffle SEED` in a
random order (SEED `random` picks one and prints it); modules keep their order, so each
module-scoped lab is still built once.

Parallel runs (pytest-xdist, what scripts/test does): `-n N --dist loadfile` keeps each module
on one worker (its module-scoped lab is built once), and every worker gets its own lab name
prefix (TESTBED_NAME_PREFIX: the given one's first letter, or `w`, + the worker's number), so
the labs, harnesses and bridges of two workers never share a name. Workers collect the
modules longest first (tests/durations.json, seconds per module from a whole run; with
--no-loadscope-reorder xdist hands them out in that order), so that no long module starts
last and runs alone at the end. Tests marked `serial`
measure time or need the machine to themselves: `--serial exclude` leaves them out (the
parallel pass), `--serial only` runs just them (the second pass, one process); the default
runs everything, as plain `pytest` always did.
"""

from __future__ import annotations

import functools
import json
import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

CI_TRUE = ("true", "1", "yes")
DURATIONS = Path(__file__).with_name("durations.json")
# A module durations.json does not know yet: an integration module is guessed long (it
# starts early), any other short.
UNKNOWN_S = {"integration": 60.0, "": 1.0}
SERIAL_CHOICES = ("include", "exclude", "only")


def _worker_prefix() -> None:
    """Under pytest-xdist (PYTEST_XDIST_WORKER=gw0, gw1...): this worker's own lab name
    prefix, e.g. c0, c1 with TESTBED_NAME_PREFIX=c, else w0, w1. Set before any test module
    is imported (several read the prefix at import)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    number = worker.removeprefix("gw")
    if not number.isdigit():
        return
    given = os.environ.get("TESTBED_NAME_PREFIX", "").lower()[:1]
    os.environ["TESTBED_NAME_PREFIX"] = (given if given.isalpha() else "w") + number


_worker_prefix()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("order", "test order (no test may depend on it)")
    group.addoption(
        "--reverse", action="store_true", help="run the tests of each module in reverse order"
    )
    group.addoption(
        "--shuffle",
        metavar="SEED",
        help="run the tests of each module in a random order from SEED ('random': a new one)",
    )
    parser.getgroup("serial", "tests that need the machine to themselves").addoption(
        "--serial",
        choices=SERIAL_CHOICES,
        default="include",
        help="tests marked serial (timing bounds, soaks, the whole machine): 'exclude' for a"
        " parallel pass (-n N), 'only' for the one-process pass after it (default: include)",
    )


@functools.lru_cache(maxsize=1)
def lab_problems() -> tuple[str, ...]:
    from testbed.lab.capabilities import detect

    return tuple(detect().problems)


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in CI_TRUE


@functools.lru_cache(maxsize=1)
def shuffle_seed(option: str | None) -> int | None:
    if option is None:
        return None
    return random.SystemRandom().randrange(2**32) if option == "random" else int(option)


def order_note(config: pytest.Config) -> list[str]:
    seed = shuffle_seed(config.getoption("--shuffle"))
    lines = [] if seed is None else [f"order: shuffled in each module, --shuffle {seed}"]
    if config.getoption("--reverse"):
        lines.append("order: reversed in each module")
    return lines


def pytest_report_header(config: pytest.Config) -> list[str]:
    return order_note(config)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    for line in order_note(config):  # also with -q, to run a failing order again
        terminalreporter.write_line(line)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items[:] = list(_ordered(config, items))
    if os.environ.get("PYTEST_XDIST_WORKER"):
        items[:] = _longest_first(items)
    _select_serial(config, items)
    needs_lab = [i for i in items if i.get_closest_marker("integration")]
    if not needs_lab:
        return
    problems = lab_problems()
    if not problems:
        return
    reason = "no lab can run here: " + "; ".join(problems)
    if in_ci():
        raise pytest.UsageError(
            f"CI={os.environ['CI']}: {len(needs_lab)} integration tests need a lab, and {reason}"
            " (testbed doctor explains; scripts/provision sets a machine up)"
        )
    skip = pytest.mark.skip(reason=reason)
    for item in needs_lab:
        item.add_marker(skip)


def module_seconds() -> dict[str, float]:
    """Seconds each module took in a whole run (tests/durations.json), by module path."""
    try:
        return {str(k): float(v) for k, v in json.loads(DURATIONS.read_text()).items()}
    except (OSError, ValueError, AttributeError):
        return {}


def _longest_first(items: list[pytest.Item]) -> list[pytest.Item]:
    """The items module by module, the longest modules first (each module's own order
    kept): what a parallel run hands out first."""
    known = module_seconds()

    def seconds(module: str) -> float:
        if module in known:
            return known[module]
        return UNKNOWN_S["integration" if "/integration/" in module else ""]

    modules: dict[str, list[pytest.Item]] = {}
    for item in items:
        modules.setdefault(item.nodeid.split("::")[0], []).append(item)
    order = sorted(modules, key=lambda m: -seconds(m))  # stable: ties keep their order
    return [item for m in order for item in modules[m]]


def _select_serial(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep or leave out the tests marked serial, as --serial asks."""
    wanted = config.getoption("--serial")
    if wanted == "include":
        return
    keep = wanted == "only"
    chosen = [i for i in items if (i.get_closest_marker("serial") is not None) == keep]
    dropped = [i for i in items if (i.get_closest_marker("serial") is not None) != keep]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = chosen


def _ordered(config: pytest.Config, items: list[pytest.Item]) -> Iterator[pytest.Item]:
    """The items module by module (modules in collection order), each module's tests
    reversed or shuffled as the options ask."""
    seed = shuffle_seed(config.getoption("--shuffle"))
    reverse = config.getoption("--reverse")
    if seed is None and not reverse:
        yield from items
        return
    modules: dict[str, list[pytest.Item]] = {}
    for item in items:
        modules.setdefault(item.nodeid.split("::")[0], []).append(item)
    rng = random.Random(seed)
    for tests in modules.values():
        if seed is not None:
            rng.shuffle(tests)
        if reverse:
            tests.reverse()
        yield from tests
