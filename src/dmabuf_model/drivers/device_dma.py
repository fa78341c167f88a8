"""device_dma: an importer's device doing DMA through the mappings of a dma-buf sg table.

Models the hardware side that the importers of drivers/dma-buf/dma-buf.c program with the DMA
addresses of an sg table (drivers.md §0, core-semantics §5.6, §6.5): every importer model needs
it, so the importers share these helpers instead of each keeping a copy.

DOC: device DMA helpers. ``device_dma_submit`` starts a transfer through a DmaMapping id handed
out in an sg table and spawns a thread that runs the device's DMA engine once and signals the
transfer's fence (``device_dma_engine``); ``dma_abort_mapping_transfers`` is a driver stopping
its hardware (pending transfers through the given mappings never reach memory);
``transfer_pending`` asks whether a transfer is still to run. Exporters build the tables with
``dma_map_sgtable`` and free them with ``dma_unmap_sgtable``. Convention: the entries of an
sg_table are platform DmaMapping ids (ints) made by the exporter's map_dma_buf with
dma_map_phys; entries that are not ints give the device nothing to access (``sgt_mappings``).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Any

from dmabuf_model.drivers.base import platform, set_platform
from dmabuf_model.kernel import errno
from dmabuf_model.kernel.dma_fence import dma_fence_put, dma_fence_set_error, dma_fence_signal
from dmabuf_model.kernel.state import KState, SgtId, replace
from dmabuf_model.platform.dma import (
    TransferStatus,
    dma_engine_run,
    dma_map_phys,
    dma_submit,
    dma_unmap_phys,
)
from dmabuf_model.platform.state import PlatformState
from dmabuf_model.platform.topology import Topology
from dmabuf_model.system.threads import Program, Thread, emit, emit_call, finish, program, spawn


def sgt_mappings(s: KState, sgt: SgtId) -> tuple[int, ...]:
    """sgt_mappings - the platform DmaMapping ids in the entries of sg_table ``sgt``.

    Not a kernel function: the device side of "the importer programs its hardware with the DMA
    addresses of the sg table" (core-semantics §5.6). Entries that are not ints (or are bools)
    are skipped: the importer then has nothing to DMA through.
    """
    return tuple(
        e for e in s.sg_tables[sgt].entries if isinstance(e, int) and not isinstance(e, bool)
    )


def dma_map_sgtable(
    ps: PlatformState, topo: Topology, dev: str, chunks: Iterable[tuple[int, int, int]]
) -> tuple[PlatformState, tuple[int, ...] | int]:
    """dma_map_sgtable - map each (range id, first page, pages) chunk for ``dev``; the entries.

    kernel/dma/mapping.c as the exporters' map_dma_buf use it: one platform dma_map_phys per
    chunk (through ``dev``'s IOMMU domain if it has one; a BAR follows the P2P map type). The
    sg entries are the DmaMapping ids. On error the chunks already mapped are unmapped and the
    error returned (-EINVAL: not a PCI function or no P2P path; -ENODEV: removed). The caller
    holds the dma_buf's resv. drivers.md §5.1, §5.2, §6.
    """
    mids: list[int] = []
    for range_id, first, npages in chunks:
        ps, mid = dma_map_phys(ps, topo, dev, range_id, first, npages)
        if mid < 0:
            for done in mids:
                ps = dma_unmap_phys(ps, done)
            return ps, mid
        mids.append(mid)
    return ps, tuple(mids)


def dma_unmap_sgtable(ps: PlatformState, entries: Iterable[Hashable]) -> PlatformState:
    """dma_unmap_sgtable - unmap every DmaMapping id among ``entries`` still mapped.

    The undo of dma_map_sgtable in unmap_dma_buf (resv held); entries already unmapped and
    entries that are not mapping ids are skipped. drivers.md §5.1, §5.2, §6.
    """
    for mid in entries:
        if isinstance(mid, int) and ps.mappings[mid].live:
            ps = dma_unmap_phys(ps, mid)
    return ps


def _engine_step(topo: Topology, dev: str) -> Any:
    def step(s: KState, t: Thread) -> KState:
        ps, xid = dma_engine_run(platform(s), topo, dev)
        s = set_platform(s, ps)
        if xid < 0:
            emit(f"{dev}: DMA engine idle (transfer aborted before it ran)")
            return finish(s, t, ret="idle")
        xfer = ps.transfers[xid]
        emit_call("dma_engine_run", dev, f"transfer{xid} {xfer.status}")
        if xfer.fence is not None:
            s = dma_fence_put(dma_fence_signal(s, xfer.fence), xfer.fence)
            emit_call("dma_fence_signal", f"fence{xfer.fence}")
        return finish(s, t, ret=str(xfer.status))

    return step


def device_dma_engine(topo: Topology, dev: str) -> Program:
    """device_dma_engine - the program of a thread that lets ``dev``'s DMA engine run once.

    Its one step performs the oldest PENDING transfer of ``dev`` (platform dma_engine_run, where
    the oracle judges the access), signals the transfer's fence, if it has one, and drops the
    reference the transfer held on it. A transfer
    aborted meanwhile leaves nothing to run: the thread ends ("idle"). Device DMA of drivers.md
    §0 / core-semantics §6.5; no lock (hardware).
    """
    return program(f"dma-engine {dev}", ("dma_engine_run", _engine_step(topo, dev)))


def device_dma_submit(
    s: KState,
    topo: Topology,
    dev: str,
    mapping: int,
    *,
    write: bool,
    fence: int | None = None,
    page: int = 0,
) -> tuple[KState, int]:
    """device_dma_submit - ``dev`` starts one access of ``page`` of ``mapping``; its engine
    thread is spawned.

    The platform's dma_submit (a write through an invalidated mapping is judged at once), then a
    thread running device_dma_engine, which performs the transfer later and signals ``fence``.
    The transfer takes over the caller's reference to ``fence`` (dropped when the transfer ends
    or is aborted; on failure the caller keeps it). No lock (hardware). Returns the transfer
    id, or -ENODEV when ``dev`` cannot master DMA (removed, D3). drivers.md §0 (device DMA goes
    through the platform).
    """
    ps, xid = dma_submit(platform(s), topo, dev, mapping, page=page, write=write, fence=fence)
    s = set_platform(s, ps)
    emit_call("dma_submit", f"{dev}, mapping{mapping}, {'write' if write else 'read'}", xid)
    if xid < 0:
        return s, xid
    s, _ = spawn(s, device_dma_engine(topo, dev), f"{dev} DMA engine")
    return s, xid


def transfer_pending(s: KState, xid: int) -> bool:
    """transfer_pending - transfer ``xid`` has not been performed or aborted yet."""
    return platform(s).transfers[xid].status is TransferStatus.PENDING


def dma_abort_mapping_transfers(s: KState, mappings: tuple[int, ...]) -> KState:
    """dma_abort_mapping_transfers - the driver stops its hardware using ``mappings``.

    Every PENDING transfer through one of ``mappings`` becomes ABORTED (it never reaches
    memory) and its fence, if any, signals with -ECANCELED (the transfer's reference dropped).
    Models a synchronous hardware stop: an RDMA MTT zap or key invalidation whose completion the
    driver waits for (drivers.md §3.1 "when the callback returns, the HW must no longer access
    the region"). No lock (hardware).
    """
    if not mappings:
        return s
    ps = platform(s)
    transfers = ps.transfers
    fences: list[int] = []
    for xid, xfer in enumerate(transfers):
        if xfer.status is TransferStatus.PENDING and xfer.mapping in mappings:
            transfers = (
                *transfers[:xid],
                replace(xfer, status=TransferStatus.ABORTED),
                *transfers[xid + 1 :],
            )
            if xfer.fence is not None:
                fences.append(xfer.fence)
            emit(f"abort transfer{xid} through mapping{xfer.mapping}")
    if transfers is ps.transfers:
        return s
    s = set_platform(s, ps.evolve(transfers=transfers))
    for f in fences:
        s = dma_fence_set_error(s, f, -errno.ECANCELED)
        s = dma_fence_put(dma_fence_signal(s, f), f)
    return s


__all__ = [
    "device_dma_engine",
    "device_dma_submit",
    "dma_abort_mapping_transfers",
    "dma_map_sgtable",
    "dma_unmap_sgtable",
    "sgt_mappings",
    "transfer_pending",
]
