"""Depth-first exhaustive search: the same states as breadth-first, in less working memory.

Only the current path is held as states (the stack); everything seen is a fingerprint with a
parent link (store.py). Counterexamples are valid but usually longer than breadth-first's.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from typing import TypeVar

from dmabuf_model.check.search import TICK_MASK, RawTrace, Run, Stop, overrides
from dmabuf_model.check.store import FingerprintStore

S = TypeVar("S", bound=Hashable)
A = TypeVar("A", bound=Hashable)


def run_dfs(run: Run[S, A]) -> None:
    """run_dfs - explore ``run.model`` depth-first, recording discoveries into ``run``.

    With max_depth (depth counts states, the initial state is depth 1) a state first reached
    on a long path is not expanded again when a shorter path reaches it later, so a bounded
    depth-first search can miss states a bounded breadth-first one finds; the result is then
    marked incomplete either way.
    """
    model = run.model
    canon: Callable[[S], S] | None = model.canonical if run.symmetry else None
    successors = model.successors
    boundary = model.within_boundary if overrides(model, "within_boundary") else None
    store = FingerprintStore()
    seen = store.seen
    parent = store.parent
    action = store.action
    max_states = run.max_states
    max_depth = run.max_depth
    transitions = 0
    expanded = 0
    deepest = 0

    def trace_of(index: int) -> Callable[[], RawTrace]:
        def build() -> RawTrace:
            init, indices = store.trace(index)
            return RawTrace(init, indices, canonical=canon is not None)

        return build

    # Each frame: [state, store index, successor iterator, successors seen so far].
    stack: list[list[object]] = []
    try:
        for i, s in enumerate(run.inits):
            key = canon(s) if canon is not None else s
            idx = store.add_init(hash(key), i)
            if idx is None:
                continue
            run.states += 1
            deepest = max(deepest, 1)
            if run.hits(key):
                run.record_hits(key, trace_of(idx))
            stack.append([key, idx, _expand(successors, key, boundary), 0])
            while stack:
                frame = stack[-1]
                it: Iterator[tuple[int, tuple[A, S]]] = frame[2]  # type: ignore[assignment]
                nxt = next(it, None)
                if nxt is None:
                    stack.pop()
                    cur: S = frame[0]  # type: ignore[assignment]
                    expandable = boundary is None or boundary(cur)
                    if frame[3] == 0 and expandable and run.wants_deadlocks():
                        why = model.deadlock(cur)
                        if why is not None:
                            cidx: int = frame[1]  # type: ignore[assignment]
                            init, indices = store.trace(cidx)
                            raw = RawTrace(init, indices, canonical=canon is not None)
                            run.record_deadlock(why, raw)
                    continue
                k, (_a, t) = nxt
                frame[3] = 1
                transitions += 1
                if canon is not None:
                    t = canon(t)
                fp = hash(t)
                if fp in seen:
                    continue
                seen.add(fp)
                parent.append(frame[1])  # type: ignore[arg-type]
                action.append(k)
                tidx = len(parent) - 1
                if run.hits(t):
                    run.record_hits(t, trace_of(tidx))
                if max_states is not None and len(parent) >= max_states:
                    run.limit(f"max_states={max_states} reached")
                    raise Stop
                depth = len(stack) + 1
                deepest = max(deepest, depth)
                if max_depth is not None and depth >= max_depth:
                    if _has_new_successor(successors, t, seen, canon, boundary):
                        run.limit(f"max_depth={max_depth} reached")
                    continue
                stack.append([t, tidx, _expand(successors, t, boundary), 0])
                expanded += 1
                if not expanded & TICK_MASK:
                    run.states = len(run.inits) + transitions
                    run.tick(len(parent), deepest)
    except Stop:
        pass
    except KeyboardInterrupt:
        run.interrupted = True
    finally:
        run.states = len(run.inits) + transitions
        run.transitions = transitions
        run.unique = len(parent)
        run.depth = deepest
        run.store_bytes = store.nbytes()


def _expand(
    successors: Callable[[S], Iterator[tuple[A, S]]], state: S, boundary: Callable[[S], bool] | None
) -> Iterator[tuple[int, tuple[A, S]]]:
    """The numbered successors of ``state``, or none outside the boundary."""
    if boundary is not None and not boundary(state):
        return iter(())
    return enumerate(successors(state))


def _has_new_successor(
    successors: Callable[[S], Iterator[tuple[A, S]]],
    state: S,
    seen: set[int],
    canon: Callable[[S], S] | None,
    boundary: Callable[[S], bool] | None,
) -> bool:
    if boundary is not None and not boundary(state):
        return False
    for _a, t in successors(state):
        if hash(canon(t) if canon is not None else t) not in seen:
            return True
    return False


__all__ = ["run_dfs"]
