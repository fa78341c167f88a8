"""Toy models the checker is tested on: none of them knows anything about DMA-buf.

TwoPhase is the TLA+ TwoPhase commit (tlaplus/Examples specifications/transaction_commit/
TwoPhase.tla), the checker's first oracle: TLC records 288 distinct states for three resource
managers, stateright's examples/2pc.rs pins 288 and 8,832 (five managers). The others each carry
one known bug the checker must find with a known shortest trace.
"""

from __future__ import annotations

import importlib.util
import pathlib
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from dmabuf_model.check import Model, Property

T = TypeVar("T")

# -- TwoPhase commit ------------------------------------------------------------------------------

WORKING, PREPARED, COMMITTED, ABORTED = 0, 1, 2, 3
TM_INIT, TM_COMMITTED, TM_ABORTED = 0, 1, 2


@dataclass(frozen=True, slots=True)
class TPState:
    """rmState, tmState, tmPrepared and msgs of TwoPhase.tla; msgs split into its three kinds."""

    rm: tuple[int, ...]
    tm: int
    tm_prepared: tuple[bool, ...]
    prepared_msg: tuple[bool, ...]
    commit_msg: bool
    abort_msg: bool


@dataclass(frozen=True, slots=True)
class TPAction:
    """An action of TwoPhase.tla; ``rm`` is -1 for the TM's own actions."""

    name: str
    rm: int = -1

    def __str__(self) -> str:
        return self.name if self.rm < 0 else f"{self.name}({self.rm})"


def _set(t: tuple[T, ...], i: int, v: T) -> tuple[T, ...]:
    return (*t[:i], v, *t[i + 1 :])


class TwoPhase(Model[TPState, TPAction]):
    """TwoPhase.tla with ``rms`` resource managers; ``symmetric`` enables canonical()."""

    def __init__(self, rms: int, *, symmetric: bool = False) -> None:
        self.rms = rms
        self.symmetric = symmetric

    def init_states(self) -> Sequence[TPState]:
        n = self.rms
        return [TPState((WORKING,) * n, TM_INIT, (False,) * n, (False,) * n, False, False)]

    def actions(self, state: TPState) -> Iterable[TPAction]:
        out = [TPAction("TMCommit"), TPAction("TMAbort")]
        for rm in range(self.rms):
            out += [
                TPAction("TMRcvPrepared", rm),
                TPAction("RMPrepare", rm),
                TPAction("RMChooseToAbort", rm),
                TPAction("RMRcvCommitMsg", rm),
                TPAction("RMRcvAbortMsg", rm),
            ]
        return out

    def next_state(self, s: TPState, a: TPAction) -> TPState | None:
        rm = a.rm
        if a.name == "TMCommit":
            if s.tm == TM_INIT and all(s.tm_prepared):
                return replace(s, tm=TM_COMMITTED, commit_msg=True)
        elif a.name == "TMAbort":
            if s.tm == TM_INIT:
                return replace(s, tm=TM_ABORTED, abort_msg=True)
        elif a.name == "TMRcvPrepared":
            if s.tm == TM_INIT and s.prepared_msg[rm]:
                return replace(s, tm_prepared=_set(s.tm_prepared, rm, True))
        elif a.name == "RMPrepare":
            if s.rm[rm] == WORKING:
                return replace(
                    s, rm=_set(s.rm, rm, PREPARED), prepared_msg=_set(s.prepared_msg, rm, True)
                )
        elif a.name == "RMChooseToAbort":
            if s.rm[rm] == WORKING:
                return replace(s, rm=_set(s.rm, rm, ABORTED))
        elif a.name == "RMRcvCommitMsg":
            if s.commit_msg:
                return replace(s, rm=_set(s.rm, rm, COMMITTED))
        elif a.name == "RMRcvAbortMsg" and s.abort_msg:
            return replace(s, rm=_set(s.rm, rm, ABORTED))
        return None

    def successors(self, s: TPState) -> Iterator[tuple[TPAction, TPState]]:
        """The enabled actions in actions() order, built without dataclasses.replace (fast)."""
        rm, tm, tp, pm, cm, am = (
            s.rm,
            s.tm,
            s.tm_prepared,
            s.prepared_msg,
            s.commit_msg,
            s.abort_msg,
        )
        if tm == TM_INIT and all(tp):
            yield TPAction("TMCommit"), TPState(rm, TM_COMMITTED, tp, pm, True, am)
        if tm == TM_INIT:
            yield TPAction("TMAbort"), TPState(rm, TM_ABORTED, tp, pm, cm, True)
        for i in range(self.rms):
            if tm == TM_INIT and pm[i]:
                yield TPAction("TMRcvPrepared", i), TPState(rm, tm, _set(tp, i, True), pm, cm, am)
            if rm[i] == WORKING:
                yield (
                    TPAction("RMPrepare", i),
                    TPState(_set(rm, i, PREPARED), tm, tp, _set(pm, i, True), cm, am),
                )
                yield (
                    TPAction("RMChooseToAbort", i),
                    TPState(_set(rm, i, ABORTED), tm, tp, pm, cm, am),
                )
            if cm:
                yield (
                    TPAction("RMRcvCommitMsg", i),
                    TPState(_set(rm, i, COMMITTED), tm, tp, pm, cm, am),
                )
            if am:
                yield (
                    TPAction("RMRcvAbortMsg", i),
                    TPState(_set(rm, i, ABORTED), tm, tp, pm, cm, am),
                )

    def properties(self) -> Sequence[Property[TPState]]:
        return [
            Property.always(
                "consistent",
                lambda s: not (ABORTED in s.rm and COMMITTED in s.rm),
                cite="TCommit.tla TCConsistent",
            ),
            Property.sometimes("abort_agreement", lambda s: all(r == ABORTED for r in s.rm)),
            Property.sometimes("commit_agreement", lambda s: all(r == COMMITTED for r in s.rm)),
        ]

    def canonical(self, s: TPState) -> TPState:
        if not self.symmetric:
            return s
        rows = sorted(zip(s.rm, s.tm_prepared, s.prepared_msg, strict=True))
        return replace(
            s,
            rm=tuple(r[0] for r in rows),
            tm_prepared=tuple(r[1] for r in rows),
            prepared_msg=tuple(r[2] for r in rows),
        )

    @property
    def has_symmetry(self) -> bool:
        return self.symmetric


# -- A lost update: two threads increment a counter with a separate read and write ---------------


@dataclass(frozen=True, slots=True)
class Counter:
    """The shared counter, each thread's program counter (0 read, 1 write, 2 done) and local."""

    value: int
    pc: tuple[int, ...]
    tmp: tuple[int, ...]


class LostUpdate(Model[Counter, str]):
    """Two threads each do ``tmp = counter; counter = tmp + 1``; ``atomic`` makes it one step."""

    def __init__(self, threads: int = 2, *, atomic: bool = False) -> None:
        self.threads = threads
        self.atomic = atomic

    def init_states(self) -> Sequence[Counter]:
        return [Counter(0, (0,) * self.threads, (0,) * self.threads)]

    def actions(self, state: Counter) -> Iterable[str]:
        return [f"t{t}" for t in range(self.threads)]

    def next_state(self, s: Counter, a: str) -> Counter | None:
        t = int(a[1:])
        if self.atomic:
            if s.pc[t] != 0:
                return None
            return replace(s, value=s.value + 1, pc=_set(s.pc, t, 2))
        if s.pc[t] == 0:
            return replace(s, pc=_set(s.pc, t, 1), tmp=_set(s.tmp, t, s.value))
        if s.pc[t] == 1:
            return replace(s, value=s.tmp[t] + 1, pc=_set(s.pc, t, 2))
        return None

    def format_action(self, action: str) -> str:
        return f"{action}: {'increment' if self.atomic else 'read or write'}"

    def properties(self) -> Sequence[Property[Counter]]:
        n = self.threads
        return [
            Property.always(
                "no_lost_update",
                lambda s: any(p != 2 for p in s.pc) or s.value == n,
                cite="toy: lost update",
            ),
            Property.sometimes("all_done", lambda s: all(p == 2 for p in s.pc)),
        ]


# -- An ABBA lock-order deadlock -----------------------------------------------------------------

FREE = -1


@dataclass(frozen=True, slots=True)
class Locks:
    """Each thread's program counter (0 lock first, 1 lock second, 2 unlock, 3 done) and the
    holder of lock A and lock B."""

    pc: tuple[int, ...]
    holder: tuple[int, ...]


class Abba(Model[Locks, str]):
    """Thread 0 takes A then B, thread 1 takes B then A (``ordered``: both take A first)."""

    def __init__(self, *, ordered: bool = False) -> None:
        self.order = ((0, 1), (0, 1)) if ordered else ((0, 1), (1, 0))

    def init_states(self) -> Sequence[Locks]:
        return [Locks((0, 0), (FREE, FREE))]

    def actions(self, state: Locks) -> Iterable[str]:
        return ["t0", "t1"]

    def next_state(self, s: Locks, a: str) -> Locks | None:
        t = int(a[1:])
        pc = s.pc[t]
        if pc in (0, 1):
            lock = self.order[t][pc]
            if s.holder[lock] != FREE:
                return None
            holder = _set(s.holder, lock, t)
            return Locks(_set(s.pc, t, pc + 1), holder)
        if pc == 2:
            holder = tuple(FREE if h == t else h for h in s.holder)
            return Locks(_set(s.pc, t, 3), holder)
        return None

    def format_action(self, action: str) -> str:
        return action

    def deadlock(self, s: Locks) -> str | None:
        if all(p == 3 for p in s.pc):
            return None
        waits = []
        for t in (0, 1):
            if s.pc[t] in (0, 1):
                lock = self.order[t][s.pc[t]]
                waits.append(f"t{t} waits for {'AB'[lock]} held by t{s.holder[lock]}")
        return "; ".join(waits)


# -- Liveness: a request that may be refused forever, or given up ------------------------------

IDLE, REQUESTED, GRANTED, GAVE_UP = 0, 1, 2, 3


class Retry(Model[int, str]):
    """A client requests; the server grants, or refuses (back to idle, ``refuse``), or the
    client gives up (``give_up``, an end state). ``eventually granted`` fails either way."""

    def __init__(self, *, refuse: bool = True, give_up: bool = False) -> None:
        self.refuse = refuse
        self.give_up = give_up

    def init_states(self) -> Sequence[int]:
        return [IDLE]

    def actions(self, state: int) -> Iterable[str]:
        return ["request", "grant", "refuse", "give_up"]

    def next_state(self, s: int, a: str) -> int | None:
        if a == "request" and s == IDLE:
            return REQUESTED
        if a == "grant" and s == REQUESTED:
            return GRANTED
        if a == "refuse" and s == REQUESTED and self.refuse:
            return IDLE
        if a == "give_up" and s == REQUESTED and self.give_up:
            return GAVE_UP
        return None

    def properties(self) -> Sequence[Property[int]]:
        return [Property.eventually("granted", lambda s: s == GRANTED, cite="toy: liveness")]


class Token(Model[tuple[int, int], str]):
    """Two symmetric places pass one token back and forth forever; nothing is ever "done".

    Its representatives cycle on one state, so a lasso found with symmetry must be unrolled
    to close on concrete states.
    """

    def init_states(self) -> Sequence[tuple[int, int]]:
        return [(1, 0)]

    def actions(self, state: tuple[int, int]) -> Iterable[str]:
        return ["pass"]

    def next_state(self, s: tuple[int, int], a: str) -> tuple[int, int] | None:
        return (s[1], s[0])

    def canonical(self, s: tuple[int, int]) -> tuple[int, int]:
        return (min(s), max(s))

    def properties(self) -> Sequence[Property[tuple[int, int]]]:
        return [Property.eventually("done", lambda s: False)]


# -- Helpers for the checker's own behaviour -----------------------------------------------------


class BinaryClock(Model[int, int]):
    """stateright's smallest model: a bit that flips; two states, one cycle."""

    def init_states(self) -> Sequence[int]:
        return [0, 1]

    def actions(self, state: int) -> Iterable[int]:
        return [1 - state]

    def next_state(self, state: int, action: int) -> int | None:
        return action

    def properties(self) -> Sequence[Property[int]]:
        return [
            Property.always("in_range", lambda s: s in (0, 1)),
            Property.sometimes("two_reached", lambda s: s == 2),
        ]


class Interrupting(Model[Counter, str]):
    """Wraps LostUpdate(3) and raises KeyboardInterrupt once, on the ``after``-th next_state
    call: what Ctrl-C looks like to the checker."""

    def __init__(self, after: int) -> None:
        self.inner = LostUpdate(3)
        self.after = after
        self.calls = 0

    def init_states(self) -> Sequence[Counter]:
        return self.inner.init_states()

    def actions(self, state: Counter) -> Iterable[str]:
        return self.inner.actions(state)

    def next_state(self, state: Counter, action: str) -> Counter | None:
        self.calls += 1
        if self.calls == self.after:
            raise KeyboardInterrupt
        return self.inner.next_state(state, action)

    def properties(self) -> Sequence[Property[Counter]]:
        return self.inner.properties()


def load_revoke_toy() -> Any:
    """Import benchmarks/revoke_toy.py (the benchmark's toy revoke model) as a module."""
    name = "revoke_toy"
    if name in sys.modules:
        return sys.modules[name]
    path = pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "revoke_toy.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
