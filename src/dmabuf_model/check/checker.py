"""check(): the one entry point for exhaustive checking, with keyword-only options.

Picks the strategy (breadth-first, depth-first, parallel, vectorised), runs the safety search,
then the liveness search for eventually properties, and returns a CheckResult (style-guide B5:
one verb, keywords instead of a builder chain).
"""

from __future__ import annotations

import os
from collections.abc import Hashable
from typing import Literal, TypeVar

from dmabuf_model.check.bfs import run_bfs
from dmabuf_model.check.dfs import run_dfs
from dmabuf_model.check.liveness import run_eventually
from dmabuf_model.check.model import Model
from dmabuf_model.check.result import CheckResult
from dmabuf_model.check.search import Run
from dmabuf_model.errors import ModelDefinitionError

S = TypeVar("S", bound=Hashable)
A = TypeVar("A", bound=Hashable)

Strategy = Literal["bfs", "dfs"]


def check(
    model: Model[S, A],
    *,
    strategy: Strategy = "bfs",
    symmetry: bool = False,
    workers: int = 1,
    max_states: int | None = None,
    max_depth: int | None = None,
    stop_at_first: bool = True,
    progress: bool | None = False,
    vectorised: bool | None = None,
) -> CheckResult[S, A]:
    """check - explore every reachable state of ``model`` and check its properties.

    ``strategy``: "bfs" (shortest counterexamples) or "dfs" (less memory, longer traces).
    ``symmetry``: explore one representative per orbit of ``model.canonical`` (the model must
    override it); verdicts are unchanged and traces are re-mapped onto concrete states.
    ``workers``: processes for breadth-first search; 0 means one per core.
    ``max_states``/``max_depth``: bounds that, when hit, mark the result incomplete (depth
    counts states on a path, the initial state is depth 1).
    ``stop_at_first``: stop at the first failure (a counterexample or a deadlock); False goes
    on and reports every property's first discovery.
    ``progress``: live counters on stderr; None shows them only when stderr is a terminal.
    ``vectorised``: use the numpy engine for a GuardedCommandModel (None: whenever the model
    supports it and symmetry is off; False: always the generic engine).

    Eventually properties are checked after the safety search, by a depth-first search of the
    states where the condition is false (liveness.py); they are skipped if the safety search
    stopped first, and the result lists them as unchecked.

    Raises ValueError for a bad option, ModelDefinitionError for a model defined wrongly.
    Ctrl-C returns the result so far, marked interrupted.
    """
    if strategy not in ("bfs", "dfs"):
        raise ValueError(f"strategy must be 'bfs' or 'dfs', got strategy={strategy!r}")
    if workers < 0:
        raise ValueError(f"workers must be >= 0 (0 means one per core), got workers={workers}")
    if max_states is not None and max_states < 1:
        raise ValueError(f"max_states must be >= 1 or None, got max_states={max_states}")
    if max_depth is not None and max_depth < 1:
        raise ValueError(f"max_depth must be >= 1 or None, got max_depth={max_depth}")
    n_workers = workers or (os.cpu_count() or 1)
    if strategy == "dfs" and n_workers > 1:
        raise ValueError(
            f"workers={workers} needs strategy='bfs': the parallel search is breadth-first"
        )
    if symmetry and not model.has_symmetry:
        raise ModelDefinitionError(
            f"symmetry=True, but {type(model).__name__} does not override canonical(); "
            "implement canonical(state) to return one representative per orbit, or drop "
            "symmetry=True."
        )
    use_vector = _use_vectorised(model, strategy, symmetry, vectorised)
    if use_vector:
        engine = "vectorised bfs (numpy)"
    elif strategy == "dfs":
        engine = "dfs"
    else:
        engine = "parallel bfs" if n_workers > 1 else "bfs"
    run: Run[S, A] = Run(
        model,
        engine=engine,
        symmetry=symmetry,
        workers=n_workers if strategy == "bfs" else 1,
        stop_at_first=stop_at_first,
        max_states=max_states,
        max_depth=max_depth,
        progress=progress,
    )
    try:
        if use_vector:
            from dmabuf_model.check.vector_bfs import run_vector_bfs

            run_vector_bfs(run, n_workers)  # type: ignore[arg-type]
        elif strategy == "dfs":
            run_dfs(run)
        elif n_workers > 1:
            from dmabuf_model.check.parallel import run_parallel_bfs

            run_parallel_bfs(run, n_workers)
        else:
            run_bfs(run)
        if not run.stopped and not run.interrupted:
            run_eventually(run)
    except BaseException:
        run.close()
        raise
    return run.finish()


def _use_vectorised(
    model: Model[S, A], strategy: str, symmetry: bool, vectorised: bool | None
) -> bool:
    from dmabuf_model.check.vector import GuardedCommandModel

    why_not = ""
    if not isinstance(model, GuardedCommandModel):
        why_not = f"{type(model).__name__} is not a GuardedCommandModel"
    elif strategy != "bfs":
        why_not = "the vectorised engine is breadth-first only"
    elif symmetry:
        why_not = "the vectorised engine does not do symmetry reduction"
    else:
        why_not = model.vector_blocker()
    if vectorised is None:
        return not why_not
    if vectorised and why_not:
        raise ValueError(f"vectorised=True is not possible here: {why_not}")
    return vectorised


__all__ = ["Strategy", "check"]
