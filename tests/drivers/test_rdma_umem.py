"""RDMA umem_dmabuf: ODP, legacy pinned and pinned-revocable MRs (drivers.md §3).

Errno paths of ib_umem_dmabuf_get and ib_umem_dmabuf_map_pages (incl. -ETIMEDOUT), the ODP
fault / zap / re-fault cycle, the revoke order and at-most-once driver callback, the two-step
revocable registration, end-to-end runs with a local revocable BAR exporter (a VFIO stand-in)
and with the real vfio-pci and amdgpu models, and exhaustive checks of correct and broken
variants, including the pin leaked when a revoke falls between attach and pin.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import pytest
from driver_helpers import fire, go, run_thread_until_blocked, step

from dmabuf_model.check import check
from dmabuf_model.check.model import Property
from dmabuf_model.drivers.amdgpu import AmdgpuExporter
from dmabuf_model.drivers.base import Exporter, Option, TakebackKind, platform, set_platform
from dmabuf_model.drivers.compose import DmaBufSystem
from dmabuf_model.drivers.rdma_umem import (
    ACCESS_ERROR,
    IbUmemDmabufImporter,
    MrState,
    RdmaOdpImporter,
    RdmaPinnedImporter,
    RdmaPinnedRevocableImporter,
)
from dmabuf_model.drivers.system_heap import SystemHeapExporter
from dmabuf_model.drivers.vfio_pci import VfioPciExporter
from dmabuf_model.kernel import errno
from dmabuf_model.kernel.dma_buf import (
    ULONG_MAX,
    DmaBufOps,
    DmaDataDirection,
    MapResult,
    dma_buf_attach_revocable,
    dma_buf_export,
    dma_buf_fd,
    dma_buf_invalidate_mappings,
    live_mappings,
)
from dmabuf_model.kernel.dma_fence import (
    MAX_SCHEDULE_TIMEOUT,
    dma_fence_context_alloc,
    dma_fence_get_status,
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
    dma_resv_wait_timeout,
)
from dmabuf_model.kernel.state import AttachId, Blocked, BufId, KState, SgtId, Tid
from dmabuf_model.platform.dma import MappingState, TransferStatus, dma_map_phys, dma_unmap_phys
from dmabuf_model.platform.oracle import (
    FindingKind,
    findings_of,
    oracle_revoke_complete,
    oracle_unrevoke,
)
from dmabuf_model.platform.topology import Topology
from dmabuf_model.system.model import EnvEvent, run_thread
from dmabuf_model.system.threads import Thread, finish, goto, program, spawn, world

PAGE = 4096

# --- a revocable BAR exporter (a VFIO stand-in, drivers.md §1.2-§1.3) ----------------------------


@dataclass(frozen=True, slots=True)
class BarState:
    buf: BufId = -1
    fd: int = -1
    revoked: bool = False
    mappings: int = 0
    revoke_done: bool = False
    kernel_fence: int = -1


class ToyBarExporter(Exporter):
    """Exports BAR0 of ``device``; the canonical revoke (core-semantics §5.8) as an event.

    attach refuses non-P2P importers, non-revocable ones (``require_revocable``) and a revoked
    buffer; map fails -ENODEV while revoked, -EINVAL without a P2P path. ``pin_fails`` adds a
    pin op that always fails (-EOPNOTSUPP, VFIO between 6.19-rc and v7). ``kernel_fence``
    leaves an unsignalled KERNEL fence in the resv until the "toy-bar: signal" event.
    """

    kind: ClassVar[str] = "toy-bar"
    takeback = TakebackKind.REVOKE
    OPTIONS: ClassVar[dict[str, Option]] = {
        "revoke_budget": Option(1, "revokes"),
        "unrevoke_budget": Option(0, "unrevokes after a completed revoke"),
        "require_revocable": Option(True, "attach refuses importers without the callback"),
        "pin_fails": Option(False, "a pin op that always fails with -EOPNOTSUPP"),
        "kernel_fence": Option(False, "an unsignalled KERNEL fence in the resv at boot"),
    }

    def init_state(self) -> Hashable:
        return BarState()

    def st(self, s: KState) -> BarState:
        return self.state_as(s, BarState)

    def _put(self, s: KState, **kw: Any) -> KState:
        return self.set_state(s, replace(self.st(s), **kw))

    def dma_buf_ops(self) -> DmaBufOps:
        pin_kw: dict[str, Any] = {}
        if self.options["pin_fails"]:
            pin_kw = {"pin": lambda s, t, a: (s, -errno.EOPNOTSUPP), "unpin": lambda s, t, a: s}
        return DmaBufOps(
            "toy_bar_ops",
            map_dma_buf=self._map,
            unmap_dma_buf=self._unmap,
            release=lambda s, tid, buf: s,
            attach=self._attach,
            **pin_kw,
        )

    def buffers(self, s: KState) -> tuple[int, ...]:
        return (self.st(s).buf,)

    def _attach(self, s: KState, tid: Tid, attach: AttachId) -> tuple[KState, int]:
        if not s.attachments[attach].peer2peer:
            return s, -errno.EOPNOTSUPP
        if self.st(s).revoked:
            return s, -errno.ENODEV
        if self.options["require_revocable"] and not dma_buf_attach_revocable(s, attach):
            return s, -errno.EOPNOTSUPP
        return s, 0

    def _map(
        self, s: KState, tid: Tid, attach: AttachId, dir: DmaDataDirection
    ) -> tuple[KState, MapResult]:
        if self.st(s).revoked:
            return s, -errno.ENODEV
        bar = self.topology.bar(self.device)
        ps, mid = dma_map_phys(platform(s), self.topology, s.attachments[attach].dev, bar)
        if mid < 0:
            return s, mid
        return self._put(set_platform(s, ps), mappings=self.st(s).mappings + 1), (mid,)

    def _unmap(
        self, s: KState, tid: Tid, attach: AttachId, sgt: SgtId, dir: DmaDataDirection
    ) -> KState:
        ps = platform(s)
        for mid in s.sg_tables[sgt].entries:
            assert isinstance(mid, int)
            ps = dma_unmap_phys(ps, mid)
        return self._put(set_platform(s, ps), mappings=self.st(s).mappings - 1)

    def _boot(self, s: KState, t: Thread) -> KState:
        size = self.topology.ranges[self.topology.bar(self.device)].pages * PAGE
        s, buf = dma_buf_export(s, t.tid, ops=self.dma_buf_ops(), size=size, priv="bar0")
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
        return finish(self.set_state(s, BarState(buf=buf, fd=fd, kernel_fence=fence)), t, ret=0)

    def setup(self, s: KState) -> KState:
        s, tid = spawn(s, program("toy-bar boot", ("export", self._boot)))
        return run_thread(s, tid)

    # the revoke sequence of core-semantics §5.8
    def _revoke_start(self, s: KState, t: Thread) -> KState | Blocked:
        buf = self.st(s).buf
        r = dma_resv_lock(s, t.tid, s.bufs[buf].resv, None)
        if isinstance(r, Blocked):
            return r
        s = self._put(r[0], revoked=True)
        return goto(dma_buf_invalidate_mappings(s, t.tid, buf), t, "wait BOOKKEEP fences")

    def _revoke_wait(self, s: KState, t: Thread) -> KState | Blocked:
        resv = s.bufs[self.st(s).buf].resv
        r = dma_resv_wait_timeout(
            s, t.tid, resv, DmaResvUsage.BOOKKEEP, False, MAX_SCHEDULE_TIMEOUT
        )
        if isinstance(r, Blocked):
            return r
        return goto(dma_resv_unlock(r[0], t.tid, resv), t, "wait for unmaps")

    def _revoke_unmaps(self, s: KState, t: Thread) -> KState | Blocked:
        if self.st(s).mappings > 0:
            return Blocked(on="unmaps")
        ps = oracle_revoke_complete(platform(s), self.topology, self.topology.bar(self.device))
        return finish(self._put(set_platform(s, ps), revoke_done=True), t, ret=0)

    def _unrevoke(self, s: KState, t: Thread) -> KState | Blocked:
        resv = s.bufs[self.st(s).buf].resv
        r = dma_resv_lock(s, t.tid, resv, None)
        if isinstance(r, Blocked):
            return r
        ps = oracle_unrevoke(platform(r[0]), self.topology, self.topology.bar(self.device))
        s = self._put(set_platform(r[0], ps), revoked=False, revoke_done=False)
        return finish(dma_resv_unlock(s, t.tid, resv), t, ret=0)

    def _signal(self, s: KState, t: Thread) -> KState:
        return finish(dma_fence_signal(s, self.st(s).kernel_fence), t)

    def events(self) -> list[EnvEvent]:
        revoke = program(
            "toy-bar revoke",
            ("lock resv, revoke, invalidate", self._revoke_start),
            ("wait BOOKKEEP fences", self._revoke_wait),
            ("wait for unmaps", self._revoke_unmaps),
        )
        evs = []
        if self.options["revoke_budget"]:
            evs.append(
                EnvEvent(
                    "toy-bar: revoke",
                    revoke,
                    budget=int(self.options["revoke_budget"]),
                    guard=lambda s: not self.st(s).revoked,
                )
            )
        if self.options["unrevoke_budget"]:
            evs.append(
                EnvEvent(
                    "toy-bar: unrevoke",
                    program("toy-bar unrevoke", ("unrevoke", self._unrevoke)),
                    budget=int(self.options["unrevoke_budget"]),
                    guard=lambda s: self.st(s).revoke_done,
                )
            )
        if self.options["kernel_fence"]:
            evs.append(
                EnvEvent("toy-bar: signal", program("toy-bar signal", ("signal", self._signal)))
            )
        return evs


# --- helpers -------------------------------------------------------------------------------------


def bar_system(
    importer: type[IbUmemDmabufImporter],
    *,
    no_p2p: bool = False,
    exp: dict[str, Any] | None = None,
    **imp: Any,
) -> tuple[DmaBufSystem, ToyBarExporter, Any]:
    topo = Topology.simple(["bar0dev", "nic0"], no_p2p=no_p2p)
    system = DmaBufSystem(topo)
    e = system.add_exporter(ToyBarExporter, device="bar0dev", **(exp or {}))
    i = system.add_importer(importer, device="nic0", source=e, **imp)
    assert isinstance(e, ToyBarExporter)
    return system, e, i


# --- ib_umem_dmabuf_get errnos (drivers.md §3.1 "common details") --------------------------------


def heap_system(importer: type[Any], **imp: Any) -> tuple[DmaBufSystem, Any]:
    topo = Topology.simple(["nic0"], iommu=False)
    system = DmaBufSystem(topo)
    heap = system.add_exporter(SystemHeapExporter, device="system")
    return system, system.add_importer(importer, device="nic0", source=heap, **imp)


@pytest.mark.parametrize(
    ("imp", "expected"),
    [
        ({"offset": ULONG_MAX, "length": 1}, -errno.EINVAL),
        ({"length": 2 * PAGE}, -errno.EINVAL),
        ({"length": 0}, -errno.EINVAL),
        ({"offset": PAGE}, -errno.EINVAL),
    ],
    ids=["offset-plus-size-overflows", "past-the-buffer", "zero-length", "offset-at-the-end"],
)
def test_umem_get_rejects_a_bad_window_and_keeps_no_reference(
    imp: dict[str, Any], expected: int
) -> None:
    """Overflow, a window past the buffer, zero pages: -EINVAL, reference dropped (§3.1)."""
    system, rdma = heap_system(RdmaOdpImporter, **imp)
    model = system.model()
    s0 = model.init_states()[0]
    s, ret = go(model, s0, "rdma-odp: ibv_reg_dmabuf_mr")
    assert ret == expected and rdma.state(s).mr is MrState.FAILED
    assert s.attachments == () and s.bufs[0].file_refcount == s0.bufs[0].file_refcount


def test_umem_get_on_a_closed_fd_is_ebadf() -> None:
    """dma_buf_get errors propagate: the fd was closed and the buffer released (§3.1)."""
    system, rdma = heap_system(RdmaPinnedImporter)
    model = system.model()
    s, _ = go(model, model.init_states()[0], "system-heap: close(dma-buf fd)")
    s, ret = go(model, s, "rdma-pinned: ibv_reg_dmabuf_mr")
    assert ret == -errno.EBADF and rdma.state(s).mr is MrState.FAILED


def test_registration_on_a_revoked_buffer_fails_at_attach_with_enodev() -> None:
    """The exporter's attach refuses a revoked buffer: -ENODEV propagates (§3.1, §1.2)."""
    system, _, _rdma = bar_system(RdmaOdpImporter)
    model = system.model()
    s, _ = go(model, model.init_states()[0], "toy-bar: revoke")
    s, ret = go(model, s, "rdma-odp: ibv_reg_dmabuf_mr")
    assert ret == -errno.ENODEV and s.attachments[0].detached


@pytest.mark.parametrize(
    ("importer", "ops_revocable"),
    [(RdmaOdpImporter, True), (RdmaPinnedImporter, False), (RdmaPinnedRevocableImporter, True)],
)
def test_every_mode_attaches_p2p_and_only_legacy_pinned_is_not_revocable(
    importer: type[IbUmemDmabufImporter], ops_revocable: bool
) -> None:
    """allow_peer2peer in every mode; legacy pinned has no invalidate_mappings (§3.1)."""
    system, rdma = heap_system(importer)
    model = system.model()
    s, ret = go(model, model.init_states()[0], f"{rdma.name}: ibv_reg_dmabuf_mr")
    assert ret == 0 and s.attachments[0].peer2peer
    assert dma_buf_attach_revocable(s, 0) is ops_revocable


def test_vfio_refuses_the_legacy_pinned_importer_with_eopnotsupp() -> None:
    """The real vfio-pci model: no invalidate_mappings, not revocable, -EOPNOTSUPP (§1.8, §7)."""
    topo = Topology.simple(["vfio0", "nic0"])
    system = DmaBufSystem(topo)
    vfio = system.add_exporter(VfioPciExporter, device="vfio0", flr_budget=0)
    rdma = system.add_importer(RdmaPinnedImporter, device="nic0", source=vfio)
    model = system.model()
    s, ret = go(model, model.init_states()[0], "rdma-pinned: ibv_reg_dmabuf_mr")
    assert ret == -errno.EOPNOTSUPP and rdma.state(s).mr is MrState.FAILED


# --- ODP -----------------------------------------------------------------------------------------


def test_odp_registration_attaches_and_maps_nothing() -> None:
    """mlx5 ODP: ATTACHED (no sgt) until the NIC faults (drivers.md §3.3)."""
    system, _, rdma = bar_system(RdmaOdpImporter)
    model = system.model()
    s, ret = go(model, model.init_states()[0], "rdma-odp: ibv_reg_dmabuf_mr")
    st = rdma.state(s)
    assert ret == 0 and st.mr is MrState.ACTIVE and st.private and st.sgt is None
    assert st.mtt == () and s.sg_tables == ()


def test_odp_access_faults_maps_writes_the_mtt_and_dmas() -> None:
    """Fault: resv, map_pages (map + KERNEL wait), MTT write, unlock; the access goes on."""
    system, _, rdma = bar_system(RdmaOdpImporter)
    model = system.model()
    s, _ = go(model, model.init_states()[0], "rdma-odp: ibv_reg_dmabuf_mr")
    s, ret = go(model, s, "rdma-odp: NIC accesses the MR")
    st = rdma.state(s)
    assert ret == 0 and st.sgt == 0 and st.mtt == (0,) and st.accesses == 1
    assert platform(s).transfers[0].status is TransferStatus.DONE
    assert s.resvs[0].holder == -1 and platform(s).findings == () and s.warnings == ()


def test_odp_invalidate_zaps_and_unmaps_and_the_next_access_faults_again() -> None:
    """Revoke: zap + unmap inside the callback; after unrevoke the next fault maps again.

    drivers.md §3.3 (recoverable), §7 "vfio x RDMA ODP: revocable".
    """
    system, bar, rdma = bar_system(RdmaOdpImporter, exp={"unrevoke_budget": 1}, access_budget=2)
    model = system.model()
    s, _ = go(model, model.init_states()[0], "rdma-odp: ibv_reg_dmabuf_mr")
    s, _ = go(model, s, "rdma-odp: NIC accesses the MR")
    s, ret = go(model, s, "toy-bar: revoke")
    st = rdma.state(s)
    assert ret == 0 and bar.st(s).revoke_done
    assert st.invalidations == 1 and st.mtt == () and st.sgt is None
    assert platform(s).mappings[0].state is MappingState.UNMAPPED
    s, _ = go(model, s, "toy-bar: unrevoke")
    s, ret = go(model, s, "rdma-odp: NIC accesses the MR")
    st = rdma.state(s)
    assert ret == 0 and st.sgt == 1 and st.mtt == (1,) and st.accesses == 2
    assert platform(s).findings == ()


def test_invalidate_with_nothing_mapped_does_nothing() -> None:
    """mlx5's callback skips the work when no sgt is mapped (drivers.md §3.2)."""
    system, _, rdma = bar_system(RdmaOdpImporter)
    model = system.model()
    s, _ = go(model, model.init_states()[0], "rdma-odp: ibv_reg_dmabuf_mr")
    s, _ = go(model, s, "toy-bar: revoke")
    assert rdma.state(s).invalidations == 0 and rdma.state(s).mr is MrState.ACTIVE


def test_odp_fault_on_a_revoked_buffer_is_an_access_error_not_a_dma() -> None:
    """The map returns -ENODEV: the fault fails and no transfer is started (§3.3)."""
    system, _, rdma = bar_system(RdmaOdpImporter)
    model = system.model()
    s, _ = go(model, model.init_states()[0], "rdma-odp: ibv_reg_dmabuf_mr")
    s, _ = go(model, s, "toy-bar: revoke")
    s, ret = go(model, s, "rdma-odp: NIC accesses the MR")
    assert ret == -errno.ENODEV and rdma.state(s).access_errors == 1
    assert platform(s).transfers == () and s.resvs[0].holder == -1


def test_odp_fault_without_a_p2p_path_is_einval() -> None:
    """No P2P path between BAR and NIC: map -EINVAL at fault time (drivers.md §7, §6)."""
    system, _, _rdma = bar_system(RdmaOdpImporter, no_p2p=True)
    model = system.model()
    s, _ = go(model, model.init_states()[0], "rdma-odp: ibv_reg_dmabuf_mr")
    s, ret = go(model, s, "rdma-odp: NIC accesses the MR")
    assert ret == -errno.EINVAL and platform(s).transfers == ()


def test_odp_fault_waits_for_kernel_fences_holding_the_resv() -> None:
    """ib_umem_dmabuf_map_pages waits, unbounded and with the resv held, for KERNEL fences."""
    system, _, rdma = bar_system(RdmaOdpImporter, exp={"kernel_fence": True})
    model = system.model()
    s, _ = go(model, model.init_states()[0], "rdma-odp: ibv_reg_dmabuf_mr")
    s, tid = fire(model, s, "rdma-odp: NIC accesses the MR")
    s = run_thread_until_blocked(s, tid)
    assert world(s).threads[tid].pc == "ib_umem_dmabuf_map_pages: wait KERNEL fences"
    assert s.resvs[0].holder == tid and rdma.state(s).mtt == ()
    s, _ = go(model, s, "toy-bar: signal")
    s = run_thread(s, tid)
    assert world(s).threads[tid].local("ret") == 0 and rdma.state(s).mtt == (0,)


def test_map_pages_wait_that_returns_zero_is_etimedout() -> None:
    """A KERNEL wait returning 0 is -ETIMEDOUT; the sgt stays mapped (drivers.md §3.1, §8).

    Needs the finite-timeout option: with MAX_SCHEDULE_TIMEOUT (mainline) it cannot happen.
    """
    system, _, rdma = bar_system(RdmaOdpImporter, exp={"kernel_fence": True}, map_pages_timeout=1)
    model = system.model()
    s, _ = go(model, model.init_states()[0], "rdma-odp: ibv_reg_dmabuf_mr")
    s, ret = go(model, s, "rdma-odp: NIC accesses the MR")  # scripted runs take "timed out"
    assert ret == -errno.ETIMEDOUT and rdma.state(s).sgt == 0 and rdma.state(s).mtt == ()
    assert s.resvs[0].holder == -1


def test_odp_dereg_revokes_the_mkey_then_releases_the_umem() -> None:
    """mlx5_revoke_mr under the resv, then ib_umem_release: unmap, detach, put (§3.2)."""
    system, _, rdma = bar_system(RdmaOdpImporter)
    model = system.model()
    s0 = model.init_states()[0]
    s, _ = go(model, s0, "rdma-odp: ibv_reg_dmabuf_mr")
    s, _ = go(model, s, "rdma-odp: NIC accesses the MR")
    s, ret = go(model, s, "rdma-odp: ibv_dereg_mr")
    st = rdma.state(s)
    assert ret == 0 and st.mr is MrState.RELEASED and not st.private
    assert s.attachments[0].detached and not s.sg_tables[0].live
    assert s.bufs[0].file_refcount == s0.bufs[0].file_refcount and s.warnings == ()


# --- legacy pinned -------------------------------------------------------------------------------


def test_legacy_pinned_registration_pins_and_maps_under_the_resv() -> None:
    """ib_umem_dmabuf_get_pinned: pin + map + KERNEL wait under the resv, then the MR (§3.1)."""
    system, rdma = heap_system(RdmaPinnedImporter)
    model = system.model()
    s, ret = go(model, model.init_states()[0], "rdma-pinned: ibv_reg_dmabuf_mr")
    st = rdma.state(s)
    assert ret == 0 and st.pinned and st.sgt == 0 and st.mtt == (0,)
    assert s.attachments[0].pins == 1 and s.resvs[0].holder == -1


def test_legacy_pinned_pin_failure_releases_the_umem() -> None:
    """A failing dma_buf_pin (VFIO before v7: -EOPNOTSUPP) undoes the registration (§1.8)."""
    system, _, rdma = bar_system(
        RdmaPinnedImporter, exp={"pin_fails": True, "require_revocable": False}
    )
    model = system.model()
    s, ret = go(model, model.init_states()[0], "rdma-pinned: ibv_reg_dmabuf_mr")
    assert ret == -errno.EOPNOTSUPP and rdma.state(s).mr is MrState.FAILED
    assert s.attachments[0].detached and s.attachments[0].pins == 0 and s.warnings == ()


def test_legacy_pinned_dereg_unmaps_unpins_and_detaches() -> None:
    """Dereg destroys the HW MR, then ib_umem_release unmaps, unpins, detaches (§3.3)."""
    system, rdma = heap_system(RdmaPinnedImporter)
    model = system.model()
    s, _ = go(model, model.init_states()[0], "rdma-pinned: ibv_reg_dmabuf_mr")
    s, ret = go(model, s, "rdma-pinned: ibv_dereg_mr")
    assert ret == 0 and rdma.state(s).mr is MrState.RELEASED
    assert s.attachments[0].pins == 0 and s.attachments[0].detached
    assert not s.sg_tables[0].live and s.warnings == ()


# --- pinned revocable ----------------------------------------------------------------------------


def test_revocable_registration_sets_the_callback_before_dropping_the_resv() -> None:
    """get_pinned_revocable_and_lock returns locked; set_revoke_locked, then unlock (§3.1)."""
    system, _, rdma = bar_system(RdmaPinnedRevocableImporter)
    model = system.model()
    s, tid = fire(model, model.init_states()[0], "rdma-pinned-revocable: ibv_reg_dmabuf_mr")
    for _ in range(2):  # ib_umem_dmabuf_get; lock, pin, map
        out = step(s, tid)
        assert isinstance(out, KState)
        s = out
    assert s.resvs[0].holder == tid and not rdma.state(s).pinned_revoke
    out = step(s, tid)  # KERNEL wait, build MR, set_revoke_locked, unlock
    assert isinstance(out, KState)
    assert rdma.state(out).pinned_revoke and out.resvs[0].holder == -1 and out.warnings == ()


def test_revoke_runs_the_callback_once_then_unmaps_unpins_and_is_permanent() -> None:
    """revoke_locked: callback (HW key invalid), unmap, unpin, revoked; dereg keeps count 1.

    drivers.md §3.1 (order, at most once), §3.3 (REVOKED is permanent until dereg).
    """
    system, bar, rdma = bar_system(
        RdmaPinnedRevocableImporter, exp={"unrevoke_budget": 1}, access_budget=2
    )
    model = system.model()
    s, _ = go(model, model.init_states()[0], "rdma-pinned-revocable: ibv_reg_dmabuf_mr")
    s, ret = go(model, s, "toy-bar: revoke")
    st = rdma.state(s)
    assert ret == 0 and bar.st(s).revoke_done
    assert st.revoke_cb_calls == 1 and st.revoked and not st.pinned and st.mtt == ()
    assert st.sgt is None and s.attachments[0].pins == 0 and live_mappings(s, 0) == 0
    s, _ = go(model, s, "toy-bar: unrevoke")
    s, ret = go(model, s, "rdma-pinned-revocable: NIC accesses the MR")
    assert ret == ACCESS_ERROR and platform(s).transfers == ()  # no restore
    s, ret = go(model, s, "rdma-pinned-revocable: ibv_dereg_mr")
    assert ret == 0 and rdma.state(s).revoke_cb_calls == 1
    assert rdma.state(s).mr is MrState.RELEASED and s.warnings == ()


def test_map_pages_on_a_revoked_umem_is_einval() -> None:
    """ib_umem_dmabuf_map_pages refuses a revoked umem (drivers.md §3.1)."""
    system, _, rdma = bar_system(RdmaPinnedRevocableImporter)
    model = system.model()
    s, _ = go(model, model.init_states()[0], "rdma-pinned-revocable: ibv_reg_dmabuf_mr")
    s, _ = go(model, s, "toy-bar: revoke")
    r = dma_resv_lock(s, 50, 0, None)
    assert not isinstance(r, Blocked)
    m = rdma.ib_umem_dmabuf_map_pages(r[0], 50)
    assert not isinstance(m, Blocked) and m[1] == -errno.EINVAL


def test_dereg_without_a_revoke_runs_the_callback_through_release() -> None:
    """ib_umem_release goes through revoke_locked: the callback runs there, once (§3.1)."""
    system, rdma = heap_system(RdmaPinnedRevocableImporter)
    model = system.model()
    s, _ = go(model, model.init_states()[0], "rdma-pinned-revocable: ibv_reg_dmabuf_mr")
    s, _ = go(model, s, "rdma-pinned-revocable: ibv_dereg_mr")
    assert rdma.state(s).revoke_cb_calls == 1 and s.attachments[0].pins == 0


# --- NIC access fences (option access_fence, [inference]) ----------------------------------------


def test_access_fence_is_a_bookkeep_fence_signalled_when_the_access_ends() -> None:
    """With access_fence every access adds a BOOKKEEP fence; the NIC engine signals it."""
    system, rdma = heap_system(RdmaOdpImporter, access_fence=True)
    model = system.model()
    s, _ = go(model, model.init_states()[0], "rdma-odp: ibv_reg_dmabuf_mr")
    s, tid = fire(model, s, "rdma-odp: NIC accesses the MR")
    s = run_thread(s, tid)
    ((f, usage),) = s.resvs[0].fences
    assert usage is DmaResvUsage.BOOKKEEP and not dma_fence_is_signaled(s, f)
    assert s.fences[f].context == rdma.state(s).fence_context
    engine = next(t.tid for t in world(s).threads if t.name == "nic0 DMA engine")
    s = run_thread(s, engine)
    assert dma_fence_is_signaled(s, f) and dma_fence_get_status(s, f) == 1


def test_zap_of_an_access_in_flight_aborts_it_and_cancels_its_fence() -> None:
    """The callback contract stops the access: ABORTED, fence -ECANCELED; the revoke's
    BOOKKEEP wait does not block on it (drivers.md §3.1, core-semantics §5.8)."""
    system, _, _rdma = bar_system(RdmaOdpImporter, access_fence=True)
    model = system.model()
    s, _ = go(model, model.init_states()[0], "rdma-odp: ibv_reg_dmabuf_mr")
    s, tid = fire(model, s, "rdma-odp: NIC accesses the MR")
    s = run_thread(s, tid)  # the transfer is in flight, its engine has not run
    ((f, _),) = s.resvs[0].fences
    s, ret = go(model, s, "toy-bar: revoke")
    assert ret == 0 and dma_fence_get_status(s, f) == -errno.ECANCELED
    assert platform(s).transfers[0].status is TransferStatus.ABORTED
    assert platform(s).findings == ()


# --- exhaustive ----------------------------------------------------------------------------------


def _sometimes(name: str, fn: Any) -> Property[KState]:
    return Property.sometimes(name, fn)


def test_odp_with_a_revoking_exporter_keeps_every_property() -> None:
    """Toy BAR x rdma-odp: revoke/unrevoke racing registration, faults and accesses.

    No violation; an invalidation really hits a live mapping and accesses really complete.
    drivers.md §3.3, §7; core-semantics §5.8, §10 #22.
    """
    system, _, rdma = bar_system(RdmaOdpImporter, exp={"unrevoke_budget": 1}, dereg_budget=0)
    system.extra_properties += [
        _sometimes("invalidated_a_mapping", lambda s: rdma.state(s).invalidations > 0),
        _sometimes("accessed", lambda s: rdma.state(s).accesses > 0),
    ]
    result = check(system.model())
    result.assert_properties()
    assert result.complete and result.stats.unique == 299


def test_odp_zap_that_leaves_accesses_in_flight_is_a_dma_violation() -> None:
    """Broken variant stop_access_in_callback=False: an access lands after the unmap."""
    system, _, _ = bar_system(RdmaOdpImporter, dereg_budget=0, stop_access_in_callback=False)
    result = check(system.model())
    path = result.discovery("no_dma_violation")
    assert path is not None
    acts = [str(a) for a in path.actions]
    assert acts[-2:] == ["T1 toy-bar revoke: lock resv, revoke, invalidate", acts[-1]]
    assert acts[-1].endswith("DMA engine: dma_engine_run")
    assert findings_of(platform(path.states[-1]), FindingKind.DMA_AFTER_UNMAP)


def test_revoke_between_attach_and_pin_leaks_the_pin() -> None:
    """Model finding: a revoke after dma_buf_dynamic_attach but before dma_buf_pin marks the
    umem revoked; the pin then succeeds, map_pages fails -EINVAL, and ib_umem_release's
    revoke_locked returns early: the pin is never dropped (core-semantics §10 #19)."""
    system, _, _rdma = bar_system(RdmaPinnedRevocableImporter, access_budget=0, dereg_budget=0)
    result = check(system.model())
    path = result.discovery("pins_balanced")
    assert path is not None
    assert [str(a) for a in path.actions] == [
        "env: toy-bar: revoke",
        "env: rdma-pinned-revocable: ibv_reg_dmabuf_mr",
        "T2 rdma-pinned-revocable ibv_reg_dmabuf_mr: ib_umem_dmabuf_get",
        "T1 toy-bar revoke: lock resv, revoke, invalidate",
        "T1 toy-bar revoke: wait BOOKKEEP fences",
        "T2 rdma-pinned-revocable ibv_reg_dmabuf_mr: "
        "dma_resv_lock, dma_buf_pin, ib_umem_dmabuf_map_pages",
        "T2 rdma-pinned-revocable ibv_reg_dmabuf_mr: ib_umem_release: ib_umem_dmabuf_revoke",
        "T2 rdma-pinned-revocable ibv_reg_dmabuf_mr: ib_umem_release: dma_buf_detach, dma_buf_put",
    ]
    end = path.states[-1]
    assert end.attachments[0].detached and end.attachments[0].pins == 1
    assert world(end).threads[2].local("ret") == -errno.EINVAL


def test_the_pin_leak_also_pins_an_amdgpu_bo_for_good() -> None:
    """With amdgpu the leaked pin is real: an eviction between attach and pin leaves the BO
    pinned after the failed registration (drivers.md §4.1 pin, §3.1)."""
    topo = Topology.simple(["gpu0", "nic0"])
    system = DmaBufSystem(topo)
    gpu = system.add_exporter(AmdgpuExporter, device="gpu0")
    system.add_importer(
        RdmaPinnedRevocableImporter, device="nic0", source=gpu, access_budget=0, dereg_budget=0
    )
    result = check(system.model())
    path = result.discovery("pins_balanced")
    assert path is not None and str(path.actions[0]) == "env: amdgpu: ttm_bo_evict"


def test_with_the_candidate_fix_the_revocable_pair_keeps_every_property() -> None:
    """unpin_when_revoked (not in any tree): every property holds, and the callback runs.

    drivers.md §3.1, §7 "vfio x RDMA pinned-revocable"; core-semantics §5.8.
    """
    system, _, rdma = bar_system(
        RdmaPinnedRevocableImporter, unpin_when_revoked=True, dereg_budget=0
    )
    system.extra_properties.append(
        _sometimes("callback_ran", lambda s: rdma.state(s).revoke_cb_calls == 1)
    )
    result = check(system.model())
    result.assert_properties()
    assert result.stats.unique == 119


def test_registering_the_callback_after_unlock_lets_the_nic_use_a_revoked_mr() -> None:
    """Broken variant set_revoke_after_unlock: a revoke in the window never reaches the
    driver, the HW key stays valid, the NIC writes through an unmapped mapping (§3.1)."""
    system, _, _ = bar_system(
        RdmaPinnedRevocableImporter,
        set_revoke_after_unlock=True,
        unpin_when_revoked=True,
        dereg_budget=0,
    )
    result = check(system.model())
    path = result.discovery("no_dma_violation")
    assert path is not None
    end = platform(path.states[-1])
    assert findings_of(end, FindingKind.DMA_AFTER_UNMAP) or findings_of(
        end, FindingKind.DMA_AFTER_REVOKE
    )


def test_real_vfio_and_odp_keep_every_property_across_an_flr() -> None:
    """vfio-pci (FLR: revoke, reset, unrevoke) x rdma-odp, every interleaving (§7 cell)."""
    topo = Topology.simple(["vfio0", "nic0"])
    system = DmaBufSystem(topo)
    vfio = system.add_exporter(VfioPciExporter, device="vfio0")
    rdma = system.add_importer(RdmaOdpImporter, device="nic0", source=vfio, dereg_budget=0)
    assert isinstance(rdma, RdmaOdpImporter)
    system.extra_properties.append(
        _sometimes("invalidated_a_mapping", lambda s: rdma.state(s).invalidations > 0)
    )
    result = check(system.model())
    result.assert_properties()


def test_callback_at_most_once_property_is_declared_for_the_revocable_mode() -> None:
    """rdma-pinned-revocable adds its own property (drivers.md §3.1); others add none."""
    system, _, _rdma = bar_system(RdmaPinnedRevocableImporter)
    names = [p.name for p in system.properties()]
    assert "rdma_revoke_callback_at_most_once[rdma-pinned-revocable]" in names
    system2, _, _ = bar_system(RdmaOdpImporter)
    assert not [p for p in system2.properties() if p.name.startswith("rdma_")]


def test_real_vfio_flr_revokes_an_irdma_mr_once_and_for_good() -> None:
    """vfio-pci x rdma-pinned-revocable: the FLR's revoke runs irdma's callback once; the MR
    stays revoked after the unrevoke (drivers.md §7 cell "pinned-revocable", §3.3)."""
    topo = Topology.simple(["vfio0", "nic0"])
    system = DmaBufSystem(topo)
    vfio = system.add_exporter(VfioPciExporter, device="vfio0")
    rdma = system.add_importer(RdmaPinnedRevocableImporter, device="nic0", source=vfio)
    model = system.model()
    s, ret = go(model, model.init_states()[0], "rdma-pinned-revocable: ibv_reg_dmabuf_mr")
    assert ret == 0 and rdma.state(s).mr is MrState.ACTIVE
    s, ret = go(model, s, "vfio-pci: VFIO_DEVICE_RESET")
    st = rdma.state(s)
    assert ret == 0 and st.revoke_cb_calls == 1 and st.revoked and st.mtt == ()
    s, ret = go(model, s, "rdma-pinned-revocable: NIC accesses the MR")
    assert ret == ACCESS_ERROR and platform(s).findings == ()


def test_register_at_setup_boots_with_an_active_mr() -> None:
    """Option register_at_setup: the registration runs as a boot thread (drivers_common)."""
    system, rdma = heap_system(RdmaPinnedImporter, register_at_setup=True)
    model = system.model()
    s = model.init_states()[0]
    assert rdma.state(s).mr is MrState.ACTIVE and rdma.state(s).mtt == (0,)
    enabled = {str(a) for a in model.actions(s)}
    assert "env: rdma-pinned: ibv_reg_dmabuf_mr" not in enabled
    assert "env: rdma-pinned: NIC accesses the MR" in enabled
