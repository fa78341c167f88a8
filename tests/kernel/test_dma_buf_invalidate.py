"""dma_buf_invalidate_mappings, the revoke sequence and the attachment-mode matrix
(core-semantics §5.8, §5.9, §5.18, §6.4, §10 #10, #15, #22-#24)."""

from __future__ import annotations

import pytest
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
    DmaBufAttachOps,
    dma_buf_attach,
    dma_buf_attach_revocable,
    dma_buf_detach,
    dma_buf_dynamic_attach,
    dma_buf_invalidate_mappings,
    dma_buf_map_attachment,
    dma_buf_pin,
    dma_buf_pin_on_map,
    dma_buf_unmap_attachment,
    live_sgts,
    owed_unmaps,
    unsafe_unpinned_mapping,
)
from dmabuf_model.kernel.dma_fence import MAX_SCHEDULE_TIMEOUT, dma_fence_signal
from dmabuf_model.kernel.dma_resv import DmaResvUsage, dma_resv_wait_timeout
from dmabuf_model.kernel.errno import ENODEV
from dmabuf_model.kernel.state import Blocked


def _invalidated(s: object) -> list[int]:
    return [e[1] for e in log(s) if e[0] == "invalidate_mappings"]  # type: ignore[arg-type]


def test_invalidate_mappings_calls_exactly_the_revocable_attachments_newest_first() -> None:
    """§5.8: list order (newest first); §10 #15: static and callback-less ones are skipped."""
    s, buf = setup()
    s, r0 = ok(dma_buf_dynamic_attach(s, T1, buf, "r0", REVOCABLE))
    s, st = ok(dma_buf_attach(s, T1, buf, "static"))
    s, nc = ok(dma_buf_dynamic_attach(s, T1, buf, "nocb", NO_CALLBACK))
    s, r1 = ok(dma_buf_dynamic_attach(s, T1, buf, "r1", REVOCABLE))
    s = lock(s, T0, buf)
    s = dma_buf_invalidate_mappings(s, T0, buf)
    assert _invalidated(s) == [r1, r0]
    assert all(dma_buf_attach_revocable(s, a) for a in _invalidated(s))
    assert st not in _invalidated(s) and nc not in _invalidated(s) and not s.warnings


def test_invalidate_mappings_callbacks_run_under_the_resv() -> None:
    """§3, §10 #10: every importer callback runs with the resv lock held."""
    s, buf = setup()
    s, _ = ok(dma_buf_dynamic_attach(s, T1, buf, "r", REVOCABLE))
    s = lock(s, T0, buf)
    s = dma_buf_invalidate_mappings(s, T0, buf)
    assert log(s)[-1][2] is True


def test_invalidate_mappings_without_the_resv_warns_invariant_10() -> None:
    """§5.8 precondition, §10 #10."""
    s, buf = setup()
    s, _ = ok(dma_buf_dynamic_attach(s, T1, buf, "r", REVOCABLE))
    s = dma_buf_invalidate_mappings(s, T0, buf)
    assert warned(s, 10)


def test_invalidate_mappings_reaches_pinned_dynamic_importers() -> None:
    """§5.8: pinned dynamic importers are called too; the core does not look at pins."""
    s, buf = setup()
    s, a = ok(dma_buf_dynamic_attach(s, T1, buf, "r", REVOCABLE))
    s = lock(s, T1, buf)
    s, _ = dma_buf_pin(s, T1, a)
    s = unlock(s, T1, buf)
    s = lock(s, T0, buf)
    s = dma_buf_invalidate_mappings(s, T0, buf)
    assert _invalidated(s) == [a]


def test_invalidate_marks_live_tables_so_the_importer_owes_an_unmap() -> None:
    """§10 #22, #23 ghost state: tables live at invalidation are marked invalidated."""
    s, buf = setup()
    s, a = ok(dma_buf_dynamic_attach(s, T1, buf, "r", REVOCABLE))
    s, st = ok(dma_buf_attach(s, T1, buf, "static"))
    s = lock(s, T1, buf)
    s, t = ok(dma_buf_map_attachment(s, T1, a, BIDI))
    s, ts = ok(dma_buf_map_attachment(s, T1, st, BIDI))
    s = dma_buf_invalidate_mappings(s, T1, buf)
    assert s.sg_tables[t].invalidated and not s.sg_tables[ts].invalidated


def test_revoke_sequence_ends_with_no_live_mapping_and_maps_failing_enodev() -> None:
    """§5.8 revoke sequence, §10 #22: lock, mark revoked, invalidate, wait BOOKKEEP, unlock,
    the importer unmaps; afterwards map fails with the exporter's -ENODEV."""
    s, buf = setup()
    s, a = ok(dma_buf_dynamic_attach(s, T1, buf, "r", REVOCABLE))
    s = lock(s, T1, buf)
    s, _ = dma_buf_pin(s, T1, a)
    s, t = ok(dma_buf_map_attachment(s, T1, a, BIDI))
    s = unlock(s, T1, buf)
    s, job = add_fence(s, buf, DmaResvUsage.BOOKKEEP, tid=T1)
    # exporter
    s = lock(s, T0, buf)
    s = with_ext(s, revoked=True)
    s = dma_buf_invalidate_mappings(s, T0, buf)
    resv = s.bufs[buf].resv
    wait = dma_resv_wait_timeout(s, T0, resv, DmaResvUsage.BOOKKEEP, False, MAX_SCHEDULE_TIMEOUT)
    assert isinstance(wait, Blocked) and wait.on == f"fence{job}"
    s = dma_fence_signal(s, job)
    s, ret = ok(
        dma_resv_wait_timeout(s, T0, resv, DmaResvUsage.BOOKKEEP, False, MAX_SCHEDULE_TIMEOUT)
    )
    assert ret > 0
    s = unlock(s, T0, buf)
    # importer reacts to the invalidation: unmap (and it may try to map again)
    s = lock(s, T1, buf)
    s = dma_buf_unmap_attachment(s, T1, a, t, BIDI)
    assert live_sgts(s, a) == ()
    s, ret = ok(dma_buf_map_attachment(s, T1, a, BIDI))
    assert ret == -ENODEV and not s.warnings


def test_detached_attachments_are_never_invalidated() -> None:
    """§5.4, §10 #15: only attachments on the list are called."""
    s, buf = setup()
    s, a = ok(dma_buf_dynamic_attach(s, T1, buf, "r", REVOCABLE))
    s = okk(dma_buf_detach(s, T1, buf, a))
    s = lock(s, T0, buf)
    s = dma_buf_invalidate_mappings(s, T0, buf)
    assert "invalidate_mappings" not in names(s)


def test_dynamic_importer_mapping_without_pin_or_callback_is_unsafe() -> None:
    """§10 #24, §6.4 model note: a checker predicate, not a warning at map time."""
    s, buf = setup()
    s, nc = ok(dma_buf_dynamic_attach(s, T1, buf, "nocb", NO_CALLBACK))
    s, rv = ok(dma_buf_dynamic_attach(s, T2, buf, "rev", REVOCABLE))
    s = lock(s, T1, buf)
    s, t = ok(dma_buf_map_attachment(s, T1, nc, BIDI))
    s, _ = ok(dma_buf_map_attachment(s, T1, rv, BIDI))
    assert not s.warnings
    assert unsafe_unpinned_mapping(s) == [nc]
    s = dma_buf_unmap_attachment(s, T1, nc, t, BIDI)
    s, _ = dma_buf_pin(s, T1, nc)
    s, _ = ok(dma_buf_map_attachment(s, T1, nc, BIDI))
    assert unsafe_unpinned_mapping(s) == []  # pinned flow: safe


def test_static_importer_is_never_unsafe_unpinned() -> None:
    """§6.4 note: static attachments are pinned per mapping by the core (or the exporter is
    static), so #24 does not apply to them."""
    s, buf = setup()
    s, st = ok(dma_buf_attach(s, T1, buf, "static"))
    s = lock(s, T1, buf)
    s, _ = ok(dma_buf_map_attachment(s, T1, st, BIDI))
    assert unsafe_unpinned_mapping(s) == []


# §5.18 attachment-mode matrix: (exporter has pin, importer kind) -> (core pins on map,
# core waits for KERNEL fences, receives invalidations, revocable).
MATRIX = [
    (False, "static", False, True, False, False),
    (False, "callback", False, False, True, True),
    (False, "nocallback", False, False, False, False),
    (True, "static", True, True, False, False),
    (True, "callback", False, False, True, True),
    (True, "nocallback", False, False, False, False),
]


@pytest.mark.parametrize(
    ("exporter_pin", "importer", "pins", "waits", "invalidated", "revocable"), MATRIX
)
def test_attachment_mode_matrix(
    exporter_pin: bool,
    importer: str,
    pins: bool,
    waits: bool,
    invalidated: bool,
    revocable: bool,
) -> None:
    """§5.18: each exporter/importer combination behaves as the matrix says."""
    s, buf = setup(pin=exporter_pin)
    ops: DmaBufAttachOps | None = {"static": None, "callback": REVOCABLE}.get(importer, NO_CALLBACK)
    s, a = ok(dma_buf_dynamic_attach(s, T1, buf, "dev", ops))
    assert dma_buf_pin_on_map(s, a) == pins
    assert dma_buf_attach_revocable(s, a) == revocable
    s, f = add_fence(s, buf, DmaResvUsage.KERNEL)
    s = lock(s, T1, buf)
    r = dma_buf_map_attachment(s, T1, a, BIDI)
    assert isinstance(r, Blocked) == waits
    s = dma_fence_signal(s, f)
    s, t = ok(dma_buf_map_attachment(s, T1, a, BIDI))
    assert t >= 0 and ("pin" in names(s)) == pins
    s = dma_buf_invalidate_mappings(s, T1, buf)
    assert (_invalidated(s) == [a]) == invalidated


def test_tables_owed_an_unmap_are_the_live_invalidated_ones() -> None:
    """§10 #23: after an invalidation that hits a live mapping, the importer owes an unmap;
    the debt is paid by dma_buf_unmap_attachment (owed_unmaps is the ghost the bound uses)."""
    s, buf = setup()
    s, a = ok(dma_buf_dynamic_attach(s, T1, buf, "r", REVOCABLE))
    s = lock(s, T1, buf)
    s, t = ok(dma_buf_map_attachment(s, T1, a, BIDI))
    assert owed_unmaps(s) == []
    s = dma_buf_invalidate_mappings(s, T1, buf)
    assert owed_unmaps(s) == [t]
    s, t2 = ok(dma_buf_map_attachment(s, T1, a, BIDI))  # a fresh mapping owes nothing
    assert owed_unmaps(s) == [t]
    s = dma_buf_unmap_attachment(s, T1, a, t, BIDI)
    assert owed_unmaps(s) == [] and live_sgts(s, a) == (t2,)


def test_movable_flow_invalidates_waits_for_fences_and_the_importer_remaps() -> None:
    """§6.5 movable row, §10 #21: before a move the exporter holds the resv, invalidates and
    waits for the resv fences; the old mapping is then stale and the importer maps again."""
    s, buf = setup()
    s, a = ok(dma_buf_dynamic_attach(s, T1, buf, "r", REVOCABLE))
    s = lock(s, T1, buf)
    s, old = ok(dma_buf_map_attachment(s, T1, a, BIDI))
    s = unlock(s, T1, buf)
    s, job = add_fence(s, buf, DmaResvUsage.READ, tid=T1)
    s = lock(s, T0, buf)
    s = dma_buf_invalidate_mappings(s, T0, buf)
    resv = s.bufs[buf].resv
    usage = DmaResvUsage.BOOKKEEP
    blocked = dma_resv_wait_timeout(s, T0, resv, usage, False, MAX_SCHEDULE_TIMEOUT)
    assert isinstance(blocked, Blocked)
    s = dma_fence_signal(s, job)
    s, ret = ok(dma_resv_wait_timeout(s, T0, resv, usage, False, MAX_SCHEDULE_TIMEOUT))
    assert ret > 0 and s.sg_tables[old].invalidated  # stale from now on
    s = unlock(s, T0, buf)
    s = lock(s, T1, buf)
    s = dma_buf_unmap_attachment(s, T1, a, old, BIDI)
    s, new = ok(dma_buf_map_attachment(s, T1, a, BIDI))
    assert new != old and live_sgts(s, a) == (new,) and not s.warnings


def test_the_attachment_list_only_changes_under_the_resv() -> None:
    """§10 #7: attach and detach change the list inside a resv section (Blocked otherwise)."""
    s, buf = setup()
    s, a = ok(dma_buf_dynamic_attach(s, T1, buf, "r", REVOCABLE))
    held = lock(s, T0, buf)
    assert isinstance(dma_buf_dynamic_attach(held, T1, buf, "x", REVOCABLE), Blocked)
    assert isinstance(dma_buf_detach(held, T1, buf, a), Blocked)
