"""ww_mutex through the dma_resv wrappers: wait-die, -EALREADY, -EDEADLK, slow path (§8.3, #12)."""

from __future__ import annotations

import pytest

from dmabuf_model.kernel import errno
from dmabuf_model.kernel.dma_resv import (
    dma_resv_init,
    dma_resv_lock,
    dma_resv_lock_interruptible,
    dma_resv_lock_slow,
    dma_resv_lock_slow_interruptible,
    dma_resv_locking_ctx,
    dma_resv_unlock,
)
from dmabuf_model.kernel.state import Blocked, CtxId, KState, ResvId, Tid
from dmabuf_model.kernel.ww_mutex import (
    W_AFTER_DONE,
    W_AFTER_FINI,
    W_HELD_AFTER_DEADLK,
    W_NOT_CONTENDED,
    W_SLOW_WITHOUT_DEADLK,
    ww_acquire_done,
    ww_acquire_fini,
    ww_acquire_init,
)

OLD, YOUNG = 1, 2


def _two_resvs() -> tuple[KState, CtxId, CtxId]:
    """resv0, resv1 and two contexts: OLD's (stamp 1) and YOUNG's (stamp 2)."""
    s, _ = dma_resv_init(KState())
    s, _ = dma_resv_init(s)
    s, old = ww_acquire_init(s, OLD)
    s, young = ww_acquire_init(s, YOUNG)
    return s, old, young


def _lock(s: KState, tid: Tid, obj: ResvId, ctx: CtxId | None) -> tuple[KState, int]:
    r = dma_resv_lock(s, tid, obj, ctx)
    assert not isinstance(r, Blocked), r
    return r


def _whats(s: KState) -> list[tuple[int, str]]:
    return [(w.invariant, w.what) for w in s.warnings]


def test_relock_with_the_same_context_returns_ealready() -> None:
    """core-semantics §8.3, §10 #12: re-locking with the same context gives -EALREADY."""
    s, old, _ = _two_resvs()
    s, ret = _lock(s, OLD, 0, old)
    s2, again = _lock(s, OLD, 0, old)
    assert (ret, again) == (0, -errno.EALREADY)
    assert s2.ww_ctxs[old].held == (0,) and dma_resv_locking_ctx(s2, 0) == old


def test_relock_with_a_null_context_is_a_self_deadlock() -> None:
    """core-semantics §4, §8.3, §10 #12: with a NULL context the holder blocks on itself."""
    s, _, _ = _two_resvs()
    s, _ = _lock(s, OLD, 0, None)
    assert dma_resv_lock(s, OLD, 0, None) == Blocked(on="resv0", holder=OLD)


def test_younger_context_holding_a_lock_dies_against_an_older_holder() -> None:
    """core-semantics §8.3 (S13), §10 #12: wait-die → -EDEADLK, the lock becomes contended."""
    s, old, young = _two_resvs()
    s, _ = _lock(s, OLD, 0, old)
    s, _ = _lock(s, YOUNG, 1, young)
    s, ret = _lock(s, YOUNG, 0, young)
    assert ret == -errno.EDEADLK and s.ww_ctxs[young].contended == 0


def test_context_holding_nothing_waits_instead_of_dying() -> None:
    """core-semantics §8.3, §10 #12: -EDEADLK never happens when the context holds no lock."""
    s, old, young = _two_resvs()
    s, _ = _lock(s, OLD, 0, old)
    assert dma_resv_lock(s, YOUNG, 0, young) == Blocked(on="resv0", holder=OLD)


def test_older_context_waits_for_a_younger_holder() -> None:
    """core-semantics §8.3: in wait-die the older context waits."""
    s, old, young = _two_resvs()
    s, _ = _lock(s, YOUNG, 1, young)
    s, _ = _lock(s, OLD, 0, old)
    assert dma_resv_lock(s, OLD, 1, old) == Blocked(on="resv1", holder=YOUNG)


def test_context_waits_for_a_holder_without_context() -> None:
    """core-semantics §8.3: a lock taken with a NULL context has no stamp to die against."""
    s, _, young = _two_resvs()
    s, _ = _lock(s, OLD, 0, None)
    s, _ = _lock(s, YOUNG, 1, young)
    assert dma_resv_lock(s, YOUNG, 0, young) == Blocked(on="resv0", holder=OLD)


def test_backoff_then_slow_path_then_ealready_completes_without_warnings() -> None:
    """core-semantics §8.3, §10 #12: -EDEADLK, unlock all, lock_slow, re-lock the rest."""
    s, old, young = _two_resvs()
    s, _ = _lock(s, OLD, 0, old)
    s, _ = _lock(s, YOUNG, 1, young)
    s, ret = _lock(s, YOUNG, 0, young)
    assert ret == -errno.EDEADLK
    s = dma_resv_unlock(s, YOUNG, 1)
    assert dma_resv_lock_slow(s, YOUNG, 0, young) == Blocked(on="resv0", holder=OLD)
    s, _ = _lock(s, OLD, 1, old)
    s = dma_resv_unlock(dma_resv_unlock(s, OLD, 1), OLD, 0)
    s = ww_acquire_fini(s, old)
    r = dma_resv_lock_slow(s, YOUNG, 0, young)
    assert isinstance(r, KState)
    s, ret = _lock(r, YOUNG, 1, young)
    assert ret == 0 and s.ww_ctxs[young].held == (0, 1)
    assert s.ww_ctxs[young].contended is None and not s.warnings


def test_slow_path_with_other_locks_still_held_warns() -> None:
    """core-semantics §8.3, §10 #12: lock_slow before releasing every lock breaks the rule."""
    s, old, young = _two_resvs()
    s, _ = _lock(s, OLD, 0, old)
    s, _ = _lock(s, YOUNG, 1, young)
    s, _ = _lock(s, YOUNG, 0, young)
    s = dma_resv_unlock(s, OLD, 0)
    r = dma_resv_lock_slow(s, YOUNG, 0, young)
    assert isinstance(r, KState)
    assert _whats(r) == [(12, W_HELD_AFTER_DEADLK)]
    assert r.resvs[0].holder == YOUNG


def test_slow_path_without_a_preceding_edeadlk_warns() -> None:
    """core-semantics §8.3, §10 #12: lock_slow is only for the lock that returned -EDEADLK."""
    s, old, _ = _two_resvs()
    r = dma_resv_lock_slow(s, OLD, 0, old)
    assert isinstance(r, KState) and _whats(r) == [(12, W_SLOW_WITHOUT_DEADLK)]


def test_taking_another_lock_after_edeadlk_warns() -> None:
    """core-semantics §8.3, §10 #12: after -EDEADLK the next lock must be the contended one."""
    s, old, young = _two_resvs()
    s, _ = dma_resv_init(s)
    s, _ = _lock(s, OLD, 0, old)
    s, _ = _lock(s, YOUNG, 1, young)
    s, _ = _lock(s, YOUNG, 0, young)
    s = dma_resv_unlock(s, YOUNG, 1)
    s, ret = _lock(s, YOUNG, 2, young)
    assert ret == 0
    assert _whats(s) == [(12, W_NOT_CONTENDED)]


def test_interruptible_lock_returns_eintr_instead_of_sleeping() -> None:
    """core-semantics §8.3 (S12): lock_interruptible adds -EINTR."""
    s, old, young = _two_resvs()
    s, _ = _lock(s, OLD, 0, old)
    r = dma_resv_lock_interruptible(s, YOUNG, 0, young, signal_pending=True)
    assert not isinstance(r, Blocked) and r[1] == -errno.EINTR
    r = dma_resv_lock_interruptible(s, YOUNG, 1, young, signal_pending=True)
    assert not isinstance(r, Blocked) and r[1] == 0  # a free lock is taken, no signal check
    s, _ = _lock(s, YOUNG, 1, young)
    s, ret = _lock(s, YOUNG, 0, young)
    assert ret == -errno.EDEADLK
    s = dma_resv_unlock(s, YOUNG, 1)
    r = dma_resv_lock_slow_interruptible(s, YOUNG, 0, young, signal_pending=True)
    assert not isinstance(r, Blocked) and r[1] == -errno.EINTR


def test_acquire_fini_with_locks_held_warns() -> None:
    """core-semantics §8.3, §10 #12: fini only after every lock is released."""
    s, old, _ = _two_resvs()
    s, _ = _lock(s, OLD, 0, old)
    s = ww_acquire_fini(s, old)
    assert _whats(s) == [(12, "ww_acquire_fini with locks still held")]


def test_locking_after_acquire_done_or_fini_warns() -> None:
    """core-semantics §8.3, §10 #12: no acquisitions after ww_acquire_done / ww_acquire_fini."""
    s, old, young = _two_resvs()
    s = ww_acquire_done(s, old)
    s, _ = _lock(s, OLD, 0, old)
    assert _whats(s) == [(12, W_AFTER_DONE)]
    s = ww_acquire_fini(s, young)
    s, _ = _lock(s, YOUNG, 1, young)
    assert (12, W_AFTER_FINI) in _whats(s)


def test_a_context_used_by_another_thread_is_a_programming_error() -> None:
    """An acquire context lives on one task's stack: using it from another is a model bug."""
    s, old, _ = _two_resvs()
    with pytest.raises(ValueError, match="belongs to T1"):
        dma_resv_lock(s, YOUNG, 0, old)


def test_unlock_drops_the_lock_from_its_context() -> None:
    """core-semantics §8.3: ww_mutex_unlock decrements the context's acquired set."""
    s, old, _ = _two_resvs()
    s, _ = _lock(s, OLD, 0, old)
    s, _ = _lock(s, OLD, 1, old)
    s = dma_resv_unlock(s, OLD, 0)
    assert s.ww_ctxs[old].held == (1,) and dma_resv_locking_ctx(s, 0) is None
