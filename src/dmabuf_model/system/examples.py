"""Two worked examples on the core: a pin-vs-invalidate race and a resv/memory_lock ABBA deadlock.

They show how kernel code paths become threads of atomic steps that the checker explores:
core-semantics §5.8 (the revoke sequence: lock resv, mark revoked, dma_buf_invalidate_mappings,
wait BOOKKEEP, unlock, wait for unmaps), §4 (resv locking) and drivers.md §1.7 (VFIO takes
memory_lock before the resv). Each factory returns a SystemModel; the CLI lists them in EXAMPLES.

pin_invalidate_race: a VFIO-like exporter (its map_dma_buf and attach fail with -ENODEV once
revoked, drivers.md §1.2) and a pinned revocable importer with a DMA engine. Variants of the
importer: "correct" holds the resv across pin, map and programming its device; "split" pins and
maps in one resv section and programs the device in a second one, trusting a "valid" flag it
cached in the first (the bug: the revoke can run in between); "unlocked" pins and maps without
taking the resv at all (a WARN, §10 #8).

lock_order: "nested" is an importer fault path that takes memory_lock (read) while holding the
resv, against VFIO's memory_lock (write) → resv: the ABBA deadlock. "fixed" checks under the resv,
drops it, then takes memory_lock, never nesting the two (drivers.md §1.7, Matt Evans' fault path).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from dmabuf_model.check.model import Property
from dmabuf_model.kernel import errno
from dmabuf_model.kernel.dma_buf import (
    DmaBufAttachOps,
    DmaBufOps,
    DmaDataDirection,
    MapResult,
    dma_buf_dynamic_attach,
    dma_buf_export,
    dma_buf_invalidate_mappings,
    dma_buf_map_attachment,
    dma_buf_pin,
    dma_buf_unmap_attachment,
    dma_buf_unpin,
)
from dmabuf_model.kernel.dma_fence import (
    MAX_SCHEDULE_TIMEOUT,
    dma_fence_context_alloc,
    dma_fence_init,
    dma_fence_is_signaled,
    dma_fence_signal,
)
from dmabuf_model.kernel.dma_resv import (
    DmaResvUsage,
    dma_resv_add_fence,
    dma_resv_init,
    dma_resv_lock,
    dma_resv_reserve_fences,
    dma_resv_unlock,
    dma_resv_wait_timeout,
)
from dmabuf_model.kernel.locking import (
    RwSemaphore,
    down_read,
    down_write,
    lock_init,
    up_read,
    up_write,
)
from dmabuf_model.kernel.state import AttachId, Blocked, BufId, FenceId, KState, SgtId, Tid, replace
from dmabuf_model.system.model import EnvEvent, SystemModel, run_thread
from dmabuf_model.system.properties import CORE_PROPERTIES, no_live_mapping_after_revoke
from dmabuf_model.system.threads import (
    Thread,
    driver_state,
    emit,
    emit_call,
    finish,
    goto,
    program,
    set_driver_state,
    spawn,
    system_state,
    world,
)

EXPORTER = 0
"""Driver slot of the exporter's record."""
IMPORTER = 1
"""Driver slot of the importer's record."""
BUF: BufId = 0
ATTACH: AttachId = 0
BUF_RESV = 0
"""The buffer's resv id (the first resv created, by dma_buf_export)."""
BIDI = DmaDataDirection.BIDIRECTIONAL


@dataclass(frozen=True, slots=True)
class RevocableExporter:
    """A VFIO-like BAR exporter's state (drivers.md §1.2, §1.3).

    ``revoked`` makes attach and map_dma_buf fail with -ENODEV; ``mappings`` counts live
    map_dma_buf results (VFIO's kref), which the revoke waits to reach 0; ``revoke_done`` is set
    when the whole §5.8 sequence has run (ghost state for the properties).
    """

    revoked: bool = False
    mappings: int = 0
    revoke_done: bool = False


@dataclass(frozen=True, slots=True)
class RevocableImporter:
    """A pinned revocable importer's state (core-semantics §6.3 "revoked" flow).

    ``sgt`` is the mapping its invalidate_mappings must drop; ``device_sgt`` what its device's
    page tables point at (DMA can happen through it); ``fence`` its DMA job's fence in the resv,
    on ``fence_context``. ``invalidated_live`` records that an invalidation found a live mapping
    (ghost state for a nontriviality property).
    """

    sgt: SgtId | None = None
    valid: bool = False
    device_sgt: SgtId | None = None
    fence_context: int = 0
    fence: FenceId | None = None
    invalidated_live: bool = False


def _exporter(s: KState) -> RevocableExporter:
    d = driver_state(s, EXPORTER)
    assert isinstance(d, RevocableExporter)
    return d


def _importer(s: KState) -> RevocableImporter:
    d = driver_state(s, IMPORTER)
    assert isinstance(d, RevocableImporter)
    return d


# --- the exporter's callbacks (struct dma_buf_ops, core-semantics §2) -------------------------


def _exp_attach(s: KState, tid: Tid, attach: AttachId) -> tuple[KState, int]:
    """attach: -ENODEV while revoked (drivers.md §1.2)."""
    return s, -errno.ENODEV if _exporter(s).revoked else 0


def _exp_map(
    s: KState, tid: Tid, attach: AttachId, dir: DmaDataDirection
) -> tuple[KState, MapResult]:
    """map_dma_buf: -ENODEV while revoked, else one more live mapping (drivers.md §1.2)."""
    exp = _exporter(s)
    if exp.revoked:
        return s, -errno.ENODEV
    return set_driver_state(s, EXPORTER, replace(exp, mappings=exp.mappings + 1)), ("bar0",)


def _exp_unmap(s: KState, tid: Tid, attach: AttachId, sgt: SgtId, dir: DmaDataDirection) -> KState:
    """unmap_dma_buf: one live mapping less; the revoke's wait for unmaps watches this count."""
    exp = _exporter(s)
    return set_driver_state(s, EXPORTER, replace(exp, mappings=exp.mappings - 1))


def _exp_release(s: KState, tid: Tid, buf: BufId) -> KState:
    return s


EXPORTER_OPS = DmaBufOps(
    "toy_vfio_bar",
    map_dma_buf=_exp_map,
    unmap_dma_buf=_exp_unmap,
    release=_exp_release,
    attach=_exp_attach,
)
"""No pin/unpin, as VFIO since v7: dma_buf_pin is then a core no-op returning 0 (drivers §1.2)."""


# --- the importer's callback (struct dma_buf_attach_ops, core-semantics §3) --------------------


def _imp_invalidate(s: KState, tid: Tid, attach: AttachId) -> KState:
    """invalidate_mappings: stop the device, unmap and unpin at once, under the exporter's resv.

    The revoked flow's importer duty (core-semantics §6.5): unmap within bounded time and drop
    the pin. Runs in the exporter's thread (``tid``), which holds the resv (§10 #10).
    """
    imp = _importer(s)
    emit(f"  -> toy_importer_invalidate(attach{attach}): stop device")
    s = set_driver_state(s, IMPORTER, replace(imp, valid=False, device_sgt=None))
    if imp.sgt is None:
        return s
    s = dma_buf_unmap_attachment(s, tid, attach, imp.sgt, BIDI)
    emit_call("  -> dma_buf_unmap_attachment", f"attach{attach}, sgt{imp.sgt}")
    s = dma_buf_unpin(s, tid, attach)
    emit_call("  -> dma_buf_unpin", f"attach{attach}")
    return set_driver_state(s, IMPORTER, replace(_importer(s), sgt=None, invalidated_live=True))


IMPORTER_OPS = DmaBufAttachOps(
    "toy_revocable_importer", allow_peer2peer=True, invalidate_mappings=_imp_invalidate
)


# --- importer steps ----------------------------------------------------------------------------


def _lock_resv(s: KState, t: Thread, resv: int) -> KState | Blocked:
    r = dma_resv_lock(s, t.tid, resv, None)
    if isinstance(r, Blocked):
        return r
    s, ret = r
    emit_call("dma_resv_lock", f"resv{resv}, NULL", ret)
    return s


def _unlock_resv(s: KState, t: Thread, resv: int) -> KState:
    s = dma_resv_unlock(s, t.tid, resv)
    emit_call("dma_resv_unlock", f"resv{resv}")
    return s


def _pin_and_map(s: KState, t: Thread) -> tuple[KState, int] | Blocked:
    """dma_buf_pin then dma_buf_map_attachment; on a map error the pin is undone. (s, sgt|err)."""
    s, ret = dma_buf_pin(s, t.tid, ATTACH)
    emit_call("dma_buf_pin", f"attach{ATTACH}", ret)
    if ret < 0:
        return s, ret
    m = dma_buf_map_attachment(s, t.tid, ATTACH, BIDI)
    if isinstance(m, Blocked):
        return m
    s, sgt = m
    emit_call("dma_buf_map_attachment", f"attach{ATTACH}, BIDIRECTIONAL", _sgt_or_err(sgt))
    if sgt < 0:
        s = dma_buf_unpin(s, t.tid, ATTACH)
        emit_call("dma_buf_unpin", f"attach{ATTACH}")
    return s, sgt


def _sgt_or_err(ret: int) -> str | int:
    return f"sgt{ret}" if ret >= 0 else ret


def _program_device(s: KState, t: Thread, sgt: SgtId) -> KState:
    """Point the device at ``sgt`` and start a DMA job whose fence goes into the resv (BOOKKEEP).

    §8.2: a dynamic importer adds fences for access it cannot stop at once. Needs the resv held.
    """
    imp = _importer(s)
    emit(f"program device with sgt{sgt}; start DMA")
    s, f = dma_fence_init(s, imp.fence_context, 1)
    s, ret = dma_resv_reserve_fences(s, t.tid, BUF_RESV, 1)
    emit_call("dma_resv_reserve_fences", f"resv{BUF_RESV}, 1", ret)
    s = dma_resv_add_fence(s, t.tid, BUF_RESV, f, DmaResvUsage.BOOKKEEP)
    emit_call("dma_resv_add_fence", f"resv{BUF_RESV}, fence{f}, BOOKKEEP")
    return set_driver_state(s, IMPORTER, replace(_importer(s), device_sgt=sgt, fence=f))


def _correct_map(s: KState, t: Thread) -> KState | Blocked:
    """One resv section: lock, pin, map, program the device, unlock (core-semantics §4, §6.4)."""
    locked = _lock_resv(s, t, BUF_RESV)
    if isinstance(locked, Blocked):
        return locked
    r = _pin_and_map(locked, t)
    if isinstance(r, Blocked):
        return r
    s, sgt = r
    if sgt >= 0:
        s = set_driver_state(s, IMPORTER, replace(_importer(s), sgt=sgt, valid=True))
        s = _program_device(s, t, sgt)
    s = _unlock_resv(s, t, BUF_RESV)
    return finish(s, t, ret=min(sgt, 0))


def _split_map(s: KState, t: Thread) -> KState | Blocked:
    """First resv section: lock, pin, map, record the mapping, cache valid=True, unlock."""
    locked = _lock_resv(s, t, BUF_RESV)
    if isinstance(locked, Blocked):
        return locked
    r = _pin_and_map(locked, t)
    if isinstance(r, Blocked):
        return r
    s, sgt = r
    if sgt < 0:
        return finish(_unlock_resv(s, t, BUF_RESV), t, ret=sgt)
    s = set_driver_state(s, IMPORTER, replace(_importer(s), sgt=sgt, valid=True))
    s = _unlock_resv(s, t, BUF_RESV)
    return goto(s, t, "program device", sgt=sgt, valid=True)


def _split_program(s: KState, t: Thread) -> KState | Blocked:
    """Second resv section: trusts the cached ``valid`` local, not the importer's (the bug)."""
    locked = _lock_resv(s, t, BUF_RESV)
    if isinstance(locked, Blocked):
        return locked
    s = locked
    sgt = t.local("sgt")
    if t.local("valid") and isinstance(sgt, int):
        s = _program_device(s, t, sgt)
    s = _unlock_resv(s, t, BUF_RESV)
    return finish(s, t, ret=0)


def _unlocked_map(s: KState, t: Thread) -> KState | Blocked:
    """Pin and map without taking the resv: the core records WARN #8 and goes on (§4, §10 #8)."""
    r = _pin_and_map(s, t)
    if isinstance(r, Blocked):
        return r
    s, sgt = r
    if sgt >= 0:
        s = set_driver_state(s, IMPORTER, replace(_importer(s), sgt=sgt, valid=True))
    return finish(s, t, ret=min(sgt, 0))


IMPORTER_PROGRAMS = {
    "correct": program("importer-map", ("lock resv, pin, map, program device", _correct_map)),
    "split": program(
        "importer-map-split",
        ("pin and map", _split_map),
        ("program device", _split_program),
    ),
    "unlocked": program("importer-map-unlocked", ("pin and map without resv", _unlocked_map)),
}


# --- exporter: the canonical revoke sequence (core-semantics §5.8, drivers.md §1.3) ------------


def _revoke_start(s: KState, t: Thread) -> KState | Blocked:
    """Steps 1-3: lock the resv, mark revoked, dma_buf_invalidate_mappings."""
    locked = _lock_resv(s, t, BUF_RESV)
    if isinstance(locked, Blocked):
        return locked
    s = set_driver_state(locked, EXPORTER, replace(_exporter(locked), revoked=True))
    emit("vfio_pci_dma_buf_move: revoked = true")
    emit_call("dma_buf_invalidate_mappings", f"buf{BUF}")
    s = dma_buf_invalidate_mappings(s, t.tid, BUF)
    return goto(s, t, "wait BOOKKEEP fences")


def _revoke_wait_fences(s: KState, t: Thread) -> KState | Blocked:
    """Steps 4-5: wait for every fence (BOOKKEEP), uninterruptibly, without limit; unlock."""
    r = dma_resv_wait_timeout(
        s, t.tid, BUF_RESV, DmaResvUsage.BOOKKEEP, False, MAX_SCHEDULE_TIMEOUT
    )
    if isinstance(r, Blocked):
        return r
    s, ret = r
    shown: str | int = "MAX_SCHEDULE_TIMEOUT" if ret == MAX_SCHEDULE_TIMEOUT else ret
    emit_call(
        "dma_resv_wait_timeout", f"resv{BUF_RESV}, BOOKKEEP, false, MAX_SCHEDULE_TIMEOUT", shown
    )
    return goto(_unlock_resv(s, t, BUF_RESV), t, "wait for unmaps")


def _revoke_wait_unmaps(s: KState, t: Thread) -> KState | Blocked:
    """Step 6: wait_for_completion until every mapping is unmapped (mainline: no time limit)."""
    exp = _exporter(s)
    if exp.mappings > 0:
        return Blocked(on=f"unmaps of buf{BUF}")
    emit("wait_for_completion(unmaps) = done")
    return finish(set_driver_state(s, EXPORTER, replace(exp, revoke_done=True)), t, ret=0)


VFIO_REVOKE = program(
    "vfio-revoke",
    ("lock resv, revoke, invalidate", _revoke_start),
    ("wait BOOKKEEP fences", _revoke_wait_fences),
    ("wait for unmaps", _revoke_wait_unmaps),
)


def _dma_done(s: KState, t: Thread) -> KState:
    """The importer's DMA engine finishes its job: dma_fence_signal (no resv, §10 #48)."""
    f = _importer(s).fence
    assert f is not None
    emit_call("dma_fence_signal", f"fence{f}")
    return finish(dma_fence_signal(s, f), t)


DMA_ENGINE = program("dma-engine", ("signal DMA fence", _dma_done))


def _dma_pending(s: KState) -> bool:
    f = _importer(s).fence
    return f is not None and not dma_fence_is_signaled(s, f)


# --- properties of the example -----------------------------------------------------------------


def no_device_mapping_after_revoke(s: KState) -> bool:
    """no_device_mapping_after_revoke - after the revoke, the device points at no mapping.

    Once the revoke completed, the importer's device page tables hold no mapping of the buffer.

    core-semantics §5.8 and §10 #22: after the two waits, no importer access can happen.
    """
    return not (_exporter(s).revoke_done and _importer(s).device_sgt is not None)


def revoke_completes(s: KState) -> bool:
    """revoke_completes - nontriviality: the revoke sequence runs to its end."""
    return _exporter(s).revoke_done


def invalidate_hits_a_live_mapping(s: KState) -> bool:
    """invalidate_hits_a_live_mapping - nontriviality: an invalidation finds a live mapping."""
    return _importer(s).invalidated_live


def map_refused_while_revoked(s: KState) -> bool:
    """map_refused_while_revoked - nontriviality: an importer's map came back -ENODEV.

    The exporter fails map_dma_buf once revoked (core-semantics §5.8 step 2, drivers.md §1.2).
    """
    return any(t.done and t.local("ret") == -errno.ENODEV for t in world(s).threads)


RACE_PROPERTIES: tuple[Property[KState], ...] = (
    no_live_mapping_after_revoke(lambda s, buf: _exporter(s).revoke_done),
    Property.always(
        "no_device_mapping_after_revoke",
        no_device_mapping_after_revoke,
        cite="core-semantics §5.8, §10 #22",
    ),
    Property.sometimes("revoke_completes", revoke_completes, cite="core-semantics §5.8"),
    Property.sometimes(
        "invalidate_hits_a_live_mapping",
        invalidate_hits_a_live_mapping,
        cite="core-semantics §5.8, §6.5",
    ),
    Property.sometimes(
        "map_refused_while_revoked",
        map_refused_while_revoked,
        cite="core-semantics §5.8, drivers.md §1.2",
    ),
)


def _setup_race(s: KState, t: Thread) -> KState | Blocked:
    """Scripted setup: export the BAR, attach the importer, allocate its fence context."""
    s, buf = dma_buf_export(s, t.tid, ops=EXPORTER_OPS, size=4096, priv="bar0", exp_name="vfio")
    emit_call("dma_buf_export", "vfio bar0", buf)
    r = dma_buf_dynamic_attach(s, t.tid, BUF, "importer", IMPORTER_OPS)
    if isinstance(r, Blocked):
        return r
    s, attach = r
    emit_call("dma_buf_dynamic_attach", f"buf{BUF}, importer", attach)
    if buf != BUF or attach != ATTACH or s.bufs[BUF].resv != BUF_RESV:
        raise RuntimeError(f"setup expected buf0/attach0/resv0, got {buf}/{attach}")
    s, ctx = dma_fence_context_alloc(s, 1)
    s = set_driver_state(s, IMPORTER, replace(_importer(s), fence_context=ctx))
    return finish(s, t, ret=0)


SETUP_RACE = program("setup", ("export and attach", _setup_race))


ImporterVariant = Literal["correct", "split", "unlocked"]


def pin_invalidate_race(importer: ImporterVariant = "correct") -> SystemModel:
    """pin_invalidate_race - a VFIO-like revoke (event "revoke") against a pinning importer.

    T0 is the finished setup, T1 the importer (variant ``importer``); the "revoke" event starts
    the exporter thread, "DMA done" the importer's DMA engine. With "correct" every property
    holds; "split" breaks no_device_mapping_after_revoke; "unlocked" breaks no_kernel_warning.
    core-semantics §5.8, §4, §6.5; drivers.md §1.3.
    """
    s = system_state(drivers=(RevocableExporter(), RevocableImporter()))
    s, setup = spawn(s, SETUP_RACE)
    s = run_thread(s, setup)
    s, _ = spawn(s, IMPORTER_PROGRAMS[importer])
    events = (
        EnvEvent("revoke", VFIO_REVOKE),
        EnvEvent("DMA done", DMA_ENGINE, guard=_dma_pending),
    )
    return SystemModel(
        s,
        events=events,
        properties=(*CORE_PROPERTIES, *RACE_PROPERTIES),
        name=f"pin_invalidate_race[{importer}]",
    )


# --- example 2: resv against memory_lock (drivers.md §1.7) -------------------------------------

MEMORY_LOCK = 0
"""Lock id of VFIO's memory_lock (an rw_semaphore), the first lock created."""
RESV = 0


def _down_write_memory_lock(s: KState, t: Thread) -> KState | Blocked:
    r = down_write(s, t.tid, MEMORY_LOCK)
    if isinstance(r, Blocked):
        return r
    emit_call("down_write", "memory_lock")
    return goto(r, t, "lock resv")


def _reset_lock_resv(s: KState, t: Thread) -> KState | Blocked:
    locked = _lock_resv(s, t, RESV)
    if isinstance(locked, Blocked):
        return locked
    emit("vfio_pci_dma_buf_move: revoked = true")
    return goto(locked, t, "unlock")


def _reset_unlock(s: KState, t: Thread) -> KState:
    s = _unlock_resv(s, t, RESV)
    s = up_write(s, t.tid, MEMORY_LOCK)
    emit_call("up_write", "memory_lock")
    return finish(s, t, ret=0)


VFIO_RESET = program(
    "vfio-reset",
    ("down_write memory_lock", _down_write_memory_lock),
    ("lock resv", _reset_lock_resv),
    ("unlock", _reset_unlock),
)
"""VFIO's order: memory_lock (write), then the resv inside it (drivers.md §1.7)."""


def _fault_lock_resv(s: KState, t: Thread) -> KState | Blocked:
    locked = _lock_resv(s, t, RESV)
    if isinstance(locked, Blocked):
        return locked
    emit("check revoked under resv")
    return goto(locked, t, "down_read memory_lock")


def _fault_down_read_nested(s: KState, t: Thread) -> KState | Blocked:
    r = down_read(s, t.tid, MEMORY_LOCK)
    if isinstance(r, Blocked):
        return r
    emit_call("down_read", "memory_lock")
    return goto(r, t, "unlock")


def _fault_unlock_nested(s: KState, t: Thread) -> KState:
    s = up_read(s, t.tid, MEMORY_LOCK)
    emit_call("up_read", "memory_lock")
    return finish(_unlock_resv(s, t, RESV), t, ret=0)


def _fault_check_then_drop(s: KState, t: Thread) -> KState | Blocked:
    locked = _lock_resv(s, t, RESV)
    if isinstance(locked, Blocked):
        return locked
    emit("check revoked under resv")
    return goto(_unlock_resv(locked, t, RESV), t, "down_read memory_lock")


def _fault_down_read_alone(s: KState, t: Thread) -> KState | Blocked:
    r = down_read(s, t.tid, MEMORY_LOCK)
    if isinstance(r, Blocked):
        return r
    emit_call("down_read", "memory_lock")
    emit("check revoked again")
    s = up_read(r, t.tid, MEMORY_LOCK)
    emit_call("up_read", "memory_lock")
    return finish(s, t, ret=0)


FAULT_PROGRAMS = {
    "nested": program(
        "importer-fault-nested",
        ("lock resv", _fault_lock_resv),
        ("down_read memory_lock", _fault_down_read_nested),
        ("unlock", _fault_unlock_nested),
    ),
    "fixed": program(
        "importer-fault-fixed",
        ("lock resv, check, unlock", _fault_check_then_drop),
        ("down_read memory_lock", _fault_down_read_alone),
    ),
}


def lock_order(importer: Literal["nested", "fixed"] = "nested") -> SystemModel:
    """lock_order - VFIO's memory_lock → resv against an importer path that takes the resv first.

    T0 vfio-reset takes memory_lock for write, then the resv; T1 importer-fault takes the resv,
    then ("nested") memory_lock for read while still holding it: ABBA, reported as a deadlock
    with its waits-for cycle. "fixed" drops the resv before memory_lock (drivers.md §1.7).
    """
    s = system_state()
    s, memory_lock = lock_init(s, RwSemaphore("memory_lock"))
    s, resv = dma_resv_init(s)
    if memory_lock != MEMORY_LOCK or resv != RESV:
        raise RuntimeError(f"expected memory_lock=0 and resv0, got {memory_lock} and {resv}")
    s, _ = spawn(s, VFIO_RESET)
    s, _ = spawn(s, FAULT_PROGRAMS[importer], "importer-fault")
    return SystemModel(s, properties=CORE_PROPERTIES, name=f"lock_order[{importer}]")


EXAMPLES: dict[str, Callable[[], SystemModel]] = {
    "pin_invalidate_race": lambda: pin_invalidate_race("correct"),
    "pin_invalidate_race_split": lambda: pin_invalidate_race("split"),
    "pin_invalidate_race_unlocked": lambda: pin_invalidate_race("unlocked"),
    "lock_order": lambda: lock_order("nested"),
    "lock_order_fixed": lambda: lock_order("fixed"),
}
"""Example name -> factory, for the CLI and the docs."""


__all__ = [
    "EXAMPLES",
    "RevocableExporter",
    "RevocableImporter",
    "lock_order",
    "pin_invalidate_race",
]
