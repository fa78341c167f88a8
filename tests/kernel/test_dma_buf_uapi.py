"""The dma-buf file's uAPI: ioctls, llseek, poll, fdinfo, debugfs (core-semantics §5.13-§5.16,
§10 #4, #5, #28, #32, §11)."""

from __future__ import annotations

import pytest
from test_dma_buf_toys import (
    NO_CALLBACK,
    T0,
    T1,
    add_fence,
    lock,
    names,
    new_fence,
    ok,
    setup,
    unlock,
    with_ext,
)

from dmabuf_model.kernel.dma_buf import (
    RLIMIT_NOFILE,
    close_fd,
    dma_buf_dynamic_attach,
    dma_buf_fd,
    dma_buf_put,
)
from dmabuf_model.kernel.dma_buf_uapi import (
    DMA_BUF_IOCTL_EXPORT_SYNC_FILE,
    DMA_BUF_IOCTL_IMPORT_SYNC_FILE,
    DMA_BUF_IOCTL_SYNC,
    DMA_BUF_SET_NAME,
    DMA_BUF_SET_NAME_A,
    DMA_BUF_SYNC_END,
    DMA_BUF_SYNC_READ,
    DMA_BUF_SYNC_RW,
    DMA_BUF_SYNC_START,
    DMA_BUF_SYNC_WRITE,
    EPOLLERR,
    EPOLLIN,
    EPOLLOUT,
    SEEK_CUR,
    SEEK_END,
    SEEK_SET,
    DmaBufExportSyncFile,
    DmaBufImportSyncFile,
    DmaBufSync,
    dma_buf_debug_show,
    dma_buf_export_sync_file,
    dma_buf_import_sync_file,
    dma_buf_ioctl,
    dma_buf_llseek,
    dma_buf_poll,
    dma_buf_set_name,
    dma_buf_show_fdinfo,
)
from dmabuf_model.kernel.dma_fence import dma_fence_signal
from dmabuf_model.kernel.dma_fence_array import dma_fence_array_create
from dmabuf_model.kernel.dma_resv import DmaResvUsage
from dmabuf_model.kernel.errno import (
    EBADF,
    EFAULT,
    EINTR,
    EINVAL,
    EMFILE,
    ENOMEM,
    ENOTTY,
    ERESTARTSYS,
)
from dmabuf_model.kernel.state import Blocked, KState
from dmabuf_model.kernel.sync_file import sync_file_create

# --- ioctl numbers ----------------------------------------------------------------------------


def test_ioctl_numbers_match_the_uapi_header() -> None:
    """§5.15: _IOW('b', 0, u64), _IOW('b', 1, u32/u64), _IOWR('b', 2, 8), _IOW('b', 3, 8)."""
    assert DMA_BUF_IOCTL_SYNC == 0x40086200
    assert DMA_BUF_SET_NAME_A == 0x40046201
    assert DMA_BUF_SET_NAME == 0x40086201
    assert DMA_BUF_IOCTL_EXPORT_SYNC_FILE == 0xC0086202
    assert DMA_BUF_IOCTL_IMPORT_SYNC_FILE == 0x40086203


# --- DMA_BUF_IOCTL_SYNC -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "call"),
    [
        (DMA_BUF_SYNC_START | DMA_BUF_SYNC_READ, "begin_cpu_access"),
        (DMA_BUF_SYNC_START | DMA_BUF_SYNC_RW, "begin_cpu_access"),
        (DMA_BUF_SYNC_END | DMA_BUF_SYNC_WRITE, "end_cpu_access"),
    ],
)
def test_sync_ioctl_calls_begin_or_end_cpu_access(flags: int, call: str) -> None:
    """§5.15 SYNC: END selects end_cpu_access, otherwise begin_cpu_access."""
    s, buf = setup()
    s, ret = ok(dma_buf_ioctl(s, T1, buf, DMA_BUF_IOCTL_SYNC, DmaBufSync(flags)))
    assert ret == 0 and names(s) == [call]


@pytest.mark.parametrize("flags", [0, DMA_BUF_SYNC_END, 8, DMA_BUF_SYNC_RW | 16])
def test_sync_ioctl_with_bad_flags_fails_einval(flags: int) -> None:
    """§5.15 SYNC, §11 -EINVAL: unknown bits or no READ/WRITE bit."""
    s, buf = setup()
    s, ret = ok(dma_buf_ioctl(s, T1, buf, DMA_BUF_IOCTL_SYNC, DmaBufSync(flags)))
    assert ret == -EINVAL and names(s) == []


def test_sync_ioctl_with_a_bad_pointer_fails_efault() -> None:
    """§5.15 SYNC, §11 -EFAULT."""
    s, buf = setup()
    assert ok(dma_buf_ioctl(s, T1, buf, DMA_BUF_IOCTL_SYNC, None))[1] == -EFAULT


def test_sync_ioctl_start_blocks_on_fences_and_can_be_interrupted() -> None:
    """§5.15 SYNC → begin_cpu_access errors (-ERESTARTSYS); §11 IOCTL_SYNC."""
    s, buf = setup()
    s, _ = add_fence(s, buf, DmaResvUsage.WRITE)
    arg = DmaBufSync(DMA_BUF_SYNC_START | DMA_BUF_SYNC_READ)
    assert isinstance(dma_buf_ioctl(s, T1, buf, DMA_BUF_IOCTL_SYNC, arg), Blocked)
    r = dma_buf_ioctl(s, T1, buf, DMA_BUF_IOCTL_SYNC, arg, signal_pending=True)
    assert ok(r)[1] == -ERESTARTSYS


def test_sync_ioctl_passes_the_exporter_error_through() -> None:
    """§11 IOCTL_SYNC: begin/end errors, e.g. -EINTR, which userspace retries."""
    s, buf = setup()
    s = with_ext(s, cpu_ret=-EINTR)
    arg = DmaBufSync(DMA_BUF_SYNC_END | DMA_BUF_SYNC_READ)
    assert ok(dma_buf_ioctl(s, T1, buf, DMA_BUF_IOCTL_SYNC, arg))[1] == -EINTR


# --- SET_NAME ---------------------------------------------------------------------------------


def test_set_name_accepts_31_characters_and_changes_only_the_name() -> None:
    """§5.15 SET_NAME, §10 #28: length ≤ 31; every other field unchanged; allowed attached."""
    s, buf = setup()
    s, _ = ok(dma_buf_dynamic_attach(s, T1, buf, "nic", NO_CALLBACK))
    before = s.bufs[buf]
    s, ret = ok(dma_buf_ioctl(s, T1, buf, DMA_BUF_SET_NAME_A, "x" * 31))
    assert ret == 0 and s.bufs[buf].name == "x" * 31
    from dataclasses import replace

    assert replace(s.bufs[buf], name=None) == before


def test_set_name_of_32_characters_fails_einval() -> None:
    """§5.15 SET_NAME, §11 -EINVAL (too long: no NUL within 32 bytes)."""
    s, buf = setup()
    s, ret = dma_buf_set_name(s, T1, buf, "y" * 32)
    assert ret == -EINVAL and s.bufs[buf].name is None


def test_set_name_with_a_bad_pointer_or_no_memory_fails() -> None:
    """§11 SET_NAME -EFAULT, -ENOMEM."""
    s, buf = setup()
    assert dma_buf_set_name(s, T1, buf, None)[1] == -EFAULT
    assert dma_buf_set_name(s, T1, buf, "n", alloc_fails=True)[1] == -ENOMEM


# --- EXPORT_SYNC_FILE / IMPORT_SYNC_FILE --------------------------------------------------------


def test_export_sync_file_without_fences_wraps_the_signalled_stub() -> None:
    """§5.15 EXPORT step 5: no fence → the already signalled stub."""
    s, buf = setup()
    s, fd = dma_buf_export_sync_file(s, T1, buf, DmaBufExportSyncFile(DMA_BUF_SYNC_READ))
    assert fd >= 0
    kind, sf = next((k, o) for f, k, o in s.fd_table if f == fd)
    fence = s.sync_files[sf].fence
    assert kind == "sync_file" and s.fences[fence].stub and s.fences[fence].signaled


@pytest.mark.parametrize(
    ("flags", "sees"),
    [
        (DMA_BUF_SYNC_READ, {"KERNEL", "WRITE"}),
        (DMA_BUF_SYNC_WRITE, {"KERNEL", "WRITE", "READ"}),
        (DMA_BUF_SYNC_RW, {"KERNEL", "WRITE", "READ"}),
    ],
)
def test_export_sync_file_snapshots_the_fences_of_the_usage_rw_class(
    flags: int, sees: set[str]
) -> None:
    """§5.15 EXPORT step 4: WRITE flag → usage READ (all implicit fences), else usage WRITE."""
    for usage in DmaResvUsage:
        s, buf = setup()
        s, f = add_fence(s, buf, usage)
        s, fd = dma_buf_export_sync_file(s, T1, buf, DmaBufExportSyncFile(flags))
        sf = next(o for ffd, _, o in s.fd_table if ffd == fd)
        assert (s.sync_files[sf].fence == f) == (usage.name in sees), usage


def test_export_sync_file_of_two_fences_is_an_array_snapshot() -> None:
    """§5.15 EXPORT: a snapshot via dma_resv_get_singleton (an array for several fences)."""
    s, buf = setup()
    s, f1 = add_fence(s, buf, DmaResvUsage.WRITE)
    s, f2 = add_fence(s, buf, DmaResvUsage.WRITE)
    s, fd = dma_buf_export_sync_file(s, T1, buf, DmaBufExportSyncFile(DMA_BUF_SYNC_READ))
    sf = next(o for ffd, _, o in s.fd_table if ffd == fd)
    arr = s.fences[s.sync_files[sf].fence]
    assert arr.kind == "array" and arr.members == (f1, f2)


@pytest.mark.parametrize("flags", [0, 4, DMA_BUF_SYNC_RW | 8])
def test_export_sync_file_with_bad_flags_fails_einval(flags: int) -> None:
    """§5.15 EXPORT step 2, §11 -EINVAL."""
    s, buf = setup()
    assert dma_buf_export_sync_file(s, T1, buf, DmaBufExportSyncFile(flags))[1] == -EINVAL


def test_export_sync_file_errors_efault_emfile_enomem() -> None:
    """§11 EXPORT_SYNC_FILE: -EFAULT (copy-in, copy-out), -EMFILE, -ENOMEM."""
    s, buf = setup()
    arg = DmaBufExportSyncFile(DMA_BUF_SYNC_READ)
    assert dma_buf_export_sync_file(s, T1, buf, None)[1] == -EFAULT
    full = s.evolve(fd_table=tuple((100 + i, "other", 0) for i in range(RLIMIT_NOFILE)))
    assert dma_buf_export_sync_file(full, T1, buf, arg)[1] == -EMFILE
    s2, _ = add_fence(s, buf, DmaResvUsage.WRITE)
    s2, _ = add_fence(s2, buf, DmaResvUsage.WRITE)
    assert dma_buf_export_sync_file(s2, T1, buf, arg, alloc_fails=True)[1] == -ENOMEM
    s3, ret = dma_buf_export_sync_file(s, T1, buf, arg, copy_out_fails=True)
    assert ret == -EFAULT and s3.fd_table == () and all(sf.released for sf in s3.sync_files)


def test_export_through_dma_buf_ioctl_returns_zero() -> None:
    """§5.15: the ioctl returns 0 and writes the fd into the argument."""
    s, buf = setup()
    arg = DmaBufExportSyncFile(DMA_BUF_SYNC_READ)
    s, ret = ok(dma_buf_ioctl(s, T1, buf, DMA_BUF_IOCTL_EXPORT_SYNC_FILE, arg))
    assert ret == 0 and any(k == "sync_file" for _, k, _ in s.fd_table)


def _sync_file_fd(s: KState, fence: int) -> tuple[KState, int]:
    s, sf = sync_file_create(s, fence)
    fd = s.next_fd
    return s.evolve(fd_table=(*s.fd_table, (fd, "sync_file", sf)), next_fd=fd + 1), fd


@pytest.mark.parametrize(
    ("flags", "usage"),
    [(DMA_BUF_SYNC_WRITE, DmaResvUsage.WRITE), (DMA_BUF_SYNC_READ, DmaResvUsage.READ)],
)
def test_import_sync_file_adds_the_fence_with_the_flag_usage(
    flags: int, usage: DmaResvUsage
) -> None:
    """§5.15 IMPORT step 3: WRITE flag → usage WRITE, otherwise READ."""
    s, buf = setup()
    s, f = new_fence(s)
    s, fd = _sync_file_fd(s, f)
    s, ret = ok(dma_buf_import_sync_file(s, T1, buf, DmaBufImportSyncFile(flags, fd)))
    assert ret == 0 and s.resvs[s.bufs[buf].resv].fences == ((f, usage),)
    assert s.resvs[s.bufs[buf].resv].holder == -1 and not s.warnings


def test_import_sync_file_unwraps_an_array_so_no_container_enters_the_resv() -> None:
    """§5.15 IMPORT step 4, §10 #32."""
    s, buf = setup()
    s, f1 = new_fence(s)
    s, f2 = new_fence(s)
    s, arr = dma_fence_array_create(s, (f1, f2), 99, 1, False)
    assert isinstance(arr, int)
    s, fd = _sync_file_fd(s, arr)
    s, ret = ok(dma_buf_import_sync_file(s, T1, buf, DmaBufImportSyncFile(DMA_BUF_SYNC_WRITE, fd)))
    fences = [f for f, _ in s.resvs[s.bufs[buf].resv].fences]
    assert ret == 0 and fences == [f1, f2] and not s.warnings


def test_import_sync_file_errors() -> None:
    """§11 IMPORT_SYNC_FILE: -EFAULT, -EINVAL (flags, not a sync_file), -ENOMEM (reserve)."""
    s, buf = setup()
    s, f = new_fence(s)
    s, fd = _sync_file_fd(s, f)
    assert ok(dma_buf_import_sync_file(s, T1, buf, None))[1] == -EFAULT
    bad = DmaBufImportSyncFile(0, fd)
    assert ok(dma_buf_import_sync_file(s, T1, buf, bad))[1] == -EINVAL
    s2, dfd = dma_buf_fd(s, T0, buf, 0)
    not_sf = DmaBufImportSyncFile(DMA_BUF_SYNC_READ, dfd)
    assert ok(dma_buf_import_sync_file(s2, T1, buf, not_sf))[1] == -EINVAL
    good = DmaBufImportSyncFile(DMA_BUF_SYNC_READ, fd)
    s3, ret = ok(dma_buf_import_sync_file(s, T1, buf, good, alloc_fails=True))
    assert ret == -ENOMEM and s3.resvs[0].fences == () and s3.resvs[0].holder == -1


def test_import_sync_file_blocks_while_the_resv_is_held() -> None:
    """§5.15 IMPORT step 5: the resv is taken with a NULL ctx."""
    s, buf = setup()
    s, f = new_fence(s)
    s, fd = _sync_file_fd(s, f)
    r = dma_buf_import_sync_file(lock(s, T0, buf), T1, buf, DmaBufImportSyncFile(1, fd))
    assert isinstance(r, Blocked) and r.holder == T0


def test_unknown_ioctl_and_sync_file_ioctls_without_config_fail_enotty() -> None:
    """§5.15 last row, §11 unknown ioctl -ENOTTY."""
    s, buf = setup()
    assert ok(dma_buf_ioctl(s, T1, buf, 0x1234, None))[1] == -ENOTTY
    arg = DmaBufExportSyncFile(DMA_BUF_SYNC_READ)
    r = dma_buf_ioctl(s, T1, buf, DMA_BUF_IOCTL_EXPORT_SYNC_FILE, arg, config_sync_file=False)
    assert ok(r)[1] == -ENOTTY


def test_closing_an_exported_sync_file_drops_its_fence_reference() -> None:
    """§9.15, §10 #47 via close_fd on the exported descriptor."""
    s, buf = setup()
    s, f = add_fence(s, buf, DmaResvUsage.WRITE)
    refs = s.fences[f].refcount
    s, fd = dma_buf_export_sync_file(s, T1, buf, DmaBufExportSyncFile(DMA_BUF_SYNC_READ))
    assert s.fences[f].refcount == refs + 1
    s, ret = close_fd(s, T1, fd)
    assert ret == 0 and s.fences[f].refcount == refs


# --- §5.14 llseek -----------------------------------------------------------------------------


def test_llseek_only_reports_the_size() -> None:
    """§5.14: SEEK_END 0 → size, SEEK_SET 0 → 0, anything else -EINVAL; not dma-buf → -EBADF."""
    s, buf = setup(size=12345)
    s, fd = dma_buf_fd(s, T0, buf, 0)
    assert dma_buf_llseek(s, T1, fd, 0, SEEK_END)[1] == 12345
    assert dma_buf_llseek(s, T1, fd, 0, SEEK_SET)[1] == 0
    assert dma_buf_llseek(s, T1, fd, 0, SEEK_CUR)[1] == -EINVAL
    assert dma_buf_llseek(s, T1, fd, 4, SEEK_SET)[1] == -EINVAL
    assert dma_buf_llseek(s, T1, 77, 0, SEEK_END)[1] == -EBADF


# --- §5.13 poll -------------------------------------------------------------------------------


def test_poll_without_fences_reports_both_directions_and_keeps_no_reference() -> None:
    """§5.13 step 4: no unsignalled fence → reported; the slot and reference are released."""
    s, buf = setup()
    s, ev = ok(dma_buf_poll(s, T1, buf, EPOLLIN | EPOLLOUT))
    b = s.bufs[buf]
    assert ev == EPOLLIN | EPOLLOUT and not b.poll_in_active and not b.poll_out_active
    assert b.file_refcount == 1


def test_poll_with_a_read_fence_reports_in_but_not_out() -> None:
    """§5.13: OUT waits for usage READ (every implicit fence), IN for usage WRITE."""
    s, buf = setup()
    s, f = add_fence(s, buf, DmaResvUsage.READ)
    s, ev = ok(dma_buf_poll(s, T1, buf, EPOLLIN | EPOLLOUT))
    assert ev == EPOLLIN
    b = s.bufs[buf]
    assert b.poll_out_active and b.poll_out_fence == f and b.file_refcount == 2  # §10 #4


def test_an_armed_poll_slot_reports_nothing_until_its_fence_signals() -> None:
    """§5.13 steps 1-3: an active slot is not reported; the callback clears it and drops the
    file reference (§10 #4, #5)."""
    s, buf = setup()
    s, f = add_fence(s, buf, DmaResvUsage.WRITE)
    s, ev = ok(dma_buf_poll(s, T1, buf, EPOLLIN))
    assert ev == 0 and s.bufs[buf].poll_in_active
    s, ev = ok(dma_buf_poll(s, T1, buf, EPOLLIN))
    assert ev == 0
    s = dma_fence_signal(s, f)
    assert not s.bufs[buf].poll_in_active and s.bufs[buf].file_refcount == 1
    s, ev = ok(dma_buf_poll(s, T1, buf, EPOLLIN))
    assert ev == EPOLLIN


def test_a_pending_poll_keeps_the_buffer_alive() -> None:
    """§10 #4, #5: the poll callback's reference outlives the fd; release follows the signal."""
    s, buf = setup()
    s, f = add_fence(s, buf, DmaResvUsage.WRITE)
    s, _ = ok(dma_buf_poll(s, T1, buf, EPOLLIN))
    s = dma_buf_put(s, T1, buf)
    assert not s.bufs[buf].released
    s = dma_fence_signal(s, f)
    assert s.bufs[buf].released and not s.warnings


def test_poll_without_in_or_out_returns_zero_and_null_is_epollerr() -> None:
    """§5.13: only IN/OUT are considered; no buffer → EPOLLERR."""
    s, buf = setup()
    assert ok(dma_buf_poll(s, T1, buf, 0x40))[1] == 0
    assert ok(dma_buf_poll(s, T1, None, EPOLLIN))[1] == EPOLLERR


def test_poll_blocks_while_another_thread_holds_the_resv() -> None:
    """§5.13: the resv is locked with a NULL ctx."""
    s, buf = setup()
    assert isinstance(dma_buf_poll(lock(s, T0, buf), T1, buf, EPOLLIN), Blocked)


# --- §5.16 fdinfo and debugfs -----------------------------------------------------------------


def test_fdinfo_prints_size_count_exp_name_and_name_only_when_set() -> None:
    """§5.16 fdinfo."""
    s, buf = setup(size=8192)
    s = s.evolve(bufs=(s.bufs[buf],))
    text = dma_buf_show_fdinfo(s, buf)
    assert text == "size:\t8192\ncount:\t1\nexp_name:\t\n"
    s, _ = dma_buf_set_name(s, T1, buf, "scanout")
    assert dma_buf_show_fdinfo(s, buf).endswith("name:\tscanout\n")


def test_debug_show_lists_buffers_fences_and_devices() -> None:
    """§5.16 debugfs bufinfo: per buffer, its fences up to READ and attached devices; totals."""
    s, buf = setup(size=4096)
    s, _ = ok(dma_buf_dynamic_attach(s, T1, buf, "nic0", NO_CALLBACK))
    s, _ = add_fence(s, buf, DmaResvUsage.WRITE)
    s, text = ok(dma_buf_debug_show(s, T1))  # type: ignore[arg-type]
    assert isinstance(text, str)
    assert "<none>" in text and "\tnic0" in text and "Total 1 devices attached" in text
    assert "write fence" in text and "Total 1 objects, 4096 bytes" in text


def test_debug_show_blocks_on_a_held_resv_or_fails_eintr_with_a_signal() -> None:
    """§5.16, §11 debugfs bufinfo -EINTR (interruptible lock)."""
    s, buf = setup()
    held = lock(s, T0, buf)
    assert isinstance(dma_buf_debug_show(held, T1), Blocked)
    r = dma_buf_debug_show(held, T1, signal_pending=True)
    assert not isinstance(r, Blocked) and r[1] == -EINTR
    s = unlock(held, T0, buf)
