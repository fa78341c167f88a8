"""flows: the negotiated flow of one exporter x importer pair, computed by running the drivers.

The classifier is the drivers.md §7 legend (core-semantics §6.3-§6.5); the runs check what each
phase observes (pins, the takeback, access afterwards, the refusing step), that deliberately
broken drivers show up in the cell, and one interaction §7 does not list: a pinned-revocable
RDMA importer of a GPU BO without P2P is revoked by the exporter's own move inside dma_buf_pin.
"""

from __future__ import annotations

import pytest

from dmabuf_model.drivers.base import TakebackKind
from dmabuf_model.flows import (
    EXPORTER_KINDS,
    FLOWS,
    IMPORT_RECIPES,
    IMPORTER_KINDS,
    MOVABLE,
    PINNED,
    PINNED_REVOCABLE,
    PINNED_STATIC,
    REJECTED,
    REVOCABLE,
    STATIC,
    build_pair,
    classify,
    compute_matrix,
    failed_calls,
    matrix_topology,
    negotiate,
    refusal,
)
from dmabuf_model.platform.topology import PciP2pdmaMapType, pci_p2pdma_map_type

# --- classify: the drivers.md §7 legend ----------------------------------------------------------


@pytest.mark.parametrize(
    ("pinned", "invalidated", "takeback", "pin_op", "flow"),
    [
        (True, True, TakebackKind.REVOKE, False, PINNED_REVOCABLE),
        (False, True, TakebackKind.REVOKE, False, REVOCABLE),
        (False, True, TakebackKind.MOVE, True, MOVABLE),
        (True, False, TakebackKind.MOVE, True, PINNED),
        (True, False, None, False, PINNED_STATIC),
        (False, False, None, False, STATIC),
        (False, False, TakebackKind.MOVE, True, STATIC),
    ],
)
def test_classify_follows_the_section_7_legend(
    pinned: bool, invalidated: bool, takeback: TakebackKind | None, pin_op: bool, flow: str
) -> None:
    """drivers.md §7 legend; core-semantics §6.3 (pinned / revoked / movable)."""
    got = classify(
        rejected=False, pinned=pinned, invalidated=invalidated, takeback=takeback, pin_op=pin_op
    )
    assert got == flow
    assert got in FLOWS


def test_classify_rejected_wins_over_everything_observed() -> None:
    """drivers.md §7: "rejected (errno)" is where the import failed, whatever else held."""
    got = classify(
        rejected=True, pinned=True, invalidated=True, takeback=TakebackKind.REVOKE, pin_op=True
    )
    assert got == REJECTED


# --- the machine ---------------------------------------------------------------------------------


def test_matrix_machine_has_a_p2p_bus_address_path_unless_no_p2p() -> None:
    """drivers.md §6: two functions below one switch use MAP_BUS_ADDR; no_p2p removes it."""
    assert pci_p2pdma_map_type(matrix_topology(), "exp0", "imp0") is PciP2pdmaMapType.BUS_ADDR
    off = matrix_topology(no_p2p=True)
    assert pci_p2pdma_map_type(off, "exp0", "imp0") is PciP2pdmaMapType.NOT_SUPPORTED
    assert not matrix_topology().is_pci("iommufd")


def test_build_pair_names_an_importer_of_the_same_kind_apart() -> None:
    """drivers.md §7: amdgpu x amdgpu is another device, not a GEM share; names stay unique."""
    system, exp, imp = build_pair("amdgpu", "amdgpu")
    assert exp.device == "exp0" and imp.device == "imp0"
    assert exp.name != imp.name
    assert len({e.name for e in system.events()}) == len(system.events())


def test_unknown_identifiers_are_refused_with_the_known_ones() -> None:
    with pytest.raises(KeyError, match="unknown exporter 'nvme'; known: vfio-pci"):
        negotiate("nvme", "iommufd")
    with pytest.raises(KeyError, match="unknown importer 'v4l2'; known: iommufd"):
        negotiate("vfio-pci", "v4l2")


def test_every_importer_has_a_recipe() -> None:
    assert set(IMPORT_RECIPES) == set(IMPORTER_KINDS)


# --- refusals: the errno and the step ------------------------------------------------------------


def test_failed_call_lines_are_parsed_with_their_errno_names() -> None:
    lines = [
        "dma_buf_get(fd3) = buf0",
        "xe_dma_buf_attach(attach0 (imp0, VRAM-only, no P2P)) = -EOPNOTSUPP",
        "  -> dma_buf_unmap_attachment(attach0, sgt1)",
        "dma_buf_dynamic_attach(buf0, imp0, ops) = -EOPNOTSUPP",
    ]
    assert failed_calls(lines) == [
        ("xe_dma_buf_attach", "EOPNOTSUPP"),
        ("dma_buf_dynamic_attach", "EOPNOTSUPP"),
    ]


def test_refusal_names_the_core_step_and_the_exporter_callback_that_refused_first() -> None:
    """core-semantics §5.3 step 4: the exporter's attach error is returned unchanged."""
    lines = [
        "xe_dma_buf_attach(attach0 (imp0, VRAM-only, no P2P)) = -EOPNOTSUPP",
        "dma_buf_dynamic_attach(buf0, imp0, ops) = -EOPNOTSUPP",
    ]
    assert refusal(lines, -95, None) == ("EOPNOTSUPP", "attach", "xe_dma_buf_attach")


def test_refusal_without_a_failing_line_falls_back_to_the_failing_step_label() -> None:
    """ib_umem_dmabuf_map_pages returns -EINVAL for a revoked umem without calling anything."""
    pc = "dma_resv_lock, dma_buf_pin, ib_umem_dmabuf_map_pages"
    assert refusal(["dma_buf_pin(attach0) = 0"], -22, pc) == ("EINVAL", "map", None)
    assert refusal([], -22, "some driver step") == ("EINVAL", "some driver step", None)


# --- single pairs, end to end --------------------------------------------------------------------


def test_vfio_iommufd_is_pinned_revocable_and_the_iova_stays_dead_after_reset() -> None:
    """drivers.md §1.8, §2.2, §7: pin is a core no-op, the revoke unmaps the IOVA, no restore."""
    r = negotiate("vfio-pci", "iommufd")
    d = r.detail
    assert (r.flow, r.errno, r.step) == (PINNED_REVOCABLE, None, None)
    assert d.pinned and not d.pin_op and not d.pin_on_map
    assert d.takeback == "VFIO_DEVICE_RESET" and d.invalidations >= 1
    assert d.access_before is True
    assert (d.access_after, d.after_error) == (False, "iommu_fault")
    assert d.paths == ("exp0.bar0 via iova (iommu_map)",)
    assert d.clean


def test_vfio_rdma_odp_is_revocable_and_faults_back_in_after_unrevoke() -> None:
    """drivers.md §3.3 (dynamic): invalidate zaps, the next access faults and maps again."""
    r = negotiate("vfio-pci", "rdma-odp")
    d = r.detail
    assert r.flow == REVOCABLE
    assert not d.pinned and d.invalidations >= 1
    assert d.paths == ("exp0.bar0 via bus_addr",)
    assert d.access_before is True and d.access_after is True
    assert d.clean


def test_vfio_pinned_revocable_rdma_loses_its_key_for_good() -> None:
    """drivers.md §3.3 (irdma): REVOKED is permanent; later accesses are access errors."""
    r = negotiate("vfio-pci", "rdma-pinned-revocable")
    assert r.flow == PINNED_REVOCABLE
    assert (r.detail.access_after, r.detail.after_error) == (False, "IB_EVENT_QP_ACCESS_ERR")


def test_vfio_refuses_a_pinned_importer_without_invalidate_at_attach() -> None:
    """drivers.md §1.2, §1.8: !dma_buf_attach_revocable() -> -EOPNOTSUPP at attach (v7)."""
    r = negotiate("vfio-pci", "rdma-pinned")
    assert (r.flow, r.errno, r.step) == (REJECTED, "EOPNOTSUPP", "attach")


def test_vfio_without_p2p_refuses_the_map_with_einval() -> None:
    """drivers.md §1.8 last row, §6: dma_buf_phys_vec_to_sgt with MAP_NOT_SUPPORTED."""
    r = negotiate("vfio-pci", "rdma-odp", no_p2p=True)
    assert (r.flow, r.errno, r.step) == (REJECTED, "EINVAL", "map")


def test_gpu_eviction_moves_a_movable_importer_and_it_maps_again() -> None:
    """drivers.md §4.1, core-semantics §6.5: invalidate before the move, map again after."""
    r = negotiate("amdgpu", "xe")
    d = r.detail
    assert r.flow == MOVABLE
    assert (d.placement, d.placement_after) == ("VRAM", "TT")
    assert d.invalidations == 1 and d.access_after is True
    assert d.clean


def test_gpu_eviction_of_a_pinned_bo_is_refused_and_never_invalidates() -> None:
    """core-semantics §10 #20: TTM does not evict a pinned BO (-EBUSY); §7: "pinned"."""
    r = negotiate("xe", "rdma-pinned")
    d = r.detail
    assert r.flow == PINNED
    assert d.pinned and d.pin_op
    assert (d.takeback_ret, d.invalidations) == ("-EBUSY", 0)
    assert d.placement == "VRAM"


def test_static_importer_of_a_gpu_bo_pins_on_map_in_gtt() -> None:
    """drivers.md §7 extra row: pin on map in GTT/TT, since peer2peer is false (§5.6)."""
    r = negotiate("amdgpu", "static")
    d = r.detail
    assert r.flow == PINNED
    assert d.pin_on_map and d.placement == "TT"
    assert d.takeback_ret == "-EBUSY"
    assert d.access_after is True


def test_static_exporter_gives_a_noop_pin_and_no_takeback() -> None:
    """drivers.md §5.1, §7: "pinned/static (pin is a no-op)"."""
    r = negotiate("system-heap", "rdma-pinned")
    d = r.detail
    assert r.flow == PINNED_STATIC
    assert d.pinned and not d.pin_op and d.takeback is None
    assert d.paths == ("ram0 via iova",)


def test_iommufd_of_a_gpu_bo_pins_in_gtt_then_fails_the_private_map() -> None:
    """drivers.md §2.1 step 4, §7: attach and pin happen first, in GTT, then are undone."""
    r = negotiate("amdgpu", "iommufd")
    assert (r.flow, r.errno, r.step) == (REJECTED, "EOPNOTSUPP", "iommufd private map")
    assert r.detail.placement == "TT"
    assert r.detail.clean


def test_xe_vram_only_bo_refuses_an_importer_without_p2p_at_attach() -> None:
    """drivers.md §4.2: not peer2peer and cannot migrate to TT -> -EOPNOTSUPP in attach."""
    r = negotiate("xe", "rdma-odp", no_p2p=True, exporter_options={"vram_only": True})
    assert (r.flow, r.errno, r.step) == (REJECTED, "EOPNOTSUPP", "attach")
    assert r.detail.refused_by == "xe_dma_buf_attach"


@pytest.mark.parametrize("exporter", ["amdgpu", "xe"])
def test_pinned_revocable_rdma_without_p2p_is_revoked_by_the_exporters_own_pin(
    exporter: str,
) -> None:
    """Beyond drivers.md §7: the GPU pin moves the BO VRAM->TT and move_notify invalidates every
    attachment (§4.1, §4.2), the pinning one too; ib_umem_dmabuf_revoke_locked then marks the
    umem revoked inside dma_buf_pin, ib_umem_dmabuf_map_pages fails -EINVAL (§3.1), and the
    release finds the umem revoked and never unpins: the pin leaks (core-semantics §10 #19)."""
    r = negotiate(exporter, "rdma-pinned-revocable", no_p2p=True)
    d = r.detail
    assert (r.flow, r.errno, r.step) == (REJECTED, "EINVAL", "map")
    assert d.import_invalidations == 1
    assert d.placement == "TT"
    assert d.broken == ("pins_balanced: attach0 pins=1",)


def test_the_candidate_unpin_fix_stops_the_leak_but_not_the_refusal() -> None:
    """rdma_umem option unpin_when_revoked [not in any tree]: the pin is dropped on release."""
    r = negotiate(
        "amdgpu",
        "rdma-pinned-revocable",
        no_p2p=True,
        importer_options={"unpin_when_revoked": True},
    )
    assert (r.flow, r.errno, r.step) == (REJECTED, "EINVAL", "map")
    assert r.detail.broken == ()


# --- broken drivers show in the cell -------------------------------------------------------------


def test_importer_that_keeps_its_mapping_stalls_the_vfio_revoke_and_writes_after_invalidate() -> (
    None
):
    """core-semantics §5.8, §6.5: VFIO waits for every unmap; a kept mapping never comes back."""
    r = negotiate("vfio-pci", "amdgpu", importer_options={"keep_mapping_on_invalidate": True})
    d = r.detail
    assert not d.clean
    assert d.stuck is not None and "VFIO_DEVICE_RESET waits for completion" in d.stuck
    assert any(b.startswith("no_dma_violation: write_after_invalidate") for b in d.broken)


def test_iommufd_that_skips_the_revoke_unmap_breaks_its_property() -> None:
    """drivers.md §2.2: iopt_revoke_notify must iommu_unmap before returning."""
    r = negotiate("vfio-pci", "iommufd", importer_options={"revoke_unmap": "none"})
    assert r.flow == PINNED_REVOCABLE
    assert any(b.startswith("iommufd_revoke_unmaps_iova") for b in r.detail.broken)
    assert r.detail.access_after is True


# --- the whole matrix ----------------------------------------------------------------------------


def test_compute_matrix_runs_every_pair_rows_first_and_cleanly_with_p2p() -> None:
    """drivers.md §7 with P2P: every cell computed, nothing broken, nothing stuck."""
    cells = compute_matrix()
    assert [(r.exporter, r.importer) for r in cells] == [
        (e, i) for e in EXPORTER_KINDS for i in IMPORTER_KINDS
    ]
    assert [(r.exporter, r.importer) for r in cells if not r.detail.clean] == []
    assert all((r.errno is None) == (r.flow != REJECTED) for r in cells)


def test_without_p2p_only_the_self_revoked_rdma_cells_break_a_property() -> None:
    cells = compute_matrix(no_p2p=True)
    assert [(r.exporter, r.importer) for r in cells if not r.detail.clean] == [
        ("amdgpu", "rdma-pinned-revocable"),
        ("xe", "rdma-pinned-revocable"),
    ]
