"""Sleeping locks beside the resv: mutex and rw_semaphore (kernel/locking/mutex.c, rwsem.c),
and the DOC "locking convention" of dma-buf.c as data (core-semantics §4).

Drivers need them next to the resv: VFIO's memory_lock, iommufd's pages->mutex (drivers.md
§1.7, §2). Locks record their holder thread so a blocked acquisition can name whom it waits
for, which is what the scheduler's waits-for chain and deadlock report are built from.

Modelling choices: no wait queues, so no fairness (a reader is not held back by a waiting
writer); a thread that re-takes a lock it holds (mutex, or the write side of an rwsem) waits
for itself: Blocked with itself as the holder. Unlocking a lock the thread does not hold is a
WARN (DEBUG_MUTEXES / DEBUG_RWSEMS); the lock is still released when another thread holds it,
as the kernel does.
"""

from __future__ import annotations

from dmabuf_model.kernel import errno
from dmabuf_model.kernel.state import (
    NO_TID,
    Blocked,
    KState,
    LockId,
    Tid,
    record,
    replace,
    tuple_set,
    warn,
)


@record
class Mutex:
    """Model of struct mutex: one holder or none (kernel/locking/mutex.c)."""

    name: str
    holder: Tid = NO_TID


@record
class RwSemaphore:
    """Model of struct rw_semaphore: one writer, or any number of readers (sorted tuple)."""

    name: str
    writer: Tid = NO_TID
    readers: tuple[Tid, ...] = ()


# The DOC "locking convention" of drivers/dma-buf/dma-buf.c, core-semantics §4.
CALLED_WITH_RESV_HELD: frozenset[str] = frozenset(
    {
        "dma_buf_pin",
        "dma_buf_unpin",
        "dma_buf_map_attachment",
        "dma_buf_unmap_attachment",
        "dma_buf_vmap",
        "dma_buf_vunmap",
        "dma_buf_invalidate_mappings",
    }
)
CALLED_WITHOUT_RESV: frozenset[str] = frozenset(
    {
        "dma_buf_attach",
        "dma_buf_dynamic_attach",
        "dma_buf_detach",
        "dma_buf_export",
        "dma_buf_fd",
        "dma_buf_get",
        "dma_buf_put",
        "dma_buf_mmap",
        "dma_buf_begin_cpu_access",
        "dma_buf_end_cpu_access",
        "dma_buf_map_attachment_unlocked",
        "dma_buf_unmap_attachment_unlocked",
        "dma_buf_vmap_unlocked",
        "dma_buf_vunmap_unlocked",
    }
)
OPS_CALLED_LOCKED: frozenset[str] = frozenset(
    {"pin", "unpin", "map_dma_buf", "unmap_dma_buf", "vmap", "vunmap"}
)
OPS_CALLED_UNLOCKED: frozenset[str] = frozenset(
    {"attach", "detach", "release", "begin_cpu_access", "end_cpu_access", "mmap"}
)


# ---------------------------------------------------------------------------------------------
# Operations on KState.locks


def _mutex(s: KState, lock: LockId) -> Mutex:
    m = s.locks[lock]
    if not isinstance(m, Mutex):
        raise TypeError(f"lock{lock} ({m.name}) is a rw_semaphore, not a mutex")
    return m


def _rwsem(s: KState, lock: LockId) -> RwSemaphore:
    r = s.locks[lock]
    if not isinstance(r, RwSemaphore):
        raise TypeError(f"lock{lock} ({r.name}) is a mutex, not a rw_semaphore")
    return r


def _set(s: KState, lock: LockId, value: Mutex | RwSemaphore) -> KState:
    return s.evolve(locks=tuple_set(s.locks, lock, value))


def _name(s: KState, lock: LockId) -> str:
    return s.locks[lock].name or f"lock{lock}"


def lock_init(s: KState, lock: Mutex | RwSemaphore) -> tuple[KState, LockId]:
    """lock_init - add ``lock`` (mutex_init / init_rwsem) and return its LockId.

    The record is stored as given; pass it unlocked (core-semantics §4).
    """
    return s.evolve(locks=(*s.locks, lock)), len(s.locks)


def lock_holders(s: KState, lock: LockId) -> tuple[Tid, ...]:
    """lock_holders - who holds ``lock``: the mutex owner, the rwsem writer, or its readers.

    Spec: core-semantics §4; drivers.md §1.7 (memory_lock), §2.3 (pages->mutex).
    """
    value = s.locks[lock]
    if isinstance(value, Mutex):
        return () if value.holder == NO_TID else (value.holder,)
    if value.writer != NO_TID:
        return (value.writer,)
    return value.readers


def lockdep_assert_held(
    s: KState, lock: LockId, tid: Tid, what: str, *, write: bool = False, invariant: int = 0
) -> KState:
    """lockdep_assert_held - WARN unless ``tid`` holds ``lock`` (for writing when ``write``).

    include/linux/lockdep.h (lockdep_assert_held, lockdep_assert_held_write). ``what`` names
    the call that needs the lock; ``invariant`` the §10 number to report (0: none).
    """
    value = s.locks[lock]
    if isinstance(value, Mutex):
        held = value.holder == tid
    else:
        held = value.writer == tid or (not write and tid in value.readers)
    if held:
        return s
    mode = " for write" if write else ""
    return warn(s, invariant, f"{what} without holding {_name(s, lock)}{mode}")


def mutex_is_locked(s: KState, lock: LockId) -> bool:
    """mutex_is_locked - some thread holds the mutex ``lock``.

    Spec: core-semantics §4; drivers.md §1.7 (memory_lock), §2.3 (pages->mutex).
    """
    return _mutex(s, lock).holder != NO_TID


def mutex_lock(s: KState, tid: Tid, lock: LockId) -> KState | Blocked:
    """mutex_lock - take the mutex; Blocked while anyone (including ``tid``) holds it.

    kernel/locking/mutex.c. Might sleep. Returns void (core-semantics §4).
    """
    m = _mutex(s, lock)
    if m.holder != NO_TID:
        return Blocked(on=_name(s, lock), holder=m.holder)
    return _set(s, lock, replace(m, holder=tid))


def mutex_lock_interruptible(
    s: KState, tid: Tid, lock: LockId, *, signal_pending: bool = False
) -> tuple[KState, int] | Blocked:
    """mutex_lock_interruptible - mutex_lock; -EINTR instead of sleeping with a signal pending.

    kernel/locking/mutex.c. Returns 0 or -EINTR.
    Spec: core-semantics §4; drivers.md §1.7 (memory_lock), §2.3 (pages->mutex).
    """
    m = _mutex(s, lock)
    if m.holder != NO_TID:
        if signal_pending:
            return s, -errno.EINTR
        return Blocked(on=_name(s, lock), holder=m.holder)
    return _set(s, lock, replace(m, holder=tid)), 0


def mutex_trylock(s: KState, tid: Tid, lock: LockId) -> tuple[KState, bool]:
    """mutex_trylock - take the mutex if it is free; never sleeps. Returns True when taken.

    Spec: core-semantics §4; drivers.md §1.7 (memory_lock), §2.3 (pages->mutex).
    """
    m = _mutex(s, lock)
    if m.holder != NO_TID:
        return s, False
    return _set(s, lock, replace(m, holder=tid)), True


def mutex_unlock(s: KState, tid: Tid, lock: LockId) -> KState:
    """mutex_unlock - release the mutex.

    kernel/locking/mutex.c. WARN when ``tid`` is not the owner; a free mutex stays free, one
    held by another thread is released anyway (DEBUG_MUTEXES behaviour).
    Spec: core-semantics §4; drivers.md §1.7 (memory_lock), §2.3 (pages->mutex).
    """
    m = _mutex(s, lock)
    if m.holder == tid:
        return _set(s, lock, replace(m, holder=NO_TID))
    s = warn(s, 0, f"mutex_unlock of {_name(s, lock)} by a thread that does not hold it")
    if m.holder == NO_TID:
        return s
    return _set(s, lock, replace(m, holder=NO_TID))


def down_read(s: KState, tid: Tid, lock: LockId) -> KState | Blocked:
    """down_read - take the rw_semaphore for reading; Blocked while a writer holds it.

    kernel/locking/rwsem.c. Might sleep. Readers are kept sorted; a thread may appear more than
    once (recursive read).
    Spec: core-semantics §4; drivers.md §1.7 (memory_lock), §2.3 (pages->mutex).
    """
    r = _rwsem(s, lock)
    if r.writer != NO_TID:
        return Blocked(on=_name(s, lock), holder=r.writer)
    return _set(s, lock, replace(r, readers=tuple(sorted((*r.readers, tid)))))


def down_read_trylock(s: KState, tid: Tid, lock: LockId) -> tuple[KState, bool]:
    """down_read_trylock - take the rwsem for reading if no writer holds it; never sleeps.

    Spec: core-semantics §4; drivers.md §1.7 (memory_lock), §2.3 (pages->mutex).
    """
    r = _rwsem(s, lock)
    if r.writer != NO_TID:
        return s, False
    return _set(s, lock, replace(r, readers=tuple(sorted((*r.readers, tid))))), True


def up_read(s: KState, tid: Tid, lock: LockId) -> KState:
    """up_read - drop one read hold of ``tid``; WARN (and no change) if it holds none.

    Spec: core-semantics §4; drivers.md §1.7 (memory_lock), §2.3 (pages->mutex).
    """
    r = _rwsem(s, lock)
    if tid not in r.readers:
        return warn(s, 0, f"up_read of {_name(s, lock)} by a thread that is not a reader")
    i = r.readers.index(tid)
    return _set(s, lock, replace(r, readers=r.readers[:i] + r.readers[i + 1 :]))


def down_write(s: KState, tid: Tid, lock: LockId) -> KState | Blocked:
    """down_write - take the rw_semaphore for writing; Blocked while anyone holds it.

    kernel/locking/rwsem.c. Might sleep. The Blocked names the writer, or the first reader.
    Spec: core-semantics §4; drivers.md §1.7 (memory_lock), §2.3 (pages->mutex).
    """
    r = _rwsem(s, lock)
    if r.writer != NO_TID or r.readers:
        holder = r.writer if r.writer != NO_TID else r.readers[0]
        return Blocked(on=_name(s, lock), holder=holder)
    return _set(s, lock, replace(r, writer=tid))


def down_write_trylock(s: KState, tid: Tid, lock: LockId) -> tuple[KState, bool]:
    """down_write_trylock - take the rwsem for writing if nobody holds it; never sleeps.

    Spec: core-semantics §4; drivers.md §1.7 (memory_lock), §2.3 (pages->mutex).
    """
    r = _rwsem(s, lock)
    if r.writer != NO_TID or r.readers:
        return s, False
    return _set(s, lock, replace(r, writer=tid)), True


def up_write(s: KState, tid: Tid, lock: LockId) -> KState:
    """up_write - release the write hold; WARN when ``tid`` is not the writer (the rwsem is
    Spec: core-semantics §4; drivers.md §1.7 (memory_lock), §2.3 (pages->mutex).
    still released if another thread writes, as the kernel does)."""
    r = _rwsem(s, lock)
    if r.writer == tid:
        return _set(s, lock, replace(r, writer=NO_TID))
    s = warn(s, 0, f"up_write of {_name(s, lock)} by a thread that is not the writer")
    if r.writer == NO_TID:
        return s
    return _set(s, lock, replace(r, writer=NO_TID))


def rwsem_is_locked(s: KState, lock: LockId) -> bool:
    """rwsem_is_locked - a writer or at least one reader holds ``lock``.

    Spec: core-semantics §4; drivers.md §1.7 (memory_lock), §2.3 (pages->mutex).
    """
    r = _rwsem(s, lock)
    return r.writer != NO_TID or bool(r.readers)


__all__ = [
    "CALLED_WITHOUT_RESV",
    "CALLED_WITH_RESV_HELD",
    "OPS_CALLED_LOCKED",
    "OPS_CALLED_UNLOCKED",
    "Mutex",
    "RwSemaphore",
    "down_read",
    "down_read_trylock",
    "down_write",
    "down_write_trylock",
    "lock_holders",
    "lock_init",
    "lockdep_assert_held",
    "mutex_is_locked",
    "mutex_lock",
    "mutex_lock_interruptible",
    "mutex_trylock",
    "mutex_unlock",
    "rwsem_is_locked",
    "up_read",
    "up_write",
]
