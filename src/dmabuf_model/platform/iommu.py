"""iommu: IOMMU domains with IOVA page tables and an IOTLB (drivers/iommu/iommu.c).

iommufd maps a VFIO BAR straight into the domains of an IOAS and unmaps it when revoked
(drivers.md §2); the DMA API maps through a device's default domain when P2P must go through
the host bridge (§6). A device access through an IOVA that is not mapped faults in the IOMMU,
which is safe: nothing is reached.

Each page-table entry remembers the range, page and range generation it points at, and which
DMA-API mapping created it (-1 for a raw iommu_map, e.g. iommufd's). iommu_unmap clears entries
and flushes the IOTLB; iommu_unmap_fast clears them but leaves them ``stale`` (still cached in
the IOTLB, so the device can still reach the old page) until iommu_iotlb_sync. A stale entry
also keeps its IOVA from being handed out again, as the IOVA allocator's flush queue does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dmabuf_model.kernel import errno
from dmabuf_model.kernel.state import record, replace, tuple_set
from dmabuf_model.platform.memory import range_gen
from dmabuf_model.platform.topology import Topology

if TYPE_CHECKING:
    from dmabuf_model.platform.state import PlatformState

EEXIST = errno.EEXIST
"""The io-pgtable code returns -EEXIST for an IOVA already in use."""


@record
class IoPte:
    """One IOVA page of a domain: where it points and at which generation it was mapped."""

    iova: int
    range: int
    page: int
    gen: int
    mapping: int = -1
    stale: bool = False


@record
class IommuDomain:
    """struct iommu_domain: its entries, sorted by IOVA (live and stale alike)."""

    ptes: tuple[IoPte, ...] = ()


def _set_domain(ps: PlatformState, domain: int, d: IommuDomain) -> PlatformState:
    return ps.evolve(domains=tuple_set(ps.domains, domain, d))


def iommu_lookup(ps: PlatformState, domain: int, iova: int) -> IoPte | None:
    """iommu_lookup - the entry (live or stale in the IOTLB) that translates ``iova``, or None.

    What the hardware uses for a device access; a stale entry still translates.
    Spec: drivers.md §2.1-§2.2 (iommu_map/iommu_unmap by iommufd), §6 (IOVA for THRU_HOST_BRIDGE).
    """
    for pte in ps.domains[domain].ptes:
        if pte.iova == iova:
            return pte
    return None


def iommu_iova_to_phys(ps: PlatformState, domain: int, iova: int) -> tuple[int, int] | None:
    """iommu_iova_to_phys - the (range, page) a live entry maps ``iova`` to, or None.

    Reads the page table only: stale IOTLB entries are not seen, as in the kernel.
    Spec: drivers.md §2.1-§2.2 (iommu_map/iommu_unmap by iommufd), §6 (IOVA for THRU_HOST_BRIDGE).
    """
    pte = iommu_lookup(ps, domain, iova)
    if pte is None or pte.stale:
        return None
    return pte.range, pte.page


def iova_alloc(ps: PlatformState, domain: int, npages: int) -> int:
    """iova_alloc - the lowest IOVA page with ``npages`` free pages after it in ``domain``.

    Lowest-first means a freed IOVA is reused by the next mapping, which is what makes a stale
    device address dangerous. Not a kernel name: alloc_iova_fast / iopt allocation.
    Spec: drivers.md §2.1-§2.2 (iommu_map/iommu_unmap by iommufd), §6 (IOVA for THRU_HOST_BRIDGE).
    """
    used = sorted(p.iova for p in ps.domains[domain].ptes)
    start = 0
    for u in used:
        if u >= start + npages:
            break
        if u >= start:
            start = u + 1
    return start


def iommu_domain_alloc(ps: PlatformState) -> tuple[PlatformState, int]:
    """iommu_domain_alloc - a new empty paging domain; returns its id.

    Spec: drivers.md §2.1-§2.2 (iommu_map/iommu_unmap by iommufd), §6 (IOVA for THRU_HOST_BRIDGE).
    """
    return ps.evolve(domains=(*ps.domains, IommuDomain())), len(ps.domains)


def iommu_attach_device(
    ps: PlatformState, topo: Topology, domain: int, dev: str
) -> tuple[PlatformState, int]:
    """iommu_attach_device - make ``domain`` translate the DMA of PCI function ``dev``.

    ``domain`` -1 attaches no translation (an identity domain). Returns 0, or -ENODEV when
    the platform has no IOMMU and a paging domain is asked for.
    Spec: drivers.md §2.1-§2.2 (iommu_map/iommu_unmap by iommufd), §6 (IOVA for THRU_HOST_BRIDGE).
    """
    i = topo.fn(dev)
    if domain >= 0 and not topo.iommu:
        return ps, -errno.ENODEV
    if not -1 <= domain < len(ps.domains):
        raise ValueError(f"iommu_attach_device: no domain {domain}")
    f = ps.functions[i]
    return ps.evolve(functions=tuple_set(ps.functions, i, replace(f, domain=domain))), 0


def iommu_detach_device(ps: PlatformState, topo: Topology, dev: str) -> PlatformState:
    """iommu_detach_device - ``dev`` goes back to its default DMA domain.

    The default domain of function index i is domain i when the platform has an IOMMU.
    Spec: drivers.md §2.1-§2.2 (iommu_map/iommu_unmap by iommufd), §6 (IOVA for THRU_HOST_BRIDGE).
    """
    i = topo.fn(dev)
    ps, _ = iommu_attach_device(ps, topo, i if topo.iommu else -1, dev)
    return ps


def _map_ptes(
    ps: PlatformState,
    domain: int,
    iova: int,
    range_id: int,
    first: int,
    npages: int,
    mapping: int,
) -> tuple[PlatformState, int]:
    d = ps.domains[domain]
    wanted = range(iova, iova + npages)
    if any(p.iova in wanted for p in d.ptes):
        return ps, -EEXIST
    gen = range_gen(ps, range_id)
    new = tuple(IoPte(iova + k, range_id, first + k, gen, mapping) for k in range(npages))
    ptes = tuple(sorted((*d.ptes, *new), key=lambda p: p.iova))
    return _set_domain(ps, domain, IommuDomain(ptes)), 0


def iommu_map(
    ps: PlatformState,
    topo: Topology,
    domain: int,
    iova: int,
    range_id: int,
    first: int,
    npages: int,
) -> tuple[PlatformState, int]:
    """iommu_map - map ``npages`` pages of range ``range_id`` from ``first`` at ``iova``.

    A raw mapping (no DMA-API record): iommufd's way of mapping a VFIO BAR into every domain
    of an IOAS (drivers.md §2.1 step 5). The entries record the range's current generation.
    Returns 0, -EINVAL for an empty or out-of-range request, -EEXIST if an IOVA is in use.
    """
    if npages <= 0 or first < 0 or first + npages > topo.ranges[range_id].pages or iova < 0:
        return ps, -errno.EINVAL
    return _map_ptes(ps, domain, iova, range_id, first, npages, -1)


def _unmap(
    ps: PlatformState, domain: int, iova: int, npages: int, *, sync: bool
) -> tuple[PlatformState, int]:
    d = ps.domains[domain]
    wanted = range(iova, iova + npages)
    count = 0
    ptes: list[IoPte] = []
    for p in d.ptes:
        if p.iova in wanted and not p.stale:
            count += 1
            if not sync:
                ptes.append(replace(p, stale=True))
        else:
            ptes.append(p)
    return _set_domain(ps, domain, IommuDomain(tuple(ptes))), count


def iommu_unmap(
    ps: PlatformState, domain: int, iova: int, npages: int
) -> tuple[PlatformState, int]:
    """iommu_unmap - unmap ``npages`` IOVA pages from ``iova`` and flush the IOTLB for them.

    Synchronous: when it returns, the device can no longer reach those pages and a later
    access faults (iopt_revoke_notify relies on this, drivers.md §2.2). Returns the number of
    pages unmapped (the kernel returns the size); pages that were not mapped are skipped.
    """
    return _unmap(ps, domain, iova, npages, sync=True)


def iommu_unmap_fast(
    ps: PlatformState, domain: int, iova: int, npages: int
) -> tuple[PlatformState, int]:
    """iommu_unmap_fast - clear the entries but leave them in the IOTLB until a sync.

    Until iommu_iotlb_sync the device can still reach the old pages (and the oracle still
    counts the mapping as live for a revoke). Returns the number of pages unmapped.
    Spec: drivers.md §2.1-§2.2 (iommu_map/iommu_unmap by iommufd), §6 (IOVA for THRU_HOST_BRIDGE).
    """
    return _unmap(ps, domain, iova, npages, sync=False)


def iommu_iotlb_sync(ps: PlatformState, domain: int) -> PlatformState:
    """iommu_iotlb_sync - flush ``domain``'s IOTLB: stale entries stop translating.

    Spec: drivers.md §2.1-§2.2 (iommu_map/iommu_unmap by iommufd), §6 (IOVA for THRU_HOST_BRIDGE).
    """
    d = ps.domains[domain]
    if not any(p.stale for p in d.ptes):
        return ps
    return _set_domain(ps, domain, IommuDomain(tuple(p for p in d.ptes if not p.stale)))


def iommu_flush_iotlb_all(ps: PlatformState, domain: int) -> PlatformState:
    """iommu_flush_iotlb_all - same effect as iommu_iotlb_sync in this model.

    Spec: drivers.md §2.1-§2.2 (iommu_map/iommu_unmap by iommufd), §6 (IOVA for THRU_HOST_BRIDGE).
    """
    return iommu_iotlb_sync(ps, domain)


__all__ = [
    "IoPte",
    "IommuDomain",
    "iommu_attach_device",
    "iommu_detach_device",
    "iommu_domain_alloc",
    "iommu_flush_iotlb_all",
    "iommu_iotlb_sync",
    "iommu_iova_to_phys",
    "iommu_lookup",
    "iommu_map",
    "iommu_unmap",
    "iommu_unmap_fast",
    "iova_alloc",
]
