"""svg: a trace as a standalone SVG sequence diagram, drawn here without a browser or the network.

One lane per thread, kernel object, device and memory range (report/diagram.py), one row per
event: arrows with labels for calls, small squares for lock acquisitions (filled: taken, hollow:
released), circles for fence signals, boxed notes for effects and warnings, and the violating
step on a red band with its label. The output is plain XML built from integers and escaped text,
so the same trace always gives the same bytes (golden-testable). Models no kernel file.
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import escape

from dmabuf_model.report.diagram import Diagram, Event, LaneKind, build_diagram
from dmabuf_model.report.trace import Trace

FONT_SIZE = 12
TITLE_SIZE = 13
ROW = 26
"""Height of one event row."""
MARGIN = 16
HEAD_H = 30
"""Height of a lane's header box."""
MIN_GAP = 150
MAX_GAP = 380
"""Bounds of the distance between neighbouring lanes; labels longer than that overflow."""

_LANE_FILL: dict[LaneKind, str] = {
    "env": "#ffffff",
    "thread": "#dbe8ff",
    "kernel": "#e8e8e8",
    "lock": "#fff4c2",
    "fence": "#dff5df",
    "device": "#ece0ff",
    "memory": "#ffe6cc",
}

_STYLE = """
text { font-family: monospace; font-size: 12px; fill: #1a1a1a; }
.halo { stroke: #ffffff; stroke-width: 3px; paint-order: stroke; stroke-linejoin: round; }
.title { font-size: %dpx; font-weight: bold; }
.lane-head { stroke: #555555; }
.lifeline { stroke: #9a9a9a; stroke-dasharray: 4 4; }
.band { fill: #f4f4f4; }
.band.violation { fill: rgb(255, 200, 200); }
.step-head { font-weight: bold; }
.arrow { stroke: #1a1a1a; fill: none; }
.arrow.callback { stroke: #555555; stroke-dasharray: 2 2; }
.arrow.spawn { stroke: #1f5fbf; stroke-dasharray: 6 3; }
.arrow.transfer { stroke: #7b3fbf; }
.arrow.finding { stroke: #888888; }
.arrow.violating_finding { stroke: #c00000; stroke-width: 2px; }
.note { stroke: #7a8fbf; fill: #eef3ff; }
.note.text { stroke: #aaaaaa; fill: #fafafa; }
.note.lock, .note.unlock { stroke: #c9a400; fill: #fff9dc; }
.note.signal { stroke: #2e8b57; fill: #e9f8e9; }
.note.warning { stroke: #d9822b; fill: #ffe3bf; }
.note.finding { stroke: #888888; fill: #f0f0f0; }
.note.violating_finding { stroke: #c00000; fill: #ffb3b3; stroke-width: 2px; }
.note.violation { stroke: #c00000; fill: #c00000; }
.note.wait { stroke: #c00000; fill: #fde2e2; stroke-dasharray: 4 2; }
text.violation { fill: #ffffff; font-weight: bold; }
text.violating_finding, text.wait { fill: #8b0000; }
.mark-lock { fill: #c9a400; stroke: #c9a400; }
.mark-unlock { fill: #ffffff; stroke: #c9a400; }
.mark-signal { fill: #2e8b57; stroke: #2e8b57; }
"""


_MARKED = ("lock", "unlock", "signal")
"""Note styles drawn with a marker: a lock square or a fence-signal circle."""


def _prefix(e: Event) -> str:
    """The warning sign in front of warnings, violating findings and the violation label."""
    return "⚠ " if e.style in ("warning", "violating_finding", "violation") else ""


def text_width(text: str, size: int = FONT_SIZE) -> int:
    """text_width - the drawn width of ``text`` in pixels (monospace, 0.6 em per character)."""
    return (len(text) * size * 3 + 4) // 5


@dataclass(frozen=True, slots=True)
class _Placed:
    event: Event
    y: int
    x1: int
    x2: int


def _gap(d: Diagram) -> int:
    need = MIN_GAP
    for lane in d.lanes:
        need = max(need, text_width(lane.label) + 24)
    for e in d.events:
        if e.kind == "arrow" and e.src != e.dst:
            span = abs(d.lane_index(e.src) - d.lane_index(e.dst))
            need = max(need, (text_width(e.text) + 28 + span - 1) // span)
    return min(need, MAX_GAP)


def _note_box(e: Event, x1: int, x2: int) -> tuple[int, int]:
    """Left edge and width of a note drawn over lanes at x1..x2."""
    lo, hi = min(x1, x2), max(x1, x2)
    w = text_width(_prefix(e) + e.text) + 16 + (14 if e.style in _MARKED else 0)
    if lo == hi:
        return lo - w // 2, w
    w = max(w, hi - lo + 60)
    return (lo + hi) // 2 - w // 2, w


def _extent(p: _Placed) -> tuple[int, int]:
    """The leftmost and rightmost x an event draws on."""
    e = p.event
    if e.kind == "arrow":
        lo = min(p.x1, p.x2)
        right = lo + 8 + text_width(e.text) if p.x1 != p.x2 else p.x1 + 40 + text_width(e.text)
        return lo, max(p.x1, p.x2, right)
    if e.kind == "note":
        left, w = _note_box(e, p.x1, p.x2)
        return left, left + w
    return 0, 0


def trace_to_svg(trace: Trace) -> str:
    """trace_to_svg - the trace as a standalone SVG document (UTF-8 text ending in a newline).

    Valid XML, deterministic, no scripts, no external references. Each step is a
    ``<g class="step" data-step="N">`` group; a violating step also has class "violation", a
    red band behind it and a "violates NAME" label.
    """
    d = build_diagram(trace)
    gap = _gap(d)
    title_h = 2 * (FONT_SIZE + 8)
    head_top = MARGIN + title_h
    first_row = head_top + HEAD_H + 12
    # Lane centres before shifting: lane i at i * gap.
    xs = {lane.name: i * gap for i, lane in enumerate(d.lanes)}
    placed: list[_Placed] = []
    y = first_row
    for e in d.events:
        if e.kind == "step" and placed:
            y += 6
        placed.append(_Placed(e, y, xs[e.src], xs[e.dst]))
        y += ROW
    bottom = y + 8

    lo = min([-(gap // 2)] + [_extent(p)[0] for p in placed])
    hi = max([(len(d.lanes) - 1) * gap + gap // 2] + [_extent(p)[1] for p in placed])
    hi = max(hi, lo + text_width(d.title, TITLE_SIZE) + 8)
    shift = MARGIN - lo
    width = hi - lo + 2 * MARGIN
    height = bottom + MARGIN

    out: list[str] = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">',
        f"<title>{escape(d.title)}</title>",
        f"<desc>replay token {escape(trace.token)}</desc>",
        "<defs>",
        '<marker id="arrowhead" viewBox="0 0 10 10" refX="9" refY="5" '
        'markerUnits="userSpaceOnUse" markerWidth="9" markerHeight="9" '
        'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="context-stroke"/>'
        "</marker>",
        f"<style>{_STYLE % TITLE_SIZE}</style>",
        "</defs>",
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text class="title" x="{MARGIN}" y="{MARGIN + FONT_SIZE}">{escape(d.title)}</text>',
        f'<text x="{MARGIN}" y="{MARGIN + 2 * FONT_SIZE + 8}">replay token '
        f"{escape(trace.token)}</text>",
    ]
    out.extend(_bands(placed, shift + lo, width - 2 * MARGIN, bottom))
    out.append('<g class="lanes">')
    for lane in d.lanes:
        x = xs[lane.name] + shift
        w = text_width(lane.label) + 16
        out.append(
            f'<rect class="lane-head" x="{x - w // 2}" y="{head_top}" width="{w}" '
            f'height="{HEAD_H - 6}" rx="4" fill="{_LANE_FILL[lane.kind]}"/>'
        )
        out.append(
            f'<text x="{x}" y="{head_top + 16}" text-anchor="middle">{escape(lane.label)}</text>'
        )
        out.append(
            f'<line class="lifeline" x1="{x}" y1="{head_top + HEAD_H - 6}" x2="{x}" y2="{bottom}"/>'
        )
    out.append("</g>")
    out.extend(_events(placed, shift, shift + lo))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _bands(placed: list[_Placed], left: int, width: int, bottom: int) -> list[str]:
    """A background band per step: grey header row, and red over a violating step's rows."""
    out = ['<g class="bands">']
    starts = [i for i, p in enumerate(placed) if p.event.kind == "step"]
    for k, i in enumerate(starts):
        p = placed[i]
        end = placed[starts[k + 1]].y - 6 if k + 1 < len(starts) else bottom - 4
        top = p.y - ROW + 8
        if p.event.violation:
            out.append(
                f'<rect class="band violation" data-step="{p.event.step}" x="{left}" '
                f'y="{top}" width="{width}" height="{end - top}"/>'
            )
        else:
            out.append(f'<rect class="band" x="{left}" y="{top}" width="{width}" height="{ROW}"/>')
    out.append("</g>")
    return out


def _events(placed: list[_Placed], shift: int, left: int) -> list[str]:
    out: list[str] = []
    open_group = False
    for p in placed:
        e = p.event
        if e.kind == "step":
            if open_group:
                out.append("</g>")
            cls = "step violation" if e.violation else "step"
            out.append(f'<g class="{cls}" data-step="{e.step}">')
            open_group = True
            out.append(f'<text class="step-head" x="{left + 6}" y="{p.y}">{escape(e.text)}</text>')
        elif e.kind == "arrow":
            out.extend(_arrow(e, p.y, p.x1 + shift, p.x2 + shift))
        else:
            out.extend(_note(e, p.y, p.x1 + shift, p.x2 + shift))
    if open_group:
        out.append("</g>")
    return out


def _arrow(e: Event, y: int, x1: int, x2: int) -> list[str]:
    cls = f"arrow {e.style}"
    label = e.text
    if x1 == x2:
        d = f"M{x1},{y - 8} h28 v12 h-26"
        return [
            f'<path class="{cls}" d="{d}" marker-end="url(#arrowhead)"/>',
            f'<text class="halo {e.style}" x="{x1 + 36}" y="{y}">{escape(label)}</text>',
        ]
    end = x2 - 2 if x2 > x1 else x2 + 2
    return [
        f'<line class="{cls}" x1="{x1}" y1="{y}" x2="{end}" y2="{y}" '
        'marker-end="url(#arrowhead)"/>',
        f'<text class="halo {e.style}" x="{min(x1, x2) + 8}" y="{y - 5}">{escape(label)}</text>',
    ]


def _note(e: Event, y: int, x1: int, x2: int) -> list[str]:
    left, w = _note_box(e, x1, x2)
    top = y - FONT_SIZE - 3
    h = FONT_SIZE + 9
    out = [f'<rect class="note {e.style}" x="{left}" y="{top}" width="{w}" height="{h}" rx="3"/>']
    text_x = left + 8
    if e.style in _MARKED:
        cy = top + h // 2
        if e.style == "signal":
            out.append(f'<circle class="mark-signal" cx="{left + 10}" cy="{cy}" r="4"/>')
        else:
            out.append(
                f'<rect class="mark-{e.style}" x="{left + 6}" y="{cy - 4}" width="8" height="8"/>'
            )
        text_x += 14
    out.append(f'<text class="{e.style}" x="{text_x}" y="{y}">{escape(_prefix(e) + e.text)}</text>')
    return out


__all__ = ["FONT_SIZE", "ROW", "text_width", "trace_to_svg"]
