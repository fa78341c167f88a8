"""amdgpu: drivers/gpu/drm/amd/amdgpu/amdgpu_dma_buf.c, an exporter of movable TTM BOs.
The AMD GPU as a dma-buf exporter and as a dynamic importer, for the movable flow's checks.

Models amdgpu_dmabuf_ops, amdgpu_dma_buf_attach_ops and the move_notify hook of
amdgpu_object.c, as drivers.md §4.1 and §4.3 describe them, on top of the shared TTM machinery
in drivers/ttm.py. The invalidate handling after the 2026 rename (move_notify ->
invalidate_mappings) is inferred from the rename, not read in source (spec README); behaviour
stays close to drivers.md §4.

DOC: amdgpu as exporter (drivers.md §4.1)

* export: a userptr BO or a VM_ALWAYS_VALID BO is refused with -EPERM (option ``bo_kind``).
* attach: never refuses. It clears ``peer2peer`` for GFX12+ BOs with DCC (option
  ``gfx12_dcc``) and when the importer is not XGMI-reachable and pci_p2pdma_distance < 0 (a
  non-PCI importer such as iommufd's misc device always gets -1).
* pin: VRAM is allowed only when every attachment has peer2peer; no domain left is a WARN and
  -EINVAL; then amdgpu_bo_pin (validate into the domains, VRAM first; an already pinned BO
  outside them is -EINVAL).
* map_dma_buf: an unpinned BO is validated into GTT, or GTT|VRAM when it prefers VRAM and the
  attachment is P2P (a pipelined move, see ttm.py). Then GTT: dma map of the RAM pages (-EBUSY
  when that fails); VRAM: P2P addresses, but an XGMI-reachable importer is a WARN and -EINVAL
  (XGMI memory must not be DMA-mapped); anything else -EINVAL.
* begin_cpu_access: for reads, an unpinned BO is moved to GTT. vmap pins in GTT|VRAM.
* move_notify: dma_buf_invalidate_mappings only when the BO leaves a non-SYSTEM placement.

DOC: amdgpu as importer (drivers.md §4.3)

An SG BO sharing the exporter's resv, dma_buf_dynamic_attach with allow_peer2peer=true and
amdgpu_dma_buf_move_notify as invalidate_mappings: the BO is evicted (already evicted: stop),
then each VM's page tables are updated, fenced in the VM's own resv (a trace line here: the VM
root resv is not modelled). The next command submission (amdgpu_cs_ioctl) maps again. An
importer in the exporter's XGMI hive would use VRAM without a DMA mapping; that path is not
modelled (a DriverError).
"""

from __future__ import annotations

from typing import Any, ClassVar

from dmabuf_model.drivers.base import DriverError, Option
from dmabuf_model.drivers.ttm import (
    TtmExporter,
    TtmPlacement,
    TtmSgImporter,
    placements,
)
from dmabuf_model.kernel import errno
from dmabuf_model.kernel.dma_buf import DmaBufOps, DmaDataDirection, MapResult
from dmabuf_model.kernel.state import AttachId, BufId, KState, Tid, warn
from dmabuf_model.system.threads import emit, emit_call

VRAM, GTT, SYSTEM = TtmPlacement.VRAM, TtmPlacement.TT, TtmPlacement.SYSTEM
VMAP_COOKIE = 1
"""The stand-in for the kernel virtual address amdgpu's vmap returns."""


class AmdgpuExporter(TtmExporter):
    """amdgpu exporting one BO (kind "amdgpu"): drivers.md §4.1, §7 (amdgpu row).

    Options (mainline defaults): ``placement`` "VRAM" (the BO's preferred domain and where it
    starts; "GTT" for a GTT BO), ``allowed_domains`` ("VRAM", "GTT"), ``bo_kind`` "normal"
    ("userptr" / "always_valid" are refused with -EPERM), ``gfx12_dcc`` False, ``xgmi_hive``
    () (device names reachable over XGMI), plus the TTM options (``evict_budget``,
    ``skip_fence_wait_on_move``, ``vram_bar``).
    """

    kind: ClassVar[str] = "amdgpu"
    move_notify_name: ClassVar[str] = "amdgpu_bo_move_notify"
    export_name: ClassVar[str] = "amdgpu_gem_prime_export"
    OPTIONS: ClassVar[dict[str, Option]] = {
        **TtmExporter.OPTIONS,
        "allowed_domains": Option(("VRAM", "GTT"), "domains the BO may be pinned in"),
        "bo_kind": Option(
            "normal", "normal, userptr or always_valid (the last two: export -EPERM)"
        ),
        "gfx12_dcc": Option(False, "GFX12+ BO with DCC compression: attach clears peer2peer"),
        "xgmi_hive": Option((), "devices in the exporter's XGMI hive (keep peer2peer)"),
    }

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        kind = self.options["bo_kind"]
        if kind not in ("normal", "userptr", "always_valid"):
            raise DriverError(
                f"{self.name}: bo_kind {kind!r}; valid: normal, userptr, always_valid"
            )
        self.allowed = placements(tuple(self.options["allowed_domains"]))
        self.xgmi_hive = tuple(str(d) for d in self.options["xgmi_hive"])

    def export_error(self) -> int:
        """amdgpu_gem_prime_export: userptr and VM_ALWAYS_VALID BOs cannot be shared (-EPERM)."""
        return -errno.EPERM if self.options["bo_kind"] != "normal" else 0

    def invalidates_on_move(self, old: TtmPlacement, new: TtmPlacement) -> bool:
        """amdgpu_bo_move_notify invalidates only when leaving a non-SYSTEM placement (§4.1)."""
        del new
        return old is not SYSTEM

    def xgmi_accessible(self, dev: str) -> bool:
        """amdgpu_dmabuf_is_xgmi_accessible: the importer is in the exporter's XGMI hive."""
        return dev in self.xgmi_hive

    def _build_ops(self) -> DmaBufOps:
        return DmaBufOps(
            self.ops_name("amdgpu_dmabuf_ops"),
            map_dma_buf=self.amdgpu_dma_buf_map,
            unmap_dma_buf=self.amdgpu_dma_buf_unmap,
            release=self._release,
            attach=self.amdgpu_dma_buf_attach,
            pin=self.amdgpu_dma_buf_pin,
            unpin=self.amdgpu_dma_buf_unpin,
            begin_cpu_access=self.amdgpu_dma_buf_begin_cpu_access,
            vmap=self.amdgpu_dma_buf_vmap,
            vunmap=self.amdgpu_dma_buf_vunmap,
        )

    # -- dma_buf_ops ------------------------------------------------------------------------------

    def amdgpu_dma_buf_attach(self, s: KState, tid: Tid, attach: AttachId) -> tuple[KState, int]:
        """amdgpu_dma_buf_attach - keep or clear peer2peer; never refuses.

        Called unlocked by dma_buf_dynamic_attach. Clears peer2peer for a GFX12+ DCC BO, and
        when the importer is not XGMI-reachable and pci_p2pdma_distance(gpu, dev) < 0. The VM
        shared-BO bookkeeping it then does under the resv has no effect in the model.
        Returns 0. drivers.md §4.1, §6.
        """
        a = s.attachments[attach]
        p2p = a.peer2peer
        if self.options["gfx12_dcc"]:
            p2p = False
        dist = self.p2pdma_distance(a.dev)
        if not self.xgmi_accessible(a.dev) and dist < 0:
            p2p = False
        if p2p != a.peer2peer:
            s = self._set_peer2peer(s, attach, p2p)
        emit_call(
            "amdgpu_dma_buf_attach",
            f"attach{attach} ({a.dev}, p2pdma distance {dist}, peer2peer={p2p})",
            0,
        )
        return s, 0

    def amdgpu_dma_buf_pin(self, s: KState, tid: Tid, attach: AttachId) -> tuple[KState, int]:
        """amdgpu_dma_buf_pin - pin in VRAM only if every attachment is P2P, else in GTT.

        Resv held (core). No domain left: WARN and -EINVAL. amdgpu_bo_pin: an already pinned
        BO outside the domains is -EINVAL; otherwise validate (VRAM first; a pipelined move)
        and take a pin. Returns 0 or -errno. drivers.md §4.1; core-semantics §10 #20.
        """
        domains = self.allowed
        if not self._all_peer2peer(s):
            domains = tuple(d for d in domains if d is not VRAM)
        if not domains:
            s = warn(s, 0, "amdgpu_dma_buf_pin: no domain left (VRAM-only BO, importer not P2P)")
            emit_call("amdgpu_dma_buf_pin", f"attach{attach}", -errno.EINVAL)
            return s, -errno.EINVAL
        if VRAM in domains:
            emit("amdgpu_dma_buf_pin: VRAM allowed, BO marked CPU_ACCESS_REQUIRED")
        bo = self.state(s).bo
        if bo.pin_count:
            if bo.placement not in domains:
                emit_call("amdgpu_bo_pin", f"pinned in {bo.placement}", -errno.EINVAL)
                return s, -errno.EINVAL
        else:
            s, ret = self.ttm_bo_validate(s, tid, domains)
            if ret < 0:
                emit_call("amdgpu_bo_pin", ", ".join(str(d) for d in domains), ret)
                return s, ret
        s = self._pin_count(s, +1)
        emit_call("amdgpu_bo_pin", f"in {self.state(s).bo.placement}", 0)
        return s, 0

    def amdgpu_dma_buf_unpin(self, s: KState, tid: Tid, attach: AttachId) -> KState:
        """amdgpu_dma_buf_unpin - amdgpu_bo_unpin: the BO may move again (drivers.md §4.1)."""
        emit_call("amdgpu_bo_unpin", f"attach{attach}")
        return self._pin_count(s, -1)

    def amdgpu_dma_buf_map(
        self, s: KState, tid: Tid, attach: AttachId, dir: DmaDataDirection
    ) -> tuple[KState, MapResult]:
        """amdgpu_dma_buf_map - validate when unpinned, then map by placement.

        Resv held (core). Unpinned: validate into GTT, or GTT|VRAM (VRAM first) when the BO
        prefers VRAM and the attachment is P2P. GTT: dma map of the RAM pages (-EBUSY on
        failure); VRAM: -EINVAL and a WARN for an XGMI-reachable importer, else P2P addresses;
        other placements -EINVAL; validate errors (-ENOMEM) propagate. drivers.md §4.1.
        """
        a = s.attachments[attach]
        bo = self.state(s).bo
        if not bo.pin_count:
            allowed: tuple[TtmPlacement, ...] = (GTT,)
            if self.initial_placement is VRAM and a.peer2peer:
                allowed = (VRAM, GTT)
            s, ret = self.ttm_bo_validate(s, tid, allowed)
            if ret < 0:
                emit_call("amdgpu_dma_buf_map", f"attach{attach}", ret)
                return s, ret
        if self.state(s).bo.placement is VRAM and self.xgmi_accessible(a.dev):
            s = warn(s, 0, "amdgpu_dma_buf_map: XGMI-accessible VRAM must not be DMA-mapped")
            emit_call("amdgpu_dma_buf_map", f"attach{attach}", -errno.EINVAL)
            return s, -errno.EINVAL
        s, res = self._dma_map_placement(s, attach)
        shown = res if isinstance(res, int) else f"mappings {list(res or ())}"
        emit_call("amdgpu_dma_buf_map", f"attach{attach} in {self.state(s).bo.placement}", shown)
        return s, res

    def amdgpu_dma_buf_unmap(
        self, s: KState, tid: Tid, attach: AttachId, sgt: int, dir: DmaDataDirection
    ) -> KState:
        """amdgpu_dma_buf_unmap - dma unmap and free (GTT) or free the VRAM sgt (§4.1)."""
        emit_call("amdgpu_dma_buf_unmap", f"attach{attach}, sgt{sgt}")
        return self._unmap(s, tid, attach, sgt, dir)

    def amdgpu_dma_buf_begin_cpu_access(
        self, s: KState, tid: Tid, buf: BufId, dir: DmaDataDirection
    ) -> tuple[KState, int]:
        """amdgpu_dma_buf_begin_cpu_access - for reads, move an unpinned BO to GTT.

        Called unlocked; takes the resv itself (see TtmExporter._resv_trylock_validate for the
        model's limitation). Returns 0 or the validate error. drivers.md §4.1.
        """
        del buf
        bo = self.state(s).bo
        if dir is DmaDataDirection.TO_DEVICE or bo.pin_count or GTT not in self.allowed:
            return s, 0
        s, ret = self._resv_trylock_validate(s, tid, (GTT,))
        emit_call("amdgpu_dma_buf_begin_cpu_access", f"{dir.name}", ret)
        return s, ret

    def amdgpu_dma_buf_vmap(self, s: KState, tid: Tid, buf: BufId) -> tuple[KState, int]:
        """amdgpu_dma_buf_vmap - pin in GTT|VRAM (where the BO is, when it is in either) for
        as long as the kernel mapping exists. Resv held (core). drivers.md §4.1."""
        del buf
        bo = self.state(s).bo
        if not bo.pin_count:
            s, ret = self.ttm_bo_validate(s, tid, (VRAM, GTT))
            if ret < 0:
                return s, ret
        return self._pin_count(s, +1), VMAP_COOKIE

    def amdgpu_dma_buf_vunmap(self, s: KState, tid: Tid, buf: BufId, map: int) -> KState:
        """amdgpu_dma_buf_vunmap - drop the vmap pin (drivers.md §4.1)."""
        del tid, buf, map
        return self._pin_count(s, -1)


class AmdgpuImporter(TtmSgImporter):
    """amdgpu importing another device's dma-buf (kind "amdgpu"): drivers.md §4.3, §7 column.

    Options: see TtmSgImporter (``import_at_boot``, ``submit_budget``, ``free_budget``,
    ``job_write``, ``explicit_sync``, ``keep_mapping_on_invalidate``).
    """

    kind: ClassVar[str] = "amdgpu"
    cs_name: ClassVar[str] = "amdgpu_cs_ioctl"
    invalidate_name: ClassVar[str] = "amdgpu_dma_buf_move_notify"
    import_name: ClassVar[str] = "amdgpu_gem_prime_import"

    def check_config(self) -> None:
        """As TtmSgImporter, and an XGMI peer of an amdgpu exporter is not modelled."""
        super().check_config()
        src = self.source
        if isinstance(src, AmdgpuExporter) and src.xgmi_accessible(self.device):
            raise DriverError(
                f"{self.name}: importing over XGMI (VRAM used without a DMA mapping) is not "
                "modelled; drop the device from the exporter's xgmi_hive"
            )

    def _after_evict(self, s: KState, tid: Tid, attach: AttachId) -> KState:
        """For each VM: clear freed mappings and update the moved PTEs; the page-table update
        is fenced in the VM root resv (not modelled), errors are only logged (§4.3)."""
        del tid, attach
        emit("     amdgpu_vm_clear_freed + amdgpu_vm_handle_moved: page-table update fenced")
        return s


__all__ = ["AmdgpuExporter", "AmdgpuImporter"]
