"""Threads of atomic steps: how kernel code paths that block or interleave become a checkable model.

An ioctl handler, a reset, an invalidate_mappings callback chain, a page-fault handler, a DMA
engine finishing a transfer: each is a Thread running a Program, a named table of steps. A step is
one atomic piece of kernel work that ends where the kernel can block (a lock acquisition, a fence
wait, a completion wait; design.md "Threads are explicit"). The thread's program counter and
locals live in the state, inside the World record kept in ``KState.ext``.

Blocking: a step that would sleep returns the ``Blocked`` a kernel call gave it (core-semantics
§4: mutexes, rw-semaphores and the resv ww-mutex block until free). The whole step is then
discarded and the thread is not enabled; it runs again, from the start of the same step, once
what it waits for is free. So a step should make its blocking call first: effects before it would
be recomputed anyway, but reading the step is easier when the wait comes first.

Tracing: steps call ``emit("dma_buf_pin(attach0) = 0")``. That is a no-op unless a ``recording()``
context is active, so log text never enters the state (it would multiply states); the model
re-runs a step under a recorder when a trace is printed.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import field

from dmabuf_model.kernel.errno import errname
from dmabuf_model.kernel.state import (
    Blocked,
    KState,
    PickledByName,
    Tid,
    record,
    replace,
    tuple_set,
)

Locals = tuple[tuple[str, Hashable], ...]
"""A thread's locals: (name, value) pairs sorted by name, so equal locals give equal states."""


@record
class Branches:
    """A step whose outcome is not decided by the state: each alternative is its own action.

    ``alternatives`` are (label, thunk) pairs; the label is shown in the trace ("timed out") and
    must be unique within the step, one label may be "". A thunk is called only when its
    alternative is explored or printed, and returns the new state or ``Blocked``. A thread whose
    every alternative is Blocked is blocked. Used for finite wait timeouts (``wait_or_timeout``).
    """

    alternatives: tuple[tuple[str, Callable[[], KState | Blocked]], ...]


StepResult = KState | Blocked | Branches
StepFn = Callable[[KState, "Thread"], StepResult]
"""A step: (state, the running thread as it was at the start of the step) -> result."""


@record
class Program(PickledByName):
    """A named table of steps; a thread starts at the first label.

    Compared and hashed by ``name`` only (as DmaBufOps is), so a Thread that carries its Program
    stays a cheap hashable value. Two different programs must therefore have different names.
    """

    name: str
    steps: tuple[tuple[str, StepFn], ...] = field(compare=False, repr=False)

    def __post_init__(self) -> None:
        labels = [label for label, _ in self.steps]
        if not labels:
            raise ValueError(f"program {self.name!r} has no steps; give at least one (label, fn)")
        if len(set(labels)) != len(labels) or "" in labels:
            raise ValueError(
                f"program {self.name!r} has duplicate or empty step labels {labels}; "
                "every step needs its own non-empty label"
            )
        PickledByName.__post_init__(self)  # register, so the program pickles by name

    @property
    def entry(self) -> str:
        """The label a new thread starts at."""
        return self.steps[0][0]

    def step(self, pc: str) -> StepFn:
        """The step function at label ``pc``; KeyError naming the known labels otherwise."""
        for label, fn in self.steps:
            if label == pc:
                return fn
        known = ", ".join(label for label, _ in self.steps)
        raise KeyError(f"program {self.name!r} has no step {pc!r}; its steps are: {known}")


def program(name: str, *steps: tuple[str, StepFn]) -> Program:
    """program - build a Program from (label, step) pairs, the first being the entry point."""
    return Program(name, tuple(steps))


@record
class Thread:
    """One kernel code path: its tid, a name for traces ("vfio-reset"), its program, where it is.

    ``pc`` is the label of the next step to run; ``done`` is set by ``finish``. ``locals`` are
    sorted (name, value) pairs (see ``Locals``).
    """

    tid: Tid
    name: str
    program: Program
    pc: str
    locals: Locals = ()
    done: bool = False

    def local(self, name: str, default: Hashable = None) -> Hashable:
        """The value of local ``name``, or ``default`` when it was never set."""
        for key, value in self.locals:
            if key == name:
                return value
        return default

    def __str__(self) -> str:
        return f"T{self.tid} {self.name}"


@record
class World:
    """Everything outside the kernel core: threads, the platform, the drivers, event budgets.

    Kept in ``KState.ext`` so exporter and importer callbacks, which receive the KState, can reach
    their driver state. ``drivers`` is indexed by a driver slot chosen by whoever builds the
    system; ``budgets[i]`` is how many more times environment event i may happen (SystemModel
    sets them from its events), which keeps the state space finite.
    """

    threads: tuple[Thread, ...] = ()
    platform: Hashable = None
    drivers: tuple[Hashable, ...] = ()
    budgets: tuple[int, ...] = ()


def system_state(
    kernel: KState | None = None,
    *,
    drivers: tuple[Hashable, ...] = (),
    platform: Hashable = None,
) -> KState:
    """system_state - a KState whose ext is a fresh World with no threads.

    ``kernel`` defaults to an empty KState; its ext must be None (it is replaced).
    """
    s = KState() if kernel is None else kernel
    if s.ext is not None:
        raise ValueError(f"kernel state already has ext={s.ext!r}; pass a KState with ext=None")
    return s.evolve(ext=World(drivers=drivers, platform=platform))


def world(s: KState) -> World:
    """world - the World kept in ``s.ext``; TypeError when the state was not built as a system."""
    w = s.ext
    if not isinstance(w, World):
        raise TypeError(
            f"KState.ext is {type(w).__name__}, not World; build the state with system_state()"
        )
    return w


def with_world(s: KState, w: World) -> KState:
    """with_world - ``s`` with its World replaced by ``w``."""
    return s.evolve(ext=w)


def driver_state(s: KState, slot: int) -> Hashable:
    """driver_state - the record of the driver in ``slot`` (drivers cast it to their own type)."""
    return world(s).drivers[slot]


def set_driver_state(s: KState, slot: int, value: Hashable) -> KState:
    """set_driver_state - ``s`` with the record of the driver in ``slot`` replaced by ``value``."""
    w = world(s)
    return with_world(s, replace(w, drivers=tuple_set(w.drivers, slot, value)))


def platform_state(s: KState) -> Hashable:
    """platform_state - the platform record (H4's PlatformState), None while there is none."""
    return world(s).platform


def set_platform_state(s: KState, value: Hashable) -> KState:
    """set_platform_state - ``s`` with the platform record replaced by ``value``."""
    return with_world(s, replace(world(s), platform=value))


def thread(s: KState, tid: Tid) -> Thread:
    """thread - the current record of thread ``tid`` (tids are indices, never reused)."""
    return world(s).threads[tid]


def _sorted_locals(base: Locals, changes: dict[str, Hashable]) -> Locals:
    if not changes:
        return base
    merged = dict(base)
    merged.update(changes)
    return tuple(sorted(merged.items(), key=lambda kv: kv[0]))


def spawn(
    s: KState,
    prog: Program,
    name: str = "",
    **locals_: Hashable,
) -> tuple[KState, Tid]:
    """spawn - start a thread running ``prog`` at its entry step; returns (state, its tid).

    Used by environment events (an ioctl, an FLR, a DMA job) and by steps that queue work (a
    workqueue item is a new thread). ``name`` defaults to the program's name.
    """
    w = world(s)
    tid = len(w.threads)
    t = Thread(tid, name or prog.name, prog, prog.entry, _sorted_locals((), locals_))
    return with_world(s, replace(w, threads=(*w.threads, t))), tid


def _put_thread(s: KState, t: Thread) -> KState:
    w = world(s)
    return with_world(s, replace(w, threads=tuple_set(w.threads, t.tid, t)))


def set_locals(s: KState, t: Thread, **locals_: Hashable) -> KState:
    """set_locals - set locals of thread ``t`` (read from ``s``, not from the possibly stale t)."""
    cur = world(s).threads[t.tid]
    return _put_thread(s, replace(cur, locals=_sorted_locals(cur.locals, locals_)))


def goto(s: KState, t: Thread, pc: str, **locals_: Hashable) -> KState:
    """goto - end the step: thread ``t`` continues at label ``pc``, with ``locals_`` set.

    The label is checked against the thread's program, so a typo fails at once.
    """
    cur = world(s).threads[t.tid]
    cur.program.step(pc)
    return _put_thread(s, replace(cur, pc=pc, locals=_sorted_locals(cur.locals, locals_)))


def finish(s: KState, t: Thread, **locals_: Hashable) -> KState:
    """finish - end the step and the thread: it is done and never runs again.

    The pc becomes "" so that threads that finished from different places compare equal;
    ``locals_`` (e.g. ret=...) are kept for properties and traces.
    """
    cur = world(s).threads[t.tid]
    new_locals = _sorted_locals(cur.locals, locals_)
    return _put_thread(s, replace(cur, pc="", done=True, locals=new_locals))


def wait_or_timeout(attempt: Callable[[bool], KState | Blocked]) -> Branches:
    """wait_or_timeout - the two outcomes of a finite-timeout wait, as two actions.

    ``attempt(timed_out)`` runs the step with the kernel wait called with that ``timed_out``
    (dma_fence_wait_timeout / dma_resv_wait_timeout take it, core-semantics §8.9, §9.8). The
    untimed branch is Blocked until the fence signals; the timed-out branch is always enabled, so
    the checker explores both "signalled in time" and "timed out" (time itself is abstract).
    """
    return Branches((("", lambda: attempt(False)), ("timed out", lambda: attempt(True))))


# ---------------------------------------------------------------------------------------------
# Trace text. Steps describe their kernel calls with emit(); nothing is kept unless recording.

_RECORDER: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "dmabuf_model_step_recorder", default=None
)


def emit(text: str) -> None:
    """emit - add one line to the trace of the running step (no-op unless recording)."""
    rec = _RECORDER.get()
    if rec is not None:
        rec.append(text)


def emit_call(fn: str, args: str, ret: object = None) -> None:
    """emit_call - emit ``fn(args) = ret`` with errno results by name (``= -ENODEV``).

    ``ret`` None means a void call (no ``=`` part); ints are printed with errname.
    """
    if _RECORDER.get() is None:
        return
    if ret is None:
        emit(f"{fn}({args})")
    elif isinstance(ret, bool) or not isinstance(ret, int):
        emit(f"{fn}({args}) = {ret}")
    else:
        emit(f"{fn}({args}) = {errname(ret)}")


def recording_active() -> bool:
    """recording_active - True inside ``recording()``; lets steps skip building costly text."""
    return _RECORDER.get() is not None


@contextmanager
def recording() -> Iterator[list[str]]:
    """recording - collect the lines steps emit inside the ``with`` block into the yielded list."""
    lines: list[str] = []
    token = _RECORDER.set(lines)
    try:
        yield lines
    finally:
        _RECORDER.reset(token)


__all__ = [
    "Branches",
    "Locals",
    "Program",
    "StepFn",
    "StepResult",
    "Thread",
    "World",
    "driver_state",
    "emit",
    "emit_call",
    "finish",
    "goto",
    "platform_state",
    "program",
    "recording",
    "recording_active",
    "set_driver_state",
    "set_locals",
    "set_platform_state",
    "spawn",
    "system_state",
    "thread",
    "wait_or_timeout",
    "with_world",
    "world",
]
