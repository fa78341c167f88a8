"""Random attach / pin / map / unmap / invalidate / fence / lock sequences by three threads
against the toy exporter, checked after every step against the core-semantics §10 invariants
and a small reference model (style-guide B9: Hypothesis tests the model itself).

The threads follow the locking convention (§4): they call the resv-held functions only while
holding the resv, the others only without it, and a Blocked call is simply not taken (the step
is not enabled). Importers honour their duties (unmap and unpin before detach). So no kernel
warning may appear, every invariant of dma_buf_invariant_violations except #24 (an importer
choice the kernel accepts, checked separately) must hold, and the ghost counters must agree with
the reference.
"""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from test_dma_buf_toys import NO_CALLBACK, REVOCABLE, ToyExt, log, new_fence, toy_ops

from dmabuf_model.kernel.dma_buf import (
    DmaBufAttachOps,
    DmaDataDirection,
    dma_buf_attach_revocable,
    dma_buf_detach,
    dma_buf_dynamic_attach,
    dma_buf_export,
    dma_buf_invalidate_mappings,
    dma_buf_map_attachment,
    dma_buf_pin,
    dma_buf_pin_on_map,
    dma_buf_unmap_attachment,
    dma_buf_unpin,
    live_mappings,
    live_sgts,
    unsafe_unpinned_mapping,
)
from dmabuf_model.kernel.dma_fence import dma_fence_is_signaled, dma_fence_signal
from dmabuf_model.kernel.dma_resv import (
    DmaResvUsage,
    dma_resv_add_fence,
    dma_resv_lock,
    dma_resv_reserve_fences,
    dma_resv_test_signaled,
    dma_resv_unlock,
)
from dmabuf_model.kernel.state import NO_TID, Blocked, KState

THREADS = st.integers(min_value=0, max_value=2)
PICK = st.integers(min_value=0, max_value=1000)
IMPORTERS: dict[str, DmaBufAttachOps | None] = {
    "static": None,
    "callback": REVOCABLE,
    "nocallback": NO_CALLBACK,
}


class DmaBufMachine(RuleBasedStateMachine):
    """Three threads share one buffer of a pinnable or static toy exporter."""

    s: KState
    buf: int

    def __init__(self) -> None:
        super().__init__()
        self.ref_pins: dict[int, int] = {}
        self.ref_maps: dict[int, int] = {}
        self.ref_list: list[int] = []  # attachment list, newest first

    @initialize(exporter_pin=st.booleans())
    def export(self, exporter_pin: bool) -> None:
        s = KState(ext=ToyExt())
        s, buf = dma_buf_export(s, 0, ops=toy_ops(pin=exporter_pin), size=8192, priv="toy")
        assert buf == 0
        self.s, self.buf = s, buf

    # -- helpers -------------------------------------------------------------------------------

    @property
    def resv(self) -> int:
        return self.s.bufs[self.buf].resv

    def holder(self) -> int:
        return self.s.resvs[self.resv].holder

    def locked(self) -> bool:
        return self.holder() != NO_TID

    def _pick(self, items: list[int], n: int) -> int | None:
        return items[n % len(items)] if items else None

    # -- rules: the resv-held functions are called by the thread holding the resv, the others
    # -- only while nobody holds it (they would block or self-deadlock otherwise, §4) ---------

    @precondition(lambda self: not self.locked())
    @rule(tid=THREADS)
    def lock(self, tid: int) -> None:
        r = dma_resv_lock(self.s, tid, self.resv, None)
        assert not isinstance(r, Blocked)
        self.s = r[0]

    @precondition(lambda self: self.locked())
    @rule()
    def unlock(self) -> None:
        self.s = dma_resv_unlock(self.s, self.holder(), self.resv)

    @precondition(lambda self: not self.locked() and len(self.s.attachments) < 5)
    @rule(tid=THREADS, kind=st.sampled_from(sorted(IMPORTERS)))
    def attach(self, tid: int, kind: str) -> None:
        r = dma_buf_dynamic_attach(self.s, tid, self.buf, f"dev-{kind}", IMPORTERS[kind])
        assert not isinstance(r, Blocked)
        self.s, a = r
        assert a >= 0
        self.ref_pins[a] = 0
        self.ref_maps[a] = 0
        self.ref_list.insert(0, a)
        assert self.s.bufs[self.buf].attachments == tuple(self.ref_list)  # §5.3 step 5

    @precondition(lambda self: not self.locked() and self.ref_list)
    @rule(tid=THREADS, n=PICK)
    def detach(self, tid: int, n: int) -> None:
        ready = [a for a in self.ref_list if self.ref_pins[a] == 0 and self.ref_maps[a] == 0]
        a = self._pick(ready, n)
        if a is None:
            return
        r = dma_buf_detach(self.s, tid, self.buf, a)
        assert not isinstance(r, Blocked)
        self.s = r
        self.ref_list.remove(a)
        assert log(self.s)[-1][:2] == ("detach", a)

    @precondition(lambda self: self.locked() and self.ref_list)
    @rule(n=PICK)
    def pin(self, n: int) -> None:
        dyn = [a for a in self.ref_list if self.s.attachments[a].importer_ops is not None]
        a = self._pick(dyn, n)
        if a is None:
            return
        self.s, ret = dma_buf_pin(self.s, self.holder(), a)
        assert ret == 0
        self.ref_pins[a] += 1

    @precondition(lambda self: self.locked() and self.ref_list)
    @rule(n=PICK)
    def unpin(self, n: int) -> None:
        a = self._pick([a for a in self.ref_list if self.ref_pins[a] > 0], n)
        if a is None:
            return
        self.s = dma_buf_unpin(self.s, self.holder(), a)
        self.ref_pins[a] -= 1

    @precondition(lambda self: self.locked() and self.ref_list)
    @rule(n=PICK, write=st.booleans())
    def map(self, n: int, write: bool) -> None:
        a = self._pick(self.ref_list, n)
        assert a is not None
        d = DmaDataDirection.TO_DEVICE if write else DmaDataDirection.FROM_DEVICE
        r = dma_buf_map_attachment(self.s, self.holder(), a, d)
        if isinstance(r, Blocked):
            # §10 #17: only static attachments wait, and only on KERNEL fences
            assert self.s.attachments[a].importer_ops is None
            assert not dma_resv_test_signaled(self.s, self.resv, DmaResvUsage.KERNEL)
            return
        self.s, sgt = r
        assert sgt >= 0
        if self.s.attachments[a].importer_ops is None:  # §10 #17
            assert dma_resv_test_signaled(self.s, self.resv, DmaResvUsage.KERNEL)
        self.ref_maps[a] += 1

    @precondition(lambda self: self.locked() and any(self.ref_maps.values()))
    @rule(n=PICK)
    def unmap(self, n: int) -> None:
        live = [t for a in self.ref_list for t in live_sgts(self.s, a)]
        sgt = self._pick(live, n)
        assert sgt is not None
        t = self.s.sg_tables[sgt]
        self.s = dma_buf_unmap_attachment(self.s, self.holder(), t.attach, sgt, t.dir)
        self.ref_maps[t.attach] -= 1

    @precondition(lambda self: self.locked())
    @rule()
    def invalidate(self) -> None:
        before = len(log(self.s))
        self.s = dma_buf_invalidate_mappings(self.s, self.holder(), self.buf)
        called = [e[1] for e in log(self.s)[before:] if e[0] == "invalidate_mappings"]
        expected = [a for a in self.ref_list if dma_buf_attach_revocable(self.s, a)]
        assert called == expected  # §5.8 order, §10 #15

    @precondition(lambda self: self.locked() and len(self.s.fences) < 6)
    @rule(usage=st.sampled_from(list(DmaResvUsage)))
    def add_fence(self, usage: DmaResvUsage) -> None:
        tid = self.holder()
        s, f = new_fence(self.s)
        s, ret = dma_resv_reserve_fences(s, tid, self.resv, 1)
        assert ret == 0
        self.s = dma_resv_add_fence(s, tid, self.resv, f, usage)

    @precondition(
        lambda self: any(not dma_fence_is_signaled(self.s, f) for f in range(len(self.s.fences)))
    )
    @rule(n=PICK)
    def signal(self, n: int) -> None:
        pending = [f for f in range(len(self.s.fences)) if not dma_fence_is_signaled(self.s, f)]
        f = self._pick(pending, n)
        assert f is not None
        self.s = dma_fence_signal(self.s, f)

    # -- invariants ----------------------------------------------------------------------------

    @invariant()
    def no_kernel_warning(self) -> None:
        """§11: correct callers never trigger a WARN or BUG."""
        assert self.s.warnings == ()

    @invariant()
    def core_invariants_hold(self) -> None:
        """§10 #1-#25 as dma_buf_invariant_violations checks them (#24 is checked below)."""
        from dmabuf_model.kernel.dma_buf import dma_buf_invariant_violations

        bad = [v for v in dma_buf_invariant_violations(self.s) if not v.startswith("#24")]
        assert bad == []

    @invariant()
    def ghost_counters_match_the_reference(self) -> None:
        """§10 #16, #19: pins and pin-on-map counts equal what the calls did."""
        for a in self.ref_list:
            att = self.s.attachments[a]
            assert att.pins == self.ref_pins[a]
            assert live_mappings(self.s, a) == self.ref_maps[a]
            assert att.map_pins == (self.ref_maps[a] if dma_buf_pin_on_map(self.s, a) else 0)

    @invariant()
    def attachment_predicates_are_fixed(self) -> None:
        """§10 #13, #14: peer2peer and revocability are pure functions of the importer ops."""
        for a in self.ref_list:
            ops = self.s.attachments[a].importer_ops
            assert self.s.attachments[a].peer2peer == (ops is not None and ops.allow_peer2peer)
            assert dma_buf_attach_revocable(self.s, a) == (
                ops is not None and ops.invalidate_mappings is not None
            )

    @invariant()
    def unsafe_unpinned_mapping_matches_the_reference(self) -> None:
        """§10 #24: dynamic, no callback, no pin, at least one mapping."""
        expected = [
            a
            for a in sorted(self.ref_list)
            if self.s.attachments[a].importer_ops is NO_CALLBACK
            and self.ref_pins[a] == 0
            and self.ref_maps[a] > 0
        ]
        assert unsafe_unpinned_mapping(self.s) == expected

    @invariant()
    def exporter_callbacks_ran_under_the_right_lock(self) -> None:
        """§2, §10 #8, #9, #10: locked ops held the resv, unlocked ops did not."""
        for name, _, held in log(self.s):
            if name in ("pin", "unpin", "map_dma_buf", "unmap_dma_buf", "invalidate_mappings"):
                assert held, name
            if name in ("attach", "detach", "release"):
                assert not held, name

    @invariant()
    def the_resv_is_free_or_held_by_one_of_the_threads(self) -> None:
        """§8.3: one holder at a time."""
        assert self.holder() in (NO_TID, 0, 1, 2)


DmaBufMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
TestDmaBufStateful = DmaBufMachine.TestCase
