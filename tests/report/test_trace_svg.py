"""SVG sequence diagrams, rendered here without a browser: valid XML, deterministic, highlighted.

Subjects: the pin-vs-invalidate race (core-semantics §5.8, §10 #22), the ABBA deadlock
(drivers.md §1.7) and a device write after a reset (§10 #22). docs/traces.md explains the
drawing.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import pytest
from report_helpers import (
    assert_golden,
    deadlock_trace,
    platform_trace,
    split_race_trace,
    warning_trace,
)

from dmabuf_model.report import Trace, TraceStep, trace_to_svg
from dmabuf_model.report.trace import parse_call

NS = {"svg": "http://www.w3.org/2000/svg"}


def _texts(el: ET.Element) -> list[str]:
    return ["".join(t.itertext()) for t in el.iter("{http://www.w3.org/2000/svg}text")]


@pytest.mark.parametrize(
    "make",
    [split_race_trace, deadlock_trace, warning_trace, platform_trace],
    ids=lambda f: f.__name__,
)
def test_svg_is_valid_xml_without_scripts_or_external_references(make: Any) -> None:
    """A standalone file: parses with xml.etree, has no script and links nothing outside."""
    svg = trace_to_svg(make())
    root = ET.fromstring(svg)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert "<script" not in svg and "href" not in svg
    assert svg.count("http") == 1  # the xmlns only


def test_svg_highlights_the_violating_step_with_its_label() -> None:
    """§10 #22: step 6 is a red band and a group with class "violation" naming the property."""
    root = ET.fromstring(trace_to_svg(split_race_trace()))
    groups = root.findall(".//svg:g[@class='step violation']", NS)
    assert [g.get("data-step") for g in groups] == ["6"]
    texts = _texts(groups[0])
    assert texts[0] == "6. T2 vfio-revoke: wait for unmaps"
    assert "⚠ violates no_device_mapping_after_revoke" in texts
    bands = root.findall(".//svg:rect[@class='band violation']", NS)
    assert [b.get("data-step") for b in bands] == ["6"]
    heads = [t for t in _texts(root) if t.startswith(("T1 importer", "T2 vfio", "resv0"))]
    assert heads[:3] == ["T1 importer-map-split", "T2 vfio-revoke", "resv0"]


def test_svg_draws_lock_marks_and_the_deadlock_waits() -> None:
    """§4: each lock taken gets a filled mark; the blocked threads are noted at the end."""
    svg = trace_to_svg(deadlock_trace())
    root = ET.fromstring(svg)
    assert len(root.findall(".//svg:rect[@class='mark-lock']", NS)) == 2
    texts = _texts(root)
    assert "T0 waits for resv0 (held by T1)" in texts
    assert "T1 waits for memory_lock (held by T0)" in texts


def test_svg_is_deterministic_and_matches_the_golden_file() -> None:
    """The same trace always gives the same bytes (integers only, fixed order)."""
    svg = trace_to_svg(split_race_trace())
    assert svg == trace_to_svg(split_race_trace())
    assert_golden("split_race.svg", svg)


def test_svg_escapes_text() -> None:
    """Thread names and call text with `<`, `&` and quotes come out as the same text."""
    step = TraceStep(1, 'T0 a<b>&"c"', 'T0 a<b>&"c": x', (parse_call("f(a < b && c) = 0"),))
    trace = Trace(model="m&<>", token="0/0", steps=(step,), verdict="v")
    root = ET.fromstring(trace_to_svg(trace))
    texts = _texts(root)
    assert 'T0 a<b>&"c"' in texts and "f(a < b && c) = 0" in texts
