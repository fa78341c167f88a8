"""dma_resv: the reservation object, a wait-die ww_mutex plus a fence container.

Model of drivers/dma-buf/dma-resv.c and include/linux/dma-resv.h, core-semantics §8. The lock
records which thread holds it (and with which acquire context) so "called with resv held" is
checked, not assumed (§4, §10 #7-#12).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from dmabuf_model.kernel.state import NO_TID, CtxId, FenceId, ResvId, Tid


class DmaResvUsage(IntEnum):
    """enum dma_resv_usage: KERNEL < WRITE < READ < BOOKKEEP; a query for U gets all ≤ U (§8.2)."""

    KERNEL = 0
    WRITE = 1
    READ = 2
    BOOKKEEP = 3


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
class WwAcquireCtx:
    """Model of struct ww_acquire_ctx: a stamp (its age: smaller is older) and the locks held.

    ``contended`` is the resv that returned -EDEADLK and must be taken next with the slow path
    (§8.3, §10 #12); ``done`` is set by ww_acquire_done.
    """

    tid: Tid
    stamp: int
    held: tuple[ResvId, ...] = ()
    contended: ResvId | None = None
    done: bool = False
    finished: bool = False
