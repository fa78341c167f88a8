"""The Model interface every checker strategy explores, and its named properties.

Stateright's shape written the Python way (style-guide B5): three required methods (initial
states, enabled actions, next state), everything else has a default. Knows nothing of DMA-buf.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Generic, TypeVar

S = TypeVar("S", bound=Hashable)
A = TypeVar("A", bound=Hashable)


class Expectation(Enum):
    """What a property expects of the reachable states.

    ALWAYS: holds in every reachable state (safety); a discovery is a counterexample.
    SOMETIMES: holds in some reachable state (reachability); a discovery is an example, and the
    report says when none was found.
    EVENTUALLY: holds at some point on every maximal path (liveness); a path that ends, or
    loops, without it holding is a counterexample. No fairness is assumed.
    """

    ALWAYS = "always"
    SOMETIMES = "sometimes"
    EVENTUALLY = "eventually"


@dataclass(frozen=True)
class Property(Generic[S]):
    """A named predicate over states with an expectation; ``cite`` names the spec section."""

    name: str
    expectation: Expectation
    condition: Callable[[S], bool]
    cite: str = ""

    @staticmethod
    def always(name: str, condition: Callable[[S], bool], cite: str = "") -> Property[S]:
        """Safety: ``condition`` holds in every reachable state."""
        return Property(name, Expectation.ALWAYS, condition, cite)

    @staticmethod
    def sometimes(name: str, condition: Callable[[S], bool], cite: str = "") -> Property[S]:
        """Reachability: ``condition`` holds in at least one reachable state."""
        return Property(name, Expectation.SOMETIMES, condition, cite)

    @staticmethod
    def eventually(name: str, condition: Callable[[S], bool], cite: str = "") -> Property[S]:
        """Liveness: ``condition`` holds at some point on every maximal path."""
        return Property(name, Expectation.EVENTUALLY, condition, cite)


DEADLOCK = "deadlock"
"""Name under which a deadlock (no action enabled, model says work is unfinished) is reported."""


class Model(ABC, Generic[S, A]):
    """A transition system to check. Subclass and implement the three abstract methods.

    Determinism is part of the contract: ``init_states`` and ``actions`` must return the same
    sequence for the same state in every run (no iteration over sets of unordered objects),
    because traces are replayed by action index.
    """

    @abstractmethod
    def init_states(self) -> Sequence[S]:
        """The initial states, in a deterministic order."""

    @abstractmethod
    def actions(self, state: S) -> Iterable[A]:
        """The actions worth trying in ``state``, in a deterministic order."""

    @abstractmethod
    def next_state(self, state: S, action: A) -> S | None:
        """The state after ``action``, or None when the action is not enabled in ``state``."""

    def successors(self, state: S) -> Iterator[tuple[A, S]]:
        """Every enabled (action, next state) pair; override when one pass is cheaper."""
        for action in self.actions(state):
            nxt = self.next_state(state, action)
            if nxt is not None:
                yield action, nxt

    def properties(self) -> Sequence[Property[S]]:
        """The named properties to check; none by default."""
        return ()

    def within_boundary(self, state: S) -> bool:
        """False for states the search should record but not expand (a depth or size bound)."""
        return True

    def deadlock(self, state: S) -> str | None:
        """For a state with no enabled action: why that is a deadlock, or None if it is a
        legitimate end (all work done). The default treats every end state as legitimate."""
        return None

    def canonical(self, state: S) -> S:
        """The representative of ``state``'s symmetry orbit; identity when there is none.

        Used only when symmetry reduction is requested; it must map every state of an orbit to
        the same state and preserve every property's value.
        """
        return state

    @property
    def has_symmetry(self) -> bool:
        """True when the model overrides ``canonical``."""
        return type(self).canonical is not Model.canonical

    def format_action(self, action: A) -> str:
        """One line for a trace step."""
        return str(action)

    def format_state(self, state: S) -> str:
        """A readable rendering of a state for traces."""
        return repr(state)

    def action_to_json(self, action: A) -> Any:
        """A JSON-serialisable form of an action, for trace export."""
        return self.format_action(action)

    def state_to_json(self, state: S) -> Any:
        """A JSON-serialisable form of a state, for trace export."""
        return self.format_state(state)
