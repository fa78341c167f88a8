"""Every strategy over the same model agrees: counts, verdicts, bounds, interrupts, seeds.

Breadth-first, depth-first, parallel, symmetry-reduced and simulated runs are different explorers
of one semantics (style-guide B1.3); these tests pin that they agree where they must.
"""

from __future__ import annotations

import pytest
from check_toys import Abba, BinaryClock, Interrupting, LostUpdate, Retry, TwoPhase, load_revoke_toy

from dmabuf_model.check import DEADLOCK, Model, check, simulate

MODELS: list[tuple[str, Model]] = [  # type: ignore[type-arg]
    ("two_phase_3", TwoPhase(3)),
    ("lost_update_3", LostUpdate(3)),
    ("abba", Abba()),
    ("binary_clock", BinaryClock()),
    ("revoke_toy_3", load_revoke_toy().RevokeToy(3)),
]


@pytest.mark.parametrize(("name", "model"), MODELS, ids=[n for n, _ in MODELS])
def test_depth_first_finds_the_same_distinct_states_as_breadth_first(
    name: str, model: Model
) -> None:  # type: ignore[type-arg]
    """DFS and BFS explore the same reachable set (complete runs, stop_at_first=False)."""
    bfs = check(model, stop_at_first=False, vectorised=False)
    dfs = check(model, strategy="dfs", stop_at_first=False)
    assert bfs.complete and dfs.complete
    assert dfs.stats.unique == bfs.stats.unique
    assert dfs.stats.transitions == bfs.stats.transitions
    assert set(dfs.discoveries) == set(bfs.discoveries)


@pytest.mark.parametrize(("name", "model"), MODELS, ids=[n for n, _ in MODELS])
def test_parallel_and_sequential_search_agree_on_every_count(name: str, model: Model) -> None:  # type: ignore[type-arg]
    """Same unique states, states generated, depth and discovery tokens (same discovery order)."""
    seq = check(model, stop_at_first=False, vectorised=False)
    par = check(model, workers=2, stop_at_first=False, vectorised=False)
    assert (par.stats.unique, par.stats.states, par.stats.max_depth) == (
        seq.stats.unique,
        seq.stats.states,
        seq.stats.max_depth,
    )
    assert {k: d.path.token for k, d in par.discoveries.items()} == {
        k: d.path.token for k, d in seq.discoveries.items()
    }


def test_parallel_search_rebalances_large_levels_and_still_agrees(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With a low threshold, slices move between three workers; the result is unchanged."""
    from dmabuf_model.check import parallel

    moves: list[int] = []
    ask = parallel._ask

    def counting_ask(conn, msg):  # type: ignore[no-untyped-def]
        if msg[0] == "take":
            moves.append(msg[1])
        return ask(conn, msg)

    monkeypatch.setattr(parallel, "_REBALANCE_MIN", 8)
    monkeypatch.setattr(parallel, "_ask", counting_ask)
    seq = check(TwoPhase(4), stop_at_first=False)
    par = check(TwoPhase(4), workers=3, stop_at_first=False)
    assert moves
    assert par.stats.unique == seq.stats.unique
    assert par.discoveries["commit_agreement"].path.token == (
        seq.discoveries["commit_agreement"].path.token
    )


def test_parallel_search_stops_at_the_first_failure_with_the_shortest_trace() -> None:
    """stop_at_first in parallel: the lost update of three threads, six steps like sequential."""
    seq = check(LostUpdate(3))
    par = check(LostUpdate(3), workers=2)
    assert par.discoveries["no_lost_update"].path.token == (
        seq.discoveries["no_lost_update"].path.token
    )
    assert len(par.discoveries["no_lost_update"].path) == 6


@pytest.mark.parametrize("strategy", ["bfs", "dfs"])
def test_symmetry_reduction_and_the_plain_search_agree_on_every_verdict(strategy: str) -> None:
    """Same discoveries (names and kinds) with and without symmetry, fewer states with it."""
    toy = load_revoke_toy()
    for guard in (True, False):
        plain = check(toy.RevokeToy(4, guard=guard), strategy=strategy, stop_at_first=False)
        sym = check(
            toy.RevokeToy(4, guard=guard, symmetric=True),
            strategy=strategy,
            symmetry=True,
            stop_at_first=False,
        )
        assert {k: d.kind for k, d in sym.discoveries.items()} == {
            k: d.kind for k, d in plain.discoveries.items()
        }
        assert sym.stats.unique < plain.stats.unique
    two = check(TwoPhase(4), stop_at_first=False)
    two_sym = check(TwoPhase(4, symmetric=True), symmetry=True, stop_at_first=False)
    assert (
        set(two.discoveries) == set(two_sym.discoveries) == {"abort_agreement", "commit_agreement"}
    )


def test_max_states_bound_marks_the_result_incomplete() -> None:
    """Stopping at 100 of TwoPhase(3)'s 288 states: incomplete, the limit named, sometimes
    properties not found are reported as not within the states explored."""
    for strategy in ("bfs", "dfs"):
        result = check(TwoPhase(3), strategy=strategy, max_states=100)  # type: ignore[arg-type]
        assert result.stats.unique == 100
        assert not result.complete
        assert result.limits == ("max_states=100 reached",)
    result = check(TwoPhase(3), max_states=100)
    assert "Incomplete: max_states=100 reached." in result.report()


def test_max_depth_bound_counts_states_and_marks_the_result_incomplete() -> None:
    """max_depth=3 keeps paths of at most three states (two actions)."""
    result = check(TwoPhase(3), max_depth=3)
    assert result.stats.max_depth == 3
    assert not result.complete
    assert result.limits == ("max_depth=3 reached",)
    full = check(TwoPhase(3), max_depth=11)
    assert full.complete and full.stats.unique == 288


def test_going_on_after_a_failure_reports_every_property_first_discovery() -> None:
    """stop_at_first=False: the lost update and the all_done example are both reported."""
    result = check(LostUpdate(), stop_at_first=False)
    assert set(result.discoveries) == {"no_lost_update", "all_done"}
    assert result.complete
    stopped = check(LostUpdate())
    assert "no_lost_update" in stopped.discoveries
    assert not stopped.complete


@pytest.mark.parametrize("strategy", ["bfs", "dfs"])
def test_ctrl_c_in_next_state_returns_the_partial_result_marked_interrupted(strategy: str) -> None:
    """A KeyboardInterrupt from the model ends the run cleanly with the statistics so far."""
    result = check(Interrupting(after=12), strategy=strategy)  # type: ignore[arg-type]
    assert result.interrupted
    assert not result.complete
    assert 0 < result.stats.unique < check(LostUpdate(3), stop_at_first=False).stats.unique
    assert result.report().startswith("Interrupted. states=")


def test_ctrl_c_during_simulation_returns_the_runs_so_far() -> None:
    """The simulator catches KeyboardInterrupt the same way."""
    result = simulate(Interrupting(after=12), seed=3, runs=50, max_steps=20)
    assert result.interrupted
    assert result.stats.unique > 0


def test_ctrl_c_in_the_liveness_search_returns_the_safety_result() -> None:
    """Interrupting the eventually search keeps what the safety search found."""

    class Slow(Retry):
        calls = 0

        def next_state(self, s: int, a: str) -> int | None:
            Slow.calls += 1
            if Slow.calls == 12:
                raise KeyboardInterrupt
            return super().next_state(s, a)

    result = check(Slow())
    assert result.interrupted
    assert result.unchecked == ("granted",)


def test_simulation_with_the_same_seed_gives_the_same_trace() -> None:
    """Seeded runs are reproducible: same seed, same discovery token and counts."""
    a = simulate(LostUpdate(3), seed=11, runs=200, max_steps=10)
    b = simulate(LostUpdate(3), seed=11, runs=200, max_steps=10)
    assert "no_lost_update" in a.discoveries
    assert a.discoveries["no_lost_update"].path.token == b.discoveries["no_lost_update"].path.token
    assert (a.stats.unique, a.stats.states, a.stats.runs) == (
        b.stats.unique,
        b.stats.states,
        b.stats.runs,
    )
    assert not a.complete


def test_simulation_finds_deadlocks_and_liveness_loops() -> None:
    """An end state the model calls a deadlock, and a run revisiting its own state."""
    dead = simulate(Abba(), seed=0, runs=100, max_steps=10)
    assert dead.discoveries[DEADLOCK].path.actions in (["t0", "t1"], ["t1", "t0"])
    loop = simulate(Retry(), seed=0, runs=5, max_steps=10)
    path = loop.discoveries["granted"].path
    assert path.loop_start is not None
    assert path.last_state == path.states[path.loop_start]


def test_simulation_rejects_nonsense_options() -> None:
    """runs and max_steps are validated, with the offending value in the message."""
    with pytest.raises(ValueError, match=r"^runs must be >= 1, got runs=0$"):
        simulate(BinaryClock(), seed=0, runs=0)
    with pytest.raises(ValueError, match=r"^max_steps must be >= 0, got max_steps=-1$"):
        simulate(BinaryClock(), seed=0, max_steps=-1)


def test_check_rejects_nonsense_options() -> None:
    """Unknown strategies, parallel depth-first and negative bounds are user errors."""
    with pytest.raises(ValueError, match=r"^strategy must be 'bfs' or 'dfs', got strategy='x'$"):
        check(BinaryClock(), strategy="x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^workers=2 needs strategy='bfs'"):
        check(BinaryClock(), strategy="dfs", workers=2)
    with pytest.raises(ValueError, match=r"^max_states must be >= 1 or None"):
        check(BinaryClock(), max_states=0)


def test_sometimes_never_reached_is_reported() -> None:
    """BinaryClock never shows 2: never_reached names it and the report says so."""
    result = check(BinaryClock())
    assert result.never_reached == ("two_reached",)
    assert 'Never reached: sometimes "two_reached" has no example (no reachable state' in (
        result.report()
    )
    with pytest.raises(AssertionError, match=r'^sometimes "two_reached" has no example$'):
        result.assert_properties()
