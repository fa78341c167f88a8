"""Models of the real Linux drivers that export and import dma-bufs (drivers.md §1-§5).

``EXPORTERS`` and ``IMPORTERS`` map the identifiers scenario files and the matrix use
("vfio-pci", "rdma-odp", ...) to "module:Class"; ``exporter_class``/``importer_class`` load them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dmabuf_model.drivers.base import Exporter, Importer

EXPORTERS: dict[str, str] = {
    "vfio-pci": "vfio_pci:VfioPciExporter",
    "amdgpu": "amdgpu:AmdgpuExporter",
    "xe": "xe:XeExporter",
    "system-heap": "system_heap:SystemHeapExporter",
    "udmabuf": "udmabuf:UdmabufExporter",
}
IMPORTERS: dict[str, str] = {
    "iommufd": "iommufd:IommufdImporter",
    "rdma-odp": "rdma_umem:RdmaOdpImporter",
    "rdma-pinned": "rdma_umem:RdmaPinnedImporter",
    "rdma-pinned-revocable": "rdma_umem:RdmaPinnedRevocableImporter",
    "amdgpu": "amdgpu:AmdgpuImporter",
    "xe": "xe:XeImporter",
    "static": "static_importer:StaticImporter",
}


def _load(spec: str) -> type:
    module, cls = spec.split(":")
    return getattr(importlib.import_module(f"dmabuf_model.drivers.{module}"), cls)  # type: ignore[no-any-return]


def exporter_class(kind: str) -> type[Exporter]:
    """exporter_class - the Exporter subclass named by a scenario identifier."""
    return _load(EXPORTERS[kind])


def importer_class(kind: str) -> type[Importer]:
    """importer_class - the Importer subclass named by a scenario identifier."""
    return _load(IMPORTERS[kind])
