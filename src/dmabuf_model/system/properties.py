"""The core-semantics §10 invariants that are predicates on one state, as named Properties.

Each invariant is written once, as a function listing the objects that break it ("attach0",
"resv0 by T1 importer-map"); ``invariant()`` turns it into an always-Property that holds when the
list is empty, with its ``cite=``, and remembers the function so ``explain(prop, s)`` can say
which objects broke a failing property. Later modules add their own (the platform's DMA access
oracle, per-driver properties) the same way and pass
``properties=(*CORE_PROPERTIES, *theirs)`` to SystemModel.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable

from dmabuf_model.check.model import Property
from dmabuf_model.kernel.dma_buf import dma_buf_pin_on_map, live_sgts, unsafe_unpinned_mapping
from dmabuf_model.kernel.locking import Mutex
from dmabuf_model.kernel.state import NO_TID, BufId, KState, Tid
from dmabuf_model.system.threads import world

Violations = Callable[[KState], list[str]]
"""Lists the objects that break an invariant in a state; empty when it holds."""

_EXPLAIN: weakref.WeakKeyDictionary[Callable[[KState], bool], Violations] = (
    weakref.WeakKeyDictionary()
)


def invariant(name: str, violations: Violations, *, cite: str) -> Property[KState]:
    """invariant - an always-Property named ``name`` that holds when ``violations(s)`` is empty.

    ``explain(prop, s)`` returns ``violations(s)`` for the property made here.
    """

    def condition(s: KState) -> bool:
        return not violations(s)

    condition.__name__ = condition.__qualname__ = name
    _EXPLAIN[condition] = violations
    return Property.always(name, condition, cite=cite)


def explain(prop: Property[KState], s: KState) -> list[str]:
    """explain - the objects that break ``prop`` in ``s`` (empty if it holds, or if ``prop`` was
    not made by ``invariant()``)."""
    fn = _EXPLAIN.get(prop.condition)
    return fn(s) if fn is not None else []


# --- the invariants ----------------------------------------------------------------------------


def kernel_warnings(s: KState) -> list[str]:
    """kernel_warnings - every recorded WARN/BUG with its §10 number, as reports print it.

    core-semantics §10, §11.
    """
    return [str(w) for w in s.warnings]


def unbalanced_pins(s: KState) -> list[str]:
    """unbalanced_pins - attachments whose pin count is negative or left over at detach.

    The ghost count of dma_buf_pin minus dma_buf_unpin, core-semantics §10 #19.
    """
    return [
        f"attach{i} pins={a.pins}"
        for i, a in enumerate(s.attachments)
        if a.pins < 0 or (a.detached and a.pins != 0)
    ]


def map_pin_mismatches(s: KState) -> list[str]:
    """map_pin_mismatches - attachments whose pin-on-map count is not their pinned mappings.

    Without pin-on-map (a dynamic importer, or an exporter without pin) the count must be 0.
    core-semantics §10 #16.
    """
    out = []
    for i, a in enumerate(s.attachments):
        expected = 0
        if dma_buf_pin_on_map(s, i):
            expected = sum(1 for t in live_sgts(s, i) if s.sg_tables[t].pinned_on_map)
        if a.map_pins != expected:
            out.append(f"attach{i} map_pins={a.map_pins} pinned mappings={expected}")
    return out


def unpinned_mappings_without_invalidate(s: KState) -> list[str]:
    """unpinned_mappings_without_invalidate - mapped, unpinned, and cannot be invalidated.

    Dynamic attachments without invalidate_mappings that hold a mapping but no pin
    (core-semantics §10 #24, §6.4 model note [inference]).
    """
    return [f"attach{i}" for i in unsafe_unpinned_mapping(s)]


def attachments_on_released_bufs(s: KState) -> list[str]:
    """attachments_on_released_bufs - attachments still attached to a released buffer (§10 #5)."""
    return [
        f"attach{i} on released buf{a.dmabuf}"
        for i, a in enumerate(s.attachments)
        if not a.detached and s.bufs[a.dmabuf].released
    ]


def attachment_list_mismatches(s: KState) -> list[str]:
    """attachment_list_mismatches - list entries that are detached or belong to another buffer.

    core-semantics §1.1, §10 #7, #15.

    Not the converse: between dma_buf_dynamic_attach_start and _finish an attachment exists
    before it is listed (core-semantics §5.3 steps 4-5).
    """
    return [
        f"buf{b} lists attach{i}"
        for b, buf in enumerate(s.bufs)
        for i in buf.attachments
        if s.attachments[i].detached or s.attachments[i].dmabuf != b
    ]


def mappings_after_detach(s: KState) -> list[str]:
    """mappings_after_detach - live sg_tables whose attachment has been detached (§10 #18)."""
    return [
        f"sgt{i} of detached attach{t.attach}"
        for i, t in enumerate(s.sg_tables)
        if t.live and s.attachments[t.attach].detached
    ]


def locks_held_by_exited_threads(s: KState) -> list[str]:
    """locks_held_by_exited_threads - locks and resvs held by finished threads.

    Listed as "resv0 by T1 importer-map"; core-semantics §4 [inference].
    """
    threads = world(s).threads
    done = {t.tid for t in threads if t.done}
    out = [f"resv{i} by {threads[r.holder]}" for i, r in enumerate(s.resvs) if r.holder in done]
    for lock in s.locks:
        holders: tuple[Tid, ...] = (
            (lock.holder,) if isinstance(lock, Mutex) else (lock.writer, *lock.readers)
        )
        out.extend(f"{lock.name} by {threads[h]}" for h in holders if h != NO_TID and h in done)
    return out


CORE_PROPERTIES: tuple[Property[KState], ...] = (
    invariant("no_kernel_warning", kernel_warnings, cite="core-semantics §10, §11"),
    invariant("pins_balanced", unbalanced_pins, cite="core-semantics §10 #19"),
    invariant("static_map_pins_match_mappings", map_pin_mismatches, cite="core-semantics §10 #16"),
    invariant(
        "no_unpinned_mapping_without_invalidate",
        unpinned_mappings_without_invalidate,
        cite="core-semantics §10 #24, §6.4 [inference]",
    ),
    invariant(
        "attachments_only_on_live_bufs", attachments_on_released_bufs, cite="core-semantics §10 #5"
    ),
    invariant(
        "attachment_list_consistent",
        attachment_list_mismatches,
        cite="core-semantics §1.1, §10 #7, #15",
    ),
    invariant("no_mapping_after_detach", mappings_after_detach, cite="core-semantics §10 #18"),
    invariant(
        "no_lock_held_after_exit",
        locks_held_by_exited_threads,
        cite="core-semantics §4 [inference: lockdep's lock held when returning to user space]",
    ),
)
"""The state-predicate invariants of core-semantics §10 that hold for any drivers."""


def no_live_mapping_after_revoke(
    revoke_completed: Callable[[KState, BufId], bool],
    *,
    name: str = "no_live_mapping_after_revoke",
) -> Property[KState]:
    """no_live_mapping_after_revoke - once a revoke of a buffer completed, it has no live sgt.

    ``revoke_completed(s, buf)`` is the exporter's word that the §5.8 sequence ran to its end
    (revoked set under the lock, invalidated, BOOKKEEP fences waited for, unmaps waited for).
    core-semantics §5.8, §10 #22. Drivers with their own notion of a device mapping add a
    property of their own next to this one. Each call makes a new property; give each a
    distinct ``name`` when one model uses several.
    """

    def violations(s: KState) -> list[str]:
        return [
            f"sgt{i} of revoked buf{s.attachments[t.attach].dmabuf}"
            for i, t in enumerate(s.sg_tables)
            if t.live and revoke_completed(s, s.attachments[t.attach].dmabuf)
        ]

    return invariant(name, violations, cite="core-semantics §5.8, §10 #22")


__all__ = [
    "CORE_PROPERTIES",
    "Violations",
    "attachment_list_mismatches",
    "attachments_on_released_bufs",
    "explain",
    "invariant",
    "kernel_warnings",
    "locks_held_by_exited_threads",
    "map_pin_mismatches",
    "mappings_after_detach",
    "no_live_mapping_after_revoke",
    "unbalanced_pins",
    "unpinned_mappings_without_invalidate",
]
