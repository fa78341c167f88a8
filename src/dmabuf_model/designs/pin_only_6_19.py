"""pin-only-6.19: the kernel before the revoke series, in its two 6.19 variants.

Before the series (drivers.md §1.2, §1.8, §3.1; core-semantics §3, §5.3, §7) dma-buf offered pin
and move only. The callback was still move_notify and required at dynamic attach; vfio-pci
revoked with lock, revoked = true, dma_buf_move_notify, unlock, and waited for nothing; the
legacy pinned RDMA importer carried a stub move_notify that only logged and kept its mapping.

Two variants of vfio-pci:

- accept-at-attach (v6.19 as first merged, torvalds 06fddc7a): attach checks only peer2peer and
  revoked, so the legacy pinned RDMA importer is accepted; an FLR "invalidates" it in name
  only, the NIC keeps its mapping and DMAs into the BAR after the reset (dma_after_reset).
- refuse-at-pin (the 6.19-rc fix, torvalds 1f97d9dc): a pin op that always returns
  -EOPNOTSUPP, so every importer that calls dma_buf_pin is refused there.

Both assume CONFIG_DMABUF_MOVE_NOTIFY=y: CorePolicy.pin_on_map_for_dynamic models =n, which
would also pin dynamic importers on map (core-semantics §5.18); the table does not use it.
"""

from __future__ import annotations

from dmabuf_model.designs.base import Design
from dmabuf_model.kernel.dma_buf import CorePolicy

_CORE_6_19 = CorePolicy(dynamic_attach_requires_callback=True)

PIN_ONLY_6_19 = Design(
    name="pin-only-6.19",
    title="pin only, 6.19 (accept at attach)",
    summary=(
        "move_notify; VFIO attach checks only peer2peer and revoked, revokes without waiting; "
        "legacy pinned RDMA has a stub move_notify that keeps its mapping"
    ),
    core=_CORE_6_19,
    callback_name="move_notify",
    vfio_attach_requires_revocable=False,
    vfio_pin_op=None,
    vfio_revoke_waits=False,
    invalidate_contract=False,
    legacy_pinned_stub_callback=True,
    iommufd_pins=False,
    variant="accept-at-attach",
    cites=("drivers.md §1.2", "drivers.md §1.8", "drivers.md §3.1", "core-semantics §3"),
)
"""v6.19 as first merged: pinned importers accepted at attach (the bug the series fixed)."""

PIN_ONLY_6_19_RC = Design(
    name="pin-only-6.19-rc",
    title="pin only, 6.19-rc fix (refuse at pin)",
    summary=(
        "as pin-only-6.19, but VFIO has a pin op that always fails: every importer that "
        "calls dma_buf_pin is refused with -EOPNOTSUPP"
    ),
    core=_CORE_6_19,
    callback_name="move_notify",
    vfio_attach_requires_revocable=False,
    vfio_pin_op="always_eopnotsupp",
    vfio_revoke_waits=False,
    invalidate_contract=False,
    legacy_pinned_stub_callback=True,
    iommufd_pins=False,
    variant="refuse-at-pin",
    cites=("drivers.md §1.2", "drivers.md §1.8", "drivers.md §3.1", "core-semantics §3"),
)
"""The 6.19-rc fix: a pin op that always returns -EOPNOTSUPP."""

VARIANTS: dict[str, Design] = {
    "accept-at-attach": PIN_ONLY_6_19,
    "refuse-at-pin": PIN_ONLY_6_19_RC,
}
"""The two 6.19 variants by variant name (scenario key ``design_variant``)."""

__all__ = ["PIN_ONLY_6_19", "PIN_ONLY_6_19_RC", "VARIANTS"]
