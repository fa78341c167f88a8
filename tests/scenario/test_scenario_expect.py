"""Verdicts and [expect]: what a check found, compared with what the scenario promised.

docs/scenarios.md "Expectations"; the broken scenarios exercise core-semantics §6.5, §10 #21
(no DMA after reuse) and drivers.md §1.3 (the unbounded wait for unmaps).
"""

from __future__ import annotations

from dmabuf_model.check import check
from dmabuf_model.scenario import ExpectSpec, build, resolve
from dmabuf_model.scenario.expect import evaluate, verdict_of


def test_a_violation_verdict_names_the_first_failure_and_its_trace_mentions_the_finding() -> None:
    """broken-exporter-no-fence-wait: no_dma_violation with dma_after_reuse, in 6 steps."""
    built = build(resolve("broken-exporter-no-fence-wait"))
    result = check(built.model)
    assert verdict_of(result) == "violation of no_dma_violation"
    assert len(result.failures[0].path) == 6
    assert built.scenario.expect is not None
    outcome = evaluate(built, result, built.scenario.expect)
    assert outcome.met and outcome.text() == "Expected: violation of no_dma_violation - met."


def test_a_wrong_expectation_says_why_it_is_not_met() -> None:
    """The outcome lists the reasons: the verdict, a missing mention, a pinned count."""
    built = build(resolve("broken-exporter-no-fence-wait"))
    result = check(built.model)
    outcome = evaluate(built, result, ExpectSpec(verdict="holds"))
    assert not outcome.met
    assert outcome.text() == (
        "Expected: holds - NOT met: the verdict is violation of no_dma_violation."
    )
    wrong_mention = ExpectSpec(verdict="violation of no_dma_violation", mentions="dma_after_reset")
    assert evaluate(built, result, wrong_mention).reasons == (
        "'dma_after_reset' does not appear in the evidence",
    )


def test_pinned_counts_are_compared_only_for_a_complete_bfs() -> None:
    """unique_states/max_depth: exact for a complete breadth-first check, noted otherwise."""
    built = build(resolve("legacy-pinned-rdma"))
    result = check(built.model, stop_at_first=False)
    st = result.stats
    right = ExpectSpec(verdict="holds", unique_states=st.unique, max_depth=st.max_depth)
    assert evaluate(built, result, right).met
    wrong = ExpectSpec(verdict="holds", unique_states=st.unique + 1)
    assert evaluate(built, result, wrong).reasons == (
        f"unique_states is {st.unique}, the scenario pins {st.unique + 1}",
    )
    partial = check(built.model, max_states=5)
    assert evaluate(built, partial, wrong).notes == (
        "pinned counts not compared: only a complete breadth-first check has them",
    )


def test_a_refused_verdict_needs_the_refusal_and_a_clean_check() -> None:
    """legacy-pinned-rdma: refused with EOPNOTSUPP at dma_buf_dynamic_attach, and holds."""
    built = build(resolve("legacy-pinned-rdma"))
    result = check(built.model)
    assert verdict_of(result) == "holds"
    assert built.scenario.expect is not None
    assert evaluate(built, result, built.scenario.expect).met
    other = ExpectSpec(verdict="refused with ENODEV at dma_buf_dynamic_attach")
    assert evaluate(built, result, other).reasons == (
        "no importer is refused that way (rdma: rejected -EOPNOTSUPP at dma_buf_dynamic_attach)",
    )


def test_a_variant_applies_when_the_overrides_are_exactly_its_set() -> None:
    """[[expect.variants]]: the watchdog variant of broken-importer-never-unmaps."""
    expect = resolve("broken-importer-never-unmaps").expect
    assert expect is not None
    assert expect.for_overrides({}) is expect
    variant = expect.for_overrides({"vfio.watchdog_1s": "warn"})
    assert variant is not None and variant.verdict == "violation of no_kernel_warning"
    assert expect.for_overrides({"vfio.watchdog_1s": "give_up"}) is None


def test_the_never_unmapping_importer_blocks_the_revoke_forever() -> None:
    """drivers.md §1.3: mainline waits for the unmaps without limit; with the 1 s watchdog of
    v4-v6 the revoke warns instead (core-semantics §10 #23)."""
    sc = resolve("broken-importer-never-unmaps")
    built = build(sc)
    result = check(built.model)
    assert verdict_of(result) == "violation of deadlock"
    assert sc.expect is not None and evaluate(built, result, sc.expect).met
    watched = build(sc.with_overrides({"vfio.watchdog_1s": "warn"}))
    result = check(watched.model)
    assert verdict_of(result) == "violation of no_kernel_warning"
    variant = sc.expect.for_overrides({"vfio.watchdog_1s": "warn"})
    assert variant is not None and evaluate(watched, result, variant).met
