"""Driver locks beside the resv: mutex and rw_semaphore (core-semantics §4, drivers.md §1.7)."""

from __future__ import annotations

import pytest

from dmabuf_model.kernel import errno
from dmabuf_model.kernel.locking import (
    CALLED_WITH_RESV_HELD,
    CALLED_WITHOUT_RESV,
    Mutex,
    RwSemaphore,
    down_read,
    down_read_trylock,
    down_write,
    down_write_trylock,
    lock_holders,
    lock_init,
    lockdep_assert_held,
    mutex_is_locked,
    mutex_lock,
    mutex_lock_interruptible,
    mutex_trylock,
    mutex_unlock,
    rwsem_is_locked,
    up_read,
    up_write,
)
from dmabuf_model.kernel.state import Blocked, KernelWarning, KState, LockId


def _mutex() -> tuple[KState, LockId]:
    return lock_init(KState(), Mutex("pages->mutex"))


def _rwsem() -> tuple[KState, LockId]:
    return lock_init(KState(), RwSemaphore("memory_lock"))


def _ok(r: KState | Blocked) -> KState:
    assert isinstance(r, KState), r
    return r


def test_mutex_lock_blocks_others_and_names_the_holder() -> None:
    """core-semantics §4: a held mutex blocks other threads; Blocked names the holder."""
    s, m = _mutex()
    s = _ok(mutex_lock(s, 1, m))
    assert mutex_is_locked(s, m) and lock_holders(s, m) == (1,)
    assert mutex_lock(s, 2, m) == Blocked(on="pages->mutex", holder=1)
    assert mutex_trylock(s, 2, m) == (s, False)
    s = mutex_unlock(s, 1, m)
    s, took = mutex_trylock(s, 2, m)
    assert took and lock_holders(s, m) == (2,)


def test_mutex_relock_by_the_holder_is_a_self_deadlock() -> None:
    """A mutex is not recursive: the holder waits for itself."""
    s, m = _mutex()
    s = _ok(mutex_lock(s, 1, m))
    assert mutex_lock(s, 1, m) == Blocked(on="pages->mutex", holder=1)


def test_mutex_lock_interruptible_returns_eintr_instead_of_sleeping() -> None:
    """mutex_lock_interruptible: 0 when free, -EINTR when it would sleep with a signal."""
    s, m = _mutex()
    r = mutex_lock_interruptible(s, 1, m)
    assert not isinstance(r, Blocked) and r[1] == 0
    s = r[0]
    r = mutex_lock_interruptible(s, 2, m, signal_pending=True)
    assert not isinstance(r, Blocked) and r[1] == -errno.EINTR
    assert mutex_lock_interruptible(s, 2, m) == Blocked(on="pages->mutex", holder=1)


def test_mutex_unlock_by_a_non_owner_warns() -> None:
    """DEBUG_MUTEXES: unlock by a non-owner warns; the lock is released as in the kernel."""
    s, m = _mutex()
    s = mutex_unlock(s, 1, m)
    assert not mutex_is_locked(s, m)
    s = _ok(mutex_lock(s, 1, m))
    s = mutex_unlock(s, 2, m)
    assert not mutex_is_locked(s, m)
    assert s.warnings == (
        KernelWarning(0, "mutex_unlock of pages->mutex by a thread that does not hold it"),
    )


def test_readers_share_the_rwsem_and_are_kept_sorted() -> None:
    """rw_semaphore: any number of readers, recorded as a sorted tuple."""
    s, r = _rwsem()
    s = _ok(down_read(s, 3, r))
    s = _ok(down_read(s, 1, r))
    s, took = down_read_trylock(s, 2, r)
    assert took and lock_holders(s, r) == (1, 2, 3) and rwsem_is_locked(s, r)
    assert down_write(s, 4, r) == Blocked(on="memory_lock", holder=1)
    assert down_write_trylock(s, 4, r) == (s, False)
    for tid in (1, 2, 3):
        s = up_read(s, tid, r)
    assert not rwsem_is_locked(s, r) and not s.warnings


def test_writer_excludes_readers_and_writers() -> None:
    """rw_semaphore: one writer; readers and writers wait for it (drivers.md §1.7 memory_lock)."""
    s, r = _rwsem()
    s = _ok(down_write(s, 1, r))
    assert lock_holders(s, r) == (1,)
    assert down_read(s, 2, r) == Blocked(on="memory_lock", holder=1)
    assert down_read_trylock(s, 2, r) == (s, False)
    assert down_write(s, 1, r) == Blocked(on="memory_lock", holder=1)
    s = up_write(s, 1, r)
    s, took = down_write_trylock(s, 2, r)
    assert took and lock_holders(s, r) == (2,)


def test_rwsem_release_by_a_non_holder_warns() -> None:
    """DEBUG_RWSEMS: up_read / up_write by a thread that does not hold it warns."""
    s, r = _rwsem()
    s = up_read(s, 1, r)
    s = _ok(down_write(s, 1, r))
    s = up_write(s, 2, r)
    assert not rwsem_is_locked(s, r)
    assert [w.what for w in s.warnings] == [
        "up_read of memory_lock by a thread that is not a reader",
        "up_write of memory_lock by a thread that is not the writer",
    ]


def test_lockdep_assert_held_distinguishes_read_and_write() -> None:
    """lockdep_assert_held(_write): a reader satisfies the first, only the writer the second."""
    s, r = _rwsem()
    s = _ok(down_read(s, 1, r))
    s = lockdep_assert_held(s, r, 1, "vfio_pci_dma_buf_move")
    assert not s.warnings
    s = lockdep_assert_held(s, r, 1, "vfio_pci_dma_buf_move", write=True, invariant=21)
    assert s.warnings == (
        KernelWarning(21, "vfio_pci_dma_buf_move without holding memory_lock for write"),
    )


def test_mutex_calls_on_an_rwsem_are_a_type_error() -> None:
    """Model bug: a mutex operation on a rw_semaphore (or the reverse) raises TypeError."""
    s, r = _rwsem()
    with pytest.raises(TypeError, match="rw_semaphore, not a mutex"):
        mutex_lock(s, 1, r)
    s, m = _mutex()
    with pytest.raises(TypeError, match="mutex, not a rw_semaphore"):
        down_read(s, 1, m)


def test_locking_convention_tables_are_disjoint() -> None:
    """core-semantics §4: no call is both "resv held" and "resv not held"."""
    assert not CALLED_WITH_RESV_HELD & CALLED_WITHOUT_RESV
    assert "dma_buf_invalidate_mappings" in CALLED_WITH_RESV_HELD
