"""GuardedCommandModel and the vectorised engine: same answers as the generic strategies.

The toy revoke model (benchmarks/revoke_toy.py) has 3^N + 5^N + 2^N + 2^N distinct states
(LIVE, REVOKING, REVOKED, REUSED); SPIN, TLC and Rumur agree on 1,973,832 at N = 9, and these
tests pin the formula at small N on every engine.
"""

from __future__ import annotations

import pytest
from check_toys import TwoPhase, load_revoke_toy

from dmabuf_model.check import (
    GuardedCommandModel,
    ModelDefinitionError,
    Property,
    all_of,
    any_of,
    check,
    not_,
    replay,
    simulate,
    where,
)

toy = load_revoke_toy()


@pytest.mark.parametrize("n", [2, 3])
def test_revoke_toy_has_the_state_count_the_formula_predicts(n: int) -> None:
    """3^N + 5^N + 2 * 2^N on the vectorised, generic, depth-first and parallel engines."""
    expected = 3**n + 5**n + 2 * 2**n
    runs = [
        check(toy.RevokeToy(n)),
        check(toy.RevokeToy(n), vectorised=False),
        check(toy.RevokeToy(n), strategy="dfs"),
        check(toy.RevokeToy(n), workers=2, vectorised=False),
    ]
    assert runs[0].stats.engine == "vectorised bfs (numpy)"
    for result in runs:
        assert result.stats.unique == expected
        assert result.complete
        result.assert_properties()
    assert len({(r.stats.states, r.stats.transitions) for r in runs}) == 1


def test_revoke_toy_symmetric_count_is_the_number_of_multisets() -> None:
    """One state per multiset of importer states: C(N+2,2) + C(N+4,4) + 2 (N+1) for N = 4."""
    result = check(toy.RevokeToy(4, symmetric=True), symmetry=True)
    assert result.stats.unique == 15 + 70 + 5 + 5
    assert result.stats.engine == "bfs"


def test_vectorised_parallel_search_counts_the_same_states(monkeypatch: pytest.MonkeyPatch) -> None:
    """Levels split between the coordinator and a forked worker sharing the bitmap."""
    from dmabuf_model.check import vector_bfs

    monkeypatch.setattr(vector_bfs, "PARALLEL_MIN", 16)
    monkeypatch.setattr(vector_bfs, "CHUNK", 64)
    result = check(toy.RevokeToy(5), workers=2)
    assert result.stats.unique == toy.expected_states(5)
    assert result.stats.workers == 2
    bug = check(toy.RevokeToy(5, guard=False), workers=2)
    assert len(bug.discoveries["no_dma_after_reuse"].path) == 6


def test_vectorised_search_without_a_bitmap_uses_sorted_levels(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A code space over BITMAP_LIMIT is stored as sorted levels: the same count."""
    from dmabuf_model.check import vector_bfs

    monkeypatch.setattr(vector_bfs, "BITMAP_LIMIT", 10)
    result = check(toy.RevokeToy(4))
    assert result.stats.unique == toy.expected_states(4)


def test_vectorised_search_honours_max_states_and_max_depth() -> None:
    """Bounds mark the result incomplete exactly as in the generic engine."""
    capped = check(toy.RevokeToy(3), max_states=50)
    assert (capped.stats.unique, capped.complete) == (50, False)
    assert capped.limits == ("max_states=50 reached",)
    shallow = check(toy.RevokeToy(3), max_depth=4)
    generic = check(toy.RevokeToy(3), max_depth=4, vectorised=False)
    assert shallow.stats.unique == generic.stats.unique
    assert shallow.limits == ("max_depth=4 reached",)


def test_guarded_command_model_works_with_simulation_and_replay() -> None:
    """Generic strategies use the same object: simulation finds the bug, names replay."""
    model = toy.RevokeToy(2, guard=False)
    sim = simulate(model, seed=5, runs=300, max_steps=20)
    path = sim.discoveries["no_dma_after_reuse"].path
    assert replay(model, [str(a) for a in path.actions]).states == path.states


def test_vectorised_search_reports_deadlocks_from_the_model() -> None:
    """An end state the model's deadlock() names is reported with a shortest trace."""

    class Stuck(GuardedCommandModel):
        def __init__(self) -> None:
            super().__init__()
            x = self.variable("x", 4)
            self.command("inc", lambda v: v[x] < 2, lambda v: {x: v[x] + 1})

        def deadlock(self, state: tuple[int, ...]) -> str | None:
            return "x stuck at 2" if state[0] == 2 else None

    result = check(Stuck())
    d = result.discoveries["deadlock"]
    assert (d.path.actions, d.description) == (["inc", "inc"], "x stuck at 2")


def test_a_guard_written_with_and_is_refused_with_the_fix() -> None:
    """'and' cannot be applied to a level: ModelDefinitionError names the command and the
    helpers to use instead; the generic engine still runs the model."""

    class Bad(GuardedCommandModel):
        def __init__(self) -> None:
            super().__init__()
            a = self.variable("a", 2)
            b = self.variable("b", 2)
            self.command("both", lambda v: v[a] == 0 and v[b] == 0, lambda v: {a: 1})
            self.command("flip", lambda v: v[b] == 0, lambda v: {b: 1})

    with pytest.raises(ModelDefinitionError, match=r"^the guard of command 'both' cannot be"):
        check(Bad())
    assert check(Bad(), vectorised=False).stats.unique == 4


def test_an_update_outside_the_variable_range_is_refused() -> None:
    """Values must stay within 0..size-1: both engines name the command and the variable."""

    class Overflow(GuardedCommandModel):
        def __init__(self) -> None:
            super().__init__()
            x = self.variable("x", 3)
            self.command("inc", lambda v: v[x] >= 0, lambda v: {x: v[x] + 1})

    for vectorised in (True, False):
        with pytest.raises(ModelDefinitionError, match=r"^command 'inc' sets x = 3, outside"):
            check(Overflow(), vectorised=vectorised)


def test_vectorised_true_on_a_plain_model_is_a_usage_error() -> None:
    """Only a GuardedCommandModel can run on the vectorised engine."""
    with pytest.raises(ValueError, match=r"^vectorised=True is not possible here: TwoPhase"):
        check(TwoPhase(2), vectorised=True)


def test_declaration_errors_name_the_variable_or_command() -> None:
    """Duplicate names and bad sizes are caught when declared."""
    model = GuardedCommandModel.__new__(GuardedCommandModel)
    GuardedCommandModel.__init__(model)
    model.variable("x", 2)
    with pytest.raises(ModelDefinitionError, match=r"declares 'x' twice$"):
        model.variable("x", 2)
    with pytest.raises(ModelDefinitionError, match=r"^variable 'y' has init=5, outside"):
        model.variable("y", 2, init=5)
    model.command("c", lambda v: True, lambda v: {})
    with pytest.raises(ModelDefinitionError, match=r"declares two commands named 'c'"):
        model.command("c", lambda v: True, lambda v: {})


def test_expression_helpers_work_on_ints_and_arrays() -> None:
    """all_of/any_of/not_/where give the same answer elementwise as on scalars."""
    import numpy as np

    xs = np.array([0, 1, 2])
    assert all_of([True, 1 == 1]) is True
    assert list(all_of([xs > 0, xs < 2])) == [False, True, False]
    assert any_of([]) is False
    assert list(any_of([xs == 0, xs == 2])) == [True, False, True]
    assert not_(True) is False
    assert list(not_(xs == 1)) == [True, False, True]
    assert where(True, 3, 4) == 3
    assert list(where(xs == 1, 7, xs)) == [0, 7, 2]


def test_guarded_command_state_prints_and_exports_by_variable_name() -> None:
    """format_state and state_to_json group arrays under their declared names."""
    model = toy.RevokeToy(2)
    state = model.init_states()[0]
    assert model.format_state(state) == "buf=0 map=[0 0] dma=[0 0]"
    assert model.state_to_json(state) == {"buf": 0, "map": [0, 0], "dma": [0, 0]}
    assert model.variables == ("buf", "map[0]", "map[1]", "dma[0]", "dma[1]")
    assert [p.name for p in model.properties()] == ["no_dma_after_reuse"]
    assert isinstance(model.properties()[0], Property)


@pytest.mark.parametrize("sizes", [(4, 3, 3, 2, 2), (1000,) * 5, (3000,) * 5])
def test_level_decoding_matches_one_state_decoding(sizes: tuple[int, ...]) -> None:
    """Columns (float path below 2^50 codes, integer division above) decode exactly."""
    import numpy as np

    from dmabuf_model.check.vector_bfs import Columns, Encoding

    enc = Encoding(sizes)
    rng = np.random.default_rng(7)
    codes = rng.integers(0, enc.total, size=2000, dtype=np.int64)
    codes[:5] = [0, enc.total - 1, enc.strides[-1], enc.strides[-1] - 1, enc.strides[1]]
    cols = Columns(enc, codes)
    rows = [cols[k] for k in range(len(sizes))]
    for i, code in enumerate(codes.tolist()):
        assert tuple(int(r[i]) for r in rows) == enc.decode(code)
    assert enc.use_float is (enc.total <= 2**50)
