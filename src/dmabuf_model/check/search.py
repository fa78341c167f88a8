"""Bookkeeping every strategy shares: properties, discoveries, counters, limits and progress.

The strategies (bfs, dfs, parallel, vectorised, simulation) only explore; this module decides what
a state means for each property, when to stop, and turns what was found into a CheckResult with
concrete, replayable paths (path.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from dmabuf_model.check.model import DEADLOCK, Expectation, Model, Property
from dmabuf_model.check.path import Path, concrete_path, path_from_indices
from dmabuf_model.check.report import ProgressDisplay
from dmabuf_model.check.result import CheckResult, Discovery, DiscoveryKind, Statistics
from dmabuf_model.errors import ModelDefinitionError

S = TypeVar("S", bound=Hashable)
A = TypeVar("A", bound=Hashable)

TICK_MASK = 1023
"""Strategies call Run.tick every TICK_MASK + 1 expansions (cheap enough, often enough)."""


class Stop(Exception):
    """Raised inside a strategy to end the search early (first failure found, a bound hit)."""


@dataclass(frozen=True, slots=True)
class RawTrace:
    """Where a discovery is: the initial-state index and the action indices after it.

    ``canonical`` traces were recorded among symmetry representatives and are made concrete
    by path.concrete_path before anyone sees them.
    """

    init_index: int
    indices: tuple[int, ...]
    loop_start: int | None = None
    canonical: bool = False


@dataclass(frozen=True, slots=True)
class Found:
    """A discovery before its path is rebuilt."""

    name: str
    kind: DiscoveryKind
    trace: RawTrace
    expectation: Expectation | None
    cite: str
    description: str = ""


def model_properties(model: Model[Any, Any]) -> tuple[Property[Any], ...]:
    """model_properties - the model's properties, validated.

    Raises ModelDefinitionError for a duplicate name, the reserved name "deadlock", or an
    object that is not a Property.
    """
    props = tuple(model.properties())
    seen: set[str] = set()
    for p in props:
        if not isinstance(p, Property):
            raise ModelDefinitionError(
                f"{type(model).__name__}.properties() returned {p!r}, which is not a Property; "
                "build properties with Property.always/sometimes/eventually."
            )
        if p.name == DEADLOCK:
            raise ModelDefinitionError(
                f'{type(model).__name__} declares a property named "{DEADLOCK}", a name the '
                "checker reserves for deadlocks; override Model.deadlock() instead or rename it."
            )
        if p.name in seen:
            raise ModelDefinitionError(
                f'{type(model).__name__} declares two properties named "{p.name}"; property '
                "names identify discoveries in reports and tests, so each must be unique."
            )
        seen.add(p.name)
    return props


def model_init_states(model: Model[S, Any]) -> list[S]:
    """model_init_states - the initial states, checked to exist and to be hashable.

    Raises ModelDefinitionError otherwise.
    """
    inits = list(model.init_states())
    if not inits:
        raise ModelDefinitionError(
            f"{type(model).__name__}.init_states() returned no state; a model needs at least one."
        )
    for s in inits:
        try:
            hash(s)
        except TypeError as exc:
            raise ModelDefinitionError(
                f"{type(model).__name__} has an unhashable initial state ({exc}); states must be "
                "values: tuples or frozen dataclasses, with no list, dict or set inside."
            ) from None
    return inits


def overrides(model: Model[Any, Any], name: str) -> bool:
    """True when the model's class overrides Model's method ``name``."""
    return getattr(type(model), name) is not getattr(Model, name)


class Run(Generic[S, A]):
    """One check or simulation in progress: what is still to find, what was found, the counters.

    Strategies evaluate ``active_always``/``active_sometimes`` themselves in their hot loop
    (``hits``), record discoveries with the ``record_*`` methods (which raise Stop when the run
    should end) and set the counters; ``finish`` builds the CheckResult.
    """

    def __init__(
        self,
        model: Model[S, A],
        *,
        engine: str,
        symmetry: bool = False,
        workers: int = 1,
        stop_at_first: bool = True,
        max_states: int | None = None,
        max_depth: int | None = None,
        progress: bool | None = False,
    ) -> None:
        self.model = model
        self.properties = model_properties(model)
        self.inits: list[S] = model_init_states(model)
        self.engine = engine
        self.symmetry = symmetry
        self.workers = workers
        self.stop_at_first = stop_at_first
        self.max_states = max_states
        self.max_depth = max_depth
        self.active_always: list[Property[S]] = [
            p for p in self.properties if p.expectation is Expectation.ALWAYS
        ]
        self.active_sometimes: list[Property[S]] = [
            p for p in self.properties if p.expectation is Expectation.SOMETIMES
        ]
        self.eventually: list[Property[S]] = [
            p for p in self.properties if p.expectation is Expectation.EVENTUALLY
        ]
        self.eventually_checked = False
        self.found: dict[str, Found] = {}
        self.states = 0
        self.unique = 0
        self.transitions = 0
        self.depth = 0
        self.store_bytes = 0
        self.fingerprint_bits: int | None = 64
        self.runs = 0
        self.limits: list[str] = []
        self.notes: list[str] = []
        self.interrupted = False
        self.stopped = False
        self.exhaustive = True
        self._t0 = time.perf_counter()
        self._progress = ProgressDisplay(progress)

    # -- the hot path ---------------------------------------------------------------------------

    def hits(self, state: S) -> bool:
        """True when ``state`` violates an active always or satisfies an active sometimes."""
        for p in self.active_always:
            if not p.condition(state):
                return True
        return any(p.condition(state) for p in self.active_sometimes)

    def record_hits(self, state: S, trace: Callable[[], RawTrace]) -> None:
        """Record every property ``state`` discovers (its trace built once); Stop if asked."""
        fired = [p for p in self.active_always if not p.condition(state)]
        fired += [p for p in self.active_sometimes if p.condition(state)]
        if not fired:
            return
        raw = trace()
        failure = False
        for p in fired:
            if p.expectation is Expectation.ALWAYS:
                self.active_always.remove(p)
                self.found[p.name] = Found(p.name, "counterexample", raw, p.expectation, p.cite)
                failure = True
            else:
                self.active_sometimes.remove(p)
                self.found[p.name] = Found(p.name, "example", raw, p.expectation, p.cite)
        if failure and self.stop_at_first:
            self.stopped = True
            raise Stop

    def record_property(self, prop: Property[S], raw: RawTrace) -> None:
        """Record a discovery for an always or sometimes property found elsewhere (a worker)."""
        if prop.name in self.found:
            return
        if prop.expectation is Expectation.ALWAYS:
            self.active_always.remove(prop)
            self.found[prop.name] = Found(
                prop.name, "counterexample", raw, prop.expectation, prop.cite
            )
            if self.stop_at_first:
                self.stopped = True
                raise Stop
        else:
            self.active_sometimes.remove(prop)
            self.found[prop.name] = Found(prop.name, "example", raw, prop.expectation, prop.cite)

    def wants_deadlocks(self) -> bool:
        """True while a deadlock is still worth looking for (the model defines deadlock())."""
        return DEADLOCK not in self.found and overrides(self.model, "deadlock")

    def record_deadlock(self, description: str, raw: RawTrace) -> None:
        """Record the first deadlock; Stop if the run stops at the first failure."""
        if DEADLOCK in self.found:
            return
        self.found[DEADLOCK] = Found(DEADLOCK, "deadlock", raw, None, "", description)
        if self.stop_at_first:
            self.stopped = True
            raise Stop

    def record_eventually(self, prop: Property[S], raw: RawTrace, how: str) -> None:
        """Record an eventually counterexample (``how``: "ends" or "loops"); Stop if asked."""
        if prop.name in self.found:
            return
        desc = f"the path {how} without the condition holding"
        self.found[prop.name] = Found(
            prop.name, "counterexample", raw, prop.expectation, prop.cite, desc
        )
        if self.stop_at_first:
            self.stopped = True
            raise Stop

    def limit(self, why: str) -> None:
        """Note that a bound cut the search short (the result will be incomplete)."""
        if why not in self.limits:
            self.limits.append(why)

    def tick(self, unique: int, depth: int) -> None:
        """Refresh the progress display (throttled inside)."""
        self._progress.update(self.states, unique, depth, time.perf_counter() - self._t0)

    @property
    def elapsed(self) -> float:
        """Seconds since the run started."""
        return time.perf_counter() - self._t0

    # -- the result -----------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the progress display (idempotent; finish calls it too)."""
        self._progress.close()

    def finish(self) -> CheckResult[S, A]:
        """Build the CheckResult: concrete paths, never-reached and unchecked lists, statistics."""
        seconds = self.elapsed
        self._progress.close()
        discoveries: dict[str, Discovery[S, A]] = {}
        for f in self.found.values():
            discoveries[f.name] = Discovery(
                f.name, f.kind, self.build_path(f.trace), f.expectation, f.cite, f.description
            )
        never = tuple(
            p.name
            for p in self.properties
            if p.expectation is Expectation.SOMETIMES and p.name not in self.found
        )
        unchecked: tuple[str, ...] = ()
        if not self.eventually_checked:
            unchecked = tuple(p.name for p in self.eventually if p.name not in self.found)
        stats = Statistics(
            states=self.states,
            unique=self.unique,
            transitions=self.transitions,
            max_depth=self.depth,
            seconds=seconds,
            store_bytes=self.store_bytes,
            engine=self.engine,
            workers=self.workers,
            symmetry=self.symmetry,
            fingerprint_bits=self.fingerprint_bits,
            runs=self.runs,
        )
        complete = self.exhaustive and not self.interrupted and not self.limits
        if self.stopped and self.exhaustive:
            complete = False
            self.notes.append("Stopped at the first failure (stop_at_first=True).")
        return CheckResult(
            model=self.model,
            discoveries=discoveries,
            stats=stats,
            complete=complete,
            interrupted=self.interrupted,
            properties=self.properties,
            never_reached=never,
            unchecked=unchecked,
            limits=tuple(self.limits),
            notes=tuple(self.notes),
        )

    def build_path(self, raw: RawTrace) -> Path[S, A]:
        """The concrete path of a raw trace (representatives re-mapped onto real successors)."""
        if raw.canonical:
            return concrete_path(self.model, raw.init_index, raw.indices, raw.loop_start)
        return path_from_indices(self.model, raw.init_index, raw.indices, raw.loop_start)


def chain(parent: Sequence[int], action: Sequence[int], index: int) -> tuple[int, tuple[int, ...]]:
    """chain - follow parent links from stored state ``index`` back to its initial state.

    ``parent[i]`` is the store index of state i's parent (-1 for an initial state) and
    ``action[i]`` the successor index that led to it (the init index for an initial state).
    Returns (init index, action indices from the initial state).
    """
    indices: list[int] = []
    while parent[index] >= 0:
        indices.append(action[index])
        index = parent[index]
    indices.reverse()
    return action[index], tuple(indices)


__all__ = [
    "Found",
    "RawTrace",
    "Run",
    "Stop",
    "chain",
    "model_init_states",
    "model_properties",
    "overrides",
]
