"""dma_buf uAPI: the dma-buf file's ioctls, llseek, poll, fdinfo and debugfs bufinfo.

What userspace sees of drivers/dma-buf/dma-buf.c and include/uapi/linux/dma-buf.h
(core-semantics §5.13-§5.16), split from kernel/dma_buf.py to keep each module readable.

DOC: implicit fence poll support (paraphrased). Polling a dma-buf fd reports EPOLLIN once the
fences a reader must wait for (KERNEL and WRITE) have signalled and EPOLLOUT once those a writer
must wait for (every implicit fence) have. Each direction has one callback slot: the first poll
arms it on the first unsignalled fence (holding a file reference until it fires); a poll while
the slot is armed reports nothing for that direction. Ready only means the fences signalled: CPU
access still needs DMA_BUF_IOCTL_SYNC.

Modelling choices: the ioctl argument is a small record (None models a bad user pointer,
-EFAULT); EXPORT_SYNC_FILE's out-parameter (the new fd) is what dma_buf_export_sync_file returns,
while dma_buf_ioctl returns the ioctl's 0, as the kernel does. Allocation and copy-out failures
are offered by the caller (``alloc_fails``, ``copy_out_fails``).
"""

from __future__ import annotations

from typing import Literal

from dmabuf_model.kernel.dma_buf import (
    DMA_BUF_NAME_LEN,
    O_ACCMODE,
    O_RDONLY,
    O_RDWR,
    O_WRONLY,
    RLIMIT_NOFILE,
    DmaDataDirection,
    dma_buf_begin_cpu_access,
    dma_buf_end_cpu_access,
    dma_buf_put,
    fd_lookup,
    get_dma_buf,
)
from dmabuf_model.kernel.dma_fence import (
    DmaFenceCb,
    dma_fence_add_callback,
    dma_fence_get,
    dma_fence_get_stub,
    dma_fence_put,
    dma_fence_register_cb_func,
)
from dmabuf_model.kernel.dma_fence_chain import dma_fence_unwrap_for_each
from dmabuf_model.kernel.dma_resv import (
    DmaResvUsage,
    dma_resv_add_fence,
    dma_resv_describe,
    dma_resv_get_singleton,
    dma_resv_iter,
    dma_resv_lock,
    dma_resv_reserve_fences,
    dma_resv_unlock,
    dma_resv_usage_rw,
)
from dmabuf_model.kernel.errno import EBADF, EFAULT, EINTR, EINVAL, EMFILE, ENOMEM, ENOTTY
from dmabuf_model.kernel.state import (
    NO_TID,
    Blocked,
    BufId,
    Fd,
    FenceId,
    KState,
    Tid,
    record,
    replace,
    tuple_set,
)
from dmabuf_model.kernel.sync_file import sync_file_create, sync_file_get_fence, sync_file_release

# struct dma_buf_sync flags (core-semantics §5.15).
DMA_BUF_SYNC_READ = 1 << 0
DMA_BUF_SYNC_WRITE = 2 << 0
DMA_BUF_SYNC_RW = DMA_BUF_SYNC_READ | DMA_BUF_SYNC_WRITE
DMA_BUF_SYNC_START = 0 << 2
DMA_BUF_SYNC_END = 1 << 2
DMA_BUF_SYNC_VALID_FLAGS_MASK = DMA_BUF_SYNC_RW | DMA_BUF_SYNC_END

DMA_BUF_BASE = ord("b")
_IOC_WRITE = 1
_IOC_READ = 2


def _ioc(direction: int, nr: int, size: int) -> int:
    return (direction << 30) | (size << 16) | (DMA_BUF_BASE << 8) | nr


DMA_BUF_IOCTL_SYNC = _ioc(_IOC_WRITE, 0, 8)
DMA_BUF_SET_NAME_A = _ioc(_IOC_WRITE, 1, 4)
DMA_BUF_SET_NAME_B = _ioc(_IOC_WRITE, 1, 8)
DMA_BUF_SET_NAME = DMA_BUF_SET_NAME_B
"""The pointer-typed request equals _B on a 64-bit kernel."""
DMA_BUF_IOCTL_EXPORT_SYNC_FILE = _ioc(_IOC_WRITE | _IOC_READ, 2, 8)
DMA_BUF_IOCTL_IMPORT_SYNC_FILE = _ioc(_IOC_WRITE, 3, 8)

EPOLLIN = 0x001
EPOLLOUT = 0x004
EPOLLERR = 0x008

SEEK_SET = 0
SEEK_CUR = 1
SEEK_END = 2

DMA_BUF_POLL_CB = "dma_buf_poll_cb"
"""Name of the poll wake-up callback; its ``data`` is (BufId, "in" | "out")."""


@record
class DmaBufSync:
    """struct dma_buf_sync: DMA_BUF_SYNC_* flags."""

    flags: int


@record
class DmaBufExportSyncFile:
    """struct dma_buf_export_sync_file: flags in; ``fd`` is written back by the kernel."""

    flags: int
    fd: int = -1


@record
class DmaBufImportSyncFile:
    """struct dma_buf_import_sync_file: flags and the sync_file descriptor to import."""

    flags: int
    fd: int


IoctlArg = DmaBufSync | DmaBufExportSyncFile | DmaBufImportSyncFile | str | None
"""The user argument: a record, the name string for SET_NAME, or None (a bad user pointer)."""


# --------------------------------------------------------------------------------------------
# §5.15 ioctls.


def _sync_dir(flags: int) -> DmaDataDirection | None:
    rw = flags & DMA_BUF_SYNC_RW
    if rw == DMA_BUF_SYNC_READ:
        return DmaDataDirection.FROM_DEVICE
    if rw == DMA_BUF_SYNC_WRITE:
        return DmaDataDirection.TO_DEVICE
    if rw == DMA_BUF_SYNC_RW:
        return DmaDataDirection.BIDIRECTIONAL
    return None


def dma_buf_ioctl_sync(
    s: KState, tid: Tid, buf: BufId, arg: DmaBufSync | None, *, signal_pending: bool = False
) -> tuple[KState, int] | Blocked:
    """dma_buf_ioctl_sync - DMA_BUF_IOCTL_SYNC: bracket CPU access from userspace.

    Bits outside READ|WRITE|END, or no READ/WRITE bit, are rejected. READ maps to FROM_DEVICE,
    WRITE to TO_DEVICE, both to BIDIRECTIONAL; END calls dma_buf_end_cpu_access, otherwise
    (START) dma_buf_begin_cpu_access, which can block on fences. No resv held (§4).

    Returns: 0; -EFAULT (bad pointer); -EINVAL; what begin/end return (-ERESTARTSYS, -EINTR,
    exporter errors; userspace retries -EAGAIN/-EINTR). Core-semantics §5.15.
    """
    if arg is None:
        return s, -EFAULT
    if arg.flags & ~DMA_BUF_SYNC_VALID_FLAGS_MASK:
        return s, -EINVAL
    direction = _sync_dir(arg.flags)
    if direction is None:
        return s, -EINVAL
    if arg.flags & DMA_BUF_SYNC_END:
        return dma_buf_end_cpu_access(s, tid, buf, direction)
    return dma_buf_begin_cpu_access(s, tid, buf, direction, signal_pending=signal_pending)


def dma_buf_set_name(
    s: KState, tid: Tid, buf: BufId, name: str | None, *, alloc_fails: bool = False
) -> tuple[KState, int]:
    """dma_buf_set_name - DMA_BUF_SET_NAME_A/_B: replace the buffer's name.

    The user string must fit in DMA_BUF_NAME_LEN bytes with its NUL (at most 31 characters).
    Allowed at any time, with or without attachments (the -EBUSY in the kernel comment is
    stale). Only ``name`` changes (§10 #28); it is swapped under the name spinlock.

    Returns: 0; -EFAULT (``name`` None: bad pointer); -EINVAL (too long); -ENOMEM.
    Core-semantics §5.15, §10 #28.
    """
    if name is None:
        return s, -EFAULT
    if len(name.encode()) >= DMA_BUF_NAME_LEN:
        return s, -EINVAL
    if alloc_fails:
        return s, -ENOMEM
    return s.evolve(bufs=tuple_set(s.bufs, buf, replace(s.bufs[buf], name=name))), 0


def _valid_sync_file_flags(flags: int) -> bool:
    return flags != 0 and not flags & ~DMA_BUF_SYNC_RW


def dma_buf_export_sync_file(
    s: KState,
    tid: Tid,
    buf: BufId,
    arg: DmaBufExportSyncFile | None,
    *,
    alloc_fails: bool = False,
    copy_out_fails: bool = False,
) -> tuple[KState, Fd | int]:
    """dma_buf_export_sync_file - DMA_BUF_IOCTL_EXPORT_SYNC_FILE: snapshot the implicit fences.

    Flags must be non-zero and within READ|WRITE. Reserves a descriptor, then takes a singleton
    of the resv fences of usage READ when WRITE is asked (a writer waits for everything) and
    WRITE otherwise (a reader waits for KERNEL and WRITE); with no fence, the signalled stub.
    Wraps it in a sync_file and installs the descriptor. A snapshot, not a live view: the
    import/submit/export sequence is not atomic. No resv lock taken (unlocked singleton).

    Returns: the new descriptor (the kernel writes it to arg.fd and returns 0); -EFAULT (bad
    pointer, or copy-out: the sync_file is dropped); -EINVAL; -EMFILE; -ENOMEM.
    Core-semantics §5.15.
    """
    if arg is None:
        return s, -EFAULT
    if not _valid_sync_file_flags(arg.flags):
        return s, -EINVAL
    if len(s.fd_table) >= RLIMIT_NOFILE:
        return s, -EMFILE
    usage = dma_resv_usage_rw(bool(arg.flags & DMA_BUF_SYNC_WRITE))
    s, fence = dma_resv_get_singleton(s, s.bufs[buf].resv, usage, alloc_fails=alloc_fails)
    if fence is not None and fence < 0:
        return s, fence
    if fence is None:
        s, fence = dma_fence_get_stub(s)
    s, sync_file = sync_file_create(s, fence)
    s = dma_fence_put(s, fence)
    if sync_file < 0:
        return s, sync_file
    if copy_out_fails:
        return sync_file_release(s, sync_file), -EFAULT
    fd = s.next_fd
    return s.evolve(fd_table=(*s.fd_table, (fd, "sync_file", sync_file)), next_fd=fd + 1), fd


def dma_buf_import_sync_file(
    s: KState,
    tid: Tid,
    buf: BufId,
    arg: DmaBufImportSyncFile | None,
    *,
    alloc_fails: bool = False,
) -> tuple[KState, int] | Blocked:
    """dma_buf_import_sync_file - DMA_BUF_IOCTL_IMPORT_SYNC_FILE: add a sync_file's fences.

    Flags as for export. The fences get usage WRITE when the WRITE flag is set, else READ.
    Arrays and chains are unwrapped to their leaves (a container must never enter a resv,
    §10 #32); with at least one leaf the resv is taken with a NULL ctx (Blocked while held,
    self-deadlock when the caller holds it), that many slots are reserved and each leaf added.
    ``alloc_fails`` makes the reservation fail.

    Returns: 0; -EFAULT; -EINVAL (bad flags, or ``arg.fd`` is not a sync_file); -ENOMEM.
    Core-semantics §5.15.
    """
    if arg is None:
        return s, -EFAULT
    if not _valid_sync_file_flags(arg.flags):
        return s, -EINVAL
    entry = fd_lookup(s, arg.fd)
    if entry is None or entry[0] != "sync_file":
        return s, -EINVAL
    resv = s.bufs[buf].resv
    s, fence = sync_file_get_fence(s, entry[1])
    if fence is None:
        return s, -EINVAL
    usage = DmaResvUsage.WRITE if arg.flags & DMA_BUF_SYNC_WRITE else DmaResvUsage.READ
    leaves = dma_fence_unwrap_for_each(s, fence)
    ret = 0
    if leaves:
        r = dma_resv_lock(s, tid, resv, None)
        if isinstance(r, Blocked):
            return r
        s = r[0]
        s, ret = dma_resv_reserve_fences(s, tid, resv, len(leaves), alloc_fails=alloc_fails)
        if ret == 0:
            for leaf in leaves:
                s = dma_resv_add_fence(s, tid, resv, leaf, usage)
        s = dma_resv_unlock(s, tid, resv)
    return dma_fence_put(s, fence), ret


def dma_buf_ioctl(
    s: KState,
    tid: Tid,
    buf: BufId,
    cmd: int,
    arg: IoctlArg,
    *,
    signal_pending: bool = False,
    alloc_fails: bool = False,
    copy_out_fails: bool = False,
    config_sync_file: bool = True,
) -> tuple[KState, int] | Blocked:
    """dma_buf_ioctl - dispatch an ioctl on a dma-buf file.

    SYNC, SET_NAME_A/_B, and (with CONFIG_SYNC_FILE) EXPORT_SYNC_FILE / IMPORT_SYNC_FILE. A
    successful EXPORT returns 0 here, as the kernel does; dma_buf_export_sync_file gives the fd.

    Returns: what the handler returns; -ENOTTY for anything else, or for EXPORT/IMPORT without
    CONFIG_SYNC_FILE. Core-semantics §5.15.
    """
    if cmd == DMA_BUF_IOCTL_SYNC:
        if arg is not None and not isinstance(arg, DmaBufSync):
            raise TypeError("DMA_BUF_IOCTL_SYNC takes a DmaBufSync")
        return dma_buf_ioctl_sync(s, tid, buf, arg, signal_pending=signal_pending)
    if cmd in (DMA_BUF_SET_NAME_A, DMA_BUF_SET_NAME_B):
        if arg is not None and not isinstance(arg, str):
            raise TypeError("DMA_BUF_SET_NAME takes the name as a str")
        return dma_buf_set_name(s, tid, buf, arg, alloc_fails=alloc_fails)
    if cmd == DMA_BUF_IOCTL_EXPORT_SYNC_FILE and config_sync_file:
        if arg is not None and not isinstance(arg, DmaBufExportSyncFile):
            raise TypeError("DMA_BUF_IOCTL_EXPORT_SYNC_FILE takes a DmaBufExportSyncFile")
        s, ret = dma_buf_export_sync_file(
            s, tid, buf, arg, alloc_fails=alloc_fails, copy_out_fails=copy_out_fails
        )
        return s, min(ret, 0)
    if cmd == DMA_BUF_IOCTL_IMPORT_SYNC_FILE and config_sync_file:
        if arg is not None and not isinstance(arg, DmaBufImportSyncFile):
            raise TypeError("DMA_BUF_IOCTL_IMPORT_SYNC_FILE takes a DmaBufImportSyncFile")
        return dma_buf_import_sync_file(s, tid, buf, arg, alloc_fails=alloc_fails)
    return s, -ENOTTY


# --------------------------------------------------------------------------------------------
# §5.14 llseek, §5.13 poll.


def dma_buf_llseek(s: KState, tid: Tid, fd: Fd, offset: int, whence: int) -> tuple[KState, int]:
    """dma_buf_llseek - lseek(2) on a dma-buf fd: only to learn the size.

    Only offset 0 is accepted, with SEEK_END (returns the size) or SEEK_SET (returns 0).

    Returns: the position; -EINVAL (other whence or offset); -EBADF (not a dma-buf file).
    Core-semantics §5.14.
    """
    entry = fd_lookup(s, fd)
    if entry is None or entry[0] != "dma_buf":
        return s, -EBADF
    if offset != 0:
        return s, -EINVAL
    if whence == SEEK_END:
        return s, s.bufs[entry[1]].size
    if whence == SEEK_SET:
        return s, 0
    return s, -EINVAL


def _poll_cb(s: KState, fence: FenceId | None, cb: DmaFenceCb) -> KState:
    """dma_buf_poll_cb: wake pollers, clear the slot, drop the fence and file references."""
    data = cb.data
    assert isinstance(data, tuple)
    buf, slot = data
    b = s.bufs[buf]
    if slot == "in":
        b = replace(b, poll_in_active=False, poll_in_fence=None)
    else:
        b = replace(b, poll_out_active=False, poll_out_fence=None)
    s = s.evolve(bufs=tuple_set(s.bufs, buf, b))
    s = dma_fence_put(s, fence)
    return dma_buf_put(s, NO_TID, buf)


def _poll_cb_handler(s: KState, fence: FenceId, cb: DmaFenceCb) -> KState:
    return _poll_cb(s, fence, cb)


dma_fence_register_cb_func(DMA_BUF_POLL_CB, _poll_cb_handler)


def _poll_arm(
    s: KState, tid: Tid, buf: BufId, slot: Literal["in", "out"], write: bool
) -> tuple[KState, bool]:
    """Arm one poll slot; True when the event is ready now (no unsignalled fence found)."""
    b = s.bufs[buf]
    if slot == "in":
        s = s.evolve(bufs=tuple_set(s.bufs, buf, replace(b, poll_in_active=True)))
    else:
        s = s.evolve(bufs=tuple_set(s.bufs, buf, replace(b, poll_out_active=True)))
    s = get_dma_buf(s, buf)  # paired with the put in dma_buf_poll_cb
    cb = DmaFenceCb(DMA_BUF_POLL_CB, (buf, slot))
    for fence, _usage in dma_resv_iter(s, tid, b.resv, dma_resv_usage_rw(write)):
        s = dma_fence_get(s, fence)
        s, r = dma_fence_add_callback(s, fence, cb)
        if r == 0:
            b = s.bufs[buf]
            if slot == "in":
                b = replace(b, poll_in_fence=fence)
            else:
                b = replace(b, poll_out_fence=fence)
            return s.evolve(bufs=tuple_set(s.bufs, buf, b)), False
        s = dma_fence_put(s, fence)
    return _poll_cb(s, None, cb), True


def dma_buf_poll(
    s: KState, tid: Tid, buf: BufId | None, events: int
) -> tuple[KState, int] | Blocked:
    """dma_buf_poll - poll(2) on a dma-buf fd: are the implicit fences signalled?

    Only EPOLLIN and EPOLLOUT are considered (none requested: 0). The resv is taken with a NULL
    ctx (Blocked while held; self-deadlock when the caller holds it). For each requested
    direction whose slot is idle, the slot is armed with a file reference and a callback on the
    first unsignalled fence (EPOLLOUT: usage READ, every implicit fence; EPOLLIN: usage WRITE);
    the event is reported only when there is no such fence, in which case the slot is released
    at once. A direction whose slot is armed is not reported.

    Returns: the ready events; EPOLLERR for a NULL buffer. Core-semantics §5.13, §10 #4, #5.
    """
    if buf is None:
        return s, EPOLLERR
    events &= EPOLLIN | EPOLLOUT
    if not events:
        return s, 0
    resv = s.bufs[buf].resv
    r = dma_resv_lock(s, tid, resv, None)
    if isinstance(r, Blocked):
        return r
    s = r[0]
    if events & EPOLLOUT:
        if s.bufs[buf].poll_out_active:
            events &= ~EPOLLOUT
        else:
            s, ready = _poll_arm(s, tid, buf, "out", True)
            if not ready:
                events &= ~EPOLLOUT
    if events & EPOLLIN:
        if s.bufs[buf].poll_in_active:
            events &= ~EPOLLIN
        else:
            s, ready = _poll_arm(s, tid, buf, "in", False)
            if not ready:
                events &= ~EPOLLIN
    return dma_resv_unlock(s, tid, resv), events


# --------------------------------------------------------------------------------------------
# §5.16 fdinfo and debugfs.


def dma_buf_show_fdinfo(s: KState, buf: BufId) -> str:
    """dma_buf_show_fdinfo - /proc/<pid>/fdinfo/<fd> of a dma-buf: size, count, exp_name, name.

    ``count`` is the file reference count without procfs's temporary reference, i.e. the
    model's file_refcount. ``name`` only appears when set. Core-semantics §5.16.
    """
    b = s.bufs[buf]
    text = f"size:\t{b.size}\ncount:\t{b.file_refcount}\nexp_name:\t{b.exp_name}\n"
    if b.name is not None:
        text += f"name:\t{b.name}\n"
    return text


fdinfo = dma_buf_show_fdinfo


def _f_mode(flags: int) -> int:
    acc = flags & O_ACCMODE
    mode = 0
    if acc in (O_RDONLY, O_RDWR):
        mode |= 0x1  # FMODE_READ
    if acc in (O_WRONLY, O_RDWR):
        mode |= 0x2  # FMODE_WRITE
    return mode


def dma_buf_debug_show(
    s: KState, tid: Tid, *, signal_pending: bool = False
) -> tuple[KState, str | int] | Blocked:
    """dma_buf_debug_show - debugfs dma_buf/bufinfo: every live buffer, its fences and devices.

    Takes each buffer's resv interruptibly with a NULL ctx: Blocked while one is held, -EINTR if
    a signal is pending then (the global list mutex is not modelled as contended). Per buffer:
    size, file flags, file mode, refcount, exp_name, inode number and name (``<none>``), its
    fences with usage up to READ (dma_resv_describe), the attached devices and their count; then
    the object and byte totals.

    Returns: the text; -EINTR. Core-semantics §5.16.
    """
    lines = [
        "\nDma-buf Objects:",
        f"{'size':<8}\t{'flags':<8}\t{'mode':<8}\t{'count':<8}\texp_name\t{'ino':<8}\tname",
    ]
    count = 0
    total = 0
    for b in s.bufs:
        if b.released:
            continue
        r = dma_resv_lock(s, tid, b.resv, None)
        if isinstance(r, Blocked):
            return (s, -EINTR) if signal_pending else r
        s = r[0]
        lines.append(
            f"{b.size:08d}\t{b.file_flags:08x}\t{_f_mode(b.file_flags):08x}\t"
            f"{b.file_refcount:08d}\t{b.exp_name}\t{b.ino:08d}\t{b.name or '<none>'}"
        )
        lines.extend(dma_resv_describe(s, b.resv))
        lines.append("\tAttached Devices:")
        lines.extend(f"\t{s.attachments[a].dev}" for a in b.attachments)
        lines.append(f"Total {len(b.attachments)} devices attached\n")
        s = dma_resv_unlock(s, tid, b.resv)
        count += 1
        total += b.size
    lines.append(f"\nTotal {count} objects, {total} bytes")
    return s, "\n".join(lines) + "\n"


__all__ = [
    "DMA_BUF_IOCTL_EXPORT_SYNC_FILE",
    "DMA_BUF_IOCTL_IMPORT_SYNC_FILE",
    "DMA_BUF_IOCTL_SYNC",
    "DMA_BUF_POLL_CB",
    "DMA_BUF_SET_NAME",
    "DMA_BUF_SET_NAME_A",
    "DMA_BUF_SET_NAME_B",
    "DMA_BUF_SYNC_END",
    "DMA_BUF_SYNC_READ",
    "DMA_BUF_SYNC_RW",
    "DMA_BUF_SYNC_START",
    "DMA_BUF_SYNC_VALID_FLAGS_MASK",
    "DMA_BUF_SYNC_WRITE",
    "EPOLLERR",
    "EPOLLIN",
    "EPOLLOUT",
    "SEEK_CUR",
    "SEEK_END",
    "SEEK_SET",
    "DmaBufExportSyncFile",
    "DmaBufImportSyncFile",
    "DmaBufSync",
    "IoctlArg",
    "dma_buf_debug_show",
    "dma_buf_export_sync_file",
    "dma_buf_import_sync_file",
    "dma_buf_ioctl",
    "dma_buf_ioctl_sync",
    "dma_buf_llseek",
    "dma_buf_poll",
    "dma_buf_set_name",
    "dma_buf_show_fdinfo",
    "fdinfo",
]
