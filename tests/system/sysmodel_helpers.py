"""Helpers imported by the system tests: toy locks kept in driver state.

The toy locks let the thread framework be tested without the kernel's locking module.
"""

from __future__ import annotations

from dmabuf_model.kernel.state import Blocked


def toy_lock(held: tuple[int, ...], lock: int, tid: int, name: str) -> tuple[int, ...] | Blocked:
    """Take toy lock ``lock`` (held[lock] is its holder tid, -1 when free) or say who blocks us."""
    holder = held[lock]
    if holder != -1:
        return Blocked(on=name, holder=holder)
    return (*held[:lock], tid, *held[lock + 1 :])
