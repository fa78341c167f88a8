"""vfio-pci under each design (drivers.md §1.2, §1.3, §1.8; core-semantics §7).

merged-2026: attach asks dma_buf_attach_revocable, revoke waits, unrevoke restores.
pin-only-6.19: attach checks peer2peer and revoked only; revoke is lock, revoked,
dma_buf_move_notify, unlock (no waits, nothing declared complete to the oracle); the -rc variant
has a pin op that always fails. revoke-v1 [inference]: dma_buf_revoke, whose core state no
unrevoke undoes, and revoke-mode negotiation at attach.
"""

from __future__ import annotations

import pytest
from designs_helpers import go, labels, vfio_system

from dmabuf_model.drivers.base import platform
from dmabuf_model.drivers.iommufd import IommufdImporter
from dmabuf_model.drivers.rdma_umem import MrState, RdmaOdpImporter, RdmaPinnedImporter
from dmabuf_model.drivers.vfio_pci import VfioDmaBufStatus, vfio_dma_buf
from dmabuf_model.kernel import errno
from dmabuf_model.kernel.dma_buf import (
    MAINLINE_POLICY,
    dma_buf_attach_revocable,
    dma_buf_attachment_is_revoke,
    dma_buf_is_dynamic,
)
from dmabuf_model.system.threads import recording


def test_merged_buffers_carry_the_mainline_policy_and_no_pin_op() -> None:
    """merged-2026 is today's vfio-pci: no pin op since v7 (drivers.md §1.2)."""
    system, _, _ = vfio_system("merged-2026")
    s = system.model().init_states()[0]
    assert s.bufs[0].policy is MAINLINE_POLICY and not dma_buf_is_dynamic(s, 0)


@pytest.mark.parametrize(
    ("design", "ret", "mr"),
    [
        ("merged-2026", -errno.EOPNOTSUPP, MrState.FAILED),
        ("revoke-v1", -errno.EOPNOTSUPP, MrState.FAILED),
        ("pin-only-6.19", 0, MrState.ACTIVE),
        ("pin-only-6.19-rc", -errno.EOPNOTSUPP, MrState.FAILED),
    ],
)
def test_legacy_pinned_rdma_registration_per_design(design: str, ret: int, mr: MrState) -> None:
    """drivers.md §1.8 row "pinned, no invalidate": -EOPNOTSUPP at attach since v7, at pin
    between the 6.19-rc fix and v7, accepted by the original 6.19 code."""
    system, _, rdma = vfio_system(design, RdmaPinnedImporter)
    model = system.model()
    with recording() as lines:
        s, got = go(model, model.init_states()[0], "rdma-pinned: ibv_reg_dmabuf_mr")
    assert got == ret and rdma.state(s).mr is mr
    refused = [line for line in lines if line.endswith("= -EOPNOTSUPP")]
    if design == "pin-only-6.19-rc":
        assert refused == ["dma_buf_pin(attach0) = -EOPNOTSUPP"]
    elif ret:
        assert refused[0].startswith("dma_buf_dynamic_attach(")


def test_6_19_rc_accepts_iommufd_which_did_not_pin_before_v7() -> None:
    """drivers.md §1.2: the -rc fix's pin op fails every importer that pins; iommufd only calls
    dma_buf_pin since v7 ("iommufd: Add dma_buf_pin()", §2.1 step 4), so it was accepted."""
    system, _, _ = vfio_system("pin-only-6.19-rc", IommufdImporter)
    model = system.model()
    s0 = model.init_states()[0]
    assert dma_buf_is_dynamic(s0, 0)
    with recording() as lines:
        _, ret = go(model, s0, "iommufd: IOMMU_IOAS_MAP_FILE")
    assert ret == 0
    assert not any(line.startswith("dma_buf_pin") for line in lines)


def test_6_19_revoke_has_no_waits_and_notifies_with_move_notify() -> None:
    """torvalds 06fddc7a vfio_pci_dma_buf_move: lock, revoked, dma_buf_move_notify, unlock;
    no BOOKKEEP wait and no wait for unmaps (those came with v7, drivers.md §1.3)."""
    system, _, _ = vfio_system("pin-only-6.19", RdmaOdpImporter)
    model = system.model()
    assert labels(model, "vfio-pci: VFIO_DEVICE_RESET") == [
        "down_write memory_lock",
        "vfio_pci_dma_buf_move(revoked=true): lock resv, revoke, move_notify, unlock",
        "pci_try_reset_function",
        "vfio_pci_dma_buf_move(revoked=false): lock resv, unrevoke, move_notify, unlock",
        "up_write memory_lock",
    ]
    with recording() as lines:
        s, ret = go(model, model.init_states()[0], "vfio-pci: VFIO_DEVICE_RESET")
    assert ret == 0 and lines.count("dma_buf_move_notify(buf0)") == 2
    assert not any("invalidate_mappings" in line or "wait" in line for line in lines)
    assert not any(line.startswith("oracle:") for line in lines)  # never declared complete
    d = vfio_dma_buf(s, 0)
    assert d is not None and d.status is VfioDmaBufStatus.OK and not d.drained and d.kref == 1


def test_merged_revoke_waits_and_declares_completion() -> None:
    """The same FLR under merged-2026 drains and re-arms (drivers.md §1.3 steps 1-6)."""
    system, _, _ = vfio_system("merged-2026", RdmaOdpImporter)
    model = system.model()
    names = labels(model, "vfio-pci: VFIO_DEVICE_RESET")
    assert "vfio_pci_dma_buf_move(revoked=true): wait BOOKKEEP fences, unlock resv" in names
    with recording() as lines:
        _, ret = go(model, model.init_states()[0], "vfio-pci: VFIO_DEVICE_RESET")
    assert ret == 0 and "dma_buf_invalidate_mappings(buf0)" in lines
    assert "oracle: revoke of vfio0.bar0 complete" in lines


def test_revoke_v1_flr_kills_the_buffer_for_good() -> None:
    """revoke-v1 [inference, core-semantics §7]: dma_buf_revoke at the FLR; VFIO clears its own
    flag afterwards, but the core state stays and map fails with -ENODEV."""
    system, _, rdma = vfio_system("revoke-v1", RdmaOdpImporter, dereg_budget=0)
    model = system.model()
    s, ret = go(model, model.init_states()[0], "rdma-odp: ibv_reg_dmabuf_mr")
    assert ret == 0 and dma_buf_attachment_is_revoke(s, 0)
    with recording() as lines:
        s, ret = go(model, s, "vfio-pci: VFIO_DEVICE_RESET")
    assert ret == 0 and "dma_buf_revoke(buf0)" in lines
    assert "vfio_pci dma-buf buf0: revoked = false (the dma_buf stays revoked)" in lines
    d = vfio_dma_buf(s, 0)
    assert d is not None and d.status is VfioDmaBufStatus.OK and s.bufs[0].revoked
    with recording() as lines:
        s, ret = go(model, s, "rdma-odp: NIC accesses the MR")
    assert "dma_buf_map_attachment(attach0, BIDIRECTIONAL) = -ENODEV" in lines
    assert rdma.state(s).access_errors == 1 and platform(s).findings == ()


def test_revoke_v1_refuses_attach_and_the_iommufd_private_map_after_the_revoke() -> None:
    """The one-way state reaches VFIO's own checks: attach and the private interconnect give
    -ENODEV after the FLR although VFIO's flag is clear (drivers.md §1.2, §2.1 step 4)."""
    system, _, _ = vfio_system("revoke-v1", IommufdImporter)
    model = system.model()
    s, _ = go(model, model.init_states()[0], "vfio-pci: VFIO_DEVICE_RESET")
    _, ret = go(model, s, "iommufd: IOMMU_IOAS_MAP_FILE")
    assert ret == -errno.ENODEV


def test_merged_maps_again_after_the_flr() -> None:
    """merged-2026: the ODP MR faults and maps again once VFIO unrevoked (drivers.md §3.3)."""
    system, _, rdma = vfio_system("merged-2026", RdmaOdpImporter, dereg_budget=0)
    model = system.model()
    s, _ = go(model, model.init_states()[0], "rdma-odp: ibv_reg_dmabuf_mr")
    s, _ = go(model, s, "vfio-pci: VFIO_DEVICE_RESET")
    s, ret = go(model, s, "rdma-odp: NIC accesses the MR")
    assert ret == 0 and rdma.state(s).accesses == 1 and rdma.state(s).sgt is not None


def test_revoke_v1_attach_requires_revoke_mode() -> None:
    """revoke-v1: an importer that did not negotiate revoke mode is -EOPNOTSUPP at attach,
    the analogue of dma_buf_attach_revocable under the merged design (§7, drivers.md §1.8)."""
    system, _, _ = vfio_system("revoke-v1", RdmaPinnedImporter)
    model = system.model()
    with recording() as lines:
        s, ret = go(model, model.init_states()[0], "rdma-pinned: ibv_reg_dmabuf_mr")
    assert ret == -errno.EOPNOTSUPP
    assert lines[1] == (
        "dma_buf_dynamic_attach(buf0, dev1, ib_umem_dmabuf_attach_pinned_ops[1]) = -EOPNOTSUPP"
    )
    assert not dma_buf_attach_revocable(s, 0) and not dma_buf_attachment_is_revoke(s, 0)
