"""dma_buf_map_attachment / dma_buf_unmap_attachment and the _unlocked variants
(core-semantics §5.6, §5.7, §10 #8, #16-#18, #20, §11 dma_buf_map_attachment)."""

from __future__ import annotations

from test_dma_buf_toys import (
    BIDI,
    NO_CALLBACK,
    REVOCABLE,
    T0,
    T1,
    T2,
    add_fence,
    lock,
    log,
    names,
    ok,
    okk,
    setup,
    unlock,
    warned,
    with_ext,
)

from dmabuf_model.kernel.dma_buf import (
    DmaDataDirection,
    dma_buf_attach,
    dma_buf_detach,
    dma_buf_dynamic_attach,
    dma_buf_invariant_violations,
    dma_buf_map_attachment,
    dma_buf_map_attachment_start,
    dma_buf_map_attachment_unlocked,
    dma_buf_map_attachment_wait,
    dma_buf_unmap_attachment,
    dma_buf_unmap_attachment_unlocked,
    live_mappings,
)
from dmabuf_model.kernel.dma_fence import dma_fence_signal
from dmabuf_model.kernel.dma_resv import DmaResvUsage
from dmabuf_model.kernel.errno import EBUSY, EINVAL, ENODEV, ENOMEM, ERESTARTSYS
from dmabuf_model.kernel.state import Blocked, KState


def _static(pin: bool = True) -> tuple[KState, int, int]:
    s, buf = setup(pin=pin)
    s, a = ok(dma_buf_attach(s, T1, buf, "dev"))
    return lock(s, T1, buf), buf, a


def _dynamic(ops: object = REVOCABLE) -> tuple[KState, int, int]:
    s, buf = setup()
    s, a = ok(dma_buf_dynamic_attach(s, T1, buf, "nic", ops))  # type: ignore[arg-type]
    return lock(s, T1, buf), buf, a


def test_map_on_static_attachment_pins_per_mapping() -> None:
    """§5.6 step 1, §10 #16: one pin per live mapping, unpinned at each unmap."""
    s, _, a = _static()
    s, t1 = ok(dma_buf_map_attachment(s, T1, a, BIDI))
    s, t2 = ok(dma_buf_map_attachment(s, T1, a, DmaDataDirection.TO_DEVICE))
    assert names(s) == ["attach", "pin", "map_dma_buf", "pin", "map_dma_buf"]
    assert s.attachments[a].map_pins == 2 == live_mappings(s, a)
    s = dma_buf_unmap_attachment(s, T1, a, t1, BIDI)
    assert names(s)[-2:] == ["unmap_dma_buf", "unpin"]
    assert s.attachments[a].map_pins == 1 == live_mappings(s, a)
    s = dma_buf_unmap_attachment(s, T1, a, t2, DmaDataDirection.TO_DEVICE)
    assert s.attachments[a].map_pins == 0 and not dma_buf_invariant_violations(s)


def test_map_on_dynamic_attachment_does_not_pin() -> None:
    """§5.6 step 1, §5.18: dynamic importers are never pinned by the core."""
    s, _, a = _dynamic()
    s, t = ok(dma_buf_map_attachment(s, T1, a, BIDI))
    assert t >= 0 and "pin" not in names(s) and s.attachments[a].map_pins == 0


def test_static_importer_of_a_static_exporter_is_not_pinned() -> None:
    """§5.6 properties, §5.18 static exporter / static importer."""
    s, _, a = _static(pin=False)
    s, t = ok(dma_buf_map_attachment(s, T1, a, BIDI))
    assert t >= 0 and names(s) == ["attach", "map_dma_buf"]


def test_every_map_reaches_the_exporter_and_returns_a_fresh_table() -> None:
    """§5.6 properties: nothing is cached; any number of mappings per attachment."""
    s, _, a = _dynamic()
    s, t1 = ok(dma_buf_map_attachment(s, T1, a, BIDI))
    s, t2 = ok(dma_buf_map_attachment(s, T1, a, BIDI))
    assert t1 != t2 and names(s).count("map_dma_buf") == 2 and live_mappings(s, a) == 2


def test_map_callbacks_run_under_the_resv() -> None:
    """§2 pin/map rows (held), §10 #8."""
    s, _, a = _static()
    s, _ = ok(dma_buf_map_attachment(s, T1, a, BIDI))
    assert all(held for name, _, held in log(s) if name in ("pin", "map_dma_buf"))


def test_map_without_the_resv_warns_invariant_8() -> None:
    """§5.6 precondition, §10 #8."""
    s, buf, a = _dynamic()
    s = unlock(s, T1, buf)
    s, _ = ok(dma_buf_map_attachment(s, T1, a, BIDI))
    assert warned(s, 8)


def test_map_with_null_attachment_warns_and_fails_einval() -> None:
    """§5.6 precondition, §11 -EINVAL (NULL)."""
    s, _, _ = _dynamic()
    s, ret = ok(dma_buf_map_attachment(s, T1, None, BIDI))
    assert ret == -EINVAL and warned(s, 0)


def test_map_error_is_returned_and_the_pin_on_map_undone() -> None:
    """§5.6 step 2, §11: the exporter's error (a revoked exporter's -ENODEV); unpin follows."""
    s, _, a = _static()
    s = with_ext(s, revoked=True)
    s, ret = ok(dma_buf_map_attachment(s, T1, a, BIDI))
    assert ret == -ENODEV and names(s)[-3:] == ["pin", "map_dma_buf", "unpin"]
    assert s.attachments[a].map_pins == 0 and s.sg_tables == ()


def test_map_returning_null_becomes_enomem() -> None:
    """§5.6 step 2, §11: NULL from map_dma_buf is -ENOMEM."""
    s, _, a = _dynamic()
    s = with_ext(s, map_ret=None)
    s, ret = ok(dma_buf_map_attachment(s, T1, a, BIDI))
    assert ret == -ENOMEM


def test_map_returns_the_pin_error_and_warns_on_ebusy() -> None:
    """§5.6 step 1, §10 #20, §11: pin error returned; -EBUSY also WARNs."""
    s, _, a = _static()
    s = with_ext(s, pin_ret=-EBUSY)
    s, ret = ok(dma_buf_map_attachment(s, T1, a, BIDI))
    assert ret == -EBUSY and warned(s, 20) and "map_dma_buf" not in names(s)
    s2, _, a2 = _static()
    s2 = with_ext(s2, pin_ret=-ENOMEM)
    s2, ret = ok(dma_buf_map_attachment(s2, T1, a2, BIDI))
    assert ret == -ENOMEM and not warned(s2, 20)


def test_map_waits_for_kernel_fences_only_on_static_attachments() -> None:
    """§5.6 step 3, §10 #17: static blocks on a KERNEL fence; dynamic does not."""
    s, buf = setup()
    s, st = ok(dma_buf_attach(s, T1, buf, "dev"))
    s, dy = ok(dma_buf_dynamic_attach(s, T2, buf, "nic", REVOCABLE))
    s, f = add_fence(s, buf, DmaResvUsage.KERNEL)
    s1 = lock(s, T1, buf)
    r = dma_buf_map_attachment(s1, T1, st, BIDI)
    assert isinstance(r, Blocked) and r.on == f"fence{f}"
    s2 = lock(s, T2, buf)
    s2, t = ok(dma_buf_map_attachment(s2, T2, dy, BIDI))
    assert t >= 0


def test_static_map_ignores_write_read_and_bookkeep_fences() -> None:
    """§5.6 step 3: only usage KERNEL is waited for."""
    s, buf = setup()
    s, a = ok(dma_buf_attach(s, T1, buf, "dev"))
    for usage in (DmaResvUsage.WRITE, DmaResvUsage.READ, DmaResvUsage.BOOKKEEP):
        s, _ = add_fence(s, buf, usage)
    s = lock(s, T1, buf)
    s, t = ok(dma_buf_map_attachment(s, T1, a, BIDI))
    assert t >= 0


def test_blocked_static_map_retries_after_the_fence_signals_and_pins_once() -> None:
    """§10 #16, #17: the retry after the KERNEL fence signalled pins exactly once."""
    s, buf = setup()
    s, a = ok(dma_buf_attach(s, T1, buf, "dev"))
    s, f = add_fence(s, buf, DmaResvUsage.KERNEL)
    s = lock(s, T1, buf)
    assert isinstance(dma_buf_map_attachment(s, T1, a, BIDI), Blocked)
    s = dma_fence_signal(s, f)
    s, t = ok(dma_buf_map_attachment(s, T1, a, BIDI))
    assert t >= 0 and names(s).count("pin") == 1 and s.attachments[a].map_pins == 1


def test_interrupted_static_wait_unmaps_unpins_and_returns_erestartsys() -> None:
    """§5.6 step 3, §11 -ERESTARTSYS (static only)."""
    s, buf = setup()
    s, a = ok(dma_buf_attach(s, T1, buf, "dev"))
    s, _ = add_fence(s, buf, DmaResvUsage.KERNEL)
    s = lock(s, T1, buf)
    s, ret = ok(dma_buf_map_attachment(s, T1, a, BIDI, signal_pending=True))
    assert ret == -ERESTARTSYS
    assert names(s)[-4:] == ["pin", "map_dma_buf", "unmap_dma_buf", "unpin"]
    assert live_mappings(s, a) == 0 and s.attachments[a].map_pins == 0


def test_debug_copy_allocation_failure_unmaps_and_returns_enomem() -> None:
    """§5.6 step 4, §11 -ENOMEM (debug wrapper)."""
    s, _, a = _static()
    s, ret = ok(dma_buf_map_attachment(s, T1, a, BIDI, alloc_fails=True))
    assert ret == -ENOMEM and names(s)[-2:] == ["unmap_dma_buf", "unpin"]
    assert live_mappings(s, a) == 0


def test_two_step_map_sleeps_after_the_exporter_fenced_its_own_pin() -> None:
    """§5.6 steps 1-3: an exporter pin that starts a move adds a KERNEL fence; the two-step form
    sleeps after pin+map with the resv held and completes once the fence signals (§10 #17)."""
    s, _, a = _static()
    s = with_ext(s, fence_on_pin=True)
    s, t = dma_buf_map_attachment_start(s, T1, a, BIDI)
    assert t >= 0 and s.sg_tables[t].waiting and s.attachments[a].map_pins == 1
    r = dma_buf_map_attachment_wait(s, T1, t)
    assert isinstance(r, Blocked)
    move = next(f for f, u in s.resvs[0].fences if u == DmaResvUsage.KERNEL)
    s = dma_fence_signal(s, move)
    s, got = ok(dma_buf_map_attachment_wait(s, T1, t))
    assert got == t and not s.sg_tables[t].waiting and not s.warnings


def test_one_step_map_flags_an_exporter_that_fences_its_own_pin() -> None:
    """Modelling choice of dma_buf_map_attachment: the one-step form cannot sleep after the
    exporter's work, so it names the two-step form in WARN #17 (§2 pin, §10 #17)."""
    s, _, a = _static()
    s = with_ext(s, fence_on_pin=True)
    s, t = ok(dma_buf_map_attachment(s, T1, a, BIDI))
    assert t >= 0 and warned(s, 17)


def test_unmap_of_a_table_still_waiting_in_the_core_is_rejected() -> None:
    """§10 #18: only a table the core returned may be unmapped."""
    s, _, a = _static()
    s, t = dma_buf_map_attachment_start(s, T1, a, BIDI)
    s = dma_buf_unmap_attachment(s, T1, a, t, BIDI)
    assert warned(s, 18) and s.sg_tables[t].live


def test_unmap_twice_warns_and_calls_the_exporter_once() -> None:
    """§5.7, §10 #18: each table is unmapped exactly once."""
    s, _, a = _dynamic()
    s, t = ok(dma_buf_map_attachment(s, T1, a, BIDI))
    s = dma_buf_unmap_attachment(s, T1, a, t, BIDI)
    s = dma_buf_unmap_attachment(s, T1, a, t, BIDI)
    assert names(s).count("unmap_dma_buf") == 1 and warned(s, 18)


def test_unmap_on_another_attachment_warns() -> None:
    """§10 #18: on the same attachment."""
    s, buf, a = _dynamic()
    s, b = ok(dma_buf_dynamic_attach(unlock(s, T1, buf), T1, buf, "x", NO_CALLBACK))
    s = lock(s, T1, buf)
    s, t = ok(dma_buf_map_attachment(s, T1, a, BIDI))
    s = dma_buf_unmap_attachment(s, T1, b, t, BIDI)
    assert warned(s, 18) and s.sg_tables[t].live


def test_unmap_with_null_table_warns_and_does_nothing() -> None:
    """§5.7: NULL attach, dmabuf or sgt is a WARN and a return."""
    s, _, a = _dynamic()
    s2 = dma_buf_unmap_attachment(s, T1, a, None, BIDI)
    assert warned(s2, 0) and s2.ext == s.ext


def test_unmap_without_the_resv_warns_invariant_8() -> None:
    """§5.7, §10 #8."""
    s, buf, a = _dynamic()
    s, t = ok(dma_buf_map_attachment(s, T1, a, BIDI))
    s = unlock(s, T1, buf)
    s = dma_buf_unmap_attachment(s, T1, a, t, BIDI)
    assert warned(s, 8)


def test_detach_with_a_live_mapping_is_an_invariant_violation() -> None:
    """§5.4, §10 #18: detach only after unmap (importer duty, checked by the model)."""
    s, buf, a = _dynamic()
    s, _ = ok(dma_buf_map_attachment(s, T1, a, BIDI))
    s = unlock(s, T1, buf)
    s = okk(dma_buf_detach(s, T1, buf, a))
    assert any(v.startswith("#18") for v in dma_buf_invariant_violations(s))


def test_unlocked_map_and_unmap_take_and_drop_the_resv() -> None:
    """§5.6/§5.7 _unlocked: lock with a NULL ctx, call, unlock."""
    s, buf = setup()
    s, a = ok(dma_buf_attach(s, T1, buf, "dev"))
    s, t = ok(dma_buf_map_attachment_unlocked(s, T1, a, BIDI))
    assert t >= 0 and s.resvs[0].holder == -1 and not s.warnings
    s = okk(dma_buf_unmap_attachment_unlocked(s, T1, a, t, BIDI))
    assert live_mappings(s, a) == 0 and s.resvs[0].holder == -1 and not s.warnings


def test_unlocked_map_blocks_on_another_holder_and_self_deadlocks_on_its_own() -> None:
    """§4, §10 #11: *_unlocked with the resv held by the caller is a self-deadlock."""
    s, buf = setup()
    s, a = ok(dma_buf_attach(s, T1, buf, "dev"))
    r = dma_buf_map_attachment_unlocked(lock(s, T0, buf), T1, a, BIDI)
    assert isinstance(r, Blocked) and r.holder == T0
    r = dma_buf_map_attachment_unlocked(lock(s, T1, buf), T1, a, BIDI)
    assert isinstance(r, Blocked) and r.holder == T1
    r2 = dma_buf_unmap_attachment_unlocked(lock(s, T1, buf), T1, a, 0, BIDI)
    assert isinstance(r2, Blocked) and r2.holder == T1


def test_unlocked_map_with_null_warns_and_fails_einval() -> None:
    """§5.6 _unlocked: WARN→-EINVAL on NULL."""
    s, _ = setup()
    s, ret = ok(dma_buf_map_attachment_unlocked(s, T1, None, BIDI))
    assert ret == -EINVAL and warned(s, 0)
