"""The vfio-pci BAR exporter: export errnos, attach/map rules, every revoke trigger, options.

drivers.md §1 (§1.1 request validation in order, §1.2 callbacks, §1.3 revoke / unrevoke /
cleanup with the kref re-arm, §1.4 triggers, §1.5 states, §1.6 permanent revoke, §1.7 lock
order, §1.8 importer combinations), §6 (dma_buf_phys_vec_to_sgt) and core-semantics §5.8.
Importers other than iommufd are tiny local stand-ins (``RevocableStandIn``) or the project's
StaticImporter.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, replace
from typing import Any, ClassVar, cast

import pytest
from driver_helpers import run, settle

from dmabuf_model.check import check
from dmabuf_model.drivers.amdgpu import AmdgpuImporter
from dmabuf_model.drivers.base import DriverEnv, DriverError, Importer, Option, platform
from dmabuf_model.drivers.compose import DmaBufSystem
from dmabuf_model.drivers.static_importer import StaticImporter
from dmabuf_model.drivers.vfio_pci import (
    DMA_IOVA_USE_SWIOTLB,
    VFIO_DEVICE_FEATURE_DMA_BUF,
    VFIO_DEVICE_FEATURE_GET,
    VFIO_DEVICE_FEATURE_PROBE,
    VFIO_DEVICE_FEATURE_SET,
    VfioDeviceFeatureDmaBuf,
    VfioDmaBufStatus,
    VfioPciDmaBuf,
    VfioPciExporter,
    VfioRegionDmaRange,
    vfio_check_feature,
    vfio_dma_buf,
    vfio_pci_dma_buf_iommufd_map,
    whole_bar_request,
)
from dmabuf_model.drivers.xe import XeImporter
from dmabuf_model.kernel import errno
from dmabuf_model.kernel.dma_buf import (
    PAGE_SIZE,
    RLIMIT_NOFILE,
    DmaBufAttachOps,
    DmaBufOps,
    DmaDataDirection,
    dma_buf_attach,
    dma_buf_dynamic_attach,
    dma_buf_export,
    dma_buf_map_attachment,
    dma_buf_pin,
    dma_buf_unmap_attachment,
    live_sgts,
)
from dmabuf_model.kernel.dma_fence import (
    dma_fence_context_alloc,
    dma_fence_init,
    dma_fence_is_signaled,
    dma_fence_signal,
)
from dmabuf_model.kernel.dma_resv import (
    DmaResvUsage,
    dma_resv_add_fence,
    dma_resv_lock,
    dma_resv_reserve_fences,
    dma_resv_unlock,
)
from dmabuf_model.kernel.locking import RwSemaphore, down_write
from dmabuf_model.kernel.state import Blocked, KState, Tid
from dmabuf_model.platform.dma import (
    DmaPath,
    MappingState,
    TransferStatus,
    dma_engine_pending,
    dma_engine_run,
    dma_submit,
)
from dmabuf_model.platform.memory import GenCause
from dmabuf_model.platform.oracle import FindingKind, no_dma_violation
from dmabuf_model.platform.pci import PciPowerState
from dmabuf_model.platform.topology import Topology
from dmabuf_model.system.model import SystemModel, ThreadStep, run_step, run_thread
from dmabuf_model.system.threads import (
    Branches,
    Program,
    StepResult,
    Thread,
    finish,
    goto,
    program,
    spawn,
    world,
)

BIDI = DmaDataDirection.BIDIRECTIONAL
TID = 50
"""A thread id for direct kernel calls made by the tests (no such thread exists)."""


# --- a tiny revocable importer (mlx5 ODP / GPU-like), drivers.md §1.8 -----------------------------


@dataclass(frozen=True, slots=True)
class StandInState:
    """attach/sgt: its attachment and live table (-1: none); job: its DMA fence; xfer: its
    transfer; invalidations: how often invalidate_mappings reached it; ctx: its fence context."""

    attach: int = -1
    sgt: int = -1
    job: int = -1
    xfer: int = -1
    invalidations: int = 0
    ctx: int = 0


class RevocableStandIn(Importer):
    """A dynamic peer2peer importer that maps through map_dma_buf and DMAs through the table.

    invalidate_mappings (under the exporter's resv) spawns a worker that waits for its DMA fence
    and then unmaps under the resv: the bounded-time unmap of core-semantics §6.5. Options:
    ``p2p`` (allow_peer2peer), ``revocable`` (provide invalidate_mappings), ``never_unmap``
    (the broken importer that never unmaps), budgets ``map_budget`` and ``dma_budget``.
    """

    kind: ClassVar[str] = "standin"
    OPTIONS: ClassVar[dict[str, Option]] = {
        "p2p": Option(True, "allow_peer2peer"),
        "revocable": Option(True, "provide invalidate_mappings"),
        "never_unmap": Option(False, "broken: never unmap after an invalidation"),
        "map_budget": Option(1, "attach+map jobs"),
        "dma_budget": Option(0, "DMA writes through the table"),
    }

    def __init__(
        self, slot: int, env: DriverEnv, *, device: str, name: str = "", **options: Any
    ) -> None:
        super().__init__(slot, env, device=device, name=name, **options)
        self.ops = DmaBufAttachOps(
            "standin_ops",
            allow_peer2peer=bool(self.options["p2p"]),
            invalidate_mappings=self.invalidate if self.options["revocable"] else None,
        )
        self.map_prog = program("standin: map", ("attach", self._attach), ("map", self._map))
        self.dma_prog = program(
            "standin: dma", ("lock resv, submit", self._submit), ("engine, signal", self._run)
        )
        self.unmap_prog = program(
            "standin: unmap worker", ("wait job", self._wait), ("lock resv, unmap", self._unmap)
        )

    def init_state(self) -> Hashable:
        return StandInState()

    def state(self, s: KState) -> StandInState:
        return cast(StandInState, super().state(s))

    def setup(self, s: KState) -> KState:
        s, ctx = dma_fence_context_alloc(s, 1)
        return self.update(s, ctx=ctx)

    def attach_ops(self) -> DmaBufAttachOps:
        return self.ops

    def _buf(self, s: KState) -> int:
        assert self.source is not None
        return self.source.buffers(s)[0]

    def _attach(self, s: KState, t: Thread) -> StepResult:
        r = dma_buf_dynamic_attach(s, t.tid, self._buf(s), self.device, self.ops)
        if isinstance(r, Blocked):
            return r
        s, a = r
        if a < 0:
            return finish(s, t, ret=a)
        return goto(self.update(s, attach=a), t, "map")

    def _map(self, s: KState, t: Thread) -> StepResult:
        resv = s.bufs[self._buf(s)].resv
        r = dma_resv_lock(s, t.tid, resv, None)
        if isinstance(r, Blocked):
            return r
        m = dma_buf_map_attachment(r[0], t.tid, self.state(s).attach, BIDI)
        assert not isinstance(m, Blocked)
        s, sgt = m
        s = dma_resv_unlock(s, t.tid, resv)
        if sgt >= 0:
            s = self.update(s, sgt=sgt)
        return finish(s, t, ret=min(sgt, 0))

    def _submit(self, s: KState, t: Thread) -> StepResult:
        st = self.state(s)
        resv = s.bufs[self._buf(s)].resv
        r = dma_resv_lock(s, t.tid, resv, None)
        if isinstance(r, Blocked):
            return r
        s = r[0]
        table = s.sg_tables[st.sgt] if st.sgt >= 0 else None
        if table is None or not table.live or table.invalidated:
            return finish(dma_resv_unlock(s, t.tid, resv), t, ret=-errno.EAGAIN)
        s, f = dma_fence_init(s, st.ctx, 1)
        s, _ = dma_resv_reserve_fences(s, t.tid, resv, 1)
        s = dma_resv_add_fence(s, t.tid, resv, f, DmaResvUsage.BOOKKEEP)
        mid = cast(int, table.entries[0])
        ps, xid = dma_submit(platform(s), self.topology, self.device, mid, write=True, fence=f)
        s = self.update(s.evolve(ext=replace(world(s), platform=ps)), job=f, xfer=xid)
        return goto(dma_resv_unlock(s, t.tid, resv), t, "engine, signal")

    def _run(self, s: KState, t: Thread) -> StepResult:
        ps = platform(s)
        if dma_engine_pending(ps, self.device):
            ps, _ = dma_engine_run(ps, self.topology, self.device)
        s = s.evolve(ext=replace(world(s), platform=ps))
        return finish(dma_fence_signal(s, self.state(s).job), t, ret=0)

    def invalidate(self, s: KState, tid: Tid, attach: int) -> KState:
        s = self.update(s, invalidations=self.state(s).invalidations + 1)
        if self.options["never_unmap"] or self.state(s).sgt < 0:
            return s
        s, _ = spawn(s, self.unmap_prog)
        return s

    def _wait(self, s: KState, t: Thread) -> StepResult:
        job = self.state(s).job
        if job >= 0 and not dma_fence_is_signaled(s, job):
            return Blocked(on=f"fence{job}")
        return goto(s, t, "lock resv, unmap")

    def _unmap(self, s: KState, t: Thread) -> StepResult:
        st = self.state(s)
        resv = s.bufs[self._buf(s)].resv
        r = dma_resv_lock(s, t.tid, resv, None)
        if isinstance(r, Blocked):
            return r
        s = r[0]
        if st.sgt >= 0 and s.sg_tables[st.sgt].live:
            s = dma_buf_unmap_attachment(s, t.tid, st.attach, st.sgt, BIDI)
        s = self.update(s, sgt=-1)
        return finish(dma_resv_unlock(s, t.tid, resv), t, ret=0)

    def events(self) -> list[Any]:
        from dmabuf_model.system.model import EnvEvent

        evs = []
        if self.options["map_budget"]:
            evs.append(EnvEvent("standin: map", self.map_prog, int(self.options["map_budget"])))
        if self.options["dma_budget"]:
            evs.append(
                EnvEvent(
                    "standin: dma",
                    self.dma_prog,
                    int(self.options["dma_budget"]),
                    guard=lambda s: self.state(s).sgt >= 0,
                )
            )
        return evs


# --- helpers --------------------------------------------------------------------------------------


def machine(*devices: str, **kw: Any) -> Topology:
    """vfio0 and an importing GPU below one switch (BUS_ADDR P2P), iommufd's misc device."""
    return Topology.simple(list(devices or ("vfio0", "gpu0")), non_pci=["iommufd"], **kw)


def vfio_system(
    topo: Topology | None = None,
    *,
    importer: bool = False,
    imp: dict[str, Any] | None = None,
    **opts: Any,
) -> tuple[DmaBufSystem, VfioPciExporter, RevocableStandIn | None]:
    system = DmaBufSystem(topo or machine())
    vfio = cast(VfioPciExporter, system.add_exporter(VfioPciExporter, device="vfio0", **opts))
    stand: RevocableStandIn | None = None
    if importer:
        stand = cast(
            RevocableStandIn,
            system.add_importer(RevocableStandIn, device="gpu0", source=vfio, **(imp or {})),
        )
    return system, vfio, stand


def run_until_blocked(s: KState, prog: Program) -> tuple[KState, Blocked, Thread]:
    """Run ``prog`` until its next step is Blocked; the state, the Blocked and the thread."""
    s, tid = spawn(s, prog)
    while True:
        t = world(s).threads[tid]
        assert not t.done, f"{prog.name} finished without blocking"
        out = run_step(s, t)
        if isinstance(out, Branches):
            out = out.alternatives[0][1]()
        if isinstance(out, Blocked):
            return s, out, t
        s = out


def buf0(vfio: VfioPciExporter, s: KState) -> VfioPciDmaBuf:
    return vfio.state(s).dmabufs[0]


def feature(vfio: VfioPciExporter, s: KState, req: VfioDeviceFeatureDmaBuf, **kw: Any) -> Any:
    r = vfio.vfio_pci_core_feature_dma_buf(s, TID, req, **kw)
    assert not isinstance(r, Blocked)
    return r


def mapped(system: DmaBufSystem, stand: RevocableStandIn) -> KState:
    """Boot, then run the stand-in's attach+map job: one live mapping of buf0."""
    s = system.initial_state()
    s, ret = run(s, stand.map_prog)
    assert ret == 0
    return s


# --- §1.1 VFIO_DEVICE_FEATURE_DMA_BUF -------------------------------------------------------------

BAR = 2 * PAGE_SIZE  # Topology.simple gives each function one BAR of 2 pages
R = VfioRegionDmaRange
GOOD = VfioDeviceFeatureDmaBuf(dma_ranges=(R(0, BAR),))


@pytest.mark.parametrize(
    ("req", "opts", "expected"),
    [
        # Step 1: CONFIG off, then a variant without get_dmabuf_phys; both before anything else.
        (replace(GOOD, nr_ranges=0), {"config_vfio_pci_dmabuf": False}, -errno.ENOTTY),
        (replace(GOOD, nr_ranges=0), {"has_get_dmabuf_phys": False}, -errno.EOPNOTSUPP),
        # Step 2: vfio_check_feature.
        (
            replace(GOOD, feature_flags=VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_DMA_BUF),
            {},
            -errno.EINVAL,
        ),
        (replace(GOOD, feature_flags=VFIO_DEVICE_FEATURE_DMA_BUF), {}, -errno.EINVAL),
        (replace(GOOD, argsz=15), {}, -errno.EINVAL),
        # Step 3: copy_from_user of the header.
        (replace(GOOD, fault="header", flags=1), {}, -errno.EFAULT),
        # Step 4: nr_ranges 0 or flags set, before the region index is looked at.
        (replace(GOOD, nr_ranges=0, region_index=7), {}, -errno.EINVAL),
        (replace(GOOD, flags=1 << 28, region_index=7), {}, -errno.EINVAL),
        # Step 5: region index >= the ROM region, or a BAR the function does not have.
        (replace(GOOD, region_index=6), {}, -errno.ENODEV),
        (replace(GOOD, region_index=1), {}, -errno.ENODEV),
        # Step 6: the range array cannot be copied.
        (replace(GOOD, fault="ranges"), {}, -errno.EFAULT),
        (replace(GOOD, nr_ranges=2), {}, -errno.EFAULT),
        # Step 7: zero, unaligned, overflowing or absurd lengths.
        (replace(GOOD, dma_ranges=(R(0, 0),)), {}, -errno.EINVAL),
        (replace(GOOD, dma_ranges=(R(100, PAGE_SIZE),)), {}, -errno.EINVAL),
        (replace(GOOD, dma_ranges=(R(0, PAGE_SIZE + 1),)), {}, -errno.EINVAL),
        (
            replace(GOOD, nr_ranges=2, dma_ranges=(R(0, 1 << 63), R(0, 1 << 63))),
            {},
            -errno.EINVAL,
        ),
        (replace(GOOD, dma_ranges=(R(0, DMA_IOVA_USE_SWIOTLB),)), {}, -errno.EINVAL),
        # Step 8: get_dmabuf_phys: no provider, address overflow, past the BAR.
        (GOOD, {"p2pdma_provider": False}, -errno.EINVAL),
        (replace(GOOD, dma_ranges=(R((1 << 64) - PAGE_SIZE, PAGE_SIZE),)), {}, -errno.EOVERFLOW),
        (replace(GOOD, dma_ranges=(R(PAGE_SIZE, BAR),)), {}, -errno.EINVAL),
    ],
)
def test_feature_dma_buf_validates_the_request_in_the_kernel_order(
    req: VfioDeviceFeatureDmaBuf, opts: dict[str, Any], expected: int
) -> None:
    """Each check of drivers.md §1.1 returns its errno, before any buffer exists."""
    system, vfio, _ = vfio_system(buffers=0, **opts)
    s = system.initial_state()
    s2, ret = feature(vfio, s, req)
    assert ret == expected
    assert s2.bufs == () and vfio.state(s2).dmabufs == ()


def test_feature_probe_returns_zero_and_exports_nothing() -> None:
    """A PROBE-only call reports support with 0 (vfio_check_feature, §1.1 step 2)."""
    system, vfio, _ = vfio_system(buffers=0)
    probe = VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_DMA_BUF
    s, ret = feature(vfio, system.initial_state(), replace(GOOD, feature_flags=probe))
    assert ret == 0 and s.bufs == ()
    assert vfio_check_feature(probe, 0, VFIO_DEVICE_FEATURE_GET, 16) == 0


def test_feature_copy_failure_of_the_range_array_is_enomem() -> None:
    """memdup_array_user can fail to allocate (§1.1 step 6)."""
    system, vfio, _ = vfio_system(buffers=0)
    _, ret = feature(vfio, system.initial_state(), GOOD, alloc_fails=True)
    assert ret == -errno.ENOMEM


def test_feature_refuses_an_unregistering_device_with_enodev() -> None:
    """vfio_device_try_get_registration fails once hot-unplug started (§1.1 step 9)."""
    system, vfio, _ = vfio_system(buffers=0)
    s = system.initial_state()
    s = vfio.set_state(s, replace(vfio.state(s), unregistering=True))
    _, ret = feature(vfio, s, GOOD)
    assert ret == -errno.ENODEV


def test_feature_exports_a_linked_buffer_and_returns_its_fd() -> None:
    """Success: a dma-buf of the slices' total size, on the device list with a registration,
    not revoked while memory decoding is on, and an fd that dma_buf_get accepts (§1.1)."""
    system, vfio, _ = vfio_system(buffers=0)
    s = system.initial_state()
    req = whole_bar_request(system.topology, "vfio0", nr_ranges=2)
    s, fd = feature(vfio, s, req)
    assert fd == 3 and s.fd_table == ((3, "dma_buf", 0),)
    d = buf0(vfio, s)
    assert d.status is VfioDmaBufStatus.OK and d.linked and d.fd == 3
    assert d.phys_vec == ((0, 1), (1, 1)) and d.size == BAR == s.bufs[0].size
    assert vfio.state(s).registrations == 1 and d.kref == 1
    assert s.bufs[0].ops.name == "vfio_pci_dmabuf_ops" and s.resvs[0].holder == -1
    assert s.locks[vfio.state(s).memory_lock] == RwSemaphore("vfio0.memory_lock")


def test_feature_blocks_while_another_thread_holds_memory_lock() -> None:
    """The export takes memory_lock (write) before the resv (§1.7): it waits, without effect."""
    system, vfio, _ = vfio_system(buffers=0)
    s = system.initial_state()
    held = down_write(s, 7, vfio.state(s).memory_lock)
    assert isinstance(held, KState)
    r = vfio.vfio_pci_core_feature_dma_buf(held, TID, GOOD)
    assert r == Blocked(on="vfio0.memory_lock", holder=7)


def test_buffer_exported_while_memory_decoding_is_off_starts_revoked() -> None:
    """With PCI_COMMAND_MEMORY clear the new buffer is revoked: attach gets -ENODEV (§1.1)."""
    system, vfio, _ = vfio_system(memory_enabled_at_boot=False)
    s = system.initial_state()
    assert buf0(vfio, s).status is VfioDmaBufStatus.TEMP_REVOKED
    ops = DmaBufAttachOps("p2p", allow_peer2peer=True, invalidate_mappings=lambda s, t, a: s)
    r = dma_buf_dynamic_attach(s, TID, 0, "gpu0", ops)
    assert not isinstance(r, Blocked) and r[1] == -errno.ENODEV


def test_failed_dma_buf_fd_puts_the_buffer_which_unlinks_itself() -> None:
    """dma_buf_fd's -EMFILE is returned; dma_buf_put releases the buffer, whose release takes
    it off the list and drops the registration (§1.1 step 10, §1.2 release)."""
    system, vfio, _ = vfio_system(buffers=0)
    s = system.initial_state()
    s = s.evolve(fd_table=tuple((1000 + i, "other", 0) for i in range(RLIMIT_NOFILE)))
    s, ret = feature(vfio, s, GOOD)
    assert ret == -errno.EMFILE
    assert s.bufs[0].released and buf0(vfio, s).freed and not buf0(vfio, s).linked
    assert vfio.state(s).registrations == 0 and vfio.buffers(s) == ()


def test_whole_bar_request_rejects_more_slices_than_pages() -> None:
    """The helper cuts whole pages only; a BAR of 2 pages has at most 2 slices."""
    with pytest.raises(ValueError, match=r"^vfio0 BAR0 has 2 pages; cannot cut 3$"):
        whole_bar_request(machine(), "vfio0", nr_ranges=3)


def test_bad_options_are_refused_with_the_valid_choices() -> None:
    """A non-PCI device or an unknown watchdog mode is a configuration error."""
    topo = machine()
    with pytest.raises(DriverError, match=r"not a PCI function"):
        DmaBufSystem(topo).add_exporter(VfioPciExporter, device="iommufd")
    with pytest.raises(DriverError, match=r"choose False, 'warn' \(True\) or 'give_up'"):
        DmaBufSystem(topo).add_exporter(VfioPciExporter, device="vfio0", watchdog_1s="maybe")


# --- §1.2 attach and map, §1.8 importer combinations ----------------------------------------------


def _attach(s: KState, ops: DmaBufAttachOps | None, dev: str = "gpu0") -> int:
    r = dma_buf_dynamic_attach(s, TID, 0, dev, ops) if ops else dma_buf_attach(s, TID, 0, dev)
    assert not isinstance(r, Blocked)
    return r[1]


def _noop(s: KState, tid: Tid, attach: int) -> KState:
    return s


@pytest.mark.parametrize(
    ("ops", "expected"),
    [
        (None, -errno.EOPNOTSUPP),  # static importer: peer2peer is false
        (DmaBufAttachOps("no_p2p", False, _noop), -errno.EOPNOTSUPP),
        (DmaBufAttachOps("pinned_no_invalidate", True, None), -errno.EOPNOTSUPP),
        (DmaBufAttachOps("revocable", True, _noop), 0),
    ],
)
def test_attach_accepts_only_peer2peer_revocable_importers(
    ops: DmaBufAttachOps | None, expected: int
) -> None:
    """drivers.md §1.2 attach and §1.8: static, non-P2P and non-revocable importers are
    refused with -EOPNOTSUPP; a P2P revocable importer is accepted (attach0)."""
    system, _, _ = vfio_system()
    assert _attach(system.initial_state(), ops) == expected


def test_dma_buf_pin_is_a_core_no_op_because_vfio_has_no_pin() -> None:
    """No pin/unpin since v7: dma_buf_pin returns 0, so pinned revocable importers work (§1.2)."""
    system, _, _ = vfio_system()
    s = system.initial_state()
    assert s.bufs[0].ops.pin is None
    r = dma_buf_dynamic_attach(s, TID, 0, "gpu0", DmaBufAttachOps("x", True, _noop))
    assert not isinstance(r, Blocked)
    r2 = dma_resv_lock(r[0], TID, 0, None)
    assert not isinstance(r2, Blocked)
    s, ret = dma_buf_pin(r2[0], TID, 0)
    assert ret == 0 and s.attachments[0].pins == 1


def test_map_hands_out_device_mappings_and_counts_them_in_the_kref() -> None:
    """map_dma_buf maps each slice for the importer (BUS_ADDR behind one switch) and takes a
    kref; unmap frees the mappings and drops it (§1.2, §6)."""
    system, vfio, stand = vfio_system(importer=True)
    assert stand is not None
    s = mapped(system, stand)
    sgt = s.sg_tables[0]
    assert sgt.entries == (0,) and buf0(vfio, s).kref == 2
    m = platform(s).mappings[0]
    assert (m.dev, m.range, m.npages, m.path, m.state) == (
        "gpu0",
        system.topology.bar("vfio0"),
        2,
        DmaPath.BUS_ADDR,
        MappingState.LIVE,
    )
    r = dma_resv_lock(s, TID, 0, None)
    assert not isinstance(r, Blocked)
    s = dma_resv_unlock(dma_buf_unmap_attachment(r[0], TID, 0, 0, BIDI), TID, 0)
    assert buf0(vfio, s).kref == 1 and platform(s).mappings[0].state is MappingState.UNMAPPED
    assert not s.warnings


def test_map_without_a_p2p_path_fails_with_einval() -> None:
    """dma_buf_phys_vec_to_sgt: MAP_NOT_SUPPORTED gives -EINVAL at map, after a good attach
    (§1.8 last row, §6)."""
    system, vfio, stand = vfio_system(machine(no_p2p=True), importer=True)
    assert stand is not None
    s, ret = run(system.initial_state(), stand.map_prog)
    assert ret == -errno.EINVAL and stand.state(s).attach == 0
    assert buf0(vfio, s).kref == 1 and platform(s).mappings == ()


def test_map_and_private_map_without_resv_held_warn() -> None:
    """map_dma_buf and vfio_pci_dma_buf_iommufd_map assert the resv (WARN #8, §1.2)."""
    system, vfio, _ = vfio_system()
    s = system.initial_state()
    r = dma_buf_dynamic_attach(s, TID, 0, "gpu0", DmaBufAttachOps("x", True, _noop))
    assert not isinstance(r, Blocked)
    s, _ = vfio.vfio_pci_dma_buf_map(r[0], TID, 0, BIDI)
    s, phys = vfio_pci_dma_buf_iommufd_map(s, TID, 0)
    assert phys == (system.topology.bar("vfio0"), 0, 2)
    assert [(w.invariant, w.what) for w in s.warnings] == [
        (8, "vfio_pci_dma_buf_map without resv held"),
        (8, "vfio_pci_dma_buf_iommufd_map without resv held"),
    ]


def _private_map(s: KState) -> Any:
    r = dma_buf_dynamic_attach(s, TID, 0, "iommufd", DmaBufAttachOps("x", True, _noop))
    assert not isinstance(r, Blocked)
    r2 = dma_resv_lock(r[0], TID, 0, None)
    assert not isinstance(r2, Blocked)
    return vfio_pci_dma_buf_iommufd_map(r2[0], TID, r[1])[1]


def test_private_iommufd_map_refuses_multi_range_and_revoked_buffers() -> None:
    """vfio_pci_dma_buf_iommufd_map: one range only (-EOPNOTSUPP), -ENODEV while revoked,
    otherwise the physical range (§1.2)."""
    system, _, _ = vfio_system(nr_ranges=2)
    assert _private_map(system.initial_state()) == -errno.EOPNOTSUPP
    system, vfio, _ = vfio_system()
    s = system.initial_state()
    assert _private_map(s) == (system.topology.bar("vfio0"), 0, 2)
    # Revoked after attach: the private map itself says -ENODEV.
    s = system.initial_state()
    r = dma_buf_dynamic_attach(s, TID, 0, "iommufd", DmaBufAttachOps("x", True, _noop))
    assert not isinstance(r, Blocked)
    s = r[0]
    d = buf0(vfio, s)
    s = vfio.set_state(
        s, replace(vfio.state(s), dmabufs=(replace(d, status=VfioDmaBufStatus.TEMP_REVOKED),))
    )
    r2 = dma_resv_lock(s, TID, 0, None)
    assert not isinstance(r2, Blocked)
    assert vfio_pci_dma_buf_iommufd_map(r2[0], TID, 0)[1] == -errno.ENODEV


def test_private_iommufd_map_refuses_a_buffer_of_another_exporter() -> None:
    """Any other exporter's buffer gets -EOPNOTSUPP (§1.2, §2.1 step 4)."""
    s = KState()

    def never(*args: Any) -> Any:
        raise AssertionError("not called")

    ops = DmaBufOps("other", map_dma_buf=never, unmap_dma_buf=never, release=never)
    s, buf = dma_buf_export(s, TID, ops=ops, size=PAGE_SIZE, priv="other")
    r = dma_buf_dynamic_attach(s, TID, buf, "iommufd", DmaBufAttachOps("x", True, _noop))
    assert not isinstance(r, Blocked)
    r2 = dma_resv_lock(r[0], TID, 0, None)
    assert not isinstance(r2, Blocked)
    assert vfio_pci_dma_buf_iommufd_map(r2[0], TID, 0)[1] == -errno.EOPNOTSUPP


def test_static_importer_is_refused_with_eopnotsupp_end_to_end() -> None:
    """vfio × static importer (§7 extra row, §1.8): the import job ends with -EOPNOTSUPP."""
    system = DmaBufSystem(machine())
    vfio = system.add_exporter(VfioPciExporter, device="vfio0")
    static = cast(StaticImporter, system.add_importer(StaticImporter, device="gpu0", source=vfio))
    s, ret = run(system.initial_state(), static.job_program)
    assert ret == -errno.EOPNOTSUPP
    assert s.attachments[0].detached and s.bufs[0].file_refcount == 1


def test_pinned_importer_without_invalidate_is_refused_end_to_end() -> None:
    """vfio × RDMA pinned (legacy): no invalidate_mappings, so attach fails (§1.8, §7)."""
    system, _, stand = vfio_system(importer=True, imp={"revocable": False})
    assert stand is not None
    s, ret = run(system.initial_state(), stand.map_prog)
    assert ret == -errno.EOPNOTSUPP and s.attachments[0].detached


# --- §1.3 revoke, unrevoke and the kref re-arm; §1.4 triggers -------------------------------------


def test_flr_revokes_drains_resets_and_unrevokes() -> None:
    """VFIO_DEVICE_RESET: memory_lock, per buffer resv → revoked → invalidate → BOOKKEEP wait
    → unlock → kref_put and wait for the unmap → re-arm; then the FLR (BAR generation ends);
    then unrevoke because decoding is still on (§1.3, §1.4, core-semantics §5.8)."""
    system, vfio, stand = vfio_system(importer=True)
    assert stand is not None
    s = mapped(system, stand)
    s, ret = run(s, vfio.op_program("reset"))  # the importer's unmap worker runs too
    assert ret == 0
    assert stand.state(s).invalidations == 2  # revoke, and mainline's unrevoke invalidate
    d = buf0(vfio, s)
    assert d.status is VfioDmaBufStatus.OK and not d.drained
    assert (d.kref, d.base_ref, d.comp_done) == (1, True, False)  # re-armed
    bar = system.topology.bar("vfio0")
    assert platform(s).ranges[bar].history == (GenCause.RESET,)
    assert not platform(s).ranges[bar].revoked and live_sgts(s, 0) == ()
    assert s.locks[vfio.state(s).memory_lock] == RwSemaphore("vfio0.memory_lock")
    assert not s.warnings and no_dma_violation(platform(s))


def test_revoke_waits_for_the_unmap_with_memory_lock_held_and_resv_dropped() -> None:
    """Lock order memory_lock → resv (§1.7): the wait for unmaps holds memory_lock but not the
    resv, so the importer's worker can take the resv and unmap."""
    system, vfio, stand = vfio_system(importer=True, imp={"never_unmap": True})
    assert stand is not None
    s = mapped(system, stand)
    s, blocked, t = run_until_blocked(s, vfio.op_program("reset"))
    assert blocked == Blocked(on="completion of buf0 (every mapping unmapped)")
    assert t.pc == "vfio_pci_dma_buf_move(revoked=true): kref_put, wait_for_completion"
    lock = s.locks[vfio.state(s).memory_lock]
    assert isinstance(lock, RwSemaphore) and lock.writer == t.tid
    assert s.resvs[0].holder == -1
    d = buf0(vfio, s)
    assert (d.status, d.kref, d.base_ref) == (VfioDmaBufStatus.TEMP_REVOKED, 1, False)
    # The importer finally unmaps: the completion fires and the revoke goes on.
    s, worker = spawn(s, stand.unmap_prog)
    s = run_thread(s, worker)
    assert buf0(vfio, s).comp_done
    s = run_thread(s, t.tid)
    assert buf0(vfio, s).status is VfioDmaBufStatus.OK


def test_revoke_waits_for_bookkeep_fences_under_the_resv() -> None:
    """Step 4 of the revoke waits for every fence (BOOKKEEP) with the resv held (§5.8)."""
    system, vfio, stand = vfio_system(importer=True, imp={"dma_budget": 1})
    assert stand is not None
    s = mapped(system, stand)
    s, tid = spawn(s, stand.dma_prog)
    s2 = run_step(s, world(s).threads[tid])
    assert isinstance(s2, KState)
    s, blocked, t = run_until_blocked(s2, vfio.op_program("reset"))
    job = stand.state(s).job
    assert blocked == Blocked(on=f"fence{job}")
    assert t.pc == "vfio_pci_dma_buf_move(revoked=true): wait BOOKKEEP fences, unlock resv"
    assert s.resvs[0].holder == t.tid


@pytest.mark.parametrize(
    ("keys", "status", "mem", "power", "causes"),
    [
        (("mem_off",), VfioDmaBufStatus.TEMP_REVOKED, False, PciPowerState.D0, ()),
        (("mem_off", "mem_on"), VfioDmaBufStatus.OK, True, PciPowerState.D0, ()),
        (("d3",), VfioDmaBufStatus.TEMP_REVOKED, True, PciPowerState.D3hot, ()),
        (("d3", "d0"), VfioDmaBufStatus.OK, True, PciPowerState.D0, (GenCause.RESET,)),
        (("low_power_entry",), VfioDmaBufStatus.TEMP_REVOKED, True, PciPowerState.D3hot, ()),
        (
            ("low_power_entry", "low_power_exit"),
            VfioDmaBufStatus.OK,
            True,
            PciPowerState.D0,
            (GenCause.RESET,),
        ),
        (("reset",), VfioDmaBufStatus.OK, True, PciPowerState.D0, (GenCause.RESET,)),
        (
            ("mem_off", "reset"),
            VfioDmaBufStatus.TEMP_REVOKED,
            False,
            PciPowerState.D0,
            (GenCause.RESET,),
        ),
    ],
)
def test_each_trigger_revokes_and_unrevokes_only_with_memory_decoding_on(
    keys: tuple[str, ...],
    status: VfioDmaBufStatus,
    mem: bool,
    power: PciPowerState,
    causes: tuple[GenCause, ...],
) -> None:
    """§1.4: memory off, D3hot and low-power entry revoke; memory on, D0 and low-power exit
    unrevoke when __vfio_pci_memory_enabled; an FLR with memory off stays revoked. D3hot to D0
    without No_Soft_Reset resets the BAR."""
    system, vfio, stand = vfio_system(importer=True)
    assert stand is not None
    s = mapped(system, stand)
    for key in keys:
        s, ret = run(s, vfio.op_program(key))
        assert ret == 0
    fn = platform(s).functions[0]
    assert buf0(vfio, s).status is status
    assert (fn.mem_enable, fn.power_state) == (mem, power)
    assert platform(s).ranges[system.topology.bar("vfio0")].history == causes
    assert live_sgts(s, 0) == () and not s.warnings
    assert vfio.state(s).low_power is (keys[-1] == "low_power_entry")


def test_unrevoke_without_invalidate_is_matt_evans_v4() -> None:
    """Option unrevoke_invalidate=False: unrevoke only clears the flag (§1.3 unrevoke)."""
    system, vfio, stand = vfio_system(importer=True, unrevoke_invalidate=False)
    assert stand is not None
    s = mapped(system, stand)
    s, _ = run(s, vfio.op_program("reset"))
    assert stand.state(s).invalidations == 1 and buf0(vfio, s).status is VfioDmaBufStatus.OK


def test_oracle_hears_of_the_revoke_and_of_the_unrevoke() -> None:
    """oracle_revoke_complete after the drain, oracle_unrevoke when the buffer is usable."""
    system, vfio, _ = vfio_system()
    bar = system.topology.bar("vfio0")
    s, _ = run(system.initial_state(), vfio.op_program("mem_off"))
    assert platform(s).ranges[bar].revoked and buf0(vfio, s).drained
    s, _ = run(s, vfio.op_program("mem_on"))
    assert not platform(s).ranges[bar].revoked and not buf0(vfio, s).drained


def test_hot_reset_revokes_every_vfio_device_of_the_dev_set() -> None:
    """VFIO_DEVICE_PCI_HOT_RESET takes each memory_lock, revokes the buffers of every device
    of the dev_set, resets the bus, and unrevokes those with memory on (§1.4)."""
    topo = Topology.simple(["vfio0", "vfio1"], siblings=True, non_pci=["iommufd"])
    system = DmaBufSystem(topo)
    v0 = cast(VfioPciExporter, system.add_exporter(VfioPciExporter, device="vfio0", name="v0"))
    v1 = cast(VfioPciExporter, system.add_exporter(VfioPciExporter, device="vfio1", name="v1"))
    s = system.initial_state()
    s, tid = spawn(s, v0.op_program("hot_reset"))
    seen_locks = []
    while not world(s).threads[tid].done:
        out = run_step(s, world(s).threads[tid])
        assert isinstance(out, KState)
        s = out
        seen_locks.append(tuple(lk.writer for lk in s.locks if isinstance(lk, RwSemaphore)))
        if world(s).threads[tid].pc.startswith("vfio_pci_dma_buf_move(revoked=true): kref"):
            assert buf0(v0, s).revoked or buf0(v1, s).revoked
    assert (tid, tid) in seen_locks
    for v, fn in ((v0, "vfio0"), (v1, "vfio1")):
        assert buf0(v, s).status is VfioDmaBufStatus.OK
        assert platform(s).ranges[topo.bar(fn)].history == (GenCause.RESET,)
    assert world(s).threads[tid].local("moved") == ((0, 0), (1, 0))


# --- §1.3 cleanup (close), hot-unplug, release ----------------------------------------------------


def test_device_close_revokes_for_good_and_unlinks_every_buffer() -> None:
    """Cleanup: memory_lock, revoke (drain), unlink each buffer (priv->vdev = NULL, put the
    registration); then vfio_pci_core_disable resets the function. Attach is -ENODEV forever
    and no ioctl event is enabled any more (§1.3 cleanup, §1.5 DEAD)."""
    system, vfio, stand = vfio_system(importer=True, close_budget=1)
    assert stand is not None
    s = mapped(system, stand)
    s, ret = run(s, vfio.op_program("close"))
    assert ret == 0
    d = buf0(vfio, s)
    assert d.status is VfioDmaBufStatus.TEMP_REVOKED and not d.linked and d.drained
    dev = vfio.state(s)
    assert not dev.open and dev.registrations == 0
    assert platform(s).ranges[system.topology.bar("vfio0")].history == (GenCause.RESET,)
    assert _attach(s, DmaBufAttachOps("x", True, _noop)) == -errno.ENODEV
    model = system.model()
    assert [e.name for e in model.events if e.guard is None or e.guard(s)] == ["standin: map"]


def test_hot_unplug_waits_for_the_device_close_and_the_registrations() -> None:
    """vfio_unregister_group_dev blocks until the user closes the device (which drops every
    dma-buf's registration); then the function is removed (§1.4 hot-unplug)."""
    system, vfio, _ = vfio_system()
    s = system.initial_state()
    s, blocked, t = run_until_blocked(s, vfio.unplug_program())
    assert blocked == Blocked(on="vfio registrations of vfio0")
    _, ret = feature(vfio, s, GOOD)
    assert ret == -errno.ENODEV  # unregistering: no new exports
    s, _ = run(s, vfio.op_program("close"))
    s = run_thread(s, t.tid)
    assert vfio.state(s).removed and not platform(s).functions[0].present
    bar = system.topology.bar("vfio0")
    assert platform(s).ranges[bar].history[-1] is GenCause.UNPLUGGED


def test_closing_the_last_fd_releases_and_unlinks_the_buffer() -> None:
    """The last reference runs vfio_pci_dma_buf_release: unlink, drop the registration."""
    system, vfio, _ = vfio_system()
    s, ret = run(system.initial_state(), vfio.close_buf_program())
    assert ret == 0 and s.bufs[0].released
    assert buf0(vfio, s).freed and vfio.state(s).registrations == 0 and vfio.buffers(s) == ()


def test_close_of_the_last_fd_waits_while_memory_lock_is_held() -> None:
    """The release would take memory_lock: the close waits for it (§1.2 release, §1.7)."""
    system, vfio, _ = vfio_system()
    s = system.initial_state()
    held = down_write(s, 9, vfio.state(s).memory_lock)
    assert isinstance(held, KState)
    s, tid = spawn(held, vfio.close_buf_program())
    assert run_step(s, world(s).threads[tid]) == Blocked(on="vfio0.memory_lock", holder=9)


# --- the watchdog, the kref re-arm ----------------------------------------------------------------


def _stuck_revoke(**opts: Any) -> tuple[DmaBufSystem, VfioPciExporter, KState, Thread]:
    system, vfio, stand = vfio_system(importer=True, imp={"never_unmap": True}, **opts)
    assert stand is not None
    s = mapped(system, stand)
    s, tid = spawn(s, vfio.op_program("reset"))
    for _ in range(3):  # lock, revoke, fences: now at the completion wait
        out = run_step(s, world(s).threads[tid])
        assert isinstance(out, KState)
        s = out
    return system, vfio, s, world(s).threads[tid]


def test_mainline_waits_for_unmaps_without_a_time_limit() -> None:
    """watchdog_1s=False: one alternative only, Blocked until the importer unmaps (§1.3)."""
    _, _, s, t = _stuck_revoke()
    assert t.pc.endswith("wait_for_completion")
    assert isinstance(run_step(s, t), Blocked)


def test_watchdog_warn_flags_the_importer_and_keeps_waiting() -> None:
    """watchdog_1s="warn": a "1 s elapsed" branch records WARN #23 and keeps waiting."""
    _, _, s, t = _stuck_revoke(watchdog_1s=True)
    out = run_step(s, t)
    assert isinstance(out, Branches)
    assert [label for label, _ in out.alternatives] == ["", "1 s elapsed"]
    after = out.alternatives[1][1]()
    assert isinstance(after, KState)
    assert [str(w) for w in after.warnings] == [
        "WARN: vfio: importer did not unmap within 1 s (core-semantics §10 #23)"
    ]
    t2 = world(after).threads[t.tid]
    assert t2.pc == t.pc and isinstance(run_step(after, t2), Blocked)


def test_watchdog_give_up_is_v4_to_v6_and_leaves_a_live_mapping() -> None:
    """watchdog_1s="give_up": after the WARN the revoke goes on and resets the BAR under a
    live mapping: the oracle and the exporter's properties catch it (Christian's NAK, M5)."""
    system, _, s, t = _stuck_revoke(watchdog_1s="give_up")
    out = run_step(s, t)
    assert isinstance(out, Branches)
    gave_up = out.alternatives[1][1]()
    assert isinstance(gave_up, KState)
    s = run_thread(gave_up, t.tid)
    kinds = {f.kind for f in platform(s).findings}
    assert FindingKind.REVOKE_WITH_LIVE_MAPPING in kinds
    model = system.model()
    failing = {p.name for p in model.properties() if not p.condition(s)}
    assert failing == {"no_kernel_warning", "no_dma_violation", "vfio_kref_matches_mappings"}


def test_without_the_kref_rearm_a_second_revoke_underflows_and_hangs() -> None:
    """kref_rearm=False (before the May-2026 fix): the second revoke's kref_put underflows,
    the completion never fires and the reset thread waits forever (§1.3 step 6)."""
    system, vfio, _ = vfio_system(kref_rearm=False)
    s, _ = run(system.initial_state(), vfio.op_program("reset"))
    assert (buf0(vfio, s).kref, buf0(vfio, s).base_ref) == (0, False)
    s, blocked, _ = run_until_blocked(s, vfio.op_program("reset"))
    assert blocked.on == "completion of buf0 (every mapping unmapped)"
    assert [w.what for w in s.warnings] == [
        "refcount_t: underflow; use-after-free (vfio buf0 kref)"
    ]


def test_with_the_kref_rearm_two_revokes_in_a_row_complete() -> None:
    """The mainline re-arm leaves the kref at 1 after each revoke (§1.3 step 6)."""
    system, vfio, _ = vfio_system()
    s, _ = run(system.initial_state(), vfio.op_program("reset"))
    s, ret = run(s, vfio.op_program("reset"))
    assert ret == 0 and buf0(vfio, s).kref == 1 and not s.warnings


# --- §1.6 permanent revoke (Matt Evans, option) --------------------------------------------------


def test_permanent_revoke_is_off_by_default() -> None:
    """Not merged: no event, and the handler answers -ENOTTY (§1.6, spec README)."""
    system, vfio, _ = vfio_system()
    assert not [e for e in system.model().events if "REVOKE" in e.name]
    _, ret = vfio.perm_revoke_check(system.initial_state(), TID, 3)
    assert ret == -errno.ENOTTY


def test_permanent_revoke_drains_once_and_absorbs_everything() -> None:
    """OK → PERM drains (invalidate, waits, zap PTEs); unrevoke leaves it PERM; map and attach
    get -ENODEV; a second request is -EBADFD (§1.6)."""
    system, vfio, stand = vfio_system(importer=True, perm_revoke_feature=True)
    assert stand is not None
    s = mapped(system, stand)
    s, ret = run(s, vfio.op_program("perm"))
    assert ret == 0 and buf0(vfio, s).status is VfioDmaBufStatus.PERM_REVOKED
    assert stand.state(s).invalidations == 1 and live_sgts(s, 0) == ()
    assert s.bufs[0].file_refcount == 1  # the dma_buf_get reference was put back
    s, _ = run(s, vfio.op_program("reset"))
    assert buf0(vfio, s).status is VfioDmaBufStatus.PERM_REVOKED
    assert stand.state(s).invalidations == 1  # the reset skipped the PERM buffer entirely
    assert _attach(s, stand.ops) == -errno.ENODEV
    s, ret = run(s, vfio.op_program("perm"))
    assert ret == -errno.EBADFD


def test_temporary_to_permanent_revoke_does_not_drain_again() -> None:
    """TEMP → PERM only changes the state: no second invalidate or wait (§1.6)."""
    system, vfio, stand = vfio_system(importer=True, perm_revoke_feature=True)
    assert stand is not None
    s = mapped(system, stand)
    s, _ = run(s, vfio.op_program("mem_off"))
    assert stand.state(s).invalidations == 1
    s, ret = run(s, vfio.op_program("perm"))
    assert ret == 0 and buf0(vfio, s).status is VfioDmaBufStatus.PERM_REVOKED
    assert stand.state(s).invalidations == 1
    s, _ = run(s, vfio.op_program("mem_on"))
    assert buf0(vfio, s).status is VfioDmaBufStatus.PERM_REVOKED


@pytest.mark.parametrize(
    ("fd_table", "fd", "expected"),
    [
        ((), 42, -errno.EBADF),
        (((42, "sync_file", 0),), 42, -errno.EINVAL),
    ],
)
def test_permanent_revoke_of_a_bad_fd_fails_like_dma_buf_get(
    fd_table: tuple[tuple[int, str, int], ...], fd: int, expected: int
) -> None:
    """dma_buf_get's -EBADF (no such fd) and -EINVAL (not a dma-buf) pass through (§1.6)."""
    system, vfio, _ = vfio_system(perm_revoke_feature=True)
    s = system.initial_state()
    s = s.evolve(fd_table=s.fd_table + fd_table)
    assert vfio.perm_revoke_check(s, TID, fd)[1] == expected


def test_permanent_revoke_of_another_devices_buffer_is_enodev() -> None:
    """The buffer must be VFIO's and this device's (§1.6)."""
    topo = machine("vfio0", "vfio1")
    system = DmaBufSystem(topo)
    v0 = cast(
        VfioPciExporter,
        system.add_exporter(VfioPciExporter, device="vfio0", name="v0", perm_revoke_feature=True),
    )
    system.add_exporter(VfioPciExporter, device="vfio1", name="v1")
    s = system.initial_state()
    s2, ret = v0.perm_revoke_check(s, TID, 4)  # fd 4 is vfio1's buffer
    assert ret == -errno.ENODEV and s2.bufs[1].file_refcount == 1


# --- end to end and exhaustive -------------------------------------------------------------------


def test_scripted_map_dma_reset_run_reads_like_a_kernel_log() -> None:
    """A reset with a busy revocable importer, as its trace prints (design.md tracing)."""
    system, vfio, stand = vfio_system(importer=True, imp={"dma_budget": 1})
    assert stand is not None
    model = system.model()
    s = mapped(system, stand)
    s, _ = run(s, stand.dma_prog)
    s, tid = spawn(s, vfio.op_program("reset"))
    t = world(s).threads[tid]
    lines = model.describe_trace([ThreadStep(tid, t.name, t.pc)], s)
    assert lines == [
        "  1. T3 vfio-pci: VFIO_DEVICE_RESET: down_write(vfio0.memory_lock)",
        "         => takes vfio0.memory_lock (write)",
    ]
    s = settle(s)
    assert no_dma_violation(platform(s)) and not s.warnings
    assert platform(s).transfers[0].status is TransferStatus.DONE


def _exhaustive(**opts: Any) -> tuple[SystemModel, Any]:
    imp = {"dma_budget": 1, **opts.pop("imp", {})}
    system, vfio, _ = vfio_system(importer=True, imp=imp, **opts)
    system.extra_properties.append(vfio.revoke_completes())
    model = system.model()
    return model, check(model, stop_at_first=False)


def test_every_interleaving_of_map_dma_and_flr_keeps_every_property() -> None:
    """vfio × revocable importer, budgets of 1: no violation, no deadlock, the revoke
    completes (core-semantics §5.8, §10 #22; drivers.md §1.3, §1.7)."""
    _, result = _exhaustive()
    result.assert_properties()
    assert result.complete


def test_an_importer_that_never_unmaps_hangs_the_reset_forever() -> None:
    """Mainline waits without limit: a broken importer shows up as a blocked reset (§1.3)."""
    model, result = _exhaustive(imp={"never_unmap": True})
    path = result.discovery("deadlock")
    assert path is not None
    assert "waits for completion of buf0" in (model.deadlock(path.last_state) or "")


def test_the_watchdog_turns_a_hanging_importer_into_a_warning() -> None:
    """watchdog_1s="warn" flags the same importer with WARN #23 (spec README)."""
    _, result = _exhaustive(imp={"never_unmap": True}, watchdog_1s="warn")
    assert result.discovery("no_kernel_warning") is not None


def test_memory_disable_budget_explores_revoke_and_unrevoke_interleavings() -> None:
    """Memory off then on, against map and DMA: every property holds (§1.4)."""
    _, result = _exhaustive(flr_budget=0, mem_disable_budget=1)
    result.assert_properties()


def test_driver_record_is_small_and_hashable() -> None:
    """The state is a value (design.md): the device record hashes and compares by value."""
    system, vfio, _ = vfio_system()
    s = system.initial_state()
    assert hash(vfio.state(s)) == hash(replace(vfio.state(s)))
    assert vfio_dma_buf(s, 0) == buf0(vfio, s)
    assert vfio.buffers(s) == (0,)
    assert vfio.op_program("reset") is vfio.op_program("reset")  # built once, compared by name


@pytest.mark.parametrize("gpu", [AmdgpuImporter, XeImporter])
def test_gpu_importers_are_revocable_and_a_broken_one_hangs_the_revoke(gpu: type[Any]) -> None:
    """vfio × amdgpu / xe (§7: revocable): FLR or memory off/on against a submission keeps
    every property; a GPU importer that keeps its mapping on invalidate never unmaps, so
    mainline's unbounded wait for the completion never ends (§1.3, §4.3)."""
    for opts in ({}, {"flr_budget": 0, "mem_disable_budget": 1}):
        system = DmaBufSystem(Topology.simple(["vfio0", "gpu0"]))
        vfio = cast(VfioPciExporter, system.add_exporter(VfioPciExporter, device="vfio0", **opts))
        system.add_importer(gpu, device="gpu0", source=vfio)
        system.extra_properties.append(vfio.revoke_completes())
        check(system.model(), stop_at_first=False).assert_properties()
    system = DmaBufSystem(Topology.simple(["vfio0", "gpu0"]))
    vfio = cast(VfioPciExporter, system.add_exporter(VfioPciExporter, device="vfio0"))
    system.add_importer(gpu, device="gpu0", source=vfio, keep_mapping_on_invalidate=True)
    model = system.model()
    result = check(model, stop_at_first=False)
    assert [d.property for d in result.failures] == ["deadlock"]
    path = result.discovery("deadlock")
    assert path is not None
    assert "waits for completion of buf0" in (model.deadlock(path.last_state) or "")
