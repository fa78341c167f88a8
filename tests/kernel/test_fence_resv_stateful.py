"""Random dma_fence / dma_resv call sequences from three threads, against a tiny reference model.

Hypothesis drives fence create / signal / set_error / add_callback / remove_callback and resv
lock / trylock / unlock / reserve / add_fence / poll-wait from threads 0-2, including misuse
(unlocking a resv not held, adding without a reservation or without the lock). After every step
the model's state is compared with a plain-Python reference written straight from
core-semantics §8.4, §8.5, §9.4, §9.6 and §9.7, and the §10 invariants #30, #31, #33-#36,
#38, #39 and #41 are checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from dmabuf_model.kernel import errno
from dmabuf_model.kernel.dma_fence import (
    DmaFenceCb,
    dma_fence_add_callback,
    dma_fence_context_alloc,
    dma_fence_init,
    dma_fence_remove_callback,
    dma_fence_set_error,
    dma_fence_signal,
)
from dmabuf_model.kernel.dma_resv import (
    DmaResvUsage,
    dma_resv_add_fence,
    dma_resv_init,
    dma_resv_iter,
    dma_resv_iter_unlocked,
    dma_resv_lock,
    dma_resv_reserve_fences,
    dma_resv_test_signaled,
    dma_resv_trylock,
    dma_resv_unlock,
    dma_resv_wait_timeout,
)
from dmabuf_model.kernel.state import NO_TID, Blocked, KState

THREADS = st.integers(0, 2)
USAGES = st.sampled_from(list(DmaResvUsage))
PICK = st.integers(0, 1_000)
OBJ = 0


@dataclass
class RefFence:
    context: int
    seqno: int
    signaled: bool = False
    error: int = 0
    queued: list[int] = field(default_factory=list)
    ran: list[int] = field(default_factory=list)


@dataclass
class RefResv:
    holder: int | None = None
    slots: list[tuple[int, DmaResvUsage]] = field(default_factory=list)
    max_fences: int = 0


class FenceResvMachine(RuleBasedStateMachine):
    """The model and the reference take the same calls; their observable state must agree."""

    def __init__(self) -> None:
        super().__init__()
        s, self.ctx0 = dma_fence_context_alloc(KState(), 2)
        self.s, _ = dma_resv_init(s)
        self.fences: list[RefFence] = []
        self.resv = RefResv()
        self.expected: set[tuple[int, str]] = set()
        self.next_seqno = [1, 1]
        self.next_cb = 0
        self.was_signaled: list[bool] = []

    # ---- fences ----------------------------------------------------------------------------

    @rule(timeline=st.integers(0, 1))
    def create_fence(self, timeline: int) -> None:
        seqno = self.next_seqno[timeline]
        self.next_seqno[timeline] += 1
        self.s, f = dma_fence_init(self.s, self.ctx0 + timeline, seqno, enable_signaling=True)
        assert f == len(self.fences)
        self.fences.append(RefFence(self.ctx0 + timeline, seqno))

    @precondition(lambda self: self.fences)
    @rule(pick=PICK)
    def signal(self, pick: int) -> None:
        f = pick % len(self.fences)
        self.s = dma_fence_signal(self.s, f)
        ref = self.fences[f]
        if not ref.signaled:
            ref.signaled = True
            ref.ran += ref.queued
            ref.queued = []

    @precondition(lambda self: self.fences)
    @rule(pick=PICK, error=st.sampled_from([-errno.ETIME, -errno.ECANCELED, -errno.ENODATA]))
    def set_error(self, pick: int, error: int) -> None:
        f = pick % len(self.fences)
        self.s = dma_fence_set_error(self.s, f, error)
        if self.fences[f].signaled:
            self.expected.add((41, "WARN"))
        self.fences[f].error = error

    @precondition(lambda self: self.fences)
    @rule(pick=PICK)
    def add_callback(self, pick: int) -> None:
        f = pick % len(self.fences)
        cb = self.next_cb
        self.next_cb += 1
        self.s, ret = dma_fence_add_callback(self.s, f, DmaFenceCb("stateful", cb))
        if self.fences[f].signaled:
            assert ret == -errno.ENOENT  # §9.6, §10 #39
        else:
            assert ret == 0
            self.fences[f].queued.append(cb)

    @precondition(lambda self: self.fences and self.next_cb)
    @rule(pick=PICK, cb=PICK)
    def remove_callback(self, pick: int, cb: int) -> None:
        f = pick % len(self.fences)
        data = cb % self.next_cb
        self.s, removed = dma_fence_remove_callback(self.s, f, DmaFenceCb("stateful", data))
        ref = self.fences[f]
        assert removed == (data in ref.queued)
        if removed:
            ref.queued.remove(data)

    # ---- resv ------------------------------------------------------------------------------

    @rule(tid=THREADS)
    def lock(self, tid: int) -> None:
        r = dma_resv_lock(self.s, tid, OBJ, None)
        if self.resv.holder is None:
            assert not isinstance(r, Blocked) and r[1] == 0
            self.s = r[0]
            self.resv.holder = tid
        else:  # held by another thread, or a self-deadlock (§4, §10 #12)
            assert r == Blocked(on="resv0", holder=self.resv.holder)

    @rule(tid=THREADS)
    def trylock(self, tid: int) -> None:
        self.s, took = dma_resv_trylock(self.s, tid, OBJ)
        assert took == (self.resv.holder is None)
        if took:
            self.resv.holder = tid

    @rule(tid=THREADS)
    def unlock(self, tid: int) -> None:
        self.s = dma_resv_unlock(self.s, tid, OBJ)
        if self.resv.holder != tid:
            self.expected.add((0, "WARN"))
        self.resv.holder = None
        self.resv.max_fences = len(self.resv.slots)  # §8.4: reservations end at unlock

    @rule(tid=THREADS, n=st.integers(0, 2))
    def reserve(self, tid: int, n: int) -> None:
        self.s, ret = dma_resv_reserve_fences(self.s, tid, OBJ, n)
        if self.resv.holder != tid:
            self.expected.add((31, "WARN"))
        if n == 0:
            assert ret == -errno.EINVAL  # §10 #31
            self.expected.add((31, "WARN"))
            return
        assert ret == 0
        if len(self.resv.slots) + n > self.resv.max_fences:
            self.resv.slots = [x for x in self.resv.slots if not self.fences[x[0]].signaled]
            self.resv.max_fences = len(self.resv.slots) + n

    @precondition(lambda self: self.fences)
    @rule(tid=THREADS, pick=PICK, usage=USAGES)
    def add_fence(self, tid: int, pick: int, usage: DmaResvUsage) -> None:
        f = pick % len(self.fences)
        self.s = dma_resv_add_fence(self.s, tid, OBJ, f, usage)
        if self.resv.holder != tid:
            self.expected.add((30, "WARN"))
        new = self.fences[f]
        for i, (old, old_usage) in enumerate(self.resv.slots):
            o = self.fences[old]
            same = o.context == new.context and old_usage >= usage and new.seqno >= o.seqno
            if same or o.signaled:  # §8.5 replacement rule
                self.resv.slots[i] = (f, usage)
                return
        if len(self.resv.slots) >= self.resv.max_fences:
            self.expected.add((30, "BUG"))  # §10 #30: no reserved slot, nothing added
            return
        self.resv.slots.append((f, usage))

    @precondition(lambda self: self.fences and self.resv.holder is not None)
    @rule(pick=PICK, usage=USAGES)
    def holder_reserves_and_adds(self, pick: int, usage: DmaResvUsage) -> None:
        """The usual driver sequence, by the thread that holds the lock (§8.4, §8.5)."""
        assert self.resv.holder is not None
        self.reserve(self.resv.holder, 1)
        self.add_fence(self.resv.holder, pick, usage)

    @rule(tid=THREADS, usage=USAGES)
    def poll(self, tid: int, usage: DmaResvUsage) -> None:
        r = dma_resv_wait_timeout(self.s, tid, OBJ, usage, False, 0)
        assert not isinstance(r, Blocked)
        self.s, ret = r
        done = all(self.fences[f].signaled for f, u in self.resv.slots if u <= usage)
        assert ret == (1 if done else 0)  # §8.9, §10 #36
        assert dma_resv_test_signaled(self.s, OBJ, usage) == done

    # ---- invariants ------------------------------------------------------------------------

    @invariant()
    def fences_agree_with_the_reference(self) -> None:
        """§9.4, §9.6, §9.7; §10 #38, #39, #41."""
        assert len(self.s.fences) == len(self.fences)
        for f, (got, ref) in enumerate(zip(self.s.fences, self.fences, strict=True)):
            assert got.signaled == ref.signaled
            assert got.error == ref.error
            assert [cb.data for cb in got.cb_list] == ref.queued
            assert [cb.data for cb in got.cb_ran] == ref.ran
            assert (got.timestamp is not None) == got.signaled
            if f < len(self.was_signaled) and self.was_signaled[f]:
                assert got.signaled  # monotonic, §10 #38
        self.was_signaled = [fence.signaled for fence in self.s.fences]

    @invariant()
    def resv_agrees_with_the_reference(self) -> None:
        """§8.3-§8.5, §10 #30, #31, #33, #34."""
        resv = self.s.resvs[OBJ]
        holder = NO_TID if self.resv.holder is None else self.resv.holder
        assert resv.holder == holder
        assert list(resv.fences) == self.resv.slots
        assert resv.max_fences == self.resv.max_fences
        assert len(resv.fences) <= resv.max_fences

    @invariant()
    def iterators_filter_by_usage(self) -> None:
        """§8.7, §10 #35: locked iteration includes signalled slots, unlocked skips them."""
        for usage in DmaResvUsage:
            want = [(f, u) for f, u in self.resv.slots if u <= usage]
            assert list(dma_resv_iter(self.s, 0, OBJ, usage)) == want
            pending = [(f, u) for f, u in want if not self.fences[f].signaled]
            assert list(dma_resv_iter_unlocked(self.s, OBJ, usage)) == pending

    @invariant()
    def references_are_accounted_for(self) -> None:
        """§8.5, §9.10: one creator reference plus one per resv slot."""
        for f, fence in enumerate(self.s.fences):
            assert fence.refcount == 1 + sum(1 for g, _ in self.resv.slots if g == f)

    @invariant()
    def warnings_are_exactly_the_expected_ones(self) -> None:
        """§11: every misuse is recorded, and nothing else."""
        assert {(w.invariant, w.kind) for w in self.s.warnings} == self.expected


FenceResvMachine.TestCase.settings = settings(
    max_examples=80, stateful_step_count=30, deadline=None
)
test_fence_resv_matches_reference = FenceResvMachine.TestCase
