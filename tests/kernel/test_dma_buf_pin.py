"""dma_buf_pin / dma_buf_unpin (core-semantics §5.5, §10 #8, #19, §11 dma_buf_pin)."""

from __future__ import annotations

from test_dma_buf_toys import (
    NO_CALLBACK,
    REVOCABLE,
    T1,
    T2,
    lock,
    log,
    names,
    ok,
    setup,
    warned,
    with_ext,
)

from dmabuf_model.kernel.dma_buf import (
    dma_buf_attach,
    dma_buf_dynamic_attach,
    dma_buf_invariant_violations,
    dma_buf_pin,
    dma_buf_unpin,
)
from dmabuf_model.kernel.errno import EBUSY, EINVAL


def test_pin_on_a_dynamic_attachment_calls_ops_pin_under_the_resv() -> None:
    """§5.5: pin calls ops.pin with the resv held (§10 #8) and counts one ghost pin."""
    s, buf = setup()
    s, a = ok(dma_buf_dynamic_attach(s, T1, buf, "nic", REVOCABLE))
    s = lock(s, T1, buf)
    s, ret = dma_buf_pin(s, T1, a)
    assert ret == 0 and log(s)[-1] == ("pin", a, True)
    assert s.attachments[a].pins == 1 and not s.warnings


def test_pin_returns_the_exporter_error_and_counts_no_pin() -> None:
    """§5.5, §11 dma_buf_pin: the exporter's error (e.g. it refuses pinned importers)."""
    s, buf = setup()
    s = with_ext(s, pin_ret=-EBUSY)
    s, a = ok(dma_buf_dynamic_attach(s, T1, buf, "nic", NO_CALLBACK))
    s = lock(s, T1, buf)
    s, ret = dma_buf_pin(s, T1, a)
    assert ret == -EBUSY and s.attachments[a].pins == 0


def test_pin_without_ops_pin_is_a_successful_no_op() -> None:
    """§5.5, §5.18 static exporter row: dma_buf_pin returns 0 when the exporter has no pin."""
    s, buf = setup(pin=False)
    s, a = ok(dma_buf_dynamic_attach(s, T1, buf, "nic", NO_CALLBACK))
    s = lock(s, T1, buf)
    s, ret = dma_buf_pin(s, T1, a)
    assert ret == 0 and "pin" not in names(s) and s.attachments[a].pins == 1


def test_pin_on_a_static_attachment_warns_and_goes_on() -> None:
    """§5.5, §10 #19: WARN, then the exporter is still called."""
    s, buf = setup()
    s, a = ok(dma_buf_attach(s, T1, buf, "dev"))
    s = lock(s, T1, buf)
    s, ret = dma_buf_pin(s, T1, a)
    assert ret == 0 and "pin" in names(s)
    assert warned(s, 19) == ["dma_buf_pin on a static attachment"]


def test_unpin_on_a_static_attachment_warns_and_goes_on() -> None:
    """§5.5, §10 #19."""
    s, buf = setup()
    s, a = ok(dma_buf_attach(s, T1, buf, "dev"))
    s = lock(s, T1, buf)
    s, _ = dma_buf_pin(s, T1, a)
    s = dma_buf_unpin(s, T1, a)
    assert "dma_buf_unpin on a static attachment" in warned(s, 19) and "unpin" in names(s)


def test_pin_without_the_resv_warns_invariant_8() -> None:
    """§5.5 precondition, §10 #8: the resv lock is asserted."""
    s, buf = setup()
    s, a = ok(dma_buf_dynamic_attach(s, T1, buf, "nic", REVOCABLE))
    s, ret = dma_buf_pin(s, T1, a)
    assert ret == 0 and warned(s, 8)
    assert log(s)[-1] == ("pin", a, False)


def test_pin_with_the_resv_held_by_another_thread_warns_invariant_8() -> None:
    """§10 #8: held by the *calling* thread."""
    s, buf = setup()
    s, a = ok(dma_buf_dynamic_attach(s, T1, buf, "nic", REVOCABLE))
    s = lock(s, T2, buf)
    s, _ = dma_buf_pin(s, T1, a)
    assert warned(s, 8)


def test_unpin_without_a_pin_is_recorded_as_unbalanced() -> None:
    """§10 #19: unpins never exceed pins."""
    s, buf = setup()
    s, a = ok(dma_buf_dynamic_attach(s, T1, buf, "nic", REVOCABLE))
    s = lock(s, T1, buf)
    s = dma_buf_unpin(s, T1, a)
    assert warned(s, 19) == ["dma_buf_unpin without a matching dma_buf_pin"]
    assert s.attachments[a].pins == 0


def test_nested_pins_balance_with_unpins() -> None:
    """§5.5: nesting is allowed; §10 #19: each pin is undone by one unpin."""
    s, buf = setup()
    s, a = ok(dma_buf_dynamic_attach(s, T1, buf, "nic", REVOCABLE))
    s = lock(s, T1, buf)
    s, _ = dma_buf_pin(s, T1, a)
    s, _ = dma_buf_pin(s, T1, a)
    s = dma_buf_unpin(s, T1, a)
    assert s.attachments[a].pins == 1
    s = dma_buf_unpin(s, T1, a)
    assert s.attachments[a].pins == 0 and not s.warnings and names(s).count("unpin") == 2


def test_detach_with_a_pin_left_is_an_invariant_violation() -> None:
    """§10 #19: all pins are undone before detach (the core does not check; the model does)."""
    from test_dma_buf_toys import okk, unlock

    from dmabuf_model.kernel.dma_buf import dma_buf_detach

    s, buf = setup()
    s, a = ok(dma_buf_dynamic_attach(s, T1, buf, "nic", REVOCABLE))
    s = lock(s, T1, buf)
    s, _ = dma_buf_pin(s, T1, a)
    s = unlock(s, T1, buf)
    s = okk(dma_buf_detach(s, T1, buf, a))
    assert any(v.startswith("#19") for v in dma_buf_invariant_violations(s))


def test_pin_with_null_attachment_warns_and_fails_einval() -> None:
    """§5.5 (NULL attachment)."""
    s, _ = setup()
    s, ret = dma_buf_pin(s, T1, None)
    assert ret == -EINVAL and warned(s, 0)
