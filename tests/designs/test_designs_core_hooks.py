"""The design hooks of the dma-buf core: the CorePolicy a buffer carries (kernel/dma_buf.py).

Pre-v7 callback requirement at attach (core-semantics §5.3 "historical behaviour", §3),
CONFIG_DMABUF_MOVE_NOTIFY=n pin-on-map for dynamic importers (§5.18 "historical"), and revoke-v1's
negotiated revoke mode and one-way core revoked state (§7, [inference]). Under MAINLINE_POLICY
none of them changes anything.
"""

from __future__ import annotations

from dmabuf_model.kernel.dma_buf import (
    MAINLINE_POLICY,
    CorePolicy,
    DmaBufAttachOps,
    DmaBufOps,
    DmaDataDirection,
    MapResult,
    dma_buf_attach,
    dma_buf_attachment_is_revoke,
    dma_buf_dynamic_attach,
    dma_buf_export,
    dma_buf_invalidate_mappings,
    dma_buf_map_attachment,
    dma_buf_mmap,
    dma_buf_revoke,
    dma_buf_unmap_attachment,
    dma_buf_vmap,
    live_mappings,
)
from dmabuf_model.kernel.dma_resv import dma_resv_lock, dma_resv_unlock
from dmabuf_model.kernel.errno import EINVAL, ENODEV
from dmabuf_model.kernel.state import AttachId, Blocked, BufId, KState, SgtId, Tid

T0, T1 = 0, 1
BIDI = DmaDataDirection.BIDIRECTIONAL


def _log(s: KState, *entry: object) -> KState:
    log = s.ext if isinstance(s.ext, tuple) else ()
    return s.evolve(ext=(*log, entry))


def _calls(s: KState) -> list[object]:
    return [e[0] for e in s.ext] if isinstance(s.ext, tuple) else []


def _map(s: KState, tid: Tid, a: AttachId, d: DmaDataDirection) -> tuple[KState, MapResult]:
    return _log(s, "map_dma_buf", a), (("addr", a),)


def _unmap(s: KState, tid: Tid, a: AttachId, sgt: SgtId, d: DmaDataDirection) -> KState:
    return _log(s, "unmap_dma_buf", sgt)


def _pin(s: KState, tid: Tid, a: AttachId) -> tuple[KState, int]:
    return _log(s, "pin", a), 0


def _unpin(s: KState, tid: Tid, a: AttachId) -> KState:
    return _log(s, "unpin", a)


def _vmap(s: KState, tid: Tid, b: BufId) -> tuple[KState, int]:
    return s, 0x1000


def _mmap(s: KState, tid: Tid, b: BufId, pgoff: int, npages: int) -> tuple[KState, int]:
    return _log(s, "mmap", b), 0


OPS = DmaBufOps(
    "design-toy",
    map_dma_buf=_map,
    unmap_dma_buf=_unmap,
    release=lambda s, tid, b: s,
    pin=_pin,
    unpin=_unpin,
    vmap=_vmap,
    mmap=_mmap,
)


def _invalidate(s: KState, tid: Tid, a: AttachId) -> KState:
    return _log(s, "invalidate_mappings", a)


WITH_CALLBACK = DmaBufAttachOps("with-callback", True, _invalidate)
WITHOUT_CALLBACK = DmaBufAttachOps("without-callback", True)


def _export(policy: CorePolicy = MAINLINE_POLICY) -> KState:
    s, buf = dma_buf_export(KState(), T0, ops=OPS, size=4 * 4096, priv="toy", policy=policy)
    assert buf == 0
    return s


def _attach(s: KState, ops: DmaBufAttachOps | None) -> tuple[KState, int]:
    r = dma_buf_dynamic_attach(s, T1, 0, "dev1", ops) if ops else dma_buf_attach(s, T1, 0, "d")
    assert not isinstance(r, Blocked)
    return r


def _lock(s: KState, tid: Tid = T1) -> KState:
    r = dma_resv_lock(s, tid, s.bufs[0].resv, None)
    assert not isinstance(r, Blocked)
    return r[0]


def test_export_keeps_the_mainline_policy_unless_a_design_gives_one() -> None:
    """dma_buf_export stores the design's CorePolicy on the buffer (the state is a value)."""
    assert _export().bufs[0].policy is MAINLINE_POLICY
    pre_v7 = CorePolicy(dynamic_attach_requires_callback=True)
    assert _export(pre_v7).bufs[0].policy == pre_v7


def test_before_v7_importer_ops_without_the_callback_warn_and_fail_with_einval() -> None:
    """§5.3 historical: attach with importer_ops but no move_notify was WARN + -EINVAL."""
    s = _export(CorePolicy(dynamic_attach_requires_callback=True))
    s, ret = _attach(s, WITHOUT_CALLBACK)
    assert ret == -EINVAL and s.attachments == ()
    assert [w.what for w in s.warnings] == [
        "dma_buf_dynamic_attach: importer_ops without move_notify"
    ]
    s, ret = _attach(s, WITH_CALLBACK)
    assert ret == 0
    s, ret = _attach(s, None)  # a static importer has no ops: not concerned
    assert ret == 1


def test_since_v7_the_callback_is_optional() -> None:
    """§3, §5.3: NULL invalidate_mappings is legitimate under the merged core."""
    s, ret = _attach(_export(), WITHOUT_CALLBACK)
    assert ret == 0 and s.warnings == ()


def test_move_notify_off_pins_dynamic_attachments_on_each_map() -> None:
    """§5.18 historical: CONFIG_DMABUF_MOVE_NOTIFY=n pins dynamic importers around each map."""
    s, a = _attach(_export(CorePolicy(pin_on_map_for_dynamic=True)), WITH_CALLBACK)
    s = _lock(s)
    r = dma_buf_map_attachment(s, T1, a, BIDI)
    assert not isinstance(r, Blocked)
    s, sgt = r
    assert _calls(s) == ["pin", "map_dma_buf"] and s.attachments[a].map_pins == 1
    s = dma_buf_unmap_attachment(s, T1, a, sgt, BIDI)
    assert _calls(s)[-2:] == ["unmap_dma_buf", "unpin"] and s.attachments[a].map_pins == 0


def test_mainline_never_pins_a_dynamic_attachment_on_map() -> None:
    """§5.6 step 1: pin-on-map is for static attachments only."""
    s, a = _attach(_export(), WITH_CALLBACK)
    r = dma_buf_map_attachment(_lock(s), T1, a, BIDI)
    assert not isinstance(r, Blocked)
    assert _calls(r[0]) == ["map_dma_buf"] and r[0].attachments[a].map_pins == 0


def test_revoke_mode_is_negotiated_by_importers_that_offer_the_callback() -> None:
    """revoke-v1 [inference, §7]: dma_buf_attachment_is_revoke for callback importers only."""
    s = _export(CorePolicy(revoke_mode_negotiated=True))
    s, a = _attach(s, WITH_CALLBACK)
    s, b = _attach(s, WITHOUT_CALLBACK)
    assert dma_buf_attachment_is_revoke(s, a) and not dma_buf_attachment_is_revoke(s, b)
    s, c = _attach(_export(), WITH_CALLBACK)
    assert not dma_buf_attachment_is_revoke(s, c)  # merged core: no such mode


def _revoked() -> tuple[KState, int, int]:
    s = _export(CorePolicy(revoke_mode_negotiated=True, core_revoked_state=True))
    s, a = _attach(s, WITH_CALLBACK)
    s, static = _attach(s, None)
    s = _lock(s, T0)
    s = dma_buf_revoke(s, T0, 0)
    return dma_resv_unlock(s, T0, s.bufs[0].resv), a, static


def test_dma_buf_revoke_sets_the_core_state_and_invalidates_callback_importers() -> None:
    """revoke-v1 [inference, §7]: one call, under the resv; static attachments are skipped."""
    s, a, _ = _revoked()
    assert s.bufs[0].revoked and s.warnings == ()
    assert _calls(s) == ["invalidate_mappings"] and s.ext[0] == ("invalidate_mappings", a)


def test_after_dma_buf_revoke_map_vmap_and_mmap_fail_with_enodev_for_good() -> None:
    """revoke-v1 [inference, §7]: the core refuses before asking the exporter; one way."""
    s, a, static = _revoked()
    s = _lock(s)
    for attach in (a, static):
        r = dma_buf_map_attachment(s, T1, attach, BIDI)
        assert not isinstance(r, Blocked) and r[1] == -ENODEV
    assert dma_buf_vmap(s, T1, 0)[1] == -ENODEV
    s = dma_resv_unlock(s, T1, s.bufs[0].resv)
    assert dma_buf_mmap(s, T1, 0, 0, 1)[1] == -ENODEV
    assert _calls(s) == ["invalidate_mappings"]  # the exporter was never asked
    s = dma_buf_invalidate_mappings(_lock(s, T0), T0, 0)
    assert s.bufs[0].revoked  # nothing in the core undoes it


def test_dma_buf_revoke_without_the_resv_is_warning_10() -> None:
    """The exporter holds the resv around it, as around dma_buf_invalidate_mappings (§10 #10)."""
    s = _export(CorePolicy(core_revoked_state=True))
    s = dma_buf_revoke(s, T0, 0)
    assert [w.invariant for w in s.warnings] == [10] and s.bufs[0].revoked


def test_a_mapping_alive_at_revoke_is_marked_invalidated() -> None:
    """Ghost state of §10 #22/#23: live tables of invalidated attachments owe an unmap."""
    s = _export(CorePolicy(core_revoked_state=True))
    s, a = _attach(s, WITH_CALLBACK)
    s = _lock(s)
    r = dma_buf_map_attachment(s, T1, a, BIDI)
    assert not isinstance(r, Blocked)
    s, sgt = r
    s = dma_buf_revoke(s, T1, 0)
    assert s.sg_tables[sgt].invalidated and live_mappings(s, a) == 1
