"""dma_buf attach, dynamic_attach and detach (core-semantics §5.3, §5.4, §5.9, §10 #7, #9,
#11, #13-#15, §11)."""

from __future__ import annotations

from test_dma_buf_toys import (
    NO_CALLBACK,
    REVOCABLE,
    T0,
    T1,
    T2,
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
    DmaBufAttachOps,
    attachment_listed,
    dma_buf_attach,
    dma_buf_attach_revocable,
    dma_buf_attachment_is_dynamic,
    dma_buf_detach,
    dma_buf_dynamic_attach,
    dma_buf_dynamic_attach_finish,
    dma_buf_dynamic_attach_start,
    dma_buf_invalidate_mappings,
    dma_buf_is_dynamic,
    dma_buf_pin_on_map,
)
from dmabuf_model.kernel.errno import EBUSY, EINVAL, ENODEV, ENOMEM, EOPNOTSUPP
from dmabuf_model.kernel.state import Blocked


def test_static_attach_has_no_importer_ops_and_no_peer2peer() -> None:
    """§5.3 step 3, §10 #13: static importers never get peer2peer."""
    s, buf = setup()
    s, a = ok(dma_buf_attach(s, T1, buf, "gpu"))
    att = s.attachments[a]
    assert att.importer_ops is None and not att.peer2peer and att.dev == "gpu"
    assert not dma_buf_attachment_is_dynamic(s, a)
    assert dma_buf_pin_on_map(s, a)  # pinnable exporter + static importer (§1.3)


def test_dynamic_attach_copies_allow_peer2peer() -> None:
    """§5.3 step 3, §10 #13: peer2peer == importer_ops.allow_peer2peer."""
    s, buf = setup()
    s, a = ok(dma_buf_dynamic_attach(s, T1, buf, "nic", REVOCABLE, "priv"))
    s, b = ok(dma_buf_dynamic_attach(s, T1, buf, "nic2", NO_CALLBACK))
    assert s.attachments[a].peer2peer and not s.attachments[b].peer2peer
    assert s.attachments[a].importer_priv == "priv"
    assert dma_buf_attachment_is_dynamic(s, a) and not dma_buf_pin_on_map(s, a)


def test_attach_does_not_pin_map_or_require_invalidate_mappings() -> None:
    """§5.3 "what attach does not do": no pin, no map, NULL callback accepted (v7)."""
    s, buf = setup()
    s, a = ok(dma_buf_dynamic_attach(s, T1, buf, "nic", NO_CALLBACK))
    assert a >= 0 and names(s) == ["attach"]
    assert s.attachments[a].pins == 0 and s.sg_tables == () and not s.warnings


def test_new_attachments_go_at_the_head_of_the_list() -> None:
    """§1.1, §5.3 step 5: newest first."""
    s, buf = setup()
    s, a0 = ok(dma_buf_attach(s, T1, buf, "a"))
    s, a1 = ok(dma_buf_attach(s, T1, buf, "b"))
    s, a2 = ok(dma_buf_dynamic_attach(s, T1, buf, "c", REVOCABLE))
    assert s.bufs[buf].attachments == (a2, a1, a0)


def test_ops_attach_runs_without_the_resv_and_the_list_is_changed_under_it() -> None:
    """§2 attach row (unheld), §10 #7, #9; the resv is free again afterwards."""
    s, buf = setup()
    s, _ = ok(dma_buf_attach(s, T1, buf, "dev"))
    assert log(s) == (("attach", 0, False),)
    assert s.resvs[s.bufs[buf].resv].holder == -1


def test_attach_returns_the_exporter_error_and_frees_the_attachment() -> None:
    """§5.3 step 4, §11 dma_buf_dynamic_attach: any ops.attach error is returned unchanged."""
    for err in (-EBUSY, -EOPNOTSUPP, -ENODEV):
        s, buf = setup()
        s = with_ext(s, attach_ret=err)
        s, ret = ok(dma_buf_dynamic_attach(s, T1, buf, "dev", REVOCABLE))
        assert ret == err
        assert s.bufs[buf].attachments == () and s.attachments[0].detached


def test_attach_with_null_buffer_or_device_warns_and_fails_einval() -> None:
    """§5.3 step 1, §11 -EINVAL (NULL arguments)."""
    s, buf = setup()
    s1, ret = ok(dma_buf_attach(s, T1, None, "dev"))
    assert ret == -EINVAL and warned(s1, 0)
    s2, ret = ok(dma_buf_dynamic_attach(s, T1, buf, None, REVOCABLE))
    assert ret == -EINVAL and "attach" not in names(s2)


def test_attach_fails_enomem_when_the_attachment_cannot_be_allocated() -> None:
    """§5.3 step 2, §11 -ENOMEM: the exporter is not called."""
    s, buf = setup()
    s, ret = ok(dma_buf_attach(s, T1, buf, "dev", alloc_fails=True))
    assert ret == -ENOMEM and names(s) == [] and s.attachments == ()


def test_attach_blocks_while_another_thread_holds_the_resv() -> None:
    """§5.3 step 5: the list is taken under the resv with a NULL ctx."""
    s, buf = setup()
    s = lock(s, T0, buf)
    r = dma_buf_attach(s, T1, buf, "dev")
    assert isinstance(r, Blocked) and r.holder == T0


def test_attach_while_holding_the_resv_is_a_self_deadlock() -> None:
    """§4, §10 #11: holding the resv around attach deadlocks on the caller itself."""
    s, buf = setup()
    s = lock(s, T1, buf)
    r = dma_buf_attach(s, T1, buf, "dev")
    assert isinstance(r, Blocked) and r.holder == T1


def test_two_step_attach_leaves_a_window_before_the_list_insertion() -> None:
    """§5.3 steps 4-5: ops.attach runs, then (maybe later) the list changes under the resv.

    In that window an invalidation does not reach the new attachment (§10 #15).
    """
    s, buf = setup()
    s, a = dma_buf_dynamic_attach_start(s, T1, buf, "nic", REVOCABLE)
    assert a == 0 and not attachment_listed(s, a)
    s = lock(s, T0, buf)
    s = dma_buf_invalidate_mappings(s, T0, buf)
    assert "invalidate_mappings" not in names(s)
    assert isinstance(dma_buf_dynamic_attach_finish(s, T1, a), Blocked)
    s = unlock(s, T0, buf)
    s, got = ok(dma_buf_dynamic_attach_finish(s, T1, a))
    assert got == a and attachment_listed(s, a)


def test_two_step_attach_start_under_the_resv_warns_invariant_9() -> None:
    """§2 attach is called unheld; §10 #9."""
    s, buf = setup()
    s = lock(s, T1, buf)
    s, _ = dma_buf_dynamic_attach_start(s, T1, buf, "nic", REVOCABLE)
    assert warned(s, 9)


def test_detach_unlists_then_calls_ops_detach_unlocked() -> None:
    """§5.4: removed under the resv, then ops.detach without it; no more invalidations (§10 #15)."""
    s, buf = setup()
    s, a = ok(dma_buf_dynamic_attach(s, T1, buf, "nic", REVOCABLE))
    s = okk(dma_buf_detach(s, T1, buf, a))
    assert s.bufs[buf].attachments == () and s.attachments[a].detached
    assert log(s)[-1] == ("detach", a, False)
    s = lock(s, T0, buf)
    s = dma_buf_invalidate_mappings(s, T0, buf)
    assert "invalidate_mappings" not in names(s)


def test_detach_with_null_or_a_foreign_attachment_warns_and_does_nothing() -> None:
    """§5.4: NULL or attach->dmabuf != dmabuf is a WARN and a return."""
    s, buf = setup()
    s, a = ok(dma_buf_attach(s, T1, buf, "dev"))
    s2 = okk(dma_buf_detach(s, T1, None, a))
    assert warned(s2, 0) and s2.bufs == s.bufs
    s3 = okk(dma_buf_detach(s, T1, buf + 1, a))
    assert warned(s3, 0) and s3.bufs == s.bufs


def test_detach_blocks_while_the_resv_is_held_and_self_deadlocks_when_by_the_caller() -> None:
    """§4, §5.4, §10 #11."""
    s, buf = setup()
    s, a = ok(dma_buf_attach(s, T1, buf, "dev"))
    held = lock(s, T2, buf)
    r = dma_buf_detach(held, T1, buf, a)
    assert isinstance(r, Blocked) and r.holder == T2
    own = lock(s, T1, buf)
    r = dma_buf_detach(own, T1, buf, a)
    assert isinstance(r, Blocked) and r.holder == T1


def test_detach_twice_is_a_use_after_free() -> None:
    """§5.4 frees the attachment; a second detach touches freed memory (BUG)."""
    s, buf = setup()
    s, a = ok(dma_buf_attach(s, T1, buf, "dev"))
    s = okk(dma_buf_detach(s, T1, buf, a))
    s = okk(dma_buf_detach(s, T1, buf, a))
    assert warned(s, 18, "BUG") and names(s).count("detach") == 1


def test_attach_revocable_is_exactly_importer_ops_with_a_callback() -> None:
    """§5.9, §10 #14: importer_ops and invalidate_mappings both non-NULL; pins do not matter."""
    s, buf = setup()
    s, st = ok(dma_buf_attach(s, T1, buf, "static"))
    s, rv = ok(dma_buf_dynamic_attach(s, T1, buf, "rev", REVOCABLE))
    s, nc = ok(dma_buf_dynamic_attach(s, T1, buf, "nocb", NO_CALLBACK))
    assert [dma_buf_attach_revocable(s, a) for a in (st, rv, nc)] == [False, True, False]


def test_exporter_attach_can_refuse_importers_that_are_not_revocable() -> None:
    """§5.9: dma_buf_attach_revocable is meant for ops.attach (VFIO returns -EOPNOTSUPP)."""
    from dataclasses import replace

    from test_dma_buf_toys import setup as _setup

    def refusing_attach(s, tid, a):  # type: ignore[no-untyped-def]
        return s, 0 if dma_buf_attach_revocable(s, a) else -EOPNOTSUPP

    s, buf = _setup()
    ops = replace(s.bufs[buf].ops, attach=refusing_attach)
    s = s.evolve(bufs=(replace(s.bufs[buf], ops=ops),))
    s, bad = ok(dma_buf_dynamic_attach(s, T1, buf, "nocb", NO_CALLBACK))
    s, good = ok(dma_buf_dynamic_attach(s, T1, buf, "rev", REVOCABLE))
    assert bad == -EOPNOTSUPP and good >= 0 and s.bufs[buf].attachments == (good,)


def test_exporter_dynamic_predicate_follows_ops_pin() -> None:
    """§1.3: dma_buf_is_dynamic is ops.pin != NULL."""
    s, buf = setup(pin=True)
    assert dma_buf_is_dynamic(s, buf)
    s, buf = setup(pin=False)
    assert not dma_buf_is_dynamic(s, buf)


def test_peer2peer_is_fixed_at_attach() -> None:
    """§10 #13: attach.peer2peer never changes after attach (a later op leaves it)."""
    s, buf = setup()
    ops = DmaBufAttachOps("p2p", allow_peer2peer=True)
    s, a = ok(dma_buf_dynamic_attach(s, T1, buf, "nic", ops))
    s = lock(s, T0, buf)
    s = dma_buf_invalidate_mappings(s, T0, buf)
    assert s.attachments[a].peer2peer
