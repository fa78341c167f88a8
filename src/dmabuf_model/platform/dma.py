"""dma: DMA mappings handed to importers, and one DMA engine per PCI function.

The DMA API side (kernel/dma/mapping.c: dma_map_phys, dma_unmap_phys, and the P2P choice made
by dma_buf_phys_vec_to_sgt, drivers.md §6) and the devices that then use the addresses.

DOC: mappings and transfers

A mapping records what a device was given: which device, through which path (BUS_ADDR: the
untranslated bus or physical address; IOVA: an address in an IOMMU domain), which range and
pages, the range's generation at map time, and whether it is LIVE, INVALIDATED (the importer
was told by invalidate_mappings; it may still read, not write, core-semantics §5.8) or
UNMAPPED. Mapping ids are never reused.

A transfer is one page read or written by a device. It is started with dma_submit (through a
mapping) or dma_submit_iova (a raw IOVA, as a guest-programmed device uses one), stays PENDING
on the device's engine, and dma_engine_run performs the oldest one: only then does the access
reach memory and get judged by the oracle. A write started through an INVALIDATED mapping is
judged when it is started (write_after_invalidate); a write already in flight when the
invalidation came is covered by its fence, which the exporter waits for (§5.8 step 4). The
fence is an opaque id the driver layer signals once the transfer is no longer PENDING.
"""

from __future__ import annotations

from enum import IntEnum
from typing import TYPE_CHECKING

from dmabuf_model.kernel import errno
from dmabuf_model.kernel.state import record, tuple_set
from dmabuf_model.platform.iommu import _map_ptes, _unmap, iommu_lookup, iova_alloc
from dmabuf_model.platform.memory import range_gen
from dmabuf_model.platform.oracle import Finding, FindingKind, check_reach, record_finding
from dmabuf_model.platform.pci import PciPowerState
from dmabuf_model.platform.topology import PciP2pdmaMapType, RangeKind, Topology

if TYPE_CHECKING:
    from dmabuf_model.platform.state import PlatformState


class DmaPath(IntEnum):
    """How a device's address reaches memory (``str()`` gives the lowercase name)."""

    BUS_ADDR = 0
    """Untranslated: a PCI bus address (P2P MAP_BUS_ADDR) or dma-direct's physical address."""
    IOVA = 1
    """Through an IOMMU domain (P2P MAP_THRU_HOST_BRIDGE, or RAM behind an IOMMU)."""

    def __str__(self) -> str:
        return self.name.lower()


class MappingState(IntEnum):
    """Where a mapping is in its life (core-semantics §5.8, §6.5)."""

    LIVE = 0
    INVALIDATED = 1
    UNMAPPED = 2

    def __str__(self) -> str:
        return self.name.lower()


@record
class DmaMapping:
    """An address range handed to importer device ``dev`` (one sg entry's worth).

    ``gen`` is the range's generation at map time; ``domain``/``iova`` are set for the IOVA
    path only.
    """

    dev: str
    range: int
    first: int
    npages: int
    gen: int
    path: DmaPath
    domain: int = -1
    iova: int = -1
    state: MappingState = MappingState.LIVE

    @property
    def live(self) -> bool:
        """True until unmapped (an invalidated mapping still allows reads, §6.5)."""
        return self.state is not MappingState.UNMAPPED

    def with_state(self, state: MappingState) -> DmaMapping:
        """A copy in ``state`` (cheaper than dataclasses.replace on the hot path)."""
        return DmaMapping(
            self.dev,
            self.range,
            self.first,
            self.npages,
            self.gen,
            self.path,
            self.domain,
            self.iova,
            state,
        )


class TransferStatus(IntEnum):
    """What became of a transfer."""

    PENDING = 0
    DONE = 1
    IOMMU_FAULT = 2
    UNSUPPORTED_REQUEST = 3
    ABORTED = 4

    def __str__(self) -> str:
        return self.name.lower()


@record
class DmaTransfer:
    """One page access by the engine of PCI function ``dev``.

    ``mapping`` is the mapping used (-1 for a raw IOVA), ``page`` the page within the mapping
    or the raw IOVA page; ``fence`` is the driver's opaque fence id, or None.
    """

    dev: str
    mapping: int
    page: int
    write: bool
    fence: int | None = None
    status: TransferStatus = TransferStatus.PENDING

    def with_status(self, status: TransferStatus) -> DmaTransfer:
        """A copy with ``status`` (cheaper than dataclasses.replace on the hot path)."""
        return DmaTransfer(self.dev, self.mapping, self.page, self.write, self.fence, status)


def _mapping_path(ps: PlatformState, topo: Topology, fn: int, range_id: int) -> DmaPath | None:
    info = topo.ranges[range_id]
    has_domain = ps.functions[fn].domain >= 0
    if info.kind is RangeKind.SYSTEM_RAM:
        return DmaPath.IOVA if has_domain else DmaPath.BUS_ADDR
    provider = topo.functions[info.owner].name
    map_type = topo.calc_map_type_and_dist(provider, topo.functions[fn].name)[0]
    if map_type is PciP2pdmaMapType.NOT_SUPPORTED:
        return None
    if map_type is PciP2pdmaMapType.THRU_HOST_BRIDGE and has_domain:
        return DmaPath.IOVA
    return DmaPath.BUS_ADDR


def dma_map_phys(
    ps: PlatformState,
    topo: Topology,
    dev: str,
    range_id: int,
    first: int = 0,
    npages: int | None = None,
) -> tuple[PlatformState, int]:
    """dma_map_phys - map pages of ``range_id`` for DMA by device ``dev``; the mapping id.

    The per-range step of dma_map_sgtable / dma_buf_phys_vec_to_sgt (drivers.md §6): RAM goes
    through the device's IOMMU domain if it has one, else untranslated; a BAR follows the P2P
    map type: BUS_ADDR uses the bus address, THRU_HOST_BRIDGE an IOVA in the device's domain
    (untranslated without one). The caller holds whatever lock its exporter requires (VFIO:
    the dma_buf's resv). Returns the mapping id, or -EINVAL when ``dev`` is not a PCI function
    (iommufd's misc device) or P2P is NOT_SUPPORTED, or the pages are out of range; -ENODEV
    when ``dev`` was removed.
    """
    n = topo.ranges[range_id].pages - first if npages is None else npages
    if n <= 0 or first < 0 or first + n > topo.ranges[range_id].pages:
        return ps, -errno.EINVAL
    if not topo.is_pci(dev):
        return ps, -errno.EINVAL
    fn = topo.fn(dev)
    if not ps.functions[fn].present:
        return ps, -errno.ENODEV
    path = _mapping_path(ps, topo, fn, range_id)
    if path is None:
        return ps, -errno.EINVAL
    mid = len(ps.mappings)
    gen = range_gen(ps, range_id)
    if path is DmaPath.BUS_ADDR:
        m = DmaMapping(dev, range_id, first, n, gen, path)
    else:
        domain = ps.functions[fn].domain
        iova = iova_alloc(ps, domain, n)
        ps, ret = _map_ptes(ps, domain, iova, range_id, first, n, mid)
        if ret:
            return ps, ret
        m = DmaMapping(dev, range_id, first, n, gen, path, domain, iova)
    return ps.evolve(mappings=(*ps.mappings, m)), mid


def dma_unmap_phys(ps: PlatformState, mapping: int) -> PlatformState:
    """dma_unmap_phys - undo ``mapping``; for an IOVA, unmap and flush its IOMMU entries.

    Strict mode: when it returns the device can no longer reach the pages through an IOVA (a
    bus address, of course, still reaches the BAR: using it is the importer's bug). Unmapping
    twice is a bug in the calling model (ValueError).
    Spec: drivers.md §6; core-semantics §5.8, §6.5.
    """
    m = ps.mappings[mapping]
    if m.state is MappingState.UNMAPPED:
        raise ValueError(f"dma_unmap_phys: mapping {mapping} is already unmapped")
    if m.path is DmaPath.IOVA:
        ps, _ = _unmap(ps, m.domain, m.iova, m.npages, sync=True)
    new = m.with_state(MappingState.UNMAPPED)
    return ps.evolve(mappings=tuple_set(ps.mappings, mapping, new))


def dma_mapping_invalidate(ps: PlatformState, mapping: int) -> PlatformState:
    """dma_mapping_invalidate - ``mapping`` has been invalidated (invalidate_mappings ran).

    The oracle's view of core-semantics §5.8: from now on the importer may still read through
    it (speculatively) but must not start writes. An importer's invalidate_mappings callback
    (or the exporter, on its behalf) calls it for each mapping of the attachment. No effect on
    an unmapped mapping.
    """
    m = ps.mappings[mapping]
    if m.state is not MappingState.LIVE:
        return ps
    new = m.with_state(MappingState.INVALIDATED)
    return ps.evolve(mappings=tuple_set(ps.mappings, mapping, new))


def _issue(
    ps: PlatformState, topo: Topology, dev: str, xfer: DmaTransfer
) -> tuple[PlatformState, int]:
    f = ps.functions[topo.fn(dev)]
    if not f.present or f.power_state >= PciPowerState.D3hot:
        return ps, -errno.ENODEV
    return ps.evolve(transfers=(*ps.transfers, xfer)), len(ps.transfers)


def _range_name(topo: Topology, range_id: int) -> str:
    return topo.ranges[range_id].name if range_id >= 0 else ""


def dma_submit(
    ps: PlatformState,
    topo: Topology,
    dev: str,
    mapping: int,
    *,
    page: int = 0,
    write: bool = False,
    fence: int | None = None,
) -> tuple[PlatformState, int]:
    """dma_submit - queue a read or write of ``page`` of ``mapping`` on ``dev``'s engine.

    ``dev`` is the PCI function that masters the DMA (a non-PCI device such as an ib_device
    is given as its PCI parent). A write through an INVALIDATED mapping is recorded as
    ``write_after_invalidate`` here, when it is started (core-semantics §6.5). Returns the
    transfer id, or -ENODEV if the function is removed or in D3hot/D3cold (it cannot master).
    No lock: this is hardware.
    """
    m = ps.mappings[mapping]
    if not 0 <= page < m.npages:
        raise ValueError(f"dma_submit: page {page} outside mapping {mapping} ({m.npages} pages)")
    ps, xid = _issue(ps, topo, dev, DmaTransfer(dev, mapping, page, write, fence))
    if xid >= 0 and write and m.state is MappingState.INVALIDATED:
        detail = f"write started through invalidated mapping {mapping}"
        finding = Finding(
            FindingKind.WRITE_AFTER_INVALIDATE, dev, _range_name(topo, m.range), detail
        )
        ps = record_finding(ps, finding)
    return ps, xid


def dma_submit_iova(
    ps: PlatformState,
    topo: Topology,
    dev: str,
    iova: int,
    *,
    write: bool = False,
    fence: int | None = None,
) -> tuple[PlatformState, int]:
    """dma_submit_iova - queue an access of IOVA page ``iova`` by ``dev``, no mapping given.

    How a device programmed by a guest or by user space uses the IOVAs iommufd mapped: what it
    reaches is whatever the device's domain translates at execution time. A write through an
    entry of an INVALIDATED DMA-API mapping is ``write_after_invalidate``. Returns the
    transfer id, or -ENODEV if the function is removed or in D3hot/D3cold.
    Spec: drivers.md §6; core-semantics §5.8, §6.5.
    """
    ps, xid = _issue(ps, topo, dev, DmaTransfer(dev, -1, iova, write, fence))
    domain = ps.functions[topo.fn(dev)].domain
    if xid >= 0 and write and domain >= 0:
        pte = iommu_lookup(ps, domain, iova)
        if pte is not None and pte.mapping >= 0:
            m = ps.mappings[pte.mapping]
            if m.state is MappingState.INVALIDATED:
                detail = f"write started at iova {iova} of invalidated mapping {pte.mapping}"
                finding = Finding(
                    FindingKind.WRITE_AFTER_INVALIDATE, dev, _range_name(topo, m.range), detail
                )
                ps = record_finding(ps, finding)
    return ps, xid


def dma_engine_pending(ps: PlatformState, dev: str) -> tuple[int, ...]:
    """dma_engine_pending - the ids of ``dev``'s PENDING transfers, oldest first.

    Spec: drivers.md §6; core-semantics §5.8, §6.5.
    """
    return tuple(
        i for i, t in enumerate(ps.transfers) if t.dev == dev and t.status is TransferStatus.PENDING
    )


def dma_engine_abort(ps: PlatformState, topo: Topology, dev: str) -> PlatformState:
    """dma_engine_abort - every PENDING transfer of ``dev`` is ABORTED (reset, D3, removal).

    Called by the PCI events; an aborted transfer never reaches memory.
    Spec: drivers.md §6; core-semantics §5.8, §6.5.
    """
    del topo
    pending = dma_engine_pending(ps, dev)
    if not pending:
        return ps
    transfers = ps.transfers
    for i in pending:
        transfers = tuple_set(transfers, i, transfers[i].with_status(TransferStatus.ABORTED))
    return ps.evolve(transfers=transfers)


def _finish(ps: PlatformState, xid: int, status: TransferStatus) -> PlatformState:
    t = ps.transfers[xid].with_status(status)
    return ps.evolve(transfers=tuple_set(ps.transfers, xid, t))


def _execute(ps: PlatformState, topo: Topology, xid: int) -> PlatformState:
    t = ps.transfers[xid]
    op = "write" if t.write else "read"
    fn = topo.fn(t.dev)
    m = ps.mappings[t.mapping] if t.mapping >= 0 else None
    via = f"mapping {t.mapping}" if m is not None else f"iova {t.page}"
    unmapped = m is not None and m.state is MappingState.UNMAPPED
    if m is not None and m.path is DmaPath.BUS_ADDR:
        range_id, page, gen = m.range, m.first + t.page, m.gen
    else:
        domain = ps.functions[fn].domain
        iova = (m.iova + t.page) if m is not None else t.page
        where = _range_name(topo, m.range) if m is not None else ""
        if domain < 0:
            detail = f"{op} via {via}: iova {iova} used without an IOMMU domain"
            ps = record_finding(ps, Finding(FindingKind.STRAY_DMA, t.dev, where, detail))
            return _finish(ps, xid, TransferStatus.DONE)
        pte = iommu_lookup(ps, domain, iova)
        if pte is None:
            detail = f"{op} via {via}: iova {iova} not mapped in domain {domain}"
            ps = record_finding(ps, Finding(FindingKind.IOMMU_FAULT, t.dev, where, detail))
            return _finish(ps, xid, TransferStatus.IOMMU_FAULT)
        range_id, page, gen = pte.range, pte.page, pte.gen
        if m is not None and pte.mapping != t.mapping:
            detail = f"{op} via {via}: iova {iova} now belongs to mapping {pte.mapping}"
            name = _range_name(topo, range_id)
            ps = record_finding(ps, Finding(FindingKind.STRAY_DMA, t.dev, name, detail))
            _, _, completes = check_reach(ps, topo, range_id, gen)
            status = TransferStatus.DONE if completes else TransferStatus.UNSUPPORTED_REQUEST
            return _finish(ps, xid, status)
        unmapped = unmapped or pte.stale
    name = _range_name(topo, range_id)
    kind, reason, completes = check_reach(ps, topo, range_id, gen)
    if kind is None and unmapped:
        kind, reason = FindingKind.DMA_AFTER_UNMAP, "mapping was unmapped"
    if kind is not None:
        detail = f"{op} via {via} page {page}: {reason}"
        ps = record_finding(ps, Finding(kind, t.dev, name, detail))
    return _finish(
        ps, xid, TransferStatus.DONE if completes else TransferStatus.UNSUPPORTED_REQUEST
    )


def dma_engine_run(ps: PlatformState, topo: Topology, dev: str) -> tuple[PlatformState, int]:
    """dma_engine_run - ``dev``'s engine performs its oldest PENDING transfer.

    The access is resolved (bus address, or the IOVA in the device's current domain) and
    judged by the oracle; the transfer ends DONE, IOMMU_FAULT or UNSUPPORTED_REQUEST. Returns
    the transfer id, or -1 if nothing is pending (the step is then not enabled). The driver
    layer signals the transfer's fence afterwards.
    Spec: drivers.md §6; core-semantics §5.8, §6.5.
    """
    pending = dma_engine_pending(ps, dev)
    if not pending:
        return ps, -1
    return _execute(ps, topo, pending[0]), pending[0]


__all__ = [
    "DmaMapping",
    "DmaPath",
    "DmaTransfer",
    "MappingState",
    "TransferStatus",
    "dma_engine_abort",
    "dma_engine_pending",
    "dma_engine_run",
    "dma_map_phys",
    "dma_mapping_invalidate",
    "dma_submit",
    "dma_submit_iova",
    "dma_unmap_phys",
]
