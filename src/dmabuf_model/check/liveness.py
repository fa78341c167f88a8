"""Eventually properties: find a maximal path on which the condition never holds.

No fairness is assumed (model.Expectation). A counterexample is a path from an initial state,
through states where the condition is false, that either ends (no action enabled) or reaches a
cycle of such states (a lasso: stem, then a loop that repeats forever). This is exact, unlike
stateright's acyclic-only check: a depth-first search of the "condition false" subgraph finds a
terminal state or a back edge whenever one is reachable. The paths are valid, not the shortest.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from typing import TypeVar

from dmabuf_model.check.model import Property
from dmabuf_model.check.search import TICK_MASK, RawTrace, Run, Stop, overrides

S = TypeVar("S", bound=Hashable)
A = TypeVar("A", bound=Hashable)

_DONE = -1


def run_eventually(run: Run[S, A]) -> None:
    """run_eventually - check every eventually property of ``run``; record counterexamples.

    Runs after the safety search. Honours symmetry (the search runs over representatives and
    the lasso is re-mapped onto concrete states), max_depth and max_states (a path cut by a
    bound is not a counterexample; the result is marked incomplete), the model's boundary,
    and Ctrl-C.
    """
    if not run.eventually:
        run.eventually_checked = True
        return
    try:
        for prop in run.eventually:
            if prop.name in run.found:
                continue
            found = _search(run, prop)
            if found is not None:
                raw, how = found
                run.record_eventually(prop, raw, how)
        run.eventually_checked = True
    except Stop:
        run.eventually_checked = True
    except KeyboardInterrupt:
        run.interrupted = True


def _search(run: Run[S, A], prop: Property[S]) -> tuple[RawTrace, str] | None:
    """Depth-first search of the states where ``prop`` is false; the first terminal state or
    back edge found, as a raw trace and "ends" / "loops"."""
    model = run.model
    cond = prop.condition
    canon: Callable[[S], S] | None = model.canonical if run.symmetry else None
    boundary = model.within_boundary if overrides(model, "within_boundary") else None
    max_depth = run.max_depth
    # fingerprint -> position on the stack while on it, _DONE once fully explored
    color: dict[int, int] = {}
    visited = 0
    for i, s0 in enumerate(run.inits):
        c0 = canon(s0) if canon is not None else s0
        if cond(c0):
            continue
        fp0 = hash(c0)
        if fp0 in color:
            continue
        color[fp0] = 0
        # Each frame: (state, fingerprint, numbered successors, [has any successor]).
        stack: list[tuple[S, int, Iterator[tuple[int, tuple[A, S]]], list[bool]]] = [
            (c0, fp0, _numbered(model.successors, c0, boundary), [False])
        ]
        indices: list[int] = []
        while stack:
            state, fp, it, has_succ = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                expandable = boundary is None or boundary(state)
                if not has_succ[0] and expandable:
                    return RawTrace(i, tuple(indices), canonical=canon is not None), "ends"
                color[fp] = _DONE
                stack.pop()
                if indices:
                    indices.pop()
                continue
            k, (_a, t) = nxt
            has_succ[0] = True
            if canon is not None:
                t = canon(t)
            if cond(t):
                continue
            ft = hash(t)
            c = color.get(ft)
            if c is None:
                if run.max_states is not None and len(color) >= run.max_states:
                    run.limit(f"max_states={run.max_states} reached (liveness search)")
                    return None
                if max_depth is not None and len(stack) + 1 >= max_depth:
                    run.limit(f"max_depth={max_depth} reached (liveness search)")
                    continue
                color[ft] = len(stack)
                indices.append(k)
                stack.append((t, ft, _numbered(model.successors, t, boundary), [False]))
                visited += 1
                if not visited & TICK_MASK:
                    run.tick(run.unique, run.depth)
            elif c != _DONE:
                raw = RawTrace(i, (*indices, k), loop_start=c, canonical=canon is not None)
                return raw, "loops"
    return None


def _numbered(
    successors: Callable[[S], Iterator[tuple[A, S]]], state: S, boundary: Callable[[S], bool] | None
) -> Iterator[tuple[int, tuple[A, S]]]:
    if boundary is not None and not boundary(state):
        return iter(())
    return enumerate(successors(state))


__all__ = ["run_eventually"]
