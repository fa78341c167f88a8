"""RDMA umem under the designs: the legacy pinned mode's pre-v7 stub move_notify.

drivers.md §3.1 ("Pinned (legacy)": no invalidate since v7; before that a stub that only
warned), core-semantics §7 (the bug the series fixed: an exporter that revokes a pinned importer
does so in name only).
"""

from __future__ import annotations

import pytest
from designs_helpers import go, vfio_system

from dmabuf_model.drivers.base import platform
from dmabuf_model.drivers.rdma_umem import MrState, RdmaOdpImporter, RdmaPinnedImporter
from dmabuf_model.kernel.dma_buf import dma_buf_attach_revocable, live_mappings
from dmabuf_model.platform.dma import MappingState
from dmabuf_model.platform.oracle import FindingKind, findings_of
from dmabuf_model.system.threads import recording


@pytest.mark.parametrize("design", ["merged-2026", "revoke-v1"])
def test_since_v7_legacy_pinned_ops_have_no_callback(design: str) -> None:
    """drivers.md §3.1: v7 patch 5 removed the stub; the importer is not revocable."""
    _, _, rdma = vfio_system(design, RdmaPinnedImporter)
    ops = rdma.attach_ops()
    assert ops.allow_peer2peer and ops.invalidate_mappings is None


@pytest.mark.parametrize("design", ["pin-only-6.19", "pin-only-6.19-rc"])
def test_before_v7_legacy_pinned_ops_carry_the_stub(design: str) -> None:
    """drivers.md §3.1: the stub makes the attachment look revocable to the core."""
    _, _, rdma = vfio_system(design, RdmaPinnedImporter)
    ops = rdma.attach_ops()
    assert ops.invalidate_mappings == rdma.ib_umem_dmabuf_unsupported_move_notify


def test_the_stub_keeps_the_pin_the_mapping_and_the_key() -> None:
    """Under pin-only-6.19 an FLR calls the stub, which only logs: the MR stays ACTIVE with its
    MTT, the sg_table stays live, no kernel WARN is recorded (ibdev_warn_ratelimited is a
    device message), and the NIC's next write lands in the reset BAR (dma_after_reset)."""
    system, _, rdma = vfio_system("pin-only-6.19", RdmaPinnedImporter, dereg_budget=0)
    model = system.model()
    s, ret = go(model, model.init_states()[0], "rdma-pinned: ibv_reg_dmabuf_mr")
    assert ret == 0 and dma_buf_attach_revocable(s, 0)
    with recording() as lines:
        s, _ = go(model, s, "vfio-pci: VFIO_DEVICE_RESET")
    i = lines.index("dma_buf_move_notify(buf0)")
    assert lines[i + 1] == (
        "  -> ib_umem_dmabuf_unsupported_move_notify(attach0): ibdev_warn_ratelimited "
        "(pinned MR kept as it is)"
    )
    st = rdma.state(s)
    assert st.mr is MrState.ACTIVE and st.mtt == (0,) and st.pinned
    assert live_mappings(s, 0) == 1 and s.warnings == ()
    assert platform(s).mappings[0].state is MappingState.LIVE  # no v7 contract before v7
    s, ret = go(model, s, "rdma-pinned: NIC accesses the MR")
    assert ret == 0
    assert [f.kind for f in findings_of(platform(s), FindingKind.DMA_AFTER_RESET)] == [
        FindingKind.DMA_AFTER_RESET
    ]


@pytest.mark.parametrize("design", ["merged-2026", "pin-only-6.19"])
def test_odp_is_the_same_importer_in_every_design(design: str) -> None:
    """The dynamic mode zaps and unmaps in its callback whatever the design (drivers.md §3.3)."""
    system, _, rdma = vfio_system(design, RdmaOdpImporter, dereg_budget=0)
    model = system.model()
    s, _ = go(model, model.init_states()[0], "rdma-odp: ibv_reg_dmabuf_mr")
    s, _ = go(model, s, "rdma-odp: NIC accesses the MR")
    s, _ = go(model, s, "vfio-pci: VFIO_DEVICE_RESET")
    assert rdma.state(s).invalidations == 1 and live_mappings(s, 0) == 0
