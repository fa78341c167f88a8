"""sync_file: one fence reference for the file's lifetime, poll, status (core-semantics §9.15)."""

from __future__ import annotations

import pytest

from dmabuf_model.kernel import errno
from dmabuf_model.kernel.dma_fence import (
    dma_fence_context_alloc,
    dma_fence_init,
    dma_fence_set_error,
    dma_fence_signal,
)
from dmabuf_model.kernel.state import FenceId, KState
from dmabuf_model.kernel.sync_file import (
    EPOLLIN,
    SYNC_FILE_CB,
    sync_file_create,
    sync_file_get_fence,
    sync_file_get_status,
    sync_file_poll,
    sync_file_release,
)


def _fence() -> tuple[KState, FenceId]:
    s, ctx = dma_fence_context_alloc(KState(), 1)
    return dma_fence_init(s, ctx, 1, enable_signaling=True)


def test_sync_file_create_takes_exactly_one_fence_reference() -> None:
    """core-semantics §9.15, §10 #47: the sync_file holds one extra reference."""
    s, f = _fence()
    s, sf = sync_file_create(s, f)
    assert sf == 0 and s.sync_files[sf].fence == f
    assert s.fences[f].refcount == 2


def test_sync_file_release_drops_its_reference() -> None:
    """core-semantics §9.15, §10 #47: release puts the fence exactly once."""
    s, f = _fence()
    s, sf = sync_file_create(s, f)
    s = sync_file_release(s, sf)
    assert s.sync_files[sf].released and s.fences[f].refcount == 1
    with pytest.raises(ValueError, match="released twice"):
        sync_file_release(s, sf)


def test_sync_file_create_allocation_failure_returns_enomem_without_a_reference() -> None:
    """core-semantics §9.15: sync_file_create fails (NULL) → -ENOMEM here, nothing taken."""
    s, f = _fence()
    s2, ret = sync_file_create(s, f, alloc_fails=True)
    assert ret == -errno.ENOMEM and s2 == s


def test_sync_file_get_fence_returns_a_new_reference_or_none() -> None:
    """core-semantics §9.15: a new reference; None when the id is not an open sync_file."""
    s, f = _fence()
    s, sf = sync_file_create(s, f)
    s, got = sync_file_get_fence(s, sf)
    assert got == f and s.fences[f].refcount == 3
    assert sync_file_get_fence(s, 7) == (s, None)
    s = sync_file_release(s, sf)
    assert sync_file_get_fence(s, sf) == (s, None)


def test_poll_arms_one_callback_and_reports_epollin_once_signalled() -> None:
    """core-semantics §9.15: the first poll installs the wake-up callback; EPOLLIN when done."""
    s, f = _fence()
    s, sf = sync_file_create(s, f)
    s, ev = sync_file_poll(s, sf)
    s, ev2 = sync_file_poll(s, sf)
    assert (ev, ev2) == (0, 0)
    assert [cb.func for cb in s.fences[f].cb_list] == [SYNC_FILE_CB]
    s = dma_fence_signal(s, f)
    s, ev = sync_file_poll(s, sf)
    assert ev == EPOLLIN and [cb.func for cb in s.fences[f].cb_ran] == [SYNC_FILE_CB]


def test_release_removes_an_armed_poll_callback() -> None:
    """core-semantics §9.15: release removes the poll callback before dropping the fence."""
    s, f = _fence()
    s, sf = sync_file_create(s, f)
    s, _ = sync_file_poll(s, sf)
    s = sync_file_release(s, sf)
    assert s.fences[f].cb_list == () and s.fences[f].refcount == 1


def test_status_follows_the_fence() -> None:
    """core-semantics §9.15: FILE_INFO status with num_fences 0: 0, 1 or the fence error."""
    s, f = _fence()
    s, sf = sync_file_create(s, f)
    assert sync_file_get_status(s, sf) == 0
    s = dma_fence_set_error(s, f, -errno.ETIME)
    s = dma_fence_signal(s, f)
    assert sync_file_get_status(s, sf) == -errno.ETIME
