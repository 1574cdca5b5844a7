"""Maglev lookup table: balance, minimal disruption, determinism."""

from __future__ import annotations

from collections import Counter

import pytest

from testbed import maglev


def names(n: int) -> list[str]:
    return [f"10.0.{i // 250}.{i % 250 + 4}:80" for i in range(n)]


@pytest.mark.parametrize("n", [1, 2, 3, 4, 7, 10, 25])
def test_every_backend_gets_its_fair_share_of_buckets(n):
    table = maglev.build_table(names(n), 509)
    counts = Counter(table)
    assert set(counts) == set(range(n))
    assert -1 not in counts
    assert max(counts.values()) - min(counts.values()) <= 1 + 509 // (n * 10)


def test_removing_one_backend_moves_only_its_buckets_and_few_others():
    backends = names(10)
    before = maglev.build_table(backends, 509)
    gone = backends[3]
    after_names = [b for b in backends if b != gone]
    after = maglev.build_table(after_names, 509)
    moved_survivors = sum(
        1 for b, a in zip(before, after) if backends[b] != gone and after_names[a] != backends[b]
    )
    # Buckets of the survivors stay where they were, nearly all of them (the paper: ~1-2 %).
    assert moved_survivors / 509 < 0.05
    assert all(after_names[a] != gone for a in after)


def test_adding_a_backend_takes_about_its_share_only():
    backends = names(8)
    before = maglev.build_table(backends, 509)
    after_names = [*backends, "10.0.9.9:80"]
    after = maglev.build_table(after_names, 509)
    changed = sum(1 for b, a in zip(before, after) if backends[b] != after_names[a])
    assert changed <= 509 / 9 * 1.5


def test_deterministic():
    # The controller may restart: the same targets must give the same table.
    a = maglev.build_table(["x", "y", "z"], 251)
    assert a == maglev.build_table(["x", "y", "z"], 251)
    assert a != maglev.build_table(["x", "y", "w"], 251)


def test_empty_and_bad_sizes():
    assert maglev.build_table([], 7) == [-1] * 7
    with pytest.raises(ValueError, match="not prime"):
        maglev.build_table(["a"], 100)
    with pytest.raises(ValueError, match="must be unique"):
        maglev.build_table(["a", "a"], 7)
    assert maglev.lookup([0, 1, 2], 7) == 1
