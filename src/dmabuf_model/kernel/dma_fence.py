"""dma_fence: one-way completion events on ordered timelines (drivers/dma-buf/dma-fence.c).

Model of struct dma_fence and the dma_fence_* API, core-semantics §9. A fence lives in
KState.fences at its FenceId; arrays and chains are fences whose ``members``/``chain_prev`` say
what they contain (§9.13, §9.14).

DOC: signalling and callbacks (our words). A fence starts unsignalled and signals exactly once.
Signalling detaches the callback list and runs every queued callback in FIFO order (§9.4, §10
#39). A callback is a hashable DmaFenceCb token, never a Python closure, so the state stays a
value. Running a callback means two things here:

- the token moves from ``cb_list`` to ``cb_ran`` in the same order, so "each queued callback ran
  exactly once, in FIFO order" can be checked on the state;
- if a handler is registered for ``cb.func`` (dma_fence_register_cb_func) it is called with the
  state; dma_fence_array and dma_fence_chain register theirs, and drivers or the thread layer
  may register more (a poll wake-up, a waiter). Tokens with no handler only appear in
  ``cb_ran``.

Handlers run inside a fence signalling section (dma_fence_begin_signalling); dma_resv locking
and sleeping allocations in that section are recorded as WARN #48.

DOC: modelled time. There is no clock. A wait that would sleep returns Blocked; the caller
decides whether the timeout expired (``timed_out=True``) and whether a signal is pending. A wait
that completes returns the whole timeout (no time passes in the model), and dma_fence_signal
records timestamp 0.

DOC: ops. Plain fences carry only what their ops decide: ``ops_enable_signaling`` says whether
enable_signaling exists and what it returns (§9.2). Arrays and chains get their ops
(enable_signaling, signaled, release) from their modules, which register them per ``kind``.
dma_fence_is_signaled is a pure query here: when the kind's signaled op reports completion it
returns True without marking the fence signalled (the kernel would signal it as a side effect,
§9.4); the fence is marked when its own signalling path runs.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import contextmanager
from typing import Literal

from dmabuf_model.kernel import errno
from dmabuf_model.kernel.state import (
    Blocked,
    FenceId,
    KState,
    Tid,
    record,
    replace,
    tuple_set,
    warn,
)

MAX_SCHEDULE_TIMEOUT = 2**63 - 1
"""LONG_MAX: a wait without a time limit (include/linux/sched.h)."""


@record
class DmaFenceCb:
    """A queued dma_fence_cb: ``func`` names the callback, ``data`` is its hashable argument."""

    func: str
    data: Hashable = None


@record
class DmaFence:
    """Model of struct dma_fence (include/linux/dma-fence.h), core-semantics §9.1.

    ``kind`` is "fence", "array" or "chain". ``ops_enable_signaling`` says whether the fence's ops
    provide enable_signaling and what it returns (None: op absent). ``cb_ran`` holds the
    callbacks detached and run at signalling time, in the order they ran (§10 #39). ``refcount``
    0 means the fence was released. ``stub`` marks the global stub fence (§9.11).
    """

    context: int
    seqno: int
    signaled: bool = False
    timestamp: int | None = None
    enable_signal: bool = False
    seqno64: bool = False
    error: int = 0
    cb_list: tuple[DmaFenceCb, ...] = ()
    refcount: int = 1
    ops_enable_signaling: bool | None = None
    kind: Literal["fence", "array", "chain"] = "fence"
    members: tuple[int, ...] = ()
    """array: member fence ids. chain: (contained fence id,)."""
    pending: int = 0
    """array: members still to signal before the array signals (§9.13)."""
    signal_on_any: bool = False
    chain_prev: int | None = None
    """chain: the previous node (or any fence), None at the start of the chain."""
    prev_seqno: int = 0
    cb_ran: tuple[DmaFenceCb, ...] = ()
    stub: bool = False
    driver_name: str = ""
    timeline_name: str = ""


CbHandler = Callable[[KState, FenceId, DmaFenceCb], KState]
"""A callback body: (state, the fence that signalled, the token) -> new state."""


@record
class DmaFenceKindOps:
    """The dma_fence_ops of a container kind: enable_signaling, signaled and release (§9.2)."""

    enable_signaling: Callable[[KState, FenceId], tuple[KState, bool]]
    signaled: Callable[[KState, FenceId], bool]
    release: Callable[[KState, FenceId], KState]


_CB_FUNCS: dict[str, CbHandler] = {}
_KIND_OPS: dict[str, DmaFenceKindOps] = {}
_SIGNALLING: contextvars.ContextVar[int] = contextvars.ContextVar("dma_fence_signalling", default=0)


def dma_fence_register_cb_func(func: str, handler: CbHandler) -> None:
    """dma_fence_register_cb_func - say what running a DmaFenceCb named ``func`` does.

    Model plumbing, not a kernel call: the kernel stores a function pointer in the dma_fence_cb,
    the model stores a name and looks the body up here. Registering a second, different handler
    for the same name is a programming error (ValueError).
    """
    old = _CB_FUNCS.get(func)
    if old is not None and old is not handler:
        raise ValueError(f"dma_fence callback {func!r} is already registered")
    _CB_FUNCS[func] = handler


def dma_fence_register_kind(kind: str, ops: DmaFenceKindOps) -> None:
    """dma_fence_register_kind - install the ops of a container kind ("array", "chain").

    Model plumbing: dma_fence_array and dma_fence_chain call it when imported.
    """
    _KIND_OPS[kind] = ops


# ---------------------------------------------------------------------------------------------
# Signalling annotations (§9.12, §10 #48)


def dma_fence_begin_signalling() -> bool:
    """dma_fence_begin_signalling - open a fence signalling critical section.

    Kernel: drivers/dma-buf/dma-fence.c (a lockdep annotation). Inside it, dma_resv locking and
    sleeping allocations are recorded as WARN #48 (core-semantics §9.12, §10 #48). Returns the
    cookie for dma_fence_end_signalling. The section lasts for the current Python call only
    (one atomic step); it is not part of the state.
    """
    depth = _SIGNALLING.get()
    _SIGNALLING.set(depth + 1)
    return depth > 0


def dma_fence_end_signalling(cookie: bool) -> None:
    """dma_fence_end_signalling - close the section opened by dma_fence_begin_signalling."""
    depth = _SIGNALLING.get()
    if depth <= 0:
        raise ValueError("dma_fence_end_signalling without dma_fence_begin_signalling")
    _SIGNALLING.set(depth - 1)


@contextmanager
def _signalling() -> Iterator[None]:
    cookie = dma_fence_begin_signalling()
    try:
        yield
    finally:
        dma_fence_end_signalling(cookie)


def in_dma_fence_signalling() -> bool:
    """in_dma_fence_signalling - True inside a fence signalling section (model helper, §10 #48)."""
    return _SIGNALLING.get() > 0


def dma_fence_assert_may_block(s: KState, what: str) -> KState:
    """dma_fence_assert_may_block - WARN #48 when ``what`` runs inside a signalling section.

    Used by dma_resv locking and by every call that allocates with GFP_KERNEL (core-semantics
    §8.3, §9.12, §10 #48): code that signals a fence must not take a resv lock or allocate.
    """
    if in_dma_fence_signalling():
        return warn(s, 48, f"{what} inside a dma_fence signalling path")
    return s


# ---------------------------------------------------------------------------------------------
# Creation


def _fence(s: KState, f: FenceId) -> DmaFence:
    return s.fences[f]


def _set(s: KState, f: FenceId, fence: DmaFence) -> KState:
    return s.evolve(fences=tuple_set(s.fences, f, fence))


def dma_fence_add(s: KState, fence: DmaFence) -> tuple[KState, FenceId]:
    """dma_fence_add - store a new fence record and return its id (model plumbing).

    Used by dma_fence_init and by the array and chain constructors.
    """
    return s.evolve(fences=(*s.fences, fence)), len(s.fences)


def dma_fence_context_alloc(s: KState, n: int) -> tuple[KState, int]:
    """dma_fence_context_alloc - reserve ``n`` fresh, consecutive fence contexts.

    Kernel: drivers/dma-buf/dma-fence.c. No lock. Returns the first of the ``n`` contexts; the
    counter starts at 1 because context 0 belongs to the stub fence. ``n == 0`` is a WARN and
    returns the next context without reserving it (core-semantics §9.3).
    """
    if n <= 0:
        s = warn(s, 0, "dma_fence_context_alloc(0)")
    first = s.next_fence_context
    return s.evolve(next_fence_context=first + max(n, 0)), first


def dma_fence_init(
    s: KState,
    context: int,
    seqno: int,
    *,
    enable_signaling: bool | None = None,
    seqno64: bool = False,
    driver_name: str = "",
    timeline_name: str = "",
) -> tuple[KState, FenceId]:
    """dma_fence_init - create an unsignalled fence on ``context`` with one reference.

    Kernel: drivers/dma-buf/dma-fence.c (dma_fence_init, dma_fence_init64 with ``seqno64``). No
    lock. ``enable_signaling`` models the ops: None when the op is absent, else what it returns
    (False means the fence has already passed and is signalled at once, §9.2, §9.5). Returns the
    new FenceId (core-semantics §9.3). The caller owns the single reference.
    """
    return dma_fence_add(
        s,
        DmaFence(
            context=context,
            seqno=seqno,
            seqno64=seqno64,
            ops_enable_signaling=enable_signaling,
            driver_name=driver_name,
            timeline_name=timeline_name,
        ),
    )


def dma_fence_get_stub(s: KState) -> tuple[KState, FenceId]:
    """dma_fence_get_stub - a new reference to the global, always-signalled stub fence.

    Kernel: drivers/dma-buf/dma-fence.c. Context 0, seqno 0, signalled since boot; created on
    first use in the model (core-semantics §9.11).
    """
    for i, fence in enumerate(s.fences):
        if fence.stub:
            return dma_fence_get(s, i), i
    stub = DmaFence(
        context=0,
        seqno=0,
        signaled=True,
        timestamp=0,
        refcount=2,  # the static object's own reference, plus the caller's
        stub=True,
        driver_name="stub",
        timeline_name="stub",
    )
    return dma_fence_add(s, stub)


def dma_fence_allocate_private_stub(s: KState, timestamp: int = 0) -> tuple[KState, FenceId]:
    """dma_fence_allocate_private_stub - a new fence, already signalled at ``timestamp``.

    Kernel: drivers/dma-buf/dma-fence.c. Context 0 is not reserved for it: it gets context 0 and
    seqno 0 like the global stub, but is its own object with one reference (core-semantics
    §9.11). Allocation failure (NULL) is not modelled.
    """
    fence = DmaFence(
        context=0,
        seqno=0,
        signaled=True,
        timestamp=timestamp,
        driver_name="stub",
        timeline_name="stub",
    )
    return dma_fence_add(s, fence)


# ---------------------------------------------------------------------------------------------
# Reference counting (§9.10)


def dma_fence_get(s: KState, f: FenceId) -> KState:
    """dma_fence_get - take a reference on ``f`` (kref_get). Core-semantics §9.10."""
    fence = _fence(s, f)
    if fence.refcount <= 0:
        s = warn(s, 0, f"dma_fence_get on released fence{f}")
    return _set(s, f, replace(_fence(s, f), refcount=fence.refcount + 1))


def dma_fence_put(s: KState, f: FenceId | None) -> KState:
    """dma_fence_put - drop a reference; the last one releases the fence.

    Kernel: include/linux/dma-fence.h and dma_fence_release in dma-fence.c. A release while
    callbacks are still queued and the fence is unsignalled is a WARN (#44): the fence gets error
    -EDEADLK and is signalled so the callbacks run. Then the kind's release drops the references
    it holds (array members, chain links). A put on a released fence is a refcount underflow
    (WARN, no effect). ``f`` None is a no-op, as for a NULL pointer (core-semantics §9.10).
    """
    if f is None:
        return s
    fence = _fence(s, f)
    if fence.refcount <= 0:
        return warn(s, 0, f"dma_fence_put on released fence{f} (refcount underflow)")
    s = _set(s, f, replace(fence, refcount=fence.refcount - 1))
    if fence.refcount > 1:
        return s
    if fence.cb_list and not fence.signaled:
        s = warn(s, 44, "dma_fence released with pending signals")
        s = _set(s, f, replace(_fence(s, f), error=-errno.EDEADLK))
        s = dma_fence_signal(s, f)
    ops = _KIND_OPS.get(fence.kind)
    if ops is not None:
        s = ops.release(s, f)
    return s


# ---------------------------------------------------------------------------------------------
# Signalling (§9.4, §9.5)


def dma_fence_signal_timestamp(s: KState, f: FenceId, timestamp: int) -> KState:
    """dma_fence_signal_timestamp - signal ``f`` with the given timestamp and run its callbacks.

    Kernel: drivers/dma-buf/dma-fence.c. Takes the fence lock. Nothing happens if ``f`` has
    already signalled (idempotent, one-way, §10 #38). Otherwise SIGNALED and TIMESTAMP are set,
    the callback list is detached and every callback runs once in FIFO order inside a
    signalling section (§10 #39, #48). Returns void (core-semantics §9.4).
    """
    fence = _fence(s, f)
    if fence.signaled:
        return s
    cbs = fence.cb_list
    s = _set(
        s,
        f,
        replace(fence, signaled=True, timestamp=timestamp, cb_list=(), cb_ran=cbs),
    )
    if not cbs:
        return s
    with _signalling():
        for cb in cbs:
            handler = _CB_FUNCS.get(cb.func)
            if handler is not None:
                s = handler(s, f, cb)
    return s


def dma_fence_signal(s: KState, f: FenceId) -> KState:
    """dma_fence_signal - signal ``f`` (timestamp: the model's clock, always 0).

    Kernel: drivers/dma-buf/dma-fence.c; dma_fence_signal_locked is the same step, since the
    fence spinlock is never contended inside one atomic step. Returns void (core-semantics §9.4).
    """
    return dma_fence_signal_timestamp(s, f, 0)


dma_fence_signal_locked = dma_fence_signal


def dma_fence_check_and_signal(s: KState, f: FenceId) -> tuple[KState, bool]:
    """dma_fence_check_and_signal - signal ``f`` if needed; report whether it already was.

    Kernel: drivers/dma-buf/dma-fence.c (S14). Returns True when ``f`` was already signalled
    (core-semantics §9.4).
    """
    was = _fence(s, f).signaled
    return dma_fence_signal(s, f), was


def dma_fence_test_signaled_flag(s: KState, f: FenceId) -> bool:
    """dma_fence_test_signaled_flag - read the SIGNALED bit only (core-semantics §9.4)."""
    return _fence(s, f).signaled


def dma_fence_is_signaled(s: KState, f: FenceId) -> bool:
    """dma_fence_is_signaled - has ``f`` completed?

    Kernel: include/linux/dma-fence.h. No lock. True if SIGNALED is set, or if the kind's
    signaled op (array, chain) reports completion. Pure in the model: it does not mark the fence
    signalled (see the module DOC). It never enables signalling (core-semantics §9.4).
    """
    fence = _fence(s, f)
    if fence.signaled:
        return True
    ops = _KIND_OPS.get(fence.kind)
    return ops is not None and ops.signaled(s, f)


def _enable_signaling(s: KState, f: FenceId) -> tuple[KState, bool]:
    """__dma_fence_enable_signaling: set ENABLE_SIGNAL; call the op once; False if signalled."""
    fence = _fence(s, f)
    was_set = fence.enable_signal
    if not was_set:
        s = _set(s, f, replace(fence, enable_signal=True))
    if fence.signaled:
        return s, False
    if not was_set:
        ops = _KIND_OPS.get(fence.kind)
        if ops is not None:
            s, ok = ops.enable_signaling(s, f)
        else:
            ok = fence.ops_enable_signaling is not False
        if not ok:
            return dma_fence_signal(s, f), False
    return s, True


def dma_fence_enable_sw_signaling(s: KState, f: FenceId) -> KState:
    """dma_fence_enable_sw_signaling - ask the driver to signal ``f`` when it completes.

    Kernel: drivers/dma-buf/dma-fence.c. Takes the fence lock. Sets ENABLE_SIGNAL; the first
    time, on an unsignalled fence, calls ops.enable_signaling, and a False result signals the
    fence at once. The op therefore runs at most once and never after SIGNALED (core-semantics
    §9.5, §10 #40).
    """
    s, _ = _enable_signaling(s, f)
    return s


# ---------------------------------------------------------------------------------------------
# Callbacks (§9.6)


def dma_fence_add_callback(s: KState, f: FenceId, cb: DmaFenceCb) -> tuple[KState, int]:
    """dma_fence_add_callback - queue ``cb`` to run when ``f`` signals.

    Kernel: drivers/dma-buf/dma-fence.c. Takes the fence lock. Returns 0 when queued (at the
    tail), or -ENOENT when ``f`` has already signalled or signals while signalling is enabled
    here; then ``cb`` never runs (core-semantics §9.6, §10 #39). An empty ``cb.func`` stands for
    a NULL func: WARN and -EINVAL.
    """
    if not cb.func:
        return warn(s, 39, "dma_fence_add_callback with a NULL func"), -errno.EINVAL
    if _fence(s, f).signaled:
        return s, -errno.ENOENT
    s, enabled = _enable_signaling(s, f)
    if not enabled:
        return s, -errno.ENOENT
    fence = _fence(s, f)
    return _set(s, f, replace(fence, cb_list=(*fence.cb_list, cb))), 0


def dma_fence_remove_callback(s: KState, f: FenceId, cb: DmaFenceCb) -> tuple[KState, bool]:
    """dma_fence_remove_callback - unlink ``cb`` if it is still queued on ``f``.

    Kernel: drivers/dma-buf/dma-fence.c. Takes the fence lock. Returns True if it was queued,
    False if it already ran or was never queued (core-semantics §9.6).
    """
    fence = _fence(s, f)
    if cb not in fence.cb_list:
        return s, False
    i = fence.cb_list.index(cb)
    cbs = fence.cb_list[:i] + fence.cb_list[i + 1 :]
    return _set(s, f, replace(fence, cb_list=cbs)), True


# ---------------------------------------------------------------------------------------------
# Error and status (§9.7)


def dma_fence_set_error(s: KState, f: FenceId, error: int) -> KState:
    """dma_fence_set_error - record why ``f`` failed, before it signals.

    Kernel: include/linux/dma-fence.h. WARN if ``f`` has already signalled, and WARN unless
    -MAX_ERRNO <= error <= -1; the value is stored in every case, as the kernel does
    (core-semantics §9.7, §10 #41).
    """
    fence = _fence(s, f)
    if fence.signaled:
        s = warn(s, 41, "dma_fence_set_error after the fence signalled")
    if error >= 0 or error < -errno.MAX_ERRNO:
        s = warn(s, 41, "dma_fence_set_error with an error outside [-MAX_ERRNO, -1]")
    return _set(s, f, replace(_fence(s, f), error=error))


def dma_fence_get_status(s: KState, f: FenceId) -> int:
    """dma_fence_get_status - 0 while pending, 1 when signalled cleanly, else the error.

    Kernel: include/linux/dma-fence.h (dma_fence_get_status_locked) and dma-fence.c. Takes the
    fence lock (core-semantics §9.7, §10 #41).
    """
    if not dma_fence_is_signaled(s, f):
        return 0
    error = _fence(s, f).error
    return error if error else 1


dma_fence_get_status_locked = dma_fence_get_status


# ---------------------------------------------------------------------------------------------
# Waiting (§9.8)


def dma_fence_wait_timeout(
    s: KState,
    tid: Tid,
    f: FenceId,
    intr: bool,
    timeout: int,
    *,
    signal_pending: bool = False,
    timed_out: bool = False,
) -> tuple[KState, int] | Blocked:
    """dma_fence_wait_timeout - sleep until ``f`` signals, a signal arrives or time runs out.

    Kernel: drivers/dma-buf/dma-fence.c. Might sleep; no lock required. ``timeout`` is in
    jiffies, MAX_SCHEDULE_TIMEOUT for none. Order of checks (core-semantics §9.8, §10 #43):
    negative timeout → WARN, -EINVAL; enable software signalling; signalled → ``timeout``, or 1
    when ``timeout`` is 0; ``intr`` and ``signal_pending`` → -ERESTARTSYS; ``timeout`` 0 → 0;
    otherwise the caller sleeps: Blocked on "fence<f>", or 0 when the caller says the timeout
    expired (``timed_out``, only for a finite timeout). A retry after the fence signalled
    returns ``timeout`` (no time passes in the model). ``tid`` is the waiting thread.
    """
    del tid  # the waiter is named by the scheduler; the fence has no holder
    if timeout < 0:
        return warn(s, 43, "dma_fence_wait_timeout with a negative timeout"), -errno.EINVAL
    if timed_out and timeout == MAX_SCHEDULE_TIMEOUT:
        raise ValueError("a wait with MAX_SCHEDULE_TIMEOUT cannot time out")
    s = dma_fence_enable_sw_signaling(s, f)
    if dma_fence_is_signaled(s, f):
        return s, timeout if timeout else 1
    if intr and signal_pending:
        return s, -errno.ERESTARTSYS
    if timeout == 0:
        return s, 0
    if timed_out:
        return s, 0
    return Blocked(on=f"fence{f}")


def dma_fence_wait(
    s: KState, tid: Tid, f: FenceId, intr: bool, *, signal_pending: bool = False
) -> tuple[KState, int] | Blocked:
    """dma_fence_wait - sleep without a time limit until ``f`` signals.

    Kernel: include/linux/dma-fence.h. Might sleep. Returns 0, or -ERESTARTSYS when ``intr`` and
    a signal is pending; Blocked while ``f`` is unsignalled (core-semantics §9.8).
    """
    r = dma_fence_wait_timeout(s, tid, f, intr, MAX_SCHEDULE_TIMEOUT, signal_pending=signal_pending)
    if isinstance(r, Blocked):
        return r
    s, ret = r
    return s, ret if ret < 0 else 0


def dma_fence_wait_any_timeout(
    s: KState,
    tid: Tid,
    fences: Sequence[FenceId],
    intr: bool,
    timeout: int,
    *,
    signal_pending: bool = False,
    timed_out: bool = False,
) -> tuple[KState, int, int | None] | Blocked:
    """dma_fence_wait_any_timeout - sleep until any of ``fences`` signals.

    Kernel: drivers/dma-buf/dma-fence.c. Might sleep. Returns (state, ret, index of the signalled
    fence or None). An empty list or a negative timeout → WARN, -EINVAL. Timeout 0 polls: 1 with
    the index if one has signalled, else 0. Otherwise signalling is enabled on each fence in turn
    until one is found signalled (ret = ``timeout``); with none, the caller sleeps: Blocked, 0 if
    ``timed_out``, -ERESTARTSYS if ``intr`` and ``signal_pending`` (core-semantics §9.8).
    """
    del tid
    if not fences or timeout < 0:
        s = warn(s, 43, "dma_fence_wait_any_timeout with no fences or a negative timeout")
        return s, -errno.EINVAL, None
    if timeout == 0:
        for i, f in enumerate(fences):
            if dma_fence_is_signaled(s, f):
                return s, 1, i
        return s, 0, None
    for i, f in enumerate(fences):
        s, enabled = _enable_signaling(s, f)
        if not enabled:
            return s, timeout, i
    if timed_out:
        return s, 0, None
    if intr and signal_pending:
        return s, -errno.ERESTARTSYS, None
    return Blocked(on="fences" + ",".join(str(f) for f in fences))


# ---------------------------------------------------------------------------------------------
# Ordering (§9.9)


def __dma_fence_is_later(s: KState, f: FenceId, seqno1: int, seqno2: int) -> bool:
    """__dma_fence_is_later - is ``seqno1`` after ``seqno2`` on the timeline of ``f``?

    Kernel: include/linux/dma-fence.h. With SEQNO64 a plain comparison; otherwise the signed
    difference of the low 32 bits, so the 32-bit counter may wrap (core-semantics §9.9).
    """
    if _fence(s, f).seqno64:
        return seqno1 > seqno2
    diff = ((seqno1 & 0xFFFFFFFF) - (seqno2 & 0xFFFFFFFF)) & 0xFFFFFFFF
    return 0 < diff < 0x80000000


def dma_fence_is_later(s: KState, f1: FenceId, f2: FenceId) -> tuple[KState, bool]:
    """dma_fence_is_later - is ``f1`` after ``f2`` on their common timeline?

    Kernel: include/linux/dma-fence.h. Fences of different contexts are a WARN and give False
    (core-semantics §9.9, §10 #42).
    """
    a, b = _fence(s, f1), _fence(s, f2)
    if a.context != b.context:
        return warn(s, 42, "dma_fence_is_later on fences of different contexts"), False
    return s, __dma_fence_is_later(s, f1, a.seqno, b.seqno)


def dma_fence_is_later_or_same(s: KState, f1: FenceId, f2: FenceId) -> tuple[KState, bool]:
    """dma_fence_is_later_or_same - ``f1`` is ``f2``, or later on the same timeline (§9.9)."""
    if f1 == f2:
        return s, True
    return dma_fence_is_later(s, f1, f2)


def dma_fence_later(s: KState, f1: FenceId, f2: FenceId) -> tuple[KState, FenceId | None]:
    """dma_fence_later - the later of two fences of one context, or None if it has signalled.

    Kernel: include/linux/dma-fence.h. Different contexts: WARN and None (core-semantics §9.9,
    §10 #42).
    """
    if _fence(s, f1).context != _fence(s, f2).context:
        return warn(s, 42, "dma_fence_later on fences of different contexts"), None
    s, later = dma_fence_is_later(s, f1, f2)
    pick = f1 if later else f2
    return s, None if dma_fence_is_signaled(s, pick) else pick


def dma_fence_signal_order_violations(s: KState) -> tuple[tuple[FenceId, FenceId], ...]:
    """dma_fence_signal_order_violations - pairs (earlier, later) on one context where the later
    fence has signalled and the earlier has not (a checker predicate, not a kernel call).

    Fences of one context must signal in seqno order, a driver obligation (core-semantics §9.3,
    §10 #42). Only plain fences count; the stub context 0 and containers are skipped.
    """
    by_context: dict[int, list[FenceId]] = {}
    for f, fence in enumerate(s.fences):
        if fence.kind == "fence" and fence.context != 0:
            by_context.setdefault(fence.context, []).append(f)
    bad: list[tuple[FenceId, FenceId]] = []
    for fences in by_context.values():
        for early in fences:
            if s.fences[early].signaled:
                continue
            for late in fences:
                if s.fences[late].signaled and __dma_fence_is_later(
                    s, late, s.fences[late].seqno, s.fences[early].seqno
                ):
                    bad.append((early, late))
    return tuple(sorted(bad))


# ---------------------------------------------------------------------------------------------
# Kinds and description


def dma_fence_is_array(s: KState, f: FenceId) -> bool:
    """dma_fence_is_array - ``f`` is a dma_fence_array (§9.13)."""
    return _fence(s, f).kind == "array"


def dma_fence_is_chain(s: KState, f: FenceId) -> bool:
    """dma_fence_is_chain - ``f`` is a dma_fence_chain node (§9.14)."""
    return _fence(s, f).kind == "chain"


def dma_fence_is_container(s: KState, f: FenceId) -> bool:
    """dma_fence_is_container - ``f`` is an array or a chain (§8.5, §10 #32)."""
    return _fence(s, f).kind != "fence"


def dma_fence_describe(s: KState, f: FenceId) -> str:
    """dma_fence_describe - one debugfs line: context, names, seqno and signal state.

    Kernel: drivers/dma-buf/dma-fence.c. Names are blank once the fence has signalled, as in the
    newest kernel (core-semantics §8.9 dma_resv_describe).
    """
    fence = _fence(s, f)
    if dma_fence_is_signaled(s, f):
        return f"{fence.context}   seq {fence.seqno} signalled"
    return (
        f"{fence.context} {fence.timeline_name} {fence.driver_name} seq {fence.seqno} unsignalled"
    )


__all__ = [
    "MAX_SCHEDULE_TIMEOUT",
    "CbHandler",
    "DmaFence",
    "DmaFenceCb",
    "DmaFenceKindOps",
    "__dma_fence_is_later",
    "dma_fence_add",
    "dma_fence_add_callback",
    "dma_fence_allocate_private_stub",
    "dma_fence_assert_may_block",
    "dma_fence_begin_signalling",
    "dma_fence_check_and_signal",
    "dma_fence_context_alloc",
    "dma_fence_describe",
    "dma_fence_enable_sw_signaling",
    "dma_fence_end_signalling",
    "dma_fence_get",
    "dma_fence_get_status",
    "dma_fence_get_status_locked",
    "dma_fence_get_stub",
    "dma_fence_init",
    "dma_fence_is_array",
    "dma_fence_is_chain",
    "dma_fence_is_container",
    "dma_fence_is_later",
    "dma_fence_is_later_or_same",
    "dma_fence_is_signaled",
    "dma_fence_later",
    "dma_fence_put",
    "dma_fence_register_cb_func",
    "dma_fence_register_kind",
    "dma_fence_remove_callback",
    "dma_fence_set_error",
    "dma_fence_signal",
    "dma_fence_signal_locked",
    "dma_fence_signal_order_violations",
    "dma_fence_signal_timestamp",
    "dma_fence_test_signaled_flag",
    "dma_fence_wait",
    "dma_fence_wait_any_timeout",
    "dma_fence_wait_timeout",
    "in_dma_fence_signalling",
]
