"""dma_buf: buffer sharing between an exporter and importers (drivers/dma-buf/dma-buf.c).

Model of struct dma_buf, struct dma_buf_attachment, struct dma_buf_ops and struct
dma_buf_attach_ops (core-semantics §1-§3). An optional callback is None exactly as a NULL
function pointer is in the kernel, and the predicates of §1.3 follow from which are present.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from enum import IntEnum

from dmabuf_model.kernel.state import AttachId, BufId, KState, ResvId, SgtId, Tid

PAGE_SIZE = 4096
PAGE_SHIFT = 12
DMA_BUF_NAME_LEN = 32


class DmaDataDirection(IntEnum):
    """enum dma_data_direction (include/linux/dma-direction.h)."""

    BIDIRECTIONAL = 0
    TO_DEVICE = 1
    FROM_DEVICE = 2
    NONE = 3


# Exporter callback types (struct dma_buf_ops, core-semantics §2). Each takes the whole state and
# the calling thread and returns the new state, plus the kernel return value where there is one.
AttachFn = Callable[[KState, Tid, AttachId], tuple[KState, int]]
DetachFn = Callable[[KState, Tid, AttachId], KState]
PinFn = Callable[[KState, Tid, AttachId], tuple[KState, int]]
UnpinFn = Callable[[KState, Tid, AttachId], KState]
MapResult = tuple[Hashable, ...] | int | None
"""map_dma_buf's result: the sg entries (opaque to the core), a negative errno, or None (NULL)."""
MapFn = Callable[[KState, Tid, AttachId, DmaDataDirection], tuple[KState, MapResult]]
UnmapFn = Callable[[KState, Tid, AttachId, SgtId, DmaDataDirection], KState]
ReleaseFn = Callable[[KState, Tid, BufId], KState]
CpuAccessFn = Callable[[KState, Tid, BufId, DmaDataDirection], tuple[KState, int]]
MmapFn = Callable[[KState, Tid, BufId, int, int], tuple[KState, int]]
VmapFn = Callable[[KState, Tid, BufId], tuple[KState, int]]
"""vmap returns a positive cookie standing for the iosys_map address, or a negative errno."""
VunmapFn = Callable[[KState, Tid, BufId, int], KState]
InvalidateFn = Callable[[KState, Tid, AttachId], KState]


@dataclass(frozen=True, slots=True)
class DmaBufOps:
    """struct dma_buf_ops. Compared and hashed by ``name`` only, so states stay hashable.

    map_dma_buf, unmap_dma_buf and release are mandatory (checked by dma_buf_export, §5.1);
    pin and unpin come as a pair (§10 #2).
    """

    name: str
    map_dma_buf: MapFn | None = field(default=None, compare=False)
    unmap_dma_buf: UnmapFn | None = field(default=None, compare=False)
    release: ReleaseFn | None = field(default=None, compare=False)
    attach: AttachFn | None = field(default=None, compare=False)
    detach: DetachFn | None = field(default=None, compare=False)
    pin: PinFn | None = field(default=None, compare=False)
    unpin: UnpinFn | None = field(default=None, compare=False)
    begin_cpu_access: CpuAccessFn | None = field(default=None, compare=False)
    end_cpu_access: CpuAccessFn | None = field(default=None, compare=False)
    mmap: MmapFn | None = field(default=None, compare=False)
    vmap: VmapFn | None = field(default=None, compare=False)
    vunmap: VunmapFn | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class DmaBufAttachOps:
    """struct dma_buf_attach_ops (core-semantics §3). Hashed by ``name`` only.

    ``invalidate_mappings`` is optional since v7: None means the importer cannot be revoked in
    bounded time (dma_buf_attach_revocable() is false).
    """

    name: str
    allow_peer2peer: bool = False
    invalidate_mappings: InvalidateFn | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class DmaBuf:
    """Model of struct dma_buf (core-semantics §1.1).

    ``file_refcount`` is the file's reference count, which is the buffer's refcount (§5.2).
    ``attachments`` is the attachment list, newest first (§1.1). ``released`` is set once the last
    reference is gone and ops.release has run.
    """

    size: int
    ops: DmaBufOps
    resv: ResvId
    exp_name: str = ""
    priv: Hashable = None
    name: str | None = None
    resv_owned: bool = True
    attachments: tuple[AttachId, ...] = ()
    vmapping_counter: int = 0
    vmap_ptr: int = 0
    file_refcount: int = 1
    poll_in_active: bool = False
    poll_out_active: bool = False
    ino: int = 0
    released: bool = False


@dataclass(frozen=True, slots=True)
class DmaBufAttachment:
    """Model of struct dma_buf_attachment (core-semantics §1.2), plus ghost state.

    The kernel keeps no pin count or mapping state per attachment; ``pins`` (from dma_buf_pin)
    and ``map_pins`` (from pin-on-map) are ghost counters the model keeps to check §10 #16 and
    #19, and ``detached`` marks an attachment removed by dma_buf_detach.
    """

    dmabuf: BufId
    dev: str
    importer_ops: DmaBufAttachOps | None = None
    importer_priv: Hashable = None
    peer2peer: bool = False
    priv: Hashable = None
    pins: int = 0
    map_pins: int = 0
    detached: bool = False


@dataclass(frozen=True, slots=True)
class SgTable:
    """An sg_table handed out by dma_buf_map_attachment: whose it is and what it maps.

    ``entries`` are what the exporter returned (DMA addresses and lengths, opaque to the core);
    ``live`` is cleared by dma_buf_unmap_attachment (§10 #18).
    """

    attach: AttachId
    dir: DmaDataDirection
    entries: tuple[Hashable, ...]
    live: bool = True
    pinned_on_map: bool = False
