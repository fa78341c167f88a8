"""The iommufd importer: IOMMU_IOAS_MAP_FILE of a VFIO dma-buf, revoke, release, errnos.

drivers.md §2 (§2.1 the MAP_FILE flow and its errnos, §2.2 iopt_revoke_notify, no restore,
IOAS unmap and release with the 2026 resv-around-unpin fix, §2.3 the callback table and lock
order), §1.2 (the private interconnect) and §7 (iommufd column of the matrix).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, cast

import pytest
from driver_helpers import run, settle

from dmabuf_model.check import check
from dmabuf_model.drivers.base import DriverError, platform
from dmabuf_model.drivers.compose import DmaBufSystem
from dmabuf_model.drivers.iommufd import IommufdImporter, IoptArea
from dmabuf_model.drivers.system_heap import SystemHeapExporter
from dmabuf_model.drivers.udmabuf import UdmabufExporter
from dmabuf_model.drivers.vfio_pci import VfioDmaBufStatus, VfioPciExporter
from dmabuf_model.kernel import errno
from dmabuf_model.kernel.dma_buf import (
    PAGE_SIZE,
    DmaBufOps,
    dma_buf_attach_revocable,
)
from dmabuf_model.kernel.state import KState
from dmabuf_model.platform.dma import TransferStatus
from dmabuf_model.platform.iommu import iommu_lookup
from dmabuf_model.platform.oracle import FindingKind, findings_of, no_dma_violation
from dmabuf_model.platform.topology import Topology
from dmabuf_model.system.model import EnvStep, SystemModel, ThreadStep, run_step, run_thread
from dmabuf_model.system.threads import spawn, world

DOMAIN = 2
"""The IOAS's domain: functions vfio0 and gpu0 have default domains 0 and 1."""


def pair(
    *, vfio: dict[str, Any] | None = None, **opts: Any
) -> tuple[DmaBufSystem, VfioPciExporter, IommufdImporter]:
    """vfio0's BAR0 exported by vfio-pci, imported by iommufd for gpu0's DMA (one switch)."""
    topo = Topology.simple(["vfio0", "gpu0"], non_pci=["iommufd"])
    system = DmaBufSystem(topo)
    exp = cast(
        VfioPciExporter, system.add_exporter(VfioPciExporter, device="vfio0", **(vfio or {}))
    )
    opts.setdefault("dma_device", "gpu0")
    imp = cast(
        IommufdImporter,
        system.add_importer(IommufdImporter, device="iommufd", source=exp, **opts),
    )
    return system, exp, imp


def area0(imp: IommufdImporter, s: KState) -> IoptArea:
    return imp.state(s).areas[0]


def mapped(**kw: Any) -> tuple[DmaBufSystem, VfioPciExporter, IommufdImporter, KState]:
    system, exp, imp = pair(**kw)
    s, ret = run(system.initial_state(), imp.map_file_program())
    assert ret == 0
    return system, exp, imp, s


def iova_translates(s: KState, domain: int, iova: int) -> bool:
    return iommu_lookup(platform(s), domain, iova) is not None


# --- §2.1 IOMMU_IOAS_MAP_FILE ---------------------------------------------------------------------


def test_map_file_attaches_pins_and_maps_the_bar_into_the_ioas_domain() -> None:
    """Dynamic attach with the misc device, allow_peer2peer and iopt_revoke_notify; pin under
    the resv; the private range; iommu_map into the IOAS domain. No sg_table (§2.1, §2.3)."""
    system, _, imp, s = mapped()
    a = s.attachments[0]
    assert (a.dev, a.peer2peer, a.pins) == ("iommufd", True, 1)
    assert a.importer_ops is not None and a.importer_ops.name == "iopt_dmabuf_attach_revoke_ops"
    assert dma_buf_attach_revocable(s, 0) and s.sg_tables == ()
    bar = system.topology.bar("vfio0")
    assert area0(imp, s) == IoptArea(
        buf=0, attach=0, mutex=1, phys=(bar, 0, 2), npages=2, iova=0, domains=(DOMAIN,)
    )
    for iova in (0, 1):
        pte = iommu_lookup(platform(s), DOMAIN, iova)
        assert pte is not None and (pte.range, pte.page, pte.mapping) == (bar, iova, -1)
    assert s.bufs[0].file_refcount == 2  # the fd and iommufd's dma_buf_get reference
    assert imp.state(s).device_iova == 0 and not s.warnings


@pytest.mark.parametrize(
    ("local", "fd_entry", "expected"),
    [
        ({"fd": 99}, None, -errno.EBADF),
        ({"fd": 42}, (42, "sync_file", 0), -errno.EINVAL),
        ({"length": 0}, None, -errno.EINVAL),
        ({"start": PAGE_SIZE, "length": 2 * PAGE_SIZE}, None, -errno.EINVAL),
        ({"start": 100, "length": PAGE_SIZE}, None, -errno.EINVAL),
    ],
)
def test_map_file_rejects_bad_fds_and_ranges_before_attaching(
    local: dict[str, Any], fd_entry: tuple[int, str, int] | None, expected: int
) -> None:
    """dma_buf_get's -EBADF/-EINVAL; length 0, past the buffer or unaligned: -EINVAL, and the
    temporary reference is dropped (§2.1 step 1)."""
    system, _, imp = pair()
    s = system.initial_state()
    if fd_entry is not None:
        s = s.evolve(fd_table=(*s.fd_table, fd_entry))
    s, ret = run(s, imp.map_file_program(), **local)
    assert ret == expected
    assert s.attachments == () and s.bufs[0].file_refcount == 1


def _other_exporter(system: DmaBufSystem) -> Any:
    """A static exporter that is not VFIO (system heap-like, no attach or pin op)."""
    from dmabuf_model.drivers.base import Exporter
    from dmabuf_model.kernel.dma_buf import dma_buf_export, dma_buf_fd

    class Other(Exporter):
        kind = "other"

        def dma_buf_ops(self) -> DmaBufOps:
            return DmaBufOps(
                "other_ops",
                map_dma_buf=lambda s, t, a, d: (s, ()),
                unmap_dma_buf=lambda s, t, a, g, d: s,
                release=lambda s, t, b: s,
            )

        def setup(self, s: KState) -> KState:
            s, buf = dma_buf_export(s, 0, ops=self.dma_buf_ops(), size=PAGE_SIZE, priv="x")
            s, _ = dma_buf_fd(s, 0, buf, 0)
            return s

        def buffers(self, s: KState) -> tuple[int, ...]:
            return (0,)

    return system.add_exporter(Other, device="heap")


def test_map_file_of_a_non_vfio_buffer_is_eopnotsupp_and_undone() -> None:
    """Attach and pin succeed, the private map refuses it; unpin, detach and put (§2.1 step 4,
    §7: every non-VFIO exporter in the iommufd column)."""
    topo = Topology.simple(["gpu0"], non_pci=["iommufd"])
    system = DmaBufSystem(topo)
    other = _other_exporter(system)
    imp = cast(
        IommufdImporter, system.add_importer(IommufdImporter, device="iommufd", source=other)
    )
    s, ret = run(system.initial_state(), imp.map_file_program())
    assert ret == -errno.EOPNOTSUPP
    a = s.attachments[0]
    assert a.detached and a.pins == 0 and s.bufs[0].file_refcount == 1
    assert imp.state(s).areas == () and not s.warnings


def test_map_file_of_a_multi_range_vfio_buffer_is_eopnotsupp() -> None:
    """More than one range needs a real interconnect: -EOPNOTSUPP (§1.2, §2.1 step 4)."""
    system, _, imp = pair(vfio={"nr_ranges": 2})
    s, ret = run(system.initial_state(), imp.map_file_program())
    assert ret == -errno.EOPNOTSUPP and s.attachments[0].detached


def test_map_file_of_a_revoked_buffer_is_enodev_at_attach_or_at_the_private_map() -> None:
    """Revoked before the attach: VFIO's attach says -ENODEV. Revoked between attach and pin:
    the private map says -ENODEV and the import is undone (§2.2, §1.2)."""
    system, _, imp = pair(vfio={"memory_enabled_at_boot": False})
    s, ret = run(system.initial_state(), imp.map_file_program())
    assert ret == -errno.ENODEV and s.attachments[0].detached
    system, exp, imp = pair()
    s, tid = spawn(system.initial_state(), imp.map_file_program())
    out = run_step(s, world(s).threads[tid])
    assert isinstance(out, KState)
    s, rev = spawn(out, exp.op_program("mem_off"))  # attached, nothing mapped yet
    s = settle(run_thread(s, rev))
    assert world(s).threads[tid].local("ret") == -errno.ENODEV
    assert s.attachments[0].detached and s.attachments[0].pins == 0


def test_device_dma_through_the_iova_reaches_the_bar() -> None:
    """gpu0 writes through IOVA 0: the IOMMU translates it to the BAR, nothing is wrong."""
    _, _, imp, s = mapped()
    s, ret = run(s, imp.dma_program())
    assert ret == 0
    assert platform(s).transfers[0].status is TransferStatus.DONE
    assert platform(s).findings == ()


def test_an_ioas_without_domains_still_holds_the_attachment() -> None:
    """The attachment lives as long as the area, even with no domain (§2.1 step 6)."""
    _, _, imp, s = mapped(dma_device=None)
    assert area0(imp, s).domains == () and area0(imp, s).iova == 0
    assert s.attachments[0].pins == 1 and not s.attachments[0].detached


# --- §2.2 revoke, no restore ----------------------------------------------------------------------


def test_revoke_unmaps_the_iova_at_once_and_keeps_attachment_and_pin() -> None:
    """iopt_revoke_notify under the exporter's resv: iommu_unmap every tracked domain, phys.len
    = 0; the attachment and pin stay. Later DMA faults in the IOMMU: safe (§2.2)."""
    system, exp, imp, s = mapped()
    s, _ = run(s, exp.op_program("reset"))
    area = area0(imp, s)
    assert area.revoked and area.domains == () and area.revoked_live
    assert not iova_translates(s, DOMAIN, 0) and not iova_translates(s, DOMAIN, 1)
    assert s.attachments[0].pins == 1 and 0 in s.bufs[0].attachments
    s, _ = run(s, imp.dma_program())
    assert platform(s).transfers[0].status is TransferStatus.IOMMU_FAULT
    assert platform(s).iommu_faults == 1 and no_dma_violation(platform(s))
    assert findings_of(platform(s), FindingKind.IOMMU_FAULT)
    assert system.topology.ranges[area.phys[0]].name == "vfio0.bar0"


def test_unrevoke_does_not_restore_the_mapping() -> None:
    """VFIO's unrevoke invalidates again: a no-op for iommufd, the area stays revoked and the
    IOVA untranslated; the VFIO buffer itself is usable again (§2.2 "no automatic restore")."""
    _, exp, imp, s = mapped()
    s, _ = run(s, exp.op_program("mem_off"))
    revoked = area0(imp, s)
    s, _ = run(s, exp.op_program("mem_on"))
    assert area0(imp, s) == revoked and not iova_translates(s, DOMAIN, 0)
    assert exp.state(s).dmabufs[0].status is VfioDmaBufStatus.OK


def test_map_file_while_revoked_is_enodev_and_works_again_after_unrevoke() -> None:
    """The selftest dmabuf_revoke walk: map, revoke, MAP_FILE → -ENODEV, unrevoke, MAP_FILE
    OK at a new IOVA, unmap the old IOVA and map it back at the fixed address (§2.2)."""
    _, exp, imp, s = mapped()
    s, _ = run(s, exp.op_program("mem_off"))
    s, ret = run(s, imp.map_file_program())
    assert ret == -errno.ENODEV
    s, _ = run(s, exp.op_program("mem_on"))
    s, ret = run(s, imp.map_file_program())
    assert ret == 0 and imp.state(s).areas[-1].iova == 2
    s, ret = run(s, imp.unmap_program(), iova=0)
    assert ret == 0
    s, ret = run(s, imp.map_file_program(), iova=0)
    assert ret == 0 and imp.state(s).areas[-1].iova == 0 and iova_translates(s, DOMAIN, 0)


def test_a_new_hwpt_after_revoke_is_allocated_but_maps_nothing() -> None:
    """Fill paths after a revoke succeed and map nothing; before it they map (§2.2)."""
    _, exp, imp, s = mapped(hwpt_budget=1)
    s, ret = run(s, imp.hwpt_program())
    new = imp.state(s).domains[-1]
    assert ret == 0 and area0(imp, s).domains == (DOMAIN, new) and iova_translates(s, new, 0)
    s, _ = run(s, exp.op_program("reset"))
    s, ret = run(s, imp.hwpt_program())
    newer = imp.state(s).domains[-1]
    assert ret == 0 and not iova_translates(s, newer, 0) and area0(imp, s).domains == ()
    assert not iova_translates(s, new, 0)  # the revoke unmapped both tracked domains


def test_device_close_and_hot_unplug_leave_iommufd_with_a_dead_revoked_area() -> None:
    """The VMM closes the VFIO device (permanent revoke: iommufd's IOVA is unmapped), then the
    unplug proceeds although iommufd still holds the dma-buf: the buffer dropped its
    registration at cleanup. Later DMA only faults (§1.3 cleanup, §1.4 hot-unplug, §2.2)."""
    _, exp, imp, s = mapped()
    s, tid = spawn(s, exp.unplug_program())
    s, ret = run(s, exp.op_program("close"))
    assert ret == 0 and world(s).threads[tid].done
    assert area0(imp, s).revoked and not iova_translates(s, DOMAIN, 0)
    assert not platform(s).functions[0].present and s.attachments[0].pins == 1
    s, _ = run(s, imp.dma_program())
    assert platform(s).transfers[-1].status is TransferStatus.IOMMU_FAULT
    assert no_dma_violation(platform(s)) and not s.warnings
    s, ret = run(s, imp.unmap_program())
    assert ret == 0 and s.attachments[0].detached


# --- §2.2 IOMMU_IOAS_UNMAP and release ------------------------------------------------------------


def test_ioas_unmap_releases_in_the_order_resv_unpin_unlock_detach_put() -> None:
    """Unmap the domains, then dma_resv_lock, dma_buf_unpin, dma_resv_unlock, dma_buf_detach,
    dma_buf_put: no warning, no pin, no attachment, the reference given back (§2.2)."""
    system, _, imp, s = mapped()
    model = system.model()
    s, tid = spawn(s, imp.unmap_program())
    lines = []
    while not world(s).threads[tid].done:
        t = world(s).threads[tid]
        lines += model.describe_step(s, ThreadStep(tid, t.name, t.pc))
        out = run_step(s, t)
        assert isinstance(out, KState)
        s = out
    calls = [line.split(": ", 2)[2] for line in lines if not line.startswith(" ")]
    assert calls == [
        "iommu_unmap(domain2, iova 0) = 2",
        "dma_resv_lock(resv0, NULL) = 0",
        "dma_buf_unpin(attach0)",
        "dma_resv_unlock(resv0)",
        "dma_buf_detach(buf0, attach0)",
        "dma_buf_put(buf0)",
    ]
    assert world(s).threads[tid].local("ret") == 0 and not s.warnings
    a = s.attachments[0]
    assert a.detached and a.pins == 0 and s.bufs[0].file_refcount == 1
    assert area0(imp, s).destroyed and not iova_translates(s, DOMAIN, 0)


def test_unpin_without_the_resv_is_the_pre_2026_warning() -> None:
    """unpin_locked=False: dma_buf_unpin asserts the resv: WARN #8 (Ankit Soni's fix, §2.2)."""
    _, _, imp, s = mapped(unpin_locked=False)
    s, ret = run(s, imp.unmap_program())
    assert ret == 0
    assert [(w.invariant, w.what) for w in s.warnings] == [(8, "dma_buf_unpin without resv held")]


def test_unmap_after_revoke_skips_the_iommu_unmap() -> None:
    """Unfill after a revoke does not unmap again (no double-unmap WARN, §2.2)."""
    _, exp, imp, s = mapped()
    s, _ = run(s, exp.op_program("reset"))
    s, ret = run(s, imp.unmap_program())
    assert ret == 0 and area0(imp, s).destroyed and s.attachments[0].detached


@pytest.mark.parametrize(
    ("local", "expected"),
    [({"iova": 0, "npages": 1}, -errno.EOPNOTSUPP), ({"iova": 7}, -errno.ENOENT)],
)
def test_partial_unmap_is_eopnotsupp_and_unmapping_nothing_is_enoent(
    local: dict[str, Any], expected: int
) -> None:
    """Splitting a dma-buf area is not supported, in any state (§2.2)."""
    _, _, imp, s = mapped()
    s, ret = run(s, imp.unmap_program(), **local)
    assert ret == expected and not area0(imp, s).destroyed


def test_in_kernel_access_to_dmabuf_pages_is_einval() -> None:
    """iommufd_access_rw on a dma-buf area: -EINVAL; nothing mapped there: -ENOENT (§2.2)."""
    _, _, imp, s = mapped()
    assert imp.iommufd_access_rw(s, 1) == -errno.EINVAL
    assert imp.iommufd_access_rw(s, 5) == -errno.ENOENT


def test_options_are_checked() -> None:
    """An unknown revoke_unmap mode or a non-PCI dma_device is a configuration error."""
    with pytest.raises(DriverError, match=r"choose one of iommu_unmap, iommu_unmap_fast, none"):
        pair(revoke_unmap="lazy")
    with pytest.raises(DriverError, match=r"dma_device 'iommufd' is not a PCI function"):
        pair(dma_device="iommufd")


# --- §7: the iommufd column with the real static exporters ----------------------------------------


@pytest.mark.parametrize("exporter", [SystemHeapExporter, UdmabufExporter])
def test_static_exporters_are_refused_with_eopnotsupp(exporter: type[Any]) -> None:
    """System heap and udmabuf × iommufd: attach and pin work, the private map does not (§7)."""
    topo = Topology.simple(["gpu0"], non_pci=["iommufd"], ram=2)
    system = DmaBufSystem(topo)
    exp = system.add_exporter(exporter, device="heap")
    imp = cast(
        IommufdImporter,
        system.add_importer(IommufdImporter, device="iommufd", source=exp, dma_device="gpu0"),
    )
    s, ret = run(system.initial_state(), imp.map_file_program())
    assert ret == -errno.EOPNOTSUPP
    assert s.attachments[0].detached and s.attachments[0].pins == 0


# --- end to end and exhaustive --------------------------------------------------------------------


def test_scripted_map_file_reads_like_a_kernel_log() -> None:
    """The MAP_FILE trace, one kernel call per line (design.md tracing)."""
    system, _, imp = pair()
    model = system.model()
    s = model.init_states()[0]
    actions: list[Any] = [EnvStep(1, "iommufd: IOMMU_IOAS_MAP_FILE")]
    s2 = model.next_state(s, actions[0])
    assert s2 is not None
    tid = len(world(s2).threads) - 1
    for _ in range(3):
        t = world(s2).threads[tid]
        actions.append(ThreadStep(tid, t.name, t.pc))
        nxt = model.next_state(s2, actions[-1])
        assert nxt is not None
        s2 = nxt
    lines = model.describe_trace(actions)
    assert lines[1:8] == [
        "  2. T1 iommufd: IOMMU_IOAS_MAP_FILE: dma_buf_get(fd 3) = buf0",
        "     T1 iommufd: IOMMU_IOAS_MAP_FILE: dma_buf_dynamic_attach(buf0, iommufd, "
        "iopt_dmabuf_attach_revoke_ops) = attach0",
        "  3. T1 iommufd: IOMMU_IOAS_MAP_FILE: dma_resv_lock(resv0, NULL) = 0",
        "     T1 iommufd: IOMMU_IOAS_MAP_FILE: dma_buf_pin(attach0) = 0",
        "     T1 iommufd: IOMMU_IOAS_MAP_FILE: vfio_pci_dma_buf_iommufd_map(attach0) = (2, 0, 2)",
        "     T1 iommufd: IOMMU_IOAS_MAP_FILE: dma_resv_unlock(resv0)",
        "  4. T1 iommufd: IOMMU_IOAS_MAP_FILE: "
        "iommu_map(domain2, iova 0, vfio0.bar0 pages 0..1) = 0",
    ]
    assert imp.state(s2).device_iova == 0


def _model(**kw: Any) -> SystemModel:
    system, exp, imp = pair(**kw)
    system.extra_properties += [exp.revoke_completes(), imp.revoked_while_mapped()]
    return system.model()


def test_every_interleaving_of_map_dma_unmap_and_flr_keeps_every_property() -> None:
    """vfio × iommufd, budgets of 1 (MAP_FILE, IOAS_UNMAP, DMA, FLR): no violation, no
    deadlock, and the revoke does hit a live IOVA (§2.2, core-semantics §5.8, §10 #22)."""
    result = check(_model(), stop_at_first=False)
    result.assert_properties()
    assert result.complete


@pytest.mark.parametrize("mode", ["none", "iommu_unmap_fast"])
def test_a_revoke_that_leaves_the_iova_mapped_is_a_violation(mode: str) -> None:
    """revoke_unmap "none" (no unmap) or "iommu_unmap_fast" (no IOTLB sync): the oracle finds
    the live IOMMU entry when VFIO declares the revoke complete, and iommufd's own property
    fails (§2.2, core-semantics §10 #22)."""
    model = _model(revoke_unmap=mode, unmap_budget=0, dma_budget=0)
    result = check(model, stop_at_first=False)
    assert {d.property for d in result.failures} == {
        "iommufd_revoke_unmaps_iova",
        "no_dma_violation",
    }
    path = result.discovery("no_dma_violation")
    assert path is not None
    kinds = {f.kind for f in platform(path.last_state).findings}
    assert kinds == {FindingKind.REVOKE_WITH_LIVE_MAPPING}


def test_hwpt_and_dma_interleavings_with_memory_toggles_keep_every_property() -> None:
    """A new hwpt or device DMA against memory off/on, in any order: the fill path never maps
    a revoked area and the DMA never reaches a revoked BAR (§2.2, drivers.md §1.4)."""
    for extra in ({"hwpt_budget": 1, "dma_budget": 0}, {"hwpt_budget": 0, "dma_budget": 1}):
        model = _model(
            vfio={"flr_budget": 0, "mem_disable_budget": 1},
            map_at_setup=True,
            map_budget=0,
            unmap_budget=0,
            **extra,
        )
        check(model, stop_at_first=False).assert_properties()


def test_area_records_are_values() -> None:
    """State records are frozen and hashable (design.md "The state is a value")."""
    _, _, imp, s = mapped()
    assert hash(imp.state(s)) == hash(replace(imp.state(s)))
