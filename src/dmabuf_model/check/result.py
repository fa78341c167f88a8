"""What a check or a simulation returns: discoveries with their paths, statistics, assert helpers.

Every strategy returns the same CheckResult, so tests and reports do not care which explorer ran
(style-guide B5). The assert_* helpers are stateright's, written for pytest: they raise
AssertionError with the trace and say when the search was incomplete.
"""

from __future__ import annotations

import builtins
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from dmabuf_model.check.model import DEADLOCK, Expectation, Model, Property
from dmabuf_model.check.path import Path, replay

S = TypeVar("S", bound=Hashable)
A = TypeVar("A", bound=Hashable)

DiscoveryKind = Literal["counterexample", "example", "deadlock"]
"""counterexample: an always or eventually property fails; example: a sometimes property holds;
deadlock: an end state that ``Model.deadlock`` calls a deadlock."""


@dataclass(frozen=True)
class Discovery(Generic[S, A]):
    """The first path found for one property (or for "deadlock").

    ``description`` carries the deadlock text from ``Model.deadlock``, or for an eventually
    counterexample whether the path "ends" or "loops" without the condition holding.
    """

    property: str
    kind: DiscoveryKind
    path: Path[S, A]
    expectation: Expectation | None = None
    cite: str = ""
    description: str = ""

    @builtins.property
    def is_failure(self) -> bool:
        """True for counterexamples and deadlocks, False for sometimes examples."""
        return self.kind != "example"

    def to_json(self, model: Model[S, A]) -> dict[str, Any]:
        """The trace JSON of the path (docs/checker.md), with the property's cite and text."""
        out = self.path.to_json(model, property=self.property, kind=self.kind)
        out["cite"] = self.cite
        out["description"] = self.description
        return out


@dataclass(frozen=True)
class Statistics:
    """How much a run explored, how fast, and in how much memory.

    ``states`` counts every state generated (initial states plus every successor computed, as
    TLC's "states generated"); ``unique`` the distinct states stored; ``max_depth`` counts
    states on the longest shortest path, the initial state being depth 1 (as TLC and
    stateright count). ``store_bytes`` is the size of the visited store (fingerprint set and
    parent links, or the vectorised engine's bitmap and level arrays), measured or closely
    estimated. ``fingerprint_bits`` is 64 when states are stored as hash fingerprints (a
    collision can hide a state) and None when they are stored exactly.
    """

    states: int
    unique: int
    transitions: int
    max_depth: int
    seconds: float
    store_bytes: int
    engine: str
    workers: int = 1
    symmetry: bool = False
    fingerprint_bits: int | None = 64
    runs: int = 0

    @property
    def states_per_second(self) -> float:
        """Distinct states per second of wall time."""
        return self.unique / self.seconds if self.seconds > 0 else float("inf")

    @property
    def bytes_per_state(self) -> float:
        """Visited-store bytes per distinct state."""
        return self.store_bytes / self.unique if self.unique else 0.0

    @property
    def collision_probability(self) -> float:
        """TLC's optimistic estimate that a fingerprint collision hid a state: unique x
        generated / 2^bits (0 when states are stored exactly)."""
        if self.fingerprint_bits is None:
            return 0.0
        return float(self.unique) * float(self.states) / 2.0**self.fingerprint_bits

    def to_json(self) -> dict[str, Any]:
        """The statistics as a JSON object, derived rates included."""
        return {
            "states": self.states,
            "unique": self.unique,
            "transitions": self.transitions,
            "max_depth": self.max_depth,
            "seconds": self.seconds,
            "states_per_second": self.states_per_second,
            "store_bytes": self.store_bytes,
            "bytes_per_state": self.bytes_per_state,
            "engine": self.engine,
            "workers": self.workers,
            "symmetry": self.symmetry,
            "fingerprint_bits": self.fingerprint_bits,
            "collision_probability": self.collision_probability,
            "runs": self.runs,
        }


@dataclass(frozen=True)
class CheckResult(Generic[S, A]):
    """The outcome of ``check`` or ``simulate``.

    ``discoveries`` maps a property name (or "deadlock") to its first Discovery. ``complete``
    is True only when every reachable state was explored (never for a simulation);
    ``interrupted`` when Ctrl-C stopped the run; ``limits`` says which bound stopped it.
    ``never_reached`` lists sometimes properties without an example; ``unchecked`` lists
    eventually properties that were not checked because the run stopped first.
    """

    model: Model[S, A]
    discoveries: Mapping[str, Discovery[S, A]]
    stats: Statistics
    complete: bool
    interrupted: bool = False
    properties: tuple[Property[S], ...] = ()
    never_reached: tuple[str, ...] = ()
    unchecked: tuple[str, ...] = ()
    limits: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def failures(self) -> list[Discovery[S, A]]:
        """Counterexamples and deadlocks, in report order."""
        return [d for d in self.discoveries.values() if d.is_failure]

    @property
    def ok(self) -> bool:
        """No failure, every sometimes property reached and every eventually one checked."""
        return not self.failures and not self.never_reached and not self.unchecked

    def discovery(self, name: str) -> Path[S, A] | None:
        """The path found for ``name``, or None; ValueError for an unknown name."""
        self._property(name)
        d = self.discoveries.get(name)
        return None if d is None else d.path

    def assert_properties(self) -> None:
        """assert_properties - every always/eventually holds, every sometimes has an example,
        and there is no deadlock; raises AssertionError listing each problem with its trace."""
        problems: list[str] = []
        for prop in self.properties:
            d = self.discoveries.get(prop.name)
            if prop.expectation is Expectation.SOMETIMES:
                if d is None:
                    problems.append(f'sometimes "{prop.name}" has no example{self._partial()}')
            elif d is not None:
                problems.append(self._describe(d))
            elif prop.name in self.unchecked:
                problems.append(f'eventually "{prop.name}" was not checked{self._partial()}')
        if DEADLOCK in self.discoveries:
            problems.append(self._describe(self.discoveries[DEADLOCK]))
        if problems:
            raise AssertionError("\n".join(problems))

    def assert_no_discovery(self, name: str) -> None:
        """assert_no_discovery - ``name`` has no discovery; AssertionError shows the trace."""
        self._property(name)
        d = self.discoveries.get(name)
        if d is not None:
            raise AssertionError(self._describe(d))

    def assert_discovery(self, name: str, actions: Sequence[A] | str) -> None:
        """assert_discovery - the checker found a discovery for ``name``, and ``actions`` (or a
        token) is a valid one: replaying it reaches a violation (always), an example
        (sometimes), a deadlock, or a path that ends or loops without the condition
        (eventually). It need not be the path the search happened to find."""
        prop = self._property(name)
        if name not in self.discoveries:
            raise AssertionError(f'the checker found no discovery for "{name}"{self._partial()}')
        path = replay(self.model, actions)
        why = _invalid_discovery(self.model, prop, path)
        if why:
            shown = path.format(self.model)
            raise AssertionError(
                f'the given actions are not a discovery for "{name}": {why}\n{shown}'
            )

    def report(self, *, verbose: bool = False) -> str:
        """The text report (stateright's shape): see report.format_report."""
        from dmabuf_model.check.report import format_report

        return format_report(self, verbose=verbose)

    def to_json(self) -> dict[str, Any]:
        """The whole result as JSON: see report.result_to_json."""
        from dmabuf_model.check.report import result_to_json

        return result_to_json(self)

    def _property(self, name: str) -> Property[S] | None:
        if name == DEADLOCK:
            return None
        for p in self.properties:
            if p.name == name:
                return p
        names = ", ".join([*(p.name for p in self.properties), DEADLOCK])
        raise ValueError(f"no property named {name!r}; the model's properties are: {names}")

    def _partial(self) -> str:
        if self.interrupted:
            return " (the run was interrupted)"
        if self.complete:
            return ""
        if self.limits:
            return f" (the search was incomplete: {'; '.join(self.limits)})"
        if self.stats.runs:
            return " (a simulation is not exhaustive)"
        return " (the search stopped at the first failure)"

    def _describe(self, d: Discovery[S, A]) -> str:
        what = d.expectation.value if d.expectation is not None else "deadlock"
        text = f" ({d.description})" if d.description else ""
        return (
            f'{what} "{d.property}" has a {d.kind}{text}, {len(d.path)} steps:\n'
            f"{d.path.format(self.model)}\nreplay token: {d.path.token}"
        )


def _invalid_discovery(model: Model[S, A], prop: Property[S] | None, path: Path[S, A]) -> str:
    """Why ``path`` is not a discovery for ``prop`` (None: deadlock), or "" when it is one."""
    last = path.last_state
    if prop is None:
        if any(True for _ in model.successors(last)):
            return "its last state has enabled actions"
        if model.deadlock(last) is None:
            return "the model does not call its end state a deadlock"
        return ""
    if prop.expectation is Expectation.ALWAYS:
        return "" if not prop.condition(last) else "the condition holds in its last state"
    if prop.expectation is Expectation.SOMETIMES:
        return "" if prop.condition(last) else "the condition does not hold in its last state"
    if any(prop.condition(s) for s in path.states):
        return "the condition holds on the path"
    ends = not any(True for _ in model.successors(last))
    loops = last in path.states[:-1]
    return "" if ends or loops else "the path neither ends nor loops"


__all__ = ["CheckResult", "Discovery", "DiscoveryKind", "Statistics"]
