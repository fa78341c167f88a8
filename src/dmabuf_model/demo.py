"""The demo: one revoke walked on the DMA-buf core, step by step (drivers/dma-buf/dma-buf.c).

It shows the canonical revoke sequence of core-semantics §5.8 (the one VFIO performs) against a
pinned revocable importer and a dynamic importer, printing every call as
``thread: kernel_function(args) = result``. Every result is computed by the model; nothing is
hard-coded. The exporter is a small revocable toy defined here: its revoked flag lives in
KState.ext, and its attach and map_dma_buf return -ENODEV once it is set (§5.8 step 2, §10 #22).
"""

from __future__ import annotations

from dataclasses import dataclass

from dmabuf_model.kernel.dma_buf import (
    O_CLOEXEC,
    PAGE_SIZE,
    DmaBufAttachOps,
    DmaBufOps,
    DmaDataDirection,
    MapResult,
    dma_buf_dynamic_attach,
    dma_buf_export,
    dma_buf_fd,
    dma_buf_get,
    dma_buf_invalidate_mappings,
    dma_buf_map_attachment,
    dma_buf_pin,
    dma_buf_unmap_attachment,
    dma_buf_unpin,
    live_mappings,
    live_sgts,
)
from dmabuf_model.kernel.dma_fence import (
    MAX_SCHEDULE_TIMEOUT,
    dma_fence_context_alloc,
    dma_fence_init,
    dma_fence_signal,
)
from dmabuf_model.kernel.dma_resv import (
    DmaResvUsage,
    dma_resv_add_fence,
    dma_resv_lock,
    dma_resv_reserve_fences,
    dma_resv_unlock,
    dma_resv_wait_timeout,
)
from dmabuf_model.kernel.errno import ENODEV, errname
from dmabuf_model.kernel.state import AttachId, Blocked, BufId, KState, SgtId, Tid, replace

EXPORTER, PINNED, DYNAMIC, GPU_JOB = 0, 1, 2, 3
THREAD_NAMES = {EXPORTER: "exporter", PINNED: "iommufd", DYNAMIC: "gpu", GPU_JOB: "gpu-job"}
BIDI = DmaDataDirection.BIDIRECTIONAL


@dataclass(frozen=True, slots=True)
class DemoExt:
    """The toy drivers' state: the exporter's revoked flag and the importers' to-do notes."""

    revoked: bool = False
    must_unmap: tuple[AttachId, ...] = ()
    """Attachments whose invalidate_mappings ran, in call order: they owe an unmap."""


def _ext(s: KState) -> DemoExt:
    assert isinstance(s.ext, DemoExt)
    return s.ext


# -- the revocable toy exporter (no pin: its storage never moves, like a VFIO BAR) ---------------


def _toy_attach(s: KState, tid: Tid, attach: AttachId) -> tuple[KState, int]:
    return s, -ENODEV if _ext(s).revoked else 0


def _toy_map(
    s: KState, tid: Tid, attach: AttachId, d: DmaDataDirection
) -> tuple[KState, MapResult]:
    if _ext(s).revoked:
        return s, -ENODEV
    return s, (("bar0", 0, PAGE_SIZE),)


def _toy_unmap(s: KState, tid: Tid, attach: AttachId, sgt: SgtId, d: DmaDataDirection) -> KState:
    return s


def _toy_release(s: KState, tid: Tid, buf: BufId) -> KState:
    return s


TOY_REVOCABLE_OPS = DmaBufOps(
    name="toy-revocable",
    attach=_toy_attach,
    map_dma_buf=_toy_map,
    unmap_dma_buf=_toy_unmap,
    release=_toy_release,
)


# -- the importers: their invalidate_mappings records that they must unmap ----------------------


def _must_unmap(s: KState, tid: Tid, attach: AttachId) -> KState:
    e = _ext(s)
    return s.evolve(ext=replace(e, must_unmap=(*e.must_unmap, attach)))


PINNED_IMPORTER = DmaBufAttachOps("iommufd", allow_peer2peer=True, invalidate_mappings=_must_unmap)
DYNAMIC_IMPORTER = DmaBufAttachOps("gpu", allow_peer2peer=True, invalidate_mappings=_must_unmap)


# -- printing ----------------------------------------------------------------------------------


def _say(tid: Tid, call: str, result: str | None = None) -> None:
    line = f"{THREAD_NAMES[tid]}: {call}"
    print(line if result is None else f"{line} = {result}")


def _id(prefix: str, ret: int) -> str:
    return errname(ret) if ret < 0 else f"{prefix}{ret}"


def _locked(s: KState, tid: Tid, resv: int) -> KState:
    r = dma_resv_lock(s, tid, resv, None)
    if isinstance(r, Blocked):
        raise RuntimeError(f"demo: dma_resv_lock(resv{resv}) blocked on {r.on}")
    _say(tid, f"dma_resv_lock(resv{resv}, NULL)", errname(r[1]))
    return r[0]


def _unlocked(s: KState, tid: Tid, resv: int) -> KState:
    _say(tid, f"dma_resv_unlock(resv{resv})")
    return dma_resv_unlock(s, tid, resv)


def _map(s: KState, tid: Tid, attach: AttachId) -> tuple[KState, int]:
    r = dma_buf_map_attachment(s, tid, attach, BIDI)
    if isinstance(r, Blocked):
        raise RuntimeError(f"demo: dma_buf_map_attachment blocked on {r.on}")
    _say(tid, f"dma_buf_map_attachment(attach{attach}, BIDIRECTIONAL)", _id("sgt", r[1]))
    return r


def _attach(s: KState, tid: Tid, buf: BufId, ops: DmaBufAttachOps) -> tuple[KState, int]:
    r = dma_buf_dynamic_attach(s, tid, buf, ops.name, ops)
    if isinstance(r, Blocked):
        raise RuntimeError(f"demo: dma_buf_dynamic_attach blocked on {r.on}")
    _say(tid, f"dma_buf_dynamic_attach(buf{buf}, {ops.name}, {ops.name}_ops)", _id("attach", r[1]))
    return r


def run_demo() -> None:
    """run_demo - walk one revoke on the core (core-semantics §5.8) and print each step.

    A pinned revocable importer and a dynamic importer attach to one revocable exporter and map
    it; a GPU job adds a BOOKKEEP fence. The exporter then locks the resv, marks itself revoked,
    calls dma_buf_invalidate_mappings, waits for the BOOKKEEP fences (the job signals), unlocks
    and waits for the importers' unmaps. A map attempt afterwards fails with -ENODEV.
    """
    print("DMA-buf revoke on the core (core-semantics §5.8, the sequence VFIO performs)")
    s = KState(ext=DemoExt())

    print("\n-- export and share")
    s, buf = dma_buf_export(s, EXPORTER, ops=TOY_REVOCABLE_OPS, size=PAGE_SIZE, priv="bar0")
    _say(EXPORTER, f"dma_buf_export(toy-revocable, size={PAGE_SIZE})", _id("buf", buf))
    resv = s.bufs[buf].resv
    s, fd = dma_buf_fd(s, EXPORTER, buf, O_CLOEXEC)
    _say(EXPORTER, f"dma_buf_fd(buf{buf}, O_CLOEXEC)", errname(fd))

    print("\n-- a pinned, revocable importer")
    s, got = dma_buf_get(s, PINNED, fd)
    _say(PINNED, f"dma_buf_get({fd})", _id("buf", got))
    s, pinned = _attach(s, PINNED, buf, PINNED_IMPORTER)
    s = _locked(s, PINNED, resv)
    s, ret = dma_buf_pin(s, PINNED, pinned)
    _say(PINNED, f"dma_buf_pin(attach{pinned})", errname(ret))
    s, pinned_sgt = _map(s, PINNED, pinned)
    s = _unlocked(s, PINNED, resv)

    print("\n-- a dynamic importer with a GPU job in flight")
    s, got = dma_buf_get(s, DYNAMIC, fd)
    _say(DYNAMIC, f"dma_buf_get({fd})", _id("buf", got))
    s, dynamic = _attach(s, DYNAMIC, buf, DYNAMIC_IMPORTER)
    s = _locked(s, DYNAMIC, resv)
    s, dynamic_sgt = _map(s, DYNAMIC, dynamic)
    s, ctx = dma_fence_context_alloc(s, 1)
    s, job = dma_fence_init(s, ctx, 1, driver_name="gpu", timeline_name="ring0")
    _say(DYNAMIC, f"dma_fence_init(context={ctx}, seqno=1)", f"fence{job}")
    s, ret = dma_resv_reserve_fences(s, DYNAMIC, resv, 1)
    _say(DYNAMIC, f"dma_resv_reserve_fences(resv{resv}, 1)", errname(ret))
    s = dma_resv_add_fence(s, DYNAMIC, resv, job, DmaResvUsage.BOOKKEEP)
    _say(DYNAMIC, f"dma_resv_add_fence(resv{resv}, fence{job}, DMA_RESV_USAGE_BOOKKEEP)")
    s = _unlocked(s, DYNAMIC, resv)

    print("\n-- the exporter revokes")
    s = _locked(s, EXPORTER, resv)
    s = s.evolve(ext=replace(_ext(s), revoked=True))
    _say(EXPORTER, "mark revoked (exporter state, under resv)", str(_ext(s).revoked).lower())
    s = dma_buf_invalidate_mappings(s, EXPORTER, buf)
    _say(EXPORTER, f"dma_buf_invalidate_mappings(buf{buf})")
    for attach in _ext(s).must_unmap:
        ops = s.attachments[attach].importer_ops
        assert ops is not None
        owed = ", ".join(f"sgt{t}" for t in live_sgts(s, attach))
        _say(
            EXPORTER, f"  {ops.name}_ops.invalidate_mappings(attach{attach})", f"must unmap {owed}"
        )
    wait = (
        f"dma_resv_wait_timeout(resv{resv}, DMA_RESV_USAGE_BOOKKEEP, false, MAX_SCHEDULE_TIMEOUT)"
    )
    r = dma_resv_wait_timeout(s, EXPORTER, resv, DmaResvUsage.BOOKKEEP, False, MAX_SCHEDULE_TIMEOUT)
    if isinstance(r, Blocked):
        _say(EXPORTER, wait, f"blocked on {r.on}")
        s = dma_fence_signal(s, job)
        _say(GPU_JOB, f"dma_fence_signal(fence{job})")
        r = dma_resv_wait_timeout(
            s, EXPORTER, resv, DmaResvUsage.BOOKKEEP, False, MAX_SCHEDULE_TIMEOUT
        )
    if isinstance(r, Blocked):
        raise RuntimeError(f"demo: the BOOKKEEP wait is still blocked on {r.on}")
    s, ret = r
    _say(EXPORTER, wait, "MAX_SCHEDULE_TIMEOUT" if ret == MAX_SCHEDULE_TIMEOUT else errname(ret))
    s = _unlocked(s, EXPORTER, resv)
    live = sum(live_mappings(s, a) for a in s.bufs[buf].attachments)
    _say(EXPORTER, "wait for the importers' unmaps", f"{live} live mappings, waiting")

    print("\n-- the importers unmap")
    s = _locked(s, PINNED, resv)
    s = dma_buf_unmap_attachment(s, PINNED, pinned, pinned_sgt, BIDI)
    _say(PINNED, f"dma_buf_unmap_attachment(attach{pinned}, sgt{pinned_sgt}, BIDIRECTIONAL)")
    s = dma_buf_unpin(s, PINNED, pinned)
    _say(PINNED, f"dma_buf_unpin(attach{pinned})")
    s = _unlocked(s, PINNED, resv)
    s = _locked(s, DYNAMIC, resv)
    s = dma_buf_unmap_attachment(s, DYNAMIC, dynamic, dynamic_sgt, BIDI)
    _say(DYNAMIC, f"dma_buf_unmap_attachment(attach{dynamic}, sgt{dynamic_sgt}, BIDIRECTIONAL)")
    s = _unlocked(s, DYNAMIC, resv)
    live = sum(live_mappings(s, a) for a in s.bufs[buf].attachments)
    _say(EXPORTER, "wait for the importers' unmaps", f"{live} live mappings, revoke complete")

    print("\n-- after the revoke")
    s = _locked(s, DYNAMIC, resv)
    s, _ = _map(s, DYNAMIC, dynamic)
    s = _unlocked(s, DYNAMIC, resv)
    s, _ = _attach(s, DYNAMIC, buf, DYNAMIC_IMPORTER)

    warnings = ", ".join(str(w) for w in s.warnings) or "none"
    print(f"\nkernel warnings: {warnings}")
