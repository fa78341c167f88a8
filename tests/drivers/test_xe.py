"""xe as exporter (drivers.md §4.2) and importer (§4.3), and its cells of the §7 matrix.

Errno paths of xe_dmabuf_ops, the runtime-PM reference of attach, the move_notify rule
(invalidate on every move) and a scripted end-to-end run for every exporter x importer pair xe
takes part in; iommufd and RDMA importers are stand-ins (test_ttm.StandInImporter).
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from test_ttm import (
    BIDI,
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

from dmabuf_model.drivers.amdgpu import AmdgpuImporter
from dmabuf_model.drivers.base import Importer, set_platform
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
)
from dmabuf_model.kernel.state import Blocked, KState
from dmabuf_model.platform.dma import DmaPath, TransferStatus
from dmabuf_model.platform.pci import pci_remove_bus_device
from dmabuf_model.platform.topology import Topology
from dmabuf_model.system.threads import world

NO_P2P = Topology.simple(["gpu0", "gpu1"], no_p2p=True)


def _map(s: KState) -> int:
    m = dma_buf_map_attachment(resv_locked(s), 0, 0, BIDI)
    assert not isinstance(m, Blocked)
    return m[1]


# ------------------------------------------------------------------------------------------------
# export, attach (drivers.md §4.2)


def test_export_of_a_vm_private_bo_is_eperm() -> None:
    """xe_gem_prime_export refuses a BO private to a VM with -EPERM (§4.2)."""
    r = rig(XeExporter, exp_kw={"vm_private": True})
    assert r.exp.state(r.s).export_ret == -errno.EPERM and r.exp.buffers(r.s) == ()


def test_attach_clears_peer2peer_without_a_p2p_path_and_takes_a_runtime_pm_reference() -> None:
    """pci_p2pdma_distance < 0 clears peer2peer; attach takes a runtime-PM ref (§4.2, §6)."""
    r = rig(XeExporter, StandInImporter, topo=NO_P2P, imp_kw={"pin": False})
    assert not r.s.attachments[0].peer2peer
    assert r.exp.state(r.s).runtime_pm_refs == 1


def test_attach_of_a_vram_only_bo_without_peer2peer_is_eopnotsupp() -> None:
    """A BO that cannot migrate to TT refuses an importer without P2P at attach (§4.2, §7)."""
    r = rig(XeExporter, StandInImporter, topo=NO_P2P, exp_kw={"vram_only": True})
    assert r.imp.state(r.s).attach_ret == -errno.EOPNOTSUPP
    assert r.s.attachments[0].detached and r.exp.state(r.s).runtime_pm_refs == 0


def test_detach_drops_the_runtime_pm_reference() -> None:
    """xe_dma_buf_detach drops the runtime-PM reference attach took (§4.2)."""
    r = rig(XeExporter, XeImporter, imp_kw={"free_budget": 1}, imp_dev="gpu1")
    assert r.exp.state(r.s).runtime_pm_refs == 1
    r.run(r.fire("xe: drm_gem_object_free"))
    assert r.exp.state(r.s).runtime_pm_refs == 0 and r.s.attachments[0].detached


# ------------------------------------------------------------------------------------------------
# pin (drivers.md §4.2, core-semantics §10 #20)


def test_pin_when_every_attachment_is_p2p_stays_in_vram() -> None:
    """VRAM is allowed when every attachment is P2P; the pin keeps the BO there (§4.2)."""
    r = rig(XeExporter, StandInImporter, imp_kw={"revocable": False})
    bo = r.exp.state(r.s).bo
    assert bo.pin_count == 1 and bo.placement is VRAM
    assert r.ps.mappings[0].path is DmaPath.BUS_ADDR


def test_pin_without_p2p_migrates_to_tt_first() -> None:
    """VRAM not allowed: xe_dma_buf_pin migrates to TT, then pins (§4.2, §10 #20)."""
    r = rig(XeExporter, StandInImporter, topo=NO_P2P, imp_kw={"revocable": False})
    bo = r.exp.state(r.s).bo
    assert bo.pin_count == 1 and bo.placement is TT


def test_pin_of_a_bo_pinned_in_vram_for_a_non_p2p_attachment_is_einval() -> None:
    """Already pinned in a placement that is neither TT nor an allowed VRAM: -EINVAL."""
    r = rig(
        XeExporter,
        StandInImporter,
        topo=mixed_topology(),
        imp_kw={"revocable": False},
        more=[(StandInImporter, "gpu2", {"name": "other", "revocable": False})],
    )
    assert r.exp.state(r.s).bo.placement is VRAM
    assert r.drivers[2].state(r.s).pin_ret == -errno.EINVAL
    assert r.exp.state(r.s).bo.pin_count == 1


# ------------------------------------------------------------------------------------------------
# map_dma_buf (drivers.md §4.2)


def test_map_without_p2p_migrates_to_tt_and_with_p2p_maps_vram_in_place() -> None:
    """Unpinned map: not P2P migrates to TT, P2P validates in place (§4.2, §6)."""
    r = rig(XeExporter, StandInImporter, topo=NO_P2P, imp_kw={"pin": False})
    assert r.exp.state(r.s).bo.placement is TT and r.ps.mappings[0].path is DmaPath.IOVA
    r = rig(XeExporter, StandInImporter, imp_kw={"pin": False})
    assert r.exp.state(r.s).bo.placement is VRAM
    assert r.ps.mappings[0].range == r.exp.vram_range


def test_map_of_a_bo_that_cannot_migrate_for_a_non_p2p_attachment_is_eopnotsupp() -> None:
    """Attach already refuses this pair; map checks again (§4.2). Reached by turning the BO
    VRAM-only after the attach."""
    r = rig(XeExporter, StandInImporter, topo=NO_P2P, imp_kw={"pin": False})
    r.exp.options["vram_only"] = True
    assert _map(r.s) == -errno.EOPNOTSUPP


def test_map_in_tt_fails_ebusy_when_the_dma_mapping_fails() -> None:
    """The dma map of TT pages failing (importer device removed) is -EBUSY (§4.2, §8)."""
    r = rig(XeExporter, StandInImporter, topo=NO_P2P, imp_kw={"pin": False})
    s = set_platform(r.s, pci_remove_bus_device(r.ps, NO_P2P, "gpu1"))
    assert _map(s) == -errno.EBUSY


def test_map_of_a_bo_pinned_in_system_is_einval() -> None:
    """Placements other than TT and VRAM are -EINVAL (§4.2); a constructed state."""
    r = rig(XeExporter, StandInImporter, imp_kw={"pin": False})
    s = r.exp._set_bo(r.s, replace(r.exp.state(r.s).bo, placement=SYSTEM, pin_count=1))
    assert _map(s) == -errno.EINVAL


def test_p2p_map_of_an_evicted_bo_validates_it_back_into_vram() -> None:
    """P2P validates in place: a BO in SYSTEM goes back to its preferred VRAM (§4.2)."""
    r = rig(XeExporter, XeImporter, exp_kw={"evict_budget": 2}, imp_kw={"submit_budget": 1})
    r.run(r.fire("xe: ttm_bo_evict"))
    r.run(r.fire("xe: ttm_bo_evict"))
    assert r.exp.state(r.s).bo.placement is SYSTEM
    r.run(r.fire("xe: xe_exec_ioctl"))
    r.settle()
    assert r.exp.state(r.s).bo.placement is VRAM and r.findings() == []


# ------------------------------------------------------------------------------------------------
# begin_cpu_access, move_notify, eviction of a VRAM-only BO


def test_begin_cpu_access_for_reads_migrates_to_tt_and_ignores_errors() -> None:
    """Reads migrate to TT; a failed migration (-ENOMEM) is ignored (§4.2)."""
    r = rig(XeExporter)
    out = dma_buf_begin_cpu_access(r.s, 0, 0, DmaDataDirection.FROM_DEVICE)
    assert not isinstance(out, Blocked) and out[1] == 0
    assert r.exp.state(out[0]).bo.placement is TT
    r = rig(XeExporter, topo=Topology.simple(["gpu0"], ram=0))
    out = dma_buf_begin_cpu_access(r.s, 0, 0, DmaDataDirection.FROM_DEVICE)
    assert not isinstance(out, Blocked) and out[1] == 0  # -ENOMEM ignored
    assert r.exp.state(out[0]).bo.placement is VRAM


def test_xe_invalidates_on_every_move_including_leaving_system() -> None:
    """xe_bo_move_notify invalidates on every move (§4.2), unlike amdgpu."""
    r = rig(
        XeExporter,
        StandInImporter,
        exp_kw={"evict_budget": 2},
        imp_kw={"pin": False},
        more=[(XeImporter, "gpu1", {"name": "xeimp"})],
    )
    r.run(r.fire("xe: ttm_bo_evict"))
    r.run(r.fire("xe: ttm_bo_evict"))
    assert r.imp.state(r.s).invalidations == 2
    r.run(r.fire("xeimp: xe_exec_ioctl"))  # SYSTEM -> VRAM
    assert r.imp.state(r.s).invalidations == 3


def test_a_vram_only_bo_is_evicted_to_system() -> None:
    """A VRAM-only BO cannot go to TT: eviction sends it to SYSTEM (§4.2 [inference])."""
    r = rig(XeExporter, exp_kw={"vram_only": True})
    r.run(r.fire("xe: ttm_bo_evict"))
    assert r.exp.state(r.s).bo.placement is SYSTEM


# ------------------------------------------------------------------------------------------------
# xe exporter x each importer (drivers.md §7, xe row)


def test_xe_to_iommufd_is_rejected_after_a_pin_in_tt() -> None:
    """iommufd: attach and pin happen first (TT: the misc device is not P2P), then the
    private map fails with -EOPNOTSUPP and everything is undone (§7, §2.1)."""
    check_iommufd_rejected_after_a_pin(XeExporter, pinned_in=TT)


def test_xe_to_rdma_odp_is_movable() -> None:
    """RDMA ODP: the fault maps VRAM by P2P; a TTM move invalidates (zap + unmap); the next
    fault maps the new pages (§7)."""
    check_rdma_odp_is_movable(XeExporter)


@pytest.mark.parametrize(
    "importer", [RdmaPinnedImporter, RdmaPinnedRevocableImporter], ids=lambda c: c.kind
)
def test_xe_to_pinned_rdma_is_pinned_in_vram_and_never_invalidated(
    importer: type[Importer],
) -> None:
    """RDMA pinned and pinned-revocable: pinned in VRAM (every attachment P2P); the eviction is
    refused, so the revoke is never triggered (§7)."""
    check_pinned_rdma_stays_in_vram(XeExporter, importer)


@pytest.mark.parametrize("importer", [RdmaOdpImporter, RdmaPinnedImporter], ids=lambda c: c.kind)
def test_xe_vram_only_without_p2p_refuses_rdma_at_attach(importer: type[Importer]) -> None:
    """A VRAM-only BO and no P2P path: registration fails at attach with -EOPNOTSUPP (§7)."""
    topo = Topology.simple(["gpu0", "nic0"], no_p2p=True)
    r = rig(XeExporter, importer, topo=topo, imp_dev="nic0", exp_kw={"vram_only": True})
    reg = r.fire(f"{importer.kind}: ibv_reg_dmabuf_mr")
    r.settle()
    assert r.ret(reg) == -errno.EOPNOTSUPP and r.s.attachments[0].detached


@pytest.mark.parametrize("importer", [AmdgpuImporter, XeImporter])
def test_xe_to_gpu_importer_moves_and_maps_again(importer: type[TtmSgImporter]) -> None:
    """xe x amdgpu/xe on another device: movable; maps again after eviction (§7)."""
    r = rig(XeExporter, importer, imp_kw={"submit_budget": 2})
    name = r.imp.name
    r.run(r.fire(f"{name}: {importer.cs_name}"))
    ev = r.fire("xe: ttm_bo_evict")
    r.settle()
    assert r.ret(ev) == 0
    r.run(r.fire(f"{name}: {importer.cs_name}"))
    r.settle()
    assert [t.status for t in r.ps.transfers] == [TransferStatus.DONE, TransferStatus.DONE]
    assert r.imp.state(r.s).remapped and r.findings() == [] and not r.s.warnings


def test_xe_to_static_importer_pins_on_map_in_tt() -> None:
    """A static importer: pin on map lands in TT (peer2peer false), unpinned at unmap (§7)."""
    topo = Topology.simple(["gpu0", "disp"])
    r = rig(XeExporter, StaticImporter, topo=topo, imp_dev="disp")
    job = r.fire("static: import job")
    for _ in range(3):
        r.step(job)
    assert r.exp.state(r.s).bo.placement is TT and r.exp.state(r.s).bo.pin_count == 1
    r.settle()
    assert r.exp.state(r.s).bo.pin_count == 0 and r.findings() == [] and not r.s.warnings


# ------------------------------------------------------------------------------------------------
# xe importer x each exporter (drivers.md §7, xe column)


def test_vfio_revoke_waits_for_the_xe_job_and_a_submission_while_revoked_is_enodev() -> None:
    """vfio-pci x xe: revocable; a submission while revoked fails -ENODEV, no DMA (§7)."""
    topo = Topology.simple(["vfio0", "gpu1"])
    r = rig(
        VfioPciExporter,
        XeImporter,
        topo=topo,
        exp_dev="vfio0",
        exp_kw={"flr_budget": 0, "mem_disable_budget": 1},
        imp_kw={"submit_budget": 2},
    )
    r.run(r.fire("xe: xe_exec_ioctl"))
    off = r.fire("vfio-pci: PCI_COMMAND memory off")
    r.settle()
    assert world(r.s).threads[off].done and not r.s.sg_tables[0].live
    sub = r.fire("xe: xe_exec_ioctl")
    r.run(sub)
    assert r.ret(sub) == -errno.ENODEV and len(r.ps.transfers) == 1
    assert r.findings() == [] and not r.s.warnings


def test_vfio_without_a_p2p_path_fails_the_xe_submission_with_einval() -> None:
    """No P2P path between the BAR and the GPU: map fails with -EINVAL at submission (§7)."""
    topo = Topology.simple(["vfio0", "gpu1"], no_p2p=True)
    r = rig(VfioPciExporter, XeImporter, topo=topo, exp_dev="vfio0")
    sub = r.fire("xe: xe_exec_ioctl")
    r.run(sub)
    assert r.ret(sub) == -errno.EINVAL and r.ps.transfers == ()


@pytest.mark.parametrize("exporter", [SystemHeapExporter, UdmabufExporter])
def test_static_exporters_to_xe_map_once_and_never_invalidate(exporter: type) -> None:
    """System heap and udmabuf x xe: static, mapped once, never invalidated (§7)."""
    r = rig(
        exporter,
        XeImporter,
        topo=Topology.simple(["dev0", "gpu1"]),
        exp_dev="dev0",
        imp_kw={"submit_budget": 2},
    )
    for _ in range(2):
        r.run(r.fire("xe: xe_exec_ioctl"))
        r.settle()
    imp = r.imp.state(r.s)
    assert imp.maps == 1 and not imp.invalidated and r.findings() == []


def test_xe_exporter_with_two_importers_one_without_p2p_holds_every_property() -> None:
    """A P2P and a non-P2P importer share the BO: the non-P2P map moves it (pipelined behind
    the other's job); every property holds and that move meets a pending fence."""
    sysm = DmaBufSystem(mixed_topology())
    exp = sysm.add_exporter(XeExporter, device="gpu0", evict_budget=0)
    sysm.add_importer(XeImporter, device="gpu1", source=exp, name="xe1")
    sysm.add_importer(AmdgpuImporter, device="gpu2", source=exp, name="amd2")
    assert isinstance(exp, XeExporter)
    result = exhaustive(sysm, exp.sometimes_properties())
    result.assert_properties()


def test_import_of_a_vfio_buffer_exported_while_memory_is_off_is_enodev() -> None:
    """A VFIO buffer exported with decoding off starts revoked: attach fails -ENODEV (§1.1)."""
    topo = Topology.simple(["vfio0", "gpu1"])
    r = rig(
        VfioPciExporter,
        XeImporter,
        topo=topo,
        exp_dev="vfio0",
        exp_kw={"memory_enabled_at_boot": False},
    )
    assert r.imp.state(r.s).import_ret == -errno.ENODEV


def test_vfio_exporter_with_an_xe_importer_holds_every_property() -> None:
    """vfio-pci x xe, FLR revoke against two submissions: every property holds (no DMA after
    the reset, the revoke waits for the job fence and the deferred unmap), and the importer
    really maps again after the invalidation (§7 "revocable")."""
    sysm = DmaBufSystem(Topology.simple(["vfio0", "gpu1"]))
    exp = sysm.add_exporter(VfioPciExporter, device="vfio0")
    imp = sysm.add_importer(XeImporter, device="gpu1", source=exp, submit_budget=2)
    assert isinstance(imp, XeImporter)
    result = exhaustive(sysm, imp.sometimes_properties())
    result.assert_properties()
