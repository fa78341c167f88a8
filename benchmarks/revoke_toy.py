"""The toy revoke model: one buffer revoked while N importers map it and run DMA on it.

The benchmark model of the checker (benchmarks/run.py) and its Promela twin revoke_toy.pml. It
is the smallest picture of the DMA-buf revoke problem: the exporter may reuse the memory only
once no importer still has DMA in flight. Written with the checker's public API only, as a
GuardedCommandModel, so the vectorised engine and every generic strategy run on the same object.

Buffer: LIVE -> REVOKING -> REVOKED -> REUSED. Importer i: UNMAPPED / MAPPED / INVALIDATED, plus
a DMA-in-flight bit. With the guard on "finish" (no DMA in flight) the model is safe and has
3^N + 5^N + 2^N + 2^N distinct states (1,973,832 for N = 9; SPIN, TLC and Rumur agree);
without it, a 6-step path reuses the buffer under a DMA.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from dmabuf_model.check import GuardedCommandModel, Model, Property, all_of, any_of, not_
from dmabuf_model.check.vector import State

LIVE, REVOKING, REVOKED, REUSED = 0, 1, 2, 3
UNMAPPED, MAPPED, INVALIDATED = 0, 1, 2


class RevokeToy(GuardedCommandModel):
    """The toy revoke model with ``n`` importers; ``guard=False`` drops the DMA check on finish."""

    def __init__(self, n: int, *, guard: bool = True, symmetric: bool = False) -> None:
        super().__init__()
        self.n = n
        self.guard = guard
        self.buf = buf = self.variable("buf", 4, init=LIVE)
        self.map = mp = self.array("map", n, 3, init=UNMAPPED)
        self.dma = dma = self.array("dma", n, 2, init=0)
        for i in range(n):
            m, d = mp[i], dma[i]
            self.command(
                f"map({i})",
                lambda v, m=m: (v[buf] == LIVE) & (v[m] == UNMAPPED),
                lambda v, m=m: {m: MAPPED},
            )
            self.command(
                f"start_dma({i})",
                lambda v, m=m, d=d: (v[m] == MAPPED) & (v[d] == 0),
                lambda v, d=d: {d: 1},
            )
            self.command(f"end_dma({i})", lambda v, d=d: v[d] == 1, lambda v, d=d: {d: 0})
            self.command(
                f"unmap({i})",
                lambda v, m=m, d=d: (v[m] == MAPPED) & (v[d] == 0),
                lambda v, m=m: {m: UNMAPPED},
            )
            self.command(
                f"invalidate({i})",
                lambda v, m=m: (v[buf] == REVOKING) & (v[m] == MAPPED),
                lambda v, m=m: {m: INVALIDATED},
            )
        self.command("revoke", lambda v: v[buf] == LIVE, lambda v: {buf: REVOKING})
        if guard:
            self.command(
                "finish",
                lambda v: (
                    (v[buf] == REVOKING)
                    & all_of(v[m] != MAPPED for m in mp)
                    & all_of(v[d] == 0 for d in dma)
                ),
                lambda v: {buf: REVOKED},
            )
        else:
            self.command(
                "finish",
                lambda v: (v[buf] == REVOKING) & all_of(v[m] != MAPPED for m in mp),
                lambda v: {buf: REVOKED},
            )
        self.command("reuse", lambda v: v[buf] == REVOKED, lambda v: {buf: REUSED})
        if symmetric:
            self.symmetric(mp, dma)

    def properties(self) -> Sequence[Property[State]]:
        buf, dma = self.buf, self.dma
        return [
            Property.always(
                "no_dma_after_reuse",
                lambda v: (v[buf] != REUSED) | not_(any_of(v[d] == 1 for d in dma)),
                cite="toy model of core-semantics §10 (no access after revoke)",
            ),
        ]


def expected_states(n: int) -> int:
    """3^N (LIVE) + 5^N (REVOKING) + 2^N (REVOKED) + 2^N (REUSED)."""
    return 3**n + 5**n + 2 * 2**n


class RevokeToyPlain(Model[State, str]):
    """The same model hand-written as a plain Model with a ``successors`` override.

    The state is (buf, map[0..N-1], dma[0..N-1]) as a tuple of small ints, the layout
    RevokeToy uses, so the two agree state for state. This measures the generic engine (what
    any Python model gets) against the vectorised one.
    """

    def __init__(self, n: int, *, guard: bool = True) -> None:
        self.n = n
        self.guard = guard

    def init_states(self) -> Sequence[State]:
        return [(LIVE,) + (UNMAPPED,) * self.n + (0,) * self.n]

    def actions(self, state: State) -> list[str]:
        return [a for a, _ in self.successors(state)]

    def next_state(self, state: State, action: str) -> State | None:
        for a, t in self.successors(state):
            if a == action:
                return t
        return None

    def successors(self, s: State) -> Iterator[tuple[str, State]]:
        n = self.n
        buf = s[0]
        for i in range(n):
            m = 1 + i
            d = 1 + n + i
            mi = s[m]
            di = s[d]
            if buf == LIVE and mi == UNMAPPED:
                yield f"map({i})", (*s[:m], MAPPED, *s[m + 1 :])
            if mi == MAPPED and not di:
                yield f"start_dma({i})", (*s[:d], 1, *s[d + 1 :])
            if di:
                yield f"end_dma({i})", (*s[:d], 0, *s[d + 1 :])
            if mi == MAPPED and not di:
                yield f"unmap({i})", (*s[:m], UNMAPPED, *s[m + 1 :])
            if buf == REVOKING and mi == MAPPED:
                yield f"invalidate({i})", (*s[:m], INVALIDATED, *s[m + 1 :])
        if buf == LIVE:
            yield "revoke", (REVOKING, *s[1:])
        if (
            buf == REVOKING
            and MAPPED not in s[1 : 1 + n]
            and (not self.guard or 1 not in s[1 + n :])
        ):
            yield "finish", (REVOKED, *s[1:])
        if buf == REVOKED:
            yield "reuse", (REUSED, *s[1:])

    def properties(self) -> Sequence[Property[State]]:
        n = self.n
        return [
            Property.always(
                "no_dma_after_reuse",
                lambda s: s[0] != REUSED or 1 not in s[1 + n :],
                cite="toy model of core-semantics §10 (no access after revoke)",
            ),
        ]
