"""The two core examples, checked exhaustively: a pin-vs-invalidate race and an ABBA deadlock.

core-semantics §5.8 (the revoke sequence), §4 (resv locking), §10 #8 and #22; drivers.md §1.3
(VFIO revoke) and §1.7 (memory_lock before resv). Shortest traces and state counts are pinned:
change them only deliberately.
"""

from __future__ import annotations

import pytest

from dmabuf_model.check import check, simulate
from dmabuf_model.system import explain, world
from dmabuf_model.system.examples import (
    EXAMPLES,
    RevocableExporter,
    RevocableImporter,
    lock_order,
    pin_invalidate_race,
)
from dmabuf_model.system.model import Action, EnvStep, SystemModel, ThreadStep, run_thread


def test_correct_importer_keeps_every_property_in_every_interleaving() -> None:
    """Holding the resv across pin, map and device setup makes the revoke safe (§5.8, §4)."""
    model = pin_invalidate_race("correct")
    result = check(model, stop_at_first=False)
    # Every always-property holds, no deadlock, and the run is nontrivial: the revoke completes
    # and, in some runs, hits a live mapping.
    result.assert_properties()
    assert result.complete and result.stats.unique == 24


SPLIT_TRACE: list[Action] = [
    ThreadStep(1, "importer-map-split", "pin and map"),
    EnvStep(0, "revoke"),
    ThreadStep(2, "vfio-revoke", "lock resv, revoke, invalidate"),
    ThreadStep(2, "vfio-revoke", "wait BOOKKEEP fences"),
    ThreadStep(1, "importer-map-split", "program device"),
    ThreadStep(2, "vfio-revoke", "wait for unmaps"),
]


def test_split_importer_reaches_a_device_mapping_after_the_revoke_completed() -> None:
    """Caching "valid" across two resv sections lets the device use a revoked mapping (§10 #22)."""
    model = pin_invalidate_race("split")
    result = check(model, stop_at_first=False)
    assert [d.property for d in result.failures] == ["no_device_mapping_after_revoke"]
    path = result.discovery("no_device_mapping_after_revoke")
    assert path is not None and path.actions == SPLIT_TRACE
    result.assert_discovery("no_device_mapping_after_revoke", SPLIT_TRACE)
    exporter, importer = world(path.last_state).drivers
    assert exporter == RevocableExporter(revoked=True, mappings=0, revoke_done=True)
    assert isinstance(importer, RevocableImporter)
    assert importer.device_sgt == 0 and not path.last_state.sg_tables[0].live
    # The core's own view stays consistent: the sg_table itself was unmapped in time.
    result.assert_no_discovery("no_live_mapping_after_revoke")
    assert result.stats.unique == 35


def test_split_counterexample_reads_like_a_kernel_call_log() -> None:
    """The trace shows each kernel call with its result and each step's effects (design.md)."""
    model = pin_invalidate_race("split")
    lines = model.describe_trace(SPLIT_TRACE)
    assert lines[:5] == [
        "  1. T1 importer-map-split: dma_resv_lock(resv0, NULL) = 0",
        "     T1 importer-map-split: dma_buf_pin(attach0) = 0",
        "     T1 importer-map-split: dma_buf_map_attachment(attach0, BIDIRECTIONAL) = sgt0",
        "     T1 importer-map-split: dma_resv_unlock(resv0)",
        "         => maps sgt0",
    ]
    assert "  2. env: revoke starts T2 vfio-revoke" in lines
    assert "     T2 vfio-revoke: dma_buf_invalidate_mappings(buf0)" in lines
    assert "         => takes resv0, unmaps sgt0" in lines
    assert "     T1 importer-map-split: program device with sgt0; start DMA" in lines
    assert lines[-2:] == [
        "  6. T2 vfio-revoke: wait_for_completion(unmaps) = done",
        "         => T2 vfio-revoke exits (0)",
    ]


def test_importer_mapping_without_the_resv_is_a_kernel_warning() -> None:
    """dma_buf_pin and dma_buf_map_attachment assert the resv is held (§4, §10 #8)."""
    model = pin_invalidate_race("unlocked")
    result = check(model, stop_at_first=False)
    assert [d.property for d in result.failures] == ["no_kernel_warning"]
    path = result.discovery("no_kernel_warning")
    assert path is not None
    assert [str(a) for a in path.actions] == ["T1 importer-map-unlocked: pin and map without resv"]
    warnings = explain(model.property("no_kernel_warning"), path.last_state)
    assert len(warnings) == 2
    assert warnings[0].startswith("WARN: dma_buf_pin ")
    assert warnings[1].startswith("WARN: dma_buf_map_attachment ")
    assert all(w.endswith("(core-semantics §10 #8)") for w in warnings)


def test_exporter_revoke_waits_for_the_dma_fence_before_unlocking() -> None:
    """Step 4 of §5.8 blocks on the importer's BOOKKEEP fence until the DMA engine signals."""
    model = pin_invalidate_race("correct")
    names = [
        "T1 importer-map: lock resv, pin, map, program device",
        "env: revoke",
        "T2 vfio-revoke: lock resv, revoke, invalidate",
    ]
    s = model.init_states()[0]
    for name in names:
        (action,) = [a for a in model.actions(s) if str(a) == name]
        nxt = model.next_state(s, action)
        assert nxt is not None
        s = nxt
    assert [str(a) for a in model.actions(s)] == ["env: DMA done"]
    assert s.resvs[0].holder == 2


def test_resv_against_memory_lock_is_an_abba_deadlock_with_its_chain() -> None:
    """VFIO takes memory_lock then resv; a fault path nesting them the other way deadlocks
    (drivers.md §1.7, core-semantics §4)."""
    result = check(lock_order("nested"), stop_at_first=False)
    deadlock = result.discoveries["deadlock"]
    assert [str(a) for a in deadlock.path.actions] == [
        "T0 vfio-reset: down_write memory_lock",
        "T1 importer-fault: lock resv",
    ]
    assert deadlock.description == (
        "deadlock: T0 vfio-reset waits for resv0 held by T1 importer-fault, "
        "which waits for memory_lock held by T0"
    )
    assert result.stats.unique == 13


def test_fault_path_that_never_nests_the_locks_does_not_deadlock() -> None:
    """Checking under the resv, dropping it, then taking memory_lock is safe (drivers.md §1.7)."""
    result = check(lock_order("fixed"))
    result.assert_properties()
    assert result.complete and result.stats.unique == 12


def test_example_registry_builds_every_model() -> None:
    """The CLI finds the examples by name; each factory builds a fresh SystemModel."""
    assert sorted(EXAMPLES) == [
        "lock_order",
        "lock_order_fixed",
        "pin_invalidate_race",
        "pin_invalidate_race_split",
        "pin_invalidate_race_unlocked",
    ]
    for name, factory in EXAMPLES.items():
        model = factory()
        assert isinstance(model, SystemModel) and model.name.startswith(name.split("_")[0])


def test_the_simulator_finds_the_same_bugs_with_the_same_step_functions() -> None:
    """One semantics, several explorers (style-guide B1): seeded random walks find both bugs."""
    split = simulate(pin_invalidate_race("split"), seed=1, runs=200, max_steps=30)
    path = split.discovery("no_device_mapping_after_revoke")
    assert path is not None
    split.assert_discovery("no_device_mapping_after_revoke", path.actions)
    abba = simulate(lock_order("nested"), seed=1, runs=50, max_steps=30)
    assert abba.discoveries["deadlock"].description.startswith("deadlock: T0 vfio-reset waits")


def test_a_scripted_run_steps_one_thread_and_stops_where_it_would_sleep() -> None:
    """run_thread drives the same steps as the checker; a wait nobody ends is an error."""
    model = pin_invalidate_race("correct")
    s = run_thread(model.init_states()[0], 1)
    assert world(s).threads[1].done and s.sg_tables[0].live
    s2 = model.next_state(s, EnvStep(0, "revoke"))
    assert s2 is not None
    with pytest.raises(
        RuntimeError,
        match=r"^T2 vfio-revoke blocked at 'wait BOOKKEEP fences' on fence0 during a scripted run$",
    ):
        run_thread(s2, 2)
