"""dma_buf export, fd, get, put and release (core-semantics §5.1, §5.2, §10 #1-#6, §11)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from test_dma_buf_toys import (
    BIDI,
    T0,
    T1,
    ToyExt,
    add_fence,
    lock,
    log,
    names,
    ok,
    okk,
    setup,
    toy_ops,
    unlock,
    warned,
)

from dmabuf_model.kernel.dma_buf import (
    O_CLOEXEC,
    O_NONBLOCK,
    O_RDWR,
    RLIMIT_NOFILE,
    close_fd,
    dma_buf_attach,
    dma_buf_export,
    dma_buf_fd,
    dma_buf_get,
    dma_buf_invariant_violations,
    dma_buf_map_attachment,
    dma_buf_mmap,
    dma_buf_put,
    dma_buf_vma_close,
    dma_buf_vmap,
    get_dma_buf,
)
from dmabuf_model.kernel.dma_resv import DmaResvUsage, dma_resv_init
from dmabuf_model.kernel.errno import EBADF, EINVAL, EMFILE, ENOENT, ENOMEM
from dmabuf_model.kernel.state import KState

# --- §5.1 export ------------------------------------------------------------------------------


@pytest.mark.parametrize("missing", ["map_dma_buf", "unmap_dma_buf", "release"])
def test_export_without_a_mandatory_op_warns_and_fails_einval(missing: str) -> None:
    """§5.1 row 1, §10 #1, §11 dma_buf_export -EINVAL."""
    ops = replace(toy_ops(), **{missing: None})
    s, ret = dma_buf_export(KState(ext=ToyExt()), T0, ops=ops, size=4096, priv="p")
    assert ret == -EINVAL
    assert warned(s, 1)
    assert s.bufs == ()


def test_export_without_priv_or_ops_warns_and_fails_einval() -> None:
    """§5.1 row 1 (NULL priv, NULL ops), §10 #1."""
    s, ret = dma_buf_export(KState(), T0, ops=toy_ops(), size=4096, priv=None)
    assert ret == -EINVAL and warned(s, 1)
    s, ret = dma_buf_export(KState(), T0, ops=None, size=4096, priv="p")
    assert ret == -EINVAL and warned(s, 1)


@pytest.mark.parametrize("drop", ["pin", "unpin"])
def test_export_with_pin_but_not_unpin_warns_and_fails_einval(drop: str) -> None:
    """§5.1 row 2, §10 #2: pin and unpin come as a pair."""
    ops = replace(toy_ops(), **{drop: None})
    s, ret = dma_buf_export(KState(), T0, ops=ops, size=4096, priv="p")
    assert ret == -EINVAL
    assert warned(s, 2)


def test_export_fails_enoent_when_the_module_reference_cannot_be_taken() -> None:
    """§5.1 row 3, §11 -ENOENT."""
    s, ret = dma_buf_export(KState(), T0, ops=toy_ops(), size=4096, priv="p", owner_ok=False)
    assert ret == -ENOENT and s.bufs == () and not s.warnings


def test_export_fails_enomem_when_allocation_fails() -> None:
    """§5.1 row 5, §11 -ENOMEM: nothing is created, not even the resv."""
    s, ret = dma_buf_export(KState(), T0, ops=toy_ops(), size=4096, priv="p", alloc_fails=True)
    assert ret == -ENOMEM and s.bufs == () and s.resvs == ()


def test_export_creates_one_reference_an_embedded_resv_and_keeps_only_accmode_nonblock() -> None:
    """§5.1 effects: one reference, empty list, vmapping 0, embedded resv, ACCMODE|NONBLOCK."""
    s, buf = dma_buf_export(
        KState(), T0, ops=toy_ops(), size=5000, priv="p", flags=O_RDWR | O_NONBLOCK | O_CLOEXEC
    )
    b = s.bufs[buf]
    assert buf == 0 and b.file_refcount == 1 and b.resv_owned
    assert b.attachments == () and b.vmapping_counter == 0 and b.name is None
    assert b.file_flags == O_RDWR | O_NONBLOCK
    assert b.size == 5000  # not checked nor rounded (§5.1 "not checked")
    assert len(s.resvs) == 1


def test_export_with_an_external_resv_shares_it_and_does_not_own_it() -> None:
    """§5.1: resv is exp_info.resv when given."""
    s, resv = dma_resv_init(KState())
    s, buf = dma_buf_export(s, T0, ops=toy_ops(), size=4096, priv="p", resv=resv)
    assert s.bufs[buf].resv == resv and not s.bufs[buf].resv_owned and len(s.resvs) == 1


def test_export_gives_each_buffer_a_unique_inode_number() -> None:
    """§5.1: unique inode number from a global counter."""
    s, b0 = dma_buf_export(KState(), T0, ops=toy_ops(), size=4096, priv="p")
    s, b1 = dma_buf_export(s, T0, ops=toy_ops(), size=4096, priv="p")
    assert s.bufs[b0].ino != s.bufs[b1].ino


# --- §5.2 fd, get, put ------------------------------------------------------------------------


def test_dma_buf_fd_moves_the_reference_into_the_fd_table() -> None:
    """§5.2 dma_buf_fd: no new reference is taken."""
    s, buf = setup()
    s, fd = dma_buf_fd(s, T0, buf, O_CLOEXEC)
    assert fd >= 0 and (fd, "dma_buf", buf) in s.fd_table
    assert s.bufs[buf].file_refcount == 1


def test_dma_buf_fd_of_null_fails_einval() -> None:
    """§5.2, §11 dma_buf_fd -EINVAL."""
    s, _ = setup()
    assert dma_buf_fd(s, T0, None, 0)[1] == -EINVAL


def test_dma_buf_fd_fails_emfile_when_the_descriptor_table_is_full() -> None:
    """§5.2, §11 dma_buf_fd -EMFILE."""
    s, buf = setup()
    full = tuple((100 + i, "other", 0) for i in range(RLIMIT_NOFILE))
    s = s.evolve(fd_table=full)
    s2, ret = dma_buf_fd(s, T0, buf, 0)
    assert ret == -EMFILE and s2.fd_table == full


def test_dma_buf_get_takes_a_new_reference() -> None:
    """§5.2 dma_buf_get, §10 #4."""
    s, buf = setup()
    s, fd = dma_buf_fd(s, T0, buf, 0)
    s, got = dma_buf_get(s, T1, fd)
    assert got == buf and s.bufs[buf].file_refcount == 2


def test_dma_buf_get_of_an_unknown_fd_fails_ebadf() -> None:
    """§5.2, §11 dma_buf_get -EBADF."""
    s, _ = setup()
    assert dma_buf_get(s, T1, 99)[1] == -EBADF


def test_dma_buf_get_of_a_non_dma_buf_fd_fails_einval() -> None:
    """§5.2, §11 dma_buf_get -EINVAL (the temporary reference is dropped)."""
    s, buf = setup()
    s = s.evolve(fd_table=((7, "sync_file", 0),))
    s2, ret = dma_buf_get(s, T1, 7)
    assert ret == -EINVAL and s2.bufs[buf].file_refcount == 1


def test_last_put_calls_release_exactly_once_and_marks_the_buffer_released() -> None:
    """§5.2 release, §10 #6."""
    s, buf = setup()
    s = get_dma_buf(s, buf)
    s = dma_buf_put(s, T0, buf)
    assert "release" not in names(s)
    s = dma_buf_put(s, T0, buf)
    assert names(s).count("release") == 1 and s.bufs[buf].released
    assert log(s)[-1] == ("release", buf, False)  # ops.release runs unlocked (§10 #9)
    s = dma_buf_put(s, T0, buf)  # a put too many is a use after free, not a second release
    assert names(s).count("release") == 1
    assert warned(s, 4, "BUG")


def test_release_finalises_the_embedded_resv_and_drops_its_fences() -> None:
    """§5.2 release step: the embedded resv is finalised."""
    s, buf = setup()
    s, f = add_fence(s, buf, DmaResvUsage.WRITE)
    assert s.fences[f].refcount == 2
    s = dma_buf_put(s, T0, buf)
    assert s.resvs[s.bufs[buf].resv].fences == () and s.fences[f].refcount == 1


def test_dma_buf_put_of_null_warns_and_does_nothing() -> None:
    """§5.2 dma_buf_put NULL: WARN and no-op."""
    s, _ = setup()
    s2 = dma_buf_put(s, T0, None)
    assert warned(s2, 4) and s2.bufs == s.bufs


def test_close_fd_drops_the_descriptor_reference() -> None:
    """§5.2, §10 #4: an fd holds a reference; closing it releases the buffer when it was last."""
    s, buf = setup()
    s, fd = dma_buf_fd(s, T0, buf, 0)
    s, ret = close_fd(s, T0, fd)
    assert ret == 0 and s.bufs[buf].released and s.fd_table == ()
    assert close_fd(s, T0, fd)[1] == -EBADF


def test_a_vma_keeps_the_buffer_alive_after_the_fd_is_closed() -> None:
    """§10 #4: a vma mapped from the buffer holds a file reference."""
    s, buf = setup()
    s, ret = dma_buf_mmap(s, T0, buf, 0, 1)
    assert ret == 0 and s.bufs[buf].file_refcount == 2
    s = dma_buf_put(s, T0, buf)
    assert not s.bufs[buf].released
    s = dma_buf_vma_close(s, T0, buf)
    assert s.bufs[buf].released


def test_release_with_vmapping_counter_set_is_a_bug_and_release_is_not_called() -> None:
    """§5.2 release, §10 #5: vmapping_counter != 0 at release is a BUG."""
    s, buf = setup()
    s = lock(s, T0, buf)
    s, ptr = dma_buf_vmap(s, T0, buf)
    s = unlock(s, T0, buf)
    assert ptr > 0
    s = dma_buf_put(s, T0, buf)
    assert warned(s, 5, "BUG") and "release" not in names(s)


def test_release_with_an_active_poll_slot_is_a_bug() -> None:
    """§5.2 release, §10 #5: a poll callback still active at release is a BUG."""
    s, buf = setup()
    s = s.evolve(bufs=(replace(s.bufs[buf], poll_in_active=True),))
    s = dma_buf_put(s, T0, buf)
    assert warned(s, 5, "BUG") and "release" not in names(s)


def test_release_with_attachments_left_warns_but_still_releases() -> None:
    """§5.2 release, §10 #5: attachments left is a WARN; ops.release has run."""
    s, buf = setup()
    s, _ = ok(dma_buf_attach(s, T1, buf, "dev"))
    s = dma_buf_put(s, T0, buf)
    assert warned(s, 5) and "release" in names(s) and s.bufs[buf].released
    assert any(v.startswith("#5") for v in dma_buf_invariant_violations(s))


def test_final_put_with_resv_held_warns_invariant_9() -> None:
    """§4, §10 #9: ops.release must run without the resv held."""
    s, buf = setup()
    s = lock(s, T0, buf)
    s = dma_buf_put(s, T0, buf)
    assert warned(s, 9) and s.bufs[buf].released


def test_no_exporter_callback_runs_after_release() -> None:
    """§10 #6: after release the buffer is gone; using it is a BUG, not an exporter call."""
    s, buf = setup()
    s, a = ok(dma_buf_attach(s, T1, buf, "dev"))
    s = dma_buf_put(s, T0, buf)
    before = len(log(s))
    s = lock(s, T1, buf)
    s, ret = ok(dma_buf_map_attachment(s, T1, a, BIDI))
    assert ret == -EINVAL and len(log(s)) == before
    assert warned(s, 6, "BUG")


def test_size_never_changes_after_export() -> None:
    """§10 #3: no call changes size (a short walk through attach/map/put)."""
    s, buf = setup(size=8192)
    s, a = ok(dma_buf_attach(s, T1, buf, "dev"))
    s = lock(s, T1, buf)
    s, _ = ok(dma_buf_map_attachment(s, T1, a, BIDI))
    s = okk(unlock(s, T1, buf))
    assert s.bufs[buf].size == 8192
