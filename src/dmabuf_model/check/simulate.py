"""Random simulation: seeded random walks over the same Model, for state spaces too big to exhaust.

TLC's simulation mode and stateright's spawn_simulation: each run starts from a random initial
state and takes random enabled actions up to max_steps. The same seed gives the same runs, so
any trace it prints can be reproduced (and replayed with its token).
"""

from __future__ import annotations

import random
from collections.abc import Hashable
from typing import TypeVar

from dmabuf_model.check.model import Model, Property
from dmabuf_model.check.result import CheckResult
from dmabuf_model.check.search import TICK_MASK, RawTrace, Run, Stop, overrides
from dmabuf_model.check.store import fingerprint_set_bytes

S = TypeVar("S", bound=Hashable)
A = TypeVar("A", bound=Hashable)

_SEED_STRIDE = 1_000_003


def simulate(
    model: Model[S, A],
    *,
    seed: int,
    runs: int = 1000,
    max_steps: int = 1000,
    stop_at_first: bool = True,
    progress: bool | None = False,
) -> CheckResult[S, A]:
    """simulate - check ``model`` on ``runs`` random walks of at most ``max_steps`` actions.

    Run r draws from ``random.Random(seed * 1_000_003 + r)``, so each run is reproducible on
    its own. Always and sometimes properties are evaluated on every state visited; an
    eventually property fails on a run that ends, or revisits one of its own states, without
    the condition having held; a run that ends where ``model.deadlock`` says so is a
    deadlock. The result is never ``complete`` (a simulation is not exhaustive).

    Raises ValueError for runs < 1 or max_steps < 0, ModelDefinitionError for a bad model.
    """
    if runs < 1:
        raise ValueError(f"runs must be >= 1, got runs={runs}")
    if max_steps < 0:
        raise ValueError(f"max_steps must be >= 0, got max_steps={max_steps}")
    run: Run[S, A] = Run(model, engine="simulation", stop_at_first=stop_at_first, progress=progress)
    run.exhaustive = False
    run.notes.append(f"Random simulation: seed={seed}, runs={runs}, max_steps={max_steps}.")
    boundary = model.within_boundary if overrides(model, "within_boundary") else None
    successors = model.successors
    seen: set[int] = set()
    states = 0
    deepest = 0
    try:
        for r in range(runs):
            run.runs = r + 1
            rng = random.Random(seed * _SEED_STRIDE + r)
            i = rng.randrange(len(run.inits))
            state = run.inits[i]
            indices: list[int] = []
            position: dict[S, int] = {state: 0}
            pending: list[Property[S]] = [p for p in run.eventually if p.name not in run.found]
            states += 1
            seen.add(hash(state))
            pending = _visit(run, state, i, indices, pending)
            for _ in range(max_steps):
                if boundary is not None and not boundary(state):
                    break
                succ = list(successors(state))
                if not succ:
                    if run.wants_deadlocks():
                        why = model.deadlock(state)
                        if why is not None:
                            run.record_deadlock(why, RawTrace(i, tuple(indices)))
                    for p in pending:
                        run.record_eventually(p, RawTrace(i, tuple(indices)), "ends")
                    break
                k = rng.randrange(len(succ))
                state = succ[k][1]
                indices.append(k)
                states += 1
                seen.add(hash(state))
                pending = _visit(run, state, i, indices, pending)
                first = position.get(state)
                if first is not None:
                    for p in pending:
                        raw = RawTrace(i, tuple(indices), loop_start=first)
                        run.record_eventually(p, raw, "loops")
                    pending = [p for p in pending if p.name not in run.found]
                else:
                    position[state] = len(indices)
                if len(indices) >= deepest:
                    deepest = len(indices) + 1
                if not states & TICK_MASK:
                    run.states = states
                    run.tick(len(seen), deepest)
            deepest = max(deepest, 1)
    except Stop:
        pass
    except KeyboardInterrupt:
        run.interrupted = True
    except BaseException:
        run.close()
        raise
    finally:
        run.states = states
        run.transitions = max(states - run.runs, 0)
        run.unique = len(seen)
        run.depth = deepest
        run.store_bytes = fingerprint_set_bytes(seen)
        run.eventually_checked = True
    return run.finish()


def _visit(
    run: Run[S, A], state: S, init: int, indices: list[int], pending: list[Property[S]]
) -> list[Property[S]]:
    """Evaluate the safety properties on ``state``; return the eventually ones still pending."""
    if run.hits(state):
        run.record_hits(state, lambda: RawTrace(init, tuple(indices)))
    if pending:
        return [p for p in pending if not p.condition(state)]
    return pending


__all__ = ["simulate"]
