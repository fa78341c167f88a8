"""xe: drivers/gpu/drm/xe/xe_dma_buf.c, an exporter of movable TTM BOs.
The Intel Xe GPU as a dma-buf exporter and as a dynamic importer, for the movable flow's checks.

Models xe_dmabuf_ops, xe_dma_buf_attach_ops and the move_notify hook of xe_bo.c, as
drivers.md §4.2 and §4.3 describe them, on top of the shared TTM machinery in drivers/ttm.py.
The invalidate handling after the 2026 rename (move_notify -> invalidate_mappings) is inferred
from the rename, not read in source (spec README); behaviour stays close to drivers.md §4.

DOC: xe as exporter (drivers.md §4.2)

* export: a BO private to a VM is refused with -EPERM (option ``vm_private``).
* attach: peer2peer is cleared when pci_p2pdma_distance < 0; an attachment without peer2peer
  to a BO that cannot migrate to TT (VRAM-only, option ``vram_only``) is -EOPNOTSUPP. attach
  takes a runtime-PM reference that detach drops.
* pin: VRAM only if every attachment is P2P; already pinned somewhere that is neither TT nor
  an allowed VRAM is -EINVAL; VRAM not allowed: migrate to TT first; then pin.
* map_dma_buf: not P2P and cannot migrate to TT is -EOPNOTSUPP. Unpinned: not P2P migrates to
  TT, P2P validates in place. TT: dma map of the pages (-EBUSY on failure); VRAM: P2P
  addresses; other placements -EINVAL.
* begin_cpu_access: for reads, migrate to TT (errors ignored).
* move_notify: dma_buf_invalidate_mappings on every move of an exported BO.

DOC: xe as importer (drivers.md §4.3)

An SG BO sharing the exporter's resv, created before the attachment so an early invalidate finds
it; dma_buf_dynamic_attach with allow_peer2peer=true and xe_dma_buf_move_notify, which evicts the
BO (xe_bo_evict; a failure would WARN, none happens in the model). VMs rebind on the next exec
(xe_exec_ioctl), which maps again.
"""

from __future__ import annotations

from typing import ClassVar

from dmabuf_model.drivers.base import Option
from dmabuf_model.drivers.ttm import TtmExporter, TtmExporterState, TtmPlacement, TtmSgImporter
from dmabuf_model.kernel import errno
from dmabuf_model.kernel.dma_buf import DmaBufOps, DmaDataDirection, MapResult
from dmabuf_model.kernel.state import AttachId, BufId, KState, Tid, replace
from dmabuf_model.system.threads import emit_call

VRAM, TT, SYSTEM = TtmPlacement.VRAM, TtmPlacement.TT, TtmPlacement.SYSTEM


class XeExporter(TtmExporter):
    """xe exporting one BO (kind "xe"): drivers.md §4.2, §7 (xe row).

    Options (mainline defaults): ``placement`` "VRAM" (where the BO starts; "TT" for a system
    BO), ``vram_only`` False (True: the BO cannot migrate to TT), ``vm_private`` False (True:
    export -EPERM), plus the TTM options (``evict_budget``, ``skip_fence_wait_on_move``,
    ``vram_bar``).
    """

    kind: ClassVar[str] = "xe"
    move_notify_name: ClassVar[str] = "xe_bo_move_notify"
    export_name: ClassVar[str] = "xe_gem_prime_export"
    OPTIONS: ClassVar[dict[str, Option]] = {
        **TtmExporter.OPTIONS,
        "vram_only": Option(False, "the BO has only VRAM placements (cannot migrate to TT)"),
        "vm_private": Option(False, "the BO is private to a VM: export -EPERM"),
    }

    def export_error(self) -> int:
        """xe_gem_prime_export: a BO private to a VM (bo->vm) cannot be shared (-EPERM)."""
        return -errno.EPERM if self.options["vm_private"] else 0

    def invalidates_on_move(self, old: TtmPlacement, new: TtmPlacement) -> bool:
        """xe_bo_move_notify invalidates on every move of an exported BO (drivers.md §4.2)."""
        del old, new
        return True

    def can_migrate_to_tt(self) -> bool:
        """xe_bo_can_migrate(bo, XE_PL_TT): false for a VRAM-only BO."""
        return not self.options["vram_only"]

    def evict_target(self, placement: TtmPlacement) -> TtmPlacement:
        """Where eviction sends the BO: VRAM to TT, TT to SYSTEM; a VRAM-only BO goes to
        SYSTEM [inference: shared TTM eviction chain, drivers.md §4]."""
        if placement is VRAM and not self.can_migrate_to_tt():
            return SYSTEM
        return super().evict_target(placement)

    def _build_ops(self) -> DmaBufOps:
        return DmaBufOps(
            self.ops_name("xe_dmabuf_ops"),
            map_dma_buf=self.xe_dma_buf_map,
            unmap_dma_buf=self.xe_dma_buf_unmap,
            release=self._release,
            attach=self.xe_dma_buf_attach,
            detach=self.xe_dma_buf_detach,
            pin=self.xe_dma_buf_pin,
            unpin=self.xe_dma_buf_unpin,
            begin_cpu_access=self.xe_dma_buf_begin_cpu_access,
        )

    # -- dma_buf_ops ------------------------------------------------------------------------------

    def xe_dma_buf_attach(self, s: KState, tid: Tid, attach: AttachId) -> tuple[KState, int]:
        """xe_dma_buf_attach - clear peer2peer without a P2P path; refuse a VRAM-only BO to
        an importer without peer2peer (-EOPNOTSUPP); take a runtime-PM reference.

        Called unlocked by dma_buf_dynamic_attach. Returns 0 or -EOPNOTSUPP. drivers.md §4.2.
        """
        a = s.attachments[attach]
        p2p = a.peer2peer
        dist = self.p2pdma_distance(a.dev)
        if p2p and dist < 0:
            p2p = False
            s = self._set_peer2peer(s, attach, False)
        if not p2p and not self.can_migrate_to_tt():
            emit_call(
                "xe_dma_buf_attach",
                f"attach{attach} ({a.dev}, VRAM-only, no P2P)",
                -errno.EOPNOTSUPP,
            )
            return s, -errno.EOPNOTSUPP
        rec = self.state(s)
        s = self.set_state(s, _with_pm(rec, +1))
        emit_call(
            "xe_dma_buf_attach",
            f"attach{attach} ({a.dev}, p2pdma distance {dist}, peer2peer={p2p})",
            0,
        )
        return s, 0

    def xe_dma_buf_detach(self, s: KState, tid: Tid, attach: AttachId) -> KState:
        """xe_dma_buf_detach - drop the runtime-PM reference attach took (drivers.md §4.2)."""
        emit_call("xe_dma_buf_detach", f"attach{attach}")
        return self.set_state(s, _with_pm(self.state(s), -1))

    def xe_dma_buf_pin(self, s: KState, tid: Tid, attach: AttachId) -> tuple[KState, int]:
        """xe_dma_buf_pin - pin in VRAM only if every attachment is P2P, else migrate to TT.

        Resv held (core). Already pinned in a placement that is neither TT nor an allowed
        VRAM: -EINVAL. VRAM not allowed: migrate to TT (errors propagate). Then
        xe_bo_pin_external. Returns 0 or -errno. drivers.md §4.2; core-semantics §10 #20.
        """
        allow_vram = self._all_peer2peer(s)
        bo = self.state(s).bo
        if bo.pin_count and not (bo.placement is TT or (bo.placement is VRAM and allow_vram)):
            emit_call("xe_dma_buf_pin", f"attach{attach}: pinned in {bo.placement}", -errno.EINVAL)
            return s, -errno.EINVAL
        if not bo.pin_count:
            if not allow_vram:
                if not self.can_migrate_to_tt():
                    emit_call("xe_bo_migrate", "XE_PL_TT (VRAM-only BO)", -errno.EINVAL)
                    return s, -errno.EINVAL
                s, ret = self.ttm_bo_validate(s, tid, (TT,))
            else:
                order = (VRAM, TT) if self.can_migrate_to_tt() else (VRAM,)
                s, ret = self.ttm_bo_validate(s, tid, order)
            if ret < 0:
                emit_call("xe_dma_buf_pin", f"attach{attach}", ret)
                return s, ret
        s = self._pin_count(s, +1)
        emit_call("xe_bo_pin_external", f"in {self.state(s).bo.placement}", 0)
        return s, 0

    def xe_dma_buf_unpin(self, s: KState, tid: Tid, attach: AttachId) -> KState:
        """xe_dma_buf_unpin - xe_bo_unpin_external: the BO may move again (§4.2)."""
        emit_call("xe_bo_unpin_external", f"attach{attach}")
        return self._pin_count(s, -1)

    def xe_dma_buf_map(
        self, s: KState, tid: Tid, attach: AttachId, dir: DmaDataDirection
    ) -> tuple[KState, MapResult]:
        """xe_dma_buf_map - migrate or validate when unpinned, then map by placement.

        Resv held (core). Not P2P and the BO cannot migrate to TT: -EOPNOTSUPP. Unpinned: not
        P2P migrates to TT; P2P validates in place (a BO in SYSTEM goes back to VRAM, or TT).
        TT: dma map (-EBUSY on failure); VRAM: P2P addresses; other placements -EINVAL.
        drivers.md §4.2.
        """
        a = s.attachments[attach]
        if not a.peer2peer and not self.can_migrate_to_tt():
            emit_call("xe_dma_buf_map", f"attach{attach}", -errno.EOPNOTSUPP)
            return s, -errno.EOPNOTSUPP
        bo = self.state(s).bo
        if not bo.pin_count:
            if not a.peer2peer:
                s, ret = self.ttm_bo_validate(s, tid, (TT,))
            else:
                keep = (bo.placement,) if bo.placement in (VRAM, TT) else ()
                order = (VRAM, TT) if self.can_migrate_to_tt() else (VRAM,)
                s, ret = self.ttm_bo_validate(s, tid, keep or order)
            if ret < 0:
                emit_call("xe_dma_buf_map", f"attach{attach}", ret)
                return s, ret
        s, res = self._dma_map_placement(s, attach)
        shown = res if isinstance(res, int) else f"mappings {list(res or ())}"
        emit_call("xe_dma_buf_map", f"attach{attach} in {self.state(s).bo.placement}", shown)
        return s, res

    def xe_dma_buf_unmap(
        self, s: KState, tid: Tid, attach: AttachId, sgt: int, dir: DmaDataDirection
    ) -> KState:
        """xe_dma_buf_unmap - dma unmap (TT) or free the VRAM sgt (drivers.md §4.2)."""
        emit_call("xe_dma_buf_unmap", f"attach{attach}, sgt{sgt}")
        return self._unmap(s, tid, attach, sgt, dir)

    def xe_dma_buf_begin_cpu_access(
        self, s: KState, tid: Tid, buf: BufId, dir: DmaDataDirection
    ) -> tuple[KState, int]:
        """xe_dma_buf_begin_cpu_access - for reads, migrate to TT; errors are ignored.

        Called unlocked; takes the resv itself (see TtmExporter._resv_trylock_validate). Always
        returns 0. drivers.md §4.2.
        """
        del buf
        bo = self.state(s).bo
        if dir is DmaDataDirection.TO_DEVICE or bo.pin_count or not self.can_migrate_to_tt():
            return s, 0
        s, ret = self._resv_trylock_validate(s, tid, (TT,))
        emit_call("xe_dma_buf_begin_cpu_access", f"{dir.name} (migrate: {ret}, ignored)", 0)
        return s, 0


def _with_pm(rec: TtmExporterState, delta: int) -> TtmExporterState:
    return replace(rec, runtime_pm_refs=rec.runtime_pm_refs + delta)


class XeImporter(TtmSgImporter):
    """xe importing another device's dma-buf (kind "xe"): drivers.md §4.3, §7 column.

    Options: see TtmSgImporter.
    """

    kind: ClassVar[str] = "xe"
    cs_name: ClassVar[str] = "xe_exec_ioctl"
    invalidate_name: ClassVar[str] = "xe_dma_buf_move_notify"
    import_name: ClassVar[str] = "xe_gem_prime_import"


__all__ = ["XeExporter", "XeImporter"]
