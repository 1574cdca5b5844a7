"""Maglev consistent hashing (Eisenbud et al., NSDI 2016): a lookup table of M buckets.

Each backend fills buckets in its own pseudo-random permutation of the table; backends take
turns until every bucket is owned. Every backend ends with M/N or M/N+1 buckets (balance),
and adding or removing one backend changes few buckets of the others (minimal disruption).
The NLB maps a flow's hash to a bucket, the bucket to a target.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

DEFAULT_SIZE = 509  # prime, well above 100 x the targets of a lab target group (balance)


def _hash(text: str, salt: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{salt}:{text}".encode()).digest()[:8], "big")


def is_prime(n: int) -> bool:
    if n < 2:
        return False
    i = 2
    while i * i <= n:
        if n % i == 0:
            return False
        i += 1
    return True


def permutation(backend: str, size: int) -> tuple[int, int]:
    """(offset, skip) of a backend's permutation: bucket j of its list is offset + j*skip."""
    offset = _hash(backend, "offset") % size
    skip = _hash(backend, "skip") % (size - 1) + 1
    return offset, skip


def build_table(backends: Sequence[str], size: int = DEFAULT_SIZE) -> list[int]:
    """Bucket -> index into `backends` (-1 for every bucket when there is no backend).

    size must be prime so every permutation visits every bucket."""
    if not is_prime(size):
        raise ValueError(f"Maglev table size {size} is not prime")
    if len(set(backends)) != len(backends):
        raise ValueError("backend names must be unique")
    table = [-1] * size
    if not backends:
        return table
    perms = [permutation(b, size) for b in backends]
    nexts = [0] * len(backends)
    filled = 0
    while True:
        for i, (offset, skip) in enumerate(perms):
            while True:
                bucket = (offset + nexts[i] * skip) % size
                nexts[i] += 1
                if table[bucket] < 0:
                    break
            table[bucket] = i
            filled += 1
            if filled == size:
                return table


def lookup(table: Sequence[int], flow_hash: int) -> int:
    """Backend index for a flow hash."""
    return table[flow_hash % len(table)]
