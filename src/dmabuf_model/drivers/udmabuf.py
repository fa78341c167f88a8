"""udmabuf: memfd pages turned into a dma-buf, a static exporter (drivers/dma-buf/udmabuf.c).

drivers.md §5.2: UDMABUF_CREATE and UDMABUF_CREATE_LIST on /dev/udmabuf take ranges of sealed
memfds (shmem or hugetlb), pin their folios at creation (memfd_pin_folios) and export them. The
pins are dropped only at release, so the pages outlive a close or truncation of the memfd for as
long as the dma-buf lives. There is no attach, detach, pin or unpin op and no invalidation: every
importer keeps its mapping until it unmaps (drivers.md §7 "udmabuf" row).

DOC: memfds. A memfd is a userspace object: the model keeps it in this driver's record
(UdmabufMemfd: the RAM region backing it, its seals, shmem/hugetlb, open or closed, pins) and
installs a descriptor of kind "memfd" in KState.fd_table, so UDMABUF_CREATE receives a real fd
number (another kind of fd, or a closed one, is -EBADFD). Closing the memfd gives its pages back
to the allocator (platform ram_free) once nothing pins them.

DOC: ops (drivers.md §5.2). map_dma_buf builds a fresh sg table on every call and dma-maps it
onto attach->dev (platform dma_map_phys; the entries are DmaMapping ids); unmap_dma_buf undoes
it; mmap requires a shared mapping (-EINVAL otherwise); vmap (resv held) and vunmap;
begin_cpu_access maps the pages for the misc device the first time and syncs afterwards,
end_cpu_access fails with -EINVAL if begin never mapped them; release unpins.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any, ClassVar, Literal

from dmabuf_model.drivers.base import DriverEnv, Option, platform, set_platform
from dmabuf_model.drivers.device_dma import dma_map_sgtable, dma_unmap_sgtable
from dmabuf_model.drivers.user_buffers import UserBufferExporter
from dmabuf_model.kernel import errno
from dmabuf_model.kernel.dma_buf import (
    O_CLOEXEC,
    O_RDWR,
    PAGE_SHIFT,
    PAGE_SIZE,
    DmaBufOps,
    DmaDataDirection,
    MapResult,
    close_fd,
    dma_buf_export,
    dma_buf_fd,
    dma_buf_put,
    fd_lookup,
)
from dmabuf_model.kernel.dma_resv import dma_resv_assert_held
from dmabuf_model.kernel.state import (
    AttachId,
    BufId,
    Fd,
    KState,
    SgtId,
    Tid,
    record,
    replace,
    tuple_set,
)
from dmabuf_model.platform.memory import ram_alloc, ram_free
from dmabuf_model.system.model import EnvEvent
from dmabuf_model.system.threads import Thread, emit, emit_call, finish, program

F_SEAL_SEAL = 0x0001
F_SEAL_SHRINK = 0x0002
F_SEAL_GROW = 0x0004
F_SEAL_WRITE = 0x0008
F_SEAL_FUTURE_WRITE = 0x0010
SEALS_WANTED = F_SEAL_SHRINK
SEALS_DENIED = F_SEAL_WRITE | F_SEAL_FUTURE_WRITE
UDMABUF_FLAGS_CLOEXEC = 0x01

MemfdKind = Literal["shmem", "hugetlb", "other"]
"""What backs the file: shmem or hugetlbfs (a memfd), or anything else (not a memfd)."""

_VMAP_COOKIE_BASE = 0x2000


@record
class UdmabufCreateItem:
    """struct udmabuf_create_item: a range of one memfd (``memfd`` is the fd number)."""

    memfd: int
    offset: int
    size: int


@record
class UdmabufMemfd:
    """A memfd userspace created: its RAM region, seals, backing, open state and folio pins.

    ``fd`` is its descriptor (kind "memfd" in KState.fd_table) while ``open``; ``pins`` counts
    udmabufs holding its folios; ``freed`` is set once the pages went back to the allocator
    (closed and unpinned).
    """

    fd: Fd
    range: int
    seals: int = F_SEAL_SHRINK
    kind: MemfdKind = "shmem"
    open: bool = True
    pins: int = 0
    freed: bool = False


@record
class UdmabufBuffer:
    """struct udmabuf: its dma_buf, fd, the pinned folio ranges and the CPU-access table.

    ``folios`` are (memfd index, RAM range id, first page, pages) per item; ``pinned`` lists the
    memfd indices whose pins this buffer holds (unpin_all_folios drops them); ``cpu_sg`` is
    ubuf->sg, set by the first begin_cpu_access.
    """

    buf: BufId
    fd: Fd
    folios: tuple[tuple[int, int, int, int], ...]
    pinned: tuple[int, ...] = ()
    cpu_sg: bool = False
    released: bool = False


@record
class UdmabufState:
    """The driver's record: the memfds userspace made and the udmabufs created from them."""

    memfds: tuple[UdmabufMemfd, ...] = ()
    buffers: tuple[UdmabufBuffer, ...] = ()


class UdmabufExporter(UserBufferExporter):
    """/dev/udmabuf as exporter, kind "udmabuf" (drivers.md §5.2, §7).

    At boot userspace creates a memfd over one RAM region with ``memfd_seals`` (default
    F_SEAL_SHRINK) and ``memfd_kind``, then UDMABUF_CREATE of ``size_pages`` pages at page
    ``offset_pages``. Module parameters ``size_limit_mb`` (64) and ``list_limit`` (1024).
    Events: close of the udmabuf fd (``close_budget``) and of the memfd (``close_memfd_budget``).
    ``pin_at_create=False`` is a deliberately broken variant that does not pin the folios, so
    closing the memfd frees pages the dma-buf still hands out.
    """

    kind: ClassVar[str] = "udmabuf"
    takeback = None
    OPTIONS: ClassVar[dict[str, Option]] = {
        "size_pages": Option(1, "pages of the memfd range turned into the udmabuf at boot"),
        "offset_pages": Option(0, "first page of the memfd range"),
        "memfd_seals": Option(F_SEAL_SHRINK, "seals userspace put on the memfd"),
        "memfd_kind": Option("shmem", 'backing of the fd: "shmem", "hugetlb" or "other"'),
        "size_limit_mb": Option(64, "module parameter: largest udmabuf, in MiB"),
        "list_limit": Option(1024, "module parameter: most items in UDMABUF_CREATE_LIST"),
        "pin_at_create": Option(True, "memfd_pin_folios at creation; False is a bug"),
        "close_budget": Option(1, "userspace closes the udmabuf fd (0: never)"),
        "close_memfd_budget": Option(1, "userspace closes the memfd (0: never)"),
    }

    def __init__(
        self, slot: int, env: DriverEnv, *, device: str = "udmabuf", name: str = "", **kw: Any
    ) -> None:
        super().__init__(slot, env, device=device, name=name, **kw)
        self._ops = DmaBufOps(
            f"udmabuf_ops[{self.slot}]",
            map_dma_buf=self.map_udmabuf,
            unmap_dma_buf=self.unmap_udmabuf,
            release=self.release_udmabuf,
            begin_cpu_access=self.begin_cpu_udmabuf,
            end_cpu_access=self.end_cpu_udmabuf,
            mmap=self.udmabuf_mmap_shared,
            vmap=self.vmap_udmabuf,
            vunmap=self.vunmap_udmabuf,
        )
        prefix = f"{self.name}:{self.slot}"
        self.boot_program = program(f"{prefix}: memfd_create, UDMABUF_CREATE", ("boot", self._boot))
        self._init_close_program("udmabuf")
        self.close_memfd_program = program(
            f"{prefix}: close memfd", ("close(memfd)", self._close_memfd_step)
        )

    # -- record ---------------------------------------------------------------------------------

    def init_state(self) -> Hashable:
        """No memfd, no buffer."""
        return UdmabufState()

    def state(self, s: KState) -> UdmabufState:
        """The driver's record in ``s``."""
        return self.state_as(s, UdmabufState)

    def dma_buf_ops(self) -> DmaBufOps:
        """udmabuf_ops: no attach, detach, pin or unpin (drivers.md §5.2)."""
        return self._ops

    def _put_memfd(self, s: KState, i: int, m: UdmabufMemfd) -> KState:
        return self.update(s, memfds=tuple_set(self.state(s).memfds, i, m))

    # -- memfds (userspace) -----------------------------------------------------------------------

    def memfd_create(
        self,
        s: KState,
        *,
        seals: int = F_SEAL_SHRINK,
        kind: MemfdKind = "shmem",
        range_id: int | None = None,
    ) -> tuple[KState, Fd | int]:
        """memfd_create - userspace makes a memfd over one free RAM region and seals it.

        Not part of udmabuf.c: the input UDMABUF_CREATE needs. ``kind`` "other" stands for any
        file that is neither shmem nor hugetlbfs. Returns the fd, or -ENOMEM when no RAM region
        is free. drivers.md §5.2.
        """
        ps, r = ram_alloc(platform(s), self.topology, range_id)
        if r < 0:
            return s, r
        s = set_platform(s, ps)
        fd = s.next_fd
        st = self.state(s)
        s = s.evolve(fd_table=(*s.fd_table, (fd, "memfd", len(st.memfds))), next_fd=fd + 1)
        m = UdmabufMemfd(fd=fd, range=r, seals=seals, kind=kind)
        return self.update(s, memfds=(*st.memfds, m)), fd

    def _memfd_of_fd(self, s: KState, fd: int) -> int | None:
        """fget: the memfd index behind ``fd``; None for a closed fd or another file kind."""
        entry = fd_lookup(s, fd)
        if entry is None or entry[0] != "memfd":
            return None
        return entry[1]

    def memfd_close(self, s: KState, tid: Tid, fd: int) -> tuple[KState, int]:
        """memfd_close - close(2) of a memfd: its pages are freed unless a udmabuf pins them.

        Returns 0, or -EBADF when ``fd`` is not an open memfd. drivers.md §5.2 (the folios are
        unpinned only at release).
        """
        index = self._memfd_of_fd(s, fd)
        if index is None:
            return s, -errno.EBADF
        s, _ = close_fd(s, tid, fd)
        m = replace(self.state(s).memfds[index], open=False)
        s = self._put_memfd(s, index, m)
        return self._maybe_free_memfd(s, index), 0

    def _maybe_free_memfd(self, s: KState, index: int) -> KState:
        m = self.state(s).memfds[index]
        if m.open or m.pins > 0 or m.freed:
            return s
        emit(f"memfd fd{m.fd}: last reference gone, pages freed")
        s = set_platform(s, ram_free(platform(s), self.topology, m.range))
        return self._put_memfd(s, index, replace(m, freed=True))

    # -- UDMABUF_CREATE / UDMABUF_CREATE_LIST ----------------------------------------------------

    def udmabuf_create(
        self,
        s: KState,
        tid: Tid,
        items: Sequence[UdmabufCreateItem],
        *,
        flags: int = 0,
    ) -> tuple[KState, Fd | int]:
        """udmabuf_create - the common body of UDMABUF_CREATE and UDMABUF_CREATE_LIST.

        No lock held. In the kernel's order: every item's offset and size page aligned, the
        running total within size_limit_mb, else -EINVAL; a total of 0 pages is -EINVAL; then
        per item: a closed fd, or a file that is neither shmem nor hugetlb, is -EBADFD; seals
        without F_SEAL_SHRINK or with F_SEAL_WRITE/F_SEAL_FUTURE_WRITE are -EINVAL; a range past
        the end of the memfd pins nothing: -EINVAL; then the folios are pinned
        (memfd_pin_folios; undone on a later error), the buffer exported (always O_RDWR) and an
        fd installed (O_CLOEXEC with UDMABUF_FLAGS_CLOEXEC); a failing dma_buf_fd drops the
        buffer, whose release unpins.

        Returns: the fd; -EINVAL, -EBADFD, or the dma_buf_export/dma_buf_fd error.
        drivers.md §5.2.
        """
        pglimit = (int(self.options["size_limit_mb"]) * 1024 * 1024) >> PAGE_SHIFT
        pgcnt = 0
        for item in items:
            if item.offset % PAGE_SIZE or item.size % PAGE_SIZE:
                return s, -errno.EINVAL
            pgcnt += item.size >> PAGE_SHIFT
            if pgcnt > pglimit:
                return s, -errno.EINVAL
        if pgcnt == 0:
            return s, -errno.EINVAL
        folios: list[tuple[int, int, int, int]] = []
        pinned: list[int] = []
        for item in items:
            index = self._memfd_of_fd(s, item.memfd)
            if index is None:
                return self._unpin(s, pinned), -errno.EBADFD
            m = self.state(s).memfds[index]
            if m.kind == "other":
                return self._unpin(s, pinned), -errno.EBADFD
            if (m.seals & SEALS_WANTED) != SEALS_WANTED or m.seals & SEALS_DENIED:
                return self._unpin(s, pinned), -errno.EINVAL
            first = item.offset >> PAGE_SHIFT
            npages = item.size >> PAGE_SHIFT
            if first + npages > self.topology.ranges[m.range].pages:
                return self._unpin(s, pinned), -errno.EINVAL
            if self.options["pin_at_create"]:
                s = self._put_memfd(s, index, replace(m, pins=m.pins + 1))
                pinned.append(index)
            folios.append((index, m.range, first, npages))
        cloexec = O_CLOEXEC if flags & UDMABUF_FLAGS_CLOEXEC else 0
        s, buf = dma_buf_export(
            s, tid, ops=self._ops, size=pgcnt << PAGE_SHIFT, priv=("udmabuf", self.slot),
            exp_name="udmabuf", flags=O_RDWR,
        )  # fmt: skip
        emit_call("dma_buf_export", f"udmabuf, size={pgcnt << PAGE_SHIFT}", buf)
        if buf < 0:
            return self._unpin(s, pinned), buf
        st = self.state(s)
        record = UdmabufBuffer(buf=buf, fd=-1, folios=tuple(folios), pinned=tuple(pinned))
        s = self.update(s, buffers=(*st.buffers, record))
        s, fd = dma_buf_fd(s, tid, buf, O_RDWR | cloexec)
        emit_call("dma_buf_fd", f"buf{buf}", fd)
        if fd < 0:
            return dma_buf_put(s, tid, buf), fd
        i = self._index(s, buf)
        return self._put_buffer(s, i, replace(self.state(s).buffers[i], fd=fd)), fd

    def udmabuf_ioctl_create(
        self, s: KState, tid: Tid, memfd: int, offset: int, size: int, *, flags: int = 0
    ) -> tuple[KState, Fd | int]:
        """udmabuf_ioctl_create - UDMABUF_CREATE: one item. Returns as udmabuf_create (§5.2)."""
        return self.udmabuf_create(s, tid, (UdmabufCreateItem(memfd, offset, size),), flags=flags)

    def udmabuf_ioctl_create_list(
        self, s: KState, tid: Tid, items: Sequence[UdmabufCreateItem], *, flags: int = 0
    ) -> tuple[KState, Fd | int]:
        """udmabuf_ioctl_create_list - UDMABUF_CREATE_LIST: more than list_limit items is
        -EINVAL before anything else; otherwise as udmabuf_create. drivers.md §5.2."""
        if len(items) > int(self.options["list_limit"]):
            return s, -errno.EINVAL
        return self.udmabuf_create(s, tid, items, flags=flags)

    def _unpin(self, s: KState, indices: Sequence[int]) -> KState:
        """unpin_all_folios: drop one pin per listed memfd; free closed, unpinned memfds."""
        for index in indices:
            m = self.state(s).memfds[index]
            s = self._put_memfd(s, index, replace(m, pins=m.pins - 1))
            s = self._maybe_free_memfd(s, index)
        return s

    # -- dma_buf_ops ------------------------------------------------------------------------------

    def map_udmabuf(
        self, s: KState, tid: Tid, attach: AttachId, dir: DmaDataDirection
    ) -> tuple[KState, MapResult]:
        """map_udmabuf - a fresh sg table of the folios, dma-mapped onto attach->dev.

        Caller holds the resv (the core asserts it). Every call builds and maps a new table
        (platform dma_map_phys per folio range; the entries are DmaMapping ids). A mapping
        failure (attach->dev is not a PCI function, or was removed) unmaps what was mapped and
        returns the error. drivers.md §5.2.
        """
        a = s.attachments[attach]
        b = self.state(s).buffers[self._index(s, a.dmabuf)]
        chunks = ((r, first, n) for _, r, first, n in b.folios)
        ps, mids = dma_map_sgtable(platform(s), self.topology, a.dev, chunks)
        if isinstance(mids, int):
            return set_platform(s, ps), mids
        emit(f"map_udmabuf: get_sg_table + dma_map_sgtable({a.dev}) = mappings {list(mids)}")
        return set_platform(s, ps), mids

    def unmap_udmabuf(
        self, s: KState, tid: Tid, attach: AttachId, sgt: SgtId, dir: DmaDataDirection
    ) -> KState:
        """unmap_udmabuf - put_sg_table: dma_unmap_sgtable and free the table (resv held, §5.2)."""
        return set_platform(s, dma_unmap_sgtable(platform(s), s.sg_tables[sgt].entries))

    def udmabuf_mmap(
        self, s: KState, tid: Tid, buf: BufId, pgoff: int, npages: int, *, vm_shared: bool
    ) -> tuple[KState, int]:
        """udmabuf_mmap - mmap_udmabuf: a VM_PFNMAP mapping whose faults insert the folios' PFNs.

        Called unlocked by the core after its bounds check. A private mapping (neither VM_SHARED
        nor VM_MAYSHARE) is -EINVAL; otherwise 0. ``vm_shared`` stands for the vma flags, which
        the core's mmap callback does not pass (ops.mmap is this with vm_shared=True).
        drivers.md §5.2.
        """
        if not vm_shared:
            return s, -errno.EINVAL
        emit(f"mmap_udmabuf: VM_PFNMAP buf{buf} pages {pgoff}..{pgoff + npages - 1}")
        return s, 0

    def udmabuf_mmap_shared(
        self, s: KState, tid: Tid, buf: BufId, pgoff: int, npages: int
    ) -> tuple[KState, int]:
        """udmabuf_mmap_shared - ops.mmap: udmabuf_mmap of a MAP_SHARED vma (drivers.md §5.2)."""
        return self.udmabuf_mmap(s, tid, buf, pgoff, npages, vm_shared=True)

    def vmap_udmabuf(self, s: KState, tid: Tid, buf: BufId) -> tuple[KState, int]:
        """vmap_udmabuf - vmap_pfn of every page; resv held (asserted, WARN #8).

        Returns a positive cookie standing for the kernel address. drivers.md §5.2.
        """
        s = dma_resv_assert_held(s, s.bufs[buf].resv, tid, "vmap_udmabuf", invariant=8)
        return s, _VMAP_COOKIE_BASE + buf

    def vunmap_udmabuf(self, s: KState, tid: Tid, buf: BufId, map: int) -> KState:
        """vunmap_udmabuf - vm_unmap_ram; resv held (asserted, WARN #8). drivers.md §5.2."""
        return dma_resv_assert_held(s, s.bufs[buf].resv, tid, "vunmap_udmabuf", invariant=8)

    def begin_cpu_udmabuf(
        self, s: KState, tid: Tid, buf: BufId, dir: DmaDataDirection
    ) -> tuple[KState, int]:
        """begin_cpu_udmabuf - map the pages for the misc device the first time, sync after.

        Called unlocked. The misc device's table is CPU cache maintenance only (no device
        access), kept as the ``cpu_sg`` flag. Returns 0. drivers.md §5.2.
        """
        i = self._index(s, buf)
        b = self.state(s).buffers[i]
        if not b.cpu_sg:
            emit("begin_cpu_udmabuf: get_sg_table(misc device)")
            return self._put_buffer(s, i, replace(b, cpu_sg=True)), 0
        emit("begin_cpu_udmabuf: dma_sync_sgtable_for_cpu")
        return s, 0

    def end_cpu_udmabuf(
        self, s: KState, tid: Tid, buf: BufId, dir: DmaDataDirection
    ) -> tuple[KState, int]:
        """end_cpu_udmabuf - sync for the device; -EINVAL if begin never built the table.

        Called unlocked. drivers.md §5.2.
        """
        b = self.state(s).buffers[self._index(s, buf)]
        if not b.cpu_sg:
            return s, -errno.EINVAL
        emit("end_cpu_udmabuf: dma_sync_sgtable_for_device")
        return s, 0

    def release_udmabuf(self, s: KState, tid: Tid, buf: BufId) -> KState:
        """release_udmabuf - free the misc-device table and unpin every folio (unlocked).

        A memfd already closed loses its last pin here and its pages are freed. drivers.md
        §5.2.
        """
        i = self._index(s, buf)
        b = self.state(s).buffers[i]
        emit(f"release_udmabuf: unpin_all_folios of buf{buf}")
        s = self._put_buffer(s, i, replace(b, cpu_sg=False, pinned=(), released=True))
        return self._unpin(s, list(b.pinned))

    # -- boot and events -----------------------------------------------------------------------

    def _boot(self, s: KState, t: Thread) -> KState:
        kind = str(self.options["memfd_kind"])
        assert kind in ("shmem", "hugetlb", "other")
        s, memfd = self.memfd_create(
            s,
            seals=int(self.options["memfd_seals"]),
            kind=kind,  # type: ignore[arg-type]
        )
        emit_call("memfd_create", "udmabuf backing", memfd)
        if memfd < 0:
            return finish(s, t, ret=memfd)
        offset = int(self.options["offset_pages"]) * PAGE_SIZE
        size = int(self.options["size_pages"]) * PAGE_SIZE
        s, fd = self.udmabuf_ioctl_create(s, t.tid, memfd, offset, size)
        emit_call("UDMABUF_CREATE", f"memfd fd{memfd}, offset={offset}, size={size}", fd)
        return finish(s, t, ret=fd)

    def _memfd_open(self, s: KState) -> bool:
        memfds = self.state(s).memfds
        return bool(memfds) and memfds[0].open

    def _close_memfd_step(self, s: KState, t: Thread) -> KState:
        m = self.state(s).memfds[0]
        s, ret = self.memfd_close(s, t.tid, m.fd)
        emit_call("close", f"memfd fd{m.fd}", ret)
        return finish(s, t, ret=ret)

    def events(self) -> list[EnvEvent]:
        """close(2) of the udmabuf fd and of the memfd, each with its budget."""
        out = self.close_event(int(self.options["close_budget"]))
        budget = int(self.options["close_memfd_budget"])
        if budget > 0:
            out.append(
                EnvEvent(
                    f"{self.name}: close(memfd)",
                    self.close_memfd_program,
                    budget=budget,
                    thread_name=f"{self.name} close memfd",
                    guard=self._memfd_open,
                )
            )
        return out


__all__ = [
    "F_SEAL_FUTURE_WRITE",
    "F_SEAL_GROW",
    "F_SEAL_SEAL",
    "F_SEAL_SHRINK",
    "F_SEAL_WRITE",
    "SEALS_DENIED",
    "SEALS_WANTED",
    "UDMABUF_FLAGS_CLOEXEC",
    "MemfdKind",
    "UdmabufBuffer",
    "UdmabufCreateItem",
    "UdmabufExporter",
    "UdmabufMemfd",
    "UdmabufState",
]
