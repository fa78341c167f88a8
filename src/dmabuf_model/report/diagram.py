"""diagram: the lanes and events of a sequence diagram of a trace, shared by Mermaid and SVG.

A lane per thread (and one for environment events), one for the kernel, one per lock or dma_resv
and per fence the trace touches, one per device and memory range the platform reports. Each step
becomes a header, then its calls as arrows from the thread to the lane they act on, with lock
acquisitions, fence signals, warnings and oracle findings as notes where they happened. It
renders report/trace.py records and models no kernel file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from dmabuf_model.report.text import violation_label
from dmabuf_model.report.trace import (
    LOCK_CALLS,
    UNLOCK_CALLS,
    Call,
    Effect,
    Trace,
    TraceStep,
    first_arg,
    thread_lane,
)

LaneKind = Literal["env", "thread", "kernel", "lock", "fence", "device", "memory"]
"""What a lane stands for; the order of the literal is the left-to-right order of lanes."""

LANE_ORDER: tuple[LaneKind, ...] = ("env", "thread", "kernel", "lock", "fence", "device", "memory")

EventStyle = Literal[
    "call",
    "callback",
    "text",
    "lock",
    "unlock",
    "signal",
    "effect",
    "spawn",
    "warning",
    "finding",
    "violating_finding",
    "transfer",
    "violation",
    "wait",
    "end",
]
"""How an event is drawn; docs/traces.md "Reading a diagram" explains each."""

KERNEL = "kernel"
ENV = "env"

_RESV_RE = re.compile(r"\bresv\d+\b")
_FENCE_RE = re.compile(r"\bfence\d+\b")


@dataclass(frozen=True, slots=True)
class Lane:
    """A participant: ``name`` as the trace says it (``T2``, ``resv0``), ``label`` as shown."""

    name: str
    label: str
    kind: LaneKind


@dataclass(frozen=True, slots=True)
class Event:
    """One row of the diagram.

    ``kind`` "step": a step header (``text`` is "3. action"); "arrow": from lane ``src`` to lane
    ``dst`` (equal for a call the thread makes on itself); "note": over lanes ``src`` to ``dst``
    (equal for one lane). ``step`` is the step index (0 for the end section), ``violation`` is
    True on every event of a violating step.
    """

    kind: Literal["step", "arrow", "note"]
    src: str
    dst: str
    text: str
    style: EventStyle
    step: int
    violation: bool = False


@dataclass(frozen=True, slots=True)
class Diagram:
    """The lanes, left to right, and the events, top to bottom, of one trace."""

    title: str
    lanes: tuple[Lane, ...]
    events: tuple[Event, ...]

    def lane_index(self, name: str) -> int:
        """The position of lane ``name``; KeyError when the diagram has no such lane."""
        for i, lane in enumerate(self.lanes):
            if lane.name == name:
                return i
        raise KeyError(name)


class _Lanes:
    """Lanes in order of first use, grouped by kind when listed."""

    def __init__(self) -> None:
        self._by_name: dict[str, Lane] = {}

    def add(self, name: str, label: str, kind: LaneKind) -> str:
        if name not in self._by_name:
            self._by_name[name] = Lane(name, label, kind)
        return name

    def has(self, name: str) -> bool:
        return name in self._by_name

    def kind(self, name: str) -> LaneKind | None:
        lane = self._by_name.get(name)
        return lane.kind if lane is not None else None

    def ordered(self) -> tuple[Lane, ...]:
        lanes = list(self._by_name.values())
        first = {lane.name: i for i, lane in enumerate(lanes)}

        def key(lane: Lane) -> tuple[int, int, int]:
            tid = int(lane.name[1:]) if lane.kind == "thread" and lane.name[1:].isdigit() else 0
            return (LANE_ORDER.index(lane.kind), tid, first[lane.name])

        return tuple(sorted(lanes, key=key))


def _call_target(call: Call, lanes: _Lanes) -> str | None:
    """The lane a call acts on: a lock, a resv, a fence, a known device, or the kernel."""
    fn = call.fn
    if fn is None:
        return None
    arg = first_arg(call)
    if fn in LOCK_CALLS or fn in UNLOCK_CALLS:
        return lanes.add(arg, arg, "lock") if arg else KERNEL
    if fn.startswith("dma_resv_"):
        m = _RESV_RE.search(call.args or "")
        if m:
            return lanes.add(m.group(0), m.group(0), "lock")
    if fn.startswith("dma_fence_"):
        m = _FENCE_RE.search(call.args or "")
        if m:
            return lanes.add(m.group(0), m.group(0), "fence")
    if arg and lanes.kind(arg) == "device":
        return arg
    return lanes.add(KERNEL, "kernel", "kernel")


def _effect_events(
    step: TraceStep, e: Effect, actor: str, lanes: _Lanes, flag: bool
) -> list[Event]:
    """The events that draw one effect of ``step`` done by lane ``actor``."""
    who = actor
    n = step.index
    if e.kind in ("lock", "unlock"):
        lock = lanes.add(e.target, e.target, "lock")
        holder = thread_lane(e.source) if e.source else who
        return [Event("note", lock, lock, f"{holder} {e.text}", e.kind, n, flag)]
    if e.kind == "signal":
        fence = lanes.add(e.target, e.target, "fence")
        return [Event("note", fence, fence, f"{who} {e.text}", "signal", n, flag)]
    if e.kind == "spawn":
        new = thread_lane(e.target)
        return [Event("arrow", who, new, f"starts {e.target}", "spawn", n, flag)]
    if e.kind == "warning":
        return [Event("note", who, who, e.text, "warning", n, flag)]
    if e.kind == "finding":
        style: EventStyle = "violating_finding" if e.violation else "finding"
        if e.source and lanes.has(e.source) and lanes.has(e.target) and e.source != e.target:
            return [Event("arrow", e.source, e.target, e.text, style, n, flag)]
        return [Event("note", e.target, e.target, e.text, style, n, flag)]
    if e.kind == "transfer":
        if e.source and e.source != e.target and lanes.has(e.target):
            return [Event("arrow", e.source, e.target, e.text, "transfer", n, flag)]
        lane = e.source or e.target
        return [Event("note", lane, lane, e.text, "transfer", n, flag)]
    if e.kind in ("dma_mapping", "memory", "device"):
        return [Event("note", e.target, e.target, e.text, "effect", n, flag)]
    text = e.text
    if e.kind == "exit" and text.startswith(e.target + " "):
        text = text[len(e.target) + 1 :]
    return [Event("note", who, who, text, "effect", n, flag)]


def _platform_lanes(trace: Trace, lanes: _Lanes) -> None:
    """Register device and memory lanes first, so calls naming a device can target it."""
    for step in trace.steps:
        for e in step.effects:
            if e.kind in ("dma_mapping", "memory", "finding"):
                if e.source:
                    lanes.add(e.source, e.source, "device")
                if e.target and e.target != e.source:
                    lanes.add(e.target, e.target, "memory")
            elif e.kind == "transfer":
                lanes.add(e.source or e.target, e.source or e.target, "device")
                if e.source and e.target != e.source:
                    lanes.add(e.target, e.target, "memory")
            elif e.kind == "device":
                lanes.add(e.target, e.target, "device")


def build_diagram(trace: Trace) -> Diagram:
    """build_diagram - the lanes and events of ``trace``'s sequence diagram.

    Per step: a header, each call as an arrow (free text and callback calls from the thread),
    the effects a call did right after it, then the effects known only from the state
    difference, then on a violating step a "violation" note. After the last step, the threads
    still blocked (a deadlock's cycle) as "wait" notes.
    """
    lanes = _Lanes()
    for step in trace.steps:
        lanes.add(thread_lane(step.actor), step.actor, "env" if step.actor == ENV else "thread")
        for e in step.effects:
            if e.kind == "spawn":
                lanes.add(thread_lane(e.target), e.target, "thread")
    for w in trace.waits:
        lanes.add(thread_lane(w.actor), w.actor, "thread")
    _platform_lanes(trace, lanes)

    events: list[Event] = []
    label = violation_label(trace)
    for step in trace.steps:
        actor = thread_lane(step.actor)
        flag = step.violation
        n = step.index
        events.append(Event("step", actor, actor, f"{n}. {step.action}", "call", n, flag))
        for i, call in enumerate(step.calls):
            target = _call_target(call, lanes)
            text = "↳ " * call.depth + call.text
            if target is None:
                events.append(Event("note", actor, actor, text, "text", n, flag))
            else:
                style: EventStyle = "callback" if call.depth else "call"
                events.append(Event("arrow", actor, target, text, style, n, flag))
            for e in step.effects:
                if e.call == i:
                    events.extend(_effect_events(step, e, actor, lanes, flag))
        for e in step.effects:
            if e.call < 0:
                events.extend(_effect_events(step, e, actor, lanes, flag))
        if flag:
            events.append(Event("note", actor, actor, label, "violation", n, True))
    if trace.waits:
        first = thread_lane(trace.waits[0].actor)
        events.append(Event("step", first, first, "end: threads still blocked", "end", 0))
        for w in trace.waits:
            who = thread_lane(w.actor)
            on = w.on if lanes.has(w.on) else who
            held = f" (held by {thread_lane(w.holder)})" if w.holder else ""
            events.append(Event("note", who, on, f"{who} waits for {w.on}{held}", "wait", 0))
    return Diagram(f"{trace.model}: {trace.verdict}", lanes.ordered(), tuple(events))


__all__ = [
    "ENV",
    "KERNEL",
    "LANE_ORDER",
    "Diagram",
    "Event",
    "EventStyle",
    "Lane",
    "LaneKind",
    "build_diagram",
]
