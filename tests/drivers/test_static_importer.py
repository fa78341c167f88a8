"""The static importer (dma_buf_attach, no ops): drivers.md §7 extra row, core-semantics §5.6.

Pin-on-map and the core's KERNEL fence wait for a pinnable exporter, plain maps from the static
exporters, VFIO's refusal (-EOPNOTSUPP), the device DMA helpers, and an exhaustive check of a
correct pair and of a driver that unmaps before its DMA has finished.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from driver_helpers import fire, job_ret, run_engines, run_thread_until_blocked, step

from dmabuf_model.check import check
from dmabuf_model.check.model import Property
from dmabuf_model.drivers.base import Exporter, Option, platform, set_platform
from dmabuf_model.drivers.compose import DmaBufSystem
from dmabuf_model.drivers.device_dma import device_dma_submit, dma_abort_mapping_transfers
from dmabuf_model.drivers.static_importer import StaticImporter, StaticImporterState
from dmabuf_model.drivers.system_heap import SystemHeapExporter
from dmabuf_model.drivers.vfio_pci import VfioPciExporter
from dmabuf_model.kernel import errno
from dmabuf_model.kernel.dma_buf import (
    DmaBufOps,
    DmaDataDirection,
    MapResult,
    dma_buf_export,
    dma_buf_fd,
)
from dmabuf_model.kernel.dma_fence import (
    dma_fence_context_alloc,
    dma_fence_get_status,
    dma_fence_init,
    dma_fence_signal,
)
from dmabuf_model.kernel.dma_resv import (
    DmaResvUsage,
    dma_resv_add_fence,
    dma_resv_lock,
    dma_resv_reserve_fences,
    dma_resv_unlock,
)
from dmabuf_model.kernel.state import AttachId, Blocked, BufId, KState, SgtId, Tid
from dmabuf_model.platform.dma import TransferStatus, dma_map_phys, dma_unmap_phys
from dmabuf_model.platform.memory import ram_alloc
from dmabuf_model.platform.oracle import FindingKind, findings_of
from dmabuf_model.platform.topology import Topology
from dmabuf_model.system.model import SystemModel, run_thread
from dmabuf_model.system.threads import Thread, finish, program, spawn, world

# --- helpers -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ToyState:
    buf: BufId = -1
    fd: int = -1
    ram: int = -1
    pins: int = 0
    kernel_fence: int = -1


class ToyPinnableExporter(Exporter):
    """A stand-in dynamic exporter (it has pin/unpin) of one RAM region, for pin-on-map.

    ``kernel_fence`` leaves an unsignalled KERNEL fence in the resv at boot (a pipelined move);
    the event "toy: signal KERNEL fence" signals it.
    """

    kind: ClassVar[str] = "toy-pinnable"
    OPTIONS: ClassVar[dict[str, Option]] = {
        "kernel_fence": Option(False, "an unsignalled KERNEL fence in the resv at boot"),
    }

    def init_state(self) -> Hashable:
        return ToyState()

    def st(self, s: KState) -> ToyState:
        return self.state_as(s, ToyState)

    def dma_buf_ops(self) -> DmaBufOps:
        return DmaBufOps(
            "toy_pinnable_ops",
            map_dma_buf=self._map,
            unmap_dma_buf=self._unmap,
            release=lambda s, tid, buf: s,
            pin=self._pin,
            unpin=self._unpin,
        )

    def buffers(self, s: KState) -> tuple[int, ...]:
        return (self.st(s).buf,)

    def _pin(self, s: KState, tid: Tid, attach: AttachId) -> tuple[KState, int]:
        return self.set_state(s, replace(self.st(s), pins=self.st(s).pins + 1)), 0

    def _unpin(self, s: KState, tid: Tid, attach: AttachId) -> KState:
        return self.set_state(s, replace(self.st(s), pins=self.st(s).pins - 1))

    def _map(
        self, s: KState, tid: Tid, attach: AttachId, dir: DmaDataDirection
    ) -> tuple[KState, MapResult]:
        ps, mid = dma_map_phys(
            platform(s), self.topology, s.attachments[attach].dev, self.st(s).ram
        )
        return set_platform(s, ps), (mid if mid < 0 else (mid,))

    def _unmap(
        self, s: KState, tid: Tid, attach: AttachId, sgt: SgtId, dir: DmaDataDirection
    ) -> KState:
        ps = platform(s)
        for mid in s.sg_tables[sgt].entries:
            assert isinstance(mid, int)
            ps = dma_unmap_phys(ps, mid)
        return set_platform(s, ps)

    def _boot(self, s: KState, t: Thread) -> KState:
        ps, ram = ram_alloc(platform(s), self.topology)
        s = set_platform(s, ps)
        s, buf = dma_buf_export(s, t.tid, ops=self.dma_buf_ops(), size=4096, priv="toy")
        s, fd = dma_buf_fd(s, t.tid, buf, 0)
        fence = -1
        if self.options["kernel_fence"]:
            resv = s.bufs[buf].resv
            s, ctx = dma_fence_context_alloc(s, 1)
            s, fence = dma_fence_init(s, ctx, 1)
            r = dma_resv_lock(s, t.tid, resv, None)
            assert not isinstance(r, Blocked)
            s, _ = dma_resv_reserve_fences(r[0], t.tid, resv, 1)
            s = dma_resv_add_fence(s, t.tid, resv, fence, DmaResvUsage.KERNEL)
            s = dma_resv_unlock(s, t.tid, resv)
        s = self.set_state(s, ToyState(buf=buf, fd=fd, ram=ram, kernel_fence=fence))
        return finish(s, t, ret=0)

    def setup(self, s: KState) -> KState:
        s, tid = spawn(s, program("toy boot", ("export", self._boot)))
        return run_thread(s, tid)

    def _signal(self, s: KState, t: Thread) -> KState:
        return finish(dma_fence_signal(s, self.st(s).kernel_fence), t)

    def events(self) -> list[Any]:
        from dmabuf_model.system.model import EnvEvent

        if not self.options["kernel_fence"]:
            return []
        return [
            EnvEvent("toy: signal KERNEL fence", program("toy signal", ("signal", self._signal)))
        ]


def heap_system(
    *, iommu: bool = True, importer_device: str = "disp0", **imp: Any
) -> tuple[SystemModel, SystemHeapExporter, StaticImporter]:
    topo = Topology.simple(["disp0"], iommu=iommu, non_pci=["v4l2"])
    system = DmaBufSystem(topo)
    heap = system.add_exporter(SystemHeapExporter, device="system", close_budget=0)
    imp_drv = system.add_importer(StaticImporter, device=importer_device, source=heap, **imp)
    assert isinstance(heap, SystemHeapExporter) and isinstance(imp_drv, StaticImporter)
    return system.model(), heap, imp_drv


# --- scripted runs -------------------------------------------------------------------------------


def test_job_on_system_heap_attaches_static_maps_dmas_unmaps_and_detaches() -> None:
    """A static attachment (no ops, peer2peer false) maps, DMAs, unmaps, detaches, puts.

    drivers.md §7 extra row "heaps -> plain map"; core-semantics §5.3, §5.6, §6.4.
    """
    model, _heap, imp = heap_system()
    s, tid = fire(model, model.init_states()[0], "static: import job")
    for _ in range(4):  # attach, map, KERNEL wait, submit
        out = step(s, tid)
        assert isinstance(out, KState)
        s = out
    a = s.attachments[0]
    assert a.importer_ops is None and a.peer2peer is False and a.map_pins == 0
    assert s.sg_tables[0].live and not s.sg_tables[0].waiting
    assert isinstance(step(s, tid), Blocked)  # waits for its DMA before unmapping
    s = run_thread(run_engines(s), tid)
    assert job_ret(s, tid) == 0
    assert s.attachments[0].detached and not s.sg_tables[0].live
    assert platform(s).transfers[0].status is TransferStatus.DONE
    assert platform(s).findings == () and s.warnings == ()
    assert s.bufs[0].file_refcount == 1  # only userspace's fd is left
    assert imp.state(s) == StaticImporterState(xfer=0, jobs=1)


def _pinnable_system(**kw: Any) -> tuple[SystemModel, ToyPinnableExporter, StaticImporter]:
    topo = Topology.simple(["disp0"], ram=1)
    system = DmaBufSystem(topo)
    exp = system.add_exporter(ToyPinnableExporter, device="gpu", **kw)
    imp = system.add_importer(StaticImporter, device="disp0", source=exp)
    assert isinstance(exp, ToyPinnableExporter) and isinstance(imp, StaticImporter)
    return system.model(), exp, imp


def test_map_on_pinnable_exporter_pins_for_exactly_the_life_of_the_mapping() -> None:
    """Pin-on-map: one pin per live mapping of a static attachment, undone by the unmap.

    core-semantics §5.6 step 1, §5.7, §10 #16.
    """
    model, exp, _ = _pinnable_system()
    s, tid = fire(model, model.init_states()[0], "static: import job")
    for _ in range(3):  # attach, map, KERNEL wait
        out = step(s, tid)
        assert isinstance(out, KState)
        s = out
    assert exp.st(s).pins == 1 and s.attachments[0].map_pins == 1
    s = run_thread(run_engines(run_thread_until_blocked(s, tid)), tid)
    assert exp.st(s).pins == 0 and s.attachments[0].map_pins == 0
    assert job_ret(s, tid) == 0 and s.warnings == ()


def test_static_map_waits_for_kernel_fences_with_the_resv_held() -> None:
    """The core's wait for KERNEL fences happens after the exporter mapped, resv held.

    core-semantics §5.6 step 3, §10 #17.
    """
    model, exp, _ = _pinnable_system(kernel_fence=True)
    s, tid = fire(model, model.init_states()[0], "static: import job")
    s = run_thread_until_blocked(s, tid)
    t = world(s).threads[tid]
    assert t.pc == "dma_buf_map_attachment: wait KERNEL fences"
    assert s.resvs[0].holder == tid and s.sg_tables[0].waiting
    assert exp.st(s).pins == 1  # pinned before the wait
    s, sig = fire(model, s, "toy: signal KERNEL fence")
    s = run_thread(s, sig)
    s = run_thread(run_engines(run_thread_until_blocked(s, tid)), tid)
    assert job_ret(s, tid) == 0 and exp.st(s).pins == 0


def test_signal_during_kernel_fence_wait_unmaps_unpins_and_returns_erestartsys() -> None:
    """An interrupted KERNEL fence wait undoes map and pin and fails the map.

    core-semantics §5.6 step 3 (-ERESTARTSYS), §10 #16.
    """
    topo = Topology.simple(["disp0"], ram=1)
    system = DmaBufSystem(topo)
    exp = system.add_exporter(ToyPinnableExporter, device="gpu", kernel_fence=True)
    system.add_importer(StaticImporter, device="disp0", source=exp, signal_during_map_wait=True)
    model = system.model()
    assert isinstance(exp, ToyPinnableExporter)
    s, tid = fire(model, model.init_states()[0], "static: import job")
    s = run_thread(s, tid)
    assert job_ret(s, tid) == -errno.ERESTARTSYS
    assert exp.st(s).pins == 0 and not s.sg_tables[0].live and s.attachments[0].detached
    assert platform(s).mappings[0].live is False


def test_vfio_refuses_a_static_importer_with_eopnotsupp() -> None:
    """VFIO's attach needs peer2peer, which a static importer never has (drivers.md §1.8, §7)."""
    topo = Topology.simple(["vfio0", "disp0"])
    system = DmaBufSystem(topo)
    vfio = system.add_exporter(VfioPciExporter, device="vfio0", flr_budget=0)
    system.add_importer(StaticImporter, device="disp0", source=vfio)
    model = system.model()
    s0 = model.init_states()[0]
    s, tid = fire(model, s0, "static: import job")
    s = run_thread(s, tid)
    assert job_ret(s, tid) == -errno.EOPNOTSUPP
    assert s.bufs[0].attachments == () and s.bufs[0].file_refcount == s0.bufs[0].file_refcount


def test_map_error_is_returned_and_the_attachment_detached() -> None:
    """A failing map_dma_buf (the heap cannot DMA-map onto a non-PCI device: -EINVAL)."""
    model, _, _ = heap_system(importer_device="v4l2")
    s, tid = fire(model, model.init_states()[0], "static: import job")
    s = run_thread(s, tid)
    assert job_ret(s, tid) == -errno.EINVAL
    assert s.attachments[0].detached and s.sg_tables == ()


def test_job_after_the_last_fd_is_closed_fails_with_ebadf() -> None:
    """dma_buf_get on a closed descriptor is -EBADF (core-semantics §5.2)."""
    topo = Topology.simple(["disp0"])
    system = DmaBufSystem(topo)
    heap = system.add_exporter(SystemHeapExporter, device="system")
    system.add_importer(StaticImporter, device="disp0", source=heap)
    model = system.model()
    s, close = fire(model, model.init_states()[0], "system-heap: close(dma-buf fd)")
    s = run_thread(s, close)
    assert s.bufs[0].released
    s, tid = fire(model, s, "static: import job")
    s = run_thread(s, tid)
    assert job_ret(s, tid) == -errno.EBADF and s.attachments == ()


def test_abort_of_a_mapping_stops_its_transfer_and_signals_the_fence_with_ecanceled() -> None:
    """dma_abort_mapping_transfers: the transfer never runs; its fence carries -ECANCELED."""
    model, _, _ = heap_system()
    s = model.init_states()[0]
    ps, mid = dma_map_phys(platform(s), Topology.simple(["disp0"], non_pci=["v4l2"]), "disp0", 0)
    s = set_platform(s, ps)
    s, ctx = dma_fence_context_alloc(s, 1)
    s, f = dma_fence_init(s, ctx, 1)
    s, xid = device_dma_submit(
        s, Topology.simple(["disp0"], non_pci=["v4l2"]), "disp0", mid, write=True, fence=f
    )
    s = dma_abort_mapping_transfers(s, (mid,))
    assert platform(s).transfers[xid].status is TransferStatus.ABORTED
    assert dma_fence_get_status(s, f) == -errno.ECANCELED
    s = run_engines(s)  # the engine thread finds nothing to run
    assert platform(s).findings == ()


# --- exhaustive ----------------------------------------------------------------------------------


def _job_done(s: KState) -> bool:
    return any(t.name == "static job" and t.done and t.local("ret") == 0 for t in world(s).threads)


def test_heap_and_static_importer_keep_every_property_in_every_interleaving() -> None:
    """Heap x static with the fd closed at any time: no violation, and a job completes.

    drivers.md §5.1, §7; core-semantics §10.
    """
    topo = Topology.simple(["disp0"], iommu=False)
    system = DmaBufSystem(topo)
    heap = system.add_exporter(SystemHeapExporter, device="system")
    system.add_importer(StaticImporter, device="disp0", source=heap)
    system.extra_properties.append(Property.sometimes("job_done", _job_done))
    result = check(system.model())
    result.assert_properties()
    assert result.complete and result.stats.unique == 60


def test_unmapping_before_the_dma_finished_is_a_dma_violation() -> None:
    """The broken driver unmaps while its DMA is in flight: the access lands after unmap.

    core-semantics §5.8 ("touching memory after unmap is a serious bug"), §10 #18.
    """
    model, _, _ = heap_system(iommu=False, wait_dma_before_unmap=False)
    result = check(model)
    path = result.discovery("no_dma_violation")
    assert path is not None
    assert [str(a) for a in path.actions][-2:] == [
        "T1 static job: dma_buf_unmap_attachment_unlocked",
        "T2 disp0 DMA engine: dma_engine_run",
    ]
    assert findings_of(platform(path.states[-1]), FindingKind.DMA_AFTER_UNMAP)


def test_behind_an_iommu_the_late_dma_of_the_broken_driver_faults_safely() -> None:
    """With an IOMMU the unmapped IOVA is gone: an IOMMU fault, not a violation (§6 DOC)."""
    model, _, _ = heap_system(iommu=True, wait_dma_before_unmap=False)
    result = check(model)
    result.assert_no_discovery("no_dma_violation")
