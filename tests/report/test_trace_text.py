"""The text form of a trace: one line per step (thread, kernel calls, effects), golden-pinned.

The subject is the pin-vs-invalidate race's shortest counterexample (core-semantics §5.8,
§10 #22) and the ABBA deadlock (drivers.md §1.7); the format is described in docs/traces.md.
"""

from __future__ import annotations

from report_helpers import assert_golden, deadlock_trace, split_race_trace

from dmabuf_model.report import trace_to_text


def test_split_race_text_is_one_line_per_step_and_matches_the_golden_file() -> None:
    """docs/traces.md "Text": header, then `N. action | calls => effects`, the violation marked."""
    text = trace_to_text(split_race_trace())
    assert_golden("split_race.txt", text)
    lines = text.splitlines()
    assert len(lines) == 2 + 6
    assert lines[-1].endswith("   <- violates no_device_mapping_after_revoke")
    assert lines[-1].startswith("  6. T2 vfio-revoke: wait for unmaps | wait_for_completion(")


def test_verbose_text_puts_each_call_on_its_own_line_with_callbacks_indented() -> None:
    """§5.8: the invalidate_mappings callback's calls run inside the exporter's step."""
    text = trace_to_text(split_race_trace(), verbose=True)
    assert_golden("split_race_verbose.txt", text)
    assert "         -> dma_buf_unmap_attachment(attach0, sgt0)\n" in text


def test_deadlock_text_ends_with_the_waits_for_cycle() -> None:
    """drivers.md §1.7: the last step is marked and the cycle is spelled out."""
    lines = trace_to_text(deadlock_trace()).splitlines()
    assert lines == [
        "lock_order[nested]: deadlock after step 2",
        "scenario lock_order, replay token 0/0/1",
        "  1. T0 vfio-reset: down_write memory_lock | down_write(memory_lock) => takes "
        "memory_lock (write)",
        "  2. T1 importer-fault: lock resv | dma_resv_lock(resv0, NULL) = 0; check revoked "
        "under resv => takes resv0   <- deadlock: nothing can run after this step",
        "  deadlock: T0 vfio-reset waits for resv0 held by T1 importer-fault, which waits for "
        "memory_lock held by T0",
    ]
