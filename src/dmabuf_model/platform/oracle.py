"""oracle: judges every device access against what the memory it reaches has become.

The hardware view of core-semantics §5.8, §6.5 and §10 #22: after invalidation an importer may
still read until it unmaps but must not write; once a revoke completes no mapping of the range
may be live; and no DMA may land in memory that was reused, reset or unplugged since the
address was handed out. drivers/pci/p2pdma.c's provider-lifetime rules (drivers.md §6) say the
same for P2P BARs.

DOC: finding kinds (a kind is a violation unless said otherwise)

* ``dma_after_reuse`` - the access reached memory whose generation ended by FREED or
  REASSIGNED: someone else's data now.
* ``dma_after_reset`` - the function behind the BAR was reset (FLR, bus reset, D3 to D0).
* ``dma_after_unplug`` - the function was removed in an orderly way: its drivers had the
  chance to revoke first (drivers.md §6 "before remove()").
* ``dma_after_surprise_unplug`` - NOT a violation: the function vanished under a live
  mapping; nothing can prevent these accesses, they get Unsupported Requests, and they only
  become harmful once the window is reused (then ``dma_after_reuse``).
* ``ur_access`` - the BAR's function had memory decode off or was in D3hot/D3cold: an
  Unsupported Request, and on many platforms an AER error. Counted as a violation: revoking on
  memory-disable and D3 exists to stop exactly these (drivers.md §1.4).
* ``dma_after_revoke`` - the range was revoked (the exporter declared completion) and a
  device still reached it.
* ``dma_after_unmap`` - a device reached memory through an address whose mapping was
  unmapped (a bus address kept after unmap, or an IOTLB entry not yet flushed).
* ``stray_dma`` - the IOVA the device used now translates to memory of another mapping, or
  the device has no translation at all for an IOVA.
* ``write_after_invalidate`` - a write was started through a mapping after it was
  invalidated; reads stay allowed until unmap (core-semantics §6.5).
* ``revoke_with_live_mapping`` - a revoke was declared complete while a mapping (or an IOMMU
  entry, live or stale) still reached the range (core-semantics §10 #22).
* ``iommu_fault`` - NOT a violation: the IOMMU refused an IOVA whose entry was removed. Safe;
  counted in ``PlatformState.iommu_faults``.

Findings are deduplicated and kept sorted so that equal histories give equal states.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from dmabuf_model.kernel.state import replace, tuple_set
from dmabuf_model.platform.memory import GenCause
from dmabuf_model.platform.pci import pci_memory_decoding
from dmabuf_model.platform.topology import RangeKind, Topology

if TYPE_CHECKING:
    from dmabuf_model.platform.state import PlatformState


class FindingKind(StrEnum):
    """What the oracle found; the value is the name used in reports and properties."""

    DMA_AFTER_REUSE = "dma_after_reuse"
    DMA_AFTER_RESET = "dma_after_reset"
    DMA_AFTER_UNPLUG = "dma_after_unplug"
    DMA_AFTER_SURPRISE_UNPLUG = "dma_after_surprise_unplug"
    UR_ACCESS = "ur_access"
    DMA_AFTER_REVOKE = "dma_after_revoke"
    DMA_AFTER_UNMAP = "dma_after_unmap"
    STRAY_DMA = "stray_dma"
    WRITE_AFTER_INVALIDATE = "write_after_invalidate"
    REVOKE_WITH_LIVE_MAPPING = "revoke_with_live_mapping"
    IOMMU_FAULT = "iommu_fault"


SAFE_KINDS: frozenset[FindingKind] = frozenset(
    {FindingKind.IOMMU_FAULT, FindingKind.DMA_AFTER_SURPRISE_UNPLUG}
)
"""Kinds that are recorded and counted but are not violations."""

VIOLATION_KINDS: frozenset[FindingKind] = frozenset(FindingKind) - SAFE_KINDS
"""Kinds that are property violations."""

_CAUSE_KIND: dict[GenCause, FindingKind] = {
    GenCause.FREED: FindingKind.DMA_AFTER_REUSE,
    GenCause.REASSIGNED: FindingKind.DMA_AFTER_REUSE,
    GenCause.RESET: FindingKind.DMA_AFTER_RESET,
    GenCause.UNPLUGGED: FindingKind.DMA_AFTER_UNPLUG,
    GenCause.SURPRISE_UNPLUGGED: FindingKind.DMA_AFTER_SURPRISE_UNPLUG,
}
_CAUSE_ORDER: tuple[GenCause, ...] = tuple(GenCause)


@dataclass(frozen=True, slots=True, order=True)
class Finding:
    """One thing the oracle found: its kind, the device that did it, the range, and how.

    ``device`` is the PCI function that made the access (for a revoke: the importer device
    that still held the mapping, or ``domainN`` for a raw IOMMU entry); ``range`` is the
    range's name ("" when nothing was reached).
    """

    kind: FindingKind
    device: str
    range: str
    detail: str

    @property
    def violation(self) -> bool:
        """True unless the kind is safe (iommu_fault, dma_after_surprise_unplug)."""
        return self.kind not in SAFE_KINDS

    def __str__(self) -> str:
        where = f" {self.range}" if self.range else ""
        return f"{self.kind}: {self.device}{where}: {self.detail}"


def record_finding(ps: PlatformState, finding: Finding) -> PlatformState:
    """record_finding - add ``finding`` once; the tuple stays sorted. IOMMU faults are counted.

    Spec: core-semantics §5.8, §6.5, §10 #22.
    """
    if finding.kind is FindingKind.IOMMU_FAULT:
        ps = ps.evolve(iommu_faults=ps.iommu_faults + 1)
    if finding in ps.findings:
        return ps
    return ps.evolve(findings=tuple(sorted((*ps.findings, finding))))


def check_reach(
    ps: PlatformState, topo: Topology, range_id: int, gen: int
) -> tuple[FindingKind | None, str, bool]:
    """check_reach - judge an access that reaches ``range_id`` expecting generation ``gen``.

    Returns the finding kind (None when the memory is what the address was given for), a
    short reason, and whether the access completes (False: Unsupported Request, nobody
    decodes the address). Precedence: a changed generation (worst cause first), a free RAM
    region, a BAR not decoding, a revoked range.
    Spec: core-semantics §5.8, §6.5, §10 #22.
    """
    r = ps.ranges[range_id]
    info = topo.ranges[range_id]
    completes = True
    if info.kind is RangeKind.PCI_BAR:
        completes = pci_memory_decoding(ps, info.owner)
    if r.gen != gen:
        ended = r.history[gen:]
        cause = next(c for c in _CAUSE_ORDER if c in ended)
        reason = f"generation {gen} is now {r.gen} ({', '.join(str(c) for c in ended)})"
        return _CAUSE_KIND[cause], reason, completes
    if not r.allocated:
        return FindingKind.DMA_AFTER_REUSE, "RAM region is free", completes
    if not completes:
        f = ps.functions[info.owner]
        why = "memory decode off" if not f.mem_enable else f"function in {f.power_state}"
        return FindingKind.UR_ACCESS, why, False
    if r.revoked:
        return FindingKind.DMA_AFTER_REVOKE, "range is revoked", True
    return None, "", True


def oracle_revoke_complete(ps: PlatformState, topo: Topology, range_id: int) -> PlatformState:
    """oracle_revoke_complete - an exporter declares the revoke of ``range_id`` complete.

    Drivers call it where the kernel's revoke returns (VFIO: after the wait for every unmap,
    drivers.md §1.3 step 5). Every DMA-API mapping of the range that is not unmapped, and
    every raw or stale IOMMU entry still pointing into it, is a ``revoke_with_live_mapping``
    finding (core-semantics §10 #22). The range is then marked revoked: any later access that
    reaches it is ``dma_after_revoke``, until oracle_unrevoke.
    """
    name = topo.ranges[range_id].name
    for mid, m in enumerate(ps.mappings):
        if m.range == range_id and m.live:
            detail = f"mapping {mid} ({m.path}, {m.state}) still live"
            ps = record_finding(
                ps, Finding(FindingKind.REVOKE_WITH_LIVE_MAPPING, m.dev, name, detail)
            )
    for did, d in enumerate(ps.domains):
        for p in d.ptes:
            if p.range == range_id and (p.mapping < 0 or p.stale):
                what = "stale IOTLB entry" if p.stale else "IOMMU entry"
                detail = f"{what} iova {p.iova} -> page {p.page} still present"
                ps = record_finding(
                    ps, Finding(FindingKind.REVOKE_WITH_LIVE_MAPPING, f"domain{did}", name, detail)
                )
    r = ps.ranges[range_id]
    if r.revoked:
        return ps
    return ps.evolve(ranges=tuple_set(ps.ranges, range_id, replace(r, revoked=True)))


def oracle_unrevoke(ps: PlatformState, topo: Topology, range_id: int) -> PlatformState:
    """oracle_unrevoke - the exporter allows access to ``range_id`` again (VFIO unrevoke).

    Spec: core-semantics §5.8, §6.5, §10 #22.
    """
    del topo
    r = ps.ranges[range_id]
    if not r.revoked:
        return ps
    return ps.evolve(ranges=tuple_set(ps.ranges, range_id, replace(r, revoked=False)))


def violations(ps: PlatformState) -> tuple[Finding, ...]:
    """violations - the findings that are property violations, in sorted order.

    Spec: core-semantics §5.8, §6.5, §10 #22.
    """
    return tuple(f for f in ps.findings if f.violation)


def no_dma_violation(ps: PlatformState) -> bool:
    """no_dma_violation - the property: the oracle found nothing but safe faults.

    Spec: core-semantics §5.8, §6.5, §10 #22.
    """
    return all(not f.violation for f in ps.findings)


def findings_of(ps: PlatformState, kind: FindingKind | str) -> tuple[Finding, ...]:
    """findings_of - the findings of one kind (a FindingKind or its name).

    Spec: core-semantics §5.8, §6.5, §10 #22.
    """
    k = FindingKind(kind)
    return tuple(f for f in ps.findings if f.kind is k)


def has_finding(ps: PlatformState, kind: FindingKind | str) -> bool:
    """has_finding - true when at least one finding of ``kind`` was recorded.

    Spec: core-semantics §5.8, §6.5, §10 #22.
    """
    return bool(findings_of(ps, kind))


__all__ = [
    "SAFE_KINDS",
    "VIOLATION_KINDS",
    "Finding",
    "FindingKind",
    "check_reach",
    "findings_of",
    "has_finding",
    "no_dma_violation",
    "oracle_revoke_complete",
    "oracle_unrevoke",
    "record_finding",
    "violations",
]
