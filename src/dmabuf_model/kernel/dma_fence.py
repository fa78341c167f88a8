"""dma_fence: one-way completion events on ordered timelines (drivers/dma-buf/dma-fence.c).

Model of struct dma_fence and the dma_fence_* API, core-semantics §9. A fence lives in
KState.fences at its FenceId; arrays and chains are fences whose ``members``/``chain_prev`` say
what they contain (§9.13, §9.14).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class DmaFenceCb:
    """A queued dma_fence_cb: ``func`` names the callback, ``data`` is its hashable argument."""

    func: str
    data: Hashable = None


@dataclass(frozen=True, slots=True)
class DmaFence:
    """Model of struct dma_fence (include/linux/dma-fence.h), core-semantics §9.1.

    ``kind`` is "fence", "array" or "chain". ``ops_enable_signaling`` says whether the fence's ops
    provide enable_signaling and what it returns (None: op absent).
    """

    context: int
    seqno: int
    signaled: bool = False
    timestamp: int | None = None
    enable_signal: bool = False
    seqno64: bool = False
    error: int = 0
    cb_list: tuple[DmaFenceCb, ...] = ()
    refcount: int = 1
    ops_enable_signaling: bool | None = None
    kind: Literal["fence", "array", "chain"] = "fence"
    members: tuple[int, ...] = ()
    """array: member fence ids. chain: (contained fence id,)."""
    pending: int = 0
    """array: members still to signal before the array signals (§9.13)."""
    signal_on_any: bool = False
    chain_prev: int | None = None
    """chain: the previous node (or any fence), None at the start of the chain."""
    prev_seqno: int = 0
