"""The thread framework on toy programs: steps, blocking, waits-for chains, branches, events.

Toy locks live in driver slot 0 as a tuple of holder tids, so these tests need nothing from the
kernel's locking module. design.md "Threads are explicit"; core-semantics §4 (locks block until
free; a cycle of waiting threads is a deadlock).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sysmodel_helpers import toy_lock

from dmabuf_model.check import check
from dmabuf_model.kernel.state import Blocked, KState
from dmabuf_model.system import (
    Branches,
    EnvEvent,
    EnvStep,
    Program,
    SystemModel,
    Thread,
    ThreadStep,
    driver_state,
    emit,
    emit_call,
    finish,
    goto,
    program,
    recording,
    set_driver_state,
    spawn,
    system_state,
    thread,
    wait_or_timeout,
    world,
)
from dmabuf_model.system.model import explain_blocked

LOCK_NAMES = ("lock_a", "lock_b")


def _locks(s: KState) -> tuple[int, ...]:
    held = driver_state(s, 0)
    assert isinstance(held, tuple)
    return held


def _take(lock: int, next_pc: str) -> Callable[[KState, Thread], KState | Blocked]:
    def step(s: KState, t: Thread) -> KState | Blocked:
        held = toy_lock(_locks(s), lock, t.tid, LOCK_NAMES[lock])
        if isinstance(held, Blocked):
            return held
        emit(f"mutex_lock({LOCK_NAMES[lock]})")
        return goto(set_driver_state(s, 0, held), t, next_pc)

    return step


def _release_all(s: KState, t: Thread) -> KState:
    held = tuple(-1 if h == t.tid else h for h in _locks(s))
    emit("mutex_unlock(all)")
    return finish(set_driver_state(s, 0, held), t, ret=0)


AB = program(
    "ab", ("lock A", _take(0, "lock B")), ("lock B", _take(1, "unlock")), ("unlock", _release_all)
)
BA = program(
    "ba", ("lock B", _take(1, "lock A")), ("lock A", _take(0, "unlock")), ("unlock", _release_all)
)


def _two_threads(first: Program, second: Program) -> KState:
    s = system_state(drivers=((-1, -1),))
    s, _ = spawn(s, first)
    s, _ = spawn(s, second)
    return s


def test_abba_lock_order_is_reported_as_a_deadlock_with_its_waits_for_cycle() -> None:
    """A cycle of waiting threads is a deadlock, named by its waits-for chain (core §4)."""
    model = SystemModel(_two_threads(AB, BA))
    deadlock = check(model).discoveries["deadlock"]
    assert [str(a) for a in deadlock.path.actions] == ["T0 ab: lock A", "T1 ba: lock B"]
    assert deadlock.description == (
        "deadlock: T0 ab waits for lock_b held by T1 ba, which waits for lock_a held by T0"
    )


def test_same_lock_order_has_no_deadlock_and_a_pinned_state_count() -> None:
    """Both threads taking A then B never deadlock (core §4); the state count is pinned."""
    result = check(SystemModel(_two_threads(AB, AB)))
    result.assert_no_discovery("deadlock")
    # initial + 2 x (first thread: 3 steps, then the other: 2 steps before "both done") + both done
    assert result.stats.unique == 12


def test_a_thread_waiting_on_itself_is_a_self_deadlock() -> None:
    """Relocking a lock one holds (NULL-ctx resv relock, core §4) is a one-thread cycle."""
    relock = program(
        "relock",
        ("lock A", _take(0, "again")),
        ("again", _take(0, "unlock")),
        ("unlock", _release_all),
    )
    s, _ = spawn(system_state(drivers=((-1, -1),)), relock)
    result = check(SystemModel(s))
    assert result.discoveries["deadlock"].description == (
        "deadlock: T0 relock waits for lock_a held by T0 (itself)"
    )


def _wait_fence(s: KState, t: Thread) -> KState | Blocked:
    if not driver_state(s, 1):
        return Blocked(on="fence0")
    return finish(s, t, ret=1)


def _signal(s: KState, t: Thread) -> KState:
    emit_call("dma_fence_signal", "fence0")
    return finish(set_driver_state(s, 1, True), t)


WAITER = program("waiter", ("wait fence0", _wait_fence))
SIGNALLER = program("signaller", ("signal fence0", _signal))


def test_a_wait_nobody_can_end_is_reported_as_blocked_forever() -> None:
    """A thread waiting on a fence no thread will signal is blocked forever, not a cycle."""
    s, _ = spawn(system_state(drivers=((-1, -1), False)), WAITER)
    model = SystemModel(s)
    assert list(model.successors(model.init_states()[0])) == []
    assert model.deadlock(model.init_states()[0]) == "blocked forever: T0 waiter waits for fence0"


def test_a_waits_for_chain_ending_at_an_exited_holder_says_so() -> None:
    """A lock left held by a finished thread blocks its waiters forever (core §4)."""

    def take_and_exit(s: KState, t: Thread) -> KState:
        held = toy_lock(_locks(s), 0, t.tid, "lock_a")
        assert not isinstance(held, Blocked)
        return finish(set_driver_state(s, 0, held), t)

    leak = program("leak", ("lock A", take_and_exit))
    s = system_state(drivers=((-1, -1),))
    s, _ = spawn(s, leak)
    s, _ = spawn(s, AB)
    model = SystemModel(s)
    s1 = model.next_state(model.init_states()[0], ThreadStep(0, "leak", "lock A"))
    assert s1 is not None
    assert explain_blocked(s1) == (
        "blocked forever: T1 ab waits for lock_a held by T0 leak, which has exited"
    )


def test_environment_event_spawns_a_thread_within_its_budget() -> None:
    """Events are actions with a budget, so the state space stays finite (design.md)."""
    s, _ = spawn(system_state(drivers=((-1, -1), False)), WAITER)
    model = SystemModel(s, events=[EnvEvent("signal", SIGNALLER, budget=2)])
    s0 = model.init_states()[0]
    assert world(s0).budgets == (2,)
    assert [str(a) for a in model.actions(s0)] == ["env: signal"]
    s1 = model.next_state(s0, EnvStep(0, "signal"))
    assert s1 is not None
    assert thread(s1, 1).name == "signaller" and thread(s1, 1).pc == "signal fence0"
    assert world(s1).budgets == (1,)
    # Threads come first, by tid, then events in order.
    assert [str(a) for a in model.actions(s1)] == ["T1 signaller: signal fence0", "env: signal"]
    check(model).assert_no_discovery("deadlock")
    assert max(len(world(x).threads) for x in _reachable(model)) == 3


def _reachable(model: SystemModel) -> list[KState]:
    seen = {s: None for s in model.init_states()}
    todo = list(seen)
    while todo:
        for _, nxt in model.successors(todo.pop()):
            if nxt not in seen:
                seen[nxt] = None
                todo.append(nxt)
    return list(seen)


def _timed_wait(s: KState, t: Thread) -> Branches:
    def attempt(timed_out: bool) -> KState | Blocked:
        if driver_state(s, 1):
            emit_call("dma_fence_wait_timeout", "fence0, false, 10", 10)
            return finish(s, t, ret=10)
        if not timed_out:
            return Blocked(on="fence0")
        emit_call("dma_fence_wait_timeout", "fence0, false, 10", 0)
        return finish(s, t, ret=0)

    return wait_or_timeout(attempt)


def test_finite_timeout_offers_the_timed_out_branch_until_the_fence_signals() -> None:
    """A finite wait is two actions: signalled later, or timed out (core §9.8: returns 0)."""
    timed = program("timed-waiter", ("wait fence0", _timed_wait))
    s, _ = spawn(system_state(drivers=((-1, -1), False)), timed)
    model = SystemModel(s, events=[EnvEvent("signal", SIGNALLER)])
    s0 = model.init_states()[0]
    assert [str(a) for a in model.actions(s0)] == [
        "T0 timed-waiter: wait fence0 [timed out]",
        "env: signal",
    ]
    timed_out = model.next_state(s0, ThreadStep(0, "timed-waiter", "wait fence0", "timed out"))
    assert timed_out is not None and thread(timed_out, 0).local("ret") == 0
    s1 = model.next_state(s0, EnvStep(0, "signal"))
    assert s1 is not None
    s2 = model.next_state(s1, ThreadStep(1, "signaller", "signal fence0"))
    assert s2 is not None
    # Once signalled both branches give the same state, so only the untimed one is offered.
    assert [str(a) for a in model.actions(s2)] == ["T0 timed-waiter: wait fence0"]
    assert model.describe_step(s2, ThreadStep(0, "timed-waiter", "wait fence0")) == [
        "T0 timed-waiter: dma_fence_wait_timeout(fence0, false, 10) = 10",
        "    => T0 timed-waiter exits (10)",
    ]


def test_step_action_with_a_stale_pc_is_not_enabled() -> None:
    """Replaying an action recorded at another pc fails instead of running the wrong step."""
    model = SystemModel(_two_threads(AB, BA))
    s0 = model.init_states()[0]
    assert model.next_state(s0, ThreadStep(0, "ab", "lock B")) is None
    assert model.next_state(s0, ThreadStep(5, "ab", "lock A")) is None
    assert model.next_state(s0, EnvStep(0, "nope")) is None


def test_emit_records_only_inside_recording() -> None:
    """Log text never enters the state; it is collected only while a recorder is active."""
    emit("dropped")
    with recording() as lines:
        emit("kept")
        emit_call("dma_buf_pin", "attach0", -19)
        emit_call("dma_resv_unlock", "resv0")
        emit_call("dma_resv_test_signaled", "resv0, BOOKKEEP", True)
    assert lines == [
        "kept",
        "dma_buf_pin(attach0) = -ENODEV",
        "dma_resv_unlock(resv0)",
        "dma_resv_test_signaled(resv0, BOOKKEEP) = True",
    ]


def test_describe_trace_reads_like_a_kernel_call_log() -> None:
    """Each step prints its emitted calls with the thread's tid and name, then its effects."""
    model = SystemModel(_two_threads(AB, BA))
    lines = model.describe_trace([ThreadStep(0, "ab", "lock A"), ThreadStep(1, "ba", "lock B")])
    assert lines == ["  1. T0 ab: mutex_lock(lock_a)", "  2. T1 ba: mutex_lock(lock_b)"]
    with pytest.raises(ValueError, match=r"^step 2: action T1 ba: lock A is not enabled"):
        model.describe_trace([ThreadStep(0, "ab", "lock A"), ThreadStep(1, "ba", "lock A")])


def test_goto_and_finish_keep_sorted_locals_and_check_labels() -> None:
    """Locals are sorted (equal locals, equal states); a bad label fails at once."""
    s, tid = spawn(system_state(), AB, "importer", z=1, a=2)
    t = thread(s, tid)
    assert t.locals == (("a", 2), ("z", 1)) and t.name == "importer" and t.pc == "lock A"
    s2 = goto(s, t, "unlock", m=3)
    assert thread(s2, tid).locals == (("a", 2), ("m", 3), ("z", 1))
    assert thread(s2, tid).local("missing", "dflt") == "dflt"
    s3 = finish(s2, t, ret=-19)
    assert thread(s3, tid).done and thread(s3, tid).pc == "" and thread(s3, tid).local("ret") == -19
    with pytest.raises(KeyError, match="has no step 'unlokc'"):
        goto(s, t, "unlokc")


def test_program_rejects_duplicate_labels_and_world_accessors_need_a_world() -> None:
    """Definition errors are Python exceptions that say what to fix (style-guide B8)."""
    with pytest.raises(ValueError, match="duplicate or empty step labels"):
        Program("p", (("a", _release_all), ("a", _release_all)))
    with pytest.raises(TypeError, match="build the state with system_state"):
        world(KState())


def test_finite_dma_fence_wait_explores_timeout_and_signal_with_the_kernel_model() -> None:
    """dma_fence_wait_timeout with a finite timeout: 0 when it times out, the remaining time
    once the fence has signalled (core-semantics §9.8, §10 #43)."""
    from dmabuf_model.kernel.dma_fence import (
        dma_fence_context_alloc,
        dma_fence_init,
        dma_fence_signal,
        dma_fence_wait_timeout,
    )

    def wait(s: KState, t: Thread) -> Branches:
        def attempt(timed_out: bool) -> KState | Blocked:
            r = dma_fence_wait_timeout(s, t.tid, 0, False, 10, timed_out=timed_out)
            if isinstance(r, Blocked):
                return r
            s2, ret = r
            emit_call("dma_fence_wait_timeout", "fence0, false, 10", ret)
            return finish(s2, t, ret=ret)

        return wait_or_timeout(attempt)

    def signal(s: KState, t: Thread) -> KState:
        emit_call("dma_fence_signal", "fence0")
        return finish(dma_fence_signal(s, 0), t)

    s = system_state()
    s, ctx = dma_fence_context_alloc(s, 1)
    s, _ = dma_fence_init(s, ctx, 1)
    s, _ = spawn(s, program("waiter", ("wait fence0", wait)))
    model = SystemModel(
        s, events=[EnvEvent("fence done", program("signaller", ("signal", signal)))]
    )
    check(model).assert_properties()
    rets = sorted(
        thread(x, 0).local("ret")
        for x in _reachable(model)
        if thread(x, 0).done  # type: ignore[type-var]
    )
    assert set(rets) == {0, 10}
    s0 = model.init_states()[0]
    s1 = model.next_state(s0, EnvStep(0, "fence done"))
    assert s1 is not None
    assert model.describe_step(s1, ThreadStep(1, "signaller", "signal")) == [
        "T1 signaller: dma_fence_signal(fence0)",
        "    => signals fence0, T1 signaller exits",
    ]


def test_a_step_can_queue_work_as_a_new_thread() -> None:
    """A workqueue item is a thread spawned by a step; it runs as its own atomic steps."""
    worker = program("worker", ("run", lambda s, t: finish(s, t, ret=0)))

    def queue(s: KState, t: Thread) -> KState:
        s, _ = spawn(s, worker, "kworker")
        emit("queue_work(kworker)")
        return finish(s, t)

    s, _ = spawn(system_state(), program("ioctl", ("queue", queue)))
    model = SystemModel(s)
    s0 = model.init_states()[0]
    assert model.describe_step(s0, ThreadStep(0, "ioctl", "queue")) == [
        "T0 ioctl: queue_work(kworker)",
        "    => T0 ioctl exits, spawns T1 kworker",
    ]
    s1 = model.next_state(s0, ThreadStep(0, "ioctl", "queue"))
    assert s1 is not None
    assert [str(a) for a in model.actions(s1)] == ["T1 kworker: run"]


def test_symmetry_hook_is_recorded_but_canonical_is_still_the_identity() -> None:
    """The documented hook for later symmetry reduction: groups of interchangeable slots."""
    model = SystemModel(_two_threads(AB, AB), symmetric_slots=[(1, 2)])
    assert model.symmetric_slots == ((1, 2),)
    assert not model.has_symmetry
    s0 = model.init_states()[0]
    assert model.canonical(s0) is s0
