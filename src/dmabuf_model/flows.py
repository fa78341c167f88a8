"""flows: which mapping-lifetime flow an exporter and an importer end up in, found by running them.
The negotiation of drivers/dma-buf/dma-buf.c (core-semantics §6.3-§6.5) between two driver models.

No flag or capability bit says whether an exporter may move or take back the storage behind an
importer's mapping (core-semantics §6.2): the outcome follows from the callbacks both drivers
implement (drivers/dma-buf/dma-buf.c: dma_buf_dynamic_attach, dma_buf_pin,
dma_buf_map_attachment, dma_buf_invalidate_mappings) and from whether the calls succeed at run
time. So this module does not tabulate drivers.md §7: for one exporter x importer pair it builds
a fresh machine, runs the importer's own code paths and the exporter's own takeback, and reads
the answer off what happened.

DOC: how a cell is computed

1. The machine (``matrix_topology``): one host bridge, one switch, the exporting function
   ``exp0`` and the importing function ``imp0`` below two of its downstream ports (P2P
   MAP_BUS_ADDR, distance 4), and iommufd's misc device ``iommufd`` (not PCI). ``no_p2p=True``
   is the same machine with every P2P pair MAP_NOT_SUPPORTED (Topology.simple(no_p2p=True)).
   The system heap and udmabuf are not PCI functions; their importers still DMA from ``imp0``.
2. Import: the importer's userspace events (ImportRecipe: MAP_FILE, ibv_reg_dmabuf_mr, the GEM
   import, the import job) and its first device access (the DMA write, the NIC access that
   faults the MR in, the first command submission) are fired one by one and every thread is run
   to completion by a small deterministic scheduler (lowest runnable tid first; the same step
   functions the checker explores). The static importer's job is held right after its map, so
   the takeback finds the mapping in place. If an import thread ends with an error, the pair is
   **rejected**: the errno is the thread's, and the step is the first importer-visible kernel
   call that returned it (dma_buf_dynamic_attach/dma_buf_attach -> "attach", dma_buf_pin ->
   "pin", dma_buf_map_attachment -> "map", vfio_pci_dma_buf_iommufd_map -> "iommufd private
   map"); the exporter callback that refused first is kept as a detail.
3. Observe: does the importer's attachment hold a pin (the ghost counters of dma_buf_pin and of
   pin-on-map, core-semantics §5.5, §5.6)? Which memory and path did the device use?
4. Takeback: the exporter's own event (VFIO_DEVICE_RESET for vfio-pci: revoke, FLR, unrevoke,
   drivers.md §1.3-§1.4; ttm_bo_evict for amdgpu and xe, §4) runs to completion while the
   importer holds its mapping. invalidate_mappings of the importer's attachment is observed
   through a probe wrapped around the callback in the attachment's ops (the ops compare by
   name, so the state is unchanged). Static exporters have no takeback (``Exporter.takeback``
   None).
5. Access again: one more device access (or the held job resumes) shows whether the importer
   can use the buffer after the takeback (re-mapped after unrevoke, re-faulted after a move, or
   torn down for good).
6. Classify (``classify``, drivers.md §7 legend): invalidated and pinned -> pinned-revocable;
   invalidated, not pinned -> revocable (takeback REVOKE) or movable (MOVE); not invalidated and
   pinned -> pinned when the exporter has a pin op, pinned/static when dma_buf_pin was the
   core's no-op; neither -> static.

Oracle findings and kernel warnings met on the way are kept with the cell (they should be none
for mainline drivers), as is a scheduler that got stuck (a deadlock would show there).
"""

from __future__ import annotations

import contextvars
import re
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from dmabuf_model.check.model import Expectation
from dmabuf_model.drivers import EXPORTERS, IMPORTERS, exporter_class, importer_class
from dmabuf_model.drivers.base import Exporter, Importer, TakebackKind, platform
from dmabuf_model.drivers.compose import DmaBufSystem
from dmabuf_model.drivers.ttm import TtmExporter
from dmabuf_model.kernel.dma_buf import DmaBufAttachOps, InvalidateFn, live_sgts
from dmabuf_model.kernel.errno import errname
from dmabuf_model.kernel.state import AttachId, Blocked, KState, Tid, tuple_set
from dmabuf_model.platform.dma import TransferStatus
from dmabuf_model.platform.iommu import iommu_lookup
from dmabuf_model.platform.oracle import violations
from dmabuf_model.platform.state import PlatformState
from dmabuf_model.platform.topology import Topology
from dmabuf_model.system.model import EnvStep, SystemModel, explain_blocked, run_step
from dmabuf_model.system.properties import explain
from dmabuf_model.system.threads import Branches, Thread, recording, world

# --- identifiers and the legend ------------------------------------------------------------------

EXPORTER_KINDS: tuple[str, ...] = ("vfio-pci", "amdgpu", "xe", "system-heap", "udmabuf")
"""Matrix rows, in drivers.md §7 order."""
IMPORTER_KINDS: tuple[str, ...] = (
    "iommufd",
    "rdma-odp",
    "rdma-pinned",
    "rdma-pinned-revocable",
    "amdgpu",
    "xe",
    "static",
)
"""Matrix columns, in drivers.md §7 order, the static importer ("Extra rows") last."""

PINNED = "pinned"
PINNED_REVOCABLE = "pinned-revocable"
REVOCABLE = "revocable"
MOVABLE = "movable"
STATIC = "static"
PINNED_STATIC = "pinned/static"
REJECTED = "rejected"
FLOWS: tuple[str, ...] = (
    PINNED,
    PINNED_REVOCABLE,
    REVOCABLE,
    MOVABLE,
    STATIC,
    PINNED_STATIC,
    REJECTED,
)
"""Every value of FlowResult.flow (drivers.md §7 legend; "pinned/static" is §7's own cell)."""

STEP_OF_CALL: Mapping[str, str] = {
    "dma_buf_get": "get",
    "dma_buf_dynamic_attach": "attach",
    "dma_buf_attach": "attach",
    "dma_buf_pin": "pin",
    "dma_buf_map_attachment": "map",
    "dma_buf_map_attachment_unlocked": "map",
    "vfio_pci_dma_buf_iommufd_map": "iommufd private map",
    "ib_umem_dmabuf_map_pages": "map",
}
"""The importer-visible kernel calls a refusal is attributed to, and the step each names."""

EXPORTER_DEVICE = "exp0"
IMPORTER_DEVICE = "imp0"
IOMMUFD_DEVICE = "iommufd"


# --- recipes: which events of each driver make an import, an access, a takeback ------------------


@dataclass(frozen=True)
class ImportRecipe:
    """How an importer model imports and accesses a buffer, named by its own events.

    ``import_events`` are event titles (the part after "<driver name>: ") fired in order, the
    last one being the first device access; ``access_event`` is fired once more after the
    takeback. ``hold_at`` (static importer) is the step label where the import thread is held
    so that the takeback meets a live mapping; the held thread resuming is then the access
    after the takeback. ``options`` are the importer options the run needs (budgets); the
    importer attaches as ``attach_device`` and its DMA comes from ``dma_device``.
    """

    import_events: tuple[str, ...]
    access_event: str
    hold_at: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)
    attach_device: str = IMPORTER_DEVICE
    dma_device: str = IMPORTER_DEVICE


IMPORT_RECIPES: Mapping[str, ImportRecipe] = {
    "iommufd": ImportRecipe(
        ("IOMMU_IOAS_MAP_FILE", "device DMA write"),
        "device DMA write",
        options={"dma_device": IMPORTER_DEVICE, "dma_budget": 2, "unmap_budget": 0},
        attach_device=IOMMUFD_DEVICE,
    ),
    "rdma-odp": ImportRecipe(
        ("ibv_reg_dmabuf_mr", "NIC accesses the MR"),
        "NIC accesses the MR",
        options={"access_budget": 2, "dereg_budget": 0},
    ),
    "rdma-pinned": ImportRecipe(
        ("ibv_reg_dmabuf_mr", "NIC accesses the MR"),
        "NIC accesses the MR",
        options={"access_budget": 2, "dereg_budget": 0},
    ),
    "rdma-pinned-revocable": ImportRecipe(
        ("ibv_reg_dmabuf_mr", "NIC accesses the MR"),
        "NIC accesses the MR",
        options={"access_budget": 2, "dereg_budget": 0},
    ),
    "amdgpu": ImportRecipe(
        ("amdgpu_gem_prime_import", "amdgpu_cs_ioctl"),
        "amdgpu_cs_ioctl",
        options={"import_at_boot": False, "submit_budget": 2},
    ),
    "xe": ImportRecipe(
        ("xe_gem_prime_import", "xe_exec_ioctl"),
        "xe_exec_ioctl",
        options={"import_at_boot": False, "submit_budget": 2},
    ),
    "static": ImportRecipe(
        ("import job",),
        "import job",
        hold_at="device DMA through the sg table",
        options={"job_budget": 1},
    ),
}
"""One recipe per importer identifier of drivers.IMPORTERS."""

TAKEBACK_EVENTS: Mapping[str, str] = {
    "vfio-pci": "VFIO_DEVICE_RESET",
    "amdgpu": "ttm_bo_evict",
    "xe": "ttm_bo_evict",
}
"""The event of each exporter with a takeback: a temporary revoke (revoke, FLR, unrevoke,
drivers.md §1.3-§1.4) or a TTM eviction (§4). Exporters whose ``takeback`` is None have none."""

EXPORTER_SETUP: Mapping[str, tuple[str, Mapping[str, Any]]] = {
    "vfio-pci": (EXPORTER_DEVICE, {"flr_budget": 1}),
    "amdgpu": (EXPORTER_DEVICE, {"evict_budget": 1}),
    "xe": (EXPORTER_DEVICE, {"evict_budget": 1}),
    "system-heap": ("system-heap", {"close_budget": 0}),
    "udmabuf": ("udmabuf", {"close_budget": 0, "close_memfd_budget": 0}),
}
"""Each exporter's device and the options the run needs; everything else is mainline default."""


# --- results ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FlowDetail:
    """What the run observed, for the table view and for tests.

    ``refused_by`` is the first call that failed when it is not the core call of ``step`` (the
    exporter callback or the driver's own helper, e.g. "xe_dma_buf_attach"). ``pinned`` says the
    importer's attachment held a pin after the import, ``pin_on_map`` that it was the core's
    pin-on-map (static importer), ``pin_op`` that the exporter has a pin op (else dma_buf_pin is
    a no-op). ``placement``/``placement_after`` are a TTM exporter's BO placement after the
    import and after the takeback, ``bo_pins`` its pin count when the run ended. ``paths`` are
    the memory and address path the device's first access used ("exp0.bar0 via bus_addr").
    ``takeback`` is the exporter event run, with the thread's result ``takeback_ret`` when it
    was not 0, and ``invalidations`` how often the importer's invalidate_mappings ran meanwhile
    (``import_invalidations``: during the import, from the exporter's own moves).
    ``access_before``/``access_after``: the device's access reached memory before/after the
    takeback (None: not tried); ``after_error`` is why the access after failed. ``broken``
    (always-properties of the system that failed on the way, the oracle's no_dma_violation
    included), ``warnings`` (kernel WARN/BUG) and ``stuck`` (threads left blocked) should all
    be empty.
    """

    refused_by: str | None = None
    pinned: bool = False
    pin_on_map: bool = False
    pin_op: bool = False
    placement: str | None = None
    placement_after: str | None = None
    bo_pins: int = 0
    paths: tuple[str, ...] = ()
    takeback: str | None = None
    takeback_ret: str | None = None
    invalidations: int = 0
    import_invalidations: int = 0
    access_before: bool | None = None
    access_after: bool | None = None
    after_error: str | None = None
    broken: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    stuck: str | None = None

    @property
    def clean(self) -> bool:
        """No property broken, no kernel warning, no thread left blocked."""
        return not (self.broken or self.warnings or self.stuck)


@dataclass(frozen=True)
class FlowResult:
    """One matrix cell: the negotiated ``flow`` (one of FLOWS), and for "rejected" the errno
    name without sign ("EOPNOTSUPP") and the step that refused; ``no_p2p`` says which machine."""

    exporter: str
    importer: str
    flow: str
    errno: str | None = None
    step: str | None = None
    no_p2p: bool = False
    detail: FlowDetail = field(default_factory=FlowDetail)

    def to_json(self, *, detail: bool = False) -> dict[str, Any]:
        """The cell as the JSON object of ``dmabuf-model matrix --format json``: exporter,
        importer, flow, errno, step (and "detail" when asked for)."""
        out: dict[str, Any] = {
            "exporter": self.exporter,
            "importer": self.importer,
            "flow": self.flow,
            "errno": self.errno,
            "step": self.step,
        }
        if detail:
            d = self.detail
            out["detail"] = {
                "refused_by": d.refused_by,
                "pinned": d.pinned,
                "pin_on_map": d.pin_on_map,
                "pin_op": d.pin_op,
                "placement": d.placement,
                "placement_after": d.placement_after,
                "bo_pins": d.bo_pins,
                "paths": list(d.paths),
                "takeback": d.takeback,
                "takeback_ret": d.takeback_ret,
                "invalidations": d.invalidations,
                "import_invalidations": d.import_invalidations,
                "access_before": d.access_before,
                "access_after": d.access_after,
                "after_error": d.after_error,
                "broken": list(d.broken),
                "warnings": list(d.warnings),
                "stuck": d.stuck,
            }
        return out


def classify(
    *,
    rejected: bool,
    pinned: bool,
    invalidated: bool,
    takeback: TakebackKind | None,
    pin_op: bool,
) -> str:
    """classify - the drivers.md §7 legend as a function of what a run observed.

    Pure; no lock. Rejected wins; then invalidated and pinned is pinned-revocable
    (core-semantics §6.3 "Revoked" with a pin held), invalidated without a pin is revocable for
    an exporter that takes memory away and movable for one that moves it; a pin that was never
    invalidated is pinned when the exporter has a pin op and pinned/static when dma_buf_pin was
    the core's no-op (§5.5); nothing at all is static. core-semantics §6.3-§6.5, drivers.md §7.
    """
    if rejected:
        return REJECTED
    if invalidated:
        if pinned:
            return PINNED_REVOCABLE
        return MOVABLE if takeback is TakebackKind.MOVE else REVOCABLE
    if pinned:
        return PINNED if pin_op else PINNED_STATIC
    return STATIC


# --- the machine ---------------------------------------------------------------------------------


def matrix_topology(*, no_p2p: bool = False) -> Topology:
    """matrix_topology - exp0 and imp0 below one switch (P2P BUS_ADDR) plus iommufd's misc
    device; with ``no_p2p`` no pair of distinct functions can do P2P. Static data, no lock.
    drivers.md §6."""
    return Topology.simple(
        [EXPORTER_DEVICE, IMPORTER_DEVICE], non_pci=[IOMMUFD_DEVICE], no_p2p=no_p2p
    )


# --- a deterministic scheduler with a probe on invalidate_mappings -------------------------------

_PROBE: contextvars.ContextVar[list[AttachId] | None] = contextvars.ContextVar(
    "dmabuf_model_flows_probe", default=None
)


def _probed(fn: InvalidateFn) -> InvalidateFn:
    """The importer's invalidate_mappings, noting each call in the active probe list."""

    def invalidate_mappings(s: KState, tid: Tid, attach: AttachId) -> KState:
        calls = _PROBE.get()
        if calls is not None:
            calls.append(attach)
        return fn(s, tid, attach)

    return invalidate_mappings


@contextmanager
def _probe() -> Iterator[list[AttachId]]:
    calls: list[AttachId] = []
    token = _PROBE.set(calls)
    try:
        yield calls
    finally:
        _PROBE.reset(token)


_CALL = re.compile(r"^(?:\s*->\s*|\s*)([A-Za-z_][\w +]*?)\((.*)\) = (-E[A-Z0-9]+)$")


def failed_calls(lines: Sequence[str]) -> list[tuple[str, str]]:
    """failed_calls - (function, errno name) of every trace line ``fn(args) = -EXXX``.

    Reads the lines steps emit with emit_call (system/threads.py); no lock. drivers.md §8.
    """
    out = []
    for line in lines:
        m = _CALL.match(line.strip())
        if m:
            out.append((m.group(1).strip(), m.group(3).lstrip("-")))
    return out


class _Run:
    """One pair on one machine: the model, its current state and what the steps emitted.

    Every step is run by ``settle`` under a recorder; after each step the importer's new
    attachments get the invalidate_mappings probe, the thread's first failing step is noted
    (``error_pc``) and the model's always-properties are evaluated (``broken``).
    """

    MAX_STEPS = 5000

    def __init__(self, model: SystemModel, attach_device: str) -> None:
        self.model = model
        self.s = model.init_states()[0]
        self.attach_device = attach_device
        self.lines: list[str] = []
        self.invalidations: list[AttachId] = []
        self.held: set[Tid] = set()
        self.probed: set[AttachId] = set()
        self.error_pc: dict[Tid, str] = {}
        self.broken: list[str] = []
        self._always = [p for p in model.properties() if p.expectation is Expectation.ALWAYS]
        self._check(self.s)

    def fire(self, drv_name: str, title: str) -> Tid | None:
        """Fire the event "<drv_name>: <title>"; the tid of the thread it spawned, or None when
        the event does not exist or is not enabled (no budget left, guard false)."""
        name = f"{drv_name}: {title}"
        for i, ev in enumerate(self.model.events):
            if ev.name == name:
                tid = len(world(self.s).threads)
                nxt = self.model.next_state(self.s, EnvStep(i, name))
                if nxt is None:
                    return None
                self.s = nxt
                return tid
        return None

    def _attempt(self, t: Thread, branches: bool) -> KState | None:
        """Run one step of ``t``; the new state, or None when it would block. ``branches``
        allows an alternative other than the first (a timeout) to be taken."""
        with _probe() as calls, recording() as lines:
            out = run_step(self.s, t)
        if isinstance(out, Branches):
            alts = out.alternatives if branches else out.alternatives[:1]
            for _, thunk in alts:
                with _probe() as calls, recording() as lines:
                    r = thunk()
                if isinstance(r, KState):
                    out = r
                    break
            else:
                return None
        if isinstance(out, Blocked):
            return None
        self.lines.extend(lines)
        self.invalidations.extend(calls)
        after = world(out).threads[t.tid]
        if t.tid not in self.error_pc and _locals_failed(after):
            self.error_pc[t.tid] = t.pc
        out = self._probe_new_attachments(out)
        self._check(out)
        return out

    def _probe_new_attachments(self, s: KState) -> KState:
        """Wrap invalidate_mappings in the ops of the importer's attachments made so far.

        The ops record compares and hashes by name only, so the state stays equal."""
        atts = s.attachments
        for i in range(len(atts)):
            a = atts[i]
            if i in self.probed or a.dev != self.attach_device:
                continue
            self.probed.add(i)
            ops = a.importer_ops
            if ops is None or ops.invalidate_mappings is None:
                continue
            wrapped = DmaBufAttachOps(
                ops.name, ops.allow_peer2peer, invalidate_mappings=_probed(ops.invalidate_mappings)
            )
            atts = tuple_set(atts, i, replace(a, importer_ops=wrapped))
        return s if atts is s.attachments else s.evolve(attachments=atts)

    def _check(self, s: KState) -> None:
        for p in self._always:
            if p.condition(s):
                continue
            why = explain(p, s)
            if p.name == "no_dma_violation":
                why = [str(f) for f in violations(platform(s))]
            text = f"{p.name}: {'; '.join(why)}" if why else p.name
            if text not in self.broken:
                self.broken.append(text)

    def settle(self, hold: Callable[[Thread], bool] | None = None) -> None:
        """Run every thread to completion, lowest runnable tid first; threads for which
        ``hold`` is true are not run (and remembered as held)."""
        for _ in range(self.MAX_STEPS):
            progressed = False
            for branches in (False, True):
                for t in world(self.s).threads:
                    if t.done or t.tid in self.held:
                        continue
                    if hold is not None and hold(t):
                        self.held.add(t.tid)
                        continue
                    nxt = self._attempt(t, branches)
                    if nxt is not None:
                        self.s = nxt
                        progressed = True
                        break
                if progressed:
                    break
            if not progressed:
                return
        raise RuntimeError(f"{self.model.name}: no quiescence after {self.MAX_STEPS} steps")

    def release(self, tid: Tid) -> None:
        """Let a held thread run again."""
        self.held.discard(tid)

    def thread(self, tid: Tid) -> Thread:
        """The current record of thread ``tid``."""
        return world(self.s).threads[tid]

    def stuck(self) -> str | None:
        """Why unfinished threads (held ones aside) cannot run, or None."""
        if all(t.done or t.tid in self.held for t in world(self.s).threads):
            return None
        return explain_blocked(self.s) or "threads left unfinished"


def _locals_failed(t: Thread) -> bool:
    """The thread's ``ret`` or ``err`` local holds a negative errno."""
    return any(
        isinstance(v, int) and not isinstance(v, bool) and v < 0
        for k, v in t.locals
        if k in ("ret", "err")
    )


def _ret_failed(ret: Hashable) -> bool:
    """A thread's ``ret`` that means failure: a negative errno or an error name."""
    if isinstance(ret, bool) or ret is None:
        return False
    if isinstance(ret, int):
        return ret < 0
    return isinstance(ret, str) and ret not in ("", "0")


def refusal(lines: Sequence[str], ret: Hashable, pc: str | None) -> tuple[str, str, str | None]:
    """refusal - (errno name, step, refused_by) of a failed import.

    The step is that of the first importer-visible kernel call (STEP_OF_CALL) the import's
    lines show returning the errno; refused_by the first call that returned it, when another
    (the exporter's callback). Without such a line: the last STEP_OF_CALL name in the label of
    the step where the thread first failed (``pc``), else that label itself. Pure; no lock.
    drivers.md §7 ("rejected (errno): where and why it fails"), §8.
    """
    failed = failed_calls(lines)
    want = errname(ret).lstrip("-") if isinstance(ret, int) and ret < 0 else None
    core = [(fn, e) for fn, e in failed if fn in STEP_OF_CALL and (want is None or e == want)]
    if core:
        fn, err = core[0]
        first = next(((f, e) for f, e in failed if e == err), (fn, err))
        refused_by = first[0] if first[0] != fn else None
        return err, STEP_OF_CALL[fn], refused_by
    err = want if want is not None else str(ret)
    if pc:
        named = [STEP_OF_CALL[w] for w in re.findall(r"\w+", pc) if w in STEP_OF_CALL]
        return err, (named[-1] if named else pc), None
    if failed:
        fn, e = next(((f, e) for f, e in failed if want is None or e == want), failed[0])
        return e, fn, None
    return err, "import", None


def _importer_attachments(s: KState, buf: int, dev: str) -> tuple[AttachId, ...]:
    return tuple(
        i
        for i, a in enumerate(s.attachments)
        if a.dmabuf == buf and a.dev == dev and not a.detached
    )


def _transfers_since(ps: PlatformState, start: int, dev: str) -> list[int]:
    return [x for x in range(start, len(ps.transfers)) if ps.transfers[x].dev == dev]


def _access_ok(ps: PlatformState, xids: Sequence[int]) -> bool:
    return bool(xids) and all(ps.transfers[x].status is TransferStatus.DONE for x in xids)


def _paths(ps: PlatformState, topo: Topology, xids: Sequence[int]) -> tuple[str, ...]:
    """Where each transfer went and how: "<range> via bus_addr|iova"."""
    out: list[str] = []
    for x in xids:
        t = ps.transfers[x]
        if t.mapping >= 0:
            m = ps.mappings[t.mapping]
            text = f"{topo.ranges[m.range].name} via {m.path}"
        else:
            domain = ps.functions[topo.fn(t.dev)].domain
            pte = iommu_lookup(ps, domain, t.page) if domain >= 0 else None
            where = topo.ranges[pte.range].name if pte is not None else "?"
            text = f"{where} via iova (iommu_map)"
        if text not in out:
            out.append(text)
    return tuple(out)


def _bo_pins(exp: Exporter, s: KState) -> int:
    return exp.state(s).bo.pin_count if isinstance(exp, TtmExporter) else 0


def _placement(exp: Exporter, s: KState) -> str | None:
    if isinstance(exp, TtmExporter):
        return exp.state(s).bo.placement.name
    return None


# --- one cell ------------------------------------------------------------------------------------


def build_pair(
    exporter: str,
    importer: str,
    *,
    no_p2p: bool = False,
    exporter_options: Mapping[str, Any] | None = None,
    importer_options: Mapping[str, Any] | None = None,
) -> tuple[DmaBufSystem, Exporter, Importer]:
    """build_pair - the DmaBufSystem of one matrix cell on ``matrix_topology(no_p2p)``.

    The exporter gets EXPORTER_SETUP's device and options, the importer its recipe's; the given
    options override both (mainline defaults otherwise). Runs each exporter's setup (boot
    exports) with no lock held before it returns. KeyError names the known identifiers.
    drivers.md §7.
    """
    if exporter not in EXPORTERS:
        raise KeyError(f"unknown exporter {exporter!r}; known: {', '.join(EXPORTERS)}")
    if importer not in IMPORTERS:
        raise KeyError(f"unknown importer {importer!r}; known: {', '.join(IMPORTERS)}")
    recipe = IMPORT_RECIPES[importer]
    exp_dev, exp_opts = EXPORTER_SETUP[exporter]
    system = DmaBufSystem(matrix_topology(no_p2p=no_p2p))
    exp = system.add_exporter(
        exporter_class(exporter),
        device=exp_dev,
        name=exporter,
        **{**exp_opts, **(exporter_options or {})},
    )
    imp_name = importer if importer != exporter else f"{importer}-importer"
    imp = system.add_importer(
        importer_class(importer),
        device=recipe.attach_device,
        source=exp,
        name=imp_name,
        **{**recipe.options, **(importer_options or {})},
    )
    return system, exp, imp


def negotiate(
    exporter: str,
    importer: str,
    *,
    no_p2p: bool = False,
    exporter_options: Mapping[str, Any] | None = None,
    importer_options: Mapping[str, Any] | None = None,
) -> FlowResult:
    """negotiate - run one exporter x importer pair and classify the flow it reaches.

    Builds the pair (build_pair), imports, observes the pin, runs the exporter's takeback, then
    one more access, as the module DOC describes; no lock is held between phases (each thread
    takes its own, as the kernel's code path does). A rejected import gives flow "rejected"
    with the errno name and the step; otherwise the flow is ``classify``'s. RuntimeError when
    an event the recipe needs is not enabled (a recipe that no longer fits its driver).
    core-semantics §6.3-§6.5, drivers.md §7.
    """
    system, exp, imp = build_pair(
        exporter,
        importer,
        no_p2p=no_p2p,
        exporter_options=exporter_options,
        importer_options=importer_options,
    )
    recipe = IMPORT_RECIPES[importer]
    topo = system.topology
    run = _Run(system.model(name=f"{exporter} x {importer}"), recipe.attach_device)
    pin_op = exp.dma_buf_ops().pin is not None

    # 2. import, up to and including the first access (or the hold)
    last_tid: Tid = -1
    start_x = len(platform(run.s).transfers)
    for title in recipe.import_events:
        tid = _fire(run, imp.name, title)

        def at_hold(t: Thread, held: Tid = tid) -> bool:
            return bool(recipe.hold_at) and t.tid == held and t.pc == recipe.hold_at

        mark = len(run.lines)
        run.settle(at_hold)
        t = run.thread(tid)
        ret = t.local("ret")
        if t.done and _ret_failed(ret):
            err, step, refused_by = refusal(run.lines[mark:], ret, run.error_pc.get(tid))
            detail = FlowDetail(
                refused_by=refused_by,
                pin_op=pin_op,
                placement=_placement(exp, run.s),
                bo_pins=_bo_pins(exp, run.s),
                import_invalidations=len(run.invalidations),
                **_findings(run),
            )
            return FlowResult(exporter, importer, REJECTED, err, step, no_p2p, detail)
        last_tid = tid
    ps = platform(run.s)
    first = _transfers_since(ps, start_x, recipe.dma_device)
    import_invalidations = len(run.invalidations)

    # 3. observe
    buf = exp.buffers(run.s)[0]
    attachments = _importer_attachments(run.s, buf, recipe.attach_device)
    atts = [run.s.attachments[a] for a in attachments]
    pin_on_map = any(a.map_pins > 0 for a in atts)
    pinned = pin_on_map or any(a.pins > 0 for a in atts)
    if recipe.hold_at:
        held_sgts = [g for a in attachments for g in live_sgts(run.s, a)]
        paths = _sgt_paths(ps, topo, run.s, held_sgts)
    else:
        paths = _paths(ps, topo, first)
    placement = _placement(exp, run.s)

    # 4. takeback
    takeback: str | None = None
    takeback_ret: str | None = None
    invalidated = 0
    if exp.takeback is not None:
        takeback = TAKEBACK_EVENTS.get(exporter)
        if takeback is None:
            raise KeyError(f"exporter {exporter!r} has a takeback but no TAKEBACK_EVENTS entry")
        mark_inv = len(run.invalidations)
        tid = _fire(run, exp.name, takeback)
        run.settle()
        ret = run.thread(tid).local("ret")
        if isinstance(ret, int) and not isinstance(ret, bool) and ret != 0:
            takeback_ret = errname(ret)
        elif ret not in (0, None):
            takeback_ret = str(ret)
        invalidated = sum(1 for a in run.invalidations[mark_inv:] if a in attachments)
    placement_after = _placement(exp, run.s) if takeback is not None else None

    # 5. access again
    start_x = len(platform(run.s).transfers)
    if recipe.hold_at:
        for held in sorted(run.held):
            run.release(held)
        again_tid: Tid | None = last_tid
    else:
        again_tid = run.fire(imp.name, recipe.access_event)
    run.settle()
    ps = platform(run.s)
    again = _transfers_since(ps, start_x, recipe.dma_device)
    ok = _access_ok(ps, again)
    after_error = None
    if again_tid is not None and not ok:
        ret = run.thread(again_tid).local("ret")
        if _ret_failed(ret):
            after_error = errname(ret) if isinstance(ret, int) else str(ret)
        elif again:
            after_error = str(ps.transfers[again[-1]].status)

    detail = FlowDetail(
        pinned=pinned,
        pin_on_map=pin_on_map,
        pin_op=pin_op,
        placement=placement,
        placement_after=placement_after,
        bo_pins=_bo_pins(exp, run.s),
        paths=paths,
        takeback=takeback,
        takeback_ret=takeback_ret,
        invalidations=invalidated,
        import_invalidations=import_invalidations,
        access_before=None if recipe.hold_at else _access_ok(platform(run.s), first),
        access_after=ok if again_tid is not None else None,
        after_error=after_error,
        **_findings(run),
    )
    flow = classify(
        rejected=False,
        pinned=pinned,
        invalidated=invalidated > 0,
        takeback=exp.takeback,
        pin_op=pin_op,
    )
    return FlowResult(exporter, importer, flow, None, None, no_p2p, detail)


def _fire(run: _Run, drv_name: str, title: str) -> Tid:
    tid = run.fire(drv_name, title)
    if tid is None:
        raise RuntimeError(
            f"{run.model.name}: event {drv_name}: {title!r} does not exist or is not enabled; "
            "the recipe in dmabuf_model.flows no longer fits the driver"
        )
    return tid


def _sgt_paths(
    ps: PlatformState, topo: Topology, s: KState, sgts: Sequence[int]
) -> tuple[str, ...]:
    out: list[str] = []
    for g in sgts:
        for e in s.sg_tables[g].entries:
            if isinstance(e, int) and not isinstance(e, bool):
                m = ps.mappings[e]
                text = f"{topo.ranges[m.range].name} via {m.path}"
                if text not in out:
                    out.append(text)
    return tuple(out)


def _findings(run: _Run) -> dict[str, Any]:
    return {
        "broken": tuple(run.broken),
        "warnings": tuple(str(w) for w in run.s.warnings),
        "stuck": run.stuck(),
    }


# --- the whole matrix ----------------------------------------------------------------------------


def compute_matrix(
    *,
    no_p2p: bool = False,
    exporters: Sequence[str] = EXPORTER_KINDS,
    importers: Sequence[str] = IMPORTER_KINDS,
    exporter_options: Mapping[str, Mapping[str, Any]] | None = None,
    importer_options: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[FlowResult]:
    """compute_matrix - negotiate every exporter x importer pair, rows first (drivers.md §7).

    ``exporter_options``/``importer_options`` map an identifier to options for that driver
    (e.g. {"xe": {"vram_only": True}}). Each cell runs on its own fresh machine; no lock is
    shared between cells. Errnos appear by name in the cells (drivers.md §8).
    """
    exporter_options = exporter_options or {}
    importer_options = importer_options or {}
    return [
        negotiate(
            e,
            i,
            no_p2p=no_p2p,
            exporter_options=exporter_options.get(e),
            importer_options=importer_options.get(i),
        )
        for e in exporters
        for i in importers
    ]


__all__ = [
    "EXPORTER_KINDS",
    "FLOWS",
    "IMPORTER_KINDS",
    "IMPORT_RECIPES",
    "MOVABLE",
    "PINNED",
    "PINNED_REVOCABLE",
    "PINNED_STATIC",
    "REJECTED",
    "REVOCABLE",
    "STATIC",
    "STEP_OF_CALL",
    "TAKEBACK_EVENTS",
    "FlowDetail",
    "FlowResult",
    "ImportRecipe",
    "build_pair",
    "classify",
    "compute_matrix",
    "failed_calls",
    "matrix_topology",
    "negotiate",
    "refusal",
]
