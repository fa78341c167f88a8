"""KState: the whole kernel-side state as one immutable, hashable value.

The checker copies and hashes states millions of times (design.md "The state is a value"), so
every object lives in a tuple indexed by a small integer id and every record is a frozen, slotted
dataclass. A kernel function takes a KState and returns a new one, sharing untouched parts.

The core never looks inside ``ext``: it is the rest of the world (platform and driver state),
read and written only by the exporter and importer callbacks that drivers provide.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, TypeVar

if TYPE_CHECKING:
    from dmabuf_model.kernel.dma_buf import DmaBuf, DmaBufAttachment, SgTable
    from dmabuf_model.kernel.dma_fence import DmaFence
    from dmabuf_model.kernel.dma_resv import DmaResv, WwAcquireCtx
    from dmabuf_model.kernel.locking import Mutex, RwSemaphore
    from dmabuf_model.kernel.sync_file import SyncFile

Tid = int
"""A thread of execution (task). The core records which Tid holds each lock (§4)."""

FenceId = int
ResvId = int
BufId = int
AttachId = int
SgtId = int
LockId = int
CtxId = int
Fd = int

NO_TID: Tid = -1
"""Holder value of a free lock."""

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class KernelWarning:
    """A WARN or BUG the kernel would print, kept in the state so the checker can report it.

    ``invariant`` is the core-semantics §10 number (0 when the misuse has no number there);
    ``kind`` is "WARN" (execution continues as in the kernel) or "BUG" (fatal in the kernel; the
    model records it and stops the offending thread's effect).
    """

    invariant: int
    what: str
    kind: Literal["WARN", "BUG"] = "WARN"

    def __str__(self) -> str:
        num = f" (core-semantics §10 #{self.invariant})" if self.invariant else ""
        return f"{self.kind}: {self.what}{num}"


@dataclass(frozen=True, slots=True)
class Blocked:
    """Returned instead of a result when a call would sleep: the calling step is not enabled.

    ``on`` names the resource waited for ("resv0", "fence3", "memory_lock"), ``holder`` the thread
    that holds it when that is known; the scheduler builds the waits-for chain from these.
    """

    on: str
    holder: Tid = NO_TID


@dataclass(frozen=True, slots=True)
class KState:
    """The kernel state: every dma_fence, dma_resv, dma_buf, attachment, lock and warning.

    Ids are indices into the tuples and are never reused; a released object stays in its slot
    with a released flag so that ids in traces keep their meaning.
    """

    fences: tuple[DmaFence, ...] = ()
    next_fence_context: int = 1  # dma_fence_context_alloc starts at 1; 0 is the stub (§9.3)
    resvs: tuple[DmaResv, ...] = ()
    ww_ctxs: tuple[WwAcquireCtx, ...] = ()
    next_ww_stamp: int = 1
    bufs: tuple[DmaBuf, ...] = ()
    attachments: tuple[DmaBufAttachment, ...] = ()
    sg_tables: tuple[SgTable, ...] = ()
    sync_files: tuple[SyncFile, ...] = ()
    locks: tuple[Mutex | RwSemaphore, ...] = ()
    fd_table: tuple[tuple[Fd, str, int], ...] = ()
    """Open descriptors as (fd, kind, object id); kind is "dma_buf" or "sync_file"."""
    next_fd: Fd = 3
    warnings: tuple[KernelWarning, ...] = ()
    ext: Hashable = None
    """The rest of the world (platform, drivers). Opaque to the core."""

    def evolve(self, **changes: Any) -> KState:
        """Return a copy with the given fields replaced (attrs' evolve, dataclasses.replace)."""
        return replace(self, **changes)


def warn(s: KState, invariant: int, what: str, kind: Literal["WARN", "BUG"] = "WARN") -> KState:
    """warn - record a kernel WARN/BUG once; the call then goes on as the kernel's would (§11).

    Recording the same warning twice leaves the state unchanged, so warnings do not multiply
    states in the checker.
    """
    w = KernelWarning(invariant, what, kind)
    if w in s.warnings:
        return s
    return replace(s, warnings=(*s.warnings, w))


def warn_if(s: KState, cond: bool, invariant: int, what: str) -> KState:
    """warn_if - WARN_ON(cond): record the warning when ``cond`` holds."""
    return warn(s, invariant, what) if cond else s


def tuple_set(items: tuple[T, ...], index: int, value: T) -> tuple[T, ...]:
    """tuple_set - a copy of ``items`` with ``items[index] = value`` (the state is a value)."""
    return (*items[:index], value, *items[index + 1 :])


def fields_of(record: object) -> tuple[str, ...]:
    """fields_of - the field names of a state record, for generic printers and JSON."""
    from dataclasses import fields

    return tuple(f.name for f in fields(record))  # type: ignore[arg-type]


__all__ = [
    "NO_TID",
    "AttachId",
    "Blocked",
    "BufId",
    "CtxId",
    "Fd",
    "FenceId",
    "KState",
    "KernelWarning",
    "LockId",
    "ResvId",
    "SgtId",
    "Tid",
    "field",
    "fields_of",
    "tuple_set",
    "warn",
    "warn_if",
]
