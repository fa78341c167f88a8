"""text: a trace as plain text, one line per step: thread, kernel calls, effects.

The form a kernel developer reads in a terminal or pastes into a mail (style-guide B7): the
verdict first, then ``  3. T2 vfio-revoke: lock resv, revoke, invalidate | dma_resv_lock(resv0,
NULL) = 0; ... => takes resv0, unmaps sgt0``, the violating step marked, and the replay token.
It renders report/trace.py records and models no kernel file.
"""

from __future__ import annotations

from dmabuf_model.report.trace import Trace, TraceStep


def violation_label(trace: Trace) -> str:
    """violation_label - what a flagged step is marked with: the property, or the deadlock."""
    if trace.kind == "deadlock":
        return "deadlock: nothing can run after this step"
    if trace.property:
        return f"violates {trace.property}"
    return "violating access"


def header_lines(trace: Trace) -> list[str]:
    """header_lines - the model and verdict, then the scenario, design and token."""
    scen = trace.scenario.get("name", "")
    path = trace.scenario.get("path")
    where = f"scenario {scen}" + (f" ({path})" if isinstance(path, str) and path else "")
    design = f", design {trace.design}" if trace.design else ""
    return [f"{trace.model}: {trace.verdict}", f"{where}{design}, replay token {trace.token}"]


def step_line(step: TraceStep, width: int = 3) -> str:
    """step_line - one step on one line: ``N. action | call; call => effect, effect``."""
    line = f"{step.index:>{width}}. {step.action}"
    if step.calls:
        line += " | " + "; ".join(c.line for c in step.calls)
    if step.effects:
        line += " => " + ", ".join(e.text for e in step.effects)
    return line


def trace_to_text(trace: Trace, *, verbose: bool = False) -> str:
    """trace_to_text - the trace as text: header, one line per step, then how it ends.

    With ``verbose`` each step spans several lines: the action, each call on its own line
    (callbacks indented), then the effects. The violating step ends with ``<- violates NAME``.
    The text ends with a newline.
    """
    out = header_lines(trace)
    width = max(3, len(str(len(trace.steps))) + 1)
    label = violation_label(trace)
    for step in trace.steps:
        if trace.loop_start is not None and step.index == trace.loop_start + 1:
            out.append(f"{'':>{width}}  -- loop: the steps below repeat forever --")
        mark = f"   <- {label}" if step.violation else ""
        if not verbose:
            out.append(step_line(step, width) + mark)
            continue
        out.append(f"{step.index:>{width}}. {step.action}{mark}")
        pad = " " * (width + 4)
        out.extend(f"{pad}{'  ' * c.depth}{c.line}" for c in step.calls)
        if step.effects:
            out.append(f"{pad}=> " + ", ".join(e.text for e in step.effects))
    if trace.loop_start is not None:
        back = "the initial state" if trace.loop_start == 0 else f"step {trace.loop_start}"
        out.append(f"{'':>{width}}  -- back to the state after {back} --")
    if trace.kind != "deadlock":  # a deadlock's details already name each wait
        out.extend(f"blocked: {w}" for w in trace.waits)
    out.extend(f"  {d}" for d in trace.details if d)
    return "\n".join(out) + "\n"


__all__ = ["header_lines", "step_line", "trace_to_text", "violation_label"]
