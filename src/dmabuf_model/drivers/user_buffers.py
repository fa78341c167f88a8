"""UserBufferExporter: an exporter whose buffers userspace allocates by ioctl and holds by fd.

The system heap (DMA_HEAP_IOCTL_ALLOC) and udmabuf (UDMABUF_CREATE) share this shape
(drivers.md §5): a list of buffer records, a boot thread that allocates, and close(2) of the
first buffer's fd by userspace, after which the final dma_buf_put releases the pages.
"""

from __future__ import annotations

from typing import Any

from dmabuf_model.drivers.base import Exporter
from dmabuf_model.kernel.dma_buf import close_fd, fd_lookup
from dmabuf_model.kernel.state import BufId, KState, tuple_set
from dmabuf_model.system.model import EnvEvent, run_thread
from dmabuf_model.system.threads import Program, Thread, emit_call, finish, program, spawn


class UserBufferExporter(Exporter):
    """The buffer bookkeeping both static page exporters share.

    A subclass's state record has ``buffers``, a tuple of records with ``buf`` and ``fd``; it
    sets ``boot_program`` (run to completion at setup) and calls ``_init_close_program``.
    """

    boot_program: Program
    close_program: Program

    def _init_close_program(self, fd_name: str) -> None:
        self.close_program = program(
            f"{self.name}:{self.slot}: close", (f"close({fd_name} fd)", self._close)
        )

    def _buffers(self, s: KState) -> tuple[Any, ...]:
        return self.state(s).buffers  # type: ignore[no-any-return]

    def buffers(self, s: KState) -> tuple[int, ...]:
        """The BufIds allocated, oldest first (released ones included)."""
        return tuple(b.buf for b in self._buffers(s))

    def _index(self, s: KState, buf: BufId) -> int:
        for i, b in enumerate(self._buffers(s)):
            if b.buf == buf:
                return i
        raise ValueError(f"{self.name}: buf{buf} is not one of {self.kind}'s buffers")

    def _put_buffer(self, s: KState, i: int, b: Any) -> KState:
        return self.update(s, buffers=tuple_set(self._buffers(s), i, b))

    def setup(self, s: KState) -> KState:
        """Boot: userspace allocates the buffers (the boot thread, run to completion)."""
        s, tid = spawn(s, self.boot_program, f"{self.name} boot")
        return run_thread(s, tid)

    def _fd_open(self, s: KState) -> bool:
        bufs = self._buffers(s)
        return bool(bufs) and fd_lookup(s, bufs[0].fd) is not None

    def _close(self, s: KState, t: Thread) -> KState:
        b = self._buffers(s)[0]
        s, ret = close_fd(s, t.tid, b.fd)
        emit_call("close", f"fd{b.fd} (buf{b.buf})", ret)
        return finish(s, t, ret=ret)

    def close_event(self, budget: int) -> list[EnvEvent]:
        """close(2) of the first buffer's fd by userspace, at most ``budget`` times."""
        if budget <= 0:
            return []
        return [
            EnvEvent(
                f"{self.name}: close(dma-buf fd)",
                self.close_program,
                budget=budget,
                thread_name=f"{self.name} close",
                guard=self._fd_open,
            )
        ]
