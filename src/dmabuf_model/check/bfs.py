"""Breadth-first exhaustive search: every counterexample it reports is a shortest one.

TLC's default mode over any Model: a level at a time, states stored as fingerprints with a parent
link (store.py), properties evaluated on each state when it is first discovered.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from dmabuf_model.check.search import TICK_MASK, RawTrace, Run, Stop, overrides
from dmabuf_model.check.store import FingerprintStore

S = TypeVar("S", bound=Hashable)
A = TypeVar("A", bound=Hashable)


def run_bfs(run: Run[S, A]) -> None:
    """run_bfs - explore ``run.model`` breadth-first, recording discoveries into ``run``.

    Honours symmetry (expands one canonical representative per orbit), max_states, max_depth
    (depth counts states, the initial state is depth 1), stop_at_first and Ctrl-C.
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
    level: list[S] = []

    def trace_of(index: int) -> Callable[[], RawTrace]:
        def build() -> RawTrace:
            init, indices = store.trace(index)
            return RawTrace(init, indices, canonical=canon is not None)

        return build

    depth = 0
    base = 0
    transitions = 0
    nxt: list[S] = []
    try:
        for i, s in enumerate(run.inits):
            key = canon(s) if canon is not None else s
            idx = store.add_init(hash(key), i)
            if idx is None:
                continue
            level.append(key)
            run.states += 1
            if run.hits(key):
                run.record_hits(key, trace_of(idx))
        seen_add = seen.add
        parent_append = parent.append
        action_append = action.append
        while level:
            depth += 1
            run.depth = depth
            if run.max_depth is not None and depth >= run.max_depth:
                if _any_new_successor(model, level, seen, canon, boundary):
                    run.limit(f"max_depth={run.max_depth} reached")
                break
            deadlocks = run.wants_deadlocks()
            nxt = []
            nxt_append = nxt.append
            checks = bool(run.active_always or run.active_sometimes)
            for off, s in enumerate(level):
                pidx = base + off
                if boundary is not None and not boundary(s):
                    continue
                n = 0
                for k, (_a, t) in enumerate(successors(s)):
                    n += 1
                    if canon is not None:
                        t = canon(t)
                    fp = hash(t)
                    if fp in seen:
                        continue
                    seen_add(fp)
                    parent_append(pidx)
                    action_append(k)
                    nxt_append(t)
                    if checks and run.hits(t):
                        run.record_hits(t, trace_of(len(parent) - 1))
                        checks = bool(run.active_always or run.active_sometimes)
                    if max_states is not None and len(parent) >= max_states:
                        transitions += n
                        run.limit(f"max_states={max_states} reached")
                        raise Stop
                transitions += n
                if n == 0 and deadlocks:
                    why = model.deadlock(s)
                    if why is not None:
                        init, indices = store.trace(pidx)
                        run.record_deadlock(
                            why, RawTrace(init, indices, canonical=canon is not None)
                        )
                        deadlocks = False
                if not off & TICK_MASK:
                    run.states = len(run.inits) + transitions
                    run.tick(len(parent), depth)
            base += len(level)
            level = nxt
            nxt = []
    except Stop:
        pass
    except KeyboardInterrupt:
        run.interrupted = True
    finally:
        run.states = len(run.inits) + transitions
        run.transitions = transitions
        run.unique = len(parent)
        run.store_bytes = store.nbytes()
        run.depth = depth + 1 if nxt else max(depth, 1 if parent else 0)


def _any_new_successor(
    model: Any, level: list[Any], seen: set[int], canon: Any, boundary: Any
) -> bool:
    """True when some state of ``level`` has a successor not yet seen (the depth bound cut)."""
    for s in level:
        if boundary is not None and not boundary(s):
            continue
        for _a, t in model.successors(s):
            if hash(canon(t) if canon is not None else t) not in seen:
                return True
    return False


__all__ = ["run_bfs"]
