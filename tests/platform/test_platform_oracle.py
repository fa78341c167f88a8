"""The access oracle names each finding from a small scripted access.

core-semantics §5.8 and §6.5 (reads until unmap, no writes after invalidation), §10 #22
(revoke completion), drivers.md §1.4 (resets, memory disable, unplug) and §6 (map types).
"""

from __future__ import annotations

from dmabuf_model.kernel import errno
from dmabuf_model.platform import (
    DmaPath,
    Finding,
    FindingKind,
    HostBridgeAllow,
    PciPowerState,
    PlatformState,
    Topology,
    TransferStatus,
    dma_engine_pending,
    dma_engine_run,
    dma_map_phys,
    dma_mapping_invalidate,
    dma_submit,
    dma_submit_iova,
    dma_unmap_phys,
    iommu_attach_device,
    iommu_domain_alloc,
    iommu_map,
    no_dma_violation,
    oracle_revoke_complete,
    oracle_unrevoke,
    pci_hot_add,
    pci_reassign_resource,
    pci_remove_bus_device,
    pci_reset_function,
    pci_set_power_state,
    pci_surprise_removal,
    pci_write_command_memory,
    platform_init,
    ram_alloc,
    ram_free,
    violations,
)

TOPO = Topology.simple(["vfio0", "mlx5_0"], non_pci=["iommufd"])
THRU_HB = Topology.simple(["vfio0", "mlx5_0"], acs_redirect=True, allow=HostBridgeAllow.LISTED)
BAR = TOPO.bar("vfio0")
K = FindingKind


def mapped(topo: Topology = TOPO, range_id: int = BAR) -> tuple[PlatformState, int]:
    """vfio0's BAR (or ``range_id``) mapped for mlx5_0."""
    ps, m = dma_map_phys(platform_init(topo), topo, "mlx5_0", range_id)
    assert m >= 0
    return ps, m


def access(
    ps: PlatformState, m: int, *, write: bool = False, topo: Topology = TOPO
) -> tuple[PlatformState, TransferStatus]:
    """mlx5_0 starts and completes one access through mapping ``m``."""
    ps, x = dma_submit(ps, topo, "mlx5_0", m, write=write)
    ps, done = dma_engine_run(ps, topo, "mlx5_0")
    assert done == x
    return ps, ps.transfers[x].status


def kinds(ps: PlatformState) -> list[FindingKind]:
    return [f.kind for f in ps.findings]


def test_access_through_a_live_mapping_of_current_memory_is_fine() -> None:
    """The baseline: same generation, decoding, live mapping: DONE, no finding."""
    ps, m = mapped()
    ps, status = access(ps, m, write=True)
    assert status is TransferStatus.DONE and ps.findings == ()
    assert dma_engine_pending(ps, "mlx5_0") == ()


def test_map_path_follows_the_p2p_map_type() -> None:
    """drivers.md §6: BUS_ADDR stays untranslated; THRU_HOST_BRIDGE takes an IOVA."""
    ps, m = mapped()
    assert ps.mappings[m].path is DmaPath.BUS_ADDR
    ps, m = mapped(THRU_HB)
    assert ps.mappings[m].path is DmaPath.IOVA and ps.mappings[m].domain == 1


def test_map_fails_with_einval_without_p2p_or_for_a_non_pci_device() -> None:
    """drivers.md §1.2, §6: dma_buf_phys_vec_to_sgt returns -EINVAL for NOT_SUPPORTED."""
    no_p2p = TOPO.evolve(no_p2p=True)
    ps = platform_init(no_p2p)
    assert dma_map_phys(ps, no_p2p, "mlx5_0", BAR) == (ps, -errno.EINVAL)
    ps = platform_init(TOPO)
    assert dma_map_phys(ps, TOPO, "iommufd", BAR) == (ps, -errno.EINVAL)


def test_dma_to_reused_ram_is_dma_after_reuse() -> None:
    """RAM freed and handed out again: a stale mapping now writes someone else's data."""
    ps = platform_init(TOPO)
    ps, r = ram_alloc(ps, TOPO)
    ps, m = dma_map_phys(ps, TOPO, "mlx5_0", r)
    assert ps.mappings[m].path is DmaPath.IOVA
    ps = ram_free(ps, TOPO, r)
    ps, _ = ram_alloc(ps, TOPO)
    ps, status = access(ps, m, write=True)
    assert status is TransferStatus.DONE
    assert ps.findings == (
        Finding(
            K.DMA_AFTER_REUSE,
            "mlx5_0",
            "ram0",
            "write via mapping 0 page 0: generation 0 is now 1 (freed)",
        ),
    )


def test_dma_to_a_reassigned_bar_is_dma_after_reuse() -> None:
    """A BAR window moved: the old bus address reaches other memory."""
    ps, m = mapped()
    ps = pci_reassign_resource(ps, TOPO, "vfio0")
    ps, _ = access(ps, m)
    assert kinds(ps) == [K.DMA_AFTER_REUSE]


def test_dma_after_flr_is_dma_after_reset() -> None:
    """drivers.md §1.4: VFIO_DEVICE_RESET wipes the BAR's device memory."""
    ps, m = mapped()
    ps, _ = pci_reset_function(ps, TOPO, "vfio0")
    ps, status = access(ps, m, write=True)
    assert status is TransferStatus.DONE and kinds(ps) == [K.DMA_AFTER_RESET]
    assert ps.findings[0].violation


def test_dma_after_orderly_unplug_is_a_violation_answered_with_ur() -> None:
    """drivers.md §6: before remove() every importer must have unmapped."""
    ps, m = mapped()
    ps = pci_remove_bus_device(ps, TOPO, "vfio0")
    ps, status = access(ps, m)
    assert status is TransferStatus.UNSUPPORTED_REQUEST
    assert kinds(ps) == [K.DMA_AFTER_UNPLUG] and not no_dma_violation(ps)


def test_dma_after_surprise_unplug_is_safe_until_the_window_is_reused() -> None:
    """A vanished device cannot be protected; reuse of its window can (Christian, M1)."""
    ps, m = mapped()
    ps = pci_surprise_removal(ps, TOPO, "vfio0")
    ps, status = access(ps, m)
    assert status is TransferStatus.UNSUPPORTED_REQUEST
    assert kinds(ps) == [K.DMA_AFTER_SURPRISE_UNPLUG] and no_dma_violation(ps)
    ps = pci_hot_add(ps, TOPO, "vfio0")
    ps, status = access(ps, m)
    assert status is TransferStatus.DONE
    assert [f.kind for f in violations(ps)] == [K.DMA_AFTER_REUSE]


def test_bar_access_with_memory_decode_off_is_ur_access() -> None:
    """drivers.md §1.4: with PCI_COMMAND_MEMORY clear the access is an Unsupported Request."""
    ps, m = mapped()
    ps = pci_write_command_memory(ps, TOPO, "vfio0", False)
    ps, status = access(ps, m)
    assert status is TransferStatus.UNSUPPORTED_REQUEST
    assert ps.findings == (
        Finding(
            K.UR_ACCESS, "mlx5_0", "vfio0.bar0", "read via mapping 0 page 0: memory decode off"
        ),
    )
    assert not no_dma_violation(ps)


def test_bar_access_in_d3hot_is_ur_access() -> None:
    """drivers.md §1.4: a function in D3hot does not decode its BARs."""
    ps, m = mapped()
    ps, _ = pci_set_power_state(ps, TOPO, "vfio0", PciPowerState.D3hot)
    ps, status = access(ps, m)
    assert status is TransferStatus.UNSUPPORTED_REQUEST and kinds(ps) == [K.UR_ACCESS]
    assert "function in PCI_D3hot" in ps.findings[0].detail


def test_write_started_after_invalidate_is_a_violation_but_reads_are_allowed() -> None:
    """core-semantics §5.8, §6.5: until unmap only speculative reads, no writes."""
    ps, m = mapped()
    ps = dma_mapping_invalidate(ps, m)
    ps, status = access(ps, m)
    assert status is TransferStatus.DONE and ps.findings == ()
    ps, _ = access(ps, m, write=True)
    assert kinds(ps) == [K.WRITE_AFTER_INVALIDATE]


def test_write_in_flight_before_invalidate_is_covered_by_its_fence() -> None:
    """core-semantics §5.8: full access continues until the resv fences retire."""
    ps, m = mapped()
    ps, x = dma_submit(ps, TOPO, "mlx5_0", m, write=True, fence=3)
    ps = dma_mapping_invalidate(ps, m)
    ps, _ = dma_engine_run(ps, TOPO, "mlx5_0")
    assert ps.transfers[x].status is TransferStatus.DONE and ps.findings == ()


def test_bus_address_used_after_unmap_is_dma_after_unmap() -> None:
    """core-semantics §5.8: touching memory after unmapping is an importer bug."""
    ps, m = mapped()
    ps = dma_unmap_phys(ps, m)
    ps, status = access(ps, m)
    assert status is TransferStatus.DONE and kinds(ps) == [K.DMA_AFTER_UNMAP]


def test_iova_used_after_unmap_faults_safely() -> None:
    """THRU_HOST_BRIDGE mapping: after unmap the IOMMU refuses the access."""
    ps, m = mapped(THRU_HB)
    ps = dma_unmap_phys(ps, m)
    ps, status = access(ps, m, write=True, topo=THRU_HB)
    assert status is TransferStatus.IOMMU_FAULT
    assert kinds(ps) == [K.IOMMU_FAULT] and ps.iommu_faults == 1 and no_dma_violation(ps)


def test_stale_iova_reused_by_a_new_mapping_is_stray_dma() -> None:
    """An unmapped IOVA handed to another mapping: the old user reaches the new memory."""
    ps, m1 = mapped(THRU_HB)
    ps = dma_unmap_phys(ps, m1)
    ps, m2 = dma_map_phys(ps, THRU_HB, "mlx5_0", BAR)
    assert ps.mappings[m2].iova == ps.mappings[m1].iova
    ps, _ = access(ps, m1, write=True, topo=THRU_HB)
    assert kinds(ps) == [K.STRAY_DMA]
    assert ps.findings[0].detail == "write via mapping 0: iova 0 now belongs to mapping 1"


def test_revoke_completing_with_a_live_mapping_is_a_violation() -> None:
    """core-semantics §10 #22: no live mapping of the revoked storage may remain."""
    ps, m = mapped()
    ps = dma_mapping_invalidate(ps, m)
    ps = oracle_revoke_complete(ps, TOPO, BAR)
    assert ps.findings == (
        Finding(
            K.REVOKE_WITH_LIVE_MAPPING,
            "mlx5_0",
            "vfio0.bar0",
            "mapping 0 (bus_addr, invalidated) still live",
        ),
    )


def test_revoke_after_every_unmap_is_clean_and_later_access_is_dma_after_revoke() -> None:
    """core-semantics §5.8: after the two waits nothing may reach the range."""
    ps, m = mapped()
    ps, x = dma_submit(ps, TOPO, "mlx5_0", m)  # in flight, its fence never waited for
    ps = dma_unmap_phys(ps, m)
    ps = oracle_revoke_complete(ps, TOPO, BAR)
    assert ps.findings == () and ps.ranges[BAR].revoked
    ps, _ = dma_engine_run(ps, TOPO, "mlx5_0")
    assert ps.transfers[x].status is TransferStatus.DONE
    assert kinds(ps) == [K.DMA_AFTER_REVOKE]
    ps = oracle_unrevoke(ps, TOPO, BAR)
    assert not ps.ranges[BAR].revoked
    ps, _ = access(ps, m)
    assert kinds(ps) == [K.DMA_AFTER_REVOKE, K.DMA_AFTER_UNMAP]


def test_revoke_with_a_raw_iommu_entry_still_present_is_a_violation() -> None:
    """drivers.md §2.2: iommufd must iommu_unmap before the VFIO revoke completes."""
    ps = platform_init(TOPO)
    ps, dom = iommu_domain_alloc(ps)
    ps, _ = iommu_map(ps, TOPO, dom, 0, BAR, 1, 1)
    ps = oracle_revoke_complete(ps, TOPO, BAR)
    assert ps.findings == (
        Finding(
            K.REVOKE_WITH_LIVE_MAPPING,
            f"domain{dom}",
            "vfio0.bar0",
            "IOMMU entry iova 0 -> page 1 still present",
        ),
    )


def test_equal_findings_are_recorded_once_so_states_merge() -> None:
    """Findings are a sorted, duplicate-free tuple: the same history gives the same state."""
    ps, m = mapped()
    ps, _ = pci_reset_function(ps, TOPO, "vfio0")
    once, _ = access(ps, m)
    twice, _ = access(once, m)
    assert once.findings == twice.findings and len(once.findings) == 1


def test_raw_iova_write_into_an_invalidated_mapping_is_write_after_invalidate() -> None:
    """core-semantics §6.5, for a device that only knows the IOVA."""
    ps, m = mapped(THRU_HB)
    ps = dma_mapping_invalidate(ps, m)
    ps, _ = dma_submit_iova(ps, THRU_HB, "mlx5_0", ps.mappings[m].iova)
    assert ps.findings == ()
    ps, _ = dma_submit_iova(ps, THRU_HB, "mlx5_0", ps.mappings[m].iova, write=True)
    assert kinds(ps) == [K.WRITE_AFTER_INVALIDATE]


def test_iova_used_by_a_device_without_translation_is_stray_dma() -> None:
    """A device moved to an identity domain sends its IOVA out untranslated."""
    ps, m = mapped(THRU_HB)
    ps, ret = iommu_attach_device(ps, THRU_HB, -1, "mlx5_0")
    assert ret == 0
    ps, status = access(ps, m, topo=THRU_HB)
    assert status is TransferStatus.DONE and kinds(ps) == [K.STRAY_DMA]
