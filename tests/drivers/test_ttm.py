"""The TTM machinery amdgpu and xe share: moves, the movable flow, the importing SG BO.

drivers.md §4 (4.1-4.3), core-semantics §5.8, §6.5 (invalidate, then wait for the resv fences,
then move), §10 #20, #21. Also the helpers and tiny stand-in importers the amdgpu and xe tests
import (``from test_ttm import ...``): scripted runs step threads with the same step functions
the checker uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import pytest

from dmabuf_model.check import check
from dmabuf_model.check.model import Property
from dmabuf_model.drivers.amdgpu import AmdgpuExporter, AmdgpuImporter
from dmabuf_model.drivers.base import (
    DriverError,
    Exporter,
    Importer,
    Option,
    platform,
    set_platform,
)
from dmabuf_model.drivers.compose import DmaBufSystem
from dmabuf_model.drivers.iommufd import IommufdImporter
from dmabuf_model.drivers.rdma_umem import RdmaOdpImporter
from dmabuf_model.drivers.ttm import (
    TtmExporter,
    TtmExporterState,
    TtmImporterState,
    TtmPlacement,
    TtmSgImporter,
    placement_from_name,
)
from dmabuf_model.drivers.xe import XeExporter, XeImporter
from dmabuf_model.kernel import errno
from dmabuf_model.kernel.dma_buf import (
    DmaBufAttachOps,
    DmaDataDirection,
    dma_buf_dynamic_attach,
    dma_buf_map_attachment,
    dma_buf_pin,
    dma_buf_unmap_attachment,
    dma_buf_unpin,
)
from dmabuf_model.kernel.dma_resv import DmaResvUsage, dma_resv_lock, dma_resv_unlock
from dmabuf_model.kernel.state import AttachId, Blocked, KState, Tid
from dmabuf_model.platform.dma import MappingState, TransferStatus
from dmabuf_model.platform.memory import GenCause
from dmabuf_model.platform.pci import PciPowerState, pci_set_power_state, pcie_flr
from dmabuf_model.platform.state import PlatformState
from dmabuf_model.platform.topology import (
    HostBridge,
    PciBridge,
    PciFunction,
    PciPortType,
    RamRegion,
    Topology,
)
from dmabuf_model.system.model import EnvStep, SystemModel, ThreadStep, run_step
from dmabuf_model.system.threads import Branches, recording, world

BIDI = DmaDataDirection.BIDIRECTIONAL
VRAM, TT, SYSTEM = TtmPlacement.VRAM, TtmPlacement.TT, TtmPlacement.SYSTEM

# ------------------------------------------------------------------------------------------------
# Helpers for scripted runs (also imported by test_amdgpu.py and test_xe.py).


def mixed_topology(ram: int = 2) -> Topology:
    """gpu0 and gpu1 below one switch (P2P by bus address), gpu2 on its own root port (no P2P
    path to the others: through the host bridge, which is not allowed)."""
    return Topology(
        host_bridges=(HostBridge("hb0"),),
        bridges=(
            PciBridge("rp0", PciPortType.ROOT_PORT, None, "hb0"),
            PciBridge("usp0", PciPortType.SWITCH_UPSTREAM, "rp0"),
            PciBridge("dsp0", PciPortType.SWITCH_DOWNSTREAM, "usp0"),
            PciBridge("dsp1", PciPortType.SWITCH_DOWNSTREAM, "usp0"),
            PciBridge("rp1", PciPortType.ROOT_PORT, None, "hb0"),
        ),
        functions=(
            PciFunction("gpu0", "dsp0"),
            PciFunction("gpu1", "dsp1"),
            PciFunction("gpu2", "rp1"),
        ),
        ram=tuple(RamRegion(f"ram{i}") for i in range(ram)),
    )


@dataclass
class Rig:
    """A composed system with its drivers, model and current state, for scripted runs."""

    system: DmaBufSystem
    model: SystemModel
    s: KState
    drivers: list[Any]

    @property
    def exp(self) -> Any:
        return self.drivers[0]

    @property
    def imp(self) -> Any:
        return self.drivers[1]

    @property
    def ps(self) -> PlatformState:
        return platform(self.s)

    def fire(self, event: str) -> int:
        """Environment event ``event`` happens; returns the tid of the thread it started."""
        for i, ev in enumerate(self.model.events):
            if ev.name == event:
                nxt = self.model.next_state(self.s, EnvStep(i, ev.name))
                assert nxt is not None, f"event {event!r} is not enabled"
                self.s = nxt
                return len(world(self.s).threads) - 1
        names = [ev.name for ev in self.model.events]
        raise KeyError(f"no event {event!r}; events: {names}")

    def blocked(self, tid: int) -> Blocked | None:
        t = world(self.s).threads[tid]
        out = run_step(self.s, t)
        if isinstance(out, Branches):
            out = out.alternatives[0][1]()
        return out if isinstance(out, Blocked) else None

    def step(self, tid: int) -> list[str]:
        """Thread ``tid`` runs one step (AssertionError if it is blocked or done); its log."""
        t = world(self.s).threads[tid]
        assert not t.done, f"T{tid} is done"
        with recording() as lines:
            out = run_step(self.s, t)
            if isinstance(out, Branches):
                out = out.alternatives[0][1]()
        assert not isinstance(out, Blocked), f"T{tid} {t.name} blocked on {out.on}"
        self.s = out
        return lines

    def run(self, tid: int) -> list[str]:
        """Thread ``tid`` runs to its end (AssertionError if it blocks)."""
        lines: list[str] = []
        while not world(self.s).threads[tid].done:
            lines += self.step(tid)
        return lines

    def settle(self) -> None:
        """Run every runnable thread (lowest tid first) until none can move."""
        progress = True
        while progress:
            progress = False
            for t in world(self.s).threads:
                if not t.done and self.blocked(t.tid) is None:
                    self.step(t.tid)
                    progress = True
                    break

    def thread(self, name: str) -> int:
        """The tid of the newest thread called ``name``."""
        for t in reversed(world(self.s).threads):
            if t.name == name:
                return t.tid
        raise KeyError(name)

    def ret(self, tid: int) -> Any:
        t = world(self.s).threads[tid]
        assert t.done, f"T{tid} is not done"
        return t.local("ret")

    def findings(self) -> list[str]:
        return [str(f.kind) for f in self.ps.findings]


def rig(
    exporter: type[Exporter],
    importer: type[Importer] | None = None,
    *,
    topo: Topology | None = None,
    exp_dev: str = "gpu0",
    imp_dev: str = "gpu1",
    exp_kw: dict[str, Any] | None = None,
    imp_kw: dict[str, Any] | None = None,
    more: Sequence[tuple[type[Importer], str, dict[str, Any]]] = (),
) -> Rig:
    """An exporter on ``exp_dev`` and importers on other devices, booted."""
    topology = topo or Topology.simple(["gpu0", "gpu1"])
    sysm = DmaBufSystem(topology)
    exp = sysm.add_exporter(exporter, device=exp_dev, **(exp_kw or {}))
    drivers: list[Any] = [exp]
    if importer is not None:
        drivers.append(sysm.add_importer(importer, device=imp_dev, source=exp, **(imp_kw or {})))
    for cls, dev, kw in more:
        drivers.append(sysm.add_importer(cls, device=dev, source=exp, **kw))
    model = sysm.model()
    return Rig(sysm, model, model.init_states()[0], drivers)


def exhaustive(sysm: DmaBufSystem, extra: Sequence[Property[KState]] = ()) -> Any:
    """check() of the system with ``extra`` properties, every discovery reported."""
    sysm.extra_properties.extend(extra)
    return check(sysm.model(), stop_at_first=False)


def resv_locked(s: KState, tid: int = 0) -> KState:
    """``s`` with resv0 taken by thread ``tid`` (uncontended in these scripted runs)."""
    r = dma_resv_lock(s, tid, 0, None)
    assert not isinstance(r, Blocked)
    return r[0]


NIC = Topology.simple(["gpu0", "nic0"])
"""A GPU and an RDMA NIC below one switch."""


def check_iommufd_rejected_after_a_pin(
    exporter: type[TtmExporter], pinned_in: TtmPlacement
) -> None:
    """A TTM exporter x iommufd: attach and pin happen first (in ``pinned_in``: the misc device
    is not P2P), then the private map fails with -EOPNOTSUPP and everything is undone (drivers.md
    §7, §2.1)."""
    topo = Topology.simple(["gpu0", "dev1"], non_pci=["iommufd"])
    r = rig(exporter, IommufdImporter, topo=topo, imp_dev="iommufd", imp_kw={"dma_device": "dev1"})
    t = r.fire("iommufd: IOMMU_IOAS_MAP_FILE")
    log = "\n".join(r.run(t))
    assert r.ret(t) == -errno.EOPNOTSUPP
    assert "dma_buf_pin(attach0) = 0" in log and "dma_buf_unpin(attach0)" in log
    bo = r.exp.state(r.s).bo
    assert bo.placement is pinned_in and bo.pin_count == 0 and r.s.attachments[0].detached


def check_rdma_odp_is_movable(exporter: type[TtmExporter]) -> None:
    """A TTM exporter x RDMA ODP: the fault maps VRAM by P2P; a TTM move invalidates (zap +
    unmap); the next fault maps the new pages (drivers.md §7)."""
    r = rig(exporter, RdmaOdpImporter, topo=NIC, imp_dev="nic0", imp_kw={"access_budget": 2})
    for event in ("ibv_reg_dmabuf_mr", "NIC accesses the MR"):
        r.fire(f"rdma-odp: {event}")
        r.settle()
    assert r.ps.mappings[0].range == r.exp.vram_range
    ev = r.fire(f"{exporter.kind}: ttm_bo_evict")
    r.settle()
    assert r.ret(ev) == 0 and not r.s.sg_tables[0].live
    r.fire("rdma-odp: NIC accesses the MR")
    r.settle()
    assert r.ps.mappings[1].range == r.exp.state(r.s).bo.pages != r.exp.vram_range
    assert r.findings() == [] and not r.s.warnings


def check_pinned_rdma_stays_in_vram(exporter: type[TtmExporter], importer: type[Importer]) -> None:
    """A TTM exporter x RDMA pinned or pinned-revocable: pinned in VRAM (every attachment P2P);
    the eviction is refused, so the revoke is never triggered (drivers.md §7)."""
    r = rig(exporter, importer, topo=NIC, imp_dev="nic0")
    r.fire(f"{importer.kind}: ibv_reg_dmabuf_mr")
    r.settle()
    bo = r.exp.state(r.s).bo
    assert bo.placement is VRAM and bo.pin_count == 1
    ev = r.fire(f"{exporter.kind}: ttm_bo_evict")
    r.run(ev)
    assert r.ret(ev) == -errno.EBUSY and not r.s.sg_tables[0].invalidated


# ------------------------------------------------------------------------------------------------
# Tiny stand-ins for importers whose modules other helpers write (iommufd, RDMA umem).


@dataclass(frozen=True, slots=True)
class StandInState:
    attach: AttachId = -1
    attach_ret: int = 0
    sgt: int | None = None
    pin_ret: int = 0
    map_ret: int = 0
    invalidations: int = 0
    pinned: bool = False


class StandInImporter(Importer):
    """A boot-time importer driven by kernel calls: attach, then (under the resv) optionally
    pin, and map. ``revocable`` gives it an invalidate_mappings that unmaps (and unpins) at
    once, as RDMA's revoke_locked / ODP zap do (drivers.md §3); ``private_map_fails`` undoes
    everything with -EOPNOTSUPP after the pin, as iommufd does for a non-VFIO buffer (§2.1)."""

    kind: ClassVar[str] = "stand-in"
    OPTIONS: ClassVar[dict[str, Option]] = {
        "pin": Option(True, "dma_buf_pin before mapping"),
        "revocable": Option(True, "provide invalidate_mappings"),
        "peer2peer": Option(True, "allow_peer2peer"),
        "private_map_fails": Option(False, "iommufd: the VFIO-only private map fails"),
    }

    def init_state(self) -> StandInState:
        return StandInState()

    def state(self, s: KState) -> StandInState:
        return self.state_as(s, StandInState)

    def attach_ops(self) -> DmaBufAttachOps:
        inv = self._invalidate if self.options["revocable"] else None
        return DmaBufAttachOps(
            f"{self.name} ops",
            allow_peer2peer=bool(self.options["peer2peer"]),
            invalidate_mappings=inv,
        )

    def _invalidate(self, s: KState, tid: Tid, attach: AttachId) -> KState:
        rec = self.state(s)
        if rec.sgt is not None:
            s = dma_buf_unmap_attachment(s, tid, attach, rec.sgt, BIDI)
        if rec.pinned:
            s = dma_buf_unpin(s, tid, attach)
        return self.set_state(
            s, replace(rec, sgt=None, pinned=False, invalidations=rec.invalidations + 1)
        )

    def setup(self, s: KState) -> KState:
        assert self.source is not None
        buf = self.source.buffers(s)[0]
        tid = 0
        r = dma_buf_dynamic_attach(s, tid, buf, self.device, self.attach_ops())
        assert not isinstance(r, Blocked)
        s, attach = r
        if attach < 0:
            return self.set_state(s, StandInState(attach_ret=attach))
        resv = s.bufs[buf].resv
        r2 = dma_resv_lock(s, tid, resv, None)
        assert not isinstance(r2, Blocked)
        s = r2[0]
        rec = StandInState(attach=attach)
        if self.options["pin"]:
            s, ret = dma_buf_pin(s, tid, attach)
            rec = replace(rec, pin_ret=ret, pinned=ret == 0)
            if ret == 0 and self.options["private_map_fails"]:
                s = dma_buf_unpin(s, tid, attach)
                rec = replace(rec, pinned=False, map_ret=-errno.EOPNOTSUPP)
            elif ret == 0:
                m = dma_buf_map_attachment(s, tid, attach, BIDI)
                assert not isinstance(m, Blocked)
                s, sgt = m
                rec = replace(rec, map_ret=min(sgt, 0), sgt=sgt if sgt >= 0 else None)
        else:
            m = dma_buf_map_attachment(s, tid, attach, BIDI)
            assert not isinstance(m, Blocked)
            s, sgt = m
            rec = replace(rec, map_ret=min(sgt, 0), sgt=sgt if sgt >= 0 else None)
        s = dma_resv_unlock(s, tid, resv)
        return self.set_state(s, rec)


def standin(**kw: Any) -> tuple[type[Importer], dict[str, Any]]:
    return StandInImporter, kw


# ------------------------------------------------------------------------------------------------
# Placements and configuration.


def test_placement_names_accept_amdgpu_and_ttm_spellings() -> None:
    """GTT is amdgpu's name for TTM_PL_TT (drivers.md §4.1); a typo is a DriverError."""
    assert placement_from_name("GTT") is TT and placement_from_name("tt") is TT
    assert str(VRAM) == "TTM_PL_VRAM"
    with pytest.raises(DriverError, match=r"^'VRAN' is not a TTM placement; valid: "):
        placement_from_name("VRAN")


def test_importing_from_the_same_device_is_refused() -> None:
    """Same device is a GEM share without an attachment (drivers.md §7): not modelled."""
    with pytest.raises(DriverError, match="same device is a GEM share"):
        rig(AmdgpuExporter, XeImporter, imp_dev="gpu0")


def test_export_shares_the_bo_resv_and_installs_an_fd() -> None:
    """The dma-buf uses the BO's resv (exp_info.resv) and has an fd (core-semantics §5.1)."""
    r = rig(AmdgpuExporter, XeImporter)
    rec = r.exp.state(r.s)
    assert isinstance(rec, TtmExporterState)
    assert rec.buf == 0 and r.s.bufs[0].resv == rec.resv and not r.s.bufs[0].resv_owned
    assert (rec.fd, "dma_buf", 0) in r.s.fd_table
    imp = r.imp.state(r.s)
    assert isinstance(imp, TtmImporterState) and imp.attach == 0 and imp.import_ret == 0
    assert r.s.attachments[0].peer2peer and r.s.attachments[0].importer_ops is not None


# ------------------------------------------------------------------------------------------------
# The movable flow: eviction (core-semantics §6.5, §10 #21).


@pytest.mark.parametrize("exporter", [AmdgpuExporter, XeExporter])
def test_eviction_invalidates_then_waits_for_the_job_fence_before_freeing_vram(
    exporter: type[TtmExporter],
) -> None:
    """§6.5: invalidate, wait for the resv fences, then move; the old VRAM is freed last."""
    r = rig(exporter, XeImporter)
    sub = r.fire("xe: xe_exec_ioctl")
    r.run(sub)
    ring = r.thread("xe-ring")
    assert r.ps.transfers[0].status is TransferStatus.PENDING
    ev = r.fire(f"{r.exp.name}: ttm_bo_evict")
    log = r.step(ev)
    assert any("dma_buf_invalidate_mappings(buf0)" in line for line in log)
    assert r.ps.mappings[0].state is MappingState.INVALIDATED
    assert r.s.sg_tables[0].invalidated and r.s.sg_tables[0].live  # ghost still owns it
    blocked = r.blocked(ev)
    assert blocked is not None and blocked.on == "fence0"
    assert r.ps.ranges[r.exp.vram_range].gen == 0
    r.run(ring)
    r.run(ev)
    assert r.ret(ev) == 0
    assert r.exp.state(r.s).bo.placement is TT
    assert r.ps.ranges[r.exp.vram_range].history == (GenCause.FREED,)
    ghost = r.thread("xe-ttm-ghost")
    r.run(ghost)
    assert not r.s.sg_tables[0].live and r.ps.mappings[0].state is MappingState.UNMAPPED
    assert r.findings() == []
    kernel = [f for f, u in r.s.resvs[0].fences if u is DmaResvUsage.KERNEL]
    assert len(kernel) == 1 and r.s.fences[kernel[0]].signaled


def test_importer_maps_again_after_eviction_and_reaches_the_new_pages() -> None:
    """drivers.md §4.3: the next submission maps again, in TT now (RAM, through the IOMMU)."""
    r = rig(AmdgpuExporter, XeImporter, imp_kw={"submit_budget": 2})
    r.run(r.fire("xe: xe_exec_ioctl"))
    r.run(r.thread("xe-ring"))
    r.run(r.fire("amdgpu: ttm_bo_evict"))
    assert r.s.sg_tables[0].live is False  # idle importer: unmapped inside invalidate
    r.run(r.fire("xe: xe_exec_ioctl"))
    r.settle()
    imp = r.imp.state(r.s)
    assert imp.remapped and imp.maps == 2 and imp.sgt == 1
    m = r.ps.mappings[1]
    assert r.s.sg_tables[1].entries == (1,) and m.range == r.exp.state(r.s).bo.pages
    assert r.system.topology.ranges[m.range].name == "ram0"
    assert r.ps.transfers[1].status is TransferStatus.DONE and r.findings() == []


def test_eviction_of_a_pinned_bo_is_refused_with_ebusy() -> None:
    """A pinned BO is not moved (core-semantics §10 #20): -EBUSY, no invalidation."""
    cls, kw = standin(revocable=False)
    r = rig(AmdgpuExporter, cls, imp_kw=kw)
    assert r.exp.state(r.s).bo.pin_count == 1
    ev = r.fire("amdgpu: ttm_bo_evict")
    r.run(ev)
    assert r.ret(ev) == -errno.EBUSY
    assert r.exp.state(r.s).bo.placement is VRAM and r.s.sg_tables[0].live
    assert not r.s.sg_tables[0].invalidated and r.ps.ranges[r.exp.vram_range].gen == 0


def test_eviction_goes_vram_to_tt_to_system_and_tt_to_system_keeps_the_pages() -> None:
    """TTM's eviction chain (drivers.md §4 [inference]); TT and SYSTEM share the pages."""
    r = rig(XeExporter, XeImporter, imp_kw={"submit_budget": 0}, exp_kw={"evict_budget": 3})
    r.run(r.fire("xe: ttm_bo_evict"))
    bo = r.exp.state(r.s).bo
    assert bo.placement is TT
    pages = bo.pages
    r.run(r.fire("xe: ttm_bo_evict"))
    bo = r.exp.state(r.s).bo
    assert bo.placement is SYSTEM and bo.pages == pages and r.ps.ranges[pages].gen == 0
    assert not r.model.actions(r.s)  # nothing left to evict: the event's guard is off


def test_eviction_without_free_ram_fails_with_enomem_and_keeps_the_bo() -> None:
    """No RAM region for TT: the move fails (-ENOMEM) after the invalidation."""
    topo = Topology.simple(["gpu0", "gpu1"], ram=0)
    r = rig(AmdgpuExporter, XeImporter, topo=topo)
    ev = r.fire("amdgpu: ttm_bo_evict")
    r.run(ev)
    assert r.ret(ev) == -errno.ENOMEM
    assert r.exp.state(r.s).bo.placement is VRAM and r.ps.ranges[r.exp.vram_range].gen == 0


# ------------------------------------------------------------------------------------------------
# Pipelined moves inside callbacks.


def test_move_at_map_time_is_pipelined_behind_the_other_importers_job() -> None:
    """A non-P2P importer's map moves the BO to GTT: the copy waits for the P2P importer's job,
    the mapper waits for the KERNEL move fence (drivers.md §4.1, core-semantics §6.5)."""
    r = rig(
        AmdgpuExporter,
        XeImporter,
        topo=mixed_topology(),
        exp_kw={"evict_budget": 0},
        more=[(AmdgpuImporter, "gpu2", {"name": "amd2"})],
    )
    assert r.s.attachments[0].peer2peer and not r.s.attachments[1].peer2peer
    r.run(r.fire("xe: xe_exec_ioctl"))
    sub = r.fire("amd2: amdgpu_cs_ioctl")
    log = r.step(sub)
    assert any("copy queued behind 1 fence(s)" in line for line in log)
    copy = r.thread("amdgpu-ttm-move")
    assert r.blocked(copy) is not None and r.blocked(sub) is not None
    assert r.exp.state(r.s).bo.placement is TT and r.exp.state(r.s).bo.vram_ghost
    assert r.ps.ranges[r.exp.vram_range].gen == 0
    r.run(r.thread("xe-ring"))
    r.run(copy)
    assert r.ps.ranges[r.exp.vram_range].gen == 1 and not r.exp.state(r.s).bo.vram_ghost
    r.run(sub)
    r.settle()
    assert r.findings() == [] and r.ps.transfers[1].status is TransferStatus.DONE


def test_validate_prefers_tt_while_a_copy_still_owns_the_old_vram() -> None:
    """One BO per BAR in the model: VRAM counts as occupied until the ghost frees it."""
    r = rig(AmdgpuExporter, None)
    exp = r.exp
    s = exp._set_bo(r.s, replace(exp.state(r.s).bo, placement=SYSTEM, pages=0, vram_ghost=True))
    assert not exp.vram_available(s)


# ------------------------------------------------------------------------------------------------
# The importing SG BO (drivers.md §4.3).


def test_invalidate_of_an_idle_importer_unmaps_at_once() -> None:
    """No job in flight: the SG BO is unbound and the sgt unmapped inside the callback."""
    r = rig(AmdgpuExporter, AmdgpuImporter)
    r.run(r.fire("amdgpu: amdgpu_cs_ioctl"))
    r.run(r.thread("amdgpu-ring"))
    log = r.step(r.fire("amdgpu: ttm_bo_evict"))
    assert "     dma_buf_unmap_attachment(attach0, sgt0)" in "\n".join(log)
    assert "amdgpu_vm_clear_freed + amdgpu_vm_handle_moved" in "\n".join(log)
    assert not r.s.sg_tables[0].live and r.imp.state(r.s).sgt is None


@pytest.mark.parametrize(
    ("kw", "usage", "write"),
    [
        ({}, DmaResvUsage.WRITE, True),
        ({"job_write": False}, DmaResvUsage.READ, False),
        ({"explicit_sync": True}, DmaResvUsage.BOOKKEEP, True),
    ],
)
def test_job_fence_usage_follows_implicit_or_explicit_sync(
    kw: dict[str, Any], usage: DmaResvUsage, write: bool
) -> None:
    """Implicit sync: WRITE or READ by the job's direction; explicit: BOOKKEEP (§8.2)."""
    r = rig(XeExporter, AmdgpuImporter, imp_kw=kw)
    r.run(r.fire("amdgpu: amdgpu_cs_ioctl"))
    assert r.s.resvs[0].fences == ((0, usage),)
    assert r.ps.transfers[0].write is write and r.ps.transfers[0].fence == 0


def test_free_waits_for_the_job_then_unmaps_detaches_and_puts() -> None:
    """GEM free: TTM's delayed delete waits for the jobs; unmap -> detach -> put (§5.4)."""
    r = rig(AmdgpuExporter, XeImporter, imp_kw={"free_budget": 1})
    r.run(r.fire("xe: xe_exec_ioctl"))
    free = r.fire("xe: drm_gem_object_free")
    assert r.blocked(free) is not None
    refs = r.s.bufs[0].file_refcount
    r.run(r.thread("xe-ring"))
    r.run(free)
    assert r.s.attachments[0].detached and not r.s.sg_tables[0].live
    assert r.s.bufs[0].file_refcount == refs - 1 and r.imp.state(r.s).freed
    assert r.s.bufs[0].attachments == ()


def test_a_refused_export_leaves_the_importer_nothing_to_import_or_submit() -> None:
    """The exporter refused (-EPERM), so the import fails with -EBADF; submissions are off."""
    r = rig(AmdgpuExporter, XeImporter, exp_kw={"bo_kind": "userptr"})
    assert r.imp.state(r.s).import_ret == -errno.EBADF and r.s.attachments == ()
    assert not r.model.actions(r.s)  # both events are guarded off


def test_submission_racing_with_the_gem_free_fails_with_enoent() -> None:
    """A submission that runs after the GEM object was freed finds no BO: -ENOENT, no job."""
    r = rig(AmdgpuExporter, XeImporter, imp_kw={"free_budget": 1})
    sub = r.fire("xe: xe_exec_ioctl")
    r.run(r.fire("xe: drm_gem_object_free"))
    r.run(sub)
    assert r.ret(sub) == -errno.ENOENT and r.ps.transfers == ()


# ------------------------------------------------------------------------------------------------
# Exhaustive checks: the correct pair holds everything; the broken exporter is caught.


def _system(exporter: type[TtmExporter], importer: type[TtmSgImporter], **exp_kw: Any) -> Any:
    sysm = DmaBufSystem(Topology.simple(["gpu0", "gpu1"]))
    exp = sysm.add_exporter(exporter, device="gpu0", **exp_kw)
    imp = sysm.add_importer(importer, device="gpu1", source=exp)
    return sysm, exp, imp


@pytest.mark.parametrize("exporter", [AmdgpuExporter, XeExporter])
@pytest.mark.parametrize("importer", [AmdgpuImporter, XeImporter])
def test_correct_gpu_pair_holds_every_property(
    exporter: type[TtmExporter], importer: type[TtmSgImporter]
) -> None:
    """Default options: every property holds, and a move really meets a pending job fence."""
    sysm, exp, _ = _system(exporter, importer)
    result = exhaustive(sysm, exp.sometimes_properties())
    result.assert_properties()
    assert result.complete


@pytest.mark.parametrize("exporter", [AmdgpuExporter, XeExporter])
def test_moving_without_waiting_for_fences_is_dma_after_reuse(
    exporter: type[TtmExporter],
) -> None:
    """skip_fence_wait_on_move=True breaks §6.5: the importer's in-flight write lands in VRAM
    that went back to the VRAM manager (dma_after_reuse), found with a trace."""
    sysm, exp, _ = _system(exporter, XeImporter, skip_fence_wait_on_move=True)
    result = exhaustive(sysm)
    path = result.discovery("no_dma_violation")
    assert path is not None
    kinds = {str(f.kind) for f in platform(path.last_state).findings}
    assert kinds == {"dma_after_reuse"}
    assert len(path.actions) == 6  # the shortest counterexample
    n = exp.name
    actions = [
        EnvStep(1, "xe: xe_exec_ioctl"),
        ThreadStep(2, "xe-submit", "dma_resv_lock, map if evicted"),
        EnvStep(0, f"{n}: ttm_bo_evict"),
        ThreadStep(4, f"{n}-evict", "dma_resv_lock, ttm_bo_move_notify"),
        ThreadStep(4, f"{n}-evict", "ttm_bo_move: KERNEL move fence, copy, signal, unlock"),
        ThreadStep(3, "xe-ring", "run job, signal job fences"),
    ]
    result.assert_discovery("no_dma_violation", actions)
    assert [d.property for d in result.failures] == ["no_dma_violation"]


def test_importer_that_keeps_its_mapping_on_invalidate_is_caught() -> None:
    """keep_mapping_on_invalidate=True: the next job writes through the invalidated mapping
    into freed VRAM (core-semantics §5.8, §6.5)."""
    sysm = DmaBufSystem(Topology.simple(["gpu0", "gpu1"]))
    exp = sysm.add_exporter(AmdgpuExporter, device="gpu0")
    sysm.add_importer(
        XeImporter, device="gpu1", source=exp, keep_mapping_on_invalidate=True, submit_budget=2
    )
    result = exhaustive(sysm)
    path = result.discovery("no_dma_violation")
    assert path is not None
    kinds = {str(f.kind) for f in platform(path.last_state).findings}
    assert "write_after_invalidate" in kinds


# ------------------------------------------------------------------------------------------------
# Import as an event, failed imports, jobs the device never ran (drivers.md §4.3).


def test_import_event_attaches_when_not_at_boot() -> None:
    """import_at_boot=False: nothing attached at boot; the import event attaches, and the
    submission event is only enabled afterwards."""
    r = rig(AmdgpuExporter, XeImporter, imp_kw={"import_at_boot": False})
    assert r.s.attachments == ()
    assert [str(a) for a in r.model.actions(r.s)] == [
        "env: amdgpu: ttm_bo_evict",
        "env: xe: xe_gem_prime_import",
    ]
    r.run(r.fire("xe: xe_gem_prime_import"))
    assert r.imp.state(r.s).attach == 0 and r.s.bufs[0].attachments == (0,)
    assert "env: xe: xe_exec_ioctl" in [str(a) for a in r.model.actions(r.s)]


def test_failed_import_drops_its_reference_and_records_the_attach_error() -> None:
    """xe refuses a VRAM-only BO to an importer without P2P (-EOPNOTSUPP, §4.2): the import
    fails, the dma-buf reference is dropped."""
    topo = Topology.simple(["gpu0", "gpu1"], no_p2p=True)
    r = rig(XeExporter, AmdgpuImporter, topo=topo, exp_kw={"vram_only": True})
    assert r.imp.state(r.s).import_ret == -errno.EOPNOTSUPP
    assert r.s.bufs[0].file_refcount == 1 and r.s.bufs[0].attachments == ()


def test_job_whose_access_was_aborted_signals_its_fence_with_ecanceled() -> None:
    """A reset of the importing GPU aborts the pending access; the ring still signals the job
    fence, with -ECANCELED, so waiters (the exporter's move) are not stuck."""
    r = rig(AmdgpuExporter, XeImporter)
    r.run(r.fire("xe: xe_exec_ioctl"))
    r.s = set_platform(r.s, pcie_flr(r.ps, r.system.topology, "gpu1")[0])
    r.run(r.thread("xe-ring"))
    assert r.ps.transfers[0].status is TransferStatus.ABORTED
    assert r.s.fences[0].signaled and r.s.fences[0].error == -errno.ECANCELED


def test_submission_on_a_gpu_that_cannot_master_dma_fails_with_enodev() -> None:
    """The importing GPU is in D3hot: no access starts, the job fence signals with the error."""
    r = rig(AmdgpuExporter, XeImporter)
    ps, _ = pci_set_power_state(r.ps, r.system.topology, "gpu1", PciPowerState.D3hot)
    r.s = set_platform(r.s, ps)
    sub = r.fire("xe: xe_exec_ioctl")
    r.run(sub)
    assert r.ret(sub) == -errno.ENODEV and r.ps.transfers == ()
    assert r.s.fences[0].signaled and r.s.fences[0].error == -errno.ENODEV
