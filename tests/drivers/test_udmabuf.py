"""udmabuf: UDMABUF_CREATE(_LIST) checks, folio pinning, ops, release, and its importers.

drivers.md §5.2 (checks and errnos, pinned at creation, ops, no attach/pin, never invalidates)
and §7 ("udmabuf" row).
"""

from __future__ import annotations

from typing import Any

import pytest
from driver_helpers import boot, fire

from dmabuf_model.check import check
from dmabuf_model.drivers.base import platform
from dmabuf_model.drivers.compose import DmaBufSystem
from dmabuf_model.drivers.rdma_umem import MrState, RdmaPinnedImporter
from dmabuf_model.drivers.static_importer import StaticImporter
from dmabuf_model.drivers.udmabuf import (
    F_SEAL_FUTURE_WRITE,
    F_SEAL_GROW,
    F_SEAL_SHRINK,
    F_SEAL_WRITE,
    UDMABUF_FLAGS_CLOEXEC,
    UdmabufCreateItem,
    UdmabufExporter,
)
from dmabuf_model.kernel import errno
from dmabuf_model.kernel.dma_buf import (
    O_RDWR,
    DmaDataDirection,
    close_fd,
    dma_buf_attach,
    dma_buf_begin_cpu_access,
    dma_buf_end_cpu_access,
    dma_buf_map_attachment_unlocked,
    dma_buf_mmap,
    dma_buf_unmap_attachment_unlocked,
    dma_buf_vmap_unlocked,
    fd_lookup,
)
from dmabuf_model.kernel.state import Blocked, KState
from dmabuf_model.platform.dma import MappingState
from dmabuf_model.platform.oracle import FindingKind, findings_of
from dmabuf_model.platform.topology import Topology
from dmabuf_model.system.model import SystemModel, run_thread
from dmabuf_model.system.threads import world

BIDI = DmaDataDirection.BIDIRECTIONAL
TID = 99
PAGE = 4096


def udmabuf_alone(**opts: Any) -> tuple[DmaBufSystem, UdmabufExporter]:
    topo = Topology.simple(["nic0"], iommu=opts.pop("iommu", True), ram=opts.pop("ram", 3))
    system = DmaBufSystem(topo)
    u = system.add_exporter(UdmabufExporter, device="udmabuf", **opts)
    assert isinstance(u, UdmabufExporter)
    return system, u


def fresh_memfd(
    seals: int = F_SEAL_SHRINK, kind: Any = "shmem"
) -> tuple[UdmabufExporter, KState, int]:
    """A udmabuf driver with no boot buffer and one new memfd (returns its fd).

    The boot made memfd 0 and failed its zero-size UDMABUF_CREATE; the new memfd is index 1.
    """
    system, u = udmabuf_alone(size_pages=0)
    s = boot(system)
    assert u.buffers(s) == ()  # size 0 at boot: -EINVAL, nothing created
    s, memfd = u.memfd_create(s, seals=seals, kind=kind)
    assert memfd > 0 and len(u.state(s).memfds) == 2
    return u, s, memfd


# --- UDMABUF_CREATE ------------------------------------------------------------------------------


def test_boot_creates_a_udmabuf_over_a_sealed_memfd_and_pins_its_folios() -> None:
    """memfd + UDMABUF_CREATE: an O_RDWR dma-buf fd; the memfd's folios are pinned (§5.2)."""
    system, u = udmabuf_alone()
    s = boot(system)
    st = u.state(s)
    (m,) = st.memfds
    (b,) = st.buffers
    assert m.pins == 1 and m.open and fd_lookup(s, m.fd) == ("memfd", 0)
    assert b.folios == ((0, m.range, 0, 1),) and b.pinned == (0,)
    assert fd_lookup(s, b.fd) == ("dma_buf", b.buf)
    assert s.bufs[b.buf].file_flags == O_RDWR and s.bufs[b.buf].size == PAGE


@pytest.mark.parametrize(
    ("offset", "size", "expected"),
    [
        (1, PAGE, -errno.EINVAL),
        (0, PAGE + 1, -errno.EINVAL),
        (0, 0, -errno.EINVAL),
        (PAGE, 2 * PAGE, -errno.EINVAL),  # past the end of the 2-page memfd
    ],
    ids=["offset-unaligned", "size-unaligned", "zero-size", "past-memfd-end"],
)
def test_create_rejects_bad_ranges_with_einval(offset: int, size: int, expected: int) -> None:
    """Offset and size page aligned, a non-empty total, a range the memfd has (§5.2)."""
    u, s, memfd = fresh_memfd()
    s2, ret = u.udmabuf_ioctl_create(s, TID, memfd, offset, size)
    assert ret == expected and s2.bufs == () and u.state(s2).memfds[1].pins == 0


def test_create_larger_than_size_limit_mb_is_einval() -> None:
    """The total must stay within size_limit_mb (module parameter, default 64 MiB; §5.2)."""
    system, u = udmabuf_alone(size_pages=0, size_limit_mb=0)
    s = boot(system)
    s, memfd = u.memfd_create(s)
    _, ret = u.udmabuf_ioctl_create(s, TID, memfd, 0, PAGE)
    assert ret == -errno.EINVAL


def test_create_list_with_more_items_than_list_limit_is_einval() -> None:
    """UDMABUF_CREATE_LIST: count > list_limit (1024 by default) is -EINVAL (§5.2)."""
    system, u = udmabuf_alone(size_pages=0, list_limit=1)
    s = boot(system)
    s, memfd = u.memfd_create(s)
    item = UdmabufCreateItem(memfd, 0, PAGE)
    _, ret = u.udmabuf_ioctl_create_list(s, TID, (item, item))
    assert ret == -errno.EINVAL
    s2, fd = u.udmabuf_ioctl_create_list(s, TID, (item,))
    assert fd > 0 and u.state(s2).memfds[1].pins == 1


@pytest.mark.parametrize(
    ("seals", "expected"),
    [
        (0, -errno.EINVAL),
        (F_SEAL_GROW, -errno.EINVAL),
        (F_SEAL_SHRINK | F_SEAL_WRITE, -errno.EINVAL),
        (F_SEAL_SHRINK | F_SEAL_FUTURE_WRITE, -errno.EINVAL),
        (F_SEAL_SHRINK | F_SEAL_GROW, 5),
    ],
    ids=["no-seals", "no-shrink", "write", "future-write", "shrink-grow-ok"],
)
def test_seals_must_include_shrink_and_exclude_write(seals: int, expected: int) -> None:
    """F_SEAL_SHRINK wanted, F_SEAL_WRITE/FUTURE_WRITE denied, else -EINVAL (§5.2)."""
    u, s, memfd = fresh_memfd(seals=seals)
    _, ret = u.udmabuf_ioctl_create(s, TID, memfd, 0, PAGE)
    assert ret == expected


def test_a_file_that_is_not_a_memfd_is_ebadfd() -> None:
    """Neither shmem nor hugetlbfs: -EBADFD (§5.2); hugetlb is accepted."""
    u, s, memfd = fresh_memfd(kind="other")
    _, ret = u.udmabuf_ioctl_create(s, TID, memfd, 0, PAGE)
    assert ret == -errno.EBADFD
    u, s, memfd = fresh_memfd(kind="hugetlb")
    _, ret = u.udmabuf_ioctl_create(s, TID, memfd, 0, PAGE)
    assert ret > 0


def test_a_closed_fd_or_a_dma_buf_fd_is_ebadfd() -> None:
    """fget fails, or the file is a dma-buf and not a memfd: -EBADFD (§5.2)."""
    system, u = udmabuf_alone()
    s = boot(system)
    b = u.state(s).buffers[0]
    _, ret = u.udmabuf_ioctl_create(s, TID, b.fd, 0, PAGE)
    assert ret == -errno.EBADFD
    _, ret = u.udmabuf_ioctl_create(s, TID, 42, 0, PAGE)
    assert ret == -errno.EBADFD


def test_an_error_on_a_later_item_unpins_the_earlier_ones() -> None:
    """CREATE_LIST: a failing second item leaves no pin behind (deinit_udmabuf, §5.2)."""
    u, s, memfd = fresh_memfd()
    s, bad = u.memfd_create(s, seals=0)
    items = (UdmabufCreateItem(memfd, 0, PAGE), UdmabufCreateItem(bad, 0, PAGE))
    s2, ret = u.udmabuf_ioctl_create_list(s, TID, items)
    assert ret == -errno.EINVAL
    assert [m.pins for m in u.state(s2).memfds] == [0, 0, 0]


def test_cloexec_flag_and_list_of_two_ranges() -> None:
    """Two ranges make one buffer of their total size; CLOEXEC is accepted (§5.2)."""
    u, s, memfd = fresh_memfd()
    items = (UdmabufCreateItem(memfd, 0, PAGE), UdmabufCreateItem(memfd, PAGE, PAGE))
    s, fd = u.udmabuf_ioctl_create_list(s, TID, items, flags=UDMABUF_FLAGS_CLOEXEC)
    assert fd > 0 and s.bufs[0].size == 2 * PAGE
    assert u.state(s).memfds[1].pins == 2


# --- ops -----------------------------------------------------------------------------------------


def test_udmabuf_has_no_attach_detach_pin_or_unpin() -> None:
    """No attach, detach, pin, unpin ops; never invalidates (drivers.md §5.2)."""
    _, u = udmabuf_alone()
    ops = u.dma_buf_ops()
    assert (ops.attach, ops.detach, ops.pin, ops.unpin) == (None, None, None, None)
    assert u.takeback is None


def test_every_map_builds_and_dma_maps_a_fresh_table() -> None:
    """map_udmabuf maps anew on each call; unmap undoes just that table (§5.2)."""
    system, _ = udmabuf_alone()
    s = boot(system)
    r = dma_buf_attach(s, TID, 0, "nic0")
    assert not isinstance(r, Blocked)
    s, attach = r
    m1 = dma_buf_map_attachment_unlocked(s, TID, attach, BIDI)
    assert not isinstance(m1, Blocked)
    m2 = dma_buf_map_attachment_unlocked(m1[0], TID, attach, BIDI)
    assert not isinstance(m2, Blocked)
    s = m2[0]
    assert s.sg_tables[m1[1]].entries == (0,) and s.sg_tables[m2[1]].entries == (1,)
    u = dma_buf_unmap_attachment_unlocked(s, TID, attach, m1[1], BIDI)
    assert isinstance(u, KState)
    states = [m.state for m in platform(u).mappings]
    assert states == [MappingState.UNMAPPED, MappingState.LIVE]


def test_mmap_must_be_shared() -> None:
    """mmap_udmabuf: a private mapping is -EINVAL, a shared one 0 (§5.2)."""
    system, u = udmabuf_alone()
    s = boot(system)
    _, ret = u.udmabuf_mmap(s, TID, 0, 0, 1, vm_shared=False)
    assert ret == -errno.EINVAL
    _, ret = dma_buf_mmap(s, TID, 0, 0, 1)  # ops.mmap: a MAP_SHARED vma
    assert ret == 0


def test_end_cpu_access_without_begin_is_einval() -> None:
    """end_cpu_udmabuf fails until begin_cpu_udmabuf made the misc-device table (§5.2)."""
    system, u = udmabuf_alone()
    s = boot(system)
    _, ret = dma_buf_end_cpu_access(s, TID, 0, BIDI)
    assert ret == -errno.EINVAL
    b = dma_buf_begin_cpu_access(s, TID, 0, BIDI)
    assert not isinstance(b, Blocked) and b[1] == 0
    assert u.state(b[0]).buffers[0].cpu_sg
    _, ret = dma_buf_end_cpu_access(b[0], TID, 0, BIDI)
    assert ret == 0


def test_vmap_needs_the_resv_and_returns_a_mapping() -> None:
    """vmap_udmabuf runs with the resv held (the core takes it); no warning (§5.2)."""
    system, _ = udmabuf_alone()
    v = dma_buf_vmap_unlocked(boot(system), TID, 0)
    assert not isinstance(v, Blocked)
    assert v[1] > 0 and v[0].warnings == ()


# --- pinning and release -------------------------------------------------------------------------


def test_closing_the_memfd_keeps_pinned_pages_until_release() -> None:
    """The pins hold the pages after close(memfd); release unpins and frees them (§5.2)."""
    system, u = udmabuf_alone()
    s = boot(system)
    m = u.state(s).memfds[0]
    s, ret = u.memfd_close(s, TID, m.fd)
    assert ret == 0 and platform(s).ranges[m.range].allocated
    s, _ = close_fd(s, TID, u.state(s).buffers[0].fd)
    assert s.bufs[0].released and u.state(s).memfds[0].freed
    assert not platform(s).ranges[m.range].allocated


def test_release_with_the_memfd_open_frees_nothing() -> None:
    """The memfd still owns its pages after the udmabuf's release (§5.2)."""
    system, u = udmabuf_alone()
    s = boot(system)
    s, _ = close_fd(s, TID, u.state(s).buffers[0].fd)
    m = u.state(s).memfds[0]
    assert m.pins == 0 and not m.freed and platform(s).ranges[m.range].allocated
    s, _ = u.memfd_close(s, TID, m.fd)
    assert u.state(s).memfds[0].freed


# --- with importers ------------------------------------------------------------------------------


def pair(importer: type[Any], *, iommu: bool = False, **exp: Any) -> tuple[SystemModel, Any]:
    topo = Topology.simple(["nic0"], iommu=iommu, ram=1)
    system = DmaBufSystem(topo)
    u = system.add_exporter(UdmabufExporter, device="udmabuf", **exp)
    kw: dict[str, Any] = {"dereg_budget": 0} if importer is RdmaPinnedImporter else {}
    imp = system.add_importer(importer, device="nic0", source=u, **kw)
    return system.model(), imp


def test_udmabuf_and_static_importer_keep_every_property() -> None:
    """Exhaustive: closes of the fd and the memfd at any time; no violation (§5.2, §7)."""
    model, _ = pair(StaticImporter)
    result = check(model)
    result.assert_properties()
    assert result.stats.unique == 464


def test_without_pinning_a_closed_memfd_frees_pages_the_importer_still_uses() -> None:
    """Broken variant pin_at_create=False: close(memfd) frees the pages under the dma-buf.

    Why udmabuf pins at creation (drivers.md §5.2); the oracle reports dma_after_reuse.
    """
    model, _ = pair(StaticImporter, pin_at_create=False)
    result = check(model)
    path = result.discovery("no_dma_violation")
    assert path is not None
    assert str(path.actions[0]) == "env: udmabuf: close(memfd)"
    assert findings_of(platform(path.states[-1]), FindingKind.DMA_AFTER_REUSE)


def test_rdma_pinned_on_udmabuf_registers_and_accesses() -> None:
    """rdma-pinned on udmabuf: "pinned/static" cell of drivers.md §7; pin is a core no-op."""
    model, rdma = pair(RdmaPinnedImporter, close_budget=0, close_memfd_budget=0)
    s, tid = fire(model, model.init_states()[0], "rdma-pinned: ibv_reg_dmabuf_mr")
    s = run_thread(s, tid)
    assert rdma.state(s).mr is MrState.ACTIVE and s.attachments[0].pins == 1
    s, tid = fire(model, s, "rdma-pinned: NIC accesses the MR")
    s = run_thread(s, tid)
    for t in world(s).threads:
        if not t.done:
            s = run_thread(s, t.tid)
    assert rdma.state(s).accesses == 1 and platform(s).findings == ()


@pytest.mark.parametrize("kind", ["rdma-odp", "rdma-pinned", "rdma-pinned-revocable"])
def test_every_rdma_mode_registers_accesses_and_deregisters_on_udmabuf(kind: str) -> None:
    """udmabuf x RDMA: "static" / "pinned/static" cells of drivers.md §7; nothing revokes."""
    from dmabuf_model.drivers import importer_class

    topo = Topology.simple(["nic0"], iommu=False, ram=1)
    system = DmaBufSystem(topo)
    u = system.add_exporter(UdmabufExporter, device="udmabuf", close_memfd_budget=0)
    rdma = system.add_importer(importer_class(kind), device="nic0", source=u)
    model = system.model()
    s = model.init_states()[0]
    for what in ("ibv_reg_dmabuf_mr", "NIC accesses the MR", "ibv_dereg_mr"):
        s, tid = fire(model, s, f"{kind}: {what}")
        s = run_thread(s, tid)
        assert world(s).threads[tid].local("ret") == 0, what
        for t in world(s).threads:
            if not t.done:
                s = run_thread(s, t.tid)
    assert rdma.state(s).accesses == 1 and rdma.state(s).invalidations == 0
    assert s.attachments[0].detached and platform(s).findings == () and s.warnings == ()


def test_iommufd_cannot_map_a_udmabuf() -> None:
    """MAP_FILE of a udmabuf is -EOPNOTSUPP: pass the memfd instead (drivers.md §5.2, §7)."""
    from dmabuf_model.drivers.iommufd import IommufdImporter

    topo = Topology.simple(["gpu1"], non_pci=["iommufd"], ram=1)
    system = DmaBufSystem(topo)
    u = system.add_exporter(UdmabufExporter, device="udmabuf")
    system.add_importer(IommufdImporter, device="iommufd", source=u, dma_device="gpu1")
    model = system.model()
    s, tid = fire(model, model.init_states()[0], "iommufd: IOMMU_IOAS_MAP_FILE")
    s = run_thread(s, tid)
    assert world(s).threads[tid].local("ret") == -errno.EOPNOTSUPP


@pytest.mark.parametrize(
    ("importer", "submit"),
    [("amdgpu", "amdgpu: amdgpu_cs_ioctl"), ("xe", "xe: xe_exec_ioctl")],
)
def test_gpu_importers_map_a_udmabuf_statically(importer: str, submit: str) -> None:
    """amdgpu/xe import a udmabuf: "static" cells of drivers.md §7; properties hold."""
    from dmabuf_model.drivers import importer_class

    topo = Topology.simple(["gpu1"], ram=1)
    system = DmaBufSystem(topo)
    u = system.add_exporter(UdmabufExporter, device="udmabuf", close_budget=0, close_memfd_budget=0)
    system.add_importer(importer_class(importer), device="gpu1", source=u)
    model = system.model()
    s, tid = fire(model, model.init_states()[0], submit)
    s = run_thread(s, tid)
    assert world(s).threads[tid].local("ret") == 0 and len(platform(s).transfers) == 1
    check(model).assert_properties()
