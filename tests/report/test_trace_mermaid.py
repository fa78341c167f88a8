"""Mermaid sequence diagrams of traces: lanes, arrows, notes, the violating step in a red rect.

Golden-pinned on the pin-vs-invalidate race (core-semantics §5.8, §10 #22); docs/traces.md
"Reading a diagram" explains the notation.
"""

from __future__ import annotations

import re

from report_helpers import assert_golden, deadlock_trace, platform_trace, split_race_trace

from dmabuf_model.report import Trace, TraceStep, trace_to_mermaid
from dmabuf_model.report.diagram import build_diagram
from dmabuf_model.report.mermaid import mermaid_ids, mermaid_text
from dmabuf_model.report.trace import parse_call


def test_split_race_mermaid_matches_the_golden_file() -> None:
    """A participant per thread, the kernel and resv0; calls are arrows, locks are notes."""
    src = trace_to_mermaid(split_race_trace())
    assert_golden("split_race.mmd", src)
    assert src.startswith("sequenceDiagram\n")
    participants = re.findall(r"^    participant (\S+) as (.+)$", src, flags=re.M)
    assert participants == [
        ("env", "env"),
        ("T1", "T1 importer-map-split"),
        ("T2", "T2 vfio-revoke"),
        ("kernel", "kernel"),
        ("resv0", "resv0"),
    ]


def test_only_the_violating_step_is_inside_the_red_rect() -> None:
    """§10 #22: step 6, where the revoke completes with the device still mapped, is highlighted."""
    lines = trace_to_mermaid(split_race_trace()).splitlines()
    start = lines.index("    rect rgb(255, 200, 200)")
    end = lines.index("    end", start)
    block = lines[start + 1 : end]
    assert block[0] == "        Note over env,resv0: 6. T2 vfio-revoke: wait for unmaps"
    assert block[-1] == "        Note over T2: ⚠ violates no_device_mapping_after_revoke"
    assert lines.count("    rect rgb(255, 200, 200)") == 1


def test_deadlock_mermaid_notes_each_wait_between_thread_and_lock() -> None:
    """drivers.md §1.7: after the last step, each blocked thread's wait spans it and the lock."""
    src = trace_to_mermaid(deadlock_trace())
    assert "    Note over T0,resv0: T0 waits for resv0 (held by T1)\n" in src
    assert "    Note over T1,memory_lock: T1 waits for memory_lock (held by T0)\n" in src


def test_platform_access_is_an_arrow_from_device_to_memory_range() -> None:
    """§10 #22: the violating finding is drawn as a crossed arrow mlx5_0 -x vfio0.bar0."""
    src = trace_to_mermaid(platform_trace())
    assert "    participant vfio0_bar0 as vfio0.bar0\n" in src
    assert "        mlx5_0-xvfio0_bar0: dma_after_reset: mlx5_0 vfio0.bar0: write via" in src


def test_text_and_ids_are_made_mermaid_safe() -> None:
    """`#`, `;`, `<`, `>` are entity codes; ids are words, never a keyword such as `end`."""
    assert mermaid_text("a; b #3 <x>") == "a#59; b #35;3 #lt;x#gt;"
    calls = (parse_call("mutex_lock(end) = 0"), parse_call("mutex_lock(end.x) = 0"))
    step = TraceStep(1, "T0 a<b>", "T0 a<b>: lock", calls)
    trace = Trace(model="m", token="0/0", steps=(step,), verdict="v")
    ids = mermaid_ids(build_diagram(trace))
    assert ids == {"T0": "T0", "end": "p_end", "end.x": "end_x"}
    src = trace_to_mermaid(trace)
    assert "    participant T0 as T0 a#lt;b#gt;\n" in src
    assert "    T0->>p_end: mutex_lock(end) = 0\n" in src
