"""The checker's first oracle: TLA+ TwoPhase commit, whose state counts TLC and stateright record.

tlaplus/Examples specifications/transaction_commit/manifest.json records, for TwoPhase with three
resource managers, 288 distinct states, 1,146 states generated and depth 11; stateright's
examples/2pc.rs pins 288 (three) and 8,832 (five). Style-guide B9: the cheapest cross-tool check.
"""

from __future__ import annotations

from check_toys import TwoPhase

from dmabuf_model.check import check


def test_two_phase_with_three_rms_has_288_states_as_tlc_records() -> None:
    """TLC: distinctStates 288, totalStates 1146, stateDepth 11 (depth counts states)."""
    result = check(TwoPhase(3), stop_at_first=False)
    assert result.complete
    assert (result.stats.unique, result.stats.states, result.stats.max_depth) == (288, 1146, 11)
    result.assert_properties()


def test_two_phase_with_five_rms_has_8832_states_breadth_and_depth_first() -> None:
    """stateright examples/2pc.rs: unique_state_count() == 8_832 for five RMs."""
    bfs = check(TwoPhase(5), stop_at_first=False)
    dfs = check(TwoPhase(5), strategy="dfs", stop_at_first=False)
    assert bfs.stats.unique == dfs.stats.unique == 8832
    assert bfs.stats.states == dfs.stats.states
    bfs.assert_properties()
    dfs.assert_properties()


def test_two_phase_symmetry_reduction_explores_one_state_per_orbit() -> None:
    """Sorting the per-RM triples (rmState, tmPrepared, Prepared msg) is the exact orbit
    representative: 314 orbits for five RMs (80 for three). stateright's 665 comes from a
    representative that sorts by rmState only and so leaves some orbits split."""
    five = check(TwoPhase(5, symmetric=True), symmetry=True, stop_at_first=False)
    three = check(TwoPhase(3, symmetric=True), symmetry=True, stop_at_first=False)
    assert (five.stats.unique, three.stats.unique) == (314, 80)
    assert five.stats.symmetry
    assert "symmetry reduction" in five.report()
    five.assert_properties()


def test_two_phase_parallel_search_counts_the_same_states() -> None:
    """Parallel BFS (two processes) finds exactly the sequential counts."""
    par = check(TwoPhase(3), workers=2, stop_at_first=False)
    assert (par.stats.unique, par.stats.states, par.stats.max_depth) == (288, 1146, 11)
    assert par.stats.workers == 2
    par.assert_properties()


def test_two_phase_fast_successors_agree_with_its_actions_and_next_state() -> None:
    """The toy's successors() override (for speed) is the TLA+ actions, in the same order."""
    from dmabuf_model.check import Model

    model = TwoPhase(3)
    frontier = list(model.init_states())
    seen = set(frontier)
    while frontier:
        s = frontier.pop()
        fast = list(model.successors(s))
        assert fast == list(Model.successors(model, s))
        for _a, t in fast:
            if t not in seen:
                seen.add(t)
                frontier.append(t)
    assert len(seen) == 288
