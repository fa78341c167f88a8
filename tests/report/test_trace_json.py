"""The trace file format "dmabuf-model-trace/1": round trip, schema errors, replay.

docs/traces.md documents the schema (src/dmabuf_model/schemas/trace.schema.json); the traces are
the checker's counterexamples on the core examples (core-semantics §5.8, §10 #22; drivers.md
§1.7). Replay rebuilds the model from "scenario", replays "token" and compares every action.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from report_helpers import (
    deadlock_trace,
    platform_trace,
    rebuild_example,
    split_race_trace,
    warning_trace,
)

from dmabuf_model.errors import ReplayError, ScenarioError
from dmabuf_model.report import (
    SCHEMA_ID,
    TraceError,
    load_trace,
    replay_trace,
    trace_dumps,
    trace_from_json,
    trace_to_json,
)
from dmabuf_model.report.tracejson import trace_schema


@pytest.mark.parametrize(
    "make",
    [split_race_trace, deadlock_trace, warning_trace, platform_trace],
    ids=lambda f: f.__name__,
)
def test_json_round_trip_gives_the_same_trace(make: Any) -> None:
    """to_json -> JSON text -> from_json is the identity, and the object meets the schema."""
    trace = make()
    data = json.loads(trace_dumps(trace))
    jsonschema.Draft202012Validator(trace_schema()).validate(data)
    assert trace_from_json(data) == trace
    assert data == trace_to_json(trace)


def test_json_keys_are_the_documented_ones_in_a_fixed_order() -> None:
    """docs/traces.md: the top-level keys, step keys and the schema id are stable."""
    data = trace_to_json(split_race_trace())
    assert list(data) == [
        "schema",
        "scenario",
        "design",
        "model",
        "property",
        "cite",
        "kind",
        "token",
        "loop_start",
        "steps",
        "verdict",
        "details",
        "waits",
    ]
    assert data["schema"] == SCHEMA_ID == "dmabuf-model-trace/1"
    step = data["steps"][5]
    assert list(step) == [
        "index",
        "actor",
        "action",
        "action_data",
        "calls",
        "effects",
        "violation",
    ]
    assert step["violation"] is True and step["actor"] == "T2 vfio-revoke"
    assert step["calls"][0] == {
        "text": "wait_for_completion(unmaps) = done",
        "depth": 0,
        "fn": "wait_for_completion",
        "args": "unmaps",
        "ret": "done",
    }
    assert trace_dumps(split_race_trace()) == trace_dumps(split_race_trace())


def _data() -> dict[str, Any]:
    return copy.deepcopy(trace_to_json(split_race_trace()))


def _broken(change: Any) -> dict[str, Any]:
    data = _data()
    change(data)
    return data


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: d["steps"][2].pop("actor"),
            r"^t\.json: steps\[2\]: 'actor' is a required property$",
        ),
        (
            lambda d: d["steps"][0].__setitem__("violation", "yes"),
            r"^t\.json: steps\[0\]\.violation: 'yes' is not of type 'boolean'$",
        ),
        (
            lambda d: d["steps"][0]["effects"][0].__setitem__("kind", "teleport"),
            r"^t\.json: steps\[0\]\.effects\[0\]\.kind: 'teleport' is not one of ",
        ),
        (lambda d: d.__setitem__("extra", 1), r"^t\.json: \(top level\): Additional properties"),
        (
            lambda d: d.__setitem__("token", "0/a"),
            r"^t\.json: token: '0/a' does not match ",
        ),
        (
            lambda d: d.__setitem__("schema", "dmabuf-model-trace/2"),
            r"^t\.json: schema: 'dmabuf-model-trace/2' is not a trace format this version reads",
        ),
        (
            lambda d: d.__setitem__("token", "0/0/1"),
            r"^t\.json: token: '0/0/1' has 3 number\(s\), but the trace has 6 step\(s\)",
        ),
        (
            lambda d: d["steps"][3].__setitem__("index", 9),
            r"^t\.json: steps\[3\]\.index: index is 9, expected 4",
        ),
        (
            lambda d: d["steps"][0]["effects"][0].__setitem__("call", 7),
            r"^t\.json: steps\[0\]\.effects\[0\]\.call: call is 7, but the step has 4 call",
        ),
    ],
)
def test_schema_failures_name_the_file_and_the_json_path(change: Any, message: str) -> None:
    """A malformed trace is a ScenarioError-like TraceError: `file: json.path: what is wrong`."""
    with pytest.raises(TraceError, match=message) as info:
        trace_from_json(_broken(change), source="t.json")
    assert isinstance(info.value, ScenarioError) and info.value.file == "t.json"


def test_load_trace_reads_a_file_and_names_the_line_of_bad_json(tmp_path: Path) -> None:
    """A trace file is read whole; a JSON syntax error names file and line."""
    good = tmp_path / "trace.json"
    good.write_text(trace_dumps(split_race_trace()), encoding="utf-8")
    assert load_trace(good) == split_race_trace()
    bad = tmp_path / "bad.json"
    bad.write_text('{\n  "schema": "dmabuf-model-trace/1",\n  oops\n}\n', encoding="utf-8")
    with pytest.raises(TraceError, match=r"bad\.json:3: not valid JSON: ") as info:
        load_trace(bad)
    assert info.value.line == 3


def test_replay_trace_rebuilds_the_model_and_reproduces_the_trace() -> None:
    """The token replays on the model rebuilt from "scenario" (style-guide B1.4)."""
    data = json.loads(trace_dumps(split_race_trace()))
    again = replay_trace(data, rebuild_example)
    assert again == split_race_trace()
    assert replay_trace(deadlock_trace(), rebuild_example) == deadlock_trace()


def test_replay_trace_detects_a_tampered_step_in_one_line() -> None:
    """A step whose action text differs from what the model does now is refused, by step."""
    data = _data()
    data["steps"][4]["action"] = "T1 importer-map-split: do something else"
    with pytest.raises(ReplayError) as info:
        replay_trace(data, rebuild_example, source="t.json")
    assert str(info.value) == (
        "t.json: step 5: the trace says 'T1 importer-map-split: do something else' but the "
        "model now does 'T1 importer-map-split: program device'; the scenario or the model "
        "changed since the trace was written"
    )


def test_replay_trace_refuses_a_token_the_model_cannot_follow() -> None:
    """An index past the enabled actions is a ReplayError naming the token and the step."""
    data = _data()
    data["token"] = "0/0/1/1/0/0/7"
    with pytest.raises(ReplayError, match=r"^token 0/0/1/1/0/0/7 does not replay: step 6 of"):
        replay_trace(data, rebuild_example)


def test_replay_trace_refuses_a_property_the_rebuilt_model_lacks() -> None:
    """The property named in the trace must exist in the rebuilt model."""
    data = _data()
    data["property"] = "no_such_property"
    with pytest.raises(ReplayError, match=r"^the model has no property 'no_such_property'"):
        replay_trace(data, rebuild_example)
