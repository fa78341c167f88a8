"""Sleeping locks that drivers use beside the resv (mutex, rw_semaphore), and the DOC
"locking convention" of dma-buf.c as data (core-semantics §4).

Locks record their holder thread so a blocked acquisition can name whom it waits for, which is
what the scheduler's waits-for chain and deadlock report are built from.
"""

from __future__ import annotations

from dataclasses import dataclass

from dmabuf_model.kernel.state import NO_TID, Tid


@dataclass(frozen=True, slots=True)
class Mutex:
    """Model of struct mutex: one holder or none (kernel/locking/mutex.c)."""

    name: str
    holder: Tid = NO_TID


@dataclass(frozen=True, slots=True)
class RwSemaphore:
    """Model of struct rw_semaphore: one writer, or any number of readers (sorted tuple)."""

    name: str
    writer: Tid = NO_TID
    readers: tuple[Tid, ...] = ()


# The DOC "locking convention" of drivers/dma-buf/dma-buf.c, core-semantics §4.
CALLED_WITH_RESV_HELD: frozenset[str] = frozenset(
    {
        "dma_buf_pin",
        "dma_buf_unpin",
        "dma_buf_map_attachment",
        "dma_buf_unmap_attachment",
        "dma_buf_vmap",
        "dma_buf_vunmap",
        "dma_buf_invalidate_mappings",
    }
)
CALLED_WITHOUT_RESV: frozenset[str] = frozenset(
    {
        "dma_buf_attach",
        "dma_buf_dynamic_attach",
        "dma_buf_detach",
        "dma_buf_export",
        "dma_buf_fd",
        "dma_buf_get",
        "dma_buf_put",
        "dma_buf_mmap",
        "dma_buf_begin_cpu_access",
        "dma_buf_end_cpu_access",
        "dma_buf_map_attachment_unlocked",
        "dma_buf_unmap_attachment_unlocked",
        "dma_buf_vmap_unlocked",
        "dma_buf_vunmap_unlocked",
    }
)
OPS_CALLED_LOCKED: frozenset[str] = frozenset(
    {"pin", "unpin", "map_dma_buf", "unmap_dma_buf", "vmap", "vunmap"}
)
OPS_CALLED_UNLOCKED: frozenset[str] = frozenset(
    {"attach", "detach", "release", "begin_cpu_access", "end_cpu_access", "mmap"}
)
