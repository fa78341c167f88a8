"""dma_buf vmap/vunmap, begin/end_cpu_access and mmap (core-semantics §5.10-§5.12, §10 #25-#27,
#29, §11)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from test_dma_buf_toys import (
    T0,
    T1,
    add_fence,
    dma_resv_add_fence_reserved,
    lock,
    log,
    names,
    new_fence,
    ok,
    okk,
    setup,
    unlock,
    warned,
    with_ext,
)

from dmabuf_model.kernel.dma_buf import (
    PAGE_SIZE,
    ULONG_MAX,
    DmaDataDirection,
    dma_buf_begin_cpu_access,
    dma_buf_begin_cpu_access_start,
    dma_buf_begin_cpu_access_wait,
    dma_buf_end_cpu_access,
    dma_buf_fd,
    dma_buf_mmap,
    dma_buf_mmap_internal,
    dma_buf_vmap,
    dma_buf_vmap_unlocked,
    dma_buf_vunmap,
    dma_buf_vunmap_unlocked,
)
from dmabuf_model.kernel.dma_fence import dma_fence_signal
from dmabuf_model.kernel.dma_resv import DmaResvUsage
from dmabuf_model.kernel.errno import EBADF, EINTR, EINVAL, ENOMEM, EOVERFLOW, ERESTARTSYS
from dmabuf_model.kernel.state import Blocked, BufId, KState, Tid

# --- §5.12 vmap -------------------------------------------------------------------------------


def test_vmap_calls_the_exporter_only_on_the_first_user_and_vunmap_on_the_last() -> None:
    """§5.12, §10 #25, #26: 0->1 calls ops.vmap, 1->0 calls ops.vunmap; pointer cached."""
    s, buf = setup()
    s = lock(s, T0, buf)
    s, p1 = dma_buf_vmap(s, T0, buf)
    s, p2 = dma_buf_vmap(s, T0, buf)
    assert p1 == p2 == 0x1000 and names(s).count("vmap") == 1
    assert s.bufs[buf].vmapping_counter == 2 and s.bufs[buf].vmap_ptr == p1
    s = dma_buf_vunmap(s, T0, buf, p1)
    assert "vunmap" not in names(s) and s.bufs[buf].vmapping_counter == 1
    s = dma_buf_vunmap(s, T0, buf, p1)
    assert names(s).count("vunmap") == 1
    assert s.bufs[buf].vmapping_counter == 0 and s.bufs[buf].vmap_ptr == 0
    assert all(held for name, _, held in log(s) if name in ("vmap", "vunmap"))  # §10 #8


def test_vmap_without_ops_vmap_fails_einval() -> None:
    """§5.12 step 4, §11 dma_buf_vmap -EINVAL."""
    s, buf = setup(vmap=False)
    s = lock(s, T0, buf)
    s, ret = dma_buf_vmap(s, T0, buf)
    assert ret == -EINVAL and not s.warnings


def test_vmap_of_null_warns_and_fails_einval() -> None:
    """§5.12 step 2."""
    s, _ = setup()
    s, ret = dma_buf_vmap(s, T0, None)
    assert ret == -EINVAL and warned(s, 0)


def test_vmap_exporter_error_is_returned_with_a_warning_and_the_counter_stays_zero() -> None:
    """§5.12 step 6, §11 exporter error."""
    s, buf = setup()
    s = with_ext(s, vmap_ret=-ENOMEM)
    s = lock(s, T0, buf)
    s, ret = dma_buf_vmap(s, T0, buf)
    assert ret == -ENOMEM and warned(s, 0)
    assert s.bufs[buf].vmapping_counter == 0 and s.bufs[buf].vmap_ptr == 0


def test_vmap_without_the_resv_warns_invariant_8() -> None:
    """§5.12 step 3, §10 #8."""
    s, buf = setup()
    s, _ = dma_buf_vmap(s, T0, buf)
    assert warned(s, 8)


@pytest.mark.parametrize("case", ["nothing mapped", "wrong pointer"])
def test_bad_vunmap_is_a_bug_and_changes_nothing(case: str) -> None:
    """§5.12 vunmap, §10 #25: null cache, zero counter or another pointer is a BUG."""
    s, buf = setup()
    s = lock(s, T0, buf)
    ptr = 0x1000
    if case == "wrong pointer":
        s, ptr = dma_buf_vmap(s, T0, buf)
        ptr += 1
    before = s.bufs[buf]
    s = dma_buf_vunmap(s, T0, buf, ptr)
    assert warned(s, 25, "BUG") and s.bufs[buf] == before


def test_unlocked_vmap_and_vunmap_take_the_resv_and_self_deadlock_when_held() -> None:
    """§5.12 _unlocked variants, §10 #11."""
    s, buf = setup()
    s, ptr = ok(dma_buf_vmap_unlocked(s, T0, buf))
    assert ptr > 0 and not s.warnings and s.resvs[0].holder == -1
    r = dma_buf_vunmap_unlocked(lock(s, T0, buf), T0, buf, ptr)
    assert isinstance(r, Blocked) and r.holder == T0
    s = okk(dma_buf_vunmap_unlocked(s, T0, buf, ptr))
    assert s.bufs[buf].vmapping_counter == 0 and not s.warnings
    s, ret = ok(dma_buf_vmap_unlocked(s, T0, None))
    assert ret == -EINVAL


# --- §5.10 CPU access -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("direction", "blocks_on"),
    [
        (DmaDataDirection.FROM_DEVICE, {"KERNEL", "WRITE"}),
        (DmaDataDirection.TO_DEVICE, {"KERNEL", "WRITE", "READ"}),
        (DmaDataDirection.BIDIRECTIONAL, {"KERNEL", "WRITE", "READ"}),
    ],
)
def test_begin_cpu_access_waits_for_the_usage_rw_fences(
    direction: DmaDataDirection, blocks_on: set[str]
) -> None:
    """§5.10, §10 #27: a writer waits for READ (all implicit fences), a reader for WRITE;
    BOOKKEEP fences are never waited for."""
    for usage in DmaResvUsage:
        s, buf = setup()
        s, f = add_fence(s, buf, usage)
        r = dma_buf_begin_cpu_access(s, T1, buf, direction)
        assert isinstance(r, Blocked) == (usage.name in blocks_on), usage
        s = dma_fence_signal(s, f)
        s, ret = ok(dma_buf_begin_cpu_access(s, T1, buf, direction))
        assert ret == 0 and names(s) == ["begin_cpu_access"]


def test_begin_cpu_access_returns_the_exporter_error_without_waiting() -> None:
    """§5.10: the wait only happens when ops.begin_cpu_access returned 0."""
    s, buf = setup()
    s = with_ext(s, cpu_ret=-EINTR)
    s, ret = ok(dma_buf_begin_cpu_access(s, T1, buf, DmaDataDirection.TO_DEVICE))
    assert ret == -EINTR


def test_begin_cpu_access_interrupted_returns_erestartsys() -> None:
    """§5.10, §11 dma_buf_begin_cpu_access -ERESTARTSYS."""
    s, buf = setup()
    s, _ = add_fence(s, buf, DmaResvUsage.WRITE)
    s, ret = ok(
        dma_buf_begin_cpu_access(s, T1, buf, DmaDataDirection.FROM_DEVICE, signal_pending=True)
    )
    assert ret == -ERESTARTSYS


def test_begin_cpu_access_without_the_op_still_waits() -> None:
    """§5.10: the core wait does not depend on the exporter op."""
    s, buf = setup(cpu=False)
    s, _ = add_fence(s, buf, DmaResvUsage.WRITE)
    assert isinstance(dma_buf_begin_cpu_access(s, T1, buf, DmaDataDirection.FROM_DEVICE), Blocked)


def test_begin_cpu_access_of_null_warns_and_fails_einval() -> None:
    """§5.10, §11 -EINVAL (NULL)."""
    s, _ = setup()
    s, ret = ok(dma_buf_begin_cpu_access(s, T1, None, DmaDataDirection.TO_DEVICE))
    assert ret == -EINVAL and warned(s, 0)


def test_cpu_access_with_the_resv_held_warns_invariant_11() -> None:
    """§4 (might_lock), §10 #11."""
    s, buf = setup()
    s = lock(s, T1, buf)
    s, ret = ok(dma_buf_begin_cpu_access(s, T1, buf, DmaDataDirection.TO_DEVICE))
    assert ret == 0 and warned(s, 11)
    s2, _ = setup()
    s2 = lock(s2, T1, buf)
    s2, _ = dma_buf_end_cpu_access(s2, T1, buf, DmaDataDirection.TO_DEVICE)
    assert warned(s2, 11)


def test_two_step_begin_cpu_access_waits_for_a_fence_the_exporter_added() -> None:
    """§5.10: the exporter's begin_cpu_access may start a migration; the core wait covers it."""
    s, buf = setup()
    s, ret = dma_buf_begin_cpu_access_start(s, T1, buf, DmaDataDirection.FROM_DEVICE)
    assert ret == 0
    s, f = add_fence(s, buf, DmaResvUsage.KERNEL)  # stands for the migration fence
    r = dma_buf_begin_cpu_access_wait(s, T1, buf, DmaDataDirection.FROM_DEVICE)
    assert isinstance(r, Blocked)
    s = dma_fence_signal(s, f)
    s, ret = ok(dma_buf_begin_cpu_access_wait(s, T1, buf, DmaDataDirection.FROM_DEVICE))
    assert ret == 0


def test_one_step_begin_cpu_access_flags_an_exporter_that_adds_a_fence() -> None:
    """Modelling choice of dma_buf_begin_cpu_access (§10 #27): named in a WARN."""

    def migrating_begin(s: KState, tid: Tid, b: BufId, d: DmaDataDirection) -> tuple[KState, int]:
        s, f = new_fence(s)
        s = lock(s, tid, b)
        s = dma_resv_add_fence_reserved(s, tid, s.bufs[b].resv, f, DmaResvUsage.KERNEL)
        return unlock(s, tid, b), 0

    s, buf = setup()
    ops = replace(s.bufs[buf].ops, begin_cpu_access=migrating_begin)
    s = s.evolve(bufs=(replace(s.bufs[buf], ops=ops),))
    s, ret = ok(dma_buf_begin_cpu_access(s, T1, buf, DmaDataDirection.FROM_DEVICE))
    assert ret == 0 and warned(s, 27)


def test_end_cpu_access_returns_the_exporter_result_or_zero() -> None:
    """§5.10, §11 dma_buf_end_cpu_access: exporter error; 0 without the op."""
    s, buf = setup()
    s = with_ext(s, cpu_ret=-EINTR)
    assert dma_buf_end_cpu_access(s, T1, buf, DmaDataDirection.TO_DEVICE)[1] == -EINTR
    s, buf = setup(cpu=False)
    assert dma_buf_end_cpu_access(s, T1, buf, DmaDataDirection.TO_DEVICE)[1] == 0


def test_end_cpu_access_of_null_warns() -> None:
    """§5.10: NULL is only a WARN in the kernel."""
    s, _ = setup()
    s, _ = dma_buf_end_cpu_access(s, T1, None, DmaDataDirection.TO_DEVICE)
    assert warned(s, 0)


# --- §5.11 mmap -------------------------------------------------------------------------------


def test_mmap_within_bounds_calls_the_exporter_unlocked() -> None:
    """§5.11, §10 #29: pgoff + npages <= size >> PAGE_SHIFT; ops.mmap runs unheld (§10 #9)."""
    s, buf = setup(size=4 * PAGE_SIZE)
    s, ret = dma_buf_mmap(s, T1, buf, 1, 3)
    assert ret == 0 and log(s)[-1] == ("mmap", buf, False)


def test_mmap_past_the_end_fails_einval_and_a_partial_last_page_is_not_mappable() -> None:
    """§5.11, §10 #29, §11 dma_buf_mmap -EINVAL: pages counted with size >> PAGE_SHIFT."""
    s, buf = setup(size=2 * PAGE_SIZE + 100)
    assert dma_buf_mmap(s, T1, buf, 0, 3)[1] == -EINVAL
    assert dma_buf_mmap(s, T1, buf, 2, 1)[1] == -EINVAL
    assert dma_buf_mmap(s, T1, buf, 0, 2)[1] == 0


def test_mmap_overflowing_pgoff_fails_eoverflow() -> None:
    """§5.11, §11 dma_buf_mmap -EOVERFLOW."""
    s, buf = setup()
    assert dma_buf_mmap(s, T1, buf, ULONG_MAX, 1)[1] == -EOVERFLOW


def test_mmap_without_ops_mmap_fails_einval() -> None:
    """§5.11, §10 #29: only if ops.mmap exists."""
    s, buf = setup(mmap=False)
    assert dma_buf_mmap(s, T1, buf, 0, 1)[1] == -EINVAL


def test_mmap_returns_the_exporter_error_and_takes_no_reference() -> None:
    """§5.11, §11 exporter error."""
    s, buf = setup()
    s = with_ext(s, mmap_ret=-ENOMEM)
    s, ret = dma_buf_mmap(s, T1, buf, 0, 1)
    assert ret == -ENOMEM and s.bufs[buf].file_refcount == 1


def test_mmap_of_null_warns_and_fails_einval() -> None:
    """§5.11 dma_buf_mmap: NULL → WARN→-EINVAL."""
    s, _ = setup()
    s, ret = dma_buf_mmap(s, T1, None, 0, 1)
    assert ret == -EINVAL and warned(s, 0)


def test_fd_mmap_checks_the_file_the_op_and_the_bounds() -> None:
    """§5.11 fd mmap, §11 fd mmap -EINVAL / exporter error."""
    s, buf = setup(size=2 * PAGE_SIZE)
    s, fd = dma_buf_fd(s, T0, buf, 0)
    assert dma_buf_mmap_internal(s, T1, fd, 0, 2)[1] == 0
    assert dma_buf_mmap_internal(s, T1, fd, 1, 2)[1] == -EINVAL
    assert dma_buf_mmap_internal(s, T1, 42, 0, 1)[1] == -EBADF
    other = s.evolve(fd_table=((9, "sync_file", 0),))
    assert dma_buf_mmap_internal(other, T1, 9, 0, 1)[1] == -EINVAL
    s2, buf2 = setup(mmap=False)
    s2, fd2 = dma_buf_fd(s2, T0, buf2, 0)
    assert dma_buf_mmap_internal(s2, T1, fd2, 0, 1)[1] == -EINVAL


def test_mmap_with_the_resv_held_warns_invariant_9() -> None:
    """§4, §10 #9: ops.mmap runs without the resv."""
    s, buf = setup()
    s = lock(s, T1, buf)
    s, _ = dma_buf_mmap(s, T1, buf, 0, 1)
    assert warned(s, 9)
