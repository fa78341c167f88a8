"""static_importer: a display or media driver importing with dma_buf_attach (no importer ops).

Models the importer side of drivers/dma-buf/dma-buf.c for static attachments, the "static
importer" row of drivers.md §7: the driver attaches without dma_buf_attach_ops, so the core pins
the storage around each mapping when the exporter can pin and waits for the KERNEL fences
before handing the table over (core-semantics §5.6, §5.18); the exporter never invalidates it
(§10 #15). VFIO refuses it at attach (-EOPNOTSUPP, peer2peer is false).

DOC: the job. One "job" event (budget ``job_budget``) runs the whole life of one import, as a
V4L2 or display driver does around one frame: dma_buf_get on the exporter's fd,
dma_buf_attach, dma_resv_lock + dma_buf_map_attachment (pin-on-map and exporter map in one
step, then the core's interruptible, unbounded KERNEL fence wait as the next step, where the
kernel sleeps with the resv held), a device DMA through the sg table, a wait for that DMA to
finish, dma_buf_unmap_attachment_unlocked, dma_buf_detach and dma_buf_put (core-semantics
§6.4-§6.5: unmap -> detach -> put). A failing map is undone by detach and put; the job's
``ret`` local holds the errno.

The device's DMA goes through the shared helpers of drivers/device_dma.py.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any, ClassVar

from dmabuf_model.drivers.base import (
    DriverEnv,
    Importer,
    Option,
    dma_resv_lock_traced,
    dma_resv_unlock_traced,
)
from dmabuf_model.drivers.device_dma import device_dma_submit, sgt_mappings, transfer_pending
from dmabuf_model.drivers.dma_buf_import import dma_buf_detach_put, dma_buf_get_for
from dmabuf_model.kernel.dma_buf import (
    DmaDataDirection,
    dma_buf_attach,
    dma_buf_map_attachment_start,
    dma_buf_map_attachment_wait,
    dma_buf_put,
    dma_buf_unmap_attachment_unlocked,
)
from dmabuf_model.kernel.dma_resv import dma_resv_unlock
from dmabuf_model.kernel.state import AttachId, Blocked, BufId, KState, SgtId, record
from dmabuf_model.system.model import EnvEvent
from dmabuf_model.system.threads import (
    Thread,
    emit,
    emit_call,
    finish,
    goto,
    program,
    world,
)

BIDI = DmaDataDirection.BIDIRECTIONAL


# ---------------------------------------------------------------------------------------------
# The static importer.


@record
class StaticImporterState:
    """The static importer's record: its one import and what its device was given.

    ``buf`` is the reference taken by dma_buf_get, ``attach`` the static attachment, ``sgt``
    the live mapping and ``xfer`` the device's last transfer (platform transfer id). ``jobs``
    counts finished jobs and ``errors`` failed ones (ghost state for properties and tests).
    """

    buf: BufId | None = None
    attach: AttachId | None = None
    sgt: SgtId | None = None
    xfer: int | None = None
    jobs: int = 0
    errors: int = 0


class StaticImporter(Importer):
    """A display/media-style importer: dma_buf_attach with no ops (drivers.md §7, extra row).

    ``device`` is the importing PCI function (attach->dev and the DMA master). Options:
    ``job_budget`` (how many jobs run), ``buffer`` (which of the source's buffers), ``dma_write``
    (the device writes rather than reads), ``signal_during_map_wait`` (a signal interrupts the
    core's KERNEL fence wait: -ERESTARTSYS, core-semantics §5.6 step 3) and the broken variant
    ``wait_dma_before_unmap=False`` (unmap while the device's DMA is still in flight).
    """

    kind: ClassVar[str] = "static"
    OPTIONS: ClassVar[dict[str, Option]] = {
        "job_budget": Option(1, "how many import jobs the job event may start"),
        "buffer": Option(0, "index into the source exporter's buffers()"),
        "dma_write": Option(True, "the device writes to the buffer (else it reads)"),
        "signal_during_map_wait": Option(
            False, "a signal interrupts the core's KERNEL fence wait (-ERESTARTSYS, §5.6)"
        ),
        "wait_dma_before_unmap": Option(
            True, "mainline driver: wait for the device DMA before unmapping; False is a bug"
        ),
    }

    def __init__(
        self, slot: int, env: DriverEnv, *, device: str, name: str = "", **options: Any
    ) -> None:
        super().__init__(slot, env, device=device, name=name, **options)
        prefix = f"{self.name}:{self.slot}"
        self.job_program = program(
            f"{prefix}: import job",
            ("dma_buf_get, dma_buf_attach", self._step_attach),
            ("dma_resv_lock, dma_buf_map_attachment", self._step_map),
            ("dma_buf_map_attachment: wait KERNEL fences", self._step_map_wait),
            ("device DMA through the sg table", self._step_dma),
            ("wait for the device DMA", self._step_wait_dma),
            ("dma_buf_unmap_attachment_unlocked", self._step_unmap),
            ("dma_buf_detach, dma_buf_put", self._step_detach),
        )

    # -- record ---------------------------------------------------------------------------------

    def init_state(self) -> Hashable:
        """No import yet."""
        return StaticImporterState()

    def state(self, s: KState) -> StaticImporterState:
        """This importer's record in ``s``."""
        return self.state_as(s, StaticImporterState)

    def _buffer(self, s: KState) -> BufId | None:
        if self.source is None:
            return None
        bufs = self.source.buffers(s)
        index = int(self.options["buffer"])
        return bufs[index] if 0 <= index < len(bufs) else None

    # -- the job program -------------------------------------------------------------------------

    def _step_attach(self, s: KState, t: Thread) -> KState | Blocked:
        """dma_buf_get on the exporter's fd, then dma_buf_attach (static, core-semantics §5.3)."""
        s, buf = dma_buf_get_for(s, t.tid, self._buffer(s))
        if buf < 0:
            return finish(self.update(s, errors=self.state(s).errors + 1), t, ret=buf)
        r = dma_buf_attach(s, t.tid, buf, self.device)
        if isinstance(r, Blocked):
            return r
        s, attach = r
        emit_call("dma_buf_attach", f"buf{buf}, {self.device}", attach)
        if attach < 0:
            s = dma_buf_put(s, t.tid, buf)
            emit_call("dma_buf_put", f"buf{buf}")
            return finish(self.update(s, errors=self.state(s).errors + 1), t, ret=attach)
        s = self.update(s, buf=buf, attach=attach)
        return goto(s, t, "dma_resv_lock, dma_buf_map_attachment")

    def _step_map(self, s: KState, t: Thread) -> KState | Blocked:
        """dma_resv_lock (NULL ctx), then pin-on-map and the exporter's map_dma_buf (§5.6 1-2)."""
        st = self.state(s)
        assert st.buf is not None and st.attach is not None
        resv = s.bufs[st.buf].resv
        r = dma_resv_lock_traced(s, t.tid, resv)
        if isinstance(r, Blocked):
            return r
        s = r
        s, sgt = dma_buf_map_attachment_start(s, t.tid, st.attach, BIDI)
        if sgt < 0:
            emit_call("dma_buf_map_attachment", f"attach{st.attach}, BIDIRECTIONAL", sgt)
            s = dma_resv_unlock_traced(s, t.tid, resv)
            return goto(s, t, "dma_buf_detach, dma_buf_put", ret=sgt)
        emit(f"dma_buf_map_attachment: sgt{sgt} mapped; the core waits for KERNEL fences")
        return goto(self.update(s, sgt=sgt), t, "dma_buf_map_attachment: wait KERNEL fences")

    def _step_map_wait(self, s: KState, t: Thread) -> KState | Blocked:
        """The core's KERNEL fence wait for a static importer (§5.6 step 3), then unlock."""
        st = self.state(s)
        assert st.buf is not None and st.sgt is not None
        resv = s.bufs[st.buf].resv
        r = dma_buf_map_attachment_wait(
            s, t.tid, st.sgt, signal_pending=bool(self.options["signal_during_map_wait"])
        )
        if isinstance(r, Blocked):
            return r
        s, sgt = r
        s = dma_resv_unlock(s, t.tid, resv)
        emit_call("dma_buf_map_attachment", f"attach{st.attach}, BIDIRECTIONAL", _sgt(sgt))
        emit_call("dma_resv_unlock", f"resv{resv}")
        if sgt < 0:
            s = self.update(s, sgt=None)
            return goto(s, t, "dma_buf_detach, dma_buf_put", ret=sgt)
        return goto(s, t, "device DMA through the sg table")

    def _step_dma(self, s: KState, t: Thread) -> KState:
        """The device accesses the buffer through the first address of its sg table."""
        st = self.state(s)
        assert st.sgt is not None
        mappings = sgt_mappings(s, st.sgt)
        if not mappings:
            emit(f"sgt{st.sgt} has no device address: no DMA")
            return goto(s, t, "dma_buf_unmap_attachment_unlocked")
        write = bool(self.options["dma_write"])
        s, xid = device_dma_submit(s, self.topology, self.device, mappings[0], write=write)
        if xid < 0:
            return goto(s, t, "dma_buf_unmap_attachment_unlocked")
        s = self.update(s, xfer=xid)
        if not self.options["wait_dma_before_unmap"]:
            return goto(s, t, "dma_buf_unmap_attachment_unlocked")
        return goto(s, t, "wait for the device DMA")

    def _step_wait_dma(self, s: KState, t: Thread) -> KState | Blocked:
        """The driver waits for its device's DMA to finish before giving the mapping back."""
        xid = self.state(s).xfer
        if xid is not None and transfer_pending(s, xid):
            return Blocked(on=f"{self.device} transfer{xid}")
        emit(f"{self.device}: DMA done")
        return goto(s, t, "dma_buf_unmap_attachment_unlocked")

    def _step_unmap(self, s: KState, t: Thread) -> KState | Blocked:
        """dma_buf_unmap_attachment_unlocked: takes the resv, unmaps, unpins if pinned on map."""
        st = self.state(s)
        assert st.attach is not None and st.sgt is not None
        r = dma_buf_unmap_attachment_unlocked(s, t.tid, st.attach, st.sgt, BIDI)
        if isinstance(r, Blocked):
            return r
        emit_call("dma_buf_unmap_attachment_unlocked", f"attach{st.attach}, sgt{st.sgt}")
        return goto(self.update(r, sgt=None), t, "dma_buf_detach, dma_buf_put", ret=0)

    def _step_detach(self, s: KState, t: Thread) -> KState | Blocked:
        """dma_buf_detach (takes the resv) then dma_buf_put (core-semantics §5.4, §5.2)."""
        st = self.state(s)
        assert st.buf is not None and st.attach is not None
        r = dma_buf_detach_put(s, t.tid, st.buf, st.attach)
        if isinstance(r, Blocked):
            return r
        s = r
        ret = t.local("ret", 0)
        assert isinstance(ret, int)
        st = self.state(s)
        s = self.update(
            s,
            buf=None,
            attach=None,
            sgt=None,
            jobs=st.jobs + 1,
            errors=st.errors + (1 if ret < 0 else 0),
        )
        return finish(s, t, ret=ret)

    # -- events ----------------------------------------------------------------------------------

    def _idle(self, s: KState) -> bool:
        """No job of this importer is running (one import at a time)."""
        return not any(th.program == self.job_program and not th.done for th in world(s).threads)

    def events(self) -> list[EnvEvent]:
        """The import job (budget ``job_budget``), one at a time."""
        budget = int(self.options["job_budget"])
        if budget <= 0:
            return []
        return [
            EnvEvent(
                f"{self.name}: import job",
                self.job_program,
                budget=budget,
                thread_name=f"{self.name} job",
                guard=self._idle,
            )
        ]


def _sgt(ret: int) -> str | int:
    return f"sgt{ret}" if ret >= 0 else ret


__all__ = [
    "StaticImporter",
    "StaticImporterState",
]
