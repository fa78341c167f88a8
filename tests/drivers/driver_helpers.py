"""Shared helpers of the driver tests (no tests here): scripted events and scripted schedulers.

Driver tests build a real DmaBufSystem, fire environment events by name and step threads by
hand (drivers.md §0: drivers run as threads of the system model). These are the few ways of
running them that several driver test files use; each test still asserts its own results.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from dmabuf_model.drivers.compose import DmaBufSystem
from dmabuf_model.kernel.state import Blocked, KState
from dmabuf_model.system.model import EnvStep, SystemModel, run_step, run_thread
from dmabuf_model.system.threads import Branches, Program, spawn, world


def boot(system: DmaBufSystem) -> KState:
    """The system's (only) initial state, after every driver's setup."""
    return system.model().init_states()[0]


def fire(model: SystemModel, s: KState, event: str) -> tuple[KState, int]:
    """Let environment event ``event`` happen; returns the state and the spawned thread's tid."""
    for i, ev in enumerate(model.events):
        if ev.name == event:
            nxt = model.next_state(s, EnvStep(i, event))
            assert nxt is not None, f"event {event!r} is not enabled"
            return nxt, len(world(nxt).threads) - 1
    raise KeyError(f"no event {event!r}; events: {[e.name for e in model.events]}")


def run_engines(s: KState) -> KState:
    """Let every DMA engine thread run to its end."""
    for t in world(s).threads:
        if not t.done and t.name.endswith("DMA engine"):
            s = run_thread(s, t.tid)
    return s


def go(model: SystemModel, s: KState, event: str) -> tuple[KState, Hashable]:
    """Fire ``event``, run its thread to the end (and any DMA engine): state, the thread's ret."""
    s, tid = fire(model, s, event)
    s = run_engines(run_thread(s, tid))
    return s, world(s).threads[tid].local("ret")


def job_ret(s: KState, tid: int) -> Hashable:
    """The ``ret`` local of thread ``tid``, which must have finished."""
    t = world(s).threads[tid]
    assert t.done
    return t.local("ret")


def step(s: KState, tid: int) -> KState | Blocked:
    """One step of thread ``tid`` (Branches are not expected here)."""
    out = run_step(s, world(s).threads[tid])
    assert isinstance(out, (KState, Blocked)), out
    return out


def run_thread_until_blocked(s: KState, tid: int) -> KState:
    """Step thread ``tid`` until it finishes or its next step is Blocked."""
    while not world(s).threads[tid].done:
        out = step(s, tid)
        if isinstance(out, Blocked):
            return s
        s = out
    return s


def settle(s: KState) -> KState:
    """Step every unfinished thread, lowest tid first, until all are done (a scripted
    scheduler that, unlike run_thread, lets an importer's worker run while a revoke waits).
    Where a step has branches the first enabled one is taken. RuntimeError when stuck."""
    while True:
        pending = [t for t in world(s).threads if not t.done]
        if not pending:
            return s
        for t in pending:
            out = run_step(s, t)
            if isinstance(out, Branches):
                results = [thunk() for _, thunk in out.alternatives]
                out = next((r for r in results if isinstance(r, KState)), results[0])
            if isinstance(out, KState):
                s = out
                break
        else:
            raise RuntimeError(f"stuck: {[(str(t), t.pc) for t in pending]}")


def run(s: KState, prog: Program, **local: Hashable) -> tuple[KState, Any]:
    """Run ``prog`` as a new thread, and every thread it waits for, to the end; its ``ret``."""
    s, tid = spawn(s, prog, "", **local)
    s = settle(s)
    return s, world(s).threads[tid].local("ret")
