"""Model definition errors are caught before exploring, with the rule and the fix in the message.

Style-guide B8: one exception hierarchy (dmabuf_model.errors), messages that say what is wrong,
the likely cause and the fix; pinned with anchored patterns.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from check_toys import BinaryClock, TwoPhase

from dmabuf_model.check import Model, ModelDefinitionError, Property, check
from dmabuf_model.errors import (
    CheckerInternalError,
    DmaBufModelError,
    ReplayError,
    ScenarioError,
)


class _Props(BinaryClock):
    def __init__(self, props: Sequence[Property[int]]) -> None:
        self.props = props

    def properties(self) -> Sequence[Property[int]]:
        return self.props


def test_two_properties_with_one_name_are_refused() -> None:
    """Property names identify discoveries, so they must be unique."""
    props = [Property.always("p", lambda s: True), Property.sometimes("p", lambda s: True)]
    with pytest.raises(ModelDefinitionError, match=r'^_Props declares two properties named "p"'):
        check(_Props(props))


def test_a_property_named_deadlock_is_refused() -> None:
    """'deadlock' is the name the checker reports deadlocks under."""
    with pytest.raises(ModelDefinitionError, match=r'named "deadlock", a name the checker'):
        check(_Props([Property.always("deadlock", lambda s: True)]))


def test_a_model_without_initial_states_is_refused() -> None:
    """At least one initial state is required."""

    class Empty(BinaryClock):
        def init_states(self) -> Sequence[int]:
            return []

    with pytest.raises(ModelDefinitionError, match=r"^Empty\.init_states\(\) returned no state"):
        check(Empty())


def test_an_unhashable_state_is_refused_with_the_fix() -> None:
    """A list inside the state: the message says states must be values."""

    class Listy(Model[list[int], int]):  # type: ignore[type-var]
        def init_states(self) -> Sequence[list[int]]:
            return [[0]]

        def actions(self, state: list[int]) -> list[int]:
            return []

        def next_state(self, state: list[int], action: int) -> list[int] | None:
            return None

    with pytest.raises(ModelDefinitionError, match=r"^Listy has an unhashable initial state"):
        check(Listy())


def test_symmetry_on_a_model_without_canonical_is_refused() -> None:
    """symmetry=True needs a canonical() override."""
    with pytest.raises(ModelDefinitionError, match=r"^symmetry=True, but TwoPhase does not"):
        check(TwoPhase(2), symmetry=True)


def test_scenario_error_starts_with_file_and_line() -> None:
    """ScenarioError's str() is 'file:line: message' so editors can jump to it."""
    err = ScenarioError(
        "importers[1].driver = 'iommufdd' is not a known driver.",
        file="scenarios/x.toml",
        line=7,
        field="importers[1].driver",
    )
    assert str(err) == "scenarios/x.toml:7: importers[1].driver = 'iommufdd' is not a known driver."
    assert str(ScenarioError("bad", file="x.toml")) == "x.toml: bad"
    assert (err.file, err.line, err.field) == ("scenarios/x.toml", 7, "importers[1].driver")


def test_every_error_derives_from_the_one_root() -> None:
    """DmaBufModelError catches every error the package raises on purpose."""
    for cls in (ModelDefinitionError, ScenarioError, ReplayError, CheckerInternalError):
        assert issubclass(cls, DmaBufModelError)
