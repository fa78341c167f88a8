"""system_heap: the dma-buf system heap, a static exporter of system RAM pages.

Model of drivers/dma-buf/heaps/system_heap.c behind DMA_HEAP_IOCTL_ALLOC
(drivers/dma-buf/dma-heap.c), drivers.md §5.1: pages are taken from system RAM once, at
allocation, never move, and go back to the page allocator only when the last reference to the
dma-buf is dropped. It has no pin or unpin and never calls dma_buf_invalidate_mappings, so every
importer keeps its mapping until it unmaps (drivers.md §7 "system heap" row).

DOC: memory. The pages come from the platform's RAM regions through ram_alloc (lowest free
region first, as the page allocator hands freed pages out again); ops.release gives them back
with ram_free, which ends the regions' generation. A device access through an address kept past
the release is therefore the oracle's dma_after_reuse (through a bus address; behind an IOMMU the
unmapped IOVA faults safely). One RAM region stands for one chunk of the order-8/4/0 allocation.

DOC: ops (drivers.md §5.1). attach duplicates the buffer's sg table for the attachment (-ENOMEM
as an option); map_dma_buf dma-maps it onto attach->dev (platform dma_map_phys per region: the
sg entries are DmaMapping ids) and marks the attachment mapped; unmap_dma_buf undoes that;
begin/end_cpu_access sync the mapped attachments; mmap, vmap (refcounted by the core) and
vunmap; release frees the pages. attach->peer2peer is ignored: these are normal pages.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any, ClassVar

from dmabuf_model.drivers.base import DriverEnv, Option, platform, set_platform
from dmabuf_model.drivers.device_dma import dma_map_sgtable, dma_unmap_sgtable
from dmabuf_model.drivers.user_buffers import UserBufferExporter
from dmabuf_model.kernel import errno
from dmabuf_model.kernel.dma_buf import (
    O_ACCMODE,
    O_CLOEXEC,
    O_RDWR,
    PAGE_SIZE,
    DmaBufOps,
    DmaDataDirection,
    MapResult,
    dma_buf_export,
    dma_buf_fd,
    dma_buf_put,
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
)
from dmabuf_model.platform.memory import ram_alloc, ram_free
from dmabuf_model.system.model import EnvEvent
from dmabuf_model.system.threads import Thread, emit, emit_call, finish, program

DMA_HEAP_VALID_FD_FLAGS = O_CLOEXEC | O_ACCMODE
"""fd_flags DMA_HEAP_IOCTL_ALLOC accepts (include/uapi/linux/dma-heap.h)."""
DMA_HEAP_VALID_HEAP_FLAGS = 0
"""No heap flags are defined."""

_VMAP_COOKIE_BASE = 0x1000


@record
class SystemHeapBuffer:
    """One allocation (struct system_heap_buffer): its dma_buf, fd and pages.

    ``chunks`` are (RAM range id, pages used) pairs; ``attachments`` are (attach, mapped) pairs,
    the heap's per-attachment sg table copies and their ``mapped`` flag; ``freed`` is set by
    release (the pages went back to the allocator).
    """

    buf: BufId
    fd: Fd
    chunks: tuple[tuple[int, int], ...]
    attachments: tuple[tuple[AttachId, bool], ...] = ()
    freed: bool = False


@record
class SystemHeapState:
    """The heap's record: every buffer it allocated, oldest first."""

    buffers: tuple[SystemHeapBuffer, ...] = ()


class SystemHeapExporter(UserBufferExporter):
    """The system heap as exporter, kind "system-heap" (drivers.md §5.1, §7).

    ``device`` names the heap (it is not a DMA master). Options: ``size`` in bytes and
    ``buffers`` allocated at boot with DMA_HEAP_IOCTL_ALLOC, ``fatal_signal`` (the boot
    allocation is interrupted: -EINTR), ``attach_enomem`` (the sg table copy in attach fails),
    and ``close_budget`` (userspace closes the first buffer's fd).
    """

    kind: ClassVar[str] = "system-heap"
    takeback = None
    OPTIONS: ClassVar[dict[str, Option]] = {
        "size": Option(PAGE_SIZE, "bytes per buffer allocated at boot"),
        "buffers": Option(1, "buffers allocated at boot with DMA_HEAP_IOCTL_ALLOC"),
        "fatal_signal": Option(False, "a fatal signal interrupts the boot allocation (-EINTR)"),
        "attach_enomem": Option(False, "attach cannot duplicate the sg table (-ENOMEM)"),
        "close_budget": Option(1, "userspace closes the first buffer's fd (0: never)"),
    }

    def __init__(
        self, slot: int, env: DriverEnv, *, device: str = "system", name: str = "", **kw: Any
    ) -> None:
        super().__init__(slot, env, device=device, name=name, **kw)
        self._ops = DmaBufOps(
            f"system_heap_buf_ops[{self.slot}]",
            map_dma_buf=self.system_heap_map_dma_buf,
            unmap_dma_buf=self.system_heap_unmap_dma_buf,
            release=self.system_heap_dma_buf_release,
            attach=self.system_heap_attach,
            detach=self.system_heap_detach,
            begin_cpu_access=self.system_heap_dma_buf_begin_cpu_access,
            end_cpu_access=self.system_heap_dma_buf_end_cpu_access,
            mmap=self.system_heap_mmap,
            vmap=self.system_heap_vmap,
            vunmap=self.system_heap_vunmap,
        )
        prefix = f"{self.name}:{self.slot}"
        self.boot_program = program(f"{prefix}: DMA_HEAP_IOCTL_ALLOC", ("alloc", self._boot))
        self._init_close_program("dma-buf")

    # -- record ---------------------------------------------------------------------------------

    def init_state(self) -> Hashable:
        """No buffer yet."""
        return SystemHeapState()

    def state(self, s: KState) -> SystemHeapState:
        """The heap's record in ``s``."""
        return self.state_as(s, SystemHeapState)

    def dma_buf_ops(self) -> DmaBufOps:
        """system_heap_buf_ops: no pin/unpin, no invalidation (drivers.md §5.1)."""
        return self._ops

    # -- DMA_HEAP_IOCTL_ALLOC ----------------------------------------------------------------------

    def dma_heap_ioctl_alloc(
        self,
        s: KState,
        tid: Tid,
        length: int,
        *,
        fd: int = 0,
        fd_flags: int = O_RDWR | O_CLOEXEC,
        heap_flags: int = 0,
        fatal_signal: bool = False,
    ) -> tuple[KState, Fd | int]:
        """dma_heap_ioctl_alloc - DMA_HEAP_IOCTL_ALLOC on the system heap: a new dma-buf fd.

        No lock held. Checks of dma-heap.c (outside drivers.md §5.1): ``fd`` must be 0 on input,
        ``fd_flags`` within O_CLOEXEC|O_ACCMODE, ``heap_flags`` 0, and the page-aligned length
        not 0, else -EINVAL. system_heap_allocate then takes RAM regions until the pages are
        covered: a ``fatal_signal`` pending before an allocation is -EINTR, no free region is
        -ENOMEM (pages taken so far go back). Then dma_buf_export and dma_buf_fd (a failing
        dma_buf_fd drops the buffer, whose release frees the pages).

        Returns: the fd; -EINVAL, -EINTR, -ENOMEM, or the dma_buf_export/dma_buf_fd error.
        drivers.md §5.1.
        """
        if fd != 0:
            return s, -errno.EINVAL
        if fd_flags & ~DMA_HEAP_VALID_FD_FLAGS:
            return s, -errno.EINVAL
        if heap_flags & ~DMA_HEAP_VALID_HEAP_FLAGS:
            return s, -errno.EINVAL
        length = (length + PAGE_SIZE - 1) // PAGE_SIZE * PAGE_SIZE
        if length <= 0:
            return s, -errno.EINVAL
        s, chunks = self._allocate_pages(s, length // PAGE_SIZE, fatal_signal)
        if isinstance(chunks, int):
            return s, chunks
        s, buf = dma_buf_export(
            s, tid, ops=self._ops, size=length, priv=("system_heap", self.slot),
            exp_name="system", flags=fd_flags,
        )  # fmt: skip
        emit_call("dma_buf_export", f"system, size={length}", buf)
        if buf < 0:
            return self._free_chunks(s, chunks), buf
        st = self.state(s)
        record = SystemHeapBuffer(buf=buf, fd=-1, chunks=chunks)
        s = self.set_state(s, replace(st, buffers=(*st.buffers, record)))
        s, new_fd = dma_buf_fd(s, tid, buf, fd_flags)
        emit_call("dma_buf_fd", f"buf{buf}", new_fd)
        if new_fd < 0:
            return dma_buf_put(s, tid, buf), new_fd
        i = self._index(s, buf)
        return self._put_buffer(s, i, replace(self.state(s).buffers[i], fd=new_fd)), new_fd

    def _allocate_pages(
        self, s: KState, npages: int, fatal_signal: bool
    ) -> tuple[KState, tuple[tuple[int, int], ...] | int]:
        """system_heap_allocate's page loop: one RAM region per chunk."""
        chunks: list[tuple[int, int]] = []
        ps = platform(s)
        while npages > 0:
            if fatal_signal:
                return self._free_chunks(set_platform(s, ps), tuple(chunks)), -errno.EINTR
            ps, r = ram_alloc(ps, self.topology)
            if r < 0:
                return self._free_chunks(set_platform(s, ps), tuple(chunks)), r
            used = min(npages, self.topology.ranges[r].pages)
            chunks.append((r, used))
            npages -= used
        return set_platform(s, ps), tuple(chunks)

    def _free_chunks(self, s: KState, chunks: tuple[tuple[int, int], ...]) -> KState:
        ps = platform(s)
        for r, _ in chunks:
            ps = ram_free(ps, self.topology, r)
        return set_platform(s, ps)

    # -- dma_buf_ops ------------------------------------------------------------------------------

    def system_heap_attach(self, s: KState, tid: Tid, attach: AttachId) -> tuple[KState, int]:
        """system_heap_attach - give the attachment its own copy of the sg table.

        Called unlocked by dma_buf_dynamic_attach. peer2peer is ignored. Returns 0, or -ENOMEM
        when the copy fails (option ``attach_enomem``). drivers.md §5.1.
        """
        if self.options["attach_enomem"]:
            return s, -errno.ENOMEM
        i = self._index(s, s.attachments[attach].dmabuf)
        b = self.state(s).buffers[i]
        return self._put_buffer(s, i, replace(b, attachments=(*b.attachments, (attach, False)))), 0

    def system_heap_detach(self, s: KState, tid: Tid, attach: AttachId) -> KState:
        """system_heap_detach - free the attachment's sg table copy (unlocked; §5.1)."""
        i = self._index(s, s.attachments[attach].dmabuf)
        b = self.state(s).buffers[i]
        kept = tuple(a for a in b.attachments if a[0] != attach)
        return self._put_buffer(s, i, replace(b, attachments=kept))

    def _set_mapped(self, s: KState, attach: AttachId, mapped: bool) -> KState:
        i = self._index(s, s.attachments[attach].dmabuf)
        b = self.state(s).buffers[i]
        atts = tuple((a, mapped if a == attach else m) for a, m in b.attachments)
        return self._put_buffer(s, i, replace(b, attachments=atts))

    def system_heap_map_dma_buf(
        self, s: KState, tid: Tid, attach: AttachId, dir: DmaDataDirection
    ) -> tuple[KState, MapResult]:
        """system_heap_map_dma_buf - dma_map_sgtable of the attachment's table onto attach->dev.

        Caller holds the resv (the core asserts it). Each chunk is mapped with the platform's
        dma_map_phys for attach->dev (through its IOMMU domain if it has one); the sg entries are
        the DmaMapping ids. A mapping failure (a device that is not a PCI function, a removed
        device) unmaps what was mapped and returns the error (-EINVAL, -ENODEV). On success the
        attachment is marked mapped. drivers.md §5.1.
        """
        a = s.attachments[attach]
        b = self.state(s).buffers[self._index(s, a.dmabuf)]
        chunks = ((r, 0, n) for r, n in b.chunks)
        ps, mids = dma_map_sgtable(platform(s), self.topology, a.dev, chunks)
        s = set_platform(s, ps)
        if isinstance(mids, int):
            return s, mids
        emit(f"system_heap_map_dma_buf: dma_map_sgtable({a.dev}) = mappings {list(mids)}")
        return self._set_mapped(s, attach, True), mids

    def system_heap_unmap_dma_buf(
        self, s: KState, tid: Tid, attach: AttachId, sgt: SgtId, dir: DmaDataDirection
    ) -> KState:
        """system_heap_unmap_dma_buf - clear the mapped flag and dma_unmap_sgtable (resv held).

        drivers.md §5.1.
        """
        ps = dma_unmap_sgtable(platform(s), s.sg_tables[sgt].entries)
        return self._set_mapped(set_platform(s, ps), attach, False)

    def system_heap_dma_buf_begin_cpu_access(
        self, s: KState, tid: Tid, buf: BufId, dir: DmaDataDirection
    ) -> tuple[KState, int]:
        """system_heap_dma_buf_begin_cpu_access - sync every mapped attachment for the CPU.

        Called unlocked; invalidates the vmap range when vmapped. Cache maintenance has no
        effect in the model. Returns 0. drivers.md §5.1.
        """
        b = self.state(s).buffers[self._index(s, buf)]
        mapped = [a for a, m in b.attachments if m]
        emit(f"system_heap: dma_sync_sgtable_for_cpu on attachments {mapped}")
        return s, 0

    def system_heap_dma_buf_end_cpu_access(
        self, s: KState, tid: Tid, buf: BufId, dir: DmaDataDirection
    ) -> tuple[KState, int]:
        """system_heap_dma_buf_end_cpu_access - sync every mapped attachment for the device.

        Called unlocked. Returns 0. drivers.md §5.1.
        """
        b = self.state(s).buffers[self._index(s, buf)]
        mapped = [a for a, m in b.attachments if m]
        emit(f"system_heap: dma_sync_sgtable_for_device on attachments {mapped}")
        return s, 0

    def system_heap_mmap(
        self, s: KState, tid: Tid, buf: BufId, pgoff: int, npages: int
    ) -> tuple[KState, int]:
        """system_heap_mmap - remap_pfn_range of the buffer's pages into the vma (unlocked).

        The core has checked the bounds and takes the vma's file reference. Returns 0.
        drivers.md §5.1.
        """
        emit(f"system_heap_mmap: remap_pfn_range buf{buf} pages {pgoff}..{pgoff + npages - 1}")
        return s, 0

    def system_heap_vmap(self, s: KState, tid: Tid, buf: BufId) -> tuple[KState, int]:
        """system_heap_vmap - vmap the pages; the core calls it on the first user only.

        Called with the resv held (asserted, WARN #8). Returns a positive cookie standing for
        the kernel address. drivers.md §5.1.
        """
        s = dma_resv_assert_held(s, s.bufs[buf].resv, tid, "system_heap_vmap", invariant=8)
        return s, _VMAP_COOKIE_BASE + buf

    def system_heap_vunmap(self, s: KState, tid: Tid, buf: BufId, map: int) -> KState:
        """system_heap_vunmap - vunmap at the last user (resv held, asserted). drivers.md §5.1."""
        return dma_resv_assert_held(s, s.bufs[buf].resv, tid, "system_heap_vunmap", invariant=8)

    def system_heap_dma_buf_release(self, s: KState, tid: Tid, buf: BufId) -> KState:
        """system_heap_dma_buf_release - free the pages (the last reference is gone).

        Called unlocked from the final dma_buf_put. The RAM regions go back to the allocator
        (platform ram_free ends their generation), so an address kept past this point reaches
        reused memory. drivers.md §5.1.
        """
        i = self._index(s, buf)
        b = self.state(s).buffers[i]
        emit(f"system_heap_dma_buf_release: free pages of buf{buf}")
        s = self._free_chunks(s, b.chunks)
        return self._put_buffer(s, i, replace(self.state(s).buffers[i], freed=True))

    # -- boot and events -----------------------------------------------------------------------

    def _boot(self, s: KState, t: Thread) -> KState:
        ret: int = 0
        for _ in range(int(self.options["buffers"])):
            s, ret = self.dma_heap_ioctl_alloc(
                s, t.tid, int(self.options["size"]), fatal_signal=bool(self.options["fatal_signal"])
            )
            emit_call("DMA_HEAP_IOCTL_ALLOC", f"system, len={self.options['size']}", ret)
            if ret < 0:
                break
        return finish(s, t, ret=ret)

    def events(self) -> list[EnvEvent]:
        """close(2) of the first buffer's fd by userspace (budget ``close_budget``)."""
        return self.close_event(int(self.options["close_budget"]))


__all__ = [
    "DMA_HEAP_VALID_FD_FLAGS",
    "DMA_HEAP_VALID_HEAP_FLAGS",
    "SystemHeapBuffer",
    "SystemHeapExporter",
    "SystemHeapState",
]
