"""revoke-v1: Leon's original proposal of 11 Jan 2026, reconstructed [inference].

"dma-buf: add revoke mechanism to invalidate shared buffers" v1 (core-semantics §7, the seed
thread): a core "revoked" state on the dma_buf that an exporter sets with one call, one way and
for the rest of the buffer's life; once set, map, vmap and mmap fail in the core. Jason
described it as a negotiated attachment mode between pin and move: it behaves as pinned until
the one terminal revoke (drivers.md §1.8 row "pinned + invalidate").

The reconstruction keeps everything else the 2026 kernel has (the rename, the optional callback,
VFIO's waits), so that the column differs from merged-2026 by exactly the two ideas:

- dma_buf_revoke (kernel/dma_buf.py): under the resv, set the core revoked state and invalidate;
  vfio-pci calls it instead of dma_buf_invalidate_mappings, keeps its own flag for attach, and
  can never undo the core state: after an FLR the buffer stays dead and no importer maps again.
- dma_buf_attachment_is_revoke (the name v2 of the series used): an importer that offers the
  callback is put in revoke mode at attach, and vfio-pci refuses the others.
"""

from __future__ import annotations

from dmabuf_model.designs.base import Design
from dmabuf_model.kernel.dma_buf import CorePolicy

REVOKE_V1 = Design(
    name="revoke-v1",
    title="revoke v1 (proposal) [inference]",
    summary=(
        "one-way core revoked state set by dma_buf_revoke (map, vmap, mmap fail with -ENODEV "
        "for good) and a negotiated revoke attachment mode"
    ),
    core=CorePolicy(revoke_mode_negotiated=True, core_revoked_state=True),
    callback_name="invalidate_mappings",
    vfio_attach_requires_revocable=True,
    vfio_pin_op=None,
    vfio_revoke_waits=True,
    invalidate_contract=True,
    legacy_pinned_stub_callback=False,
    inference=True,
    cites=("core-semantics §7", "seed: revoke-thread-2026-01-12"),
)
"""The revoke-v1 proposal [inference]: a one-way core revoke and a revoke attachment mode."""

__all__ = ["REVOKE_V1"]
