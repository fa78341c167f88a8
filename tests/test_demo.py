"""The demo walks one revoke on the core (core-semantics §5.8) and prints it as a call log."""

from __future__ import annotations

import pytest

from dmabuf_model.demo import run_demo


@pytest.fixture
def walk(capsys: pytest.CaptureFixture[str]) -> list[str]:
    run_demo()
    return capsys.readouterr().out.splitlines()


def test_demo_invalidates_both_revocable_importers_newest_first(walk: list[str]) -> None:
    """§5.8: the dynamic importer attached last is invalidated first, then the pinned one."""
    inval = [line for line in walk if ".invalidate_mappings(" in line]
    assert inval == [
        "exporter:   gpu_ops.invalidate_mappings(attach1) = must unmap sgt1",
        "exporter:   iommufd_ops.invalidate_mappings(attach0) = must unmap sgt0",
    ]


def test_demo_follows_the_revoke_sequence_in_order(walk: list[str]) -> None:
    """§5.8 steps 1-6: lock, mark revoked, invalidate, BOOKKEEP wait (the job signals first),
    unlock, wait for the unmaps."""
    text = "\n".join(walk)
    steps = [
        "exporter: dma_resv_lock(resv0, NULL) = 0",
        "exporter: mark revoked",
        "exporter: dma_buf_invalidate_mappings(buf0)",
        "DMA_RESV_USAGE_BOOKKEEP, false, MAX_SCHEDULE_TIMEOUT) = blocked on fence0",
        "gpu-job: dma_fence_signal(fence0)",
        "MAX_SCHEDULE_TIMEOUT) = MAX_SCHEDULE_TIMEOUT",
        "exporter: dma_resv_unlock(resv0)",
        "exporter: wait for the importers' unmaps = 2 live mappings, waiting",
        "iommufd: dma_buf_unmap_attachment(attach0, sgt0, BIDIRECTIONAL)",
        "gpu: dma_buf_unmap_attachment(attach1, sgt1, BIDIRECTIONAL)",
        "exporter: wait for the importers' unmaps = 0 live mappings, revoke complete",
    ]
    positions = [text.index(step, text.index("-- the exporter revokes")) for step in steps]
    assert positions == sorted(positions)


def test_demo_ends_with_a_map_failing_enodev_and_no_kernel_warning(walk: list[str]) -> None:
    """§5.8: after the revoke the exporter's map_dma_buf (and attach) fail with -ENODEV."""
    after = walk[walk.index("-- after the revoke") :]
    assert "gpu: dma_buf_map_attachment(attach1, BIDIRECTIONAL) = -ENODEV" in after
    assert "gpu: dma_buf_dynamic_attach(buf0, gpu, gpu_ops) = -ENODEV" in after
    assert walk[-1] == "kernel warnings: none"


def test_every_step_line_names_a_thread(walk: list[str]) -> None:
    """Each step is printed as `thread: kernel_function(args) = result`."""
    steps = [line for line in walk if line and not line.startswith(("--", "DMA-buf", "kernel"))]
    threads = {line.split(":", 1)[0] for line in steps}
    assert threads == {"exporter", "iommufd", "gpu", "gpu-job"}
