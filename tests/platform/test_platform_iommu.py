"""IOMMU domains: map, unmap, IOTLB flush, and a safe fault after unmap (drivers.md §2)."""

from __future__ import annotations

from dmabuf_model.kernel import errno
from dmabuf_model.platform import (
    FindingKind,
    PlatformState,
    Topology,
    TransferStatus,
    dma_engine_run,
    dma_submit_iova,
    findings_of,
    iommu_attach_device,
    iommu_domain_alloc,
    iommu_iotlb_sync,
    iommu_iova_to_phys,
    iommu_lookup,
    iommu_map,
    iommu_unmap,
    iommu_unmap_fast,
    iova_alloc,
    no_dma_violation,
    platform_init,
)
from dmabuf_model.platform.iommu import EEXIST

TOPO = Topology.simple(["vfio0", "guest_gpu"], bars=(4,))
BAR = TOPO.bar("vfio0")


def iommufd_setup() -> tuple[PlatformState, int]:
    """An IOAS domain with guest_gpu attached and vfio0's BAR mapped at IOVA 0..3."""
    ps = platform_init(TOPO)
    ps, dom = iommu_domain_alloc(ps)
    ps, ret = iommu_attach_device(ps, TOPO, dom, "guest_gpu")
    assert ret == 0
    ps, ret = iommu_map(ps, TOPO, dom, 0, BAR, 0, 4)
    assert ret == 0
    return ps, dom


def test_iommu_map_translates_each_page_and_refuses_overlaps() -> None:
    """drivers.md §2.1 step 5: the physical range is iommu_map'ed page by page."""
    ps, dom = iommufd_setup()
    assert iommu_iova_to_phys(ps, dom, 2) == (BAR, 2)
    assert iommu_map(ps, TOPO, dom, 3, BAR, 0, 1) == (ps, -EEXIST)
    assert iommu_map(ps, TOPO, dom, 8, BAR, 3, 2)[1] == -errno.EINVAL
    assert iova_alloc(ps, dom, 2) == 4


def test_access_after_iommu_unmap_is_a_safe_counted_fault() -> None:
    """drivers.md §2.2: after iopt_revoke_notify's unmap, device DMA hits IOMMU faults."""
    ps, dom = iommufd_setup()
    ps, count = iommu_unmap(ps, dom, 0, 4)
    assert count == 4 and iommu_lookup(ps, dom, 0) is None
    for _ in range(2):
        ps, x = dma_submit_iova(ps, TOPO, "guest_gpu", 1, write=True)
        ps, _ = dma_engine_run(ps, TOPO, "guest_gpu")
        assert ps.transfers[x].status is TransferStatus.IOMMU_FAULT
    assert ps.iommu_faults == 2
    faults = findings_of(ps, FindingKind.IOMMU_FAULT)
    assert len(faults) == 1 and not faults[0].violation
    assert no_dma_violation(ps)


def test_unmap_fast_leaves_a_stale_iotlb_entry_until_sync() -> None:
    """iommu_unmap_fast: the IOTLB still translates until iommu_iotlb_sync."""
    ps, dom = iommufd_setup()
    ps, count = iommu_unmap_fast(ps, dom, 0, 1)
    assert count == 1
    assert iommu_iova_to_phys(ps, dom, 0) is None
    stale = iommu_lookup(ps, dom, 0)
    assert stale is not None and stale.stale
    assert iova_alloc(ps, dom, 1) == 4  # the IOVA is not handed out before the flush
    ps, x = dma_submit_iova(ps, TOPO, "guest_gpu", 0)
    ps, _ = dma_engine_run(ps, TOPO, "guest_gpu")
    assert ps.transfers[x].status is TransferStatus.DONE
    assert [f.kind for f in ps.findings] == [FindingKind.DMA_AFTER_UNMAP]
    ps = iommu_iotlb_sync(ps, dom)
    assert iommu_lookup(ps, dom, 0) is None and iova_alloc(ps, dom, 1) == 0


def test_attach_moves_the_device_to_another_domain() -> None:
    """A device's DMA is translated by the domain it is attached to now."""
    ps, dom = iommufd_setup()
    ps, ret = iommu_attach_device(ps, TOPO, TOPO.fn("guest_gpu"), "guest_gpu")
    assert ret == 0 and ps.functions[TOPO.fn("guest_gpu")].domain != dom
    ps, x = dma_submit_iova(ps, TOPO, "guest_gpu", 0)
    ps, _ = dma_engine_run(ps, TOPO, "guest_gpu")
    assert ps.transfers[x].status is TransferStatus.IOMMU_FAULT


def test_platform_without_iommu_has_no_paging_domains() -> None:
    """Without an IOMMU, DMA is untranslated and a paging domain cannot be attached."""
    topo = Topology.simple(["a"], iommu=False)
    ps = platform_init(topo)
    assert ps.domains == () and ps.functions[0].domain == -1
    ps, dom = iommu_domain_alloc(ps)
    assert iommu_attach_device(ps, topo, dom, "a")[1] == -errno.ENODEV
