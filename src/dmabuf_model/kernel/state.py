"""KState: the whole kernel-side state as one immutable, hashable value.

The checker copies and hashes states millions of times (design.md "The state is a value"), so
every object lives in a tuple indexed by a small integer id and every record is a frozen, slotted
dataclass. A kernel function takes a KState and returns a new one, sharing untouched parts.

The core never looks inside ``ext``: it is the rest of the world (platform and driver state),
read and written only by the exporter and importer callbacks that drivers provide.
"""

from __future__ import annotations

import inspect
from collections.abc import Hashable
from dataclasses import MISSING, dataclass, field, fields
from typing import TYPE_CHECKING, Any, Literal, TypeVar, dataclass_transform

if TYPE_CHECKING:
    from dmabuf_model.kernel.dma_buf import DmaBuf, DmaBufAttachment, SgTable
    from dmabuf_model.kernel.dma_fence import DmaFence
    from dmabuf_model.kernel.dma_resv import DmaResv, WwAcquireCtx
    from dmabuf_model.kernel.locking import Mutex, RwSemaphore
    from dmabuf_model.kernel.sync_file import SyncFile

Tid = int
"""A thread of execution (task). The core records which Tid holds each lock (§4)."""

FenceId = int
ResvId = int
BufId = int
AttachId = int
SgtId = int
LockId = int
CtxId = int
Fd = int

NO_TID: Tid = -1
"""Holder value of a free lock."""

T = TypeVar("T")

_REPLACERS: dict[type, Any] = {}


def _make_replacer(cls: type) -> Any:
    """Compile ``replace`` for one frozen dataclass: one attribute copy per field, no checks.

    dataclasses.replace introspects the class on every call; it was more than half of the
    checker's time on driver models. Fields with init=False (cached hashes) get their default.
    """
    lines = ["def _replace(obj, changes):", "    new = _new(cls)"]
    env: dict[str, Any] = {"_new": object.__new__, "_set": object.__setattr__, "cls": cls}
    for f in fields(cls):
        if f.init:
            lines.append(
                f"    _set(new, {f.name!r}, changes.pop({f.name!r}) "
                f"if {f.name!r} in changes else obj.{f.name})"
            )
        else:
            env[f"_d_{f.name}"] = f.default if f.default is not MISSING else None
            lines.append(f"    _set(new, {f.name!r}, _d_{f.name})")
    lines.append("    if changes:")
    lines.append("        raise TypeError(f'{cls.__name__} has no field(s) {sorted(changes)}')")
    lines.append("    return new")
    exec("\n".join(lines), env)
    return env["_replace"]


_HASHERS: dict[type, Any] = {}


def _make_hasher(cls: type) -> Any:
    names = [f.name for f in fields(cls) if (f.compare if f.hash is None else f.hash)]
    body = ", ".join(f"obj.{n}" for n in names)
    src = f"def _hash(obj):\n    return _h(({body},))\n"
    env: dict[str, Any] = {"_h": hash}
    exec(src, env)
    return env["_hash"]


def _cached_hash(self: Any) -> int:
    h: int = self._hash
    if h == 0:
        fn = _HASHERS.get(type(self))
        if fn is None:
            fn = _HASHERS[type(self)] = _make_hasher(type(self))
        h = fn(self) or 1
        object.__setattr__(self, "_hash", h)
    return h


@dataclass_transform(frozen_default=True)
def record(cls: type[T]) -> type[T]:
    """record - @dataclass(frozen=True, slots=True) whose hash is computed once and cached.

    States share most records with their predecessor; caching each record's hash means hashing
    a new state only re-hashes the records a step replaced. ``replace`` resets the cache.
    """
    ann = dict(inspect.get_annotations(cls))
    ann["_hash"] = "int"
    cls.__annotations__ = ann
    cls._hash = field(default=0, init=False, repr=False, compare=False)  # type: ignore[attr-defined]
    cls.__hash__ = _cached_hash  # type: ignore[method-assign]
    return dataclass(frozen=True, slots=True)(cls)


_BY_NAME: dict[tuple[type, str], Any] = {}


def register_by_name(obj: Any) -> None:
    """register_by_name - remember a callback table or program under (its class, its name).

    Ops tables and programs hold closures, which cannot be pickled; the parallel checker sends
    states between processes, so these objects pickle as their name and are found again here
    (the worker processes are forked after the model is built). Names must therefore be unique
    within a model, which their name-only equality already requires.
    """
    _BY_NAME[(type(obj), obj.name)] = obj


def lookup_by_name(cls: type, name: str) -> Any:
    """lookup_by_name - the object registered under (cls, name); used when unpickling."""
    try:
        return _BY_NAME[(cls, name)]
    except KeyError:
        raise KeyError(f"no {cls.__name__} named {name!r} was built in this process") from None


class PickledByName:
    """Mixin for a callback table or program hashed by ``name``: registers itself when built
    and pickles as its name (see register_by_name). The class must have a ``name`` field."""

    __slots__ = ()

    def __post_init__(self) -> None:
        register_by_name(self)

    def __reduce__(self) -> tuple[Any, tuple[type, str]]:
        return (lookup_by_name, (type(self), self.name))  # type: ignore[attr-defined]


def replace(obj: T, /, **changes: Any) -> T:
    """replace - dataclasses.replace for the model's frozen state records, compiled per class.

    Same meaning (a copy with some fields changed; the original is untouched) but no
    per-call introspection and no __post_init__: state records validate nothing on copy.
    """
    fn = _REPLACERS.get(type(obj))
    if fn is None:
        fn = _REPLACERS[type(obj)] = _make_replacer(type(obj))
    return fn(obj, changes)  # type: ignore[no-any-return]


@record
class KernelWarning:
    """A WARN or BUG the kernel would print, kept in the state so the checker can report it.

    ``invariant`` is the core-semantics §10 number (0 when the misuse has no number there);
    ``kind`` is "WARN" (execution continues as in the kernel) or "BUG" (fatal in the kernel; the
    model records it and stops the offending thread's effect).
    """

    invariant: int
    what: str
    kind: Literal["WARN", "BUG"] = "WARN"

    def __str__(self) -> str:
        num = f" (core-semantics §10 #{self.invariant})" if self.invariant else ""
        return f"{self.kind}: {self.what}{num}"


@dataclass(frozen=True, slots=True)
class Blocked:
    """Returned instead of a result when a call would sleep: the calling step is not enabled.

    ``on`` names the resource waited for ("resv0", "fence3", "memory_lock"), ``holder`` the thread
    that holds it when that is known; the scheduler builds the waits-for chain from these.
    """

    on: str
    holder: Tid = NO_TID


@record
class KState:
    """The kernel state: every dma_fence, dma_resv, dma_buf, attachment, lock and warning.

    Ids are indices into the tuples and are never reused; a released object stays in its slot
    with a released flag so that ids in traces keep their meaning.
    """

    fences: tuple[DmaFence, ...] = ()
    next_fence_context: int = 1  # dma_fence_context_alloc starts at 1; 0 is the stub (§9.3)
    resvs: tuple[DmaResv, ...] = ()
    ww_ctxs: tuple[WwAcquireCtx, ...] = ()
    next_ww_stamp: int = 1
    bufs: tuple[DmaBuf, ...] = ()
    attachments: tuple[DmaBufAttachment, ...] = ()
    sg_tables: tuple[SgTable, ...] = ()
    sync_files: tuple[SyncFile, ...] = ()
    locks: tuple[Mutex | RwSemaphore, ...] = ()
    fd_table: tuple[tuple[Fd, str, int], ...] = ()
    """Open descriptors as (fd, kind, object id); kind is "dma_buf" or "sync_file"."""
    next_fd: Fd = 3
    warnings: tuple[KernelWarning, ...] = ()
    ext: Hashable = None
    """The rest of the world (platform, drivers). Opaque to the core."""

    def evolve(self, **changes: Any) -> KState:
        """Return a copy with the given fields replaced (attrs' evolve, dataclasses.replace)."""
        return replace(self, **changes)


def warn(s: KState, invariant: int, what: str, kind: Literal["WARN", "BUG"] = "WARN") -> KState:
    """warn - record a kernel WARN/BUG once; the call then goes on as the kernel's would (§11).

    Recording the same warning twice leaves the state unchanged, so warnings do not multiply
    states in the checker.
    """
    w = KernelWarning(invariant, what, kind)
    if w in s.warnings:
        return s
    return replace(s, warnings=(*s.warnings, w))


def warn_if(s: KState, cond: bool, invariant: int, what: str) -> KState:
    """warn_if - WARN_ON(cond): record the warning when ``cond`` holds."""
    return warn(s, invariant, what) if cond else s


def tuple_set(items: tuple[T, ...], index: int, value: T) -> tuple[T, ...]:
    """tuple_set - a copy of ``items`` with ``items[index] = value`` (the state is a value)."""
    return (*items[:index], value, *items[index + 1 :])


def fields_of(record: object) -> tuple[str, ...]:
    """fields_of - the field names of a state record, for generic printers and JSON."""
    from dataclasses import fields

    return tuple(f.name for f in fields(record))  # type: ignore[arg-type]


__all__ = [
    "NO_TID",
    "AttachId",
    "Blocked",
    "BufId",
    "CtxId",
    "Fd",
    "FenceId",
    "KState",
    "KernelWarning",
    "LockId",
    "ResvId",
    "SgtId",
    "Tid",
    "field",
    "fields_of",
    "tuple_set",
    "warn",
    "warn_if",
]
