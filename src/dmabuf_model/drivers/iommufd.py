"""iommufd: IOMMU_IOAS_MAP_FILE of a dma-buf - the pinned, revocable importer of a VFIO BAR.

Models drivers/iommu/iommufd/pages.c, io_pagetable.c and ioas.c (drivers.md §2): how iommufd maps
a VFIO BAR into the IOMMU domains of an IOAS, and how a VFIO revoke tears that down for good.

DOC: import (drivers.md §2.1). IOMMU_IOAS_MAP_FILE with a dma-buf fd checks the range (-EINVAL;
a memfd would take the older memfd path, not modelled: any fd that is not a dma-buf gets
dma_buf_get's -EINVAL here; the batch limit and CONFIG_DMA_SHARED_BUFFER=n are not modelled),
attaches dynamically with iommufd's misc device as the attach device (not a PCI function),
allow_peer2peer set and invalidate_mappings = iopt_revoke_notify, then under the resv pins
(dma_buf_pin; a core no-op for VFIO since v7) and fetches the single physical range through
VFIO's private interconnect (vfio_pci_dma_buf_iommufd_map: -EOPNOTSUPP for any other exporter
or for more than one range, -ENODEV while revoked); a failure unpins and detaches. iommufd never
calls dma_buf_map_attachment: there is no sg_table. The range is iommu_map'ped into every domain
of the IOAS; the area keeps the attachment and the pin for as long as it exists, with or without
domains.

DOC: revoke (§2.2). iopt_revoke_notify runs in the exporter's thread under the resv: under
pages->mutex it iommu_unmaps every (area, domain) pair of its tracker list at once (so any later
device access faults in the IOMMU: safe) and sets the physical length to 0, the revoked marker.
It neither unmaps nor unpins the dma-buf. Nothing restores the mapping when VFIO unrevokes (the
second invalidate is a no-op); userspace must IOMMU_IOAS_UNMAP and map again (MAP_FILE of a
revoked buffer gives -ENODEV). Fill paths after a revoke succeed and map nothing; unfill paths
skip the unmap.

DOC: release (§2.2). IOMMU_IOAS_UNMAP of the whole area (a partial one would split it:
-EOPNOTSUPP) unmaps the domains if not revoked, then releases the pages: dma_resv_lock,
dma_buf_unpin, dma_resv_unlock (the resv around the unpin is the 2026 fix; option
``unpin_locked``), dma_buf_detach, dma_buf_put.

Lock order: VFIO memory_lock → resv → pages->mutex → IOMMU page tables. Modelling choice:
pages->mutex is a Mutex in KState.locks but every step that takes it also drops it, so the
revoke callback, which cannot sleep in the model, always finds it free; io_pagetable's rwsems
are not modelled (each io_pagetable step is atomic).

Device identity: the attach device is iommufd's misc device (the driver's ``device``); the DMA
is done by option ``dma_device``, the PCI function attached to the IOAS's domain, which reaches
the BAR only through the IOVAs mapped here (platform dma_submit_iova).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, cast

from dmabuf_model.check.model import Property
from dmabuf_model.designs import design_of
from dmabuf_model.drivers.base import (
    DriverEnv,
    DriverError,
    Importer,
    Option,
    dma_resv_lock_traced,
    dma_resv_unlock_traced,
    platform,
    set_platform,
)
from dmabuf_model.drivers.dma_buf_import import dma_buf_detach_put
from dmabuf_model.drivers.vfio_pci import VfioPhys, vfio_pci_dma_buf_iommufd_map
from dmabuf_model.kernel import errno
from dmabuf_model.kernel.dma_buf import (
    PAGE_SIZE,
    DmaBufAttachOps,
    dma_buf_detach,
    dma_buf_dynamic_attach,
    dma_buf_get,
    dma_buf_pin,
    dma_buf_put,
    dma_buf_unpin,
)
from dmabuf_model.kernel.dma_resv import dma_resv_unlock
from dmabuf_model.kernel.locking import Mutex, lock_init, mutex_lock, mutex_unlock
from dmabuf_model.kernel.state import (
    AttachId,
    Blocked,
    BufId,
    Fd,
    KState,
    LockId,
    Tid,
    record,
    replace,
    tuple_set,
    warn,
)
from dmabuf_model.platform.dma import dma_engine_pending, dma_engine_run, dma_submit_iova
from dmabuf_model.platform.iommu import (
    iommu_attach_device,
    iommu_domain_alloc,
    iommu_lookup,
    iommu_map,
    iommu_unmap,
    iommu_unmap_fast,
)
from dmabuf_model.system.model import EnvEvent, run_thread
from dmabuf_model.system.properties import invariant
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
    world,
)

REVOKE_UNMAP_MODES = ("iommu_unmap", "iommu_unmap_fast", "none")
"""Option ``revoke_unmap``: mainline unmaps synchronously; the other two are deliberate bugs
(no IOTLB flush; no unmap at all) for the checker to catch."""


@record
class IoptArea:
    """An IOVA area of the IOAS mapping a dma-buf, with its iopt_pages of type DMABUF.

    ``phys`` is the (BAR range, first page, pages) the area maps; pages 0 is the revoked
    marker (phys.len = 0, iopt_dmabuf_revoked). ``domains`` is the tracker list: the domains
    the area is mapped into now. ``start`` is the first page of the dma-buf the area maps.
    ``revoked_live`` is ghost state: a revoke found the area mapped in at least one domain.
    """

    buf: BufId
    attach: AttachId
    mutex: LockId
    phys: VfioPhys
    npages: int
    start: int = 0
    iova: int = -1
    domains: tuple[int, ...] = ()
    pinned: bool = True
    destroyed: bool = False
    revoked_live: bool = False

    @property
    def revoked(self) -> bool:
        """iopt_dmabuf_revoked: the physical length is 0."""
        return self.phys[2] == 0


@record
class IommufdIoas:
    """One IOAS (struct iommufd_ioas / io_pagetable): its domains and dma-buf areas.

    ``device_iova`` is the IOVA the DMA device was last programmed with (-1: none yet); the
    device keeps using it after an unmap, as a guest would.
    """

    domains: tuple[int, ...] = ()
    areas: tuple[IoptArea, ...] = ()
    device_iova: int = -1


def _iova_free(ioas: IommufdIoas, npages: int) -> int:
    """The io_pagetable's IOVA allocation: the lowest page with room for ``npages``."""
    used = sorted(
        (a.iova, a.iova + a.npages) for a in ioas.areas if not a.destroyed and a.iova >= 0
    )
    start = 0
    for lo, hi in used:
        if lo >= start + npages:
            break
        start = max(start, hi)
    return start


class IommufdImporter(Importer):
    """The iommufd importer (drivers.md §2): a pinned, revocable user of a VFIO BAR.

    ``device`` is iommufd's misc device (the attach device, not PCI); option ``dma_device`` is
    the PCI function whose DMA the IOAS translates. See ``OPTIONS``.
    """

    kind: ClassVar[str] = "iommufd"
    OPTIONS: ClassVar[dict[str, Option]] = {
        "dma_device": Option(
            None, "PCI function attached to the IOAS's domain that does the DMA (None: no domain)"
        ),
        "buffer": Option(0, "which of the source exporter's buffers MAP_FILE takes"),
        "map_start": Option(0, "MAP_FILE start, bytes into the dma-buf"),
        "map_length": Option(None, "MAP_FILE length in bytes (None: the rest of the buffer)"),
        "map_at_setup": Option(False, "run MAP_FILE at boot (it must succeed)"),
        "map_budget": Option(1, "IOMMU_IOAS_MAP_FILE ioctls"),
        "unmap_budget": Option(1, "IOMMU_IOAS_UNMAP ioctls of the first live area"),
        "dma_budget": Option(1, "device DMA writes through the mapped IOVA"),
        "hwpt_budget": Option(0, "new hwpt domains attached to the IOAS (fill path)"),
        "revoke_unmap": Option(
            "iommu_unmap", "iopt_revoke_notify's unmap: 'iommu_unmap' (mainline) or a bug"
        ),
        "unpin_locked": Option(True, "dma_buf_unpin under the resv at release (2026 fix)"),
    }

    def __init__(
        self, slot: int, env: DriverEnv, *, device: str, name: str = "", **options: Any
    ) -> None:
        super().__init__(slot, env, device=device, name=name, **options)
        if self.options["revoke_unmap"] not in REVOKE_UNMAP_MODES:
            raise DriverError(
                f"iommufd: revoke_unmap={self.options['revoke_unmap']!r}; "
                f"choose one of {', '.join(REVOKE_UNMAP_MODES)}"
            )
        dma_device = self.options["dma_device"]
        if dma_device is not None and not self.topology.is_pci(dma_device):
            raise DriverError(f"iommufd: dma_device {dma_device!r} is not a PCI function")
        suffix = "" if self.name == self.kind else f"[{self.name}]"
        self._ops = DmaBufAttachOps(
            f"iopt_dmabuf_attach_revoke_ops{suffix}",
            allow_peer2peer=True,
            invalidate_mappings=self.iopt_revoke_notify,
        )
        self._suffix = suffix
        self._programs: dict[str, Program] = {}

    # -- Driver interface -----------------------------------------------------------------------

    def init_state(self) -> IommufdIoas:
        """init_state - an IOAS with no domains and no areas (the domain is attached at setup)."""
        return IommufdIoas()

    def state(self, s: KState) -> IommufdIoas:
        """state - this importer's IOAS record."""
        return self.state_as(s, IommufdIoas)

    def attach_ops(self) -> DmaBufAttachOps:
        """attach_ops - allow_peer2peer, invalidate_mappings = iopt_revoke_notify (§2.3)."""
        return self._ops

    def setup(self, s: KState) -> KState:
        """setup - boot: allocate a domain and attach ``dma_device`` to it; MAP_FILE if asked to.

        DriverError when the platform has no IOMMU, or the boot MAP_FILE fails.
        """
        dma_device = self.options["dma_device"]
        if dma_device is not None:
            ps, dom = iommu_domain_alloc(platform(s))
            ps, ret = iommu_attach_device(ps, self.topology, dom, dma_device)
            if ret < 0:
                raise DriverError(f"iommufd: cannot attach {dma_device} to a domain: {ret}")
            s = set_platform(s, ps)
            s = self.update(s, domains=(dom,))
        if self.options["map_at_setup"]:
            s, tid = spawn(s, self.map_file_program(), f"{self.name} boot map")
            s = run_thread(s, tid)
            got = world(s).threads[tid].local("ret")
            if got != 0:
                raise DriverError(f"iommufd: boot IOMMU_IOAS_MAP_FILE failed: {got}")
        return s

    def _set_area(self, s: KState, index: int, area: IoptArea) -> KState:
        return self.update(s, areas=tuple_set(self.state(s).areas, index, area))

    def source_fd(self, s: KState) -> Fd:
        """source_fd - the fd of the source exporter's chosen buffer in the fd table, or -1."""
        if self.source is None:
            return -1
        bufs = self.source.buffers(s)
        index = int(self.options["buffer"])
        if index >= len(bufs):
            return -1
        for fd, kind, obj in s.fd_table:
            if kind == "dma_buf" and obj == bufs[index]:
                return fd
        return -1

    # -- §2.2 the revoke callback ---------------------------------------------------------------

    def iopt_revoke_notify(self, s: KState, tid: Tid, attach: AttachId) -> KState:
        """iopt_revoke_notify - invalidate_mappings: unmap the IOVA at once, mark revoked.

        Runs in the exporter's thread with the resv held (core-semantics §10 #10). Under
        pages->mutex: if already revoked, nothing (so VFIO's unrevoke invalidate is a no-op);
        otherwise iommu_unmap every domain on the tracker list, synchronously, and set the
        physical length to 0. The attachment and the pin stay until the area is destroyed.
        Option ``revoke_unmap`` swaps the unmap for a bug ("iommu_unmap_fast": no IOTLB sync;
        "none"). drivers.md §2.2.
        """
        mode = self.options["revoke_unmap"]
        for i, area in enumerate(self.state(s).areas):
            if area.attach != attach or area.destroyed:
                continue
            r = mutex_lock(s, tid, area.mutex)
            if isinstance(r, Blocked):
                s = warn(s, 0, "iopt_revoke_notify: pages->mutex held across steps (model bug)")
            else:
                s = r
            emit(f"iopt_revoke_notify(attach{attach}): mutex_lock(pages->mutex)")
            if area.revoked:
                emit("  already revoked: nothing to do")
            else:
                ps = platform(s)
                for dom in area.domains:
                    if mode == "iommu_unmap":
                        ps, n = iommu_unmap(ps, dom, area.iova, area.npages)
                        emit_call("  iommu_unmap", f"domain{dom}, iova {area.iova}", n)
                    elif mode == "iommu_unmap_fast":
                        ps, n = iommu_unmap_fast(ps, dom, area.iova, area.npages)
                        emit_call("  iommu_unmap_fast", f"domain{dom}, iova {area.iova}", n)
                s = set_platform(s, ps)
                rng, first, _ = area.phys
                area = replace(
                    area,
                    phys=(rng, first, 0),
                    domains=(),
                    revoked_live=area.revoked_live or bool(area.domains),
                )
                s = self._set_area(s, i, area)
                emit("  pages->dmabuf.phys.len = 0 (revoked)")
            if not isinstance(r, Blocked):
                s = mutex_unlock(s, tid, area.mutex)
        return s

    # -- §2.1 IOMMU_IOAS_MAP_FILE ---------------------------------------------------------------

    def map_file_program(self) -> Program:
        """map_file_program - the IOMMU_IOAS_MAP_FILE ioctl thread.

        Locals ``fd``/``start``/``length``/``iova`` override the options (``fd`` defaults to
        the source buffer's fd, ``iova`` to the lowest free one). Returns 0 or the errnos of
        drivers.md §2.1 in the thread's ``ret``."""
        key = "map_file"
        if key not in self._programs:
            self._programs[key] = program(
                f"{self.name}: IOMMU_IOAS_MAP_FILE",
                ("iommufd_ioas_map_file: dma_buf_get, dma_buf_dynamic_attach", self._map_get),
                ("iopt_map_dmabuf: lock resv, dma_buf_pin, iommufd_map", self._map_pin),
                ("iopt_area_fill_domains: iommu_map", self._map_fill),
                *self._release_steps(),
            )
        return self._programs[key]

    def _map_get(self, s: KState, t: Thread) -> StepResult:
        fd = cast(Fd | None, t.local("fd"))
        if fd is None:
            fd = self.source_fd(s)
        s1, buf = dma_buf_get(s, t.tid, fd)
        emit_call("dma_buf_get", f"fd {fd}", f"buf{buf}" if buf >= 0 else buf)
        if buf < 0:
            return finish(s1, t, ret=buf)
        size = s1.bufs[buf].size
        start = cast(int, t.local("start", self.options["map_start"]))
        length = cast(int | None, t.local("length", self.options["map_length"]))
        if length is None:
            length = size - start
        if (
            length <= 0
            or start < 0
            or start + length > size
            or start % PAGE_SIZE
            or length % PAGE_SIZE
        ):
            s1 = dma_buf_put(s1, t.tid, buf)
            emit(f"iommufd_ioas_map_file: start {start} length {length} size {size}: -EINVAL")
            return finish(s1, t, ret=-errno.EINVAL)
        r = dma_buf_dynamic_attach(s1, t.tid, buf, self.device, self._ops)
        if isinstance(r, Blocked):
            return r
        s1, attach = r
        emit_call(
            "dma_buf_dynamic_attach",
            f"buf{buf}, {self.device}, iopt_dmabuf_attach_revoke_ops",
            f"attach{attach}" if attach >= 0 else attach,
        )
        if attach < 0:
            return finish(dma_buf_put(s1, t.tid, buf), t, ret=attach)
        return goto(
            s1,
            t,
            "iopt_map_dmabuf: lock resv, dma_buf_pin, iommufd_map",
            buf=buf,
            attach=attach,
            start=start,
            length=length,
        )

    def _undo_attach(self, s: KState, t: Thread, buf: BufId, attach: AttachId) -> KState:
        """The failure path after attach: detach (resv free again in this step) and put."""
        r = dma_buf_detach(s, t.tid, buf, attach)
        assert not isinstance(r, Blocked), "the resv was dropped in this very step"
        emit_call("dma_buf_detach", f"buf{buf}, attach{attach}")
        return dma_buf_put(r, t.tid, buf)

    def _map_pin(self, s: KState, t: Thread) -> StepResult:
        buf = cast(BufId, t.local("buf"))
        attach = cast(AttachId, t.local("attach"))
        resv = s.bufs[buf].resv
        r = dma_resv_lock_traced(s, t.tid, resv)
        if isinstance(r, Blocked):
            return r
        s = r
        ret = 0
        if design_of(self.env.options).iommufd_pins:  # since v7 (drivers.md §2.1 step 4)
            s, ret = dma_buf_pin(s, t.tid, attach)
            emit_call("dma_buf_pin", f"attach{attach}", ret)
        if ret < 0:
            s = dma_resv_unlock(s, t.tid, resv)
            return finish(self._undo_attach(s, t, buf, attach), t, ret=ret)
        s, phys = vfio_pci_dma_buf_iommufd_map(s, t.tid, attach)
        emit_call("vfio_pci_dma_buf_iommufd_map", f"attach{attach}", phys)
        if isinstance(phys, int):
            if design_of(self.env.options).iommufd_pins:
                s = dma_buf_unpin(s, t.tid, attach)
                emit_call("dma_buf_unpin", f"attach{attach}")
            s = dma_resv_unlock(s, t.tid, resv)
            return finish(self._undo_attach(s, t, buf, attach), t, ret=phys)
        start = cast(int, t.local("start")) // PAGE_SIZE
        npages = cast(int, t.local("length")) // PAGE_SIZE
        ioas = self.state(s)
        s, mutex = lock_init(s, Mutex(f"iopt_pages{len(ioas.areas)}.mutex"))
        rng, first, _ = phys
        area = IoptArea(buf, attach, mutex, (rng, first + start, npages), npages, start)
        s = self.set_state(s, replace(ioas, areas=(*ioas.areas, area)))
        s = dma_resv_unlock_traced(s, t.tid, resv)
        return goto(s, t, "iopt_area_fill_domains: iommu_map", area=len(ioas.areas))

    def _map_fill(self, s: KState, t: Thread) -> StepResult:
        index = cast(int, t.local("area"))
        area = self.state(s).areas[index]
        r = mutex_lock(s, t.tid, area.mutex)
        if isinstance(r, Blocked):
            return r
        s = r
        ioas = self.state(s)
        iova = cast(int | None, t.local("iova"))
        if iova is None:
            iova = _iova_free(ioas, area.npages)
        area = replace(area, iova=iova)
        ret = 0
        if area.revoked:
            emit("iopt_area_fill_domains: dma-buf revoked, map nothing")
        else:
            ps = platform(s)
            done: list[int] = []
            rng, first, n = area.phys
            for dom in ioas.domains:
                ps, ret = iommu_map(ps, self.topology, dom, iova, rng, first, n)
                emit_call(
                    "iommu_map",
                    f"domain{dom}, iova {iova}, {self.topology.ranges[rng].name}"
                    f" pages {first}..{first + n - 1}",
                    ret,
                )
                if ret < 0:
                    for d in done:
                        ps, _ = iommu_unmap(ps, d, iova, n)
                    break
                done.append(dom)
            s = set_platform(s, ps)
            if ret == 0:
                area = replace(area, domains=tuple(done))
        s = self._set_area(s, index, area)
        s = mutex_unlock(s, t.tid, area.mutex)
        if ret < 0:
            area = replace(area, destroyed=True)
            s = self._set_area(s, index, area)
            return goto(s, t, _RELEASE_PIN, ret=ret)
        s = self.update(s, device_iova=iova)
        emit(f"iova {iova} written back to userspace")
        return finish(s, t, ret=0, iova=iova)

    # -- §2.2 IOMMU_IOAS_UNMAP and iopt_release_pages -------------------------------------------

    def _release_steps(self) -> tuple[tuple[str, Callable[[KState, Thread], StepResult]], ...]:
        return ((_RELEASE_PIN, self._release_unpin), (_RELEASE_DETACH, self._release_detach))

    def _release_unpin(self, s: KState, t: Thread) -> StepResult:
        index = cast(int, t.local("area"))
        area = self.state(s).areas[index]
        resv = s.bufs[area.buf].resv
        if not design_of(self.env.options).iommufd_pins:  # nothing was pinned before v7
            return goto(s, t, _RELEASE_DETACH)
        if self.options["unpin_locked"]:
            r = dma_resv_lock_traced(s, t.tid, resv)
            if isinstance(r, Blocked):
                return r
            s = r
            s = dma_buf_unpin(s, t.tid, area.attach)
            emit_call("dma_buf_unpin", f"attach{area.attach}")
            s = dma_resv_unlock_traced(s, t.tid, resv)
        else:
            s = dma_buf_unpin(s, t.tid, area.attach)
            emit_call("dma_buf_unpin", f"attach{area.attach} (resv not held)")
        s = self._set_area(s, index, replace(self.state(s).areas[index], pinned=False))
        return goto(s, t, _RELEASE_DETACH)

    def _release_detach(self, s: KState, t: Thread) -> StepResult:
        index = cast(int, t.local("area"))
        area = self.state(s).areas[index]
        r = dma_buf_detach_put(s, t.tid, area.buf, area.attach)
        if isinstance(r, Blocked):
            return r
        return finish(r, t, ret=cast(int, t.local("ret", 0)))

    def unmap_program(self) -> Program:
        """unmap_program - the IOMMU_IOAS_UNMAP ioctl thread, then iopt_release_pages.

        Locals ``iova``/``npages`` default to the whole first live area. Returns 0, -ENOENT
        (nothing mapped there) or -EOPNOTSUPP (it would split a dma-buf area). drivers.md §2.2."""
        key = "unmap"
        if key not in self._programs:
            self._programs[key] = program(
                f"{self.name}: IOMMU_IOAS_UNMAP",
                ("iopt_unmap_iova: unmap area", self._unmap_area),
                *self._release_steps(),
            )
        return self._programs[key]

    def _unmap_area(self, s: KState, t: Thread) -> StepResult:
        ioas = self.state(s)
        live = [i for i, a in enumerate(ioas.areas) if not a.destroyed and a.iova >= 0]
        iova = cast(int | None, t.local("iova"))
        if iova is None and live:
            iova = ioas.areas[live[0]].iova
        hit = [i for i in live if iova is not None and _covers(ioas.areas[i], iova)]
        if not hit:
            emit(f"iopt_unmap_iova(iova {iova}): nothing mapped")
            return finish(s, t, ret=-errno.ENOENT)
        index = hit[0]
        area = ioas.areas[index]
        npages = cast(int, t.local("npages", area.npages))
        if iova != area.iova or npages != area.npages:
            emit(f"iopt_unmap_iova(iova {iova}, {npages} pages): would split a dma-buf area")
            return finish(s, t, ret=-errno.EOPNOTSUPP)
        r = mutex_lock(s, t.tid, area.mutex)
        if isinstance(r, Blocked):
            return r
        s = r
        ps = platform(s)
        if area.revoked:
            emit("iopt_area_unfill_domains: revoked, skip the unmap")
        for dom in area.domains:
            ps, n = iommu_unmap(ps, dom, area.iova, area.npages)
            emit_call("iommu_unmap", f"domain{dom}, iova {area.iova}", n)
        s = set_platform(s, ps)
        s = self._set_area(s, index, replace(area, domains=(), destroyed=True))
        s = mutex_unlock(s, t.tid, area.mutex)
        return goto(s, t, _RELEASE_PIN, area=index, ret=0)

    # -- other events ---------------------------------------------------------------------------

    def hwpt_program(self) -> Program:
        """hwpt_program - attach ``dma_device`` to a new hwpt domain of the IOAS.

        The fill path maps every area that is not revoked; a revoked one maps nothing (§2.2)."""
        key = "hwpt"
        if key not in self._programs:

            def step(s: KState, t: Thread) -> StepResult:
                dev = cast(str, self.options["dma_device"])
                ps, dom = iommu_domain_alloc(platform(s))
                ps, ret = iommu_attach_device(ps, self.topology, dom, dev)
                emit_call("iommufd_hwpt_alloc + attach", f"{dev}, domain{dom}", ret)
                if ret < 0:
                    return finish(s, t, ret=ret)
                s = set_platform(s, ps)
                ioas = self.state(s)
                for i, area in enumerate(ioas.areas):
                    if area.destroyed or area.iova < 0:
                        continue
                    s = mutex_unlock(mutex_lock_now(s, t.tid, area.mutex), t.tid, area.mutex)
                    if area.revoked:
                        emit(f"iopt_area_fill_domain(area{i}): revoked, map nothing")
                        continue
                    rng, first, n = area.phys
                    ps, r = iommu_map(platform(s), self.topology, dom, area.iova, rng, first, n)
                    emit_call("iommu_map", f"domain{dom}, iova {area.iova}", r)
                    s = set_platform(s, ps)
                    if r == 0:
                        s = self._set_area(s, i, replace(area, domains=(*area.domains, dom)))
                s = self.update(s, domains=(*ioas.domains, dom))
                return finish(s, t, ret=0)

            self._programs[key] = program(f"{self.name}: attach hwpt", ("hwpt attach", step))
        return self._programs[key]

    def dma_program(self) -> Program:
        """dma_program - ``dma_device`` writes through its IOVA; the engine runs it later.

        After a revoke or unmap the access faults in the IOMMU (safe, not a violation).
        """
        key = "dma"
        if key not in self._programs:
            dev = cast(str, self.options["dma_device"])

            def submit(s: KState, t: Thread) -> StepResult:
                iova = self.state(s).device_iova
                ps, xid = dma_submit_iova(platform(s), self.topology, dev, iova, write=True)
                emit_call("dma_submit_iova", f"{dev}, iova {iova}, write", xid)
                s = set_platform(s, ps)
                if xid < 0:
                    return finish(s, t, ret=xid)
                return goto(s, t, "dma_engine_run", xid=xid)

            def run(s: KState, t: Thread) -> StepResult:
                if not dma_engine_pending(platform(s), dev):
                    emit(f"{dev}: transfer aborted")
                    return finish(s, t, ret=0)
                ps, xid = dma_engine_run(platform(s), self.topology, dev)
                emit(f"dma_engine_run({dev}): transfer {xid} {ps.transfers[xid].status}")
                return finish(set_platform(s, ps), t, ret=0)

            self._programs[key] = program(
                f"{self.name}: device DMA", ("dma_submit_iova", submit), ("dma_engine_run", run)
            )
        return self._programs[key]

    def events(self) -> list[EnvEvent]:
        """events - MAP_FILE, IOAS_UNMAP, device DMA and hwpt attach, each with its budget."""
        o = self.options
        evs: list[EnvEvent] = []

        def has_area(s: KState) -> bool:
            return any(not a.destroyed and a.iova >= 0 for a in self.state(s).areas)

        def programmed(s: KState) -> bool:
            return self.state(s).device_iova >= 0

        def add(title: str, prog: Program, budget: Any, guard: Callable[[KState], bool]) -> None:
            if int(budget) > 0:
                evs.append(EnvEvent(f"{self.name}: {title}", prog, int(budget), guard=guard))

        add("IOMMU_IOAS_MAP_FILE", self.map_file_program(), o["map_budget"], lambda s: True)
        add("IOMMU_IOAS_UNMAP", self.unmap_program(), o["unmap_budget"], has_area)
        if o["dma_device"] is not None:
            add("device DMA write", self.dma_program(), o["dma_budget"], programmed)
            add("attach hwpt", self.hwpt_program(), o["hwpt_budget"], lambda s: True)
        return evs

    # -- properties and queries -----------------------------------------------------------------

    def revoked_iova_leftovers(self, s: KState) -> list[str]:
        """revoked_iova_leftovers - IOMMU entries (live or stale) still translating an IOVA of a
        revoked area into its BAR, or a revoked area still on the tracker (drivers.md §2.2)."""
        out = []
        ps = platform(s)
        ioas = self.state(s)
        for i, area in enumerate(ioas.areas):
            if not area.revoked or area.iova < 0:
                continue
            if area.domains:
                out.append(f"area{i} revoked but tracked in {list(area.domains)}")
            for dom in ioas.domains:
                for k in range(area.npages):
                    pte = iommu_lookup(ps, dom, area.iova + k)
                    if pte is not None and pte.range == area.phys[0] and pte.mapping < 0:
                        out.append(f"area{i} iova {area.iova + k} still maps domain{dom}")
        return out

    def properties(self) -> list[Property[KState]]:
        """properties - iommufd_revoke_unmaps_iova: a revoked area translates nothing (§2.2)."""
        return [
            invariant(
                f"iommufd_revoke_unmaps_iova{self._suffix}",
                self.revoked_iova_leftovers,
                cite="drivers.md §2.2",
            )
        ]

    def revoked_while_mapped(self) -> Property[KState]:
        """revoked_while_mapped - sometimes: a revoke unmapped a live IOVA (nontriviality)."""

        def cond(s: KState) -> bool:
            return any(a.revoked_live for a in self.state(s).areas)

        return Property.sometimes(
            f"iommufd_revoked_while_mapped{self._suffix}", cond, cite="drivers.md §2.2"
        )

    def iommufd_access_rw(self, s: KState, iova: int) -> int:
        """iommufd_access_rw - in-kernel access through an IOVA: never for dma-buf pages.

        Returns -EINVAL when ``iova`` is in a dma-buf area, -ENOENT when nothing is mapped
        there. drivers.md §2.2.
        """
        for area in self.state(s).areas:
            if not area.destroyed and area.iova >= 0 and _covers(area, iova):
                return -errno.EINVAL
        return -errno.ENOENT


_RELEASE_PIN = "iopt_release_pages: dma_resv_lock, dma_buf_unpin, dma_resv_unlock"
_RELEASE_DETACH = "iopt_release_pages: dma_buf_detach, dma_buf_put"


def _covers(area: IoptArea, iova: int) -> bool:
    return area.iova <= iova < area.iova + area.npages


def mutex_lock_now(s: KState, tid: Tid, lock: LockId) -> KState:
    """mutex_lock_now - mutex_lock of a mutex no step holds across a blocking point.

    pages->mutex is always free when a step starts; WARN if the model ever breaks that."""
    r = mutex_lock(s, tid, lock)
    if isinstance(r, Blocked):
        return warn(s, 0, f"{s.locks[lock].name} held across steps (model bug)")
    return r


__all__ = [
    "REVOKE_UNMAP_MODES",
    "IommufdImporter",
    "IommufdIoas",
    "IoptArea",
    "mutex_lock_now",
]
