"""merged-2026: the revoke series as merged for v7.1 (the default design).

How the seed thread was settled (core-semantics §7 "Resolution"): move_notify renamed to
invalidate_mappings and made optional, dma_buf_attach_revocable for exporters that must revoke
in bounded time, CONFIG_DMABUF_MOVE_NOTIFY gone, vfio-pci waiting for fences and unmaps and
accepting pinned importers that are revocable (drivers.md §0, §1.2, §1.3). Today's behaviour:
every switch is the one the rest of the model was written against.
"""

from __future__ import annotations

from dmabuf_model.designs.base import Design
from dmabuf_model.kernel.dma_buf import MAINLINE_POLICY

MERGED_2026 = Design(
    name="merged-2026",
    title="merged 2026 (v7.1)",
    summary=(
        "invalidate_mappings (optional) reaches pinned importers too; VFIO refuses importers "
        "that are not dma_buf_attach_revocable, waits for fences and unmaps, and unrevokes"
    ),
    core=MAINLINE_POLICY,
    callback_name="invalidate_mappings",
    vfio_attach_requires_revocable=True,
    vfio_pin_op=None,
    vfio_revoke_waits=True,
    invalidate_contract=True,
    legacy_pinned_stub_callback=False,
    cites=("core-semantics §7", "drivers.md §0", "drivers.md §1.2", "drivers.md §1.3"),
)
"""The merged design: exactly the model's mainline behaviour."""

__all__ = ["MERGED_2026"]
