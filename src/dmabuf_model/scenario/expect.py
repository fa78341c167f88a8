"""expect: a check's verdict in one line, and whether it is the one the scenario's [expect] states.
What the checker found about a system of drivers/ models, compared with what the file promised.

Verdicts (docs/scenarios.md "Expectations"): ``holds`` (every always and eventually property
holds, every sometimes property has an example, no deadlock), ``violation of NAME`` (the first
failure the checker reports; NAME is "deadlock" for a thread blocked forever), ``never reached
NAME`` (a sometimes property without an example), and, for an [expect] only, ``refused with
ERRNO at STEP``: the check holds and explain shows an importer refused with that errno at that
kernel call (core-semantics §6.4). Models no kernel file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from dmabuf_model.check.result import CheckResult
from dmabuf_model.scenario.build import BuiltScenario
from dmabuf_model.scenario.explain import AttachmentFlow, explain_flows, format_explanation
from dmabuf_model.scenario.schema import ExpectSpec

_REFUSED = re.compile(r"^refused with (?P<errno>E[A-Z0-9]+) at (?P<step>\w+)$")


def verdict_of(result: CheckResult[Any, Any]) -> str:
    """verdict_of - ``holds``, ``violation of NAME`` or ``never reached NAME`` for a result."""
    failures = result.failures
    if failures:
        return f"violation of {failures[0].property}"
    if result.never_reached:
        return f"never reached {result.never_reached[0]}"
    if result.unchecked:
        return f"unchecked {result.unchecked[0]}"
    return "holds"


@dataclass(frozen=True)
class Outcome:
    """Whether a run met its expectation: ``met``, and one line per reason it did not."""

    expected: ExpectSpec
    verdict: str
    met: bool
    reasons: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def text(self) -> str:
        """``Expected: VERDICT - met.`` or ``... - NOT met: reason; reason``."""
        head = f"Expected: {self.expected.verdict}"
        tail = " - met." if self.met else " - NOT met: " + "; ".join(self.reasons) + "."
        notes = "".join(f"\n  ({n})" for n in self.notes)
        return head + tail + notes

    def to_json(self) -> dict[str, Any]:
        """The outcome as JSON."""
        return {
            "verdict": self.expected.verdict,
            "met": self.met,
            "reasons": list(self.reasons),
            "notes": list(self.notes),
        }


def _trace_text(built: BuiltScenario, result: CheckResult[Any, Any], name: str) -> str:
    from dmabuf_model.report import discovery_trace, trace_to_text

    d = result.discoveries.get(name)
    if d is None:
        return ""
    trace = discovery_trace(built.model, d, scenario={"name": built.scenario.name})
    return trace_to_text(trace)


def evaluate(
    built: BuiltScenario,
    result: CheckResult[Any, Any],
    expected: ExpectSpec,
    *,
    flows: list[AttachmentFlow] | None = None,
) -> Outcome:
    """evaluate - compare ``result`` (a check or simulation of ``built``) with ``expected``.

    ``flows`` are explain_flows(built), computed when a refused verdict needs them. Counts are
    compared only for a complete breadth-first check without symmetry reduction.
    """
    verdict = verdict_of(result)
    reasons: list[str] = []
    notes: list[str] = []
    want = expected.verdict
    evidence = ""
    refused = _REFUSED.match(want)
    if want == "holds":
        if verdict != "holds":
            reasons.append(f"the verdict is {verdict}")
        evidence = result.report()
    elif refused:
        if verdict != "holds":
            reasons.append(f"the verdict is {verdict}")
        flows = flows if flows is not None else explain_flows(built)
        match = [
            f
            for f in flows
            if f.errno == refused.group("errno") and f.step == refused.group("step")
        ]
        if not match:
            seen = ", ".join(
                f"{f.importer}: {f.flow}" + (f" -{f.errno} at {f.step}" if f.errno else "")
                for f in flows
            )
            reasons.append(f"no importer is refused that way ({seen or 'no importers'})")
        evidence = format_explanation(built, flows)
    else:
        kind, _, name = want.partition(" of ") if want.startswith("violation") else ("", "", "")
        if kind:
            if name not in {d.property for d in result.failures}:
                reasons.append(f"the verdict is {verdict}")
            else:
                evidence = _trace_text(built, result, name)
        else:
            name = want.removeprefix("never reached ")
            if name not in result.never_reached:
                reasons.append(f"the verdict is {verdict}")
            evidence = result.report()
    if expected.mentions and not reasons and expected.mentions not in evidence:
        reasons.append(f"{expected.mentions!r} does not appear in the evidence")
    st = result.stats
    counts = [("unique_states", expected.unique_states, st.unique)]
    counts.append(("max_depth", expected.max_depth, st.max_depth))
    pinned = [(n, w, g) for n, w, g in counts if w is not None]
    if pinned:
        exact = result.complete and st.engine.endswith("bfs") and not st.symmetry
        if not exact:
            notes.append("pinned counts not compared: only a complete breadth-first check has them")
        else:
            for n, w, g in pinned:
                if w != g:
                    reasons.append(f"{n} is {g}, the scenario pins {w}")
    if result.interrupted:
        reasons.append("the run was interrupted")
    return Outcome(expected, verdict, not reasons, tuple(reasons), tuple(notes))


__all__ = ["Outcome", "evaluate", "verdict_of"]
