"""mermaid: a trace as Mermaid ``sequenceDiagram`` source, to paste into a README, an issue or mail.

Participants are the diagram's lanes (threads, kernel, locks, fences, devices, memory ranges);
calls are arrows, lock acquisitions, fence signals, warnings and findings are notes, and the
violating step sits in a red ``rect`` block. It renders report/diagram.py and models no kernel
file. Names are made Mermaid-safe: ids are letters, digits and underscores; text escapes the
characters Mermaid reads as syntax (``#``, ``;``, ``<``, ``>``) as entity codes.
"""

from __future__ import annotations

import re

from dmabuf_model.report.diagram import Diagram, Event, build_diagram
from dmabuf_model.report.trace import Trace

VIOLATION_RGB = "rgb(255, 200, 200)"
"""The background of the violating step's block."""

_RESERVED = frozenset(
    {
        "activate",
        "actor",
        "alt",
        "and",
        "autonumber",
        "box",
        "break",
        "create",
        "critical",
        "deactivate",
        "destroy",
        "else",
        "end",
        "left",
        "link",
        "links",
        "loop",
        "note",
        "of",
        "opt",
        "over",
        "par",
        "participant",
        "rect",
        "right",
        "title",
    }
)
_ESCAPES = str.maketrans({"#": "#35;", ";": "#59;", "<": "#lt;", ">": "#gt;", "\n": " "})
_ARROWS = {
    "call": "->>",
    "callback": "->>",
    "spawn": "-)",
    "transfer": "->>",
    "finding": "-x",
    "violating_finding": "-x",
}


def mermaid_text(text: str) -> str:
    """mermaid_text - ``text`` safe inside a Mermaid message, note or participant label."""
    return text.translate(_ESCAPES).strip() or " "


def mermaid_ids(diagram: Diagram) -> dict[str, str]:
    """mermaid_ids - a unique Mermaid-safe id per lane name (``memory_lock``, ``T2``, ``env``)."""
    ids: dict[str, str] = {}
    used: set[str] = set()
    for lane in diagram.lanes:
        base = re.sub(r"\W", "_", lane.name, flags=re.ASCII).strip("_") or "lane"
        if base[0].isdigit() or base.lower() in _RESERVED:
            base = f"p_{base}"
        cand, n = base, 2
        while cand in used:
            cand, n = f"{base}_{n}", n + 1
        used.add(cand)
        ids[lane.name] = cand
    return ids


def _event_line(e: Event, ids: dict[str, str], first: str, last: str) -> str:
    text = mermaid_text(e.text)
    if e.kind == "step":
        span = first if first == last else f"{first},{last}"
        return f"Note over {span}: {text}"
    src, dst = ids[e.src], ids[e.dst]
    if e.kind == "arrow":
        return f"{src}{_ARROWS.get(e.style, '->>')}{dst}: {text}"
    prefix = {"warning": "⚠ ", "violating_finding": "⚠ ", "violation": "⚠ "}.get(e.style, "")
    span = src if src == dst else f"{src},{dst}"
    return f"Note over {span}: {prefix}{text}"


def trace_to_mermaid(trace: Trace) -> str:
    """trace_to_mermaid - the trace as Mermaid ``sequenceDiagram`` source, ending in a newline.

    A ``%%`` comment carries the verdict and the replay token; each step opens with a note
    across all lanes ("3. T2 vfio-revoke: ..."); the violating step is wrapped in
    ``rect rgb(255, 200, 200)`` and ends with a "violates NAME" note.
    """
    d = build_diagram(trace)
    ids = mermaid_ids(d)
    first, last = ids[d.lanes[0].name], ids[d.lanes[-1].name]
    out = [
        "sequenceDiagram",
        f"    %% {d.title}",
        f"    %% replay token {trace.token}",
    ]
    for lane in d.lanes:
        out.append(f"    participant {ids[lane.name]} as {mermaid_text(lane.label)}")
    in_rect = False
    current = -1
    for e in d.events:
        if e.kind == "step" and e.step != current:
            if in_rect:
                out.append("    end")
                in_rect = False
            current = e.step
            if e.violation:
                out.append(f"    rect {VIOLATION_RGB}")
                in_rect = True
        indent = "        " if in_rect else "    "
        out.append(indent + _event_line(e, ids, first, last))
    if in_rect:
        out.append("    end")
    return "\n".join(out) + "\n"


__all__ = ["VIOLATION_RGB", "mermaid_ids", "mermaid_text", "trace_to_mermaid"]
