"""tracejson: the trace file format "dmabuf-model-trace/1", written by check and read by replay.

A trace file must outlive the run that wrote it: it carries the scenario that rebuilds the model,
the checker's replay token and every step as the reader saw it, and is validated against
src/dmabuf_model/schemas/trace.schema.json (documented in docs/traces.md) before anything trusts
it. Replaying rebuilds the model, replays the token (check/path.py) and insists that every step is
still the same action, so a trace never silently shows something the model no longer does.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from functools import cache
from importlib import resources
from pathlib import Path as FsPath
from typing import Any, cast

import jsonschema
from jsonschema.exceptions import best_match

from dmabuf_model.check.model import Model
from dmabuf_model.check.path import replay
from dmabuf_model.errors import ReplayError, ScenarioError
from dmabuf_model.report.trace import (
    Call,
    Effect,
    EffectKind,
    Trace,
    TraceKind,
    TraceStep,
    Wait,
    build_trace,
)

SCHEMA_ID = "dmabuf-model-trace/1"
"""The value of the "schema" key; a new incompatible format gets a new number."""

Rebuild = Callable[[dict[str, Any]], Model[Any, Any]]
"""What replay_trace calls to rebuild the model from a trace's "scenario" object."""


class TraceError(ScenarioError):
    """A trace file is malformed: the message names the JSON path and what is wrong there.

    Raised by trace_from_json, load_trace and replay_trace before anything is replayed. ``file``
    is the trace file when known, ``field`` the JSON path (``steps[3].actor``), ``line`` the line
    of a JSON syntax error. Usual causes: the file was edited by hand, cut short, or written by a
    newer version of the tool (another "schema" value).
    """


@cache
def trace_schema() -> dict[str, Any]:
    """trace_schema - the JSON Schema of trace files (schemas/trace.schema.json), parsed once."""
    text = resources.files("dmabuf_model").joinpath("schemas/trace.schema.json").read_text("utf-8")
    schema = json.loads(text)
    assert isinstance(schema, dict)
    return schema


def trace_to_json(trace: Trace) -> dict[str, Any]:
    """trace_to_json - ``trace`` as a JSON object of the documented schema (docs/traces.md).

    Keys appear in a fixed order, so a file written twice from one trace is the same file.
    """
    return {
        "schema": SCHEMA_ID,
        "scenario": trace.scenario,
        "design": trace.design,
        "model": trace.model,
        "property": trace.property,
        "cite": trace.cite,
        "kind": trace.kind,
        "token": trace.token,
        "loop_start": trace.loop_start,
        "steps": [
            {
                "index": s.index,
                "actor": s.actor,
                "action": s.action,
                "action_data": s.action_data,
                "calls": [
                    {"text": c.text, "depth": c.depth, "fn": c.fn, "args": c.args, "ret": c.ret}
                    for c in s.calls
                ],
                "effects": [
                    {
                        "kind": e.kind,
                        "target": e.target,
                        "text": e.text,
                        "source": e.source,
                        "violation": e.violation,
                        "call": e.call,
                    }
                    for e in s.effects
                ],
                "violation": s.violation,
            }
            for s in trace.steps
        ],
        "verdict": trace.verdict,
        "details": list(trace.details),
        "waits": [{"actor": w.actor, "on": w.on, "holder": w.holder} for w in trace.waits],
    }


def trace_dumps(trace: Trace) -> str:
    """trace_dumps - the trace file text: the JSON object, indented, UTF-8, ending in a newline."""
    return json.dumps(trace_to_json(trace), indent=2, ensure_ascii=False) + "\n"


def json_path(parts: Any) -> str:
    """json_path - ``steps[3].actor`` from the keys and indices leading to a value."""
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _fail(message: str, source: str | None, where: str = "") -> TraceError:
    text = f"{where}: {message}" if where else message
    return TraceError(text, file=source, field=where or None)


def validate_trace_json(data: Any, *, source: str | None = None) -> None:
    """validate_trace_json - check ``data`` against the trace schema and its own consistency.

    Raises TraceError naming the JSON path of the first problem: a wrong "schema" version, a
    value of the wrong type, a missing or unknown key, step indices that do not count 1, 2, ...,
    a token whose length does not match the steps, or an effect tied to a call that is not there.
    """
    if isinstance(data, dict) and "schema" in data and data["schema"] != SCHEMA_ID:
        raise _fail(
            f"{data['schema']!r} is not a trace format this version reads; expected "
            f"{SCHEMA_ID!r}. Write the trace again with this version of dmabuf-model.",
            source,
            "schema",
        )
    validator = jsonschema.Draft202012Validator(trace_schema())
    error = best_match(validator.iter_errors(data))
    if error is not None:
        raise _fail(error.message, source, json_path(error.absolute_path) or "(top level)")
    steps = data["steps"]
    for i, step in enumerate(steps):
        if step["index"] != i + 1:
            raise _fail(
                f"index is {step['index']}, expected {i + 1}: steps count 1, 2, 3, ...",
                source,
                f"steps[{i}].index",
            )
        for j, effect in enumerate(step["effects"]):
            if effect["call"] >= len(step["calls"]):
                raise _fail(
                    f"call is {effect['call']}, but the step has {len(step['calls'])} call(s); "
                    "use -1 for an effect no call made",
                    source,
                    f"steps[{i}].effects[{j}].call",
                )
    parts = len(data["token"].split("/"))
    if parts != len(steps) + 1:
        raise _fail(
            f"{data['token']!r} has {parts} number(s), but the trace has {len(steps)} step(s); "
            "a token is the initial-state index followed by one index per step",
            source,
            "token",
        )
    loop = data["loop_start"]
    if loop is not None and loop > len(steps):
        raise _fail(f"{loop} is past the last step ({len(steps)})", source, "loop_start")


def trace_from_json(data: Any, *, source: str | None = None) -> Trace:
    """trace_from_json - read a trace back from its JSON object (the inverse of trace_to_json).

    ``source`` names the file in error messages. Raises TraceError (validate_trace_json).
    """
    validate_trace_json(data, source=source)
    steps = tuple(
        TraceStep(
            index=s["index"],
            actor=s["actor"],
            action=s["action"],
            calls=tuple(
                Call(c["text"], c["depth"], c["fn"], c["args"], c["ret"]) for c in s["calls"]
            ),
            effects=tuple(
                Effect(
                    cast(EffectKind, e["kind"]),
                    e["target"],
                    e["text"],
                    e["source"],
                    e["violation"],
                    e["call"],
                )
                for e in s["effects"]
            ),
            violation=s["violation"],
            action_data=s["action_data"],
        )
        for s in data["steps"]
    )
    return Trace(
        model=data["model"],
        token=data["token"],
        steps=steps,
        verdict=data["verdict"],
        scenario=dict(data["scenario"]),
        design=data["design"],
        property=data["property"],
        cite=data["cite"],
        kind=cast("TraceKind | None", data["kind"]),
        loop_start=data["loop_start"],
        details=tuple(data["details"]),
        waits=tuple(Wait(w["actor"], w["on"], w["holder"]) for w in data["waits"]),
    )


def load_trace(path: str | FsPath) -> Trace:
    """load_trace - read and validate a trace file.

    Raises TraceError for a file that is not JSON (with its line) or not a valid trace, and
    OSError when it cannot be read.
    """
    name = str(path)
    text = FsPath(path).read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TraceError(f"not valid JSON: {exc.msg}", file=name, line=exc.lineno) from None
    return trace_from_json(data, source=name)


def replay_trace(
    data: Trace | Mapping[str, Any], rebuild: Rebuild, *, source: str | None = None
) -> Trace:
    """replay_trace - rebuild the model, replay the token and check every step is the same.

    ``data`` is a Trace or its JSON object (validated first); ``rebuild(scenario)`` returns the
    model for the trace's "scenario" object. Returns the trace built afresh from the replayed
    path (same property, kind, scenario and design), so renderers show what the model does
    today.

    Raises TraceError for a malformed trace, and ReplayError when the token does not replay, the
    model lacks the trace's property, or a step's action text differs (one line naming the step,
    both texts and the likely cause).
    """
    trace = data if isinstance(data, Trace) else trace_from_json(dict(data), source=source)
    where = f"{source}: " if source else ""
    model = rebuild(dict(trace.scenario))
    try:
        path = replay(model, trace.token)
    except ReplayError as exc:
        raise ReplayError(f"{where}token {trace.token} does not replay: {exc}") from None
    try:
        fresh = build_trace(
            model,
            path,
            property=trace.property,
            kind=trace.kind,
            scenario=trace.scenario,
            design=trace.design,
        )
    except KeyError as exc:
        raise ReplayError(f"{where}{exc.args[0]}") from None
    for old, new in zip(trace.steps, fresh.steps, strict=True):
        if old.action != new.action:
            raise ReplayError(
                f"{where}step {old.index}: the trace says {old.action!r} but the model now does "
                f"{new.action!r}; the scenario or the model changed since the trace was written"
            )
    return fresh


__all__ = [
    "SCHEMA_ID",
    "Rebuild",
    "TraceError",
    "json_path",
    "load_trace",
    "replay_trace",
    "trace_dumps",
    "trace_from_json",
    "trace_schema",
    "trace_to_json",
    "validate_trace_json",
]
