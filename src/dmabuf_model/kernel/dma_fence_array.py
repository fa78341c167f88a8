"""dma_fence_array: one fence standing for a set of fences (drivers/dma-buf/dma-fence-array.c).

Model of struct dma_fence_array, core-semantics §9.13 and §10 #45. An array is a DmaFence of
kind "array" whose ``members`` are the fences it owns and whose ``pending`` counts the members
still to signal (1 in signal-on-any mode).

DOC: how an array signals (our words). Nothing happens until someone enables signalling on the
array (a wait, a callback). Then the array queues a "dma_fence_array_cb_func" callback on every
member and takes one array reference per queued callback. Each member that signals, or had
already signalled, decrements ``pending`` and offers its error; the first non-zero member error
becomes the array's error. When ``pending`` reaches exactly 0 the array signals. The kernel
defers that last signal to irq_work; the model signals inside the same step. Before signalling
is enabled, dma_fence_is_signaled asks the members directly.

Modelling choice: the kernel parks a "pending error" sentinel (1) in the array's error field
until it signals; the model stores 0 or the first member error instead, which is the same value
at every point where the error is meaningful (after signalling).
"""

from __future__ import annotations

from collections.abc import Sequence

from dmabuf_model.kernel.dma_fence import (
    DmaFence,
    DmaFenceCb,
    DmaFenceKindOps,
    dma_fence_add,
    dma_fence_add_callback,
    dma_fence_assert_may_block,
    dma_fence_get,
    dma_fence_is_container,
    dma_fence_is_signaled,
    dma_fence_put,
    dma_fence_register_cb_func,
    dma_fence_register_kind,
    dma_fence_signal,
)
from dmabuf_model.kernel.state import FenceId, KState, replace, tuple_set, warn

ARRAY_CB = "dma_fence_array_cb_func"
"""Name of the callback an array queues on each member; its ``data`` is the array's id."""


def _array(s: KState, a: FenceId) -> DmaFence:
    fence = s.fences[a]
    if fence.kind != "array":
        raise ValueError(f"fence{a} is not a dma_fence_array")
    return fence


def _set(s: KState, a: FenceId, fence: DmaFence) -> KState:
    return s.evolve(fences=tuple_set(s.fences, a, fence))


def _set_pending_error(s: KState, a: FenceId, error: int) -> KState:
    """dma_fence_array_set_pending_error: the first non-zero member error sticks (§9.13)."""
    array = _array(s, a)
    if error and not array.error and not array.signaled:
        s = _set(s, a, replace(array, error=error))
    return s


def _dec_pending(s: KState, a: FenceId) -> tuple[KState, bool]:
    """atomic_dec_and_test(&num_pending): True exactly when the count reaches 0."""
    array = _array(s, a)
    s = _set(s, a, replace(array, pending=array.pending - 1))
    return s, array.pending - 1 == 0


def dma_fence_array_create(
    s: KState,
    fences: Sequence[FenceId],
    context: int,
    seqno: int,
    signal_on_any: bool,
    *,
    alloc_fails: bool = False,
) -> tuple[KState, FenceId | None]:
    """dma_fence_array_create - one fence that signals when all (or any) of ``fences`` do.

    Kernel: drivers/dma-buf/dma-fence-array.c. No lock; allocates with GFP_KERNEL (WARN #48 in a
    signalling path). Takes over the caller's references to ``fences``. An empty list, or a
    member that is itself a container, is a WARN (no nesting). ``pending`` starts at 1 with
    ``signal_on_any``, else at len(fences). Returns the array's id, or None when the allocation
    fails (``alloc_fails``), core-semantics §9.13, §10 #45. [snapshot variance: S9 calls a
    four-argument form without signal_on_any.]
    """
    s = dma_fence_assert_may_block(s, "dma_fence_array_create (GFP_KERNEL allocation)")
    if alloc_fails:
        return s, None
    if not fences:
        s = warn(s, 45, "dma_fence_array_create with no fences")
    for f in fences:
        if dma_fence_is_container(s, f):
            s = warn(s, 45, "dma_fence_array_create with a container member")
    array = DmaFence(
        context=context,
        seqno=seqno,
        kind="array",
        members=tuple(fences),
        pending=1 if signal_on_any else len(fences),
        signal_on_any=signal_on_any,
        driver_name="dma_fence_array",
        timeline_name="unbound",
    )
    return dma_fence_add(s, array)


def _enable_signaling(s: KState, a: FenceId) -> tuple[KState, bool]:
    """dma_fence_array_enable_signaling: hook every member; False if already complete."""
    for member in _array(s, a).members:
        s = dma_fence_get(s, a)
        s, ret = dma_fence_add_callback(s, member, DmaFenceCb(ARRAY_CB, a))
        if ret:
            s = _set_pending_error(s, a, s.fences[member].error)
            s = dma_fence_put(s, a)
            s, zero = _dec_pending(s, a)
            if zero:
                return s, False
    return s, True


def _cb_func(s: KState, member: FenceId, cb: DmaFenceCb) -> KState:
    """dma_fence_array_cb_func: a member signalled; the last one signals the array."""
    a = cb.data
    assert isinstance(a, int)
    s = _set_pending_error(s, a, s.fences[member].error)
    s, zero = _dec_pending(s, a)
    if zero:
        s = dma_fence_signal(s, a)  # irq_dma_fence_array_work, run at once
    return dma_fence_put(s, a)


def _signaled(s: KState, a: FenceId) -> bool:
    """dma_fence_array_signaled: pending <= 0 once enabled, else count signalled members."""
    array = _array(s, a)
    if array.enable_signal:
        return array.pending <= 0
    pending = array.pending
    for member in array.members:
        if dma_fence_is_signaled(s, member):
            pending -= 1
            if pending == 0:
                return True
    return False


def _release(s: KState, a: FenceId) -> KState:
    """dma_fence_array_release: drop the references to the members."""
    for member in _array(s, a).members:
        s = dma_fence_put(s, member)
    return s


def to_dma_fence_array(s: KState, f: FenceId) -> DmaFence | None:
    """to_dma_fence_array - the array record of ``f``, or None when ``f`` is not an array."""
    fence = s.fences[f]
    return fence if fence.kind == "array" else None


def dma_fence_match_context(s: KState, f: FenceId, context: int) -> bool:
    """dma_fence_match_context - ``f``, or every member of the array ``f``, is on ``context``.

    Kernel: drivers/dma-buf/dma-fence-array.c (core-semantics §9.13).
    """
    fence = s.fences[f]
    if fence.kind != "array":
        return fence.context == context
    return all(s.fences[m].context == context for m in fence.members)


def dma_fence_array_first(s: KState, head: FenceId | None) -> FenceId | None:
    """dma_fence_array_first - the first member, ``head`` itself if not an array, or None.

    Kernel: drivers/dma-buf/dma-fence-array.c (core-semantics §9.13).
    """
    if head is None:
        return None
    array = to_dma_fence_array(s, head)
    if array is None:
        return head
    return array.members[0] if array.members else None


def dma_fence_array_next(s: KState, head: FenceId, index: int) -> FenceId | None:
    """dma_fence_array_next - member ``index`` of the array ``head``, or None past the end.

    Kernel: drivers/dma-buf/dma-fence-array.c (core-semantics §9.13).
    """
    array = to_dma_fence_array(s, head)
    if array is None or index >= len(array.members):
        return None
    return array.members[index]


dma_fence_register_kind("array", DmaFenceKindOps(_enable_signaling, _signaled, _release))
dma_fence_register_cb_func(ARRAY_CB, _cb_func)

__all__ = [
    "ARRAY_CB",
    "dma_fence_array_create",
    "dma_fence_array_first",
    "dma_fence_array_next",
    "dma_fence_match_context",
    "to_dma_fence_array",
]
