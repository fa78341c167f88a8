"""Design: the seed thread's alternatives as a record of policy switches the code consults.

The revoke debate of January 2026 (core-semantics §7) had three shapes: the merged resolution,
Leon's original revoke-v1 proposal and the 6.19 kernel before either. A Design names, switch by
switch, where the dma-buf core (drivers/dma-buf/dma-buf.c), vfio-pci and RDMA umem behave
differently in each, so that one model runs all three instead of three forks of the code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from dmabuf_model.kernel.dma_buf import CorePolicy

VfioPinOp = Literal["always_eopnotsupp"] | None
"""vfio-pci's pin op: None (no op: dma_buf_pin is a core no-op), or the 6.19-rc fix's op that
always fails with -EOPNOTSUPP (drivers.md §1.2)."""


@dataclass(frozen=True)
class Design:
    """Design - one variant of the revoke design, as the switches the code consults.

    ``name`` is the identifier scenario files and ``--design`` use; ``title`` and ``summary``
    are for tables. The switches:

    - ``core``: what the dma-buf core does differently (kernel/dma_buf.py CorePolicy, stored on
      each buffer at export: the pre-v7 callback requirement, pin-on-map for dynamic importers,
      revoke-v1's negotiated revoke mode and one-way core revoked state).
    - ``callback_name``: the importer callback's name in trace text, "invalidate_mappings"
      (v7.1 on) or "move_notify" (before the rename, core-semantics §3, §7 item 1).
    - ``vfio_attach_requires_revocable``: vfio-pci's attach refuses importers that cannot be
      revoked: dma_buf_attach_revocable (v7), or revoke-v1's revoke mode (drivers.md §1.2, §1.8).
    - ``vfio_pin_op``: see VfioPinOp (drivers.md §1.2 "pin / unpin").
    - ``vfio_revoke_waits``: vfio_pci_dma_buf_move waits for the BOOKKEEP fences and then for
      every unmap before the reset goes on ("vfio: Wait for dma-buf invalidation to complete",
      v7; drivers.md §1.3). Without it (6.19) the revoke is lock, revoked, notify, unlock, and
      VFIO never declares a revoke complete to the access oracle.
    - ``invalidate_contract``: the v7 kdoc of dma_buf_invalidate_mappings (core-semantics §5.8):
      once told, an importer may read until it unmaps but not write. VFIO then marks the device
      mappings of revocable attachments invalidated for the oracle; before v7 no such contract
      existed for pinned importers.
    - ``legacy_pinned_stub_callback``: the legacy pinned RDMA importer carries the pre-v7 stub
      move_notify that only logs (ibdev_warn_ratelimited) and keeps its mapping (drivers.md
      §3.1; removed by v7 patch 5).
    - ``variant``: the variant's name inside a family ("accept-at-attach", "refuse-at-pin").
    - ``inference``: the design is a reconstruction, not code that was merged (revoke-v1).
    """

    name: str
    title: str
    summary: str
    core: CorePolicy
    callback_name: Literal["invalidate_mappings", "move_notify"]
    vfio_attach_requires_revocable: bool
    vfio_pin_op: VfioPinOp
    vfio_revoke_waits: bool
    invalidate_contract: bool
    legacy_pinned_stub_callback: bool
    iommufd_pins: bool = True
    """iommufd calls dma_buf_pin in MAP_FILE: only since v7 ("iommufd: Add dma_buf_pin()",
    drivers.md §2, core-semantics §7 item 7)."""
    variant: str = ""
    inference: bool = False
    cites: tuple[str, ...] = ()

    @property
    def notify_fn(self) -> str:
        """The exporter-side call's name in traces: dma_buf_invalidate_mappings or
        dma_buf_move_notify (core-semantics §5.8: "known as dma_buf_move_notify until v7.1")."""
        return (
            "dma_buf_move_notify"
            if self.callback_name == "move_notify"
            else ("dma_buf_invalidate_mappings")
        )

    @property
    def core_revoked_state(self) -> bool:
        """revoke-v1: exporters kill the buffer with dma_buf_revoke (one way)."""
        return self.core.core_revoked_state

    @property
    def revoke_mode_negotiated(self) -> bool:
        """revoke-v1: the revoke attachment mode (dma_buf_attachment_is_revoke)."""
        return self.core.revoke_mode_negotiated

    @property
    def dynamic_attach_requires_callback(self) -> bool:
        """Before v7: importer ops without the callback are WARN + -EINVAL at attach."""
        return self.core.dynamic_attach_requires_callback

    @property
    def pin_on_map_for_dynamic(self) -> bool:
        """CONFIG_DMABUF_MOVE_NOTIFY=n before v7: dynamic attachments are pinned on map."""
        return self.core.pin_on_map_for_dynamic

    def switches(self) -> dict[str, object]:
        """switches - every policy switch by name, for tables and JSON."""
        return {
            "callback_name": self.callback_name,
            "core_revoked_state": self.core_revoked_state,
            "revoke_mode_negotiated": self.revoke_mode_negotiated,
            "dynamic_attach_requires_callback": self.dynamic_attach_requires_callback,
            "pin_on_map_for_dynamic": self.pin_on_map_for_dynamic,
            "vfio_attach_requires_revocable": self.vfio_attach_requires_revocable,
            "vfio_pin_op": self.vfio_pin_op,
            "vfio_revoke_waits": self.vfio_revoke_waits,
            "invalidate_contract": self.invalidate_contract,
            "legacy_pinned_stub_callback": self.legacy_pinned_stub_callback,
            "iommufd_pins": self.iommufd_pins,
        }


__all__ = ["Design", "VfioPinOp"]
