"""dma_fence_array: all/any arrays, pending count, first error, no nesting (§9.13)."""

from __future__ import annotations

from dmabuf_model.kernel import errno
from dmabuf_model.kernel.dma_fence import (
    dma_fence_context_alloc,
    dma_fence_enable_sw_signaling,
    dma_fence_get_status,
    dma_fence_init,
    dma_fence_is_signaled,
    dma_fence_put,
    dma_fence_set_error,
    dma_fence_signal,
    dma_fence_wait_timeout,
)
from dmabuf_model.kernel.dma_fence_array import (
    ARRAY_CB,
    dma_fence_array_create,
    dma_fence_array_first,
    dma_fence_array_next,
    dma_fence_match_context,
)
from dmabuf_model.kernel.state import Blocked, FenceId, KernelWarning, KState


def _members(n: int, *, same_context: bool = False) -> tuple[KState, tuple[FenceId, ...]]:
    s, first = dma_fence_context_alloc(KState(), n)
    fences = []
    for i in range(n):
        s, f = dma_fence_init(s, first if same_context else first + i, i + 1)
        fences.append(f)
    return s, tuple(fences)


def _array(n: int, *, any_mode: bool = False) -> tuple[KState, tuple[FenceId, ...], FenceId]:
    s, members = _members(n)
    s, ctx = dma_fence_context_alloc(s, 1)
    s, a = dma_fence_array_create(s, members, ctx, 1, any_mode)
    assert a is not None
    return s, members, a


def test_array_signals_once_all_members_signal() -> None:
    """core-semantics §9.13, §10 #45: all-mode pending starts at n and signals at 0."""
    s, (m0, m1, m2), a = _array(3)
    assert s.fences[a].pending == 3
    s = dma_fence_enable_sw_signaling(s, a)
    s = dma_fence_signal(dma_fence_signal(s, m0), m2)
    assert not s.fences[a].signaled and s.fences[a].pending == 1
    s = dma_fence_signal(s, m1)
    assert s.fences[a].signaled and dma_fence_get_status(s, a) == 1


def test_any_array_signals_on_the_first_member_and_only_once() -> None:
    """core-semantics §9.13, §10 #45: signal_on_any → pending 1; later members change nothing."""
    s, (m0, m1), a = _array(2, any_mode=True)
    s = dma_fence_enable_sw_signaling(s, a)
    s = dma_fence_signal(s, m1)
    assert s.fences[a].signaled
    before = s.fences[a]
    s = dma_fence_set_error(s, m0, -errno.ETIME)
    s = dma_fence_signal(s, m0)
    after = s.fences[a]
    assert (after.signaled, after.timestamp, after.error) == (True, before.timestamp, 0)
    assert after.pending == -1


def test_array_error_is_the_first_member_error() -> None:
    """core-semantics §9.13, §10 #45: the first non-zero member error becomes the array's."""
    s, (m0, m1, m2), a = _array(3)
    s = dma_fence_enable_sw_signaling(s, a)
    s = dma_fence_signal(s, m0)
    s = dma_fence_set_error(s, m2, -errno.ETIME)
    s = dma_fence_signal(s, m2)
    s = dma_fence_set_error(s, m1, -errno.ECANCELED)
    s = dma_fence_signal(s, m1)
    assert dma_fence_get_status(s, a) == -errno.ETIME


def test_enabling_an_array_whose_members_all_signalled_signals_it_at_once() -> None:
    """core-semantics §9.13, §10 #45: members already complete count down during enable."""
    s, (m0, m1), a = _array(2)
    s = dma_fence_set_error(s, m1, -errno.ENODATA)
    s = dma_fence_signal(dma_fence_signal(s, m0), m1)
    r = dma_fence_wait_timeout(s, 0, a, False, 0)
    assert not isinstance(r, Blocked) and r[1] == 1
    s = r[0]
    assert s.fences[a].signaled and dma_fence_get_status(s, a) == -errno.ENODATA
    assert s.fences[a].refcount == 1  # every per-member reference was given back


def test_array_is_signaled_before_enabling_asks_the_members() -> None:
    """core-semantics §9.13: without enable_signaling the signaled op counts the members."""
    s, (m0, m1), a = _array(2)
    s = dma_fence_signal(s, m0)
    assert not dma_fence_is_signaled(s, a)
    s = dma_fence_signal(s, m1)
    assert dma_fence_is_signaled(s, a) and not s.fences[a].signaled


def test_enable_signaling_hooks_each_member_once() -> None:
    """core-semantics §9.5, §9.13, §10 #40: a second enable does not queue more callbacks."""
    s, (m0, m1), a = _array(2)
    s = dma_fence_enable_sw_signaling(s, a)
    s = dma_fence_enable_sw_signaling(s, a)
    assert [cb.func for cb in s.fences[m0].cb_list] == [ARRAY_CB]
    assert [cb.func for cb in s.fences[m1].cb_list] == [ARRAY_CB]
    assert s.fences[a].refcount == 3  # one reference per queued member callback


def test_array_create_without_fences_warns() -> None:
    """core-semantics §9.13, §10 #45: an empty array is a WARN."""
    s, a = dma_fence_array_create(KState(), (), 5, 1, False)
    assert a == 0
    assert s.warnings == (KernelWarning(45, "dma_fence_array_create with no fences"),)


def test_array_of_arrays_warns_no_nesting() -> None:
    """core-semantics §9.13: a member that is itself a container is a WARN (no nesting)."""
    s, _, inner = _array(2)
    s, outer = dma_fence_array_create(s, (inner,), 9, 1, False)
    assert outer is not None
    assert s.warnings == (KernelWarning(45, "dma_fence_array_create with a container member"),)


def test_array_create_allocation_failure_returns_none() -> None:
    """core-semantics §9.13: NULL on allocation failure."""
    s, members = _members(2)
    s2, a = dma_fence_array_create(s, members, 9, 1, False, alloc_fails=True)
    assert a is None and s2 == s


def test_releasing_the_array_drops_the_member_references() -> None:
    """core-semantics §9.13: the array owns its members' references and puts them on release."""
    s, (m0, m1), a = _array(2)
    s = dma_fence_put(s, a)
    assert [s.fences[f].refcount for f in (a, m0, m1)] == [0, 0, 0]
    assert not s.warnings


def test_match_context_and_member_iteration() -> None:
    """core-semantics §9.13: dma_fence_match_context, dma_fence_array_first/next."""
    s, members = _members(2, same_context=True)
    ctx = s.fences[members[0]].context
    s, a = dma_fence_array_create(s, members, 42, 1, False)
    assert a is not None
    assert dma_fence_match_context(s, a, ctx) and not dma_fence_match_context(s, a, 42)
    assert dma_fence_match_context(s, members[0], ctx)
    assert dma_fence_array_first(s, a) == members[0]
    assert dma_fence_array_next(s, a, 1) == members[1]
    assert dma_fence_array_next(s, a, 2) is None
    assert dma_fence_array_first(s, members[1]) == members[1]
    assert dma_fence_array_first(s, None) is None
