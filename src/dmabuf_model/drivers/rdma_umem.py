"""rdma_umem: RDMA memory regions over a dma-buf, in the three import modes of ib_umem_dmabuf.

Model of drivers/infiniband/core/umem_dmabuf.c and the drivers that use it (mlx5 ODP, legacy
pinned users such as efa and bnxt_re, irdma's pinned revocable MRs), drivers.md §3. A NIC reaches
the buffer only through the MR's translation (MTT / HW key), filled from the sg table that
ib_umem_dmabuf_map_pages got from dma_buf_map_attachment.

DOC: the three modes (drivers.md §3.1, §3.3).
* rdma-odp (mlx5 ODP-style, dynamic): registration attaches with allow_peer2peer and an
  invalidate_mappings that zaps the MTT and unmaps. Nothing is mapped until the NIC touches the
  MR: the page fault takes the resv, ib_umem_dmabuf_map_pages maps and waits for the KERNEL
  fences, the MTT is written, the resv dropped, and the access goes on. After an invalidation the
  next access faults again; a fault whose map fails (-ENODEV from a revoked VFIO buffer, -EINVAL
  without a P2P path) is an access error, not a DMA.
* rdma-pinned (legacy): ib_umem_dmabuf_get_pinned attaches without invalidate_mappings, then
  pins and maps under the resv at registration; the MR stays until dereg. VFIO refuses it at
  attach (-EOPNOTSUPP); static exporters never take memory back from it.
* rdma-pinned-revocable (irdma): ib_umem_dmabuf_get_pinned_revocable_and_lock returns with the
  resv held, the driver builds its MR, registers its revoke callback with
  ib_umem_dmabuf_set_revoke_locked and only then unlocks, so a revoke cannot fall between. The
  invalidate_mappings op is ib_umem_dmabuf_revoke_locked: driver callback at most once (irdma:
  the HW key becomes invalid), unmap, unpin, revoked for good. ib_umem_release goes through it.

DOC: NIC accesses and fences. An MR access is one transfer through the first MTT entry
(platform dma_submit on the DmaMapping id; see drivers/device_dma.py), performed
later by the NIC's DMA engine. The RDMA core adds no fence to the dma-buf's resv for it
[inference]: in-flight accesses are stopped by the callback contract instead ("when the callback
returns, the HW must no longer access the region", drivers.md §3.1), modelled by aborting the
MR's pending transfers when the MTT is zapped or the key invalidated. Option ``access_fence``
makes every access also add a fence with usage DMA_RESV_USAGE_BOOKKEEP (RDMA traffic takes no
part in implicit sync, so only waits for "everything", such as VFIO's revoke, should see it; a
KERNEL or WRITE fence would also stall static importers' maps and other RDMA faults). Option
``stop_access_in_callback=False`` is the deliberately broken variant whose zap leaves in-flight
accesses running.

Lock order (drivers.md §3.3): exporter locks (VFIO memory_lock) -> resv -> driver MR locks,
taken inside the callbacks; the callbacks run in the exporter's thread with the resv held.

Designs (designs/, DriverEnv.options["design"]): under the pin-only-6.19 designs the legacy
pinned mode carries the stub move_notify it had before v7 (drivers.md §3.1): it only logs and
keeps the mapping, so an exporter that revokes it does so in name only.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, ClassVar

from dmabuf_model.check.model import Property
from dmabuf_model.designs import design_of
from dmabuf_model.drivers.base import (
    DriverEnv,
    Importer,
    Option,
    dma_resv_lock_traced,
    dma_resv_unlock_traced,
    platform,
    set_platform,
)
from dmabuf_model.drivers.device_dma import (
    device_dma_submit,
    dma_abort_mapping_transfers,
    sgt_mappings,
)
from dmabuf_model.drivers.dma_buf_import import dma_buf_detach_put, dma_buf_get_for
from dmabuf_model.kernel import errno
from dmabuf_model.kernel.dma_buf import (
    PAGE_SIZE,
    ULONG_MAX,
    DmaBufAttachOps,
    DmaDataDirection,
    dma_buf_dynamic_attach,
    dma_buf_map_attachment,
    dma_buf_pin,
    dma_buf_put,
    dma_buf_unmap_attachment,
    dma_buf_unpin,
)
from dmabuf_model.kernel.dma_fence import (
    MAX_SCHEDULE_TIMEOUT,
    dma_fence_context_alloc,
    dma_fence_init,
    dma_fence_put,
    dma_fence_set_error,
    dma_fence_signal,
)
from dmabuf_model.kernel.dma_resv import (
    DmaResvUsage,
    dma_resv_add_fence,
    dma_resv_assert_held,
    dma_resv_lock,
    dma_resv_reserve_fences,
    dma_resv_unlock,
    dma_resv_wait_timeout,
)
from dmabuf_model.kernel.state import AttachId, Blocked, BufId, KState, ResvId, SgtId, Tid
from dmabuf_model.platform.dma import dma_mapping_invalidate
from dmabuf_model.system.model import EnvEvent, run_thread
from dmabuf_model.system.threads import (
    Program,
    StepResult,
    Thread,
    emit,
    emit_call,
    finish,
    goto,
    program,
    spawn,
    wait_or_timeout,
    world,
)

BIDI = DmaDataDirection.BIDIRECTIONAL

ACCESS_ERROR = "IB_EVENT_QP_ACCESS_ERR"
"""What the QP reports when the NIC touches an MR that no longer translates (invalid key,
destroyed MR) or whose ODP page fault failed: an access error, never a DMA (drivers.md §3.3)."""


class MrState(IntEnum):
    """Where the MR (and its umem) is in its life (drivers.md §3.3 state machines)."""

    NONE = 0
    REGISTERING = 1
    ACTIVE = 2
    DEREGISTERING = 3
    RELEASED = 4
    FAILED = 5

    def __str__(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class IbUmemDmabuf:
    """struct ib_umem_dmabuf and the MR built on it (one MR per importer instance).

    ``buf`` is the dma_buf reference from dma_buf_get, ``attach`` the dynamic attachment, ``sgt``
    the live mapping (umem_dmabuf->sgt), ``pinned``/``revoked`` the umem flags,
    ``pinned_revoke`` whether the driver's revoke callback is registered, ``private`` mlx5's
    umem_dmabuf->private (the MR, cleared at dereg). ``mtt`` is the NIC's translation: the
    DmaMapping ids it uses (empty: zapped, or the key is invalid). ``fence_context`` and
    ``fence_seqno`` serve the ``access_fence`` option. Ghost counters: ``revoke_cb_calls`` (the
    driver callback, at most once per umem), ``accesses`` (transfers started),
    ``access_errors``, ``invalidations`` (invalidate callbacks that found a mapping),
    ``registrations``.
    """

    mr: MrState = MrState.NONE
    buf: BufId | None = None
    attach: AttachId | None = None
    sgt: SgtId | None = None
    pinned: bool = False
    revoked: bool = False
    pinned_revoke: bool = False
    private: bool = False
    mtt: tuple[int, ...] = ()
    fence_context: int = 0
    fence_seqno: int = 0
    revoke_cb_calls: int = 0
    accesses: int = 0
    access_errors: int = 0
    invalidations: int = 0
    registrations: int = 0


_COMMON_OPTIONS: dict[str, Option] = {
    "reg_budget": Option(1, "times userspace registers the MR (ibv_reg_dmabuf_mr)"),
    "register_at_setup": Option(
        False, "register the MR at boot (a boot thread; a failure leaves the MR FAILED)"
    ),
    "access_budget": Option(1, "times the NIC accesses the MR"),
    "dereg_budget": Option(1, "times userspace deregisters the MR (ibv_dereg_mr)"),
    "buffer": Option(0, "index into the source exporter's buffers()"),
    "offset": Option(0, "umem offset into the dma-buf, in bytes"),
    "length": Option(None, "umem length in bytes (None: the whole buffer from offset)"),
    "access_write": Option(True, "an access is an RDMA write into the MR (else a read)"),
    "access_fence": Option(
        False,
        "[inference] each access adds a BOOKKEEP fence to the resv, signalled when it ends "
        "(mainline RDMA adds none)",
    ),
    "map_pages_timeout": Option(
        None,
        "jiffies for ib_umem_dmabuf_map_pages' KERNEL fence wait (None: MAX_SCHEDULE_TIMEOUT, "
        "mainline; a finite value lets the wait time out: -ETIMEDOUT)",
    ),
}


class IbUmemDmabufImporter(Importer):
    """Common base of the three ib_umem_dmabuf import modes (drivers.md §3.1 "common details").

    ``device`` is the ib_device's dma_device: the PCI function that is attach->dev and masters
    the NIC's DMA. Subclasses set ``kind`` and override the mode hooks. Options (see OPTIONS):
    budgets for registration, NIC access and dereg, the umem window, and the inference options
    ``access_fence`` and ``map_pages_timeout``.
    """

    kind: ClassVar[str] = ""
    OPTIONS: ClassVar[Mapping[str, Option]] = _COMMON_OPTIONS

    def __init__(
        self, slot: int, env: DriverEnv, *, device: str, name: str = "", **options: Any
    ) -> None:
        super().__init__(slot, env, device=device, name=name, **options)
        self._prefix = f"{self.name}:{self.slot}"
        self._ops = self._make_attach_ops()
        self.reg_program = self._make_reg_program()
        self.access_program = self._make_access_program()
        self.dereg_program = self._make_dereg_program()

    # -- mode hooks ---------------------------------------------------------------------------

    def _make_attach_ops(self) -> DmaBufAttachOps:
        raise NotImplementedError

    def _make_reg_program(self) -> Program:
        raise NotImplementedError

    def _make_access_program(self) -> Program:
        return program(f"{self._prefix}: NIC access", ("NIC accesses the MR", self._step_access))

    def _make_dereg_program(self) -> Program:
        raise NotImplementedError

    def _on_mapped(self, s: KState, t: Thread) -> StepResult:
        """After ib_umem_dmabuf_map_pages succeeded with the resv held (mode specific)."""
        raise NotImplementedError

    def _on_map_error(self, s: KState, t: Thread, err: int) -> StepResult:
        """After ib_umem_dmabuf_map_pages (or the pin) failed with the resv held."""
        raise NotImplementedError

    # -- record -------------------------------------------------------------------------------

    def init_state(self) -> Hashable:
        """No MR yet."""
        return IbUmemDmabuf()

    def state(self, s: KState) -> IbUmemDmabuf:
        """This importer's umem/MR record in ``s``."""
        return self.state_as(s, IbUmemDmabuf)

    def attach_ops(self) -> DmaBufAttachOps:
        """The dma_buf_attach_ops of this mode (allow_peer2peer is always true, §3.1)."""
        return self._ops

    def _resv(self, s: KState) -> ResvId:
        st = self.state(s)
        assert st.buf is not None
        return s.bufs[st.buf].resv

    def _buffer(self, s: KState) -> BufId | None:
        if self.source is None:
            return None
        bufs = self.source.buffers(s)
        index = int(self.options["buffer"])
        return bufs[index] if 0 <= index < len(bufs) else None

    def setup(self, s: KState) -> KState:
        """Boot: the fence context ``access_fence`` uses; the MR if ``register_at_setup``."""
        if self.options["access_fence"]:
            s, ctx = dma_fence_context_alloc(s, 1)
            s = self.update(s, fence_context=ctx)
        if self.options["register_at_setup"]:
            s, tid = spawn(s, self.reg_program, f"{self.name} boot ibv_reg_dmabuf_mr")
            s = run_thread(s, tid)
        return s

    # -- umem_dmabuf.c --------------------------------------------------------------------------

    def ib_umem_dmabuf_get(
        self, s: KState, tid: Tid, buf: BufId | None
    ) -> tuple[KState, AttachId | int] | Blocked:
        """ib_umem_dmabuf_get - take the dma-buf behind userspace's fd and attach the NIC.

        ib_umem_dmabuf_get_with_dma_device with this mode's attach ops. Caller must not hold the
        resv (dma_buf_dynamic_attach takes it: Blocked while someone holds it). In order:
        offset + length overflowing is -EINVAL; dma_buf_get errors (-EBADF, -EINVAL); a buffer
        smaller than offset + length is -EINVAL; a window of zero pages is -EINVAL; then
        dma_buf_dynamic_attach, whose errors propagate (from VFIO -EOPNOTSUPP or -ENODEV). Each
        failure after dma_buf_get drops that reference. On success the record holds a fresh
        umem in state REGISTERING.

        Returns: the AttachId or a negative errno. drivers.md §3.1 "common details".
        """
        offset = int(self.options["offset"])
        length_opt = self.options["length"]
        if length_opt is not None and offset + int(length_opt) > ULONG_MAX:
            return s, -errno.EINVAL
        # If dma_buf_dynamic_attach below sleeps on the resv, the caller's whole step is
        # discarded (Blocked), the dma_buf_get with it: the retry starts afresh.
        s, got = dma_buf_get_for(s, tid, buf)
        if got < 0:
            return s, got
        length = s.bufs[got].size - offset if length_opt is None else int(length_opt)
        end = offset + length
        if s.bufs[got].size < end:
            return dma_buf_put(s, tid, got), -errno.EINVAL
        first = offset // PAGE_SIZE
        last = (end + PAGE_SIZE - 1) // PAGE_SIZE
        if last - first <= 0:
            return dma_buf_put(s, tid, got), -errno.EINVAL
        r2 = dma_buf_dynamic_attach(s, tid, got, self.device, self._ops, self.slot)
        if isinstance(r2, Blocked):
            return r2
        s, attach = r2
        emit_call("dma_buf_dynamic_attach", f"buf{got}, {self.device}, {self._ops.name}", attach)
        if attach < 0:
            return dma_buf_put(s, tid, got), attach
        st = self.state(s)
        fresh = IbUmemDmabuf(
            mr=MrState.REGISTERING,
            buf=got,
            attach=attach,
            fence_context=st.fence_context,
            fence_seqno=st.fence_seqno,
            accesses=st.accesses,
            access_errors=st.access_errors,
            registrations=st.registrations + 1,
        )
        return self.set_state(s, fresh), attach

    def ib_umem_dmabuf_map_pages(self, s: KState, tid: Tid) -> tuple[KState, int] | Blocked:
        """ib_umem_dmabuf_map_pages - map the buffer for the NIC (first half, two-step form).

        Caller holds the resv (asserted: WARN #8). A revoked umem is -EINVAL. Without a
        mapping it calls dma_buf_map_attachment (a dynamic attachment: no core fence wait) and
        keeps the table (the trim to the umem window is not modelled); its error propagates.
        The KERNEL fence wait is ib_umem_dmabuf_map_pages_wait.

        Returns: 0; -EINVAL (revoked); the map error. drivers.md §3.1.
        """
        st = self.state(s)
        assert st.attach is not None
        s = dma_resv_assert_held(s, self._resv(s), tid, "ib_umem_dmabuf_map_pages", invariant=8)
        if st.revoked:
            return s, -errno.EINVAL
        if st.sgt is not None:
            return s, 0
        r = dma_buf_map_attachment(s, tid, st.attach, BIDI)
        if isinstance(r, Blocked):
            return r
        s, sgt = r
        emit_call("dma_buf_map_attachment", f"attach{st.attach}, BIDIRECTIONAL", _sgt(sgt))
        if sgt < 0:
            return s, sgt
        return self.update(s, sgt=sgt), 0

    def ib_umem_dmabuf_map_pages_wait(
        self, s: KState, tid: Tid, *, timed_out: bool = False
    ) -> tuple[KState, int] | Blocked:
        """ib_umem_dmabuf_map_pages_wait - the KERNEL fence wait of ib_umem_dmabuf_map_pages.

        Caller holds the resv. Waits on the resv for usage KERNEL, uninterruptibly; the time
        limit is MAX_SCHEDULE_TIMEOUT unless option ``map_pages_timeout`` sets one
        (``timed_out`` then says the time ran out). Blocked while a KERNEL fence is unsignalled.
        This is how a dynamic importer waits for the exporter's move fences.

        Returns: 0; -ETIMEDOUT when the wait returned 0; a negative wait error.
        drivers.md §3.1, §8 (ETIMEDOUT).
        """
        timeout_opt = self.options["map_pages_timeout"]
        timeout = MAX_SCHEDULE_TIMEOUT if timeout_opt is None else int(timeout_opt)
        resv = self._resv(s)
        r = dma_resv_wait_timeout(
            s, tid, resv, DmaResvUsage.KERNEL, False, timeout, timed_out=timed_out
        )
        if isinstance(r, Blocked):
            return r
        s, ret = r
        shown: str | int = "MAX_SCHEDULE_TIMEOUT" if timeout_opt is None else timeout
        result: str | int = "MAX_SCHEDULE_TIMEOUT" if ret == MAX_SCHEDULE_TIMEOUT else ret
        emit_call("dma_resv_wait_timeout", f"resv{resv}, KERNEL, false, {shown}", result)
        if ret < 0:
            return s, ret
        if ret == 0:
            return s, -errno.ETIMEDOUT
        return s, 0

    def ib_umem_dmabuf_unmap_pages(self, s: KState, tid: Tid) -> KState:
        """ib_umem_dmabuf_unmap_pages - give the mapping back, if there is one.

        Caller holds the resv (asserted: WARN #8). dma_buf_unmap_attachment, then no sgt.
        drivers.md §3.1.
        """
        st = self.state(s)
        assert st.attach is not None
        s = dma_resv_assert_held(s, self._resv(s), tid, "ib_umem_dmabuf_unmap_pages", invariant=8)
        if st.sgt is None:
            return s
        s = dma_buf_unmap_attachment(s, tid, st.attach, st.sgt, BIDI)
        emit_call("  -> dma_buf_unmap_attachment", f"attach{st.attach}, sgt{st.sgt}")
        return self.update(s, sgt=None)

    def ib_umem_dmabuf_revoke_locked(self, s: KState, tid: Tid, attach: AttachId) -> KState:
        """ib_umem_dmabuf_revoke_locked - tear the umem down for good, once.

        Caller holds the resv (asserted: WARN #10; it is the pinned-revocable
        invalidate_mappings op, and ib_umem_release calls it too). Already revoked: nothing.
        Otherwise, in this order: the driver's revoke callback if one is registered (at most
        once per umem; irdma: the HW key becomes invalid and the HW stops accessing the region),
        unmap the pages, unpin if pinned, mark revoked. drivers.md §3.1, §3.3.
        """
        st = self.state(s)
        s = dma_resv_assert_held(
            s, self._resv(s), tid, "ib_umem_dmabuf_revoke_locked", invariant=10
        )
        emit(f"  -> ib_umem_dmabuf_revoke_locked(attach{attach})")
        if st.revoked:
            if st.pinned and self.options.get("unpin_when_revoked", False):
                s = dma_buf_unpin(s, tid, attach)
                emit_call("  -> dma_buf_unpin (pin taken after the revoke)", f"attach{attach}")
                return self.update(s, pinned=False)
            return s
        if st.pinned_revoke:
            s = self._driver_revoke_cb(s)
        s = self.ib_umem_dmabuf_unmap_pages(s, tid)
        if self.state(s).pinned:
            s = dma_buf_unpin(s, tid, attach)
            emit_call("  -> dma_buf_unpin", f"attach{attach}")
        return self.update(s, pinned=False, revoked=True)

    def ib_umem_dmabuf_revoke(self, s: KState, tid: Tid) -> KState | Blocked:
        """ib_umem_dmabuf_revoke - dma_resv_lock, ib_umem_dmabuf_revoke_locked, unlock.

        Caller must not hold the resv (NULL-context lock: Blocked while held). drivers.md §3.1.
        """
        resv = self._resv(s)
        r = dma_resv_lock_traced(s, tid, resv)
        if isinstance(r, Blocked):
            return r
        s = r
        attach = self.state(s).attach
        assert attach is not None
        s = self.ib_umem_dmabuf_revoke_locked(s, tid, attach)
        return dma_resv_unlock_traced(s, tid, resv)

    def ib_umem_dmabuf_set_revoke_locked(self, s: KState, tid: Tid) -> KState:
        """ib_umem_dmabuf_set_revoke_locked - register the driver's revoke callback.

        Caller holds the resv (asserted: WARN #8). drivers.md §3.1 (two-step registration).
        """
        s = dma_resv_assert_held(
            s, self._resv(s), tid, "ib_umem_dmabuf_set_revoke_locked", invariant=8
        )
        emit_call("ib_umem_dmabuf_set_revoke_locked", "irdma_umem_dmabuf_revoke")
        return self.update(s, pinned_revoke=True)

    # -- hardware -------------------------------------------------------------------------------

    def _hw_stop(self, s: KState, what: str) -> KState:
        """The NIC stops using the MR's translation: MTT zapped / key invalid.

        The mappings are marked invalidated for the oracle; with ``stop_access_in_callback``
        (mainline contract) every access still in flight through them is aborted before the
        driver returns (drivers.md §3.1).
        """
        st = self.state(s)
        mappings = st.mtt
        if st.sgt is not None:
            mappings = tuple(sorted(set(mappings) | set(sgt_mappings(s, st.sgt))))
        emit(f"  -> {what}")
        ps = platform(s)
        for mid in mappings:
            ps = dma_mapping_invalidate(ps, mid)
        s = set_platform(s, ps)
        if self.options.get("stop_access_in_callback", True):
            s = dma_abort_mapping_transfers(s, mappings)
        return self.update(s, mtt=())

    def _driver_revoke_cb(self, s: KState) -> KState:
        """The driver's pinned_revoke callback (irdma: invalidate the HW key, keep it reserved)."""
        st = self.state(s)
        s = self._hw_stop(s, "irdma_umem_dmabuf_revoke: HW key invalid")
        return self.update(s, revoke_cb_calls=st.revoke_cb_calls + 1)

    def _write_mtt(self, s: KState) -> KState:
        st = self.state(s)
        assert st.sgt is not None
        mtt = sgt_mappings(s, st.sgt)
        emit(f"write MTT: mappings {list(mtt)}")
        return self.update(s, mtt=mtt)

    def _submit(self, s: KState, t: Thread) -> StepResult:
        """The NIC starts one access through the first MTT entry (with a fence if asked)."""
        st = self.state(s)
        write = bool(self.options["access_write"])
        if not self.options["access_fence"]:
            s, xid = device_dma_submit(s, self.topology, self.device, st.mtt[0], write=write)
            return self._access_done(s, t, xid)
        resv = self._resv(s)
        r = dma_resv_lock(s, t.tid, resv, None)
        if isinstance(r, Blocked):
            return r
        s, _ = r
        s, ret = dma_resv_reserve_fences(s, t.tid, resv, 1)
        seqno = st.fence_seqno + 1
        s, f = dma_fence_init(s, st.fence_context, seqno, driver_name="ib_core")
        s = self.update(s, fence_seqno=seqno)
        s, xid = device_dma_submit(s, self.topology, self.device, st.mtt[0], write=write, fence=f)
        if xid < 0 or ret < 0:
            s = dma_fence_set_error(s, f, xid if xid < 0 else ret)
            s = dma_fence_put(dma_fence_signal(s, f), f)
        else:
            s = dma_resv_add_fence(s, t.tid, resv, f, DmaResvUsage.BOOKKEEP)
            emit_call("dma_resv_add_fence", f"resv{resv}, fence{f}, BOOKKEEP")
        s = dma_resv_unlock(s, t.tid, resv)
        return self._access_done(s, t, xid)

    def _access_done(self, s: KState, t: Thread, xid: int) -> KState:
        st = self.state(s)
        if xid < 0:
            return finish(self.update(s, access_errors=st.access_errors + 1), t, ret=xid)
        return finish(self.update(s, accesses=st.accesses + 1), t, ret=0)

    def _access_error(self, s: KState, t: Thread, ret: Hashable = ACCESS_ERROR) -> KState:
        emit(f"{self.device}: access error ({ret})")
        st = self.state(s)
        return finish(self.update(s, access_errors=st.access_errors + 1), t, ret=ret)

    # -- common steps ----------------------------------------------------------------------------

    def _step_access(self, s: KState, t: Thread) -> StepResult:
        """The NIC touches the MR: through the MTT, or (mode hook) a page fault or an error."""
        st = self.state(s)
        if st.mr is not MrState.ACTIVE:
            return self._access_error(s, t)
        if st.mtt:
            return self._submit(s, t)
        return self._access_without_mtt(s, t)

    def _access_without_mtt(self, s: KState, t: Thread) -> StepResult:
        """Pinned modes: the key is invalid (revoked), so the access fails."""
        return self._access_error(s, t)

    def _step_get(self, s: KState, t: Thread) -> StepResult:
        r = self.ib_umem_dmabuf_get(s, t.tid, self._buffer(s))
        if isinstance(r, Blocked):
            return r
        s, attach = r
        if attach < 0:
            return finish(self.update(s, mr=MrState.FAILED), t, ret=attach)
        return self._after_get(s, t)

    def _after_get(self, s: KState, t: Thread) -> StepResult:
        return goto(s, t, "dma_resv_lock, dma_buf_pin, ib_umem_dmabuf_map_pages")

    def _step_lock_pin_map(self, s: KState, t: Thread) -> StepResult:
        """ib_umem_dmabuf_get_pinned_and_lock: lock the resv, dma_buf_pin, map the pages."""
        st = self.state(s)
        assert st.attach is not None
        resv = self._resv(s)
        r = dma_resv_lock_traced(s, t.tid, resv)
        if isinstance(r, Blocked):
            return r
        s = r
        s, ret = dma_buf_pin(s, t.tid, st.attach)
        emit_call("dma_buf_pin", f"attach{st.attach}", ret)
        if ret < 0:
            return self._on_map_error(s, t, ret)
        s = self.update(s, pinned=True)
        m = self.ib_umem_dmabuf_map_pages(s, t.tid)
        if isinstance(m, Blocked):
            return m
        s, ret = m
        if ret < 0:
            return self._on_map_error(s, t, ret)
        return goto(s, t, "ib_umem_dmabuf_map_pages: wait KERNEL fences")

    def _step_map_wait(self, s: KState, t: Thread) -> StepResult:
        """The KERNEL fence wait of ib_umem_dmabuf_map_pages, with the resv held."""

        def attempt(timed_out: bool) -> KState | Blocked:
            r = self.ib_umem_dmabuf_map_pages_wait(s, t.tid, timed_out=timed_out)
            if isinstance(r, Blocked):
                return r
            s2, ret = r
            out = self._on_map_error(s2, t, ret) if ret < 0 else self._on_mapped(s2, t)
            if not isinstance(out, KState):
                raise TypeError(f"{self.name}: a map-pages continuation must end the step")
            return out

        if self.options["map_pages_timeout"] is None:
            return attempt(False)
        return wait_or_timeout(attempt)

    def _unlock_then_release(self, s: KState, t: Thread, err: int) -> KState:
        """err_release of get_pinned_and_lock: unlock, then ib_umem_release."""
        resv = self._resv(s)
        s = dma_resv_unlock_traced(s, t.tid, resv)
        return goto(s, t, "ib_umem_release: ib_umem_dmabuf_revoke", err=err)

    def _step_release_revoke(self, s: KState, t: Thread) -> StepResult:
        """ib_umem_release -> ib_umem_dmabuf_release -> ib_umem_dmabuf_revoke."""
        if self.state(s).mr is MrState.ACTIVE:
            s = self.update(s, mr=MrState.DEREGISTERING)
        r = self.ib_umem_dmabuf_revoke(s, t.tid)
        if isinstance(r, Blocked):
            return r
        return goto(r, t, "ib_umem_release: dma_buf_detach, dma_buf_put")

    def _step_release_detach(self, s: KState, t: Thread) -> StepResult:
        """ib_umem_dmabuf_release: dma_buf_detach, dma_buf_put; the umem is gone."""
        st = self.state(s)
        assert st.buf is not None and st.attach is not None
        r = dma_buf_detach_put(s, t.tid, st.buf, st.attach)
        if isinstance(r, Blocked):
            return r
        s = r
        err = t.local("err", 0)
        assert isinstance(err, int)
        mr = MrState.FAILED if err < 0 else MrState.RELEASED
        s = self.update(s, mr=mr, buf=None, attach=None, sgt=None, mtt=(), private=False)
        return finish(s, t, ret=err)

    def _release_steps(self) -> tuple[tuple[str, Any], ...]:
        return (
            ("ib_umem_release: ib_umem_dmabuf_revoke", self._step_release_revoke),
            ("ib_umem_release: dma_buf_detach, dma_buf_put", self._step_release_detach),
        )

    # -- events and properties -----------------------------------------------------------------

    def _running(self, s: KState, prog: Program) -> bool:
        return any(th.program == prog and not th.done for th in world(s).threads)

    def _can_register(self, s: KState) -> bool:
        st = self.state(s)
        ok = st.mr in (MrState.NONE, MrState.RELEASED, MrState.FAILED)
        return ok and not self._running(s, self.reg_program)

    def _active(self, s: KState) -> bool:
        return self.state(s).mr is MrState.ACTIVE

    def _can_dereg(self, s: KState) -> bool:
        return self._active(s) and not self._running(s, self.dereg_program)

    def events(self) -> list[EnvEvent]:
        """ibv_reg_dmabuf_mr, NIC access, ibv_dereg_mr: each with its budget and guard."""
        out: list[EnvEvent] = []
        table = (
            ("reg_budget", "ibv_reg_dmabuf_mr", self.reg_program, self._can_register),
            ("access_budget", "NIC accesses the MR", self.access_program, self._active),
            ("dereg_budget", "ibv_dereg_mr", self.dereg_program, self._can_dereg),
        )
        for option, what, prog, guard in table:
            budget = int(self.options[option])
            if budget > 0:
                out.append(
                    EnvEvent(
                        f"{self.name}: {what}",
                        prog,
                        budget=budget,
                        thread_name=f"{self.name} {what.split()[0]}",
                        guard=guard,
                    )
                )
        return out


class RdmaOdpImporter(IbUmemDmabufImporter):
    """rdma-odp: mlx5's dynamic dma-buf MR (drivers.md §3.1 "Dynamic", §3.2 mlx5, §3.3).

    Registration attaches only; the NIC's first access faults and maps; invalidate_mappings
    zaps the MTT and unmaps; the next access faults again. ``stop_access_in_callback=False`` is
    the broken variant whose zap leaves accesses in flight.
    """

    kind: ClassVar[str] = "rdma-odp"
    OPTIONS: ClassVar[Mapping[str, Option]] = {
        **_COMMON_OPTIONS,
        "stop_access_in_callback": Option(
            True, "the MTT zap stops accesses in flight before returning; False is a bug"
        ),
    }

    def _make_attach_ops(self) -> DmaBufAttachOps:
        return DmaBufAttachOps(
            f"mlx5_ib_dmabuf_attach_ops[{self.slot}]",
            allow_peer2peer=True,
            invalidate_mappings=self.mlx5_ib_dmabuf_invalidate_cb,
        )

    def mlx5_ib_dmabuf_invalidate_cb(self, s: KState, tid: Tid, attach: AttachId) -> KState:
        """mlx5_ib_dmabuf_invalidate_cb - zap the MTT and unmap (the ODP invalidate_mappings).

        Runs in the exporter's thread with the resv held (the core asserts #10). Nothing to do
        while nothing is mapped or the MR is being destroyed (umem_dmabuf->private cleared).
        Otherwise the UMR zap makes the NIC stop using the translation (accesses in flight are
        stopped, see the module DOC) and ib_umem_dmabuf_unmap_pages gives the mapping back; the
        next access faults and maps again. drivers.md §3.2 mlx5, §3.3.
        """
        st = self.state(s)
        emit(f"  -> mlx5_ib_dmabuf_invalidate_cb(attach{attach})")
        if not st.private or st.sgt is None:
            return s
        s = self._hw_stop(s, "mlx5r_umr_update_mr_pas(ZAP)")
        s = self.ib_umem_dmabuf_unmap_pages(s, tid)
        return self.update(s, invalidations=self.state(s).invalidations + 1)

    def _make_reg_program(self) -> Program:
        return program(
            f"{self._prefix}: mlx5_ib_reg_user_mr_dmabuf", ("ib_umem_dmabuf_get", self._step_get)
        )

    def _after_get(self, s: KState, t: Thread) -> StepResult:
        """The MR exists; nothing is mapped until the NIC faults (drivers.md §3.3)."""
        s = self.update(s, mr=MrState.ACTIVE, private=True)
        emit("mlx5: ODP mkey created, umem_dmabuf->private = mr (nothing mapped yet)")
        return finish(s, t, ret=0)

    def _make_access_program(self) -> Program:
        return program(
            f"{self._prefix}: NIC access",
            ("NIC accesses the MR", self._step_access),
            ("pagefault_dmabuf_mr: dma_resv_lock", self._step_fault_lock),
            ("ib_umem_dmabuf_map_pages", self._step_fault_map),
            ("ib_umem_dmabuf_map_pages: wait KERNEL fences", self._step_map_wait),
        )

    def _access_without_mtt(self, s: KState, t: Thread) -> StepResult:
        emit(f"{self.device}: page fault on the dma-buf MR")
        return goto(s, t, "pagefault_dmabuf_mr: dma_resv_lock")

    def _step_fault_lock(self, s: KState, t: Thread) -> StepResult:
        """pagefault_dmabuf_mr takes the resv (NULL ctx)."""
        if self.state(s).buf is None:
            return self._access_error(s, t)
        resv = self._resv(s)
        r = dma_resv_lock_traced(s, t.tid, resv)
        if isinstance(r, Blocked):
            return r
        return goto(r, t, "ib_umem_dmabuf_map_pages")

    def _step_fault_map(self, s: KState, t: Thread) -> StepResult:
        """ib_umem_dmabuf_map_pages with the resv held: -EINVAL if revoked, else map."""
        st = self.state(s)
        if st.mr is not MrState.ACTIVE or not st.private:
            resv = self._resv(s)
            s = dma_resv_unlock_traced(s, t.tid, resv)
            return self._access_error(s, t)
        m = self.ib_umem_dmabuf_map_pages(s, t.tid)
        if isinstance(m, Blocked):
            return m
        s, ret = m
        if ret < 0:
            return self._on_map_error(s, t, ret)
        return goto(s, t, "ib_umem_dmabuf_map_pages: wait KERNEL fences")

    def _on_mapped(self, s: KState, t: Thread) -> StepResult:
        """Write the MTT, unlock; the NIC retries the access."""
        s = self._write_mtt(s)
        resv = self._resv(s)
        s = dma_resv_unlock_traced(s, t.tid, resv)
        return goto(s, t, "NIC accesses the MR")

    def _on_map_error(self, s: KState, t: Thread, err: int) -> StepResult:
        """The fault fails: unlock; the access is an error, not a DMA (drivers.md §3.3)."""
        resv = self._resv(s)
        s = dma_resv_unlock_traced(s, t.tid, resv)
        return self._access_error(s, t, err)

    def _make_dereg_program(self) -> Program:
        return program(
            f"{self._prefix}: mlx5_ib_dereg_mr",
            ("mlx5_revoke_mr: dma_resv_lock, zap, clear private", self._step_mlx5_revoke_mr),
            *self._release_steps(),
        )

    def _step_mlx5_revoke_mr(self, s: KState, t: Thread) -> StepResult:
        """mlx5_revoke_mr: under the resv, revoke the mkey and clear umem_dmabuf->private."""
        resv = self._resv(s)
        r = dma_resv_lock_traced(s, t.tid, resv)
        if isinstance(r, Blocked):
            return r
        s = r
        s = self.update(s, mr=MrState.DEREGISTERING)
        s = self._hw_stop(s, "mlx5_revoke_mr: mkey revoked")
        s = self.update(s, private=False)
        s = dma_resv_unlock_traced(s, t.tid, resv)
        return goto(s, t, "ib_umem_release: ib_umem_dmabuf_revoke")


class RdmaPinnedImporter(IbUmemDmabufImporter):
    """rdma-pinned: the legacy pinned MR, no invalidate_mappings (drivers.md §3.1 "Pinned").

    ib_umem_dmabuf_get_pinned pins and maps under the resv at registration; the MR lasts until
    dereg. Not revocable: VFIO refuses it at attach with -EOPNOTSUPP. Under the pin-only-6.19
    designs its ops carry the pre-v7 stub move_notify (ib_umem_dmabuf_unsupported_move_notify).
    """

    kind: ClassVar[str] = "rdma-pinned"

    def _make_attach_ops(self) -> DmaBufAttachOps:
        name = f"ib_umem_dmabuf_attach_pinned_ops[{self.slot}]"
        if design_of(self.env.options).legacy_pinned_stub_callback:
            return DmaBufAttachOps(
                name,
                allow_peer2peer=True,
                invalidate_mappings=self.ib_umem_dmabuf_unsupported_move_notify,
            )
        return DmaBufAttachOps(name, allow_peer2peer=True)

    def ib_umem_dmabuf_unsupported_move_notify(
        self, s: KState, tid: Tid, attach: AttachId
    ) -> KState:
        """ib_umem_dmabuf_unsupported_move_notify - the pre-v7 stub: log, change nothing.

        Only under the pin-only-6.19 designs (drivers.md §3.1 "before that a stub that only
        warned"; removed by v7 patch 5). It runs under the exporter's resv and only prints a
        rate-limited device message (ibdev_warn_ratelimited, not a kernel WARN): the MR keeps
        its pin, its mapping and its HW key, so the NIC goes on reaching the memory after the
        exporter took it back (core-semantics §7: the bug the revoke series fixed).
        """
        emit(
            f"  -> ib_umem_dmabuf_unsupported_move_notify(attach{attach}): "
            "ibdev_warn_ratelimited (pinned MR kept as it is)"
        )
        return s

    def _make_reg_program(self) -> Program:
        return program(
            f"{self._prefix}: ib_umem_dmabuf_get_pinned",
            ("ib_umem_dmabuf_get", self._step_get),
            ("dma_resv_lock, dma_buf_pin, ib_umem_dmabuf_map_pages", self._step_lock_pin_map),
            ("ib_umem_dmabuf_map_pages: wait KERNEL fences", self._step_map_wait),
            *self._release_steps(),
        )

    def _on_mapped(self, s: KState, t: Thread) -> StepResult:
        """get_pinned unlocks; the driver builds the MR from the umem (key valid, MTT filled)."""
        resv = self._resv(s)
        s = dma_resv_unlock_traced(s, t.tid, resv)
        s = self._write_mtt(s)
        return finish(self.update(s, mr=MrState.ACTIVE), t, ret=0)

    def _on_map_error(self, s: KState, t: Thread, err: int) -> StepResult:
        return self._unlock_then_release(s, t, err)

    def _make_dereg_program(self) -> Program:
        return program(
            f"{self._prefix}: dereg_mr",
            ("destroy the HW MR", self._step_destroy_mr),
            *self._release_steps(),
        )

    def _step_destroy_mr(self, s: KState, t: Thread) -> StepResult:
        """The driver destroys the MR in HW (key invalid) before ib_umem_release."""
        s = self.update(s, mr=MrState.DEREGISTERING)
        s = self._hw_stop(s, "destroy HW MR: key invalid")
        return goto(s, t, "ib_umem_release: ib_umem_dmabuf_revoke")


class RdmaPinnedRevocableImporter(IbUmemDmabufImporter):
    """rdma-pinned-revocable: irdma's pinned MR with a revoke callback (drivers.md §3.1, §3.3).

    Registration holds the resv from the pin to ib_umem_dmabuf_set_revoke_locked. A revoke runs
    the driver callback once (HW key invalid), unmaps and unpins; the MR stays REVOKED until
    dereg. ``set_revoke_after_unlock=True`` is a broken variant that drops the resv before
    registering the callback; ``stop_access_in_callback=False`` one whose callback leaves
    accesses in flight.
    """

    kind: ClassVar[str] = "rdma-pinned-revocable"
    OPTIONS: ClassVar[Mapping[str, Option]] = {
        **_COMMON_OPTIONS,
        "stop_access_in_callback": Option(
            True, "the driver callback stops accesses in flight before returning; False is a bug"
        ),
        "set_revoke_after_unlock": Option(
            False, "register the revoke callback after dropping the resv; True is a bug"
        ),
        "unpin_when_revoked": Option(
            False,
            "[not in any tree] a candidate fix: ib_umem_dmabuf_revoke_locked drops a pin taken "
            "after the umem was revoked (mainline returns early and leaks it)",
        ),
    }

    def _make_attach_ops(self) -> DmaBufAttachOps:
        return DmaBufAttachOps(
            f"ib_umem_dmabuf_attach_pinned_revocable_ops[{self.slot}]",
            allow_peer2peer=True,
            invalidate_mappings=self.ib_umem_dmabuf_revoke_locked,
        )

    def _make_reg_program(self) -> Program:
        steps: list[tuple[str, Any]] = [
            ("ib_umem_dmabuf_get", self._step_get),
            ("dma_resv_lock, dma_buf_pin, ib_umem_dmabuf_map_pages", self._step_lock_pin_map),
            ("ib_umem_dmabuf_map_pages: wait KERNEL fences", self._step_map_wait),
        ]
        if self.options["set_revoke_after_unlock"]:
            steps.append(
                ("dma_resv_lock, ib_umem_dmabuf_set_revoke_locked, unlock", self._step_late_set)
            )
        steps.extend(self._release_steps())
        return program(f"{self._prefix}: irdma_reg_user_mr_dmabuf", *steps)

    def _on_mapped(self, s: KState, t: Thread) -> StepResult:
        """The driver builds its MR, registers the callback and unlocks (resv held throughout)."""
        emit("irdma_reg_user_mr: build MR from the umem (HW key valid)")
        s = self._write_mtt(s)
        s = self.update(s, mr=MrState.ACTIVE)
        resv = self._resv(s)
        if self.options["set_revoke_after_unlock"]:
            s = dma_resv_unlock_traced(s, t.tid, resv)
            return goto(s, t, "dma_resv_lock, ib_umem_dmabuf_set_revoke_locked, unlock")
        s = self.ib_umem_dmabuf_set_revoke_locked(s, t.tid)
        s = dma_resv_unlock(s, t.tid, resv)
        emit_call("ib_umem_dmabuf_revoke_unlock", f"resv{resv}")
        return finish(s, t, ret=0)

    def _step_late_set(self, s: KState, t: Thread) -> StepResult:
        """The broken order: the callback is registered in a second resv section."""
        if self.state(s).buf is None:  # deregistered meanwhile
            return finish(s, t, ret=0)
        resv = self._resv(s)
        r = dma_resv_lock(s, t.tid, resv, None)
        if isinstance(r, Blocked):
            return r
        s = self.ib_umem_dmabuf_set_revoke_locked(r[0], t.tid)
        s = dma_resv_unlock_traced(s, t.tid, resv)
        return finish(s, t, ret=0)

    def _on_map_error(self, s: KState, t: Thread, err: int) -> StepResult:
        return self._unlock_then_release(s, t, err)

    def _make_dereg_program(self) -> Program:
        return program(f"{self._prefix}: irdma_dereg_mr", *self._release_steps())

    def properties(self) -> list[Property[KState]]:
        """The driver callback runs at most once per umem (drivers.md §3.1)."""

        def at_most_once(s: KState) -> bool:
            return self.state(s).revoke_cb_calls <= 1

        return [
            Property.always(
                f"rdma_revoke_callback_at_most_once[{self.name}]",
                at_most_once,
                cite="drivers.md §3.1 (ib_umem_dmabuf_revoke_locked)",
            )
        ]


def _sgt(ret: int) -> str | int:
    return f"sgt{ret}" if ret >= 0 else ret


__all__ = [
    "ACCESS_ERROR",
    "IbUmemDmabuf",
    "IbUmemDmabufImporter",
    "MrState",
    "RdmaOdpImporter",
    "RdmaPinnedImporter",
    "RdmaPinnedRevocableImporter",
]
