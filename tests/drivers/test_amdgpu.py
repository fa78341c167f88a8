"""amdgpu as exporter (drivers.md §4.1) and importer (§4.3), and its cells of the §7 matrix.

Errno paths of amdgpu_dmabuf_ops, the move_notify rule (invalidate only when leaving a
non-SYSTEM placement), and a scripted end-to-end run for every exporter x importer pair amdgpu
takes part in. iommufd and RDMA importers are tiny stand-ins (test_ttm.StandInImporter) where
their modules are not in the tree.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from test_ttm import (
    BIDI,
    NIC,
    SYSTEM,
    TT,
    VRAM,
    StandInImporter,
    check_iommufd_rejected_after_a_pin,
    check_pinned_rdma_stays_in_vram,
    check_rdma_odp_is_movable,
    exhaustive,
    mixed_topology,
    resv_locked,
    rig,
)

from dmabuf_model.drivers.amdgpu import AmdgpuExporter, AmdgpuImporter
from dmabuf_model.drivers.base import DriverError, Importer, set_platform
from dmabuf_model.drivers.compose import DmaBufSystem
from dmabuf_model.drivers.rdma_umem import (
    RdmaOdpImporter,
    RdmaPinnedImporter,
    RdmaPinnedRevocableImporter,
)
from dmabuf_model.drivers.static_importer import StaticImporter
from dmabuf_model.drivers.system_heap import SystemHeapExporter
from dmabuf_model.drivers.ttm import TtmSgImporter
from dmabuf_model.drivers.udmabuf import UdmabufExporter
from dmabuf_model.drivers.vfio_pci import VfioPciExporter
from dmabuf_model.drivers.xe import XeExporter, XeImporter
from dmabuf_model.kernel import errno
from dmabuf_model.kernel.dma_buf import (
    DmaDataDirection,
    dma_buf_begin_cpu_access,
    dma_buf_map_attachment,
    dma_buf_vmap,
    dma_buf_vunmap,
)
from dmabuf_model.kernel.dma_resv import dma_resv_unlock
from dmabuf_model.kernel.state import Blocked, KState
from dmabuf_model.platform.dma import DmaPath, TransferStatus
from dmabuf_model.platform.pci import pci_remove_bus_device
from dmabuf_model.platform.topology import Topology
from dmabuf_model.system.threads import world

# ------------------------------------------------------------------------------------------------
# export (drivers.md §4.1)


@pytest.mark.parametrize("bo_kind", ["userptr", "always_valid"])
def test_export_of_a_userptr_or_always_valid_bo_is_eperm(bo_kind: str) -> None:
    """amdgpu_gem_prime_export refuses userptr and VM_ALWAYS_VALID BOs with -EPERM (§4.1)."""
    r = rig(AmdgpuExporter, exp_kw={"bo_kind": bo_kind})
    assert r.exp.state(r.s).export_ret == -errno.EPERM
    assert r.exp.buffers(r.s) == () and r.s.bufs == ()


def test_unknown_bo_kind_is_a_driver_error() -> None:
    """A misspelt option value is a configuration error naming the choices (§4.1 options)."""
    with pytest.raises(DriverError, match=r"bo_kind 'gart'; valid: normal, userptr"):
        rig(AmdgpuExporter, exp_kw={"bo_kind": "gart"})


# ------------------------------------------------------------------------------------------------
# attach: peer2peer (drivers.md §4.1, §6)


def test_attach_keeps_peer2peer_for_a_peer_below_the_same_switch() -> None:
    """pci_p2pdma_distance >= 0: peer2peer stays; attach never refuses (§4.1)."""
    r = rig(AmdgpuExporter, StandInImporter, imp_kw={"pin": False})
    assert r.s.attachments[0].peer2peer


@pytest.mark.parametrize(
    ("topo", "exp_kw", "dev"),
    [
        (Topology.simple(["gpu0", "gpu1"], no_p2p=True), {}, "gpu1"),
        (Topology.simple(["gpu0", "gpu1"]), {"gfx12_dcc": True}, "gpu1"),
        (Topology.simple(["gpu0"], non_pci=["iommufd"]), {}, "iommufd"),
    ],
    ids=["no-p2p-path", "gfx12-dcc", "non-pci-importer"],
)
def test_attach_clears_peer2peer(topo: Topology, exp_kw: dict[str, object], dev: str) -> None:
    """No P2P path (distance -1, always so for a non-PCI device) or a GFX12 DCC BO clears
    peer2peer; the attach still succeeds (§4.1)."""
    r = rig(
        AmdgpuExporter,
        StandInImporter,
        topo=topo,
        imp_dev=dev,
        exp_kw=exp_kw,
        imp_kw={"pin": False, "revocable": True},
    )
    rec = r.imp.state(r.s)
    assert rec.attach == 0 and not r.s.attachments[0].peer2peer


def test_xgmi_peer_keeps_peer2peer_without_a_pci_path_but_vram_map_warns_einval() -> None:
    """XGMI-reachable importers keep peer2peer; XGMI memory must not be DMA-mapped: WARN and
    -EINVAL from map_dma_buf in VRAM (§4.1)."""
    topo = Topology.simple(["gpu0", "gpu1"], no_p2p=True)
    r = rig(
        AmdgpuExporter,
        StandInImporter,
        topo=topo,
        exp_kw={"xgmi_hive": ("gpu1",)},
        imp_kw={"pin": False},
    )
    assert r.s.attachments[0].peer2peer
    assert r.imp.state(r.s).map_ret == -errno.EINVAL
    assert any("XGMI" in w.what for w in r.s.warnings)


def test_amdgpu_importer_in_the_exporters_xgmi_hive_is_not_modelled() -> None:
    """XGMI peers skip DMA mapping (§7); that importer path is not modelled."""
    with pytest.raises(DriverError, match="importing over XGMI"):
        rig(AmdgpuExporter, AmdgpuImporter, exp_kw={"xgmi_hive": ("gpu1",)})


# ------------------------------------------------------------------------------------------------
# pin (drivers.md §4.1, core-semantics §10 #20)


def test_pin_when_every_attachment_is_p2p_stays_in_vram() -> None:
    """VRAM is allowed when every attachment is P2P; the pin keeps the BO there (§4.2)."""
    r = rig(AmdgpuExporter, StandInImporter, imp_kw={"revocable": False})
    bo = r.exp.state(r.s).bo
    assert bo.pin_count == 1 and bo.placement is VRAM
    assert r.ps.mappings[0].path is DmaPath.BUS_ADDR
    assert r.ps.mappings[0].range == r.exp.vram_range


def test_pin_with_a_non_p2p_attachment_lands_in_gtt() -> None:
    """VRAM is removed from the domains when any attachment lacks peer2peer (§4.1)."""
    topo = Topology.simple(["gpu0", "gpu1"], no_p2p=True)
    r = rig(AmdgpuExporter, StandInImporter, topo=topo, imp_kw={"revocable": False})
    bo = r.exp.state(r.s).bo
    assert bo.pin_count == 1 and bo.placement is TT
    assert r.system.topology.ranges[r.ps.mappings[0].range].name == "ram0"
    assert r.ps.ranges[r.exp.vram_range].gen == 1  # the VRAM copy went back


def test_pin_of_a_vram_only_bo_for_a_non_p2p_importer_warns_einval() -> None:
    """No domain left: WARN and -EINVAL (§4.1)."""
    topo = Topology.simple(["gpu0", "gpu1"], no_p2p=True)
    r = rig(
        AmdgpuExporter,
        StandInImporter,
        topo=topo,
        exp_kw={"allowed_domains": ("VRAM",)},
        imp_kw={"revocable": False},
    )
    assert r.imp.state(r.s).pin_ret == -errno.EINVAL
    assert r.exp.state(r.s).bo.pin_count == 0
    assert any("no domain left" in w.what for w in r.s.warnings)


def test_second_pin_outside_the_pinned_domain_is_einval() -> None:
    """amdgpu_bo_pin of a BO pinned in VRAM with GTT-only domains is -EINVAL (§4.1)."""
    r = rig(
        AmdgpuExporter,
        StandInImporter,
        topo=mixed_topology(),
        imp_kw={"revocable": False},
        more=[(StandInImporter, "gpu2", {"name": "other", "revocable": False})],
    )
    assert r.exp.state(r.s).bo.placement is VRAM
    assert r.drivers[2].state(r.s).pin_ret == -errno.EINVAL
    assert r.exp.state(r.s).bo.pin_count == 1


# ------------------------------------------------------------------------------------------------
# map_dma_buf (drivers.md §4.1)


def test_map_for_a_non_p2p_importer_moves_the_bo_to_gtt() -> None:
    """Unpinned, not P2P: map_dma_buf validates into GTT and dma-maps RAM pages (§4.1)."""
    topo = Topology.simple(["gpu0", "gpu1"], no_p2p=True)
    r = rig(AmdgpuExporter, StandInImporter, topo=topo, imp_kw={"pin": False})
    assert r.exp.state(r.s).bo.placement is TT and r.imp.state(r.s).map_ret == 0
    assert r.ps.mappings[0].path is DmaPath.IOVA  # RAM through the importer's IOMMU domain


def test_map_in_gtt_fails_ebusy_when_the_dma_mapping_fails() -> None:
    """dma_map_sgtable failing (the importer device was removed) is -EBUSY (§4.1, §8)."""
    topo = Topology.simple(["gpu0", "gpu1"], no_p2p=True)
    r = rig(AmdgpuExporter, StandInImporter, topo=topo, imp_kw={"pin": False})
    s = set_platform(r.s, pci_remove_bus_device(r.ps, topo, "gpu1"))
    s = resv_locked(s)
    m = dma_buf_map_attachment(s, 0, 0, BIDI)
    assert not isinstance(m, Blocked) and m[1] == -errno.EBUSY


def test_map_of_a_bo_pinned_in_system_is_einval() -> None:
    """Other placements are -EINVAL (§4.1); reached here by a constructed state."""
    r = rig(AmdgpuExporter, StandInImporter, imp_kw={"pin": False})
    bo = replace(r.exp.state(r.s).bo, placement=SYSTEM, pin_count=1)
    s = resv_locked(r.exp._set_bo(r.s, bo))
    m = dma_buf_map_attachment(s, 0, 0, BIDI)
    assert not isinstance(m, Blocked) and m[1] == -errno.EINVAL


def test_map_fails_enomem_when_gtt_has_no_free_ram() -> None:
    """The validate error (-ENOMEM: no RAM for GTT) propagates from map_dma_buf (§4.1)."""
    topo = Topology.simple(["gpu0", "gpu1"], no_p2p=True, ram=0)
    r = rig(AmdgpuExporter, StandInImporter, topo=topo, imp_kw={"pin": False})
    assert r.imp.state(r.s).map_ret == -errno.ENOMEM
    assert r.exp.state(r.s).bo.placement is VRAM


# ------------------------------------------------------------------------------------------------
# begin_cpu_access, vmap (drivers.md §4.1)


def test_begin_cpu_access_for_reads_moves_an_unpinned_bo_to_gtt() -> None:
    """Reads move an unpinned BO to GTT; writes leave it (§4.1, core-semantics §5.10)."""
    r = rig(AmdgpuExporter)
    s, ret = _begin(r.s, DmaDataDirection.TO_DEVICE)
    assert ret == 0 and r.exp.state(s).bo.placement is VRAM
    s, ret = _begin(r.s, DmaDataDirection.FROM_DEVICE)
    assert ret == 0 and r.exp.state(s).bo.placement is TT and not s.warnings


def _begin(s: KState, d: DmaDataDirection) -> tuple[KState, int]:
    out = dma_buf_begin_cpu_access(s, 0, 0, d)
    assert not isinstance(out, Blocked)
    return out


def test_vmap_pins_the_bo_so_eviction_is_refused_until_vunmap() -> None:
    """vmap pins in GTT|VRAM while mapped (§4.1); a pinned BO is not moved (§10 #20)."""
    r = rig(AmdgpuExporter)
    s = resv_locked(r.s)
    s, cookie = dma_buf_vmap(s, 0, 0)
    assert cookie > 0 and r.exp.state(s).bo.pin_count == 1
    r.s = dma_resv_unlock(s, 0, 0)
    ev = r.fire("amdgpu: ttm_bo_evict")
    r.run(ev)
    assert r.ret(ev) == -errno.EBUSY
    s = dma_buf_vunmap(resv_locked(r.s), 0, 0, cookie)
    assert r.exp.state(s).bo.pin_count == 0


# ------------------------------------------------------------------------------------------------
# move_notify: only when leaving a non-SYSTEM placement (drivers.md §4.1)


def test_amdgpu_invalidates_when_leaving_vram_or_gtt_but_not_system() -> None:
    """amdgpu_bo_move_notify invalidates only when leaving a non-SYSTEM placement (§4.1)."""
    exp = rig(AmdgpuExporter).exp
    assert exp.invalidates_on_move(VRAM, TT) and exp.invalidates_on_move(TT, SYSTEM)
    assert not exp.invalidates_on_move(SYSTEM, TT) and not exp.invalidates_on_move(SYSTEM, VRAM)
    r = rig(
        AmdgpuExporter,
        StandInImporter,
        exp_kw={"evict_budget": 2},
        imp_kw={"pin": False},
        more=[(XeImporter, "gpu1", {"name": "xe"})],
    )
    r.run(r.fire("amdgpu: ttm_bo_evict"))
    r.run(r.fire("amdgpu: ttm_bo_evict"))
    assert r.exp.state(r.s).bo.placement is SYSTEM and r.imp.state(r.s).invalidations == 2
    r.run(r.fire("xe: xe_exec_ioctl"))  # validates SYSTEM -> VRAM: no invalidation
    assert r.exp.state(r.s).bo.placement is VRAM and r.imp.state(r.s).invalidations == 2


# ------------------------------------------------------------------------------------------------
# amdgpu exporter x each importer (drivers.md §7, amdgpu row), scripted end to end.


def test_amdgpu_to_iommufd_is_rejected_after_a_pin_in_gtt() -> None:
    """iommufd: attach and pin happen first (GTT: the misc device is not P2P), then the
    private map fails with -EOPNOTSUPP and everything is undone (§7, §2.1)."""
    check_iommufd_rejected_after_a_pin(AmdgpuExporter, pinned_in=TT)


def test_amdgpu_to_rdma_odp_is_movable() -> None:
    """RDMA ODP: the fault maps VRAM by P2P; a TTM move invalidates (zap + unmap); the next
    fault maps the new pages (§7)."""
    check_rdma_odp_is_movable(AmdgpuExporter)


@pytest.mark.parametrize(
    "importer", [RdmaPinnedImporter, RdmaPinnedRevocableImporter], ids=lambda c: c.kind
)
def test_amdgpu_to_pinned_rdma_is_pinned_in_vram_and_never_invalidated(
    importer: type[Importer],
) -> None:
    """RDMA pinned and pinned-revocable: pinned in VRAM (every attachment P2P); the eviction is
    refused, so the revoke is never triggered (§7)."""
    check_pinned_rdma_stays_in_vram(AmdgpuExporter, importer)


@pytest.mark.parametrize("importer", [AmdgpuImporter, XeImporter])
def test_amdgpu_to_gpu_importer_moves_and_maps_again(importer: type[TtmSgImporter]) -> None:
    """amdgpu or xe on another device: movable, P2P VRAM first, GTT after eviction (§7)."""
    r = rig(AmdgpuExporter, importer, imp_kw={"submit_budget": 2})
    name = r.imp.name
    r.run(r.fire(f"{name}: {importer.cs_name}"))
    ev = r.fire("amdgpu: ttm_bo_evict")
    r.settle()
    assert r.ret(ev) == 0
    r.run(r.fire(f"{name}: {importer.cs_name}"))
    r.settle()
    assert [t.status for t in r.ps.transfers] == [TransferStatus.DONE, TransferStatus.DONE]
    assert r.ps.mappings[0].range == r.exp.vram_range
    assert r.ps.mappings[1].range == r.exp.state(r.s).bo.pages != r.exp.vram_range
    assert r.findings() == [] and not r.s.warnings


def test_amdgpu_to_static_importer_pins_on_map_in_gtt() -> None:
    """A static importer: pin on map lands in GTT (peer2peer is false), the core waits for the
    KERNEL fences; the eviction is refused while it is pinned (§7 extra rows)."""
    topo = Topology.simple(["gpu0", "disp"])
    r = rig(AmdgpuExporter, StaticImporter, topo=topo, imp_dev="disp")
    job = r.fire("static: import job")
    for _ in range(3):
        r.step(job)
    assert r.s.attachments[0].map_pins == 1
    assert r.exp.state(r.s).bo.placement is TT and r.exp.state(r.s).bo.pin_count == 1
    ev = r.fire("amdgpu: ttm_bo_evict")
    r.run(ev)
    assert r.ret(ev) == -errno.EBUSY
    r.settle()
    assert r.exp.state(r.s).bo.pin_count == 0 and r.findings() == [] and not r.s.warnings


def test_amdgpu_exporter_with_a_static_importer_holds_every_property() -> None:
    """amdgpu x static (§7 extra row): pin on map against eviction; every property holds."""
    sysm = DmaBufSystem(Topology.simple(["gpu0", "disp"]))
    exp = sysm.add_exporter(AmdgpuExporter, device="gpu0")
    sysm.add_importer(StaticImporter, device="disp", source=exp)
    result = exhaustive(sysm)
    result.assert_properties()


# ------------------------------------------------------------------------------------------------
# amdgpu importer x each exporter (drivers.md §7, amdgpu column), scripted end to end.


def test_vfio_revoke_waits_for_the_amdgpu_job_and_a_submission_while_revoked_is_enodev() -> None:
    """vfio-pci x amdgpu: revocable. The revoke waits for the job fence (BOOKKEEP), the SG BO's
    unmap follows the job, and a submission while revoked fails with -ENODEV: no DMA (§7)."""
    topo = Topology.simple(["vfio0", "gpu1"])
    r = rig(
        VfioPciExporter,
        AmdgpuImporter,
        topo=topo,
        exp_dev="vfio0",
        exp_kw={"flr_budget": 0, "mem_disable_budget": 1},
        imp_kw={"submit_budget": 2},
    )
    r.run(r.fire("amdgpu: amdgpu_cs_ioctl"))
    off = r.fire("vfio-pci: PCI_COMMAND memory off")
    r.step(off)
    r.step(off)
    blocked = r.blocked(off)
    assert blocked is not None and blocked.on == "fence0"
    r.settle()
    assert world(r.s).threads[off].done and not r.s.sg_tables[0].live
    assert r.ps.transfers[0].status is TransferStatus.DONE
    sub = r.fire("amdgpu: amdgpu_cs_ioctl")
    r.run(sub)
    assert r.ret(sub) == -errno.ENODEV and len(r.ps.transfers) == 1
    assert r.findings() == [] and not r.s.warnings


@pytest.mark.parametrize("exporter", [SystemHeapExporter, UdmabufExporter])
def test_static_exporters_to_amdgpu_map_once_and_never_invalidate(exporter: type) -> None:
    """System heap and udmabuf x amdgpu: static, mapped on the first submission (§7)."""
    r = rig(
        exporter,
        AmdgpuImporter,
        topo=Topology.simple(["dev0", "gpu1"]),
        exp_dev="dev0",
        imp_kw={"submit_budget": 2},
    )
    for _ in range(2):
        r.run(r.fire("amdgpu: amdgpu_cs_ioctl"))
        r.settle()
    imp = r.imp.state(r.s)
    assert imp.maps == 1 and not imp.invalidated
    assert [t.status for t in r.ps.transfers] == [TransferStatus.DONE, TransferStatus.DONE]
    assert r.findings() == []


def test_xe_exporter_to_amdgpu_importer_holds_every_property_without_p2p() -> None:
    """xe x amdgpu with no P2P path: the map migrates to TT; every property holds and the
    importer really maps again after an eviction."""
    sysm = DmaBufSystem(Topology.simple(["gpu0", "gpu1"], no_p2p=True))
    exp = sysm.add_exporter(XeExporter, device="gpu0")
    imp = sysm.add_importer(AmdgpuImporter, device="gpu1", source=exp, submit_budget=2)
    assert isinstance(imp, AmdgpuImporter)
    result = exhaustive(sysm, [*imp.sometimes_properties()])
    result.assert_properties()


def test_amdgpu_exporter_with_an_rdma_odp_importer_holds_every_property() -> None:
    """amdgpu x rdma-odp (movable, §7): eviction against faults and NIC accesses; every
    property holds."""
    sysm = DmaBufSystem(NIC)
    exp = sysm.add_exporter(AmdgpuExporter, device="gpu0")
    sysm.add_importer(RdmaOdpImporter, device="nic0", source=exp)
    exhaustive(sysm).assert_properties()
