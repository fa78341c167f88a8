"""The core §10 invariants as named properties, each shown failing and holding on a small state.

States are built from the kernel records directly, so each test isolates one property.
"""

from __future__ import annotations

import pytest

from dmabuf_model.check.model import Expectation, Property
from dmabuf_model.kernel.dma_buf import (
    DmaBuf,
    DmaBufAttachment,
    DmaBufAttachOps,
    DmaBufOps,
    DmaDataDirection,
    SgTable,
)
from dmabuf_model.kernel.dma_resv import DmaResv
from dmabuf_model.kernel.state import KState, warn
from dmabuf_model.system import CORE_PROPERTIES, SystemModel, explain, no_live_mapping_after_revoke
from dmabuf_model.system.threads import finish, program, spawn, system_state, thread

OPS = DmaBufOps("toy", pin=lambda s, tid, a: (s, 0), unpin=lambda s, tid, a: s)
STATIC_OPS = DmaBufOps("static-exporter")
REVOCABLE = DmaBufAttachOps("revocable", invalidate_mappings=lambda s, tid, a: s)
NO_INVALIDATE = DmaBufAttachOps("pinned-only")
BIDI = DmaDataDirection.BIDIRECTIONAL
PROPS = {p.name: p for p in CORE_PROPERTIES}


def _state(
    attachment: DmaBufAttachment,
    *sgts: SgTable,
    released: bool = False,
    listed: bool = True,
    ops: DmaBufOps = OPS,
) -> KState:
    buf = DmaBuf(size=4096, ops=ops, resv=0, attachments=(0,) if listed else (), released=released)
    return system_state(
        KState(resvs=(DmaResv(),), bufs=(buf,), attachments=(attachment,), sg_tables=sgts)
    )


def _holds(name: str, s: KState) -> bool:
    return PROPS[name].condition(s)


def test_core_properties_are_named_cited_safety_properties() -> None:
    """Every core property is an always-property with a spec citation (style-guide B6)."""
    assert list(PROPS) == [
        "no_kernel_warning",
        "pins_balanced",
        "static_map_pins_match_mappings",
        "no_unpinned_mapping_without_invalidate",
        "attachments_only_on_live_bufs",
        "attachment_list_consistent",
        "no_mapping_after_detach",
        "no_lock_held_after_exit",
    ]
    assert all(
        p.expectation is Expectation.ALWAYS and p.cite.startswith("core-semantics §")
        for p in CORE_PROPERTIES
    )


def test_no_kernel_warning_fails_and_names_the_invariant() -> None:
    """A recorded WARN is a violation, reported with its §10 number (core §10 #8)."""
    s = _state(DmaBufAttachment(0, "dev", REVOCABLE))
    assert _holds("no_kernel_warning", s)
    s = warn(s, 8, "dma_buf_map_attachment without dmabuf->resv held")
    assert not _holds("no_kernel_warning", s)
    assert explain(PROPS["no_kernel_warning"], s) == [
        "WARN: dma_buf_map_attachment without dmabuf->resv held (core-semantics §10 #8)"
    ]


def test_pins_balanced_fails_on_unpin_below_zero_and_on_pins_left_at_detach() -> None:
    """Unpins never exceed pins and every pin is undone before detach (core §10 #19)."""
    assert _holds("pins_balanced", _state(DmaBufAttachment(0, "dev", REVOCABLE, pins=1)))
    assert not _holds("pins_balanced", _state(DmaBufAttachment(0, "dev", REVOCABLE, pins=-1)))
    detached = _state(DmaBufAttachment(0, "dev", REVOCABLE, pins=1, detached=True), listed=False)
    assert not _holds("pins_balanced", detached)
    assert explain(PROPS["pins_balanced"], detached) == ["attach0 pins=1"]


def test_map_pins_must_match_the_live_pinned_on_map_mappings() -> None:
    """Pin-on-map count equals live mappings that took a pin (core §10 #16)."""
    static = DmaBufAttachment(0, "dev", None, map_pins=1)
    live = SgTable(0, BIDI, ("p0",), live=True, pinned_on_map=True)
    assert _holds("static_map_pins_match_mappings", _state(static, live))
    dead = SgTable(0, BIDI, ("p0",), live=False, pinned_on_map=True)
    broken = _state(static, dead)
    assert not _holds("static_map_pins_match_mappings", broken)
    assert explain(PROPS["static_map_pins_match_mappings"], broken) == [
        "attach0 map_pins=1 pinned mappings=0"
    ]
    # An exporter without pin never pins on map, so any count is wrong (§1.3 pin-on-map).
    assert not _holds("static_map_pins_match_mappings", _state(static, live, ops=STATIC_OPS))


def test_dynamic_importer_without_invalidate_must_pin_while_it_holds_a_mapping() -> None:
    """A mapping with no pin and no invalidate_mappings is unsafe (core §10 #24, §6.4 note)."""
    sgt = SgTable(0, BIDI, ("p0",))
    name = "no_unpinned_mapping_without_invalidate"
    assert not _holds(name, _state(DmaBufAttachment(0, "dev", NO_INVALIDATE), sgt))
    assert _holds(name, _state(DmaBufAttachment(0, "dev", NO_INVALIDATE, pins=1), sgt))
    assert _holds(name, _state(DmaBufAttachment(0, "dev", REVOCABLE), sgt))


def test_attachment_on_a_released_buffer_is_a_violation() -> None:
    """The attachment list is empty at release (core §10 #5)."""
    name = "attachments_only_on_live_bufs"
    assert not _holds(name, _state(DmaBufAttachment(0, "dev", REVOCABLE), released=True))
    assert _holds(name, _state(DmaBufAttachment(0, "dev", REVOCABLE)))


def test_attachment_list_must_hold_only_live_attachments() -> None:
    """The list holds attachments between attach and detach only (core §1.1, §10 #7, #15)."""
    name = "attachment_list_consistent"
    assert _holds(name, _state(DmaBufAttachment(0, "dev", REVOCABLE)))
    # Attached but not yet listed is the window of dma_buf_dynamic_attach_start/_finish (§5.3).
    assert _holds(name, _state(DmaBufAttachment(0, "dev", REVOCABLE), listed=False))
    stale = _state(DmaBufAttachment(0, "dev", REVOCABLE, detached=True))
    assert not _holds(name, stale)
    assert explain(PROPS[name], stale) == ["buf0 lists attach0"]


def test_live_mapping_of_a_detached_attachment_is_a_violation() -> None:
    """Every mapping is unmapped before detach (core §10 #18)."""
    gone = DmaBufAttachment(0, "dev", REVOCABLE, detached=True)
    name = "no_mapping_after_detach"
    assert not _holds(name, _state(gone, SgTable(0, BIDI, ()), listed=False))
    assert _holds(name, _state(gone, SgTable(0, BIDI, (), live=False), listed=False))


def test_a_finished_thread_must_not_hold_a_resv() -> None:
    """A code path that returns holding the resv leaves it locked forever (core §4)."""
    s = _state(DmaBufAttachment(0, "dev", REVOCABLE))
    s, tid = spawn(s, program("leaky", ("exit", lambda s, t: finish(s, t))))
    s = finish(s.evolve(resvs=(DmaResv(holder=tid),)), thread(s, tid))
    assert not _holds("no_lock_held_after_exit", s)
    assert explain(PROPS["no_lock_held_after_exit"], s) == ["resv0 by T0 leaky"]


def test_no_live_mapping_after_revoke_uses_the_exporters_completion() -> None:
    """After a completed revoke no sg_table of the buffer is live (core §5.8, §10 #22)."""
    prop = no_live_mapping_after_revoke(lambda s, buf: True)
    live = _state(DmaBufAttachment(0, "dev", REVOCABLE), SgTable(0, BIDI, ()))
    assert not prop.condition(live)
    assert explain(prop, live) == ["sgt0 of revoked buf0"]
    dead = SgTable(0, BIDI, (), live=False)
    assert prop.condition(_state(DmaBufAttachment(0, "dev", REVOCABLE), dead))
    assert no_live_mapping_after_revoke(lambda s, buf: False).condition(live)
    assert prop.cite == "core-semantics §5.8, §10 #22"


def test_explain_is_empty_for_properties_not_made_by_invariant() -> None:
    """explain only knows invariant() properties; the model looks properties up by name."""
    plain: Property[KState] = Property.always("plain", lambda s: False)
    assert explain(plain, KState()) == []
    model = SystemModel(system_state(), properties=CORE_PROPERTIES)
    assert model.property("pins_balanced") is PROPS["pins_balanced"]
    with pytest.raises(KeyError, match="has no property 'pin_balanced'; it has: no_kernel_warning"):
        model.property("pin_balanced")
