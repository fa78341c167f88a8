"""sync_file: a file that holds exactly one reference to a fence (drivers/dma-buf/sync_file.c).

Core-semantics §9.15 and §10 #47. A sync_file is named by its index in KState.sync_files; the
fd layer (installing it in KState.fd_table) belongs to the callers (dma_buf's
EXPORT_SYNC_FILE). Poll arms one wake-up callback, "sync_file_fence_check_cb", on the fence;
its only effect in the model is to appear in the fence's ``cb_ran`` log.
"""

from __future__ import annotations

from dmabuf_model.kernel import errno
from dmabuf_model.kernel.dma_fence import (
    DmaFenceCb,
    dma_fence_add_callback,
    dma_fence_assert_may_block,
    dma_fence_get,
    dma_fence_get_status,
    dma_fence_is_signaled,
    dma_fence_put,
    dma_fence_remove_callback,
)
from dmabuf_model.kernel.state import FenceId, KState, record, replace, tuple_set

EPOLLIN = 0x1
"""The poll event sync_file reports once its fence has signalled."""

SYNC_FILE_CB = "sync_file_fence_check_cb"
"""Name of the wake-up callback poll queues on the fence; ``data`` is the sync_file id."""


@record
class SyncFile:
    """Model of struct sync_file: its fence and whether its file is still open.

    ``poll_enabled`` is the POLL_ENABLED flag: the first poll queued the wake-up callback.
    """

    fence: FenceId
    released: bool = False
    poll_enabled: bool = False


def _cb(sync_file: int) -> DmaFenceCb:
    return DmaFenceCb(SYNC_FILE_CB, sync_file)


def sync_file_create(s: KState, f: FenceId, *, alloc_fails: bool = False) -> tuple[KState, int]:
    """sync_file_create - wrap ``f`` in a new sync_file that holds one extra reference to it.

    Kernel: drivers/dma-buf/sync_file.c. No lock; allocates with GFP_KERNEL. Returns the
    sync_file id, or -ENOMEM when the allocation fails (the kernel returns NULL), with no
    reference taken (core-semantics §9.15, §10 #47).
    """
    s = dma_fence_assert_may_block(s, "sync_file_create (GFP_KERNEL allocation)")
    if alloc_fails:
        return s, -errno.ENOMEM
    s = dma_fence_get(s, f)
    return s.evolve(sync_files=(*s.sync_files, SyncFile(fence=f))), len(s.sync_files)


def _live(s: KState, sync_file: int) -> SyncFile | None:
    if 0 <= sync_file < len(s.sync_files) and not s.sync_files[sync_file].released:
        return s.sync_files[sync_file]
    return None


def sync_file_get_fence(s: KState, sync_file: int) -> tuple[KState, FenceId | None]:
    """sync_file_get_fence - a new reference to the fence of ``sync_file``.

    Kernel: drivers/dma-buf/sync_file.c. Returns None when the id names no open sync_file (the
    kernel's "fd is not a sync_file"), core-semantics §9.15.
    """
    sf = _live(s, sync_file)
    if sf is None:
        return s, None
    return dma_fence_get(s, sf.fence), sf.fence


def sync_file_poll(s: KState, sync_file: int) -> tuple[KState, int]:
    """sync_file_poll - EPOLLIN once the fence has signalled, else 0.

    Kernel: drivers/dma-buf/sync_file.c. The first poll queues the wake-up callback on the fence
    (an already signalled fence wakes the poller at once). Returns the event mask
    (core-semantics §9.15). A closed sync_file is a programming error (ValueError).
    """
    sf = _live(s, sync_file)
    if sf is None:
        raise ValueError(f"sync_file{sync_file} is not open")
    if not sf.poll_enabled:
        s = s.evolve(sync_files=tuple_set(s.sync_files, sync_file, replace(sf, poll_enabled=True)))
        s, _ = dma_fence_add_callback(s, sf.fence, _cb(sync_file))
    return s, EPOLLIN if dma_fence_is_signaled(s, sf.fence) else 0


def sync_file_get_status(s: KState, sync_file: int) -> int:
    """sync_file_get_status - the status SYNC_IOC_FILE_INFO reports with num_fences == 0.

    Kernel: drivers/dma-buf/sync_file.c: dma_fence_get_status of the sync_file's fence, i.e.
    0 pending, 1 signalled, or the fence's error (core-semantics §9.15).
    """
    sf = _live(s, sync_file)
    if sf is None:
        raise ValueError(f"sync_file{sync_file} is not open")
    return dma_fence_get_status(s, sf.fence)


def sync_file_release(s: KState, sync_file: int) -> KState:
    """sync_file_release - the file's last reference is gone: drop the fence reference.

    Kernel: drivers/dma-buf/sync_file.c. Removes the poll callback if one was armed, then puts
    the fence (core-semantics §9.15, §10 #47). Releasing twice is a programming error
    (ValueError): the file layer releases exactly once.
    """
    sf = _live(s, sync_file)
    if sf is None:
        raise ValueError(f"sync_file{sync_file} released twice or never created")
    if sf.poll_enabled:
        s, _ = dma_fence_remove_callback(s, sf.fence, _cb(sync_file))
    s = s.evolve(sync_files=tuple_set(s.sync_files, sync_file, replace(sf, released=True)))
    return dma_fence_put(s, sf.fence)


__all__ = [
    "EPOLLIN",
    "SYNC_FILE_CB",
    "SyncFile",
    "sync_file_create",
    "sync_file_get_fence",
    "sync_file_get_status",
    "sync_file_poll",
    "sync_file_release",
]
