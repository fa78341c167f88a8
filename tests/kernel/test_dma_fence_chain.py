"""dma_fence_chain: contexts, signalling order, walking, find_seqno, unwrap (§9.14)."""

from __future__ import annotations

from dmabuf_model.kernel import errno
from dmabuf_model.kernel.dma_fence import (
    dma_fence_context_alloc,
    dma_fence_enable_sw_signaling,
    dma_fence_get,
    dma_fence_init,
    dma_fence_is_signaled,
    dma_fence_put,
    dma_fence_signal,
    dma_fence_wait_timeout,
)
from dmabuf_model.kernel.dma_fence_array import dma_fence_array_create
from dmabuf_model.kernel.dma_fence_chain import (
    CHAIN_CB,
    dma_fence_chain_contained,
    dma_fence_chain_find_seqno,
    dma_fence_chain_init,
    dma_fence_chain_signaled_consistent,
    dma_fence_chain_walk,
    dma_fence_unwrap_for_each,
)
from dmabuf_model.kernel.state import Blocked, FenceId, KernelWarning, KState


def _timeline(n: int) -> tuple[KState, list[FenceId], list[FenceId]]:
    """n job fences and a chain over them at points 1..n; returns (state, jobs, nodes)."""
    s, ctx = dma_fence_context_alloc(KState(), 1)
    jobs: list[FenceId] = []
    nodes: list[FenceId] = []
    prev: FenceId | None = None
    for point in range(1, n + 1):
        s, job = dma_fence_init(s, ctx, point)
        s, prev = dma_fence_chain_init(s, prev, job, point)
        jobs.append(job)
        nodes.append(prev)
    return s, jobs, nodes


def test_chain_node_reuses_the_context_of_a_later_point() -> None:
    """core-semantics §9.14: seqno later than prev's → prev's context, prev_seqno recorded."""
    s, _, (n1, n2) = _timeline(2)
    assert s.fences[n2].context == s.fences[n1].context
    assert (s.fences[n2].seqno, s.fences[n2].prev_seqno) == (2, 1)
    assert s.fences[n2].seqno64


def test_chain_node_with_an_earlier_point_gets_a_new_context_and_max_seqno() -> None:
    """core-semantics §9.14: not later → fresh context and seqno max(prev.seqno, seqno)."""
    s, _, (_, n2) = _timeline(2)
    s, ctx = dma_fence_context_alloc(s, 1)
    s, job = dma_fence_init(s, ctx, 7)
    s, n3 = dma_fence_chain_init(s, n2, job, 1)
    assert s.fences[n3].context not in (s.fences[n2].context, ctx)
    assert (s.fences[n3].seqno, s.fences[n3].prev_seqno) == (2, 0)


def test_chain_as_the_contained_fence_warns() -> None:
    """core-semantics §9.14, §10 #46: chains nest only through prev."""
    s, _, (n1,) = _timeline(1)
    s, _ = dma_fence_chain_init(s, None, n1, 5)
    assert s.warnings == (
        KernelWarning(46, "dma_fence_chain_init with a chain as the contained fence"),
    )


def test_chain_node_signals_only_after_every_earlier_point() -> None:
    """core-semantics §9.14, §10 #46: the newest job alone does not signal the node."""
    s, (j1, j2, j3), (_, _, n3) = _timeline(3)
    s = dma_fence_enable_sw_signaling(s, n3)
    s = dma_fence_signal(dma_fence_signal(s, j3), j1)
    assert not s.fences[n3].signaled and not dma_fence_is_signaled(s, n3)
    assert [cb.func for cb in s.fences[j2].cb_list] == [CHAIN_CB]
    s = dma_fence_signal(s, j2)
    assert s.fences[n3].signaled
    assert all(dma_fence_chain_signaled_consistent(s, f) for f in range(len(s.fences)))
    assert not s.warnings


def test_waiting_on_a_fully_signalled_chain_returns_at_once() -> None:
    """core-semantics §9.14: enabling with nothing left unsignalled signals the node now."""
    s, (j1, j2), (_, n2) = _timeline(2)
    s = dma_fence_signal(dma_fence_signal(s, j1), j2)
    assert dma_fence_is_signaled(s, n2)
    r = dma_fence_wait_timeout(s, 0, n2, False, 3)
    assert not isinstance(r, Blocked) and r[1] == 3 and r[0].fences[n2].signaled


def test_wait_on_a_chain_blocks_while_an_earlier_point_is_pending() -> None:
    """core-semantics §9.8, §9.14: a chain wait sleeps until the whole prefix signalled."""
    s, (_, j2), (_, n2) = _timeline(2)
    s = dma_fence_signal(s, j2)
    assert dma_fence_wait_timeout(s, 0, n2, False, 3) == Blocked(on=f"fence{n2}")


def test_walk_collects_signalled_predecessors() -> None:
    """core-semantics §9.14: dma_fence_chain_walk splices out signalled nodes and moves on."""
    s, (j1, j2, _), (n1, n2, n3) = _timeline(3)
    s = dma_fence_signal(s, j2)
    s = dma_fence_get(s, n3)
    s, nxt = dma_fence_chain_walk(s, n3)
    assert nxt == n1 and s.fences[n3].chain_prev == n1
    assert s.fences[n2].refcount == 0  # the spliced-out node was released
    s = dma_fence_signal(s, j1)
    s, end = dma_fence_chain_walk(s, n1)
    assert end is None
    assert not s.warnings


def test_find_seqno_moves_to_the_node_covering_the_point() -> None:
    """core-semantics §9.14: find_seqno(f, s) advances to the oldest node still covering s."""
    s, _, (n1, n2, n3) = _timeline(3)
    s, ret, found = dma_fence_chain_find_seqno(s, n3, 2)
    assert (ret, found) == (0, n2)
    s, ret, found = dma_fence_chain_find_seqno(s, n3, 1)
    assert (ret, found) == (0, n1)


def test_find_seqno_of_zero_is_a_noop_and_too_far_is_einval() -> None:
    """core-semantics §9.14: seqno 0 is a no-op; past the chain, or not a chain → -EINVAL."""
    s, (j1, _), (_, n2) = _timeline(2)
    assert dma_fence_chain_find_seqno(s, n2, 0) == (s, 0, n2)
    assert dma_fence_chain_find_seqno(s, n2, 3) == (s, -errno.EINVAL, n2)
    assert dma_fence_chain_find_seqno(s, j1, 1) == (s, -errno.EINVAL, j1)


def test_find_seqno_of_a_signalled_point_may_return_none() -> None:
    """core-semantics §9.14: when every node up to the point has signalled the result is None."""
    s, (j1, j2), (_, n2) = _timeline(2)
    s = dma_fence_signal(dma_fence_signal(s, j1), j2)
    s = dma_fence_get(s, n2)
    s, ret, found = dma_fence_chain_find_seqno(s, n2, 1)
    assert (ret, found) == (0, None)


def test_releasing_the_head_releases_the_whole_chain() -> None:
    """core-semantics §9.14: nodes own prev and their contained fence."""
    s, jobs, nodes = _timeline(3)
    s = dma_fence_put(s, nodes[-1])
    assert all(s.fences[f].refcount == 0 for f in (*jobs, *nodes))
    assert not s.warnings


def test_unwrap_opens_chains_and_arrays_down_to_leaves() -> None:
    """core-semantics §5.15, §9.14: dma_fence_unwrap_for_each yields the leaf fences."""
    s, (j1, j2), (_, n2) = _timeline(2)
    s, ctx = dma_fence_context_alloc(s, 2)
    s, a = dma_fence_init(s, ctx, 1)
    s, b = dma_fence_init(s, ctx + 1, 1)
    s, arr = dma_fence_array_create(s, (a, b), 99, 1, False)
    assert arr is not None
    s, n3 = dma_fence_chain_init(s, n2, arr, 3)
    assert dma_fence_unwrap_for_each(s, n3) == (a, b, j2, j1)
    assert dma_fence_unwrap_for_each(s, a) == (a,)
    assert dma_fence_chain_contained(s, n3) == arr and dma_fence_chain_contained(s, a) == a
