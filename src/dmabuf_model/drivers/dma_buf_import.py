"""dma_buf_import: an importer's own references to a dma-buf, taken at import, dropped at the end.

Models the importer side of drivers/dma-buf/dma-buf.c that every importer driver repeats around
its attachment (core-semantics §5.2, §5.4, §6.4): dma_buf_get on the descriptor userspace
passed in, and the final dma_buf_detach followed by dma_buf_put. The importer models share
these so their traces read the same.
"""

from __future__ import annotations

from dmabuf_model.kernel import errno
from dmabuf_model.kernel.dma_buf import dma_buf_detach, dma_buf_get, dma_buf_put, get_dma_buf
from dmabuf_model.kernel.state import AttachId, Blocked, BufId, KState, Tid
from dmabuf_model.system.threads import emit_call


def dma_buf_get_for(s: KState, tid: Tid, buf: BufId | None) -> tuple[KState, BufId | int]:
    """dma_buf_get_for - dma_buf_get on the descriptor userspace holds for ``buf``.

    Not a kernel function: the importer's uAPI receives an fd; the model looks up the fd the
    exporter installed for ``buf`` and calls dma_buf_get on it (-EBADF/-EINVAL as there). An
    exporter that installed no fd for a live buffer is treated as having passed the buffer
    in-kernel (get_dma_buf). ``buf`` None (the exporter has no buffer) is -EBADF.
    Core-semantics §5.2.
    """
    if buf is None:
        emit_call("dma_buf_get", "no fd", -errno.EBADF)
        return s, -errno.EBADF
    for fd, kind, obj in s.fd_table:
        if kind == "dma_buf" and obj == buf:
            s, ret = dma_buf_get(s, tid, fd)
            emit_call("dma_buf_get", f"fd{fd}", f"buf{ret}" if ret >= 0 else ret)
            return s, ret
    b = s.bufs[buf]
    if b.released or b.file_refcount <= 0:
        emit_call("dma_buf_get", "closed fd", -errno.EBADF)
        return s, -errno.EBADF
    emit_call("get_dma_buf", f"buf{buf} (no fd installed)")
    return get_dma_buf(s, buf), buf


def dma_buf_detach_put(s: KState, tid: Tid, buf: BufId, attach: AttachId) -> KState | Blocked:
    """dma_buf_detach_put - dma_buf_detach of ``attach``, then dma_buf_put of ``buf``.

    dma_buf_detach takes the resv itself: Blocked while another thread holds it (nothing is
    done then). Then the importer's reference to ``buf`` is dropped (the last one releases the
    buffer). Core-semantics §5.4, §5.2, §6.4 (unmap -> detach -> put).
    """
    r = dma_buf_detach(s, tid, buf, attach)
    if isinstance(r, Blocked):
        return r
    emit_call("dma_buf_detach", f"buf{buf}, attach{attach}")
    s = dma_buf_put(r, tid, buf)
    emit_call("dma_buf_put", f"buf{buf}")
    return s


__all__ = ["dma_buf_detach_put", "dma_buf_get_for"]
