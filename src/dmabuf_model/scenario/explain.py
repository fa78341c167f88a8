"""explain: how each importer's attachment reaches its flow, before any checking.
The negotiation of drivers/dma-buf/dma-buf.c (core-semantics §6.4) run for one scenario.

For every importer of a scenario, on a fresh copy of the scenario's system, the importer's own
import events (flows.IMPORT_RECIPES: MAP_FILE, ibv_reg_dmabuf_mr, the GEM import, the first
access) are fired one at a time and their threads run alone with the same step functions the
checker uses (system.model.run_step, as run_thread does). Then the attachment is read:
dynamic or static (importer_ops), peer2peer, revocable (dma_buf_attach_revocable), pinned (the
ghost counters of dma_buf_pin and pin-on-map), and the flow it reaches by §6.4's steps:

1. dma_buf_dynamic_attach; without invalidate_mappings the buffer must stay pinned (pinned);
2. dma_buf_pin under the resv;
3. no pin: the movable flow (an exporter that never invalidates makes it static);
4. a pin with invalidate_mappings: the revoked flow (pinned-revocable); without it: pinned.

A static attachment (dma_buf_attach) is pinned around each mapping by the core when the
exporter has pin/unpin (§5.6), static otherwise. An import that fails is rejected, with the
errno and the importer-visible step that returned it (flows.refusal).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dmabuf_model.drivers.base import Exporter, Importer, TakebackKind
from dmabuf_model.errors import ScenarioError
from dmabuf_model.flows import IMPORT_RECIPES, STEP_OF_CALL, failed_calls, refusal
from dmabuf_model.kernel.dma_buf import dma_buf_attach_revocable, live_sgts
from dmabuf_model.kernel.state import Blocked, KState, Tid
from dmabuf_model.scenario.build import TEARDOWN_EVENTS, BuiltScenario, build
from dmabuf_model.scenario.schema import BUDGET_SUFFIX, MAX_EVENT_BUDGET
from dmabuf_model.system.model import run_step
from dmabuf_model.system.threads import Branches, recording, spawn, world

PINNED = "pinned"
REVOKED = "revoked (pinned-revocable)"
MOVABLE = "movable"
STATIC = "static"
REJECTED = "rejected"
NONE = "no attachment"


@dataclass(frozen=True)
class AttachmentFlow:
    """What one importer's attach, pin and map path produced, and the flow it reaches.

    ``attach`` is None when no attachment was made (rejected, or no import event). ``errno``
    (``EOPNOTSUPP``) and ``step`` (the kernel call, ``dma_buf_dynamic_attach``) are set for a
    rejected import; ``lines`` are the calls the import's threads made, as traces print them.
    """

    importer: str
    driver: str
    exporter: str
    attach: int | None
    buf: int | None
    dynamic: bool
    allow_peer2peer: bool
    peer2peer: bool
    revocable: bool
    pinned: bool
    mapped: bool
    flow: str
    why: str
    errno: str | None = None
    step: str | None = None
    refused_by: str | None = None
    lines: tuple[str, ...] = ()
    note: str = ""


def _run_alone(s: KState, tid: Tid) -> tuple[KState, Blocked | None]:
    """Step thread ``tid`` until it is done (run_thread's loop), or until it would block."""
    while True:
        t = world(s).threads[tid]
        if t.done:
            return s, None
        out = run_step(s, t)
        if isinstance(out, Branches):
            results = [thunk() for _, thunk in out.alternatives]
            out = next((r for r in results if isinstance(r, KState)), results[0])
        if isinstance(out, Blocked):
            return s, out
        s = out


def _fresh_built(built: BuiltScenario, name: str) -> BuiltScenario:
    """The scenario again, with budgets that let the importer's import events happen: every
    event of the importer that does not undo an import gets at least its mainline default
    (and the recipe's) budget, so explain shows the path even when the scenario's run
    imports at boot or never."""
    imp = built.importer(name)
    recipe = IMPORT_RECIPES.get(imp.kind)
    spec = built.scenario.driver(name)
    events = dict(spec.events)
    wanted = recipe.options if recipe is not None else {}
    for opt, option in type(imp).OPTIONS.items():
        if not opt.endswith(BUDGET_SUFFIX):
            continue
        stem = opt[: -len(BUDGET_SUFFIX)]
        if stem in TEARDOWN_EVENTS:
            continue
        budget = max(int(option.default or 0), int(wanted.get(opt, 0) or 0))
        if budget > events.get(stem, 0):
            events[stem] = min(budget, MAX_EVENT_BUDGET)
    overrides = {f"{name}.events.{k}": v for k, v in events.items() if spec.events.get(k) != v}
    if not overrides:
        return built
    try:
        return build(built.scenario.with_overrides(overrides), design=built.design)
    except ScenarioError:
        return built


def _importer_attachments(s: KState, imp: Importer) -> list[int]:
    ops = imp.attach_ops()
    return [
        i
        for i, a in enumerate(s.attachments)
        if a.dev == imp.device
        and (a.importer_ops.name if a.importer_ops is not None else None)
        == (ops.name if ops is not None else None)
    ]


def explain_importer(built: BuiltScenario, name: str) -> AttachmentFlow:
    """explain_importer - run importer ``name``'s import path alone and classify its flow.

    No lock is held between events; each thread takes its own as the kernel path does.
    core-semantics §6.4, §5.3-§5.6, §5.9; drivers.md §7.
    """
    run = _fresh_built(built, name)
    imp = run.importer(name)
    exp = imp.source
    assert isinstance(exp, Exporter)
    s = run.initial_state
    before = set(_importer_attachments(s, imp))
    lines: list[str] = [f"(boot) {line}" for line in run.boot_lines.get(name, ())]
    note = ""
    recipe = IMPORT_RECIPES.get(imp.kind)
    titles = recipe.import_events if recipe is not None else ()
    by_name = {e.name: e for e in run.driver_events[name]}
    failed: tuple[str, str, str | None] | None = None
    for title in titles:
        ev = by_name.get(f"{name}: {title}")
        if ev is None or (ev.guard is not None and not ev.guard(s)):
            continue
        with recording() as got:
            s, tid = spawn(s, ev.program, ev.thread_name, **dict(ev.locals))
            s, blocked = _run_alone(s, tid)
        lines.extend(got)
        t = world(s).threads[tid]
        ret = t.local("ret")
        if blocked is not None:
            note = f"{t} stopped at {t.pc!r}, waiting for {blocked.on}"
            break
        if isinstance(ret, int) and not isinstance(ret, bool) and ret < 0:
            failed = refusal(got, ret, None)
            break
    atts = [a for a in _importer_attachments(s, imp) if a not in before] or sorted(before)
    live = [a for a in atts if not s.attachments[a].detached]
    attach: int | None = (live or atts)[-1] if (live or atts) else None
    ops = imp.attach_ops()
    allow = bool(ops is not None and ops.allow_peer2peer)
    pin_op = exp.dma_buf_ops().pin is not None
    if failed is not None:
        err, step, refused_by = failed
        by = f" (refused by {refused_by})" if refused_by else ""
        return AttachmentFlow(
            importer=name,
            driver=imp.kind,
            exporter=exp.name,
            attach=attach,
            buf=s.attachments[attach].dmabuf if attach is not None else None,
            dynamic=ops is not None,
            allow_peer2peer=allow,
            peer2peer=bool(attach is not None and s.attachments[attach].peer2peer),
            revocable=bool(ops is not None and ops.invalidate_mappings is not None),
            pinned=False,
            mapped=False,
            flow=REJECTED,
            why=f"-{err} at {_step_call(step, got_lines=lines)}{by}: the import gives up "
            "(core-semantics §6.4: the exporter's attach is the best place to refuse; "
            "drivers.md §7)",
            errno=err,
            step=_step_call(step, got_lines=lines),
            refused_by=refused_by,
            lines=tuple(lines),
            note=note,
        )
    if attach is None:
        return AttachmentFlow(
            importer=name,
            driver=imp.kind,
            exporter=exp.name,
            attach=None,
            buf=None,
            dynamic=ops is not None,
            allow_peer2peer=allow,
            peer2peer=False,
            revocable=bool(ops is not None and ops.invalidate_mappings is not None),
            pinned=False,
            mapped=False,
            flow=NONE,
            why="the scenario gives this importer no event that attaches",
            lines=tuple(lines),
            note=note,
        )
    a = s.attachments[attach]
    dynamic = a.importer_ops is not None
    revocable = dma_buf_attach_revocable(s, attach)
    pinned = a.pins > 0 or a.map_pins > 0
    mapped = bool(live_sgts(s, attach))
    flow, why = classify_flow(
        dynamic=dynamic,
        revocable=revocable,
        pinned=pinned,
        mapped=mapped,
        pin_op=pin_op,
        takeback=exp.takeback,
    )
    return AttachmentFlow(
        importer=name,
        driver=imp.kind,
        exporter=exp.name,
        attach=attach,
        buf=a.dmabuf,
        dynamic=dynamic,
        allow_peer2peer=allow,
        peer2peer=a.peer2peer,
        revocable=revocable,
        pinned=pinned,
        mapped=mapped,
        flow=flow,
        why=why,
        lines=tuple(lines),
        note=note,
    )


def _step_call(step: str, *, got_lines: Sequence[str]) -> str:
    """The kernel function behind a flows step name ("attach" -> dma_buf_dynamic_attach)."""
    for fn, _ in failed_calls(got_lines):
        if STEP_OF_CALL.get(fn) == step:
            return fn
    return step


def classify_flow(
    *,
    dynamic: bool,
    revocable: bool,
    pinned: bool,
    mapped: bool,
    pin_op: bool,
    takeback: TakebackKind | None,
) -> tuple[str, str]:
    """classify_flow - the flow an attachment reaches by core-semantics §6.4, and why.

    Pure; no lock. Static attachments: pinned around each map when the exporter has pin/unpin
    (§5.6), static otherwise. Dynamic without invalidate_mappings: pinned (§6.4 step 1; holding
    a mapping without a pin is §10 #24's unsafe configuration). With invalidate_mappings: a pin
    makes it revoked (step 4), no pin movable (step 3) unless the exporter never invalidates.
    """
    if not dynamic:
        if pin_op:
            return PINNED, (
                "static attachment (dma_buf_attach): the core pins around each mapping and "
                "waits for KERNEL fences (core-semantics §5.6, §6.4 v1)"
            )
        return STATIC, (
            "static attachment to an exporter without pin/unpin: the storage never moves and "
            "is never invalidated (core-semantics §5.18)"
        )
    if not revocable:
        why = (
            "no invalidate_mappings: the importer can never be told anything, so the buffer "
            "must stay pinned for the attachment's life (core-semantics §6.4 step 1)"
        )
        if mapped and not pinned:
            why += "; it holds a mapping without a pin: unsafe (core-semantics §10 #24)"
        return PINNED, why
    if pinned:
        return REVOKED, (
            "dma_buf_pin succeeded and the importer implements invalidate_mappings: the "
            "storage stays put until the exporter takes it away (core-semantics §6.4 step 4)"
        )
    if takeback is None:
        return STATIC, (
            "no pin, invalidate_mappings present, but the exporter never invalidates: the "
            "mapping is never taken back (drivers.md §7 'static')"
        )
    if takeback is TakebackKind.REVOKE:
        return MOVABLE, (
            "no pin and invalidate_mappings present: invalidated when the exporter revokes, "
            "maps again afterwards (core-semantics §6.4 step 3; drivers.md §7 calls this "
            "'revocable')"
        )
    return MOVABLE, (
        "no pin and invalidate_mappings present: invalidated before every move, maps again "
        "(core-semantics §6.4 step 3, §6.5)"
    )


def explain_flows(built: BuiltScenario) -> list[AttachmentFlow]:
    """explain_flows - ``explain_importer`` for every importer of the scenario, in file order."""
    return [explain_importer(built, spec.name) for spec in built.scenario.importers]


def _yes(b: bool) -> str:
    return "yes" if b else "no"


def format_explanation(built: BuiltScenario, flows: Sequence[AttachmentFlow]) -> str:
    """format_explanation - the text ``dmabuf-model explain`` prints."""
    sc = built.scenario
    out = [
        f"Scenario {sc.name} ({sc.source}), design {built.design}.",
        "How each importer's attachment reaches its flow (core-semantics §6.4), each import "
        "run alone on a fresh system:",
    ]
    for spec in sc.exporters:
        exp = built.exporter(spec.name)
        ops = exp.dma_buf_ops()
        callbacks = [
            n
            for n in ("attach", "pin", "unpin", "map_dma_buf", "unmap_dma_buf", "release")
            if getattr(ops, n) is not None
        ]
        back = {
            TakebackKind.REVOKE: "revokes (the storage goes away)",
            TakebackKind.MOVE: "moves the storage (invalidates first)",
            None: "never invalidates (static exporter)",
        }[exp.takeback]
        bufs = ", ".join(f"buf{b}" for b in exp.buffers(built.initial_state)) or "no buffer yet"
        out.append("")
        out.append(f"exporter {spec.name}: {spec.driver} on {spec.device}; {back}")
        out.append(f"  {ops.name}: {', '.join(callbacks)}; exports {bufs}")
    for f in flows:
        spec = sc.driver(f.importer)
        out.append("")
        out.append(f"importer {f.importer}: {f.driver} on {spec.device}, imports from {f.exporter}")
        for line in f.lines:
            out.append(f"    {line}")
        if f.note:
            out.append(f"    ({f.note})")
        where = f"attach{f.attach} on buf{f.buf}" if f.attach is not None else "no attachment"
        if f.flow == REJECTED and f.attach is not None:
            where += " (detached after the failure)"
        out.append(f"  {where}")
        out.append(
            f"  dynamic: {_yes(f.dynamic)}   peer2peer: {_yes(f.peer2peer)}"
            f" (allow_peer2peer {_yes(f.allow_peer2peer)})   revocable: {_yes(f.revocable)}"
            f"   pinned: {_yes(f.pinned)}   mapped: {_yes(f.mapped)}"
        )
        out.append(f"  flow: {f.flow}: {f.why}")
    return "\n".join(out)


__all__ = [
    "MOVABLE",
    "NONE",
    "PINNED",
    "REJECTED",
    "REVOKED",
    "STATIC",
    "AttachmentFlow",
    "classify_flow",
    "explain_flows",
    "explain_importer",
    "format_explanation",
]
