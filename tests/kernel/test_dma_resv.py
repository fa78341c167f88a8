"""dma_resv: reserve/add_fence, usages, iteration, waits, snapshots (core-semantics §8, #30-#37)."""

from __future__ import annotations

import pytest

from dmabuf_model.kernel import errno
from dmabuf_model.kernel.dma_fence import (
    MAX_SCHEDULE_TIMEOUT,
    dma_fence_context_alloc,
    dma_fence_init,
    dma_fence_signal,
)
from dmabuf_model.kernel.dma_fence_array import dma_fence_array_create
from dmabuf_model.kernel.dma_resv import (
    DmaResvUsage,
    dma_resv_add_fence,
    dma_resv_assert_held,
    dma_resv_copy_fences,
    dma_resv_describe,
    dma_resv_fini,
    dma_resv_for_each_fence,
    dma_resv_get_fences,
    dma_resv_get_singleton,
    dma_resv_held,
    dma_resv_init,
    dma_resv_is_locked,
    dma_resv_iter,
    dma_resv_iter_unlocked,
    dma_resv_lock,
    dma_resv_replace_fences,
    dma_resv_reserve_fences,
    dma_resv_test_signaled,
    dma_resv_trylock,
    dma_resv_unlock,
    dma_resv_usage_rw,
    dma_resv_wait_timeout,
)
from dmabuf_model.kernel.state import Blocked, FenceId, KernelWarning, KState

T = 1
OBJ = 0
K, W, R, B = (
    DmaResvUsage.KERNEL,
    DmaResvUsage.WRITE,
    DmaResvUsage.READ,
    DmaResvUsage.BOOKKEEP,
)


def _locked(reserve: int = 0) -> KState:
    s, obj = dma_resv_init(KState())
    r = dma_resv_lock(s, T, obj, None)
    assert not isinstance(r, Blocked)
    s = r[0]
    if reserve:
        s, ret = dma_resv_reserve_fences(s, T, obj, reserve)
        assert ret == 0
    return s


def _fence(s: KState, context: int | None = None, seqno: int = 1) -> tuple[KState, FenceId]:
    if context is None:
        s, context = dma_fence_context_alloc(s, 1)
    return dma_fence_init(s, context, seqno, enable_signaling=True)


def _numbers(s: KState) -> list[int]:
    return [w.invariant for w in s.warnings]


def _wait(s: KState, usage: DmaResvUsage, timeout: int, **kw: bool) -> tuple[KState, int] | Blocked:
    return dma_resv_wait_timeout(s, T, OBJ, usage, True, timeout, **kw)


# Locking ---------------------------------------------------------------------------------------


def test_lock_records_the_holder_and_unlock_releases_it() -> None:
    """core-semantics §4, §8.3: the resv knows which thread holds it."""
    s = _locked()
    assert dma_resv_is_locked(s, OBJ) and dma_resv_held(s, OBJ, T)
    assert dma_resv_lock(s, 2, OBJ, None) == Blocked(on="resv0", holder=T)
    assert dma_resv_trylock(s, 2, OBJ) == (s, False)
    s = dma_resv_unlock(s, T, OBJ)
    assert not dma_resv_is_locked(s, OBJ)
    s, took = dma_resv_trylock(s, 2, OBJ)
    assert took and dma_resv_held(s, OBJ, 2)


def test_unlock_by_a_thread_that_does_not_hold_it_warns() -> None:
    """core-semantics §8.3: unlocking someone else's resv (or a free one) is a WARN."""
    s = _locked()
    s = dma_resv_unlock(s, 2, OBJ)
    assert not dma_resv_is_locked(s, OBJ)
    s = dma_resv_unlock(s, 2, OBJ)
    assert s.warnings == (
        KernelWarning(0, "dma_resv_unlock by a thread that does not hold the resv"),
        KernelWarning(0, "dma_resv_unlock of a resv that is not locked"),
    )


def test_assert_held_names_the_call_and_the_invariant() -> None:
    """core-semantics §4, §10 #8, §11: a missing resv lock where one is asserted is a WARN."""
    s, _ = dma_resv_init(KState())
    s = dma_resv_assert_held(s, OBJ, T, "dma_buf_pin")
    s = dma_resv_assert_held(s, OBJ, T, "dma_buf_invalidate_mappings", invariant=10)
    assert s.warnings == (
        KernelWarning(8, "dma_buf_pin without holding resv0"),
        KernelWarning(10, "dma_buf_invalidate_mappings without holding resv0"),
    )
    assert dma_resv_assert_held(_locked(), OBJ, T, "x").warnings == ()
    s = dma_resv_assert_held(s, OBJ, T, "dma_buf_vmap without resv held")
    assert s.warnings[-1] == KernelWarning(8, "dma_buf_vmap without resv held")


# reserve_fences (§8.4) -------------------------------------------------------------------------


def test_reserve_zero_fences_warns_einval() -> None:
    """core-semantics §8.4, §10 #31: reserve_fences(0) → WARN, -EINVAL."""
    s, ret = dma_resv_reserve_fences(_locked(), T, OBJ, 0)
    assert ret == -errno.EINVAL
    assert s.warnings == (KernelWarning(31, "dma_resv_reserve_fences(0)"),)


def test_reserve_without_the_lock_warns() -> None:
    """core-semantics §8.4, §10 #31: the lock must be held."""
    s, _ = dma_resv_init(KState())
    s, ret = dma_resv_reserve_fences(s, T, OBJ, 1)
    assert ret == 0 and _numbers(s) == [31]


def test_reserve_allocation_failure_returns_enomem_and_changes_nothing() -> None:
    """core-semantics §8.4: -ENOMEM leaves the object unchanged."""
    s = _locked()
    s2, ret = dma_resv_reserve_fences(s, T, OBJ, 2, alloc_fails=True)
    assert ret == -errno.ENOMEM and s2 == s


def test_reservation_guarantees_room_until_unlock_only() -> None:
    """core-semantics §8.4, §10 #30, #31: reserved room lasts until the next unlock."""
    s = _locked(reserve=2)
    s, f = _fence(s)
    s = dma_resv_add_fence(s, T, OBJ, f, W)
    assert s.resvs[OBJ].max_fences == 2
    s = dma_resv_unlock(s, T, OBJ)
    assert s.resvs[OBJ].max_fences == 1


def test_reserve_rebuild_drops_signalled_fences() -> None:
    """core-semantics §8.4: a rebuilt list keeps only unsignalled fences, in order."""
    s = _locked(reserve=3)
    s, a = _fence(s)
    s, b = _fence(s)
    s, c = _fence(s)
    for f in (a, b, c):
        s = dma_resv_add_fence(s, T, OBJ, f, R)
    s = dma_fence_signal(s, b)
    s, ret = dma_resv_reserve_fences(s, T, OBJ, 1)
    assert ret == 0 and s.resvs[OBJ].fences == ((a, R), (c, R))
    assert s.resvs[OBJ].max_fences == 3 and s.fences[b].refcount == 1


# add_fence (§8.5) ------------------------------------------------------------------------------


def test_add_fence_without_a_reserved_slot_is_a_bug() -> None:
    """core-semantics §8.5, §10 #30, §11: append with num_fences >= max_fences → BUG."""
    s = _locked()
    s, f = _fence(s)
    s = dma_resv_add_fence(s, T, OBJ, f, W)
    assert s.resvs[OBJ].fences == () and s.fences[f].refcount == 1
    assert s.warnings == (KernelWarning(30, "dma_resv_add_fence without a reserved slot", "BUG"),)


def test_add_fence_without_the_lock_warns() -> None:
    """core-semantics §8.5, §10 #30: the lock must be held."""
    s = dma_resv_unlock(_locked(reserve=1), T, OBJ)
    s, f = _fence(s)
    s = dma_resv_add_fence(s, T, OBJ, f, W)
    assert s.warnings[0] == KernelWarning(30, "dma_resv_add_fence without holding resv0")


def test_add_fence_takes_a_reference() -> None:
    """core-semantics §8.5: the resv holds its own reference to each fence."""
    s = _locked(reserve=1)
    s, f = _fence(s)
    s = dma_resv_add_fence(s, T, OBJ, f, K)
    assert s.fences[f].refcount == 2 and s.resvs[OBJ].fences == ((f, K),)


def test_adding_a_container_warns() -> None:
    """core-semantics §8.5, §10 #32, §11: containers must be added leaf by leaf."""
    s = _locked(reserve=1)
    s, a = _fence(s)
    s, arr = dma_fence_array_create(s, (a,), 77, 1, False)
    assert arr is not None
    s = dma_resv_add_fence(s, T, OBJ, arr, W)
    assert s.warnings == (KernelWarning(32, "dma_resv_add_fence with a container fence"),)


def test_later_fence_of_the_same_context_with_stronger_usage_replaces_in_place() -> None:
    """core-semantics §8.5, §10 #33, #34: same context, usage promoted, no new slot."""
    s = _locked(reserve=1)
    s, ctx = dma_fence_context_alloc(s, 1)
    s, old = _fence(s, ctx, 1)
    s, new = _fence(s, ctx, 2)
    s = dma_resv_add_fence(s, T, OBJ, old, R)
    s = dma_resv_add_fence(s, T, OBJ, new, W)
    assert s.resvs[OBJ].fences == ((new, W),)
    assert s.fences[old].refcount == 1 and not s.warnings


def test_same_context_with_weaker_usage_appends_and_never_demotes() -> None:
    """core-semantics §8.5, §10 #34: the stronger slot stays; a second slot is appended."""
    s = _locked(reserve=2)
    s, ctx = dma_fence_context_alloc(s, 1)
    s, old = _fence(s, ctx, 1)
    s, new = _fence(s, ctx, 2)
    s = dma_resv_add_fence(s, T, OBJ, old, W)
    s = dma_resv_add_fence(s, T, OBJ, new, B)
    assert s.resvs[OBJ].fences == ((old, W), (new, B))


def test_an_older_fence_of_the_same_context_does_not_replace_a_newer_one() -> None:
    """core-semantics §8.5 (S9): replacement needs the new fence to be later or the same."""
    s = _locked(reserve=2)
    s, ctx = dma_fence_context_alloc(s, 1)
    s, newer = _fence(s, ctx, 5)
    s, older = _fence(s, ctx, 4)
    s = dma_resv_add_fence(s, T, OBJ, newer, R)
    s = dma_resv_add_fence(s, T, OBJ, older, R)
    assert s.resvs[OBJ].fences == ((newer, R), (older, R))


def test_a_signalled_slot_is_reused_by_any_fence_and_usage() -> None:
    """core-semantics §8.5, §10 #33, #34: a slot whose fence signalled may be taken by anyone."""
    s = _locked(reserve=1)
    s, a = _fence(s)
    s, b = _fence(s)
    s = dma_resv_add_fence(s, T, OBJ, a, K)
    s = dma_fence_signal(s, a)
    s = dma_resv_add_fence(s, T, OBJ, b, B)
    assert s.resvs[OBJ].fences == ((b, B),) and not s.warnings


def test_replace_fences_overwrites_every_slot_of_the_context() -> None:
    """core-semantics §8.6: each slot of the context gets the replacement and one reference."""
    s = _locked(reserve=3)
    s, ctx = dma_fence_context_alloc(s, 1)
    s, a = _fence(s, ctx, 1)
    s, b = _fence(s, ctx, 2)
    s, other = _fence(s)
    s, repl = _fence(s)
    s = dma_resv_add_fence(s, T, OBJ, a, W)
    s = dma_resv_add_fence(s, T, OBJ, other, R)
    s = dma_resv_add_fence(s, T, OBJ, b, B)
    s = dma_resv_replace_fences(s, T, OBJ, ctx, repl, B)
    assert s.resvs[OBJ].fences == ((repl, B), (other, R), (repl, B))
    assert s.fences[repl].refcount == 3 and s.fences[a].refcount == 1


# Iteration and tests (§8.7, §8.9) --------------------------------------------------------------


def _four_usages() -> tuple[KState, tuple[FenceId, ...]]:
    s = _locked(reserve=4)
    fences = []
    for usage in (B, R, W, K):
        s, f = _fence(s)
        s = dma_resv_add_fence(s, T, OBJ, f, usage)
        fences.append(f)
    return s, tuple(fences)


def test_locked_iteration_yields_usage_up_to_u_including_signalled() -> None:
    """core-semantics §8.7, §10 #35: usage ≤ U, slot order, signalled slots included."""
    s, (_, fr, fw, fk) = _four_usages()
    s = dma_fence_signal(s, fw)
    s, slots = dma_resv_for_each_fence(s, T, OBJ, R)
    assert slots == ((fr, R), (fw, W), (fk, K)) and not s.warnings
    assert dma_resv_iter(s, T, OBJ, K) == ((fk, K),)
    assert len(dma_resv_iter(s, T, OBJ, B)) == 4


def test_locked_iteration_without_the_lock_warns() -> None:
    """core-semantics §8.7, §10 #35: the locked iterator asserts the lock."""
    s, _ = _four_usages()
    s = dma_resv_unlock(s, T, OBJ)
    s, _ = dma_resv_for_each_fence(s, T, OBJ, B)
    assert _numbers(s) == [35]


def test_unlocked_iteration_yields_only_unsignalled_fences() -> None:
    """core-semantics §8.7, §10 #35: the unlocked iterator skips signalled fences."""
    s, (fb, fr, fw, fk) = _four_usages()
    s = dma_fence_signal(s, fr)
    assert dma_resv_iter_unlocked(s, OBJ, B) == ((fb, B), (fw, W), (fk, K))


def test_test_signaled_only_considers_usage_up_to_u() -> None:
    """core-semantics §8.9, §10 #36: a pending BOOKKEEP fence does not affect a READ test."""
    s, (_, fr, fw, fk) = _four_usages()
    for f in (fr, fw, fk):
        s = dma_fence_signal(s, f)
    assert dma_resv_test_signaled(s, OBJ, R)
    assert not dma_resv_test_signaled(s, OBJ, B)


def test_usage_rw_maps_write_to_read_and_read_to_write() -> None:
    """core-semantics §8.2, §10 #37: a write waits for readers (READ); a read for writers."""
    assert dma_resv_usage_rw(True) is R
    assert dma_resv_usage_rw(False) is W


# wait_timeout (§8.9) ---------------------------------------------------------------------------


@pytest.mark.parametrize(("timeout", "expected"), [(0, 1), (9, 9)])
def test_wait_with_nothing_to_wait_for_returns_timeout_or_one(timeout: int, expected: int) -> None:
    """core-semantics §8.9, §10 #36: no fences → timeout, or 1 if timeout is 0."""
    s = _locked()
    r = _wait(s, B, timeout)
    assert not isinstance(r, Blocked) and r[1] == expected


def test_zero_timeout_wait_is_a_poll() -> None:
    """core-semantics §8.9, §10 #36: with timeout 0 the result is 1 or 0."""
    s, (*_, fk) = _four_usages()
    r = _wait(s, K, 0)
    assert not isinstance(r, Blocked) and r[1] == 0
    s = dma_fence_signal(s, fk)
    r = _wait(s, K, 0)
    assert not isinstance(r, Blocked) and r[1] == 1


def test_wait_blocks_on_the_first_pending_fence_and_succeeds_once_all_signalled() -> None:
    """core-semantics §8.9, §10 #36: > 0 only when every fence with usage ≤ U signalled."""
    s, (_, _, fw, fk) = _four_usages()
    assert _wait(s, W, MAX_SCHEDULE_TIMEOUT) == Blocked(on=f"fence{fw}")
    s = dma_fence_signal(s, fw)
    assert _wait(s, W, MAX_SCHEDULE_TIMEOUT) == Blocked(on=f"fence{fk}")
    s = dma_fence_signal(s, fk)
    r = _wait(s, W, MAX_SCHEDULE_TIMEOUT)
    assert not isinstance(r, Blocked) and r[1] == MAX_SCHEDULE_TIMEOUT


def test_wait_times_out_to_zero_or_is_interrupted() -> None:
    """core-semantics §8.9, §10 #36, #43: timed out → 0; signal with intr → -ERESTARTSYS."""
    s, _ = _four_usages()
    r = _wait(s, B, 5, timed_out=True)
    assert not isinstance(r, Blocked) and r[1] == 0
    r = _wait(s, B, 5, signal_pending=True)
    assert not isinstance(r, Blocked) and r[1] == -errno.ERESTARTSYS


# Snapshots (§8.8) ------------------------------------------------------------------------------


def test_get_singleton_returns_none_one_fence_or_an_array() -> None:
    """core-semantics §8.8: 0 → None, 1 → that fence with a reference, more → an all-array."""
    s = _locked(reserve=2)
    assert dma_resv_get_singleton(s, OBJ, B) == (s, None)
    s, a = _fence(s)
    s = dma_resv_add_fence(s, T, OBJ, a, W)
    s, one = dma_resv_get_singleton(s, OBJ, B)
    assert one == a and s.fences[a].refcount == 3
    s, b = _fence(s)
    s = dma_resv_add_fence(s, T, OBJ, b, R)
    s, arr = dma_resv_get_singleton(s, OBJ, R)
    assert isinstance(arr, int) and arr >= 0
    fence = s.fences[arr]
    assert (fence.kind, fence.members, fence.seqno, fence.signal_on_any) == (
        "array",
        (a, b),
        1,
        False,
    )
    assert dma_resv_get_singleton(s, OBJ, R, alloc_fails=True)[1] == -errno.ENOMEM


def test_get_fences_references_the_unsignalled_fences_up_to_u() -> None:
    """core-semantics §8.8: an array of references to unsignalled fences with usage ≤ U."""
    s, (_, fr, fw, fk) = _four_usages()
    s = dma_fence_signal(s, fk)
    s, got = dma_resv_get_fences(s, OBJ, R)
    assert got == (fr, fw) and s.fences[fr].refcount == 3
    assert dma_resv_get_fences(s, OBJ, R, alloc_fails=True)[1] == -errno.ENOMEM


def test_copy_fences_replaces_the_whole_destination_list() -> None:
    """core-semantics §8.8 (S9): dst gets src's unsignalled fences of every usage."""
    s, (fb, fr, fw, fk) = _four_usages()
    s = dma_fence_signal(s, fr)
    s, dst = dma_resv_init(s)
    r = dma_resv_lock(s, 2, dst, None)
    assert not isinstance(r, Blocked)
    s, ret = dma_resv_reserve_fences(r[0], 2, dst, 1)
    s, old = _fence(s)
    s = dma_resv_add_fence(s, 2, dst, old, K)
    s, ret = dma_resv_copy_fences(s, 2, dst, OBJ)
    assert ret == 0 and s.resvs[dst].fences == ((fb, B), (fw, W), (fk, K))
    assert s.fences[old].refcount == 1 and not s.warnings


def test_fini_drops_every_fence_reference() -> None:
    """core-semantics §8.10: dma_resv_fini puts every fence."""
    s, fences = _four_usages()
    s = dma_resv_fini(dma_resv_unlock(s, T, OBJ), OBJ)
    assert all(s.fences[f].refcount == 1 for f in fences) and s.resvs[OBJ].fences == ()


def test_describe_prints_one_line_per_fence_up_to_read() -> None:
    """core-semantics §5.16, §8.9: usage label then dma_fence_describe; BOOKKEEP omitted."""
    s, (_, fr, fw, fk) = _four_usages()
    s = dma_fence_signal(s, fw)
    assert dma_resv_describe(s, OBJ) == [
        f"\tread fence:{s.fences[fr].context}   seq 1 unsignalled",
        f"\twrite fence:{s.fences[fw].context}   seq 1 signalled",
        f"\tkernel fence:{s.fences[fk].context}   seq 1 unsignalled",
    ]
