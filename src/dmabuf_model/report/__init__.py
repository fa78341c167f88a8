"""report: traces people can read - text, JSON that replay reads back, Mermaid and SVG diagrams.

A checker Path of a SystemModel becomes a structured Trace (trace.py: who acted, the kernel calls
made, the locks, fences, warnings and platform findings that changed, the violating step), which
the renderers draw. The trace file format is documented in docs/traces.md.
"""

from dmabuf_model.report.diagram import Diagram, Event, Lane, build_diagram
from dmabuf_model.report.files import write_atomic
from dmabuf_model.report.mermaid import trace_to_mermaid
from dmabuf_model.report.svg import trace_to_svg
from dmabuf_model.report.text import trace_to_text
from dmabuf_model.report.trace import (
    Call,
    Effect,
    Trace,
    TraceStep,
    Wait,
    build_trace,
    discovery_trace,
)
from dmabuf_model.report.tracejson import (
    SCHEMA_ID,
    TraceError,
    load_trace,
    replay_trace,
    trace_dumps,
    trace_from_json,
    trace_to_json,
)

__all__ = [
    "SCHEMA_ID",
    "Call",
    "Diagram",
    "Effect",
    "Event",
    "Lane",
    "Trace",
    "TraceError",
    "TraceStep",
    "Wait",
    "build_diagram",
    "build_trace",
    "discovery_trace",
    "load_trace",
    "replay_trace",
    "trace_dumps",
    "trace_from_json",
    "trace_to_json",
    "trace_to_mermaid",
    "trace_to_svg",
    "trace_to_text",
    "write_atomic",
]
