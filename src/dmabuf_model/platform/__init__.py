"""platform: the machine under the kernel - memory, PCI, IOMMU, DMA engines and the oracle.

The hardware and drivers/pci, drivers/iommu as the DMA-buf model needs them (drivers.md §1.4,
§2, §6): memory ranges whose generation changes when freed, reset, reassigned or unplugged;
PCI functions with BARs, memory decode, D-states, resets and hot-unplug; a static topology
from which pci_p2pdma_distance and the P2P map type follow; IOMMU domains; one DMA engine per
function; and an oracle that judges every device access (core-semantics §5.8, §6.5, §10 #22).

The platform does not import the kernel model (only kernel.errno and kernel.state's
tuple_set): it is the hardware. Its state is one PlatformState value; the static machine is a
Topology kept outside the state. No platform function takes a model lock: they are hardware,
or PCI/IOMMU core calls whose own locking is not modelled; drivers call them inside the locks
their kernel code holds (VFIO: memory_lock, then the dma_buf's resv). Kernel errors are
returned as negative errno values; a call that makes no sense for the model (unmapping twice,
an unknown name) raises ValueError. A quick start::

    topo = Topology.simple(["vfio0", "mlx5_0"], switch=True, non_pci=["iommufd"])
    ps = platform_init(topo)
    ps, m = dma_map_phys(ps, topo, "mlx5_0", topo.bar("vfio0"))
    ps, _ = pci_reset_function(ps, topo, "vfio0")
    ps, x = dma_submit(ps, topo, "mlx5_0", m, write=True)
    ps, _ = dma_engine_run(ps, topo, "mlx5_0")
    assert findings_of(ps, "dma_after_reset")
"""

from dmabuf_model.platform.dma import (
    DmaMapping,
    DmaPath,
    DmaTransfer,
    MappingState,
    TransferStatus,
    dma_engine_abort,
    dma_engine_pending,
    dma_engine_run,
    dma_map_phys,
    dma_mapping_invalidate,
    dma_submit,
    dma_submit_iova,
    dma_unmap_phys,
)
from dmabuf_model.platform.iommu import (
    IommuDomain,
    IoPte,
    iommu_attach_device,
    iommu_detach_device,
    iommu_domain_alloc,
    iommu_flush_iotlb_all,
    iommu_iotlb_sync,
    iommu_iova_to_phys,
    iommu_lookup,
    iommu_map,
    iommu_unmap,
    iommu_unmap_fast,
    iova_alloc,
)
from dmabuf_model.platform.memory import GenCause, MemRange, ram_alloc, ram_free, range_gen
from dmabuf_model.platform.oracle import (
    SAFE_KINDS,
    VIOLATION_KINDS,
    Finding,
    FindingKind,
    findings_of,
    has_finding,
    no_dma_violation,
    oracle_revoke_complete,
    oracle_unrevoke,
    violations,
)
from dmabuf_model.platform.pci import (
    PciFunctionState,
    PciPowerState,
    pci_hot_add,
    pci_memory_decoding,
    pci_reassign_resource,
    pci_remove_bus_device,
    pci_reset_bus,
    pci_reset_function,
    pci_set_power_state,
    pci_surprise_removal,
    pci_write_command_memory,
    pcie_flr,
)
from dmabuf_model.platform.state import PlatformState, format_platform, platform_init
from dmabuf_model.platform.topology import (
    Device,
    HostBridge,
    HostBridgeAllow,
    MemRangeInfo,
    PciBridge,
    PciFunction,
    PciP2pdmaMapType,
    PciPortType,
    RamRegion,
    RangeKind,
    Topology,
    pci_p2pdma_distance,
    pci_p2pdma_distance_many,
    pci_p2pdma_map_type,
)

__all__ = [
    "SAFE_KINDS",
    "VIOLATION_KINDS",
    "Device",
    "DmaMapping",
    "DmaPath",
    "DmaTransfer",
    "Finding",
    "FindingKind",
    "GenCause",
    "HostBridge",
    "HostBridgeAllow",
    "IoPte",
    "IommuDomain",
    "MappingState",
    "MemRange",
    "MemRangeInfo",
    "PciBridge",
    "PciFunction",
    "PciFunctionState",
    "PciP2pdmaMapType",
    "PciPortType",
    "PciPowerState",
    "PlatformState",
    "RamRegion",
    "RangeKind",
    "Topology",
    "TransferStatus",
    "dma_engine_abort",
    "dma_engine_pending",
    "dma_engine_run",
    "dma_map_phys",
    "dma_mapping_invalidate",
    "dma_submit",
    "dma_submit_iova",
    "dma_unmap_phys",
    "findings_of",
    "format_platform",
    "has_finding",
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
    "no_dma_violation",
    "oracle_revoke_complete",
    "oracle_unrevoke",
    "pci_hot_add",
    "pci_memory_decoding",
    "pci_p2pdma_distance",
    "pci_p2pdma_distance_many",
    "pci_p2pdma_map_type",
    "pci_reassign_resource",
    "pci_remove_bus_device",
    "pci_reset_bus",
    "pci_reset_function",
    "pci_set_power_state",
    "pci_surprise_removal",
    "pci_write_command_memory",
    "pcie_flr",
    "platform_init",
    "ram_alloc",
    "ram_free",
    "range_gen",
    "violations",
]
