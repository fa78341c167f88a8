"""Traces replay to the states they show, export as documented JSON, and fail loudly when not.

Style-guide B1.4 and B8: a counterexample can always be run again, as actions or as a token, and
a trace that does not replay says which step failed and why (usually nondeterminism).
"""

from __future__ import annotations

import json

import pytest
from check_toys import Abba, LostUpdate, Token, TwoPhase, load_revoke_toy

from dmabuf_model.check import Model, Property, ReplayError, check, replay


def test_a_replayed_trace_reproduces_its_states() -> None:
    """Running a discovery's actions again reaches the same states, step by step."""
    result = check(TwoPhase(3), stop_at_first=False)
    for d in result.discoveries.values():
        again = replay(result.model, d.path.actions)
        assert again.states == d.path.states
        assert again.token == d.path.token


def test_a_token_replays_the_same_path() -> None:
    """The printed token "init/a/b/..." rebuilds the path exactly."""
    result = check(LostUpdate())
    path = result.discoveries["no_lost_update"].path
    assert path.token == "0/0/1/0/0"
    assert replay(LostUpdate(), path.token).states == path.states


def test_replaying_an_action_that_is_not_enabled_names_the_step_and_the_cause() -> None:
    """ReplayError says which step failed, what was enabled, and suggests nondeterminism."""
    with pytest.raises(ReplayError, match=r"^step 3: action 't0' is not enabled") as info:
        replay(Abba(), ["t0", "t1", "t0"])
    text = str(info.value)
    assert "Enabled there: " in text
    assert "PYTHONHASHSEED" in text


def test_replaying_a_token_with_an_index_out_of_range_explains_nondeterminism() -> None:
    """Style-guide B8's message: 'step 4 of token ... asks for action 9, but only ...'."""
    with pytest.raises(
        ReplayError, match=r"^step 2 of token 0/0/9 asks for action 9, but only actions 0-1"
    ) as info:
        replay(LostUpdate(), "0/0/9")
    assert "actions() or successors() iterates a set or a dict" in str(info.value)
    with pytest.raises(ReplayError, match=r"^token 'x/1' is not a replay token"):
        replay(LostUpdate(), "x/1")


def test_trace_json_has_the_documented_schema() -> None:
    """{"model", "property", "kind", "token", "steps": [{"index", "action", "state"}],
    "loop_start"}; step 0 is the initial state with a null action (docs/checker.md)."""
    toy = load_revoke_toy()
    model = toy.RevokeToy(2, guard=False)
    result = check(model)
    doc = result.discoveries["no_dma_after_reuse"].to_json(model)
    assert set(doc) >= {"model", "property", "kind", "token", "steps", "loop_start"}
    assert (doc["model"], doc["property"], doc["kind"]) == (
        "RevokeToy",
        "no_dma_after_reuse",
        "counterexample",
    )
    assert doc["steps"][0] == {
        "index": 0,
        "action": None,
        "state": {"buf": 0, "map": [0, 0], "dma": [0, 0]},
    }
    assert [s["index"] for s in doc["steps"]] == list(range(7))
    assert doc["steps"][-1]["action"] == "reuse"
    assert doc["loop_start"] is None
    whole = json.loads(json.dumps(result.to_json()))
    assert whole["stats"]["unique"] == result.stats.unique
    assert whole["discoveries"][0]["property"] == "no_dma_after_reuse"


def test_a_symmetry_reduced_trace_is_a_real_path_of_the_concrete_model() -> None:
    """Traces found among representatives are re-mapped: replaying them gives the same
    concrete states, and the last one violates the property."""
    toy = load_revoke_toy()
    model = toy.RevokeToy(3, guard=False, symmetric=True)
    result = check(model, symmetry=True)
    path = result.discoveries["no_dma_after_reuse"].path
    assert replay(model, path.actions).states == path.states
    assert not model.properties()[0].condition(path.last_state)
    result.assert_discovery("no_dma_after_reuse", path.actions)


def test_a_symmetric_lasso_is_unrolled_until_it_closes_on_concrete_states() -> None:
    """Token's representatives loop on one state, its concrete states only after two passes."""
    result = check(Token(), symmetry=True)
    path = result.discoveries["done"].path
    assert path.actions == ["pass", "pass"]
    assert path.loop_start == 0
    assert path.last_state == path.states[0]
    plain = check(Token())
    assert plain.discoveries["done"].path.actions == ["pass", "pass"]


def test_assert_discovery_rejects_actions_that_are_not_a_discovery() -> None:
    """A valid path that does not violate the property is refused, with its steps shown."""
    result = check(LostUpdate())
    with pytest.raises(AssertionError, match=r"^the given actions are not a discovery for"):
        result.assert_discovery("no_lost_update", ["t0", "t0", "t1", "t1"])
    with pytest.raises(ValueError, match=r"^no property named 'nope'; the model's properties"):
        result.assert_no_discovery("nope")


def test_a_model_whose_canonical_does_not_commute_is_refused_when_its_trace_is_rebuilt() -> None:
    """A canonical() that merges states the transitions tell apart cannot give a real path."""
    from dmabuf_model.check import ModelDefinitionError

    class Broken(Model[int, str]):
        def init_states(self) -> list[int]:
            return [5]

        def actions(self, state: int) -> list[str]:
            return ["inc"]

        def next_state(self, state: int, action: str) -> int | None:
            return state + 1 if state < 7 else None

        def canonical(self, state: int) -> int:
            return 0 if state in (0, 5) else state

        def properties(self) -> list[Property[int]]:
            return [Property.always("small", lambda s: s != 2)]

    with pytest.raises(ModelDefinitionError, match=r"canonical\(\) does not commute"):
        check(Broken(), symmetry=True)
