"""ww_mutex: wound/wait mutexes with acquire contexts, in wait-die mode (kernel/locking/ww_mutex.h).

Model of struct ww_acquire_ctx and the ww_mutex_* calls behind the dma_resv lock wrappers,
core-semantics §8.3 and §10 #12 (sources S12, S13). The only ww_mutex in the model is the one
inside each dma_resv, so a lock is named by its ResvId; DmaResv.holder/ctx are the lock's owner
and owning context.

DOC: wait-die (our words). Each acquire context gets a stamp when it is initialised; a smaller
stamp is older. When a context wants a lock that another context holds:

- an older context waits (Blocked);
- a younger context that already holds at least one lock "dies": -EDEADLK, and it remembers the
  lock as contended. It must release every lock it holds, then take the contended lock with the
  slow path (which never dies), then re-take the others, skipping those it already has by their
  -EALREADY;
- a context that holds nothing simply waits: -EDEADLK never happens with no lock held.

The same context asking for a lock it holds gets -EALREADY. Without a context (NULL ctx) the
lock is a plain sleeping mutex: a relock by the holder is a self-deadlock (Blocked on itself).
The debug checks of CONFIG_DEBUG_WW_MUTEX_SLOWPATH / DEBUG_MUTEXES on acquisition (the wrong
lock after -EDEADLK, locks still held, a lock taken after ww_acquire_done) are recorded as WARN
#12.

Not modelled: the wait queue. A blocked context re-tries from scratch, and the "older waiter
ahead of us" rule of wait-die is not applied (only the holder's stamp is compared).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dmabuf_model.kernel import errno
from dmabuf_model.kernel.dma_fence import dma_fence_assert_may_block
from dmabuf_model.kernel.state import (
    NO_TID,
    Blocked,
    CtxId,
    KState,
    ResvId,
    Tid,
    record,
    replace,
    tuple_set,
    warn,
)

if TYPE_CHECKING:
    from dmabuf_model.kernel.dma_resv import DmaResv


@record
class WwAcquireCtx:
    """Model of struct ww_acquire_ctx: a stamp (its age: smaller is older) and the locks held.

    ``contended`` is the resv that returned -EDEADLK and must be taken next with the slow path
    (§8.3, §10 #12); ``done`` is set by ww_acquire_done, ``finished`` by ww_acquire_fini.
    Re-exported by dma_resv, where KState's type hints look for it.
    """

    tid: Tid
    stamp: int
    held: tuple[ResvId, ...] = ()
    contended: ResvId | None = None
    done: bool = False
    finished: bool = False


W_NOT_CONTENDED = "ww_mutex: after -EDEADLK the next lock taken is not the contended one"
W_HELD_AFTER_DEADLK = "ww_mutex: after -EDEADLK a lock was taken before releasing all held locks"
W_SLOW_WITHOUT_DEADLK = "ww_mutex_lock_slow without a preceding -EDEADLK"
W_AFTER_DONE = "ww_mutex_lock after ww_acquire_done"
W_AFTER_FINI = "ww_mutex_lock with a context after ww_acquire_fini"


def _ctx(s: KState, ctx: CtxId, tid: Tid) -> WwAcquireCtx:
    if not 0 <= ctx < len(s.ww_ctxs):
        raise ValueError(f"ww_acquire_ctx {ctx} does not exist")
    c = s.ww_ctxs[ctx]
    if c.tid != tid:
        raise ValueError(f"ww_acquire_ctx {ctx} belongs to T{c.tid}, not T{tid}")
    return c


def _set_ctx(s: KState, ctx: CtxId, c: WwAcquireCtx) -> KState:
    return s.evolve(ww_ctxs=tuple_set(s.ww_ctxs, ctx, c))


def _set_resv(s: KState, obj: ResvId, r: DmaResv) -> KState:
    return s.evolve(resvs=tuple_set(s.resvs, obj, r))


def ww_acquire_init(s: KState, tid: Tid) -> tuple[KState, CtxId]:
    """ww_acquire_init - start an acquire context for ``tid`` with the next (youngest) stamp.

    Kernel: include/linux/ww_mutex.h. No lock. Returns the context id (core-semantics §8.3).
    """
    c = WwAcquireCtx(tid=tid, stamp=s.next_ww_stamp)
    s = s.evolve(ww_ctxs=(*s.ww_ctxs, c), next_ww_stamp=s.next_ww_stamp + 1)
    return s, len(s.ww_ctxs) - 1


def ww_acquire_done(s: KState, ctx: CtxId) -> KState:
    """ww_acquire_done - mark the end of the acquire phase; later locks are a WARN (#12).

    Kernel: include/linux/ww_mutex.h (core-semantics §8.3).
    """
    c = s.ww_ctxs[ctx]
    if c.done:
        s = warn(s, 12, "ww_acquire_done called twice")
    return _set_ctx(s, ctx, replace(c, done=True))


def ww_acquire_fini(s: KState, ctx: CtxId) -> KState:
    """ww_acquire_fini - end the context; WARN (#12) if it still holds locks.

    Kernel: include/linux/ww_mutex.h (core-semantics §8.3).
    """
    c = s.ww_ctxs[ctx]
    if c.held:
        s = warn(s, 12, "ww_acquire_fini with locks still held")
    return _set_ctx(s, ctx, replace(c, finished=True, done=True))


def _acquired(s: KState, tid: Tid, obj: ResvId, ctx: CtxId | None) -> KState:
    """Take the free lock; with a context, apply the debug checks of ww_mutex_lock_acquired."""
    s = _set_resv(s, obj, replace(s.resvs[obj], holder=tid, ctx=ctx))
    if ctx is None:
        return s
    c = s.ww_ctxs[ctx]
    if c.done:
        s = warn(s, 12, W_AFTER_DONE)
    if c.contended is not None:
        if c.contended != obj:
            s = warn(s, 12, W_NOT_CONTENDED)
        if c.held:
            s = warn(s, 12, W_HELD_AFTER_DEADLK)
        c = replace(c, contended=None)
    return _set_ctx(s, ctx, replace(c, held=(*c.held, obj)))


def _lock_common(
    s: KState,
    tid: Tid,
    obj: ResvId,
    ctx: CtxId | None,
    interruptible: bool,
    signal_pending: bool,
) -> tuple[KState, int] | Blocked:
    """__ww_mutex_lock: -EALREADY, take if free, -EINTR, die (-EDEADLK), or wait."""
    s = dma_fence_assert_may_block(s, "dma_resv_lock")
    resv = s.resvs[obj]
    if ctx is not None:
        c = _ctx(s, ctx, tid)
        if c.finished:
            s = warn(s, 12, W_AFTER_FINI)
        if resv.ctx == ctx and resv.holder != NO_TID:
            return s, -errno.EALREADY
    if resv.holder == NO_TID:
        return _acquired(s, tid, obj, ctx), 0
    if interruptible and signal_pending:
        return s, -errno.EINTR
    if ctx is not None and resv.ctx is not None:
        c = s.ww_ctxs[ctx]
        holder_ctx = s.ww_ctxs[resv.ctx]
        if c.held and holder_ctx.stamp < c.stamp:
            return _set_ctx(s, ctx, replace(c, contended=obj)), -errno.EDEADLK
    return Blocked(on=f"resv{obj}", holder=resv.holder)


def ww_mutex_lock(
    s: KState, tid: Tid, obj: ResvId, ctx: CtxId | None
) -> tuple[KState, int] | Blocked:
    """ww_mutex_lock - take the ww_mutex of resv ``obj``, optionally under acquire context ``ctx``.

    Kernel: kernel/locking/ww_mutex.h, ww_rt_mutex.c / mutex.c. Might sleep (Blocked). Returns
    0, -EALREADY (``ctx`` already holds it) or -EDEADLK (wait-die: a younger context holding
    other locks met an older holder). With ``ctx`` None a relock by the holder is a
    self-deadlock (core-semantics §8.3, §10 #12).
    """
    return _lock_common(s, tid, obj, ctx, False, False)


def ww_mutex_lock_interruptible(
    s: KState, tid: Tid, obj: ResvId, ctx: CtxId | None, *, signal_pending: bool = False
) -> tuple[KState, int] | Blocked:
    """ww_mutex_lock_interruptible - as ww_mutex_lock; -EINTR when it would sleep with a signal.

    Kernel: include/linux/ww_mutex.h (core-semantics §8.3, S12).
    """
    return _lock_common(s, tid, obj, ctx, True, signal_pending)


def _slow_checks(s: KState, tid: Tid, obj: ResvId, ctx: CtxId) -> KState:
    c = _ctx(s, ctx, tid)
    if c.contended is None:
        s = warn(s, 12, W_SLOW_WITHOUT_DEADLK)
    elif c.contended != obj:
        s = warn(s, 12, W_NOT_CONTENDED)
    if c.held:
        s = warn(s, 12, W_HELD_AFTER_DEADLK)
    return s


def ww_mutex_lock_slow(s: KState, tid: Tid, obj: ResvId, ctx: CtxId) -> KState | Blocked:
    """ww_mutex_lock_slow - after -EDEADLK, sleep until the contended lock is ours.

    Kernel: include/linux/ww_mutex.h. Returns void. The rule (core-semantics §8.3, §10 #12): the
    context holds no other lock and ``obj`` is the lock that returned -EDEADLK; breaking it is a
    WARN #12. With the rule kept it cannot fail; if it is broken the lock call's -EDEADLK or
    -EALREADY is ignored, as in the kernel, and the lock is not taken.
    """
    s = _slow_checks(s, tid, obj, ctx)
    r = _lock_common(s, tid, obj, ctx, False, False)
    if isinstance(r, Blocked):
        return r
    return r[0]


def ww_mutex_lock_slow_interruptible(
    s: KState, tid: Tid, obj: ResvId, ctx: CtxId, *, signal_pending: bool = False
) -> tuple[KState, int] | Blocked:
    """ww_mutex_lock_slow_interruptible - the slow path; 0 or -EINTR (core-semantics §8.3)."""
    s = _slow_checks(s, tid, obj, ctx)
    return _lock_common(s, tid, obj, ctx, True, signal_pending)


def ww_mutex_trylock(s: KState, tid: Tid, obj: ResvId) -> tuple[KState, bool]:
    """ww_mutex_trylock - take the lock without a context if it is free; never sleeps.

    Kernel: kernel/locking/mutex.c (core-semantics §8.3).
    """
    if s.resvs[obj].holder != NO_TID:
        return s, False
    return _acquired(s, tid, obj, None), True


def ww_mutex_unlock(s: KState, tid: Tid, obj: ResvId) -> KState:
    """ww_mutex_unlock - release the lock and drop it from its context's held set.

    Kernel: kernel/locking/mutex.c. Unlocking a free lock is a WARN and does nothing; unlocking
    a lock another thread holds is a WARN and releases it anyway, as the kernel's debug
    mutexes do (core-semantics §8.3).
    """
    resv = s.resvs[obj]
    if resv.holder == NO_TID:
        return warn(s, 0, "dma_resv_unlock of a resv that is not locked")
    if resv.holder != tid:
        s = warn(s, 0, "dma_resv_unlock by a thread that does not hold the resv")
    if resv.ctx is not None:
        c = s.ww_ctxs[resv.ctx]
        s = _set_ctx(s, resv.ctx, replace(c, held=tuple(o for o in c.held if o != obj)))
    return _set_resv(s, obj, replace(s.resvs[obj], holder=NO_TID, ctx=None))


def ww_mutex_is_locked(s: KState, obj: ResvId) -> bool:
    """ww_mutex_is_locked - someone holds the lock of ``obj`` (core-semantics §8.3)."""
    return s.resvs[obj].holder != NO_TID


__all__ = [
    "WwAcquireCtx",
    "ww_acquire_done",
    "ww_acquire_fini",
    "ww_acquire_init",
    "ww_mutex_is_locked",
    "ww_mutex_lock",
    "ww_mutex_lock_interruptible",
    "ww_mutex_lock_slow",
    "ww_mutex_lock_slow_interruptible",
    "ww_mutex_trylock",
    "ww_mutex_unlock",
]
