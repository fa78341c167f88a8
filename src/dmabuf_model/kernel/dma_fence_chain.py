"""dma_fence_chain: timeline points linked into a chain (drivers/dma-buf/dma-fence-chain.c).

Model of struct dma_fence_chain, core-semantics §9.14 and §10 #46, plus the unwrap iterator of
drivers/dma-buf/dma-fence-unwrap.c. A chain node is a DmaFence of kind "chain" with
``members == (contained fence,)``, ``chain_prev`` (the previous node, or any fence, or None)
and ``prev_seqno``. It always uses 64-bit seqnos.

DOC: chain semantics (our words). A node counts as signalled only once its own contained fence
and every contained fence further back in the chain have signalled. Enabling signalling hooks a
"dma_fence_chain_cb" callback on the newest unsignalled contained fence; when that fires the
node re-arms on the next unsignalled one, and signals when there is none. Walking the chain
(dma_fence_chain_walk) also garbage-collects: predecessors whose contained fence has signalled
are spliced out, so ``chain_prev`` may change. The kernel re-arms from irq_work; the model does
it inside the signalling step.
"""

from __future__ import annotations

from dmabuf_model.kernel import errno
from dmabuf_model.kernel.dma_fence import (
    DmaFence,
    DmaFenceCb,
    DmaFenceKindOps,
    __dma_fence_is_later,
    dma_fence_add,
    dma_fence_add_callback,
    dma_fence_context_alloc,
    dma_fence_get,
    dma_fence_is_chain,
    dma_fence_is_signaled,
    dma_fence_put,
    dma_fence_register_cb_func,
    dma_fence_register_kind,
    dma_fence_signal,
)
from dmabuf_model.kernel.state import FenceId, KState, replace, tuple_set, warn

CHAIN_CB = "dma_fence_chain_cb"
"""Name of the callback a chain node queues on a contained fence; ``data`` is the node's id."""


def to_dma_fence_chain(s: KState, f: FenceId | None) -> DmaFence | None:
    """to_dma_fence_chain - the chain record of ``f``, or None when ``f`` is not a chain node."""
    if f is None:
        return None
    fence = s.fences[f]
    return fence if fence.kind == "chain" else None


def dma_fence_chain_contained(s: KState, f: FenceId) -> FenceId:
    """dma_fence_chain_contained - the fence inside the chain node ``f``, or ``f`` itself.

    Kernel: include/linux/dma-fence-chain.h (core-semantics §9.14).
    """
    chain = to_dma_fence_chain(s, f)
    return chain.members[0] if chain is not None else f


def dma_fence_chain_init(
    s: KState, prev: FenceId | None, fence: FenceId, seqno: int
) -> tuple[KState, FenceId]:
    """dma_fence_chain_init - a new chain node for ``fence`` after ``prev``.

    Kernel: drivers/dma-buf/dma-fence-chain.c. No lock. Takes over the caller's references to
    ``prev`` and ``fence``. If ``prev`` is a chain node and ``seqno`` is later than its seqno,
    the node shares prev's context and records ``prev_seqno``; otherwise it gets a fresh context
    and, after a chain node, seqno max(prev.seqno, seqno). A contained fence that is itself a
    chain is a WARN (chains nest only through ``prev``). Returns the node's id (core-semantics
    §9.14, §10 #46).
    """
    prev_chain = to_dma_fence_chain(s, prev)
    prev_seqno = 0
    if (
        prev_chain is not None
        and prev is not None
        and __dma_fence_is_later(s, prev, seqno, prev_chain.seqno)
    ):
        context = prev_chain.context
        prev_seqno = prev_chain.seqno
    else:
        s, context = dma_fence_context_alloc(s, 1)
        if prev_chain is not None:
            seqno = max(prev_chain.seqno, seqno)
    if dma_fence_is_chain(s, fence):
        s = warn(s, 46, "dma_fence_chain_init with a chain as the contained fence")
    node = DmaFence(
        context=context,
        seqno=seqno,
        seqno64=True,
        kind="chain",
        members=(fence,),
        chain_prev=prev,
        prev_seqno=prev_seqno,
        driver_name="dma_fence_chain",
        timeline_name="unbound",
    )
    return dma_fence_add(s, node)


def _set_prev(s: KState, node: FenceId, prev: FenceId | None) -> KState:
    return s.evolve(fences=tuple_set(s.fences, node, replace(s.fences[node], chain_prev=prev)))


def dma_fence_chain_walk(s: KState, f: FenceId) -> tuple[KState, FenceId | None]:
    """dma_fence_chain_walk - step from ``f`` to the previous node, collecting signalled ones.

    Kernel: drivers/dma-buf/dma-fence-chain.c. Consumes the caller's reference to ``f`` and
    returns a reference to the result. Predecessors whose contained fence (or which, if not a
    chain, themselves) have signalled are spliced out of ``f``'s ``chain_prev`` and released.
    Returns None at the end of the chain or when ``f`` is not a chain (core-semantics §9.14).
    """
    if to_dma_fence_chain(s, f) is None:
        return dma_fence_put(s, f), None
    while True:
        prev = s.fences[f].chain_prev
        if prev is None:
            break
        s = dma_fence_get(s, prev)  # dma_fence_chain_get_prev
        prev_chain = to_dma_fence_chain(s, prev)
        if prev_chain is not None:
            if not dma_fence_is_signaled(s, prev_chain.members[0]):
                break
            replacement = prev_chain.chain_prev
            if replacement is not None:
                s = dma_fence_get(s, replacement)
        else:
            if not dma_fence_is_signaled(s, prev):
                break
            replacement = None
        s = _set_prev(s, f, replacement)  # the cmpxchg always wins inside one step
        s = dma_fence_put(s, prev)  # the link's old reference
        s = dma_fence_put(s, prev)  # ours
    return dma_fence_put(s, f), prev


def dma_fence_chain_find_seqno(
    s: KState, f: FenceId, seqno: int
) -> tuple[KState, int, FenceId | None]:
    """dma_fence_chain_find_seqno - advance to the node that will signal timeline point ``seqno``.

    Kernel: drivers/dma-buf/dma-fence-chain.c. Returns (state, ret, fence). ``seqno`` 0 is a
    no-op (0, ``f``). -EINVAL (and ``f`` unchanged) when ``f`` is not a chain or its seqno is
    below ``seqno``. Otherwise walks back while the nodes stay on ``f``'s context and their
    ``prev_seqno`` is at least ``seqno``; the caller's reference moves to the result, which is
    None when everything up to ``seqno`` has already signalled (core-semantics §9.14).
    """
    if seqno == 0:
        return s, 0, f
    chain = to_dma_fence_chain(s, f)
    if chain is None or chain.seqno < seqno:
        return s, -errno.EINVAL, f
    s = dma_fence_get(s, f)
    it: FenceId | None = f
    while it is not None:
        node = to_dma_fence_chain(s, it)
        if s.fences[it].context != chain.context or node is None or node.prev_seqno < seqno:
            break
        s, it = dma_fence_chain_walk(s, it)
    return dma_fence_put(s, f), 0, it


def _enable_signaling(s: KState, head: FenceId) -> tuple[KState, bool]:
    """dma_fence_chain_enable_signaling: hook the newest unsignalled contained fence."""
    s = dma_fence_get(s, head)
    s = dma_fence_get(s, head)  # dma_fence_chain_for_each takes the iterator's reference
    it: FenceId | None = head
    while it is not None:
        contained = dma_fence_chain_contained(s, it)
        s = dma_fence_get(s, contained)
        s, ret = dma_fence_add_callback(s, contained, DmaFenceCb(CHAIN_CB, head))
        if ret == 0:
            return dma_fence_put(s, it), True
        s = dma_fence_put(s, contained)
        s, it = dma_fence_chain_walk(s, it)
    return dma_fence_put(s, head), False


def _cb(s: KState, f: FenceId, cb: DmaFenceCb) -> KState:
    """dma_fence_chain_cb plus its irq_work: re-arm, or signal when nothing is left."""
    head = cb.data
    assert isinstance(head, int)
    s = dma_fence_put(s, f)
    s, armed = _enable_signaling(s, head)
    if not armed:
        s = dma_fence_signal(s, head)
    return dma_fence_put(s, head)


def _signaled(s: KState, f: FenceId) -> bool:
    """dma_fence_chain_signaled: every contained fence from ``f`` back has signalled."""
    it: FenceId | None = f
    while it is not None:
        if not dma_fence_is_signaled(s, dma_fence_chain_contained(s, it)):
            return False
        node = to_dma_fence_chain(s, it)
        it = node.chain_prev if node is not None else None
    return True


def _release(s: KState, f: FenceId) -> KState:
    """dma_fence_chain_release: drop the link to prev and the contained fence."""
    node = s.fences[f]
    s = dma_fence_put(s, node.chain_prev)
    return dma_fence_put(s, node.members[0])


def dma_fence_unwrap_for_each(s: KState, head: FenceId) -> tuple[FenceId, ...]:
    """dma_fence_unwrap_for_each - the leaf fences inside ``head``, chains and arrays opened.

    Kernel: include/linux/dma-fence-unwrap.h and drivers/dma-buf/dma-fence-unwrap.c. A chain
    yields the contents of each node from newest to oldest; an array its members in order; any
    other fence itself. Pure here: the kernel's walk also collects signalled chain nodes, so it
    may skip leaves that have already signalled (core-semantics §5.15 IMPORT_SYNC_FILE, §9.14).
    """
    leaves: list[FenceId] = []
    it: FenceId | None = head
    while it is not None:
        inner = dma_fence_chain_contained(s, it)
        fence = s.fences[inner]
        if fence.kind == "array":
            leaves.extend(fence.members)
        else:
            leaves.append(inner)
        node = to_dma_fence_chain(s, it)
        it = node.chain_prev if node is not None else None
    return tuple(leaves)


def dma_fence_chain_signaled_consistent(s: KState, f: FenceId) -> bool:
    """dma_fence_chain_signaled_consistent - §10 #46 for one node (a checker predicate).

    True unless ``f`` is a signalled chain node with an unsignalled contained fence somewhere
    along its (current) chain.
    """
    if to_dma_fence_chain(s, f) is None or not s.fences[f].signaled:
        return True
    return _signaled(s, f)


dma_fence_register_kind("chain", DmaFenceKindOps(_enable_signaling, _signaled, _release))
dma_fence_register_cb_func(CHAIN_CB, _cb)

__all__ = [
    "CHAIN_CB",
    "dma_fence_chain_contained",
    "dma_fence_chain_find_seqno",
    "dma_fence_chain_init",
    "dma_fence_chain_signaled_consistent",
    "dma_fence_chain_walk",
    "dma_fence_unwrap_for_each",
    "to_dma_fence_chain",
]
