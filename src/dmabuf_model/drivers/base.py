"""Driver models: the common shape of an exporter or importer and the static context it runs in.

A driver object is configuration, not state: it is built once per system with its slot in
World.drivers, its device and its named options, and it hands out the kernel callback tables
(DmaBufOps / DmaBufAttachOps), the programs its threads run, the environment events that start
them and the properties it adds. Everything that changes lives in the KState (drivers.md §0).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, ClassVar, TypeVar

from dmabuf_model.check.model import Property
from dmabuf_model.kernel.dma_buf import DmaBufAttachOps, DmaBufOps
from dmabuf_model.kernel.dma_resv import dma_resv_lock, dma_resv_unlock
from dmabuf_model.kernel.state import Blocked, KState, ResvId, Tid, replace
from dmabuf_model.platform.state import PlatformState
from dmabuf_model.platform.topology import Topology
from dmabuf_model.system.model import EnvEvent
from dmabuf_model.system.threads import (
    driver_state,
    emit_call,
    platform_state,
    set_driver_state,
    set_platform_state,
)

R = TypeVar("R")


class DriverError(ValueError):
    """A driver was configured wrongly (unknown option, a device the topology lacks)."""


@dataclass(frozen=True)
class Option:
    """A named driver option with its mainline default, as the spec README asks."""

    default: Any
    doc: str


@dataclass(frozen=True)
class DriverEnv:
    """The static machine every driver of one system shares: the topology and global options.

    ``options`` are system-wide switches (for example the design variant) that a driver may
    consult; per-driver options are passed to the driver itself.
    """

    topology: Topology
    options: Mapping[str, Any] = field(default_factory=dict)


class TakebackKind(Enum):
    """How an exporter takes memory back from its importers (drivers.md §7 legend)."""

    REVOKE = "revoke"
    """The storage goes away (VFIO reset, close, unplug); maps fail until it comes back."""
    MOVE = "move"
    """The storage moves (TTM eviction); importers map again at once."""


class Driver:
    """One kernel driver instance in a system: a slot in World.drivers and its device.

    Subclasses set ``kind`` (the matrix identifier, e.g. "vfio-pci"), declare ``OPTIONS`` with
    mainline defaults, and implement ``init_state``. ``name`` distinguishes two instances of the
    same driver in traces ("rdma0", "rdma1").
    """

    kind: ClassVar[str] = ""
    OPTIONS: ClassVar[Mapping[str, Option]] = {}

    def __init__(
        self, slot: int, env: DriverEnv, *, device: str, name: str = "", **options: Any
    ) -> None:
        unknown = sorted(set(options) - set(self.OPTIONS))
        if unknown:
            known = ", ".join(sorted(self.OPTIONS)) or "none"
            raise DriverError(
                f"{self.kind}: unknown option(s) {', '.join(unknown)}; known options: {known}"
            )
        self.slot = slot
        self.env = env
        self.device = device
        self.name = name or self.kind
        self.options: dict[str, Any] = {k: o.default for k, o in self.OPTIONS.items()}
        self.options.update(options)

    @property
    def topology(self) -> Topology:
        """The machine this driver runs on."""
        return self.env.topology

    def init_state(self) -> Hashable:
        """The driver's record in World.drivers at boot."""
        return None

    def state(self, s: KState) -> Any:
        """This driver's record in ``s`` (subclasses narrow the type)."""
        return driver_state(s, self.slot)

    def state_as(self, s: KState, cls: type[R]) -> R:
        """This driver's record in ``s``, asserted to be a ``cls`` (for typed state overrides)."""
        rec = driver_state(s, self.slot)
        assert isinstance(rec, cls)
        return rec

    def set_state(self, s: KState, value: Hashable) -> KState:
        """``s`` with this driver's record replaced."""
        return set_driver_state(s, self.slot, value)

    def update(self, s: KState, **changes: Any) -> KState:
        """``s`` with some fields of this driver's record changed (kernel.state.replace)."""
        return self.set_state(s, replace(self.state(s), **changes))

    def setup(self, s: KState) -> KState:
        """Work done at boot, before checking starts (an exporter exports its buffers here, by
        running its own programs to completion with system.model.run_thread)."""
        return s

    def events(self) -> Sequence[EnvEvent]:
        """The environment events that start this driver's code paths (with budgets)."""
        return ()

    def properties(self) -> Sequence[Property[KState]]:
        """Properties this driver adds (its own contract, with cite=)."""
        return ()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} slot={self.slot} device={self.device}>"


class Exporter(Driver):
    """A driver that exports dma-bufs: its dma_buf_ops and how it takes memory back."""

    takeback: ClassVar[TakebackKind | None] = None
    """REVOKE, MOVE, or None for a static exporter that never invalidates."""

    def dma_buf_ops(self) -> DmaBufOps:
        """The struct dma_buf_ops this exporter registers."""
        raise NotImplementedError

    def buffers(self, s: KState) -> tuple[int, ...]:
        """The BufIds this exporter has exported in ``s``, oldest first (importers take these)."""
        raise NotImplementedError


class Importer(Driver):
    """A driver that imports dma-bufs: its dma_buf_attach_ops (None for a static importer).

    ``source`` is the exporter whose buffer it imports (set by DmaBufSystem.add_importer).
    """

    source: Exporter | None = None

    def attach_ops(self) -> DmaBufAttachOps | None:
        """The struct dma_buf_attach_ops, or None for dma_buf_attach (static)."""
        return None


def platform(s: KState) -> PlatformState:
    """platform - the PlatformState in ``s``'s World (TypeError if the system has none)."""
    ps = platform_state(s)
    if not isinstance(ps, PlatformState):
        raise TypeError(f"this system has no PlatformState (World.platform is {ps!r})")
    return ps


def set_platform(s: KState, ps: PlatformState) -> KState:
    """set_platform - ``s`` with the platform replaced by ``ps``."""
    return set_platform_state(s, ps)


def dma_resv_lock_traced(s: KState, tid: Tid, resv: ResvId) -> KState | Blocked:
    """dma_resv_lock_traced - dma_resv_lock(resv, NULL) in a driver's step, with its trace line.

    Blocked while another thread holds the resv (nothing is traced then); with a NULL context
    the lock returns 0. Core-semantics §4.
    """
    r = dma_resv_lock(s, tid, resv, None)
    if isinstance(r, Blocked):
        return r
    emit_call("dma_resv_lock", f"resv{resv}, NULL", 0)
    return r[0]


def dma_resv_unlock_traced(s: KState, tid: Tid, resv: ResvId) -> KState:
    """dma_resv_unlock_traced - dma_resv_unlock in a driver's step, with its trace line.

    The caller (thread ``tid``) holds the resv. Core-semantics §4.
    """
    emit_call("dma_resv_unlock", f"resv{resv}")
    return dma_resv_unlock(s, tid, resv)


__all__ = [
    "Driver",
    "DriverEnv",
    "DriverError",
    "Exporter",
    "Importer",
    "Option",
    "TakebackKind",
    "dma_resv_lock_traced",
    "dma_resv_unlock_traced",
    "platform",
    "set_platform",
]
