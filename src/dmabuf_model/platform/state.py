"""state: the whole machine under the kernel as one immutable, hashable value.

The checker hashes and compares states millions of times (design.md "The state is a value"),
so PlatformState holds only what changes (ranges, functions, domains, mappings, transfers,
findings), as tuples of frozen records indexed by small ids; the static machine is the separate
Topology. The hash is computed once per value and cached.
"""

from __future__ import annotations

from typing import Any

from dmabuf_model.kernel.state import record, replace
from dmabuf_model.platform.dma import DmaMapping, DmaTransfer
from dmabuf_model.platform.iommu import IommuDomain
from dmabuf_model.platform.memory import MemRange
from dmabuf_model.platform.oracle import Finding
from dmabuf_model.platform.pci import PciFunctionState
from dmabuf_model.platform.topology import RangeKind, Topology


@record
class PlatformState:
    """Everything about the hardware that a step can change.

    ``ranges`` and ``functions`` are indexed like Topology.ranges and Topology.functions;
    ``domains`` by IOMMU domain id (domain i is function i's default DMA domain when the
    platform has an IOMMU); ``mappings`` and ``transfers`` by their ids, never reused.
    ``findings`` is the oracle's sorted, duplicate-free record; ``iommu_faults`` counts every
    IOMMU fault, repeated ones included.
    """

    ranges: tuple[MemRange, ...] = ()
    functions: tuple[PciFunctionState, ...] = ()
    domains: tuple[IommuDomain, ...] = ()
    mappings: tuple[DmaMapping, ...] = ()
    transfers: tuple[DmaTransfer, ...] = ()
    findings: tuple[Finding, ...] = ()
    iommu_faults: int = 0

    def evolve(self, **changes: Any) -> PlatformState:
        """PlatformState.evolve - a copy with the given fields replaced, the rest shared."""
        return replace(self, **changes)


def platform_init(topo: Topology) -> PlatformState:
    """platform_init - the machine at boot: RAM free, every function present, in D0, decoding.

    With an IOMMU each function gets its own default DMA domain (domain id = function index);
    without one DMA is untranslated.
    """
    ranges = tuple(
        MemRange(allocated=info.kind is not RangeKind.SYSTEM_RAM) for info in topo.ranges
    )
    n = len(topo.functions)
    functions = tuple(PciFunctionState(domain=i if topo.iommu else -1) for i in range(n))
    domains = tuple(IommuDomain() for _ in range(n)) if topo.iommu else ()
    return PlatformState(ranges=ranges, functions=functions, domains=domains)


def format_platform(ps: PlatformState, topo: Topology) -> list[str]:
    """format_platform - readable lines for a trace: what differs from boot, then findings."""
    lines: list[str] = []
    for info, r in zip(topo.ranges, ps.ranges, strict=True):
        flags = []
        if r.gen:
            flags.append(f"gen {r.gen} ({', '.join(str(c) for c in r.history)})")
        if info.kind is RangeKind.SYSTEM_RAM and r.allocated:
            flags.append("allocated")
        if r.revoked:
            flags.append("revoked")
        if flags:
            lines.append(f"{info.name}: {'; '.join(flags)}")
    for f, st in zip(topo.functions, ps.functions, strict=True):
        flags = []
        if not st.present:
            flags.append("removed")
        if not st.mem_enable:
            flags.append("memory decode off")
        if st.power_state:
            flags.append(str(st.power_state))
        if flags:
            lines.append(f"{f.name}: {'; '.join(flags)}")
    for mid, m in enumerate(ps.mappings):
        path = f"iova {m.iova} in domain {m.domain}" if m.domain >= 0 else str(m.path)
        lines.append(
            f"mapping {mid}: {m.dev} -> {topo.ranges[m.range].name} pages "
            f"{m.first}..{m.first + m.npages - 1} gen {m.gen} {path} {m.state}"
        )
    for xid, t in enumerate(ps.transfers):
        via = f"mapping {t.mapping} page {t.page}" if t.mapping >= 0 else f"iova {t.page}"
        op = "write" if t.write else "read"
        lines.append(f"transfer {xid}: {t.dev} {op} via {via} {t.status}")
    lines.extend(str(f) for f in ps.findings)
    if ps.iommu_faults:
        lines.append(f"iommu faults: {ps.iommu_faults}")
    return lines


__all__ = ["PlatformState", "format_platform", "platform_init"]
