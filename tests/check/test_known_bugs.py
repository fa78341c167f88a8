"""The checker finds each known bug of a toy model, with the expected shortest trace.

Style-guide B9 (quality): a lost update, an ABBA lock-order deadlock, liveness violations that
loop and that end, and the toy revoke model's reuse under DMA. Each fixed variant is clean.
"""

from __future__ import annotations

import pytest
from check_toys import Abba, LostUpdate, Retry, load_revoke_toy

from dmabuf_model.check import DEADLOCK, check


def test_lost_update_is_found_with_the_four_step_interleaving() -> None:
    """Both threads read before either writes: the shortest trace, pinned as BFS finds it."""
    result = check(LostUpdate())
    path = result.discovery("no_lost_update")
    assert path is not None
    assert path.actions == ["t0", "t1", "t0", "t1"]
    assert path.last_state.value == 1
    result.assert_discovery("no_lost_update", ["t1", "t0", "t0", "t1"])
    with pytest.raises(AssertionError, match=r'^always "no_lost_update" has a counterexample'):
        result.assert_properties()


def test_atomic_increment_has_no_lost_update() -> None:
    """The fixed model: every property holds and all_done is reached."""
    result = check(LostUpdate(atomic=True))
    result.assert_properties()
    result.assert_no_discovery("no_lost_update")
    assert result.complete


def test_abba_lock_order_deadlock_is_reported_with_its_two_steps() -> None:
    """t0 takes A, t1 takes B: nothing is enabled and the model calls it a deadlock."""
    result = check(Abba())
    d = result.discoveries[DEADLOCK]
    assert d.kind == "deadlock"
    assert d.path.actions == ["t0", "t1"]
    assert d.description == "t0 waits for B held by t1; t1 waits for A held by t0"
    result.assert_discovery(DEADLOCK, ["t1", "t0"])
    assert 'Discovered "deadlock" deadlock (t0 waits for B held by t1' in result.report()


def test_abba_with_one_lock_order_never_deadlocks() -> None:
    """Both threads take A first: every end state is all threads done."""
    result = check(Abba(ordered=True))
    result.assert_no_discovery(DEADLOCK)
    result.assert_properties()


def test_eventually_reports_a_refusal_loop_as_a_lasso() -> None:
    """request, refuse returns to the initial state: a loop that never grants (no fairness)."""
    result = check(Retry())
    d = result.discoveries["granted"]
    assert d.kind == "counterexample"
    assert d.path.actions == ["request", "refuse"]
    assert d.path.loop_start == 0
    assert "loops" in d.description
    text = result.report()
    assert "-- loop: the steps below repeat forever --" in text
    assert "-- back to the state after the initial state --" in text
    result.assert_discovery("granted", ["request", "refuse"])


def test_eventually_reports_a_path_that_ends_without_the_condition() -> None:
    """request, give_up reaches an end state where the request was never granted."""
    result = check(Retry(refuse=False, give_up=True))
    d = result.discoveries["granted"]
    assert d.path.actions == ["request", "give_up"]
    assert d.path.loop_start is None
    assert "ends" in d.description


def test_eventually_holds_when_every_path_grants() -> None:
    """Without refusal or giving up, every maximal path reaches GRANTED."""
    result = check(Retry(refuse=False))
    result.assert_properties()
    assert not result.unchecked


def test_eventually_is_not_checked_when_the_safety_search_stopped_first() -> None:
    """stop_at_first ends the run at the lost update; the liveness search never runs."""
    from dmabuf_model.check import Model, Property

    class Both(LostUpdate):
        def properties(self):  # type: ignore[no-untyped-def]
            return [*super().properties(), Property.eventually("never", lambda s: False)]

    result = check(Both())
    assert isinstance(result.model, Model)
    assert result.unchecked == ("never",)
    assert 'Not checked: eventually "never"' in result.report()


def test_revoke_toy_without_the_guard_reuses_memory_under_dma_in_six_steps() -> None:
    """The benchmark's unguarded model: map, start DMA, revoke, invalidate, finish, reuse."""
    toy = load_revoke_toy()
    for vectorised in (True, False):
        result = check(toy.RevokeToy(3, guard=False), vectorised=vectorised)
        path = result.discovery("no_dma_after_reuse")
        assert path is not None and len(path) == 6
        assert path.last_state[toy.RevokeToy(3).buf] == toy.REUSED
        result.assert_discovery(
            "no_dma_after_reuse",
            ["map(0)", "start_dma(0)", "revoke", "invalidate(0)", "finish", "reuse"],
        )


def test_every_revoke_completes_fails_without_fairness_on_a_map_unmap_loop() -> None:
    """Liveness with no fairness (docs/checker.md): an importer that maps and unmaps forever
    before the revoke starts is a counterexample, reported as a lasso that replays."""
    toy = load_revoke_toy()
    from dmabuf_model.check import Property

    class Eventually(toy.RevokeToy):  # type: ignore[misc, name-defined]
        def properties(self):  # type: ignore[no-untyped-def]
            buf = self.buf
            return [Property.eventually("revoke_completes", lambda v: v[buf] >= toy.REVOKED)]

    result = check(Eventually(2))
    d = result.discoveries["revoke_completes"]
    assert d.path.loop_start is not None
    assert d.path.last_state == d.path.states[d.path.loop_start]
    assert all(s[0] < toy.REVOKED for s in d.path.states)
    result.assert_discovery("revoke_completes", [str(a) for a in d.path.actions])
