"""Toy exporter and importers shared by the dma_buf tests (no tests here).

Every callback appends (name, object id, resv held by the calling thread) to a log kept in
KState.ext, so a test can assert which exporter/importer callbacks ran, in which order and under
which lock (core-semantics §2, §3, §4). Behaviour knobs live in ToyExt so that a test changes
them with ``with_ext(s, pin_ret=-EBUSY)``.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, replace
from typing import Any

from dmabuf_model.kernel.dma_buf import (
    DmaBufAttachOps,
    DmaBufOps,
    DmaDataDirection,
    MapResult,
    dma_buf_export,
)
from dmabuf_model.kernel.dma_fence import dma_fence_context_alloc, dma_fence_init
from dmabuf_model.kernel.dma_resv import (
    DmaResvUsage,
    dma_resv_add_fence,
    dma_resv_held,
    dma_resv_lock,
    dma_resv_reserve_fences,
    dma_resv_unlock,
)
from dmabuf_model.kernel.errno import ENODEV
from dmabuf_model.kernel.state import AttachId, Blocked, BufId, FenceId, KState, SgtId, Tid

T0, T1, T2 = 0, 1, 2
"""Thread ids used by the tests: T0 exporter/owner, T1 and T2 importers."""


@dataclass(frozen=True, slots=True)
class ToyExt:
    """The toy driver state: a call log and the knobs that shape the callbacks' results."""

    log: tuple[tuple[Hashable, ...], ...] = ()
    revoked: bool = False
    attach_ret: int = 0
    pin_ret: int = 0
    map_ret: int | None = 0
    """0: success; a negative errno; None: map_dma_buf returns NULL."""
    cpu_ret: int = 0
    mmap_ret: int = 0
    vmap_ret: int = 0x1000
    fence_on_pin: bool = False
    """pin adds an unsignalled KERNEL fence to the resv (a pipelined move)."""


def ext(s: KState) -> ToyExt:
    assert isinstance(s.ext, ToyExt)
    return s.ext


def with_ext(s: KState, **changes: Any) -> KState:
    return s.evolve(ext=replace(ext(s), **changes))


def log(s: KState) -> tuple[tuple[Hashable, ...], ...]:
    return ext(s).log


def names(s: KState) -> list[Hashable]:
    """The callback names in the log, in call order."""
    return [e[0] for e in log(s)]


def _record(s: KState, tid: Tid, name: str, obj: int, resv_of: int) -> KState:
    held = dma_resv_held(s, resv_of, tid)
    return with_ext(s, log=(*log(s), (name, obj, held)))


def _resv_of_attach(s: KState, a: AttachId) -> int:
    return s.bufs[s.attachments[a].dmabuf].resv


def _attach(s: KState, tid: Tid, a: AttachId) -> tuple[KState, int]:
    s = _record(s, tid, "attach", a, _resv_of_attach(s, a))
    return s, -ENODEV if ext(s).revoked else ext(s).attach_ret


def _detach(s: KState, tid: Tid, a: AttachId) -> KState:
    return _record(s, tid, "detach", a, _resv_of_attach(s, a))


def _pin(s: KState, tid: Tid, a: AttachId) -> tuple[KState, int]:
    s = _record(s, tid, "pin", a, _resv_of_attach(s, a))
    if ext(s).fence_on_pin and ext(s).pin_ret == 0:
        s, f = new_fence(s)
        s = dma_resv_add_fence_reserved(s, tid, _resv_of_attach(s, a), f, DmaResvUsage.KERNEL)
    return s, ext(s).pin_ret


def _unpin(s: KState, tid: Tid, a: AttachId) -> KState:
    return _record(s, tid, "unpin", a, _resv_of_attach(s, a))


def _map(s: KState, tid: Tid, a: AttachId, d: DmaDataDirection) -> tuple[KState, MapResult]:
    s = _record(s, tid, "map_dma_buf", a, _resv_of_attach(s, a))
    if ext(s).revoked:
        return s, -ENODEV
    ret = ext(s).map_ret
    if ret is None or ret < 0:
        return s, ret
    return s, (("dma_addr", a, len(s.sg_tables)),)


def _unmap(s: KState, tid: Tid, a: AttachId, sgt: SgtId, d: DmaDataDirection) -> KState:
    return _record(s, tid, "unmap_dma_buf", sgt, _resv_of_attach(s, a))


def _release(s: KState, tid: Tid, b: BufId) -> KState:
    return _record(s, tid, "release", b, s.bufs[b].resv)


def _begin(s: KState, tid: Tid, b: BufId, d: DmaDataDirection) -> tuple[KState, int]:
    return _record(s, tid, "begin_cpu_access", b, s.bufs[b].resv), ext(s).cpu_ret


def _end(s: KState, tid: Tid, b: BufId, d: DmaDataDirection) -> tuple[KState, int]:
    return _record(s, tid, "end_cpu_access", b, s.bufs[b].resv), ext(s).cpu_ret


def _mmap(s: KState, tid: Tid, b: BufId, pgoff: int, npages: int) -> tuple[KState, int]:
    return _record(s, tid, "mmap", b, s.bufs[b].resv), ext(s).mmap_ret


def _vmap(s: KState, tid: Tid, b: BufId) -> tuple[KState, int]:
    return _record(s, tid, "vmap", b, s.bufs[b].resv), ext(s).vmap_ret


def _vunmap(s: KState, tid: Tid, b: BufId, m: int) -> KState:
    return _record(s, tid, "vunmap", b, s.bufs[b].resv)


def toy_ops(
    name: str = "toy",
    *,
    pin: bool = True,
    attach: bool = True,
    cpu: bool = True,
    mmap: bool = True,
    vmap: bool = True,
) -> DmaBufOps:
    """A complete exporter; ``pin=False`` makes it static (no pin/unpin, §1.3)."""
    return DmaBufOps(
        name=name + ("" if pin else "-static"),
        map_dma_buf=_map,
        unmap_dma_buf=_unmap,
        release=_release,
        attach=_attach if attach else None,
        detach=_detach if attach else None,
        pin=_pin if pin else None,
        unpin=_unpin if pin else None,
        begin_cpu_access=_begin if cpu else None,
        end_cpu_access=_end if cpu else None,
        mmap=_mmap if mmap else None,
        vmap=_vmap if vmap else None,
        vunmap=_vunmap if vmap else None,
    )


def _invalidate(s: KState, tid: Tid, a: AttachId) -> KState:
    return _record(s, tid, "invalidate_mappings", a, _resv_of_attach(s, a))


REVOCABLE = DmaBufAttachOps("revocable", allow_peer2peer=True, invalidate_mappings=_invalidate)
"""A dynamic importer with invalidate_mappings (revocable, §5.9)."""
NO_CALLBACK = DmaBufAttachOps("no-callback", allow_peer2peer=False)
"""A dynamic importer without invalidate_mappings (not revocable)."""


def setup(*, pin: bool = True, size: int = 4 * 4096, **ops_kw: bool) -> tuple[KState, BufId]:
    """A fresh state with one exported buffer (embedded resv) and the toy driver state."""
    s = KState(ext=ToyExt())
    s, buf = dma_buf_export(s, T0, ops=toy_ops(pin=pin, **ops_kw), size=size, priv="toy")
    assert buf == 0
    return s, buf


def ok(r: tuple[KState, int] | Blocked) -> tuple[KState, int]:
    """Unwrap a result that must not be Blocked."""
    assert not isinstance(r, Blocked), r
    return r


def okk(r: KState | Blocked) -> KState:
    assert not isinstance(r, Blocked), r
    return r


def lock(s: KState, tid: Tid, buf: BufId) -> KState:
    r = dma_resv_lock(s, tid, s.bufs[buf].resv, None)
    assert not isinstance(r, Blocked), r
    assert r[1] == 0
    return r[0]


def unlock(s: KState, tid: Tid, buf: BufId) -> KState:
    return dma_resv_unlock(s, tid, s.bufs[buf].resv)


def new_fence(s: KState) -> tuple[KState, FenceId]:
    s, ctx = dma_fence_context_alloc(s, 1)
    return dma_fence_init(s, ctx, 1)


def dma_resv_add_fence_reserved(
    s: KState, tid: Tid, resv: int, f: FenceId, usage: DmaResvUsage
) -> KState:
    s, ret = dma_resv_reserve_fences(s, tid, resv, 1)
    assert ret == 0
    return dma_resv_add_fence(s, tid, resv, f, usage)


def add_fence(s: KState, buf: BufId, usage: DmaResvUsage, tid: Tid = T0) -> tuple[KState, FenceId]:
    """Add a new unsignalled fence with ``usage`` to the buffer's resv (locks and unlocks)."""
    s, f = new_fence(s)
    s = lock(s, tid, buf)
    s = dma_resv_add_fence_reserved(s, tid, s.bufs[buf].resv, f, usage)
    return unlock(s, tid, buf), f


def warned(s: KState, invariant: int, kind: str = "WARN") -> list[str]:
    """The recorded warnings naming ``invariant`` (and of that kind)."""
    return [w.what for w in s.warnings if w.invariant == invariant and w.kind == kind]


BIDI = DmaDataDirection.BIDIRECTIONAL
