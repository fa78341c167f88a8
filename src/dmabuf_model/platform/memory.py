"""memory: system RAM pages and PCI BAR ranges, each with a generation (mm/, drivers/pci/).

What a device reaches is only safe if it is still the memory it was given: every range carries
a generation that moves on whenever the range is freed, reset, reassigned or unplugged, and the
oracle compares it with the generation recorded when the address was handed out.

A range's generation is the length of its history: ``history[g]`` is why generation ``g``
ended. Keeping the causes (not just a counter) lets the oracle name what an access hit:
memory reused by someone else, device memory wiped by a reset, or a device that is gone.
"""

from __future__ import annotations

from enum import IntEnum
from typing import TYPE_CHECKING

from dmabuf_model.kernel import errno
from dmabuf_model.kernel.state import record, tuple_set
from dmabuf_model.platform.topology import RangeKind, Topology

if TYPE_CHECKING:
    from dmabuf_model.platform.state import PlatformState


class GenCause(IntEnum):
    """Why a range's generation ended. The order is the oracle's precedence (worst first).

    An IntEnum so that hashing a state stays in C; ``str()`` gives the lowercase name.
    """

    FREED = 1
    """RAM pages went back to the allocator; anyone may get them next."""
    REASSIGNED = 2
    """The bus address window was given to another BAR or device (resource reassignment,
    hot-add after an unplug)."""
    RESET = 3
    """The function behind the BAR was reset (FLR, bus reset, D3hot/D3cold to D0)."""
    UNPLUGGED = 4
    """The function was removed from the bus in an orderly way (after its drivers' remove)."""
    SURPRISE_UNPLUGGED = 5
    """The function vanished without warning (link down, surprise hot-unplug)."""

    def __str__(self) -> str:
        return self.name.lower()


@record
class MemRange:
    """The changing facts of one memory range (its static facts are in Topology.ranges).

    ``allocated`` is false for a free RAM region (BARs are always true). ``revoked`` is set by
    the oracle when an exporter declares a revoke of this range complete, until it unrevokes.
    """

    history: tuple[GenCause, ...] = ()
    allocated: bool = True
    revoked: bool = False

    @property
    def gen(self) -> int:
        """The current generation (0 at boot)."""
        return len(self.history)


def range_gen(ps: PlatformState, range_id: int) -> int:
    """range_gen - the current generation of range ``range_id``.

    Spec: core-semantics §5.8 (no reuse while importers may reach it), drivers.md §5.1, §6.
    """
    return len(ps.ranges[range_id].history)


def range_bump(ps: PlatformState, range_id: int, cause: GenCause) -> PlatformState:
    """range_bump - end the current generation of ``range_id`` because of ``cause``.

    Called by the PCI events and by ram_free; not a kernel function.
    Spec: core-semantics §5.8 (no reuse while importers may reach it), drivers.md §5.1, §6.
    """
    r = ps.ranges[range_id]
    new = MemRange((*r.history, cause), r.allocated, r.revoked)
    return ps.evolve(ranges=tuple_set(ps.ranges, range_id, new))


def ram_alloc(
    ps: PlatformState, topo: Topology, range_id: int | None = None
) -> tuple[PlatformState, int]:
    """ram_alloc - take a free RAM region: ``range_id``, or the lowest free one.

    Models the page allocator behind a heap or memfd allocation: freed regions are handed out
    again, lowest first, so a stale mapping of a freed region meets its reuse.
    Returns the range id, or -ENOMEM when no region (or not ``range_id``) is free.
    Spec: core-semantics §5.8 (no reuse while importers may reach it), drivers.md §5.1, §6.
    """
    candidates = topo.ram_ranges if range_id is None else (range_id,)
    for r in candidates:
        if topo.ranges[r].kind is not RangeKind.SYSTEM_RAM:
            raise ValueError(f"ram_alloc: {topo.ranges[r].name} is not system RAM")
        if not ps.ranges[r].allocated:
            new = MemRange(ps.ranges[r].history, True, ps.ranges[r].revoked)
            return ps.evolve(ranges=tuple_set(ps.ranges, r, new)), r
    return ps, -errno.ENOMEM


def ram_free(ps: PlatformState, topo: Topology, range_id: int) -> PlatformState:
    """ram_free - give RAM region ``range_id`` back; its generation ends (FREED).

    Freeing a region that is not allocated is a bug in the model that calls it (ValueError).
    Spec: core-semantics §5.8 (no reuse while importers may reach it), drivers.md §5.1, §6.
    """
    info = topo.ranges[range_id]
    if info.kind is not RangeKind.SYSTEM_RAM:
        raise ValueError(f"ram_free: {info.name} is not system RAM")
    if not ps.ranges[range_id].allocated:
        raise ValueError(f"ram_free: {info.name} is already free")
    ps = range_bump(ps, range_id, GenCause.FREED)
    new = MemRange(ps.ranges[range_id].history, False, ps.ranges[range_id].revoked)
    return ps.evolve(ranges=tuple_set(ps.ranges, range_id, new))


__all__ = ["GenCause", "MemRange", "ram_alloc", "ram_free", "range_bump", "range_gen"]
