"""ttm: TTM buffer objects (drivers/gpu/drm/ttm/ttm_bo.c, ttm_bo_util.c) as GPUs share them.
The placement, pin and move machinery amdgpu and xe have in common as exporters and importers.

What it models (drivers.md §4): one buffer object with a placement, pins, moves that tell
importers first (dma_buf_invalidate_mappings, core-semantics §5.8) and free the old pages only
once the resv fences have retired (the movable flow, core-semantics §6.5, §10 #20, #21), and the
SG BO an importing GPU wraps around another driver's dma-buf. amdgpu.py and xe.py add their own
dma_buf_ops rules on top.

After the 2026 rename the GPU drivers' invalidate handling is inferred from the rename, not read
in source (spec README, drivers.md §4 and Uncertainties): behaviour here stays close to
drivers.md §4 and every inference is marked [inference].

DOC: placements and pages

A BO is in one placement: TTM_PL_VRAM (the exporting GPU's VRAM, which the model places behind
one BAR of its PCI function, so peers reach it by P2P), TTM_PL_TT (amdgpu's GTT: system RAM
pages bound into the GPU's GART) or TTM_PL_SYSTEM (the same RAM pages, not bound; nobody maps
a BO there). Moving between TT and SYSTEM keeps the pages; every other move copies into new
pages and frees the old ones, which ends their generation in the platform (VRAM: the BAR's
generation ends as FREED, the VRAM manager may hand the pages to anyone; RAM: ram_free). A
device access through an address of the old pages is then ``dma_after_reuse``.

DOC: moves, in the two forms the model has

* Eviction (TTM eviction pressure, an environment event with a budget) is the brief's
  synchronous form of the movable flow: the evicting thread takes the resv, refuses a pinned BO
  (-EBUSY; TTM keeps pinned BOs off its LRU), calls the driver's move_notify
  (dma_buf_invalidate_mappings: amdgpu only when leaving a non-SYSTEM placement, xe on every
  move), waits for every resv fence (BOOKKEEP: the importers' job fences), adds a KERNEL move
  fence, moves, signals the move fence and unlocks. It goes one step down: VRAM to TT, TT to
  SYSTEM.
* A move inside an exporter callback (map_dma_buf or pin validating into another placement,
  begin_cpu_access) cannot sleep, so it is pipelined as TTM pipelines it
  (ttm_bo_move_accel_cleanup): move_notify, new pages, a KERNEL move fence in the resv, and a
  copy thread ("ttm-move") that waits for the fences that were there before, frees the old
  pages and signals the move fence. Importers wait for KERNEL fences after mapping, so they
  never use the new pages before the copy is done. When nothing is pending the copy completes
  in the same step. While a copy out of VRAM is pending the BAR counts as occupied (the ghost
  object still owns the old VRAM), so a validate that prefers VRAM takes TT then [inference: one
  BO per BAR in the model].

The broken-exporter option ``skip_fence_wait_on_move=True`` frees the old pages without waiting
for the fences, which the oracle reports as ``dma_after_reuse`` when an importer's job runs.

DOC: the importing GPU (TtmSgImporter)

The importer wraps the dma-buf in an SG BO sharing the exporter's resv and attaches dynamically
with allow_peer2peer=True and an invalidate_mappings that evicts the SG BO (drivers.md §4.3). A
command submission (an environment event) takes the resv, maps again if the SG BO was evicted,
waits for the KERNEL fences (the exporter's move), adds its job fence (WRITE or READ by implicit
sync, BOOKKEEP when explicitly synced: option) and starts one device access through the mapping
(platform dma_submit); a ring thread runs the access (dma_engine_run) and signals the job fence.
A map error (-ENODEV from a revoked VFIO buffer) fails the submission: no job, no DMA.

Eviction of the SG BO: the mapping is marked invalidated at once, and unmapped at once when the
importer has no job in flight; otherwise the unmap waits for the importer's job fences, as TTM's
pipeline gutting hands the old binding to a ghost object that is destroyed when idle (a
"ttm-ghost" thread) [inference: drivers.md Uncertainties, "GPU internals"]. Unmapping while a
job still runs would be ``dma_after_unmap``.

sg_table entries: the exporters here return the platform DMA mapping ids (one per entry) as
the entries of their sg_table; the importers read the same convention from any exporter.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum
from typing import Any, ClassVar

from dmabuf_model.check.model import Property
from dmabuf_model.drivers.base import (
    DriverError,
    Exporter,
    Importer,
    Option,
    TakebackKind,
    dma_resv_lock_traced,
    dma_resv_unlock_traced,
    platform,
    set_platform,
)
from dmabuf_model.drivers.device_dma import dma_unmap_sgtable, sgt_mappings
from dmabuf_model.drivers.dma_buf_import import dma_buf_detach_put
from dmabuf_model.kernel import errno
from dmabuf_model.kernel.dma_buf import (
    DmaBufAttachOps,
    DmaBufOps,
    DmaDataDirection,
    MapResult,
    dma_buf_dynamic_attach,
    dma_buf_export,
    dma_buf_fd,
    dma_buf_invalidate_mappings,
    dma_buf_map_attachment,
    dma_buf_put,
    dma_buf_unmap_attachment,
    get_dma_buf,
)
from dmabuf_model.kernel.dma_fence import (
    MAX_SCHEDULE_TIMEOUT,
    dma_fence_context_alloc,
    dma_fence_init,
    dma_fence_is_signaled,
    dma_fence_put,
    dma_fence_set_error,
    dma_fence_signal,
)
from dmabuf_model.kernel.dma_resv import (
    DmaResvUsage,
    dma_resv_add_fence,
    dma_resv_held,
    dma_resv_init,
    dma_resv_iter_unlocked,
    dma_resv_lock,
    dma_resv_reserve_fences,
    dma_resv_test_signaled,
    dma_resv_unlock,
    dma_resv_wait_timeout,
)
from dmabuf_model.kernel.state import (
    AttachId,
    Blocked,
    BufId,
    Fd,
    FenceId,
    KState,
    ResvId,
    SgtId,
    Tid,
    record,
    replace,
    tuple_set,
)
from dmabuf_model.platform.dma import (
    TransferStatus,
    dma_engine_run,
    dma_map_phys,
    dma_mapping_invalidate,
    dma_submit,
)
from dmabuf_model.platform.memory import GenCause, ram_alloc, ram_free, range_bump
from dmabuf_model.platform.topology import pci_p2pdma_distance
from dmabuf_model.system.model import EnvEvent, run_thread
from dmabuf_model.system.threads import (
    Thread,
    emit,
    emit_call,
    finish,
    goto,
    program,
    spawn,
)

BIDI = DmaDataDirection.BIDIRECTIONAL
PAGE_SIZE = 4096


class TtmPlacement(IntEnum):
    """Where a TTM BO lives (TTM_PL_SYSTEM, TTM_PL_TT, TTM_PL_VRAM); amdgpu calls TT "GTT"."""

    SYSTEM = 0
    TT = 1
    VRAM = 2

    def __str__(self) -> str:
        return f"TTM_PL_{self.name}"


_PLACEMENT_NAMES = {
    "VRAM": TtmPlacement.VRAM,
    "GTT": TtmPlacement.TT,
    "TT": TtmPlacement.TT,
    "SYSTEM": TtmPlacement.SYSTEM,
    "CPU": TtmPlacement.SYSTEM,
}


def placement_from_name(name: str) -> TtmPlacement:
    """placement_from_name - "VRAM", "GTT"/"TT" or "SYSTEM"/"CPU" to a TtmPlacement.

    DriverError naming the valid choices otherwise (a scenario or test typo).
    """
    try:
        return _PLACEMENT_NAMES[name.upper()]
    except KeyError:
        valid = ", ".join(sorted(_PLACEMENT_NAMES))
        raise DriverError(f"{name!r} is not a TTM placement; valid: {valid}") from None


@record
class TtmBo:
    """The part of a struct ttm_buffer_object the dma-buf model needs (drivers.md §4).

    ``pages`` is the platform range backing the BO: the VRAM BAR, or a RAM region for TT and
    SYSTEM (-1: none). ``pin_count`` is ttm_bo_pin/ttm_bo_unpin's count. ``vram_ghost`` is set
    while a pipelined copy out of VRAM has not freed the old VRAM yet. ``moves`` and
    ``moved_while_pinned`` are ghost state for the properties (core-semantics §10 #20).
    """

    placement: TtmPlacement
    pages: int = -1
    pin_count: int = 0
    vram_ghost: bool = False
    moves: int = 0
    moved_while_pinned: bool = False


@record
class TtmExporterState:
    """A GPU exporter's record: its BO and the dma-buf exported from it.

    ``buf`` is -1 before the export or when it failed (``export_ret``, e.g. -EPERM).
    ``fence_context``/``seqno`` is the timeline of its move fences. ``runtime_pm_refs`` counts
    xe's runtime-PM references taken in attach (0 for amdgpu). ``moved_busy`` is ghost state: a
    move found fences of others still pending (the interesting case of core-semantics §6.5).
    """

    bo: TtmBo
    resv: ResvId = -1
    buf: BufId = -1
    fd: Fd = -1
    export_ret: int = 0
    fence_context: int = 0
    seqno: int = 0
    released: bool = False
    runtime_pm_refs: int = 0
    moved_busy: bool = False


@record
class TtmImporterState:
    """An importing GPU's record: its SG BO, the attachment and the jobs in flight.

    ``sgt`` is the SG BO's current mapping (ttm->sg), None while evicted; ``stale`` are evicted
    mappings whose unmap waits for the importer's jobs (TTM ghost objects); ``jobs`` are the
    (job fence, transfer id) pairs not yet signalled, oldest first (transfer -1: the job had no
    access). ``maps`` counts successful maps; ``remapped`` (ghost) says a submission mapped
    again after an invalidation.
    """

    buf: BufId = -1
    attach: AttachId = -1
    import_ret: int = 0
    sgt: SgtId | None = None
    stale: tuple[SgtId, ...] = ()
    fence_context: int = 0
    seqno: int = 0
    jobs: tuple[tuple[FenceId, int], ...] = ()
    maps: int = 0
    invalidated: bool = False
    remapped: bool = False
    freed: bool = False


def ops_name(kernel_name: str, kind: str, name: str) -> str:
    """ops_name - the kernel's name of a callback table, with the instance when it differs
    from the driver ("amdgpu_dmabuf_ops", "amdgpu_dmabuf_ops (gpuA)"). Tables are compared by
    name, so two instances must not share one."""
    return kernel_name if name == kind else f"{kernel_name} ({name})"


def _unsignalled(s: KState, fences: Sequence[FenceId]) -> tuple[FenceId, ...]:
    return tuple(f for f in fences if not dma_fence_is_signaled(s, f))


# =============================================================================================
# The exporter side.


class TtmExporter(Exporter):
    """A GPU exporting a movable TTM BO (amdgpu, xe): the shared placement and move machinery.

    Subclasses give the dma_buf_ops (``_build_ops``), the export refusal (``export_error``), and
    whether a move from one placement to another calls dma_buf_invalidate_mappings
    (``invalidates_on_move``). drivers.md §4.1, §4.2; core-semantics §6.5.
    """

    takeback: ClassVar[TakebackKind | None] = TakebackKind.MOVE
    move_notify_name: ClassVar[str] = "ttm_bo_move_notify"
    export_name: ClassVar[str] = "drm_gem_prime_export"

    OPTIONS: ClassVar[dict[str, Option]] = {
        "placement": Option("VRAM", "initial placement of the BO: VRAM, GTT/TT or SYSTEM"),
        "vram_bar": Option(0, "the BAR of the exporting GPU that holds its VRAM"),
        "evict_budget": Option(1, "how many TTM evictions of the BO may happen"),
        "skip_fence_wait_on_move": Option(
            False,
            "BROKEN exporter: move and free the old pages without waiting for the resv fences "
            "(violates core-semantics §6.5, §10 #21)",
        ),
    }

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.initial_placement = placement_from_name(str(self.options["placement"]))
        self._ops: DmaBufOps | None = None
        self.evict_program = program(
            f"{self.name}-evict",
            ("dma_resv_lock, ttm_bo_move_notify", self._evict_lock),
            ("wait BOOKKEEP fences", self._evict_wait),
            ("ttm_bo_move: KERNEL move fence, copy, signal, unlock", self._evict_move),
        )
        self.copy_program = program(
            f"{self.name}-ttm-move",
            ("wait fences, copy, free old pages, signal move fence", self._copy_step),
        )
        self.export_program = program(f"{self.name}-export", (self.export_name, self._export_step))

    # -- configuration ----------------------------------------------------------------------------

    @property
    def vram_range(self) -> int:
        """The platform range id of the VRAM BAR (a BAR of this GPU's PCI function)."""
        return self.topology.bar(self.device, int(self.options["vram_bar"]))

    def ops_name(self, kernel_name: str) -> str:
        """The dma_buf_ops table's name for this instance (see the module function ops_name)."""
        return ops_name(kernel_name, self.kind, self.name)

    def export_error(self) -> int:
        """export_error - the errno the driver's prime export refuses this BO with, 0 to
        export it (amdgpu, xe: -EPERM). No lock. drivers.md §4.1, §4.2."""
        return 0

    def invalidates_on_move(self, old: TtmPlacement, new: TtmPlacement) -> bool:
        """invalidates_on_move - does the driver's move_notify call
        dma_buf_invalidate_mappings for a move from ``old`` to ``new``? Called with the resv
        held. drivers.md §4.1 (amdgpu), §4.2 (xe)."""
        del old, new
        return True

    def _build_ops(self) -> DmaBufOps:
        raise NotImplementedError

    def dma_buf_ops(self) -> DmaBufOps:
        """The driver's struct dma_buf_ops (built once, so callbacks keep their identity)."""
        if self._ops is None:
            self._ops = self._build_ops()
        return self._ops

    # -- state ------------------------------------------------------------------------------------

    def init_state(self) -> TtmExporterState:
        """The BO at boot: in its initial placement (VRAM pages now; RAM pages in setup)."""
        pages = self.vram_range if self.initial_placement is TtmPlacement.VRAM else -1
        return TtmExporterState(bo=TtmBo(placement=self.initial_placement, pages=pages))

    def state(self, s: KState) -> TtmExporterState:
        """This exporter's record in ``s``."""
        return self.state_as(s, TtmExporterState)

    def _set_bo(self, s: KState, bo: TtmBo) -> KState:
        return self.update(s, bo=bo)

    def buffers(self, s: KState) -> tuple[int, ...]:
        """The exported dma-buf, or () when the export was refused."""
        buf = self.state(s).buf
        return (buf,) if buf >= 0 else ()

    def setup(self, s: KState) -> KState:
        """Boot: allocate the move-fence timeline, RAM pages for a BO born in TT/SYSTEM, and
        export the BO (a boot thread run to completion)."""
        s, ctx = dma_fence_context_alloc(s, 1)
        rec = self.state(s)
        bo = rec.bo
        if bo.placement is not TtmPlacement.VRAM:
            ps, rid = ram_alloc(platform(s), self.topology)
            if rid < 0:
                raise DriverError(
                    f"{self.name}: no free RAM region for a BO born in {bo.placement}"
                )
            s = set_platform(s, ps)
            bo = replace(bo, pages=rid)
        s = self.set_state(s, replace(rec, bo=bo, fence_context=ctx))
        s, tid = spawn(s, self.export_program, f"{self.name}-boot")
        return run_thread(s, tid)

    def _export_step(self, s: KState, t: Thread) -> KState:
        """drm_gem_prime_export: refuse (export_error), else dma_buf_export sharing the BO's
        resv (exp_info.resv) and dma_buf_fd. drivers.md §4.1, §4.2; core-semantics §5.1."""
        err = self.export_error()
        if err:
            emit_call(self.export_name, f"{self.name} bo", err)
            return finish(self.update(s, export_ret=err), t, ret=err)
        s, resv = dma_resv_init(s)
        size = self.topology.ranges[self.vram_range].pages * PAGE_SIZE
        s, buf = dma_buf_export(
            s,
            t.tid,
            ops=self.dma_buf_ops(),
            size=size,
            priv=f"{self.name}-bo",
            exp_name=self.kind,
            resv=resv,
        )
        emit_call("dma_buf_export", f"{self.kind} bo, resv{resv}", buf)
        if buf < 0:
            return finish(self.update(s, export_ret=buf), t, ret=buf)
        s, fd = dma_buf_fd(s, t.tid, buf, 0)
        emit_call("dma_buf_fd", f"buf{buf}", fd)
        rec = replace(self.state(s), resv=resv, buf=buf, fd=fd)
        return finish(self.set_state(s, rec), t, ret=0)

    # -- platform pages ---------------------------------------------------------------------------

    def _alloc_pages(self, s: KState, new: TtmPlacement) -> tuple[KState, int]:
        """Pages for ``new``: the VRAM BAR, or a free RAM region (-ENOMEM when none is free)."""
        if new is TtmPlacement.VRAM:
            return s, self.vram_range
        ps, rid = ram_alloc(platform(s), self.topology)
        if rid < 0:
            return s, rid
        return set_platform(s, ps), rid

    def _free_pages(self, s: KState, placement: TtmPlacement, pages: int) -> KState:
        """The old pages of a move go back to their allocator: their generation ends (FREED)."""
        ps = platform(s)
        if placement is TtmPlacement.VRAM:
            emit(f"ttm: old VRAM ({self.topology.ranges[pages].name}) back to the VRAM manager")
            ps = range_bump(ps, pages, GenCause.FREED)
            s = self._set_bo(set_platform(s, ps), replace(self.state(s).bo, vram_ghost=False))
            return s
        emit(f"ttm: old pages ({self.topology.ranges[pages].name}) freed")
        return set_platform(s, ram_free(ps, self.topology, pages))

    def vram_available(self, s: KState) -> bool:
        """vram_available - VRAM can take the BO: no pipelined copy still owns the old VRAM.

        No lock (a read of the exporter's record). [inference: one BO per BAR in the model;
        TTM would allocate other VRAM pages.] drivers.md §4.
        """
        return not self.state(s).bo.vram_ghost

    def _new_move_fence(self, s: KState, tid: Tid) -> tuple[KState, FenceId]:
        """A KERNEL move fence on the exporter's timeline, added to the resv (held by tid)."""
        rec = self.state(s)
        s, f = dma_fence_init(s, rec.fence_context, rec.seqno + 1, timeline_name=self.name)
        s = self.update(s, seqno=rec.seqno + 1)
        s, ret = dma_resv_reserve_fences(s, tid, rec.resv, 1)
        emit_call("dma_resv_reserve_fences", f"resv{rec.resv}, 1", ret)
        s = dma_resv_add_fence(s, tid, rec.resv, f, DmaResvUsage.KERNEL)
        emit_call("dma_resv_add_fence", f"resv{rec.resv}, fence{f}, KERNEL")
        return s, f

    def _note_move(self, s: KState, new: TtmPlacement, pages: int, busy: bool) -> KState:
        """Record the BO in ``new``; a move while pinned is ghost state for §10 #20."""
        rec = self.state(s)
        bo = rec.bo
        leaving_vram = bo.placement is TtmPlacement.VRAM and pages != bo.pages
        bo = replace(
            bo,
            placement=new,
            pages=pages,
            moves=bo.moves + 1,
            moved_while_pinned=bo.moved_while_pinned or bo.pin_count > 0,
            vram_ghost=bo.vram_ghost or leaving_vram,
        )
        return self.set_state(s, replace(rec, bo=bo, moved_busy=rec.moved_busy or busy))

    def _move_notify(self, s: KState, tid: Tid, old: TtmPlacement, new: TtmPlacement) -> KState:
        """The driver's move_notify: dma_buf_invalidate_mappings when its rule says so."""
        buf = self.state(s).buf
        if not self.invalidates_on_move(old, new):
            emit(f"{self.move_notify_name}: {old} -> {new}, no invalidation")
            return s
        emit(f"{self.move_notify_name}: {old} -> {new}")
        emit_call("dma_buf_invalidate_mappings", f"buf{buf}")
        return dma_buf_invalidate_mappings(s, tid, buf)

    def _others_busy(self, s: KState) -> tuple[FenceId, ...]:
        """The unsignalled resv fences a move must wait for (every usage, BOOKKEEP)."""
        rec = self.state(s)
        return tuple(f for f, _ in dma_resv_iter_unlocked(s, rec.resv, DmaResvUsage.BOOKKEEP))

    # -- ttm_bo_validate inside callbacks (pipelined) ---------------------------------------------

    def ttm_bo_validate(
        self, s: KState, tid: Tid, allowed: Sequence[TtmPlacement]
    ) -> tuple[KState, int]:
        """ttm_bo_validate - put the BO in one of ``allowed`` (preference order), pipelined.

        Caller holds the resv (exporter callbacks run under it). No move when the BO already is
        in an allowed placement. A pinned BO is not moved: -EBUSY [inference: TTM refuses].
        Otherwise the first allowed placement that has room (VRAM: no ghost pending) is taken:
        move_notify, new pages (-ENOMEM when no RAM is free), and a pipelined copy (see the
        module DOC). Returns 0 or -errno. drivers.md §4.1, §4.2; core-semantics §6.5.
        """
        bo = self.state(s).bo
        if bo.placement in allowed:
            return s, 0
        if bo.pin_count:
            emit(f"ttm_bo_validate: pinned BO cannot leave {bo.placement}")
            return s, -errno.EBUSY
        choices = [p for p in allowed if p is not TtmPlacement.VRAM or self.vram_available(s)]
        if not choices:
            return s, -errno.ENOMEM
        return self._pipelined_move(s, tid, choices[0])

    def _pipelined_move(self, s: KState, tid: Tid, new: TtmPlacement) -> tuple[KState, int]:
        rec = self.state(s)
        old, old_pages = rec.bo.placement, rec.bo.pages
        same_pages = {old, new} == {TtmPlacement.TT, TtmPlacement.SYSTEM}
        if same_pages:
            pages = old_pages
        else:
            s, pages = self._alloc_pages(s, new)
            if pages < 0:
                emit(f"ttm_bo_validate: no room in {new}")
                return s, pages
        s = self._move_notify(s, tid, old, new)
        waits = self._others_busy(s)
        if self.options["skip_fence_wait_on_move"]:
            waits = ()
        busy = bool(self._others_busy(s))
        s = self._note_move(s, new, pages, busy)
        if same_pages:
            emit(f"ttm_bo_validate: {old} -> {new} (same pages, no copy)")
            return s, 0
        s, f = self._new_move_fence(s, tid)
        if not waits:
            emit(f"ttm_bo_validate: {old} -> {new}, copy done at once")
            s = self._free_pages(s, old, old_pages)
            emit_call("dma_fence_signal", f"fence{f}")
            return dma_fence_put(dma_fence_signal(s, f), f), 0
        emit(f"ttm_bo_validate: {old} -> {new}, copy queued behind {len(waits)} fence(s)")
        s, _ = spawn(
            s,
            self.copy_program,
            waits=waits,
            fence=f,
            old=int(old),
            old_pages=old_pages,
        )
        return s, 0

    def _copy_step(self, s: KState, t: Thread) -> KState | Blocked:
        """The copy engine: wait for the fences that were there before, free the old pages (the
        ghost object goes away), signal the move fence. No resv (§10 #48)."""
        waits = t.local("waits")
        assert isinstance(waits, tuple)
        for f in waits:
            if not dma_fence_is_signaled(s, f):
                return Blocked(on=f"fence{f}")
        old_num, old_pages, fence = t.local("old"), t.local("old_pages"), t.local("fence")
        assert isinstance(old_num, int) and isinstance(old_pages, int) and isinstance(fence, int)
        old = TtmPlacement(old_num)
        s = self._free_pages(s, old, old_pages)
        emit_call("dma_fence_signal", f"fence{fence}")
        s = dma_fence_put(dma_fence_signal(s, fence), fence)
        return finish(s, t, ret=0)

    # -- eviction (synchronous movable flow) ------------------------------------------------------

    def events(self) -> Sequence[EnvEvent]:
        """TTM eviction pressure on the BO (budget ``evict_budget``)."""
        budget = int(self.options["evict_budget"])
        if budget <= 0:
            return ()
        return (
            EnvEvent(
                f"{self.name}: ttm_bo_evict",
                self.evict_program,
                budget=budget,
                guard=self._evictable,
            ),
        )

    def _evictable(self, s: KState) -> bool:
        rec = self.state(s)
        return rec.buf >= 0 and rec.bo.placement is not TtmPlacement.SYSTEM

    def evict_target(self, placement: TtmPlacement) -> TtmPlacement:
        """evict_target - where TTM evicts a BO in ``placement``: VRAM to TT (GTT), TT to
        SYSTEM. No lock. drivers.md §4 [inference: amdgpu_evict_flags' order, shared]."""
        return TtmPlacement.TT if placement is TtmPlacement.VRAM else TtmPlacement.SYSTEM

    def _evict_lock(self, s: KState, t: Thread) -> KState | Blocked:
        """Take the resv; refuse a pinned BO (-EBUSY, §10 #20); move_notify (invalidate)."""
        rec = self.state(s)
        locked = dma_resv_lock_traced(s, t.tid, rec.resv)
        if isinstance(locked, Blocked):
            return locked
        s = locked
        bo = self.state(s).bo
        if bo.pin_count:
            emit(f"ttm_bo_evict: BO pinned ({bo.pin_count}) in {bo.placement}, not evictable")
            return finish(dma_resv_unlock_traced(s, t.tid, rec.resv), t, ret=-errno.EBUSY)
        if bo.placement is TtmPlacement.SYSTEM:
            emit("ttm_bo_evict: BO already in TTM_PL_SYSTEM")
            return finish(dma_resv_unlock_traced(s, t.tid, rec.resv), t, ret=0)
        new = self.evict_target(bo.placement)
        s = self._move_notify(s, t.tid, bo.placement, new)
        busy = bool(self._others_busy(s))
        if busy:
            s = self.update(s, moved_busy=True)
        if self.options["skip_fence_wait_on_move"]:
            emit("ttm_bo_evict: BROKEN, not waiting for the resv fences")
            return goto(s, t, "ttm_bo_move: KERNEL move fence, copy, signal, unlock", new=int(new))
        return goto(s, t, "wait BOOKKEEP fences", new=int(new))

    def _evict_wait(self, s: KState, t: Thread) -> KState | Blocked:
        """Wait, uninterruptibly and without limit, for every resv fence (core-semantics §6.5)."""
        resv = self.state(s).resv
        r = dma_resv_wait_timeout(
            s, t.tid, resv, DmaResvUsage.BOOKKEEP, False, MAX_SCHEDULE_TIMEOUT
        )
        if isinstance(r, Blocked):
            return r
        s, _ = r
        emit_call(
            "dma_resv_wait_timeout",
            f"resv{resv}, BOOKKEEP, false, MAX_SCHEDULE_TIMEOUT",
            "MAX_SCHEDULE_TIMEOUT",
        )
        return goto(s, t, "ttm_bo_move: KERNEL move fence, copy, signal, unlock")

    def _evict_move(self, s: KState, t: Thread) -> KState:
        """Add the KERNEL move fence, copy into the new pages, free the old ones, signal, unlock."""
        rec = self.state(s)
        new_num = t.local("new")
        assert isinstance(new_num, int)
        new = TtmPlacement(new_num)
        old, old_pages = rec.bo.placement, rec.bo.pages
        same_pages = {old, new} == {TtmPlacement.TT, TtmPlacement.SYSTEM}
        if same_pages:
            pages = old_pages
        else:
            s, pages = self._alloc_pages(s, new)
            if pages < 0:
                emit(f"ttm_bo_evict: no room in {new}")
                return finish(dma_resv_unlock_traced(s, t.tid, rec.resv), t, ret=pages)
        s, f = self._new_move_fence(s, t.tid)
        s = self._note_move(s, new, pages, False)
        emit(f"ttm_bo_move: {old} -> {new}")
        if not same_pages:
            s = self._free_pages(s, old, old_pages)
        emit_call("dma_fence_signal", f"fence{f}")
        s = dma_fence_put(dma_fence_signal(s, f), f)
        return finish(dma_resv_unlock_traced(s, t.tid, rec.resv), t, ret=0)

    # -- pieces of the dma_buf_ops both drivers share ---------------------------------------------

    def _set_peer2peer(self, s: KState, attach: AttachId, value: bool) -> KState:
        a = s.attachments[attach]
        return s.evolve(attachments=tuple_set(s.attachments, attach, replace(a, peer2peer=value)))

    def _all_peer2peer(self, s: KState) -> bool:
        """Every attachment on the buffer's list has peer2peer (the pin rule, drivers.md §4)."""
        buf = self.state(s).buf
        return all(s.attachments[a].peer2peer for a in s.bufs[buf].attachments)

    def _dma_map_placement(self, s: KState, attach: AttachId) -> tuple[KState, MapResult]:
        """Map the BO's current pages for ``attach->dev``: TT through dma_map_sgtable (failure:
        -EBUSY), VRAM through P2P addresses (the platform's error, -EINVAL when the path is
        not supported), anything else -EINVAL. Entries are platform mapping ids.
        drivers.md §4.1, §4.2, §6."""
        bo = self.state(s).bo
        dev = s.attachments[attach].dev
        fn = self.topology.find_parent_pci_dev(dev) if self._known_device(dev) else None
        if bo.placement is TtmPlacement.TT:
            if fn is None:
                emit_call("dma_map_sgtable", f"{dev}, {self._range_name(bo.pages)}", -errno.EINVAL)
                return s, -errno.EBUSY
            name = self.topology.functions[fn].name
            ps, mid = dma_map_phys(platform(s), self.topology, name, bo.pages)
            emit_call("dma_map_sgtable", f"{name}, {self._range_name(bo.pages)}", mid)
            if mid < 0:
                return s, -errno.EBUSY
            return set_platform(s, ps), (mid,)
        if bo.placement is TtmPlacement.VRAM:
            if fn is None:
                return s, -errno.EINVAL
            name = self.topology.functions[fn].name
            ps, mid = dma_map_phys(platform(s), self.topology, name, bo.pages)
            emit_call("vram_mgr_alloc_sgt", f"{name}, {self._range_name(bo.pages)}", mid)
            if mid < 0:
                return s, mid
            return set_platform(s, ps), (mid,)
        emit(f"map_dma_buf: BO in {bo.placement} cannot be mapped")
        return s, -errno.EINVAL

    def p2pdma_distance(self, dev: str) -> int:
        """p2pdma_distance - pci_p2pdma_distance(this GPU, ``dev``), -1 when there is no P2P
        path or ``dev`` is unknown to the topology. No lock. drivers.md §4.1, §4.2, §6."""
        if not self._known_device(dev):
            return -1
        return pci_p2pdma_distance(self.topology, self.device, dev)

    def _known_device(self, dev: str) -> bool:
        try:
            self.topology.find_parent_pci_dev(dev)
        except ValueError:
            return False
        return True

    def _range_name(self, rid: int) -> str:
        return self.topology.ranges[rid].name if rid >= 0 else "none"

    def _unmap(
        self, s: KState, tid: Tid, attach: AttachId, sgt: SgtId, d: DmaDataDirection
    ) -> KState:
        """unmap_dma_buf: dma unmap (TT) or free the VRAM sgt: every platform mapping of it."""
        del tid, attach, d
        return set_platform(s, dma_unmap_sgtable(platform(s), sgt_mappings(s, sgt)))

    def _release(self, s: KState, tid: Tid, buf: BufId) -> KState:
        """release: drm_gem_dmabuf_release drops the GEM reference; the BO itself lives on."""
        del tid, buf
        return self.update(s, released=True)

    def _pin_count(self, s: KState, delta: int) -> KState:
        bo = self.state(s).bo
        return self._set_bo(s, replace(bo, pin_count=max(0, bo.pin_count + delta)))

    def _resv_trylock_validate(
        self, s: KState, tid: Tid, allowed: Sequence[TtmPlacement]
    ) -> tuple[KState, int]:
        """For callbacks the core calls unlocked (begin_cpu_access): take the resv, validate,
        unlock. A callback cannot sleep in the model, so when another thread holds the resv the
        migration is skipped and 0 returned [modelling limitation; the kernel would sleep]."""
        resv = self.state(s).resv
        if dma_resv_held(s, resv, tid):
            return self.ttm_bo_validate(s, tid, allowed)
        r = dma_resv_lock(s, tid, resv, None)
        if isinstance(r, Blocked):
            emit("begin_cpu_access: resv busy, migration skipped (model limitation)")
            return s, 0
        s, _ = r
        s, ret = self.ttm_bo_validate(s, tid, allowed)
        return dma_resv_unlock(s, tid, resv), ret

    # -- properties -------------------------------------------------------------------------------

    def properties(self) -> Sequence[Property[KState]]:
        """The exporter never moves its BO while it is pinned (core-semantics §10 #20)."""

        def never_moved_pinned(s: KState) -> bool:
            return not self.state(s).bo.moved_while_pinned

        return (
            Property.always(
                f"{self.name}_no_move_while_pinned",
                never_moved_pinned,
                cite="core-semantics §10 #20",
            ),
        )

    def sometimes_properties(self) -> Sequence[Property[KState]]:
        """Nontriviality: a move happens while an importer's fence is still pending (§6.5)."""

        def moved_busy(s: KState) -> bool:
            return self.state(s).moved_busy

        return (
            Property.sometimes(
                f"{self.name}_moves_with_fences_pending",
                moved_busy,
                cite="core-semantics §6.5, drivers.md §4",
            ),
        )


# =============================================================================================
# The importer side.


class TtmSgImporter(Importer):
    """A GPU importing a dma-buf as an SG BO: dynamic, peer2peer, evicts on invalidate, maps
    again on the next submission, fences its jobs (drivers.md §4.3, core-semantics §6.5).

    Subclasses name the entry points (``cs_name``, ``invalidate_name``) and may add driver work
    to the invalidation (``_after_evict``).
    """

    cs_name: ClassVar[str] = "gpu_submit"
    invalidate_name: ClassVar[str] = "move_notify"
    import_name: ClassVar[str] = "drm_gem_prime_import"

    OPTIONS: ClassVar[dict[str, Option]] = {
        "import_at_boot": Option(True, "import (attach) at boot; otherwise an import event"),
        "submit_budget": Option(1, "how many command submissions may happen"),
        "free_budget": Option(0, "how many times the GEM object may be freed (detach)"),
        "job_write": Option(True, "the GPU job writes the buffer (else it reads)"),
        "explicit_sync": Option(
            False,
            "job fences go in as BOOKKEEP (explicit sync); default: WRITE/READ (implicit sync)",
        ),
        "keep_mapping_on_invalidate": Option(
            False,
            "BROKEN importer: invalidate_mappings does not evict, later jobs reuse the stale "
            "mapping (violates core-semantics §5.8, §6.5)",
        ),
    }

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._ops: DmaBufAttachOps | None = None
        self.import_program = program(
            f"{self.name}-import", (f"{self.import_name}: dma_buf_dynamic_attach", self._import)
        )
        self.submit_program = program(
            f"{self.name}-submit",
            ("dma_resv_lock, map if evicted", self._submit_lock_map),
            ("wait KERNEL fences, queue job, unlock", self._submit_wait_queue),
        )
        self.ring_program = program(
            f"{self.name}-ring", ("run job, signal job fences", self._ring_step)
        )
        self.ghost_program = program(
            f"{self.name}-ttm-ghost",
            ("wait idle, dma_resv_lock, dma_buf_unmap_attachment, unlock", self._ghost_step),
        )
        self.free_program = program(
            f"{self.name}-free",
            ("wait idle, dma_resv_lock, unmap all, unlock", self._free_unmap),
            ("dma_buf_detach, dma_buf_put", self._free_detach),
        )

    # -- configuration ----------------------------------------------------------------------------

    def ops_name(self, kernel_name: str) -> str:
        """The attach_ops table's name for this instance (see the module function ops_name)."""
        return ops_name(kernel_name, self.kind, self.name)

    @property
    def usage(self) -> DmaResvUsage:
        """The usage of the job fences: BOOKKEEP when explicitly synced, else WRITE or READ by
        implicit sync (dma_resv_usage_rw of the job's direction, core-semantics §8.2)."""
        if self.options["explicit_sync"]:
            return DmaResvUsage.BOOKKEEP
        return DmaResvUsage.WRITE if self.options["job_write"] else DmaResvUsage.READ

    def attach_ops(self) -> DmaBufAttachOps:
        """allow_peer2peer=True and an invalidate_mappings that evicts (drivers.md §4.3)."""
        if self._ops is None:
            self._ops = DmaBufAttachOps(
                self.ops_name(f"{self.kind}_dma_buf_attach_ops"),
                allow_peer2peer=True,
                invalidate_mappings=self._invalidate_mappings,
            )
        return self._ops

    def check_config(self) -> None:
        """Refuse configurations the model does not cover (the same device: GEM share)."""
        if self.source is None:
            raise DriverError(f"{self.name}: no source exporter (use DmaBufSystem.add_importer)")
        if self.source.device == self.device:
            raise DriverError(
                f"{self.name}: importing from the same device is a GEM share without an "
                "attachment (drivers.md §7); put the importer on another device"
            )
        if not self.topology.is_pci(self.device):
            raise DriverError(f"{self.name}: the importing GPU {self.device!r} must be PCI")

    # -- state ------------------------------------------------------------------------------------

    def init_state(self) -> TtmImporterState:
        """Nothing imported yet."""
        return TtmImporterState()

    def state(self, s: KState) -> TtmImporterState:
        """This importer's record in ``s``."""
        return self.state_as(s, TtmImporterState)

    def setup(self, s: KState) -> KState:
        """Boot: the job timeline, and the import when ``import_at_boot``."""
        self.check_config()
        s, ctx = dma_fence_context_alloc(s, 1)
        s = self.update(s, fence_context=ctx)
        if self.options["import_at_boot"]:
            s, tid = spawn(s, self.import_program, f"{self.name}-boot")
            s = run_thread(s, tid)
        return s

    def _imported(self, s: KState) -> bool:
        rec = self.state(s)
        return rec.attach >= 0 and not rec.freed

    def events(self) -> Sequence[EnvEvent]:
        """Import (when not at boot), command submissions, and freeing the GEM object."""
        out: list[EnvEvent] = []
        if not self.options["import_at_boot"]:
            out.append(
                EnvEvent(
                    f"{self.name}: {self.import_name}",
                    self.import_program,
                    guard=lambda s: self.state(s).attach < 0 and self.state(s).import_ret == 0,
                )
            )
        budget = int(self.options["submit_budget"])
        if budget > 0:
            out.append(
                EnvEvent(
                    f"{self.name}: {self.cs_name}",
                    self.submit_program,
                    budget=budget,
                    guard=self._imported,
                )
            )
        free = int(self.options["free_budget"])
        if free > 0:
            out.append(
                EnvEvent(
                    f"{self.name}: drm_gem_object_free",
                    self.free_program,
                    budget=free,
                    guard=self._imported,
                )
            )
        return out

    # -- import -----------------------------------------------------------------------------------

    def _import(self, s: KState, t: Thread) -> KState | Blocked:
        """drm_gem_prime_import: take a reference, create the SG BO sharing the exporter's resv
        (before the attachment, so an early invalidate finds it), dma_buf_dynamic_attach.

        Returns 0 or the attach error (the exporter's: -EOPNOTSUPP, -ENODEV ...); -EBADF when
        the exporter has no buffer. drivers.md §4.3; core-semantics §5.3.
        """
        assert self.source is not None
        bufs = self.source.buffers(s)
        if not bufs:
            emit_call(self.import_name, "no dma-buf", -errno.EBADF)
            return finish(self.update(s, import_ret=-errno.EBADF), t, ret=-errno.EBADF)
        buf = bufs[0]
        r = dma_buf_dynamic_attach(s, t.tid, buf, self.device, self.attach_ops())
        if isinstance(r, Blocked):
            return r
        s, ret = r
        s = get_dma_buf(s, buf)
        emit_call("dma_buf_dynamic_attach", f"buf{buf}, {self.device}, {self.name} ops", ret)
        if ret < 0:
            s = dma_buf_put(s, t.tid, buf)
            return finish(self.update(s, buf=buf, import_ret=ret), t, ret=ret)
        return finish(self.update(s, buf=buf, attach=ret, import_ret=0), t, ret=0)

    # -- invalidate_mappings ----------------------------------------------------------------------

    def _busy_jobs(self, s: KState) -> tuple[FenceId, ...]:
        return _unsignalled(s, [f for f, _ in self.state(s).jobs])

    def _after_evict(self, s: KState, tid: Tid, attach: AttachId) -> KState:
        """Driver work after the SG BO was evicted (amdgpu: the VM page-table update)."""
        del tid, attach
        return s

    def _invalidate_mappings(self, s: KState, tid: Tid, attach: AttachId) -> KState:
        """invalidate_mappings: evict the SG BO (drivers.md §4.3, core-semantics §5.8).

        Runs in the exporter's (or a mapping importer's) thread with the resv held (§10 #10).
        Already evicted: nothing to do. Otherwise the mapping is marked invalidated for the
        platform, the SG BO drops it, and it is unmapped at once when no job of this importer
        is in flight, else by a ghost thread once the jobs' fences signal [inference].
        """
        rec = self.state(s)
        emit(f"  -> {self.invalidate_name}(attach{attach})")
        if rec.sgt is None:
            emit("     SG BO already evicted")
            return s
        sgt = rec.sgt
        ps = platform(s)
        for mid in sgt_mappings(s, sgt):
            ps = dma_mapping_invalidate(ps, mid)
        s = set_platform(s, ps)
        if self.options["keep_mapping_on_invalidate"]:
            emit("     BROKEN: mapping kept")
            return self.update(s, invalidated=True)
        busy = self._busy_jobs(s)
        if not busy:
            s = dma_buf_unmap_attachment(s, tid, attach, sgt, BIDI)
            emit_call("     dma_buf_unmap_attachment", f"attach{attach}, sgt{sgt}")
            s = self.update(s, sgt=None, invalidated=True)
        else:
            emit(f"     ttm: SG BO busy, unmap of sgt{sgt} deferred to a ghost object")
            s = self.update(s, sgt=None, stale=(*rec.stale, sgt), invalidated=True)
            s, _ = spawn(s, self.ghost_program, sgt=sgt, waits=busy)
        return self._after_evict(s, tid, attach)

    def _ghost_step(self, s: KState, t: Thread) -> KState | Blocked:
        """The ghost object dies when idle: wait for the jobs, take the resv, unmap, unlock."""
        waits = t.local("waits")
        sgt = t.local("sgt")
        assert isinstance(waits, tuple) and isinstance(sgt, int)
        for f in waits:
            if not dma_fence_is_signaled(s, f):
                return Blocked(on=f"fence{f}")
        rec = self.state(s)
        resv = s.bufs[rec.buf].resv
        locked = dma_resv_lock_traced(s, t.tid, resv)
        if isinstance(locked, Blocked):
            return locked
        s = locked
        rec = self.state(s)
        if sgt in rec.stale:
            s = dma_buf_unmap_attachment(s, t.tid, rec.attach, sgt, BIDI)
            emit_call("dma_buf_unmap_attachment", f"attach{rec.attach}, sgt{sgt}")
            s = self.update(s, stale=tuple(x for x in rec.stale if x != sgt))
        return finish(dma_resv_unlock_traced(s, t.tid, resv), t, ret=0)

    # -- command submission -----------------------------------------------------------------------

    def _submit_lock_map(self, s: KState, t: Thread) -> KState | Blocked:
        """Take the resv; map again when the SG BO was evicted (a map error fails the
        submission: no job, no DMA); queue the job now when no KERNEL fence is pending."""
        rec = self.state(s)
        if rec.attach < 0 or rec.freed:
            emit_call(self.cs_name, "no imported BO", -errno.ENOENT)
            return finish(s, t, ret=-errno.ENOENT)
        resv = s.bufs[rec.buf].resv
        locked = dma_resv_lock_traced(s, t.tid, resv)
        if isinstance(locked, Blocked):
            return locked
        s = locked
        rec = self.state(s)
        if rec.sgt is None:
            m = dma_buf_map_attachment(s, t.tid, rec.attach, BIDI)
            assert not isinstance(m, Blocked)  # dynamic attachments get no core wait
            s, sgt = m
            emit_call(
                "dma_buf_map_attachment",
                f"attach{rec.attach}, BIDIRECTIONAL",
                f"sgt{sgt}" if sgt >= 0 else sgt,
            )
            if sgt < 0:
                s = dma_resv_unlock_traced(s, t.tid, resv)
                emit_call(self.cs_name, self.name, sgt)
                return finish(s, t, ret=sgt)
            rec = self.state(s)
            s = self.update(s, sgt=sgt, maps=rec.maps + 1, remapped=rec.remapped or rec.invalidated)
        if not dma_resv_test_signaled(s, resv, DmaResvUsage.KERNEL):
            return goto(s, t, "wait KERNEL fences, queue job, unlock")
        return self._queue_job(s, t, resv)

    def _submit_wait_queue(self, s: KState, t: Thread) -> KState | Blocked:
        """Wait for the KERNEL fences (the exporter's move) with the resv held, then queue."""
        resv = s.bufs[self.state(s).buf].resv
        r = dma_resv_wait_timeout(s, t.tid, resv, DmaResvUsage.KERNEL, True, MAX_SCHEDULE_TIMEOUT)
        if isinstance(r, Blocked):
            return r
        s, _ = r
        emit_call("dma_resv_wait_timeout", f"resv{resv}, KERNEL, true, MAX_SCHEDULE_TIMEOUT")
        return self._queue_job(s, t, resv)

    def _queue_job(self, s: KState, t: Thread, resv: ResvId) -> KState:
        """The job: its fence into the resv with ``usage``, one access through the mapping
        (dma_submit), a ring thread to run it; unlock. A device that cannot master fails the
        job: its fence signals at once with the error."""
        rec = self.state(s)
        assert rec.sgt is not None
        seqno = rec.seqno + 1
        s, f = dma_fence_init(s, rec.fence_context, seqno, timeline_name=self.name)
        s, ret = dma_resv_reserve_fences(s, t.tid, resv, 1)
        emit_call("dma_resv_reserve_fences", f"resv{resv}, 1", ret)
        s = dma_resv_add_fence(s, t.tid, resv, f, self.usage)
        emit_call("dma_resv_add_fence", f"resv{resv}, fence{f}, {self.usage.name}")
        write = bool(self.options["job_write"])
        xid = -1
        mappings = sgt_mappings(s, rec.sgt)
        if mappings:
            ps, xid = dma_submit(
                platform(s), self.topology, self.device, mappings[0], write=write, fence=f
            )
            op = "write" if write else "read"
            emit_call("dma_submit", f"{self.device}, mapping {mappings[0]}, {op}", xid)
            if xid >= 0:
                s = set_platform(s, ps)
        s = self.update(s, seqno=seqno)
        if xid < 0:
            s = dma_fence_set_error(s, f, -errno.ENODEV if mappings else -errno.EINVAL)
            s = dma_fence_put(dma_fence_signal(s, f), f)
            emit_call("dma_fence_signal", f"fence{f}")
        else:
            s = self.update(s, jobs=(*self.state(s).jobs, (f, xid)))
            s, _ = spawn(s, self.ring_program, xid=xid)
        s = dma_resv_unlock_traced(s, t.tid, resv)
        ret = 0 if xid >= 0 or not mappings else xid
        emit_call(self.cs_name, self.name, ret)
        return finish(s, t, ret=ret)

    def _ring_step(self, s: KState, t: Thread) -> KState:
        """The GPU runs its oldest access (dma_engine_run) and signals, in order, every job
        fence whose access is done (fence processing; no resv, §10 #42, #48)."""
        xid = t.local("xid")
        assert isinstance(xid, int)
        ps = platform(s)
        if ps.transfers[xid].status is TransferStatus.PENDING:
            ps, ran = dma_engine_run(ps, self.topology, self.device)
            emit_call("dma_engine_run", self.device, ran)
            s = set_platform(s, ps)
        jobs = self.state(s).jobs
        done = 0
        for f, x in jobs:
            status = platform(s).transfers[x].status if x >= 0 else TransferStatus.DONE
            if status is TransferStatus.PENDING:
                break
            if status is TransferStatus.ABORTED:
                s = dma_fence_set_error(s, f, -errno.ECANCELED)
            emit_call("dma_fence_signal", f"fence{f}")
            s = dma_fence_put(dma_fence_signal(s, f), f)
            done += 1
        s = self.update(s, jobs=jobs[done:])
        if platform(s).transfers[xid].status is TransferStatus.PENDING:
            return goto(s, t, "run job, signal job fences")
        return finish(s, t, ret=0)

    # -- freeing the GEM object -------------------------------------------------------------------

    def _free_unmap(self, s: KState, t: Thread) -> KState | Blocked:
        """TTM's delayed delete: wait until the jobs are done, then unmap every mapping."""
        rec = self.state(s)
        for f in self._busy_jobs(s):
            return Blocked(on=f"fence{f}")
        resv = s.bufs[rec.buf].resv
        locked = dma_resv_lock_traced(s, t.tid, resv)
        if isinstance(locked, Blocked):
            return locked
        s = locked
        rec = self.state(s)
        for sgt in (*rec.stale, *(() if rec.sgt is None else (rec.sgt,))):
            s = dma_buf_unmap_attachment(s, t.tid, rec.attach, sgt, BIDI)
            emit_call("dma_buf_unmap_attachment", f"attach{rec.attach}, sgt{sgt}")
        s = self.update(s, sgt=None, stale=(), freed=True)
        return goto(dma_resv_unlock_traced(s, t.tid, resv), t, "dma_buf_detach, dma_buf_put")

    def _free_detach(self, s: KState, t: Thread) -> KState | Blocked:
        """dma_buf_detach (takes the resv itself), then drop the import's reference."""
        rec = self.state(s)
        r = dma_buf_detach_put(s, t.tid, rec.buf, rec.attach)
        if isinstance(r, Blocked):
            return r
        return finish(r, t, ret=0)

    # -- properties -------------------------------------------------------------------------------

    def sometimes_properties(self) -> Sequence[Property[KState]]:
        """Nontriviality: a submission maps again after an invalidation (drivers.md §4.3)."""

        def remapped(s: KState) -> bool:
            return self.state(s).remapped

        return (
            Property.sometimes(
                f"{self.name}_maps_again_after_invalidate",
                remapped,
                cite="drivers.md §4.3, core-semantics §6.5",
            ),
        )


def placements(names: Sequence[str]) -> tuple[TtmPlacement, ...]:
    """placements - option values ("VRAM", "GTT") to TtmPlacements, in the given order."""
    return tuple(placement_from_name(n) for n in names)


__all__ = [
    "BIDI",
    "TtmBo",
    "TtmExporter",
    "TtmExporterState",
    "TtmImporterState",
    "TtmPlacement",
    "TtmSgImporter",
    "ops_name",
    "placement_from_name",
    "placements",
]
