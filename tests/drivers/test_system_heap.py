"""The system heap exporter: DMA_HEAP_IOCTL_ALLOC, its ops, release, and its importers.

drivers.md §5.1 (allocation, ops, never invalidates), §7 ("system heap" row), dma-heap.c's
ioctl checks; the pages go back to the allocator only at the last dma_buf_put.
"""

from __future__ import annotations

from typing import Any

import pytest
from driver_helpers import boot, fire, job_ret, run_engines, run_thread_until_blocked

from dmabuf_model.check import check
from dmabuf_model.check.model import Property
from dmabuf_model.drivers.base import platform
from dmabuf_model.drivers.compose import DmaBufSystem
from dmabuf_model.drivers.device_dma import device_dma_submit
from dmabuf_model.drivers.rdma_umem import (
    MrState,
    RdmaOdpImporter,
    RdmaPinnedImporter,
    RdmaPinnedRevocableImporter,
)
from dmabuf_model.drivers.static_importer import StaticImporter
from dmabuf_model.drivers.system_heap import SystemHeapBuffer, SystemHeapExporter
from dmabuf_model.kernel import errno
from dmabuf_model.kernel.dma_buf import (
    O_CLOEXEC,
    O_RDWR,
    DmaDataDirection,
    close_fd,
    dma_buf_attach,
    dma_buf_begin_cpu_access,
    dma_buf_detach,
    dma_buf_end_cpu_access,
    dma_buf_map_attachment_unlocked,
    dma_buf_mmap,
    dma_buf_put,
    dma_buf_unmap_attachment_unlocked,
    dma_buf_vmap_unlocked,
    dma_buf_vunmap_unlocked,
    fd_lookup,
)
from dmabuf_model.kernel.state import Blocked, KState
from dmabuf_model.platform.dma import DmaPath, MappingState
from dmabuf_model.platform.oracle import FindingKind, findings_of
from dmabuf_model.platform.topology import Topology
from dmabuf_model.system.model import run_thread
from dmabuf_model.system.threads import world

BIDI = DmaDataDirection.BIDIRECTIONAL
TID = 99  # a caller thread id for direct kernel calls (no lock is contended)


def heap_alone(**opts: Any) -> tuple[DmaBufSystem, SystemHeapExporter]:
    topo = Topology.simple(["nic0"], iommu=opts.pop("iommu", True), ram=opts.pop("ram", 2))
    system = DmaBufSystem(topo)
    heap = system.add_exporter(SystemHeapExporter, device="system", **opts)
    assert isinstance(heap, SystemHeapExporter)
    return system, heap


# --- DMA_HEAP_IOCTL_ALLOC ------------------------------------------------------------------------


def test_boot_allocation_exports_a_buffer_with_an_fd_over_system_ram() -> None:
    """DMA_HEAP_IOCTL_ALLOC takes RAM pages, exports and installs an fd (drivers.md §5.1)."""
    system, heap = heap_alone()
    s = boot(system)
    (b,) = heap.state(s).buffers
    assert b == SystemHeapBuffer(buf=0, fd=3, chunks=((0, 1),))
    assert fd_lookup(s, 3) == ("dma_buf", 0)
    assert s.bufs[0].size == 4096 and s.bufs[0].exp_name == "system"
    assert platform(s).ranges[0].allocated and not platform(s).ranges[1].allocated
    assert heap.buffers(s) == (0,)


def test_allocation_length_is_page_aligned_and_spans_chunks() -> None:
    """A 3-page request is rounded to pages and takes two 2-page RAM regions (§5.1)."""
    system, heap = heap_alone(size=2 * 4096 + 1)
    s = boot(system)
    assert s.bufs[0].size == 3 * 4096
    assert heap.state(s).buffers[0].chunks == ((0, 2), (1, 1))


@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        ({"fd": 5}, -errno.EINVAL),
        ({"fd_flags": O_RDWR | 0o4000}, -errno.EINVAL),
        ({"heap_flags": 1}, -errno.EINVAL),
        ({"length": 0}, -errno.EINVAL),
        ({"fatal_signal": True}, -errno.EINTR),
        ({"length": 5 * 4096}, -errno.ENOMEM),
    ],
    ids=["fd-not-zero", "bad-fd-flags", "heap-flags", "zero-length", "fatal-signal", "no-ram"],
)
def test_alloc_errors_leave_no_buffer_and_no_pages_taken(kw: dict[str, Any], expected: int) -> None:
    """dma-heap.c's checks (-EINVAL), a fatal signal (-EINTR), no free RAM (-ENOMEM).

    drivers.md §5.1 (EINTR in newer code); the pages already taken go back.
    """
    system, heap = heap_alone(buffers=0)
    s = boot(system)
    length = kw.pop("length", 4096)
    s2, ret = heap.dma_heap_ioctl_alloc(s, TID, length, **kw)
    assert ret == expected
    assert heap.state(s2).buffers == () and s2.bufs == ()
    assert all(not r.allocated for r in platform(s2).ranges[:2])


def test_fatal_signal_at_boot_leaves_the_heap_without_buffers() -> None:
    """Option fatal_signal: the boot ioctl fails with -EINTR (drivers.md §5.1)."""
    system, heap = heap_alone(fatal_signal=True)
    s = boot(system)
    assert heap.buffers(s) == () and world(s).threads[0].local("ret") == -errno.EINTR


def test_fd_flags_keep_cloexec_out_of_the_file_flags() -> None:
    """O_RDWR|O_CLOEXEC are valid fd flags; the file keeps O_ACCMODE (core-semantics §5.1)."""
    system, heap = heap_alone(buffers=0)
    s, fd = heap.dma_heap_ioctl_alloc(boot(system), TID, 4096, fd_flags=O_RDWR | O_CLOEXEC)
    assert fd == 3 and s.bufs[0].file_flags == O_RDWR


# --- ops -----------------------------------------------------------------------------------------


def test_heap_has_no_pin_and_pin_is_a_core_no_op() -> None:
    """No pin/unpin ops: never moves; dma_buf_pin returns 0 without calling anything (§5.1)."""
    _system, heap = heap_alone()
    ops = heap.dma_buf_ops()
    assert ops.pin is None and ops.unpin is None and heap.takeback is None
    assert ops.attach is not None and ops.detach is not None and ops.mmap is not None


def test_attach_keeps_a_table_copy_and_map_marks_it_mapped_on_attach_dev() -> None:
    """attach dups the table, map dma-maps it onto attach->dev and marks it mapped (§5.1)."""
    system, heap = heap_alone()
    s = boot(system)
    r = dma_buf_attach(s, TID, 0, "nic0")
    assert not isinstance(r, Blocked)
    s, attach = r
    assert heap.state(s).buffers[0].attachments == ((attach, False),)
    m = dma_buf_map_attachment_unlocked(s, TID, attach, BIDI)
    assert not isinstance(m, Blocked)
    s, sgt = m
    assert s.sg_tables[sgt].entries == (0,)
    mapping = platform(s).mappings[0]
    assert mapping.dev == "nic0" and mapping.range == 0 and mapping.path is DmaPath.IOVA
    assert heap.state(s).buffers[0].attachments == ((attach, True),)
    u = dma_buf_unmap_attachment_unlocked(s, TID, attach, sgt, BIDI)
    assert isinstance(u, KState)
    assert platform(u).mappings[0].state is MappingState.UNMAPPED
    assert heap.state(u).buffers[0].attachments == ((attach, False),)
    d = dma_buf_detach(u, TID, 0, attach)
    assert isinstance(d, KState) and heap.state(d).buffers[0].attachments == ()


def test_attach_fails_with_enomem_when_the_table_copy_fails() -> None:
    """Option attach_enomem: dma_buf_attach returns -ENOMEM, nothing listed (§5.1)."""
    system, _ = heap_alone(attach_enomem=True)
    r = dma_buf_attach(boot(system), TID, 0, "nic0")
    assert not isinstance(r, Blocked)
    s, ret = r
    assert ret == -errno.ENOMEM and s.bufs[0].attachments == ()


def test_map_onto_a_device_that_cannot_dma_fails_with_einval() -> None:
    """dma_map_sgtable onto a non-PCI device fails; the map error propagates (§5.1)."""
    topo = Topology.simple(["nic0"], non_pci=["misc"])
    system = DmaBufSystem(topo)
    system.add_exporter(SystemHeapExporter, device="system")
    s = boot(system)
    r = dma_buf_attach(s, TID, 0, "misc")
    assert not isinstance(r, Blocked)
    m = dma_buf_map_attachment_unlocked(r[0], TID, r[1], BIDI)
    assert not isinstance(m, Blocked) and m[1] == -errno.EINVAL


def test_cpu_access_mmap_and_vmap_succeed() -> None:
    """begin/end_cpu_access sync, mmap remaps, vmap is refcounted by the core (§5.1)."""
    system, _ = heap_alone()
    s = boot(system)
    b = dma_buf_begin_cpu_access(s, TID, 0, BIDI)
    assert not isinstance(b, Blocked) and b[1] == 0
    s, ret = dma_buf_end_cpu_access(b[0], TID, 0, BIDI)
    assert ret == 0
    s, ret = dma_buf_mmap(s, TID, 0, 0, 1)
    assert ret == 0 and s.bufs[0].file_refcount == 2  # the vma's reference
    v = dma_buf_vmap_unlocked(s, TID, 0)
    assert not isinstance(v, Blocked)
    s, cookie = v
    assert cookie > 0 and s.bufs[0].vmapping_counter == 1
    u = dma_buf_vunmap_unlocked(s, TID, 0, cookie)
    assert isinstance(u, KState) and u.bufs[0].vmapping_counter == 0 and u.warnings == ()


def test_release_frees_the_pages_so_a_late_dma_is_dma_after_reuse() -> None:
    """The last dma_buf_put frees the pages (ram_free); a kept bus address then hits reuse.

    drivers.md §5.1 (release frees the pages); platform oracle "dma_after_reuse".
    """
    system, heap = heap_alone(iommu=False)
    s = boot(system)
    r = dma_buf_attach(s, TID, 0, "nic0")
    assert not isinstance(r, Blocked)
    s, attach = r
    m = dma_buf_map_attachment_unlocked(s, TID, attach, BIDI)
    assert not isinstance(m, Blocked)
    s, sgt = m
    s, xid = device_dma_submit(s, system.topology, "nic0", 0, write=True)
    assert xid == 0
    u = dma_buf_unmap_attachment_unlocked(s, TID, attach, sgt, BIDI)
    assert isinstance(u, KState)
    d = dma_buf_detach(u, TID, 0, attach)
    assert isinstance(d, KState)
    s, _ = close_fd(d, TID, 3)
    assert s.bufs[0].released and heap.state(s).buffers[0].freed
    assert not platform(s).ranges[0].allocated and platform(s).ranges[0].gen == 1
    s = run_engines(s)
    assert findings_of(platform(s), FindingKind.DMA_AFTER_REUSE)


def test_release_waits_for_the_last_reference_not_for_the_fd() -> None:
    """Closing the fd while an importer holds a reference frees nothing (core-semantics §5.2)."""
    system, _heap = heap_alone()
    s = boot(system)
    r = dma_buf_attach(s, TID, 0, "nic0")
    assert not isinstance(r, Blocked)
    s = r[0]
    from dmabuf_model.kernel.dma_buf import get_dma_buf

    s = get_dma_buf(s, 0)
    s, _ = close_fd(s, TID, 3)
    assert not s.bufs[0].released and platform(s).ranges[0].allocated
    d = dma_buf_detach(s, TID, 0, r[1])
    assert isinstance(d, KState)
    s = dma_buf_put(d, TID, 0)
    assert s.bufs[0].released and not platform(s).ranges[0].allocated


# --- with importers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "importer", [RdmaOdpImporter, RdmaPinnedImporter, RdmaPinnedRevocableImporter]
)
def test_rdma_importers_register_access_and_deregister_on_the_heap(importer: type[Any]) -> None:
    """Each RDMA mode works on the heap's normal map path; nothing is invalidated.

    drivers.md §7 "system heap" row (static; pinned/static); §3.3.
    """
    topo = Topology.simple(["nic0"], iommu=False)
    system = DmaBufSystem(topo)
    heap = system.add_exporter(SystemHeapExporter, device="system")
    rdma = system.add_importer(importer, device="nic0", source=heap)
    model = system.model()
    s = model.init_states()[0]
    name = rdma.name
    s, tid = fire(model, s, f"{name}: ibv_reg_dmabuf_mr")
    s = run_thread(s, tid)
    assert job_ret(s, tid) == 0 and rdma.state(s).mr is MrState.ACTIVE
    s, tid = fire(model, s, f"{name}: NIC accesses the MR")
    s = run_engines(run_thread(s, tid))
    assert job_ret(s, tid) == 0 and rdma.state(s).accesses == 1
    s, tid = fire(model, s, f"{name}: ibv_dereg_mr")
    s = run_thread(s, tid)
    assert rdma.state(s).mr is MrState.RELEASED and s.attachments[0].detached
    assert rdma.state(s).invalidations == 0
    # ib_umem_release goes through ib_umem_dmabuf_revoke_locked: irdma's callback runs once.
    expected_cb = 1 if importer is RdmaPinnedRevocableImporter else 0
    assert rdma.state(s).revoke_cb_calls == expected_cb
    assert platform(s).findings == () and s.warnings == ()
    assert heap.state(s).buffers[0].freed is False  # userspace still holds the fd


def test_heap_never_invalidates_a_dynamic_importer_in_any_interleaving() -> None:
    """Exhaustive: heap x rdma-odp with close at any time; the callback never runs (§5.1)."""
    topo = Topology.simple(["nic0"], iommu=False)
    system = DmaBufSystem(topo)
    heap = system.add_exporter(SystemHeapExporter, device="system")
    rdma = system.add_importer(RdmaOdpImporter, device="nic0", source=heap, dereg_budget=0)
    assert isinstance(rdma, RdmaOdpImporter)
    system.extra_properties += [
        Property.always("never_invalidated", lambda s: rdma.state(s).invalidations == 0),
        Property.sometimes("accessed", lambda s: rdma.state(s).accesses > 0),
    ]
    result = check(system.model())
    result.assert_properties()


def test_static_job_on_a_closed_heap_buffer_cannot_reach_freed_pages() -> None:
    """Scripted: the fd closed after the import took its reference, then the job ends: the
    release happens at the importer's dma_buf_put, after its DMA (core-semantics §5.2)."""
    topo = Topology.simple(["disp0"], iommu=False)
    system = DmaBufSystem(topo)
    heap = system.add_exporter(SystemHeapExporter, device="system")
    system.add_importer(StaticImporter, device="disp0", source=heap)
    model = system.model()
    s, job = fire(model, model.init_states()[0], "static: import job")
    out = run_step_ok(s, job)
    s, close = fire(model, out, "system-heap: close(dma-buf fd)")
    s = run_thread(s, close)
    assert not s.bufs[0].released
    s = run_engines(run_thread_until_blocked(s, job))
    s = run_thread(s, job)
    assert s.bufs[0].released and heap.state(s).buffers[0].freed
    assert platform(s).findings == ()


def run_step_ok(s: KState, tid: int) -> KState:
    from dmabuf_model.system.model import run_step

    out = run_step(s, world(s).threads[tid])
    assert isinstance(out, KState)
    return out


def test_a_second_allocation_takes_the_next_free_region_and_fd() -> None:
    """Each DMA_HEAP_IOCTL_ALLOC is a new buffer over fresh pages (drivers.md §5.1)."""
    system, heap = heap_alone()
    s, fd = heap.dma_heap_ioctl_alloc(boot(system), TID, 4096)
    assert fd == 4 and heap.buffers(s) == (0, 1)
    assert heap.state(s).buffers[1].chunks == ((1, 1),)


# --- with the other drivers' importers (drivers.md §7 "system heap" row) -------------------------


def test_iommufd_cannot_map_a_heap_buffer() -> None:
    """iommufd only understands VFIO buffers: MAP_FILE of a heap buffer is -EOPNOTSUPP (§2.1)."""
    from dmabuf_model.drivers.iommufd import IommufdImporter

    topo = Topology.simple(["gpu1"], non_pci=["iommufd"])
    system = DmaBufSystem(topo)
    heap = system.add_exporter(SystemHeapExporter, device="system", close_budget=0)
    system.add_importer(IommufdImporter, device="iommufd", source=heap, dma_device="gpu1")
    model = system.model()
    s, tid = fire(model, model.init_states()[0], "iommufd: IOMMU_IOAS_MAP_FILE")
    s = run_thread(s, tid)
    assert job_ret(s, tid) == -errno.EOPNOTSUPP and s.attachments[0].detached


@pytest.mark.parametrize(
    ("importer", "submit"),
    [("amdgpu", "amdgpu: amdgpu_cs_ioctl"), ("xe", "xe: xe_exec_ioctl")],
)
def test_gpu_importers_map_the_heap_buffer_statically(importer: str, submit: str) -> None:
    """amdgpu/xe import a heap buffer: the submission maps it and the job DMAs; the heap
    never invalidates ("static" cells of drivers.md §7). Every property holds."""
    from dmabuf_model.drivers import importer_class

    topo = Topology.simple(["gpu1"])
    system = DmaBufSystem(topo)
    heap = system.add_exporter(SystemHeapExporter, device="system", close_budget=0)
    system.add_importer(importer_class(importer), device="gpu1", source=heap)
    model = system.model()
    s, tid = fire(model, model.init_states()[0], submit)
    s = run_thread(s, tid)
    assert job_ret(s, tid) == 0
    (xfer,) = platform(s).transfers
    assert xfer.dev == "gpu1" and platform(s).mappings[xfer.mapping].range == 0
    check(model).assert_properties()
