"""Building a structured trace from a checker path: actors, calls, effects and the violating step.

The subjects are the checker's own counterexamples (report_helpers.py): the pin-vs-invalidate
race (core-semantics §5.8, §10 #22), the ABBA deadlock (drivers.md §1.7, core-semantics §4), the
unlocked importer's WARNs (§10 #8) and a device write after a reset (§10 #22, drivers.md §1.4).
"""

from __future__ import annotations

import pytest
from report_helpers import (
    TOPO,
    counter_trace,
    deadlock_trace,
    platform_trace,
    split_race_trace,
    warning_trace,
)

from dmabuf_model.check import check
from dmabuf_model.platform import dma_map_phys, pci_reset_function, platform_init
from dmabuf_model.report import Call, Effect, Wait, build_trace
from dmabuf_model.report.trace import parse_call, platform_effects
from dmabuf_model.system.examples import pin_invalidate_race


def test_split_race_flags_only_the_step_after_which_the_property_fails() -> None:
    """§5.8, §10 #22: the revoke completes (step 6) while the device still holds sgt0."""
    t = split_race_trace()
    assert t.violation_steps == (6,)
    assert t.verdict == (
        'counterexample: always "no_device_mapping_after_revoke" fails after step 6 '
        "(core-semantics §5.8, §10 #22)"
    )
    assert (t.property, t.kind, t.token) == (
        "no_device_mapping_after_revoke",
        "counterexample",
        "0/0/1/1/0/0/0",
    )
    assert t.scenario == {"name": "pin_invalidate_race_split"}


def test_each_step_names_its_thread_or_env_and_the_action_text() -> None:
    """Actors are "T<tid> <thread>" or "env"; the action is the model's text, which replay
    compares (docs/traces.md)."""
    t = split_race_trace()
    assert [s.actor for s in t.steps] == [
        "T1 importer-map-split",
        "env",
        "T2 vfio-revoke",
        "T2 vfio-revoke",
        "T1 importer-map-split",
        "T2 vfio-revoke",
    ]
    assert t.steps[2].action == "T2 vfio-revoke: lock resv, revoke, invalidate"
    assert t.steps[1].action_data == {"type": "EnvStep", "index": 0, "event": "revoke"}


def test_a_lock_taken_and_dropped_within_one_step_is_read_from_the_calls() -> None:
    """§4: the state before and after step 1 both have resv0 free, yet T1 held it in between."""
    step = split_race_trace().steps[0]
    assert step.calls[0] == Call(
        "dma_resv_lock(resv0, NULL) = 0", 0, "dma_resv_lock", "resv0, NULL", "0"
    )
    assert step.effects == (
        Effect("lock", "resv0", "takes resv0", call=0),
        Effect("map", "sgt0", "maps sgt0", call=2),
        Effect("unlock", "resv0", "releases resv0", call=3),
    )


def test_effects_from_the_state_difference_are_tied_to_the_call_that_did_them() -> None:
    """§5.8: the importer's invalidate_mappings callback unmaps sgt0 inside the exporter's step."""
    step = split_race_trace().steps[2]
    callbacks = [(c.depth, c.text) for c in step.calls if c.depth]
    assert callbacks == [
        (1, "toy_importer_invalidate(attach0): stop device"),
        (1, "dma_buf_unmap_attachment(attach0, sgt0)"),
        (1, "dma_buf_unpin(attach0)"),
    ]
    unmap = [e for e in step.effects if e.kind == "unmap"]
    assert unmap == [Effect("unmap", "sgt0", "unmaps sgt0", call=4)]
    # The resv stays held when the step ends: one lock effect, from the call, none from the diff.
    assert [e.kind for e in step.effects if e.target == "resv0"] == ["lock"]


def test_spawned_and_finished_threads_are_effects_after_the_calls() -> None:
    """An environment event starts a thread; a finished thread exits with its return value."""
    t = split_race_trace()
    assert t.steps[1].effects == (Effect("spawn", "T2 vfio-revoke", "spawns T2 vfio-revoke"),)
    assert t.steps[5].effects[-1] == Effect("exit", "T2 vfio-revoke", "T2 vfio-revoke exits (0)")


def test_deadlock_flags_the_last_step_and_lists_the_waits_for_cycle() -> None:
    """drivers.md §1.7, core-semantics §4: memory_lock then resv against resv then memory_lock."""
    t = deadlock_trace()
    assert t.kind == "deadlock" and t.property == "deadlock"
    assert t.violation_steps == (2,)
    assert t.verdict == "deadlock after step 2"
    assert t.waits == (
        Wait("T0 vfio-reset", "resv0", "T1 importer-fault"),
        Wait("T1 importer-fault", "memory_lock", "T0 vfio-reset"),
    )
    assert t.details == (
        "deadlock: T0 vfio-reset waits for resv0 held by T1 importer-fault, "
        "which waits for memory_lock held by T0",
    )
    assert t.steps[0].effects == (
        Effect("lock", "memory_lock", "takes memory_lock (write)", call=0),
    )


def test_a_kernel_warning_is_a_violating_effect_tied_to_the_call_that_warned() -> None:
    """§10 #8: dma_buf_pin and dma_buf_map_attachment without the resv held each WARN once."""
    t = warning_trace()
    warnings = [e for e in t.steps[0].effects if e.kind == "warning"]
    assert [(e.call, e.violation) for e in warnings] == [(0, True), (1, True)]
    assert warnings[0].text == "WARN: dma_buf_pin without resv held (core-semantics §10 #8)"
    assert t.violation_steps == (1,)
    assert t.details == tuple(e.text for e in warnings)


def test_a_new_violating_oracle_finding_flags_the_access_step() -> None:
    """§10 #22, drivers.md §1.4: a write through a mapping of a reset BAR is dma_after_reset."""
    t = platform_trace()
    assert t.violation_steps == (4,)
    findings = [e for e in t.steps[3].effects if e.kind == "finding"]
    assert len(findings) == 1
    f = findings[0]
    assert (f.source, f.target, f.violation) == ("mlx5_0", "vfio0.bar0", True)
    assert f.text.startswith("dma_after_reset: mlx5_0 vfio0.bar0: write via mapping 0 page 0")
    transfer = [e for e in t.steps[3].effects if e.kind == "transfer"]
    assert transfer == [
        Effect("transfer", "vfio0.bar0", "mlx5_0 write 0 via mapping 0 page 0: done", "mlx5_0")
    ]


def test_platform_effects_name_ranges_from_the_topology_or_by_index() -> None:
    """Mappings and memory generations are named like the oracle names them (drivers.md §6)."""
    ps0 = platform_init(TOPO)
    ps, _ = dma_map_phys(ps0, TOPO, "mlx5_0", TOPO.bar("vfio0"))
    ps, _ = pci_reset_function(ps, TOPO, "vfio0")
    named = platform_effects(ps0, ps, TOPO)
    assert [(e.kind, e.text) for e in named] == [
        ("memory", "vfio0.bar0 generation 1 (reset)"),
        ("dma_mapping", "mlx5_0 maps vfio0.bar0 pages 0..1 (bus_addr) as mapping 0"),
    ]
    bare = platform_effects(ps0, ps)
    assert bare[0].text == "range2 generation 1 (reset)"


def test_parse_call_splits_function_arguments_result_and_nesting() -> None:
    """Lines are emitted as `fn(args) = ret`, callbacks as `  -> fn(args)` (system/threads.py)."""
    assert parse_call("dma_buf_map_attachment(attach0, BIDIRECTIONAL) = -ENODEV") == Call(
        "dma_buf_map_attachment(attach0, BIDIRECTIONAL) = -ENODEV",
        0,
        "dma_buf_map_attachment",
        "attach0, BIDIRECTIONAL",
        "-ENODEV",
    )
    assert parse_call("  -> dma_buf_unpin(attach0)") == Call(
        "dma_buf_unpin(attach0)", 1, "dma_buf_unpin", "attach0", None
    )
    assert parse_call("vfio_pci_dma_buf_move: revoked = true") == Call(
        "vfio_pci_dma_buf_move: revoked = true"
    )


def test_a_failed_lock_call_takes_no_lock() -> None:
    """§8.3: dma_resv_lock returning -EDEADLK does not hold the lock."""
    from dmabuf_model.report.trace import step_effects

    calls = (parse_call("dma_resv_lock(resv0, ctx0) = -EDEADLK"), parse_call("down_write(mm)"))
    assert step_effects(calls, None, None) == (Effect("lock", "mm", "takes mm (write)", call=1),)


def test_a_model_that_is_not_a_system_model_gives_steps_without_calls() -> None:
    """The checker is generic (style-guide B1.2): any Model's path becomes a trace."""
    t = counter_trace()
    assert [(s.actor, s.action, s.calls, s.effects) for s in t.steps] == [
        ("model", "inc", (), ()),
        ("model", "inc", (), ()),
    ]
    assert t.violation_steps == (2,)


def test_an_example_for_a_sometimes_property_flags_no_step() -> None:
    """A sometimes property's example shows where it holds; nothing is violated."""
    model = pin_invalidate_race("correct")
    result = check(model, stop_at_first=False)
    path = result.discovery("revoke_completes")
    assert path is not None
    t = build_trace(model, path, property="revoke_completes")
    assert t.kind == "example" and t.violation_steps == ()
    assert t.verdict.startswith('example: sometimes "revoke_completes" holds after step ')


def test_an_unknown_property_is_a_key_error_naming_the_known_ones() -> None:
    """A typo in a property name is the user's error (style-guide B8)."""
    model = pin_invalidate_race("split")
    path = check(model).discovery("no_device_mapping_after_revoke")
    assert path is not None
    with pytest.raises(KeyError, match=r"no property 'no_such'; it has: .*no_kernel_warning"):
        build_trace(model, path, property="no_such")
