"""dma_resv: the reservation object, a wait-die ww_mutex plus a fence container.

Model of drivers/dma-buf/dma-resv.c and include/linux/dma-resv.h, core-semantics §8. The lock
records which thread holds it (and with which acquire context) so "called with resv held" is
checked, not assumed (§4, §10 #7-#12).

DOC: fences and usages (our words). The resv keeps an ordered list of slots, each a fence and a
usage: KERNEL < WRITE < READ < BOOKKEEP. A query for usage U sees every slot whose usage is at
most U, so asking for READ also gets the WRITE and KERNEL fences (§8.2). Adding a fence needs
the lock and a slot reserved beforehand with dma_resv_reserve_fences, because adding cannot
fail; reservations only last until the next unlock (§8.4, §10 #30, #31). A new fence takes over
the first slot that holds an older-or-same fence of its own context with an equal or weaker
usage, or any slot whose fence has already signalled; otherwise it is appended (§8.5, #33,
#34). Containers (arrays, chains) must be added leaf by leaf (#32).

Modelling choices:
- ``max_fences`` is exactly the room that was reserved (number of slots plus the reservation),
  not the kernel's rounded-up allocation, so an add without a reservation is always caught.
- One call is one atomic step, so the unlocked iterator never sees the list change under it and
  never restarts (§8.7).
- An allocation failure (-ENOMEM) happens only when the caller asks for it (``alloc_fails``).
"""

from __future__ import annotations

from enum import IntEnum

from dmabuf_model.kernel import errno
from dmabuf_model.kernel.dma_fence import (
    dma_fence_assert_may_block,
    dma_fence_context_alloc,
    dma_fence_describe,
    dma_fence_get,
    dma_fence_is_container,
    dma_fence_is_later_or_same,
    dma_fence_is_signaled,
    dma_fence_put,
    dma_fence_wait_timeout,
)
from dmabuf_model.kernel.state import (
    NO_TID,
    Blocked,
    CtxId,
    FenceId,
    KState,
    ResvId,
    Tid,
    record,
    replace,
    tuple_set,
    warn,
)
from dmabuf_model.kernel.ww_mutex import (
    WwAcquireCtx,
    ww_mutex_is_locked,
    ww_mutex_lock,
    ww_mutex_lock_interruptible,
    ww_mutex_lock_slow,
    ww_mutex_lock_slow_interruptible,
    ww_mutex_trylock,
    ww_mutex_unlock,
)


class DmaResvUsage(IntEnum):
    """enum dma_resv_usage: KERNEL < WRITE < READ < BOOKKEEP; a query for U gets all ≤ U (§8.2)."""

    KERNEL = 0
    WRITE = 1
    READ = 2
    BOOKKEEP = 3


USAGE_LABEL = {
    DmaResvUsage.KERNEL: "kernel",
    DmaResvUsage.WRITE: "write",
    DmaResvUsage.READ: "read",
    DmaResvUsage.BOOKKEEP: "bookkeep",
}
"""The usage names debugfs prints (core-semantics §5.16)."""

Slot = tuple[FenceId, DmaResvUsage]


@record
class DmaResv:
    """Model of struct dma_resv, core-semantics §8.1.

    ``fences`` are the slots in order as (fence id, usage); ``max_fences`` is the reserved
    capacity (reservations are dropped again at unlock, §8.4). ``holder`` is the thread holding
    the ww_mutex (NO_TID when free) and ``ctx`` the acquire context it used (None: NULL ctx).
    """

    fences: tuple[tuple[FenceId, DmaResvUsage], ...] = ()
    max_fences: int = 0
    holder: Tid = NO_TID
    ctx: CtxId | None = None


def _set(s: KState, obj: ResvId, resv: DmaResv) -> KState:
    return s.evolve(resvs=tuple_set(s.resvs, obj, resv))


# ---------------------------------------------------------------------------------------------
# Init and locking (§8.3, §8.10)


def dma_resv_init(s: KState) -> tuple[KState, ResvId]:
    """dma_resv_init - a new, unlocked reservation object with no fences.

    Kernel: drivers/dma-buf/dma-resv.c (core-semantics §8.10). Returns its ResvId.
    """
    return s.evolve(resvs=(*s.resvs, DmaResv())), len(s.resvs)


def dma_resv_fini(s: KState, obj: ResvId) -> KState:
    """dma_resv_fini - drop every fence reference of ``obj`` and empty it.

    Kernel: drivers/dma-buf/dma-resv.c. The lock must be free (core-semantics §8.10).
    """
    resv = s.resvs[obj]
    if resv.holder != NO_TID:
        s = warn(s, 0, "dma_resv_fini on a locked resv")
    for f, _ in resv.fences:
        s = dma_fence_put(s, f)
    return _set(s, obj, replace(s.resvs[obj], fences=(), max_fences=0))


def dma_resv_lock(
    s: KState, tid: Tid, obj: ResvId, ctx: CtxId | None
) -> tuple[KState, int] | Blocked:
    """dma_resv_lock - take the reservation lock of ``obj``.

    Kernel: include/linux/dma-resv.h (ww_mutex_lock). Might sleep: Blocked while another thread
    holds it. Returns 0; -EALREADY when ``ctx`` already holds it; -EDEADLK when ``ctx`` is younger
    than the holder's context and holds other locks (wait-die). With ``ctx`` None a relock by the
    holder is a self-deadlock: Blocked on itself (core-semantics §4, §8.3, §10 #12). Taking it in
    a fence signalling path is WARN #48.
    """
    return ww_mutex_lock(s, tid, obj, ctx)


def dma_resv_lock_interruptible(
    s: KState, tid: Tid, obj: ResvId, ctx: CtxId | None, *, signal_pending: bool = False
) -> tuple[KState, int] | Blocked:
    """dma_resv_lock_interruptible - dma_resv_lock, plus -EINTR when it would sleep with a
    signal pending (core-semantics §8.3)."""
    return ww_mutex_lock_interruptible(s, tid, obj, ctx, signal_pending=signal_pending)


def dma_resv_lock_slow(s: KState, tid: Tid, obj: ResvId, ctx: CtxId) -> KState | Blocked:
    """dma_resv_lock_slow - after -EDEADLK, sleep until the contended lock ``obj`` is ours.

    Kernel: include/linux/dma-resv.h. Returns void. Only valid when ``ctx`` holds no lock and
    ``obj`` is the lock that returned -EDEADLK; otherwise WARN #12 (core-semantics §8.3, §10 #12).
    """
    return ww_mutex_lock_slow(s, tid, obj, ctx)


def dma_resv_lock_slow_interruptible(
    s: KState, tid: Tid, obj: ResvId, ctx: CtxId, *, signal_pending: bool = False
) -> tuple[KState, int] | Blocked:
    """dma_resv_lock_slow_interruptible - the slow path; 0 or -EINTR (core-semantics §8.3)."""
    return ww_mutex_lock_slow_interruptible(s, tid, obj, ctx, signal_pending=signal_pending)


def dma_resv_trylock(s: KState, tid: Tid, obj: ResvId) -> tuple[KState, bool]:
    """dma_resv_trylock - take the lock without a context if it is free; never sleeps.

    Kernel: include/linux/dma-resv.h. Returns True when taken (core-semantics §8.3).
    """
    return ww_mutex_trylock(s, tid, obj)


def dma_resv_unlock(s: KState, tid: Tid, obj: ResvId) -> KState:
    """dma_resv_unlock - drop unused reservations, then release the lock.

    Kernel: include/linux/dma-resv.h (dma_resv_reset_max_fences + ww_mutex_unlock). The
    reservation shrinks to the slots in use (core-semantics §8.3, §8.4, §10 #30). WARN when
    ``tid`` does not hold the lock (the lock is still released if someone else holds it).
    """
    resv = s.resvs[obj]
    s = _set(s, obj, replace(resv, max_fences=len(resv.fences)))
    return ww_mutex_unlock(s, tid, obj)


def dma_resv_is_locked(s: KState, obj: ResvId) -> bool:
    """dma_resv_is_locked - some thread holds the lock of ``obj`` (core-semantics §8.3)."""
    return ww_mutex_is_locked(s, obj)


def dma_resv_locking_ctx(s: KState, obj: ResvId) -> CtxId | None:
    """dma_resv_locking_ctx - the acquire context the lock was taken with, or None (§8.3)."""
    return s.resvs[obj].ctx


def dma_resv_held(s: KState, obj: ResvId, tid: Tid) -> bool:
    """dma_resv_held - ``tid`` holds the lock of ``obj`` (lockdep's view, core-semantics §4)."""
    return tid != NO_TID and s.resvs[obj].holder == tid


def dma_resv_assert_held(
    s: KState, obj: ResvId, tid: Tid, what: str, *, invariant: int = 8
) -> KState:
    """dma_resv_assert_held - WARN unless ``tid`` holds the lock of ``obj``.

    Kernel: include/linux/dma-resv.h (lockdep_assert_held). ``what`` names the call that needs
    the lock and the message becomes "<what> without holding resvN"; a ``what`` of several
    words is taken as the whole message. The warning names ``invariant`` (default
    #8; #10 for invalidate_mappings, #30 for add_fence...). Core-semantics §4, §10 #7-#10.
    """
    if dma_resv_held(s, obj, tid):
        return s
    return warn(s, invariant, what if " " in what else f"{what} without holding resv{obj}")


# ---------------------------------------------------------------------------------------------
# Reserving and adding fences (§8.4-§8.6)


def dma_resv_reserve_fences(
    s: KState, tid: Tid, obj: ResvId, n: int, *, alloc_fails: bool = False
) -> tuple[KState, int]:
    """dma_resv_reserve_fences - make room for ``n`` more dma_resv_add_fence calls.

    Kernel: drivers/dma-buf/dma-resv.c. The lock must be held (WARN #31). ``n`` 0 is WARN and
    -EINVAL. Returns 0 when there is room already; otherwise a new list is built that keeps only
    the unsignalled fences (the signalled ones are released) and has room for ``n`` more, or
    -ENOMEM (``alloc_fails``) leaving the object unchanged. The room lasts until unlock
    (core-semantics §8.4, §10 #31). Allocating in a signalling path is WARN #48.
    """
    s = dma_resv_assert_held(s, obj, tid, "dma_resv_reserve_fences", invariant=31)
    if n <= 0:
        return warn(s, 31, "dma_resv_reserve_fences(0)"), -errno.EINVAL
    resv = s.resvs[obj]
    if len(resv.fences) + n <= resv.max_fences:
        return s, 0
    s = dma_fence_assert_may_block(s, "dma_resv_reserve_fences (GFP_KERNEL allocation)")
    if alloc_fails:
        return s, -errno.ENOMEM
    kept = tuple(slot for slot in resv.fences if not dma_fence_is_signaled(s, slot[0]))
    dropped = [f for f, _ in resv.fences if dma_fence_is_signaled(s, f)]
    s = _set(s, obj, replace(resv, fences=kept, max_fences=len(kept) + n))
    for f in dropped:
        s = dma_fence_put(s, f)
    return s, 0


def dma_resv_add_fence(s: KState, tid: Tid, obj: ResvId, f: FenceId, usage: DmaResvUsage) -> KState:
    """dma_resv_add_fence - publish ``f`` with ``usage``, taking a reference.

    Kernel: drivers/dma-buf/dma-resv.c. The lock must be held (WARN #30). A container is a WARN
    (#32) and is added anyway. ``f`` replaces the first slot holding a fence of its context with
    an equal or weaker usage that ``f`` is later than or the same as, or any signalled fence;
    the old fence is released. Otherwise it is appended, which needs a reserved slot: without
    one it is a BUG (#30) and nothing is added. Returns void (core-semantics §8.5, §10 #30-#34).
    """
    s = dma_resv_assert_held(s, obj, tid, "dma_resv_add_fence", invariant=30)
    if dma_fence_is_container(s, f):
        s = warn(s, 32, "dma_resv_add_fence with a container fence")
    resv = s.resvs[obj]
    context = s.fences[f].context
    for i, (old, old_usage) in enumerate(resv.fences):
        same_ctx = s.fences[old].context == context and old_usage >= usage
        if same_ctx:
            s, same_ctx = dma_fence_is_later_or_same(s, f, old)
        if same_ctx or dma_fence_is_signaled(s, old):
            s = dma_fence_get(s, f)
            s = _set(s, obj, replace(resv, fences=tuple_set(resv.fences, i, (f, usage))))
            return dma_fence_put(s, old)
    if len(resv.fences) >= resv.max_fences:
        return warn(s, 30, "dma_resv_add_fence without a reserved slot", "BUG")
    s = dma_fence_get(s, f)
    return _set(s, obj, replace(resv, fences=(*resv.fences, (f, usage))))


def dma_resv_replace_fences(
    s: KState,
    tid: Tid,
    obj: ResvId,
    context: int,
    replacement: FenceId,
    usage: DmaResvUsage,
) -> KState:
    """dma_resv_replace_fences - overwrite every slot of ``context`` with ``replacement``.

    Kernel: drivers/dma-buf/dma-resv.c. The lock must be held (WARN #30). Each replaced slot
    takes its own reference to ``replacement`` and gets ``usage`` (core-semantics §8.6).
    """
    s = dma_resv_assert_held(s, obj, tid, "dma_resv_replace_fences", invariant=30)
    for i, (old, _) in enumerate(s.resvs[obj].fences):
        if s.fences[old].context != context:
            continue
        s = dma_fence_get(s, replacement)
        resv = s.resvs[obj]
        s = _set(s, obj, replace(resv, fences=tuple_set(resv.fences, i, (replacement, usage))))
        s = dma_fence_put(s, old)
    return s


# ---------------------------------------------------------------------------------------------
# Iteration, snapshots, waiting (§8.7-§8.9)


def dma_resv_iter(s: KState, tid: Tid, obj: ResvId, usage: DmaResvUsage) -> tuple[Slot, ...]:
    """dma_resv_iter - the slots a locked iteration with ``usage`` yields: usage ≤ U, in slot
    order, signalled ones included.

    Kernel: dma_resv_for_each_fence / dma_resv_iter_first (include/linux/dma-resv.h). A pure
    query: the lock assertion is the caller's (dma_resv_for_each_fence does both). No
    references are taken (core-semantics §8.7, §10 #35).
    """
    del tid
    return tuple(slot for slot in s.resvs[obj].fences if slot[1] <= usage)


def dma_resv_for_each_fence(
    s: KState, tid: Tid, obj: ResvId, usage: DmaResvUsage
) -> tuple[KState, tuple[Slot, ...]]:
    """dma_resv_for_each_fence - locked iteration: assert the lock (WARN #35), then iterate.

    Kernel: include/linux/dma-resv.h (core-semantics §8.7, §10 #35).
    """
    s = dma_resv_assert_held(s, obj, tid, "dma_resv_for_each_fence", invariant=35)
    return s, dma_resv_iter(s, tid, obj, usage)


def dma_resv_iter_unlocked(s: KState, obj: ResvId, usage: DmaResvUsage) -> tuple[Slot, ...]:
    """dma_resv_iter_unlocked - what dma_resv_for_each_fence_unlocked yields: the unsignalled
    fences with usage ≤ U, in slot order.

    Kernel: drivers/dma-buf/dma-resv.c. No lock. Never restarts in the model (one atomic step,
    core-semantics §8.7, §10 #35).
    """
    return tuple(
        slot
        for slot in s.resvs[obj].fences
        if slot[1] <= usage and not dma_fence_is_signaled(s, slot[0])
    )


def dma_resv_test_signaled(s: KState, obj: ResvId, usage: DmaResvUsage) -> bool:
    """dma_resv_test_signaled - no unsignalled fence with usage ≤ ``usage`` is left.

    Kernel: drivers/dma-buf/dma-resv.c. No lock (core-semantics §8.9, §10 #36).
    """
    return not dma_resv_iter_unlocked(s, obj, usage)


def dma_resv_wait_timeout(
    s: KState,
    tid: Tid,
    obj: ResvId,
    usage: DmaResvUsage,
    intr: bool,
    timeout: int,
    *,
    signal_pending: bool = False,
    timed_out: bool = False,
) -> tuple[KState, int] | Blocked:
    """dma_resv_wait_timeout - wait for every unsignalled fence with usage ≤ ``usage``.

    Kernel: drivers/dma-buf/dma-resv.c. No lock required (holding it is allowed). Waits on each
    fence in turn with dma_fence_wait_timeout, passing the remaining time on. Returns the
    remaining jiffies (> 0) when all signalled, ``timeout`` (1 when ``timeout`` is 0) when there
    is nothing to wait for, 0 when a fence times out (``timed_out``) or a zero-timeout poll finds
    one pending, -ERESTARTSYS when interrupted; Blocked on the first unsignalled fence otherwise
    (core-semantics §8.9, §10 #36).
    """
    ret = timeout if timeout else 1
    for f, _ in dma_resv_iter_unlocked(s, obj, usage):
        if dma_fence_is_signaled(s, f):
            continue
        r = dma_fence_wait_timeout(
            s, tid, f, intr, timeout, signal_pending=signal_pending, timed_out=timed_out
        )
        if isinstance(r, Blocked):
            return r
        s, ret = r
        if ret <= 0:
            return s, ret
        if timeout:
            timeout = ret
    return s, ret


def dma_resv_get_fences(
    s: KState, obj: ResvId, usage: DmaResvUsage, *, alloc_fails: bool = False
) -> tuple[KState, tuple[FenceId, ...] | int]:
    """dma_resv_get_fences - references to the unsignalled fences with usage ≤ ``usage``.

    Kernel: drivers/dma-buf/dma-resv.c. No lock; allocates (WARN #48 in a signalling path).
    Returns the fences, or -ENOMEM (``alloc_fails``) with nothing taken (core-semantics §8.8).
    """
    s = dma_fence_assert_may_block(s, "dma_resv_get_fences (GFP_KERNEL allocation)")
    if alloc_fails:
        return s, -errno.ENOMEM
    fences = tuple(f for f, _ in dma_resv_iter_unlocked(s, obj, usage))
    for f in fences:
        s = dma_fence_get(s, f)
    return s, fences


def dma_resv_get_singleton(
    s: KState, obj: ResvId, usage: DmaResvUsage, *, alloc_fails: bool = False
) -> tuple[KState, FenceId | int | None]:
    """dma_resv_get_singleton - one fence standing for all fences with usage ≤ ``usage``.

    Kernel: drivers/dma-buf/dma-resv.c. No lock. Returns None when there is none, the fence
    itself (with a reference) when there is one, else a new dma_fence_array on a fresh context,
    seqno 1, signalling when all do; -ENOMEM on allocation failure (``alloc_fails``). The array
    must not be added back into a resv (core-semantics §8.8).
    """
    from dmabuf_model.kernel.dma_fence_array import dma_fence_array_create

    s, got = dma_resv_get_fences(s, obj, usage, alloc_fails=alloc_fails)
    if isinstance(got, int):
        return s, got
    if not got:
        return s, None
    if len(got) == 1:
        return s, got[0]
    s, context = dma_fence_context_alloc(s, 1)
    return dma_fence_array_create(s, got, context, 1, False)


def dma_resv_copy_fences(
    s: KState, tid: Tid, dst: ResvId, src: ResvId, *, alloc_fails: bool = False
) -> tuple[KState, int]:
    """dma_resv_copy_fences - replace ``dst``'s whole list with ``src``'s unsignalled fences.

    Kernel: drivers/dma-buf/dma-resv.c (S9 copies every usage up to BOOKKEEP). ``dst``'s lock
    must be held (WARN #30). The old fences of ``dst`` are released; the copies keep their
    usage and take references. Returns 0, or -ENOMEM (``alloc_fails``) with ``dst`` unchanged
    (core-semantics §8.8).
    """
    s = dma_resv_assert_held(s, dst, tid, "dma_resv_copy_fences", invariant=30)
    s = dma_fence_assert_may_block(s, "dma_resv_copy_fences (GFP_KERNEL allocation)")
    if alloc_fails:
        return s, -errno.ENOMEM
    copied = dma_resv_iter_unlocked(s, src, DmaResvUsage.BOOKKEEP)
    for f, _ in copied:
        s = dma_fence_get(s, f)
    old = s.resvs[dst].fences
    s = _set(s, dst, replace(s.resvs[dst], fences=copied, max_fences=len(copied)))
    for f, _ in old:
        s = dma_fence_put(s, f)
    return s, 0


def dma_resv_usage_rw(write: bool) -> DmaResvUsage:
    """dma_resv_usage_rw - the usage to wait for before a CPU or device access.

    Kernel: include/linux/dma-resv.h. This looks inverted but is right: a new write must wait
    for readers and writers, so it asks for READ (which includes WRITE and KERNEL); a new read
    only waits for writers, so it asks for WRITE (core-semantics §8.2, §10 #37).
    """
    return DmaResvUsage.READ if write else DmaResvUsage.WRITE


def dma_resv_describe(s: KState, obj: ResvId) -> list[str]:
    """dma_resv_describe - one debugfs line per fence with usage ≤ READ.

    Kernel: drivers/dma-buf/dma-resv.c: the usage label, then dma_fence_describe's line
    (core-semantics §5.16, §8.9). The kernel iterates under the lock; this query is pure.
    """
    return [
        f"\t{USAGE_LABEL[u]} fence:{dma_fence_describe(s, f)}"
        for f, u in s.resvs[obj].fences
        if u <= DmaResvUsage.READ
    ]


__all__ = [
    "USAGE_LABEL",
    "DmaResv",
    "DmaResvUsage",
    "Slot",
    "WwAcquireCtx",
    "dma_resv_add_fence",
    "dma_resv_assert_held",
    "dma_resv_copy_fences",
    "dma_resv_describe",
    "dma_resv_fini",
    "dma_resv_for_each_fence",
    "dma_resv_get_fences",
    "dma_resv_get_singleton",
    "dma_resv_held",
    "dma_resv_init",
    "dma_resv_is_locked",
    "dma_resv_iter",
    "dma_resv_iter_unlocked",
    "dma_resv_lock",
    "dma_resv_lock_interruptible",
    "dma_resv_lock_slow",
    "dma_resv_lock_slow_interruptible",
    "dma_resv_locking_ctx",
    "dma_resv_replace_fences",
    "dma_resv_reserve_fences",
    "dma_resv_test_signaled",
    "dma_resv_trylock",
    "dma_resv_unlock",
    "dma_resv_usage_rw",
    "dma_resv_wait_timeout",
]
