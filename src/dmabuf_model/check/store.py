"""The visited store: 64-bit fingerprints of the states seen, plus a parent link per state.

TLC's layout: a set of fingerprints answers "seen before?", and two flat arrays indexed by
discovery order hold each state's parent and the action index that reached it, so a trace is
rebuilt by following parents and replaying action indices. No state object is kept.
"""

from __future__ import annotations

import sys
from array import array
from itertools import islice

from dmabuf_model.check.search import chain


class FingerprintStore:
    """Fingerprints seen, and for discovery index i: ``parent[i]`` and ``action[i]``.

    ``parent[i]`` is -1 for an initial state, whose ``action[i]`` is its init index. The
    fingerprint is ``hash(state)``: 64 bits on 64-bit CPython, exact for small-int states.
    """

    __slots__ = ("action", "parent", "seen")

    def __init__(self) -> None:
        self.seen: set[int] = set()
        self.parent = array("q")
        self.action = array("q")

    def __len__(self) -> int:
        return len(self.parent)

    def add_init(self, fingerprint: int, init_index: int) -> int | None:
        """Store an initial state; its index, or None when it was already seen."""
        if fingerprint in self.seen:
            return None
        self.seen.add(fingerprint)
        self.parent.append(-1)
        self.action.append(init_index)
        return len(self.parent) - 1

    def trace(self, index: int) -> tuple[int, tuple[int, ...]]:
        """(init index, action indices) leading to stored state ``index``."""
        return chain(self.parent, self.action, index)

    def nbytes(self) -> int:
        """Bytes held: the set's table, its int objects (sampled) and both arrays."""
        return (
            fingerprint_set_bytes(self.seen) + array_bytes(self.parent) + array_bytes(self.action)
        )


def fingerprint_set_bytes(seen: set[int]) -> int:
    """Size of a set of ints: its hash table plus the int objects, sampled for their size."""
    if not seen:
        return sys.getsizeof(seen)
    sample = list(islice(seen, 256))
    per_int = sum(sys.getsizeof(x) for x in sample) / len(sample)
    return sys.getsizeof(seen) + int(per_int * len(seen))


def set_bytes_estimate(n: int) -> int:
    """Size CPython gives a set of ``n`` 64-bit ints: a table kept at most 60 % full (16 bytes
    a slot) plus one 36-byte int object per element."""
    table = 8
    while table * 3 <= n * 5:
        table *= 2
    return 16 * table + 36 * n + 200


def array_bytes(a: array[int]) -> int:
    """Bytes allocated to an array's buffer (capacity, not just length) and its header."""
    return sys.getsizeof(a)


__all__ = ["FingerprintStore", "array_bytes", "fingerprint_set_bytes", "set_bytes_estimate"]
