"""dma_fence: contexts, signalling, callbacks, errors, waits, ordering, refcounts (§9).

Each test names the §9 section and, where there is one, the §10 invariant it pins.
"""

from __future__ import annotations

from collections.abc import Hashable

import pytest

from dmabuf_model.kernel import errno
from dmabuf_model.kernel.dma_fence import (
    MAX_SCHEDULE_TIMEOUT,
    DmaFenceCb,
    dma_fence_add_callback,
    dma_fence_begin_signalling,
    dma_fence_check_and_signal,
    dma_fence_context_alloc,
    dma_fence_describe,
    dma_fence_enable_sw_signaling,
    dma_fence_end_signalling,
    dma_fence_get_status,
    dma_fence_get_stub,
    dma_fence_init,
    dma_fence_is_later,
    dma_fence_is_later_or_same,
    dma_fence_is_signaled,
    dma_fence_later,
    dma_fence_put,
    dma_fence_register_cb_func,
    dma_fence_remove_callback,
    dma_fence_set_error,
    dma_fence_signal,
    dma_fence_signal_order_violations,
    dma_fence_signal_timestamp,
    dma_fence_wait,
    dma_fence_wait_any_timeout,
    dma_fence_wait_timeout,
    in_dma_fence_signalling,
)
from dmabuf_model.kernel.dma_resv import dma_resv_init, dma_resv_lock
from dmabuf_model.kernel.state import Blocked, FenceId, KernelWarning, KState

T0 = 0


def _log(s: KState) -> tuple[Hashable, ...]:
    return s.ext if isinstance(s.ext, tuple) else ()


def _record(s: KState, f: FenceId, cb: DmaFenceCb) -> KState:
    """Test callback body: append (fence, data) to s.ext."""
    return s.evolve(ext=(*_log(s), (f, cb.data)))


dma_fence_register_cb_func("test_record", _record)


def _fence(s: KState | None = None, **kw: bool | None) -> tuple[KState, FenceId]:
    s = s or KState()
    s, ctx = dma_fence_context_alloc(s, 1)
    enable = kw.get("enable_signaling")
    return dma_fence_init(s, ctx, 1, enable_signaling=enable)


def _numbers(s: KState) -> list[int]:
    return [w.invariant for w in s.warnings]


# §9.3 contexts ---------------------------------------------------------------------------------


def test_context_alloc_returns_consecutive_contexts_starting_at_one() -> None:
    """core-semantics §9.3: the counter starts at 1 (0 is the stub's) and n are reserved."""
    s, first = dma_fence_context_alloc(KState(), 3)
    s, nxt = dma_fence_context_alloc(s, 1)
    assert (first, nxt) == (1, 4)
    assert not s.warnings


def test_context_alloc_of_zero_contexts_warns() -> None:
    """core-semantics §9.3: dma_fence_context_alloc(0) is a WARN and reserves nothing."""
    s, first = dma_fence_context_alloc(KState(), 0)
    s, again = dma_fence_context_alloc(s, 1)
    assert first == again == 1
    assert s.warnings == (KernelWarning(0, "dma_fence_context_alloc(0)"),)


# §9.4 signalling -------------------------------------------------------------------------------


def test_signal_is_one_way_and_sets_timestamp_once() -> None:
    """core-semantics §9.4, §10 #38: SIGNALED is monotonic; the timestamp never changes."""
    s, f = _fence()
    assert s.fences[f].timestamp is None
    s = dma_fence_signal_timestamp(s, f, 7)
    s = dma_fence_signal_timestamp(s, f, 9)
    assert s.fences[f].signaled and s.fences[f].timestamp == 7


def test_check_and_signal_reports_whether_it_was_already_signalled() -> None:
    """core-semantics §9.4 (S14): dma_fence_check_and_signal signals and reports the old bit."""
    s, f = _fence()
    s, was = dma_fence_check_and_signal(s, f)
    s, again = dma_fence_check_and_signal(s, f)
    assert (was, again) == (False, True)
    assert dma_fence_is_signaled(s, f)


# §9.6 callbacks --------------------------------------------------------------------------------


def test_callbacks_run_once_in_fifo_order_when_the_fence_signals() -> None:
    """core-semantics §9.4, §9.6, §10 #39: queued callbacks run exactly once, FIFO."""
    s, f = _fence()
    for data in ("a", "b", "c"):
        s, ret = dma_fence_add_callback(s, f, DmaFenceCb("test_record", data))
        assert ret == 0
    assert _log(s) == ()
    s = dma_fence_signal(s, f)
    s = dma_fence_signal(s, f)
    assert _log(s) == ((f, "a"), (f, "b"), (f, "c"))
    assert [cb.data for cb in s.fences[f].cb_ran] == ["a", "b", "c"]
    assert s.fences[f].cb_list == ()


def test_add_callback_after_signal_returns_enoent_and_never_runs() -> None:
    """core-semantics §9.6, §10 #39: no callback can be added after signalling."""
    s, f = _fence()
    s = dma_fence_signal(s, f)
    s, ret = dma_fence_add_callback(s, f, DmaFenceCb("test_record", "late"))
    assert ret == -errno.ENOENT
    assert s.fences[f].cb_list == () and _log(s) == ()


def test_add_callback_signals_at_once_when_enable_signaling_returns_false() -> None:
    """core-semantics §9.5, §9.6, §10 #40: a false enable_signaling signals now: -ENOENT."""
    s, f = _fence(enable_signaling=False)
    s, ret = dma_fence_add_callback(s, f, DmaFenceCb("test_record", "x"))
    assert ret == -errno.ENOENT
    assert s.fences[f].signaled and _log(s) == ()


def test_add_callback_with_null_func_warns_einval() -> None:
    """core-semantics §9.6: a NULL func is WARN and -EINVAL."""
    s, f = _fence()
    s, ret = dma_fence_add_callback(s, f, DmaFenceCb(""))
    assert ret == -errno.EINVAL
    assert _numbers(s) == [39]


def test_remove_callback_is_true_only_while_queued() -> None:
    """core-semantics §9.6: remove_callback unlinks a queued callback, False once it ran."""
    s, f = _fence()
    first, second = DmaFenceCb("test_record", 1), DmaFenceCb("test_record", 2)
    s, _ = dma_fence_add_callback(s, f, first)
    s, _ = dma_fence_add_callback(s, f, second)
    s, removed = dma_fence_remove_callback(s, f, first)
    s = dma_fence_signal(s, f)
    s, again = dma_fence_remove_callback(s, f, second)
    assert (removed, again) == (True, False)
    assert _log(s) == ((f, 2),)


# §9.5 enable_signaling -------------------------------------------------------------------------


def test_enable_sw_signaling_with_false_op_signals_once() -> None:
    """core-semantics §9.5, §10 #40: the op runs on first enable; False means signal now."""
    s, f = _fence(enable_signaling=False)
    s = dma_fence_enable_sw_signaling(s, f)
    assert s.fences[f].signaled and s.fences[f].enable_signal


def test_enable_sw_signaling_never_calls_the_op_after_signal() -> None:
    """core-semantics §9.5, §10 #40: on a signalled fence only the ENABLE bit is set."""
    s, f = _fence(enable_signaling=True)
    s = dma_fence_signal_timestamp(s, f, 3)
    s = dma_fence_enable_sw_signaling(s, f)
    assert s.fences[f].enable_signal and s.fences[f].timestamp == 3


def test_enable_sw_signaling_with_true_op_leaves_the_fence_pending() -> None:
    """core-semantics §9.5: a true enable_signaling leaves signalling to the driver."""
    s, f = _fence(enable_signaling=True)
    s = dma_fence_enable_sw_signaling(s, f)
    assert s.fences[f].enable_signal and not s.fences[f].signaled


# §9.7 error and status -------------------------------------------------------------------------


def test_status_is_zero_then_error_after_signal() -> None:
    """core-semantics §9.7, §10 #41: get_status is 0 pending, the error once signalled."""
    s, f = _fence()
    s = dma_fence_set_error(s, f, -errno.ECANCELED)
    assert dma_fence_get_status(s, f) == 0
    s = dma_fence_signal(s, f)
    assert dma_fence_get_status(s, f) == -errno.ECANCELED
    assert not s.warnings


def test_status_is_one_after_a_clean_signal() -> None:
    """core-semantics §9.7, §10 #41: signalled without error gives 1."""
    s, f = _fence()
    s = dma_fence_signal(s, f)
    assert dma_fence_get_status(s, f) == 1


def test_set_error_after_signal_warns() -> None:
    """core-semantics §9.7, §10 #41, §11: error set after signal is a WARN."""
    s, f = _fence()
    s = dma_fence_signal(s, f)
    s = dma_fence_set_error(s, f, -errno.ETIME)
    assert s.warnings == (KernelWarning(41, "dma_fence_set_error after the fence signalled"),)


@pytest.mark.parametrize("error", [0, 1, -errno.MAX_ERRNO - 1])
def test_set_error_outside_the_errno_range_warns(error: int) -> None:
    """core-semantics §9.7, §10 #41, §11: the value must lie in [-MAX_ERRNO, -1]."""
    s, f = _fence()
    s = dma_fence_set_error(s, f, error)
    assert _numbers(s) == [41]
    assert "outside [-MAX_ERRNO, -1]" in s.warnings[0].what


# §9.8 waits ------------------------------------------------------------------------------------


def test_wait_with_negative_timeout_warns_einval() -> None:
    """core-semantics §9.8, §10 #43, §11: a negative timeout is WARN and -EINVAL."""
    s, f = _fence()
    r = dma_fence_wait_timeout(s, T0, f, False, -1)
    assert not isinstance(r, Blocked)
    s, ret = r
    assert ret == -errno.EINVAL and _numbers(s) == [43]


@pytest.mark.parametrize(("timeout", "expected"), [(0, 1), (5, 5)])
def test_wait_on_a_signalled_fence_returns_timeout_or_one(timeout: int, expected: int) -> None:
    """core-semantics §9.8, §10 #43: signalled → the timeout, or 1 for a zero timeout."""
    s, f = _fence()
    s = dma_fence_signal(s, f)
    r = dma_fence_wait_timeout(s, T0, f, True, timeout, signal_pending=True)
    assert not isinstance(r, Blocked) and r[1] == expected


def test_zero_timeout_poll_of_a_pending_fence_returns_zero() -> None:
    """core-semantics §9.8, §10 #43: timeout 0 on an unsignalled fence is a poll → 0."""
    s, f = _fence(enable_signaling=True)
    r = dma_fence_wait_timeout(s, T0, f, False, 0)
    assert not isinstance(r, Blocked) and r[1] == 0


def test_signal_pending_beats_zero_timeout_only_when_interruptible() -> None:
    """core-semantics §9.8, §10 #43: -ERESTARTSYS only with intr, and before the timeout-0 rule."""
    s, f = _fence(enable_signaling=True)
    intr = dma_fence_wait_timeout(s, T0, f, True, 0, signal_pending=True)
    plain = dma_fence_wait_timeout(s, T0, f, False, 0, signal_pending=True)
    assert not isinstance(intr, Blocked) and intr[1] == -errno.ERESTARTSYS
    assert not isinstance(plain, Blocked) and plain[1] == 0


def test_wait_on_a_pending_fence_blocks_until_signalled() -> None:
    """core-semantics §9.8: the waiter sleeps (Blocked on the fence) and then gets the timeout."""
    s, f = _fence(enable_signaling=True)
    assert dma_fence_wait_timeout(s, T0, f, False, 10) == Blocked(on=f"fence{f}")
    s = dma_fence_signal(s, f)
    r = dma_fence_wait_timeout(s, T0, f, False, 10)
    assert not isinstance(r, Blocked) and r[1] == 10


def test_finite_wait_times_out_to_zero_when_the_caller_says_so() -> None:
    """core-semantics §9.8, §10 #43: timed out → 0 (the scheduler's second branch)."""
    s, f = _fence(enable_signaling=True)
    r = dma_fence_wait_timeout(s, T0, f, True, 10, timed_out=True)
    assert not isinstance(r, Blocked) and r[1] == 0
    with pytest.raises(ValueError, match="cannot time out"):
        dma_fence_wait_timeout(s, T0, f, True, MAX_SCHEDULE_TIMEOUT, timed_out=True)


def test_wait_enables_signaling_which_may_complete_the_fence() -> None:
    """core-semantics §9.8: the wait enables software signalling first."""
    s, f = _fence(enable_signaling=False)
    r = dma_fence_wait_timeout(s, T0, f, False, MAX_SCHEDULE_TIMEOUT)
    assert not isinstance(r, Blocked)
    assert r[1] == MAX_SCHEDULE_TIMEOUT and r[0].fences[f].signaled


def test_dma_fence_wait_returns_zero_or_erestartsys() -> None:
    """core-semantics §9.8: dma_fence_wait has no timeout and returns 0 or -ERESTARTSYS."""
    s, f = _fence(enable_signaling=True)
    assert dma_fence_wait(s, T0, f, True) == Blocked(on=f"fence{f}")
    r = dma_fence_wait(s, T0, f, True, signal_pending=True)
    assert not isinstance(r, Blocked) and r[1] == -errno.ERESTARTSYS
    s = dma_fence_signal(s, f)
    r = dma_fence_wait(s, T0, f, True)
    assert not isinstance(r, Blocked) and r[1] == 0


def test_wait_any_returns_the_index_of_a_signalled_fence() -> None:
    """core-semantics §9.8: wait_any polls with timeout 0 and reports the signalled index."""
    s, a = _fence(enable_signaling=True)
    s, b = _fence(s, enable_signaling=True)

    def wait_any(s: KState, timeout: int) -> tuple[int, int | None]:
        r = dma_fence_wait_any_timeout(s, T0, [a, b], False, timeout)
        assert not isinstance(r, Blocked)
        return r[1], r[2]

    assert wait_any(s, 0) == (0, None)
    assert dma_fence_wait_any_timeout(s, T0, [a, b], False, 4) == Blocked(on=f"fences{a},{b}")
    s = dma_fence_signal(s, b)
    assert wait_any(s, 0) == (1, 1)
    assert wait_any(s, 4) == (4, 1)


def test_wait_any_without_fences_warns_einval() -> None:
    """core-semantics §9.8: an empty list or a negative timeout is WARN and -EINVAL."""
    r = dma_fence_wait_any_timeout(KState(), T0, [], False, 1)
    assert not isinstance(r, Blocked)
    assert r[1] == -errno.EINVAL and _numbers(r[0]) == [43]


# §9.9 ordering ---------------------------------------------------------------------------------


def test_is_later_uses_a_wrapping_32_bit_compare() -> None:
    """core-semantics §9.9: without SEQNO64 the low 32 bits compare with wrap-around."""
    s, ctx = dma_fence_context_alloc(KState(), 1)
    s, old = dma_fence_init(s, ctx, 0xFFFFFFFF)
    s, new = dma_fence_init(s, ctx, 0x1_0000_0001)
    assert dma_fence_is_later(s, new, old)[1]
    assert not dma_fence_is_later(s, old, new)[1]


def test_is_later_with_seqno64_is_a_plain_compare() -> None:
    """core-semantics §9.9: SEQNO64 fences compare all 64 bits."""
    s, ctx = dma_fence_context_alloc(KState(), 1)
    s, a = dma_fence_init(s, ctx, 0x1_0000_0000, seqno64=True)
    s, b = dma_fence_init(s, ctx, 0xFFFFFFFF, seqno64=True)
    assert dma_fence_is_later(s, a, b)[1]
    assert dma_fence_is_later_or_same(s, a, a)[1]


def test_is_later_on_different_contexts_warns_and_is_false() -> None:
    """core-semantics §9.9, §10 #42, §11: is_later across contexts is a WARN → false."""
    s, a = _fence()
    s, b = _fence(s)
    s, later = dma_fence_is_later(s, a, b)
    assert later is False and _numbers(s) == [42]


def test_later_returns_the_later_fence_or_none_once_it_signalled() -> None:
    """core-semantics §9.9, §10 #42: dma_fence_later; different contexts → WARN and None."""
    s, ctx = dma_fence_context_alloc(KState(), 1)
    s, a = dma_fence_init(s, ctx, 1)
    s, b = dma_fence_init(s, ctx, 2)
    assert dma_fence_later(s, a, b)[1] == b
    s = dma_fence_signal(s, b)
    assert dma_fence_later(s, a, b)[1] is None
    s, c = _fence(s)
    s, none = dma_fence_later(s, a, c)
    assert none is None and _numbers(s) == [42]


def test_signalling_out_of_seqno_order_is_reported() -> None:
    """core-semantics §9.3, §10 #42: fences on one context signal in seqno order."""
    s, ctx = dma_fence_context_alloc(KState(), 1)
    s, first = dma_fence_init(s, ctx, 1)
    s, second = dma_fence_init(s, ctx, 2)
    s = dma_fence_signal(s, second)
    assert dma_fence_signal_order_violations(s) == ((first, second),)
    s = dma_fence_signal(s, first)
    assert dma_fence_signal_order_violations(s) == ()


# §9.10 refcount, §9.11 stub ---------------------------------------------------------------------


def test_last_put_with_pending_callbacks_warns_sets_edeadlk_and_signals() -> None:
    """core-semantics §9.10, §10 #44: released with pending signals → WARN, -EDEADLK, signal."""
    s, f = _fence(enable_signaling=True)
    s, _ = dma_fence_add_callback(s, f, DmaFenceCb("test_record", "cb"))
    s = dma_fence_put(s, f)
    fence = s.fences[f]
    assert fence.refcount == 0 and fence.signaled and fence.error == -errno.EDEADLK
    assert _log(s) == ((f, "cb"),)
    assert s.warnings == (KernelWarning(44, "dma_fence released with pending signals"),)


def test_put_of_a_released_fence_warns_without_effect() -> None:
    """core-semantics §9.10: a put past zero is a refcount underflow (WARN)."""
    s, f = _fence()
    s = dma_fence_put(dma_fence_put(s, f), f)
    assert s.fences[f].refcount == 0
    assert s.warnings == (
        KernelWarning(0, f"dma_fence_put on released fence{f} (refcount underflow)"),
    )


def test_get_stub_is_one_signalled_fence_on_context_zero() -> None:
    """core-semantics §9.3, §9.11: the stub is context 0, seqno 0, signalled, shared."""
    s, a = dma_fence_get_stub(KState())
    s, b = dma_fence_get_stub(s)
    stub = s.fences[a]
    assert a == b and (stub.context, stub.seqno, stub.signaled) == (0, 0, True)
    assert stub.refcount == 3 and dma_fence_get_status(s, a) == 1


# §9.12 signalling paths ------------------------------------------------------------------------


def _locks_resv0(s: KState, f: FenceId, cb: DmaFenceCb) -> KState:
    r = dma_resv_lock(s, 5, 0, None)
    assert not isinstance(r, Blocked)
    return r[0]


dma_fence_register_cb_func("test_locks_resv0", _locks_resv0)


def test_callback_taking_a_resv_lock_warns_48() -> None:
    """core-semantics §8.3, §9.12, §10 #48: signalling paths never take a resv lock."""
    s, _ = dma_resv_init(KState())
    s, f = _fence(s)
    s, _ = dma_fence_add_callback(s, f, DmaFenceCb("test_locks_resv0"))
    s = dma_fence_signal(s, f)
    assert s.resvs[0].holder == 5
    assert s.warnings == (KernelWarning(48, "dma_resv_lock inside a dma_fence signalling path"),)
    assert not in_dma_fence_signalling()


def test_signalling_annotations_nest_and_end() -> None:
    """core-semantics §9.12: begin/end_signalling are nestable, cookie based."""
    outer = dma_fence_begin_signalling()
    inner = dma_fence_begin_signalling()
    assert (outer, inner) == (False, True) and in_dma_fence_signalling()
    dma_fence_end_signalling(inner)
    dma_fence_end_signalling(outer)
    assert not in_dma_fence_signalling()
    with pytest.raises(ValueError, match="without dma_fence_begin_signalling"):
        dma_fence_end_signalling(False)


def test_describe_blanks_names_once_signalled() -> None:
    """core-semantics §8.9, §5.16: dma_fence_describe prints context, names, seqno, state."""
    s, ctx = dma_fence_context_alloc(KState(), 1)
    s, f = dma_fence_init(s, ctx, 4, driver_name="xe", timeline_name="rcs0")
    assert dma_fence_describe(s, f) == "1 rcs0 xe seq 4 unsignalled"
    s = dma_fence_signal(s, f)
    assert dma_fence_describe(s, f) == "1   seq 4 signalled"


def test_registering_a_second_handler_under_one_name_is_an_error() -> None:
    """Model plumbing: a callback name maps to exactly one body."""
    dma_fence_register_cb_func("test_record", _record)
    with pytest.raises(ValueError, match="already registered"):
        dma_fence_register_cb_func("test_record", _locks_resv0)
