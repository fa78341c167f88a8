"""trace: a checker Path of a SystemModel turned into a structured record people and tools can read.

Each step keeps who acted (a thread such as "T2 vfio-revoke", or "env"), the kernel calls it made
(the lines its step emitted, system/threads.py), and what changed: locks, fences, sg_tables,
threads, kernel warnings and the platform's mappings, transfers and oracle findings. The record is
what the text, JSON, Mermaid and SVG renderers draw; it models no kernel file of its own.

DOC: where the effects come from

* Lock acquisitions and releases are read from the calls in the order they were made
  (``dma_resv_lock(resv0, NULL) = 0``, ``down_write(memory_lock)``), because a step that takes and
  drops a lock leaves no trace in the state it ends in (core-semantics §4).
* Everything else is the difference between the state before and after the step: fences that
  became signalled, sg_tables mapped or unmapped, threads spawned or finished, new kernel warnings
  (core-semantics §10, §11), and on the platform new or changed DMA mappings and transfers, memory
  generations, PCI function state and oracle findings (core-semantics §5.8, §10 #22). Lock changes
  the calls did not show are added from the difference too.

The violating step is the one after which a new violating oracle Finding appears, or after which
the failing always-property first becomes false; for a deadlock it is the last step.
"""

from __future__ import annotations

import builtins
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from dmabuf_model.check.model import DEADLOCK, Expectation, Model, Property
from dmabuf_model.check.path import Path
from dmabuf_model.check.result import Discovery
from dmabuf_model.kernel.dma_resv import DmaResv
from dmabuf_model.kernel.locking import Mutex, RwSemaphore
from dmabuf_model.kernel.state import NO_TID, KState
from dmabuf_model.platform.dma import TransferStatus
from dmabuf_model.platform.state import PlatformState
from dmabuf_model.platform.topology import Topology
from dmabuf_model.system.model import EnvStep, SystemModel, ThreadStep, blocked_on
from dmabuf_model.system.properties import explain
from dmabuf_model.system.threads import World, recording

EffectKind = Literal[
    "lock",
    "unlock",
    "signal",
    "map",
    "unmap",
    "spawn",
    "exit",
    "warning",
    "finding",
    "dma_mapping",
    "transfer",
    "memory",
    "device",
]
"""What an Effect records; docs/traces.md describes each kind."""

EFFECT_KINDS: tuple[EffectKind, ...] = (
    "lock",
    "unlock",
    "signal",
    "map",
    "unmap",
    "spawn",
    "exit",
    "warning",
    "finding",
    "dma_mapping",
    "transfer",
    "memory",
    "device",
)

TraceKind = Literal["counterexample", "example", "deadlock"]
"""The checker's discovery kinds (check/result.py DiscoveryKind)."""

LOCK_CALLS: Mapping[str, str] = {
    "dma_resv_lock": "",
    "dma_resv_lock_interruptible": "",
    "dma_resv_lock_slow": "",
    "dma_resv_lock_slow_interruptible": "",
    "dma_resv_trylock": "",
    "ww_mutex_lock": "",
    "ww_mutex_lock_interruptible": "",
    "ww_mutex_lock_slow": "",
    "ww_mutex_trylock": "",
    "mutex_lock": "",
    "mutex_lock_interruptible": "",
    "mutex_trylock": "",
    "down_read": "read",
    "down_read_interruptible": "read",
    "down_read_trylock": "read",
    "down_write": "write",
    "down_write_killable": "write",
    "down_write_trylock": "write",
}
"""Calls that take the lock named by their first argument, and the rw mode shown ("" for none)."""

UNLOCK_CALLS: Mapping[str, str] = {
    "dma_resv_unlock": "",
    "ww_mutex_unlock": "",
    "mutex_unlock": "",
    "up_read": "read",
    "up_write": "write",
}
"""Calls that release the lock named by their first argument."""

_CALL_RE = re.compile(r"^(?P<fn>[A-Za-z_][\w.]*)\((?P<args>.*)\)(?: = (?P<ret>.+))?$")
_MARKER_RE = re.compile(r"^(?P<indent>\s*)(?:-> )?")
_THREAD_RE = re.compile(r"^T(\d+)\b")


@dataclass(frozen=True, slots=True)
class Call:
    """One line a step emitted: a kernel call ``fn(args) = ret``, or free text (fn is None).

    ``depth`` is 1 for a call made from inside a callback the step ran (emitted as
    ``  -> dma_buf_unmap_attachment(...)``); ``text`` is the line without that marker.
    """

    text: str
    depth: int = 0
    fn: str | None = None
    args: str | None = None
    ret: str | None = None

    @property
    def line(self) -> str:
        """The line as emitted: ``-> `` once per nesting level, then the text."""
        return "-> " * self.depth + self.text


@dataclass(frozen=True, slots=True)
class Effect:
    """Something a step changed: ``kind`` on ``target`` (a lock, fence, thread, device, range).

    ``source`` is who did it when that is not the step's actor (the device of a transfer or a
    finding); ``call`` is the index of the call in the step that did it, or -1 when it is only
    known from the state difference (shown after the calls). ``violation`` marks a violating
    oracle finding or a kernel warning.
    """

    kind: EffectKind
    target: str
    text: str
    source: str = ""
    violation: bool = False
    call: int = -1


@dataclass(frozen=True, slots=True)
class TraceStep:
    """One action of the trace: ``index`` counts from 1 (0 is the initial state, not a step).

    ``actor`` is "T2 vfio-revoke", "env" or, for a model that is not a SystemModel, "model";
    ``action`` is the model's text for the action (what replay compares); ``action_data`` its
    JSON form (Model.action_to_json).
    """

    index: int
    actor: str
    action: str
    calls: tuple[Call, ...] = ()
    effects: tuple[Effect, ...] = ()
    violation: bool = False
    action_data: Any = None


@dataclass(frozen=True, slots=True)
class Wait:
    """In the last state, thread ``actor`` cannot run: it waits for ``on``, held by ``holder``."""

    actor: str
    on: str
    holder: str | None = None

    def __str__(self) -> str:
        held = f" held by {self.holder}" if self.holder else ""
        return f"{self.actor} waits for {self.on}{held}"


@dataclass(frozen=True)
class Trace:
    """A readable, replayable trace: the steps, and what the checker said about them.

    ``scenario`` is a JSON object with enough to rebuild the model (at least "name"; the CLI adds
    "path" and "toml"), ``token`` the checker's replay token, ``verdict`` one line saying what the
    trace shows, ``details`` the objects that break the property (or the deadlock's waits-for
    text), ``waits`` the threads blocked in the last state. Not hashable (``scenario`` is a dict).
    """

    model: str
    token: str
    steps: tuple[TraceStep, ...]
    verdict: str
    scenario: dict[str, Any] = field(default_factory=dict)
    design: str | None = None
    property: str | None = None
    cite: str = ""
    kind: TraceKind | None = None
    loop_start: int | None = None
    details: tuple[str, ...] = ()
    waits: tuple[Wait, ...] = ()

    @builtins.property
    def violation_steps(self) -> tuple[int, ...]:
        """The indices of the steps flagged as violating."""
        return tuple(s.index for s in self.steps if s.violation)


def parse_call(line: str) -> Call:
    """parse_call - split an emitted line into a Call: ``fn(args) = ret`` or free text.

    Leading spaces and a ``-> `` marker give the nesting depth (two spaces per level).
    """
    m = _MARKER_RE.match(line)
    assert m is not None
    marker = m.group(0)
    depth = 0
    if marker.endswith("-> "):
        depth = max(1, len(m.group("indent")) // 2)
    text = line[len(marker) :].strip()
    c = _CALL_RE.match(text)
    if c is None:
        return Call(text, depth)
    return Call(text, depth, c.group("fn"), c.group("args"), c.group("ret"))


def first_arg(call: Call) -> str:
    """first_arg - the first argument of a call, without a leading ``&`` ("" for free text)."""
    if not call.args:
        return ""
    return call.args.split(",", 1)[0].strip().lstrip("&")


def _lock_effect(call: Call, index: int) -> Effect | None:
    """The lock or unlock a call did, or None (a failed or unrelated call)."""
    if call.fn is None:
        return None
    target = first_arg(call)
    if not target:
        return None
    if call.fn in LOCK_CALLS:
        trylock = call.fn.endswith("trylock")
        ok = call.ret in ("1", "true", "True") if trylock else call.ret in (None, "0")
        if not ok:
            return None
        mode = LOCK_CALLS[call.fn]
        text = f"takes {target}" + (f" ({mode})" if mode else "")
        return Effect("lock", target, text, call=index)
    if call.fn in UNLOCK_CALLS:
        mode = UNLOCK_CALLS[call.fn]
        text = f"releases {target}" + (f" ({mode})" if mode else "")
        return Effect("unlock", target, text, call=index)
    return None


def _topology(model: Model[Any, Any]) -> Topology | None:
    """The model's Topology (a ``topology`` attribute), for range and function names."""
    topo = getattr(model, "topology", None)
    return topo if isinstance(topo, Topology) else None


def kernel_effects(before: KState, after: KState) -> list[Effect]:
    """kernel_effects - the kernel-side difference between two states, as Effects.

    Resv and lock holders, fences signalled, sg_tables mapped or unmapped, threads spawned or
    finished (when both states carry a World), new kernel warnings (core-semantics §10, §11).
    """
    out: list[Effect] = []
    for i, new_resv in enumerate(after.resvs):
        old_resv = before.resvs[i] if i < len(before.resvs) else DmaResv()
        if old_resv.holder != new_resv.holder:
            name = f"resv{i}"
            if old_resv.holder != NO_TID:
                out.append(Effect("unlock", name, f"releases {name}"))
            if new_resv.holder != NO_TID:
                out.append(Effect("lock", name, f"takes {name}"))
    for i, new_lock in enumerate(after.locks):
        old_lock = before.locks[i] if i < len(before.locks) else None
        out.extend(_lock_diff(old_lock, new_lock))
    for i, fence in enumerate(after.fences):
        was = before.fences[i].signaled if i < len(before.fences) else False
        if fence.signaled and not was:
            err = f" (error {fence.error})" if fence.error else ""
            out.append(Effect("signal", f"fence{i}", f"signals fence{i}{err}"))
    for i, sgt in enumerate(after.sg_tables):
        was_live = before.sg_tables[i].live if i < len(before.sg_tables) else None
        if was_live is None and sgt.live:
            out.append(Effect("map", f"sgt{i}", f"maps sgt{i}"))
        elif was_live and not sgt.live:
            out.append(Effect("unmap", f"sgt{i}", f"unmaps sgt{i}"))
    if isinstance(before.ext, World) and isinstance(after.ext, World):
        old_threads = before.ext.threads
        for t in after.ext.threads:
            if t.tid >= len(old_threads):
                out.append(Effect("spawn", str(t), f"spawns {t}"))
            elif t.done and not old_threads[t.tid].done:
                ret = t.local("ret")
                shown = f" ({ret})" if ret is not None else ""
                out.append(Effect("exit", str(t), f"{t} exits{shown}"))
    out.extend(
        Effect("warning", "", str(w), violation=True)
        for w in after.warnings
        if w not in before.warnings
    )
    return out


def _lock_diff(old: Mutex | RwSemaphore | None, new: Mutex | RwSemaphore) -> list[Effect]:
    name = new.name
    out: list[Effect] = []
    if isinstance(new, Mutex):
        old_holder = old.holder if isinstance(old, Mutex) else NO_TID
        if old_holder != new.holder:
            if old_holder != NO_TID:
                out.append(Effect("unlock", name, f"releases {name}"))
            if new.holder != NO_TID:
                out.append(Effect("lock", name, f"takes {name}"))
        return out
    old_writer = old.writer if isinstance(old, RwSemaphore) else NO_TID
    old_readers = old.readers if isinstance(old, RwSemaphore) else ()
    if old_writer != new.writer:
        if old_writer != NO_TID:
            out.append(Effect("unlock", name, f"releases {name} (write)"))
        if new.writer != NO_TID:
            out.append(Effect("lock", name, f"takes {name} (write)"))
    for tid in new.readers:
        if tid not in old_readers:
            out.append(Effect("lock", name, f"takes {name} (read)", source=f"T{tid}"))
    for tid in old_readers:
        if tid not in new.readers:
            out.append(Effect("unlock", name, f"releases {name} (read)", source=f"T{tid}"))
    return out


def platform_effects(
    before: PlatformState | None, after: PlatformState, topo: Topology | None = None
) -> list[Effect]:
    """platform_effects - the hardware difference between two platform states, as Effects.

    New or changed DMA mappings, transfers started or finished, memory generations and revokes,
    PCI function state, and new oracle findings (a violating one is flagged; core-semantics
    §5.8, §6.5, §10 #22). ``topo`` gives ranges and functions their names ("range0" without).
    """
    old = before if before is not None else PlatformState()

    def rname(i: int) -> str:
        return topo.ranges[i].name if topo is not None else f"range{i}"

    def fname(i: int) -> str:
        return topo.functions[i].name if topo is not None else f"fn{i}"

    out: list[Effect] = []
    for i, r in enumerate(after.ranges):
        was = old.ranges[i] if i < len(old.ranges) else None
        if was is None:
            continue
        if r.gen != was.gen:
            causes = ", ".join(str(c) for c in r.history[was.gen :])
            out.append(Effect("memory", rname(i), f"{rname(i)} generation {r.gen} ({causes})"))
        if r.allocated != was.allocated:
            what = "allocated" if r.allocated else "freed"
            out.append(Effect("memory", rname(i), f"{rname(i)} {what}"))
        if r.revoked != was.revoked:
            what = "revoked" if r.revoked else "no longer revoked"
            out.append(Effect("memory", rname(i), f"{rname(i)} {what}"))
    for i, f in enumerate(after.functions):
        was_f = old.functions[i] if i < len(old.functions) else None
        if was_f is None:
            continue
        changes = []
        if f.present != was_f.present:
            changes.append("present" if f.present else "removed")
        if f.mem_enable != was_f.mem_enable:
            changes.append("memory decode " + ("on" if f.mem_enable else "off"))
        if f.power_state != was_f.power_state:
            changes.append(f"{was_f.power_state} -> {f.power_state}")
        if changes:
            out.append(Effect("device", fname(i), f"{fname(i)}: {', '.join(changes)}"))
    for mid, m in enumerate(after.mappings):
        was_m = old.mappings[mid] if mid < len(old.mappings) else None
        target = rname(m.range)
        if was_m is None:
            last = m.first + m.npages - 1
            text = f"{m.dev} maps {target} pages {m.first}..{last} ({m.path}) as mapping {mid}"
            out.append(Effect("dma_mapping", target, text, source=m.dev))
        elif was_m.state != m.state:
            text = f"mapping {mid} ({m.dev} -> {target}) {was_m.state} -> {m.state}"
            out.append(Effect("dma_mapping", target, text, source=m.dev))
    for xid, t in enumerate(after.transfers):
        was_t = old.transfers[xid] if xid < len(old.transfers) else None
        op = "write" if t.write else "read"
        if 0 <= t.mapping < len(after.mappings):
            target = rname(after.mappings[t.mapping].range)
            via = f"mapping {t.mapping} page {t.page}"
        else:
            target = "iova"
            via = f"iova {t.page}"
        if was_t is None and t.status is TransferStatus.PENDING:
            text = f"{t.dev} starts {op} {xid} via {via}"
            out.append(Effect("transfer", t.dev, text, source=t.dev))
        elif was_t is None or was_t.status != t.status:
            text = f"{t.dev} {op} {xid} via {via}: {t.status}"
            out.append(Effect("transfer", target, text, source=t.dev))
    out.extend(
        Effect("finding", f.range or f.device, str(f), source=f.device, violation=f.violation)
        for f in after.findings
        if f not in old.findings
    )
    return out


def _platform(s: KState) -> PlatformState | None:
    w = s.ext
    if isinstance(w, World) and isinstance(w.platform, PlatformState):
        return w.platform
    return None


def step_calls(model: Model[Any, Any], state: Any, action: Any) -> tuple[Call, ...]:
    """step_calls - the calls a step makes, by running it again under a recorder.

    Only a SystemModel's steps emit calls (system/threads.py ``emit``); other models give none.
    """
    if not isinstance(model, SystemModel) or isinstance(action, EnvStep):
        return ()
    with recording() as lines:
        model.next_state(state, action)
    return tuple(parse_call(line) for line in lines)


def _match_call(effect: Effect, calls: Sequence[Call]) -> int:
    """The index of the call that most likely did ``effect`` (-1 when none says so).

    A fence signal: ``dma_fence_signal*(fenceN)``; a new sg_table: the call returning it; an
    unmap: an ``*unmap*`` call naming it; a warning: the call whose name starts its text.
    """
    word = re.compile(rf"\b{re.escape(effect.target)}\b") if effect.target else None
    what = effect.text.split(": ", 1)[-1]
    for i, c in enumerate(calls):
        fn = c.fn
        if fn is None:
            continue
        if effect.kind == "warning":
            hit = what.startswith(fn + " ")
        elif word is None:
            hit = False
        elif effect.kind == "signal":
            hit = fn.startswith("dma_fence_signal") and bool(word.search(c.args or ""))
        elif effect.kind == "map":
            hit = bool(word.search(c.ret or ""))
        elif effect.kind == "unmap":
            hit = "unmap" in fn and bool(word.search(c.args or ""))
        else:
            hit = False
        if hit:
            return i
    return -1


def step_effects(
    calls: Sequence[Call],
    before: Any,
    after: Any,
    topo: Topology | None = None,
) -> tuple[Effect, ...]:
    """step_effects - the Effects of one step: lock changes from its calls, then the diff.

    Lock effects the calls already show are not repeated from the state difference; each other
    effect is tied to the call that did it when one clearly did (``Effect.call``).
    """
    out: list[Effect] = []
    from_calls: set[tuple[str, str]] = set()
    for i, c in enumerate(calls):
        e = _lock_effect(c, i)
        if e is not None:
            out.append(e)
            from_calls.add((e.kind, e.target))
    if not (isinstance(before, KState) and isinstance(after, KState)):
        return tuple(out)
    diff = kernel_effects(before, after)
    after_ps = _platform(after)
    if after_ps is not None:
        diff.extend(platform_effects(_platform(before), after_ps, topo))
    for e in diff:
        if e.kind in ("lock", "unlock") and (e.kind, e.target) in from_calls:
            continue
        idx = _match_call(e, calls)
        out.append(e if idx < 0 else _with_call(e, idx))
    # In the order they happened: by the call that did them, the rest after the last call, a
    # thread's spawn or exit last of all.
    return tuple(sorted(out, key=lambda e: (e.call if e.call >= 0 else len(calls), _late(e))))


def _late(e: Effect) -> int:
    return 1 if e.kind in ("spawn", "exit") else 0


def _with_call(e: Effect, idx: int) -> Effect:
    return Effect(e.kind, e.target, e.text, e.source, e.violation, idx)


def _actor(action: Any) -> str:
    if isinstance(action, ThreadStep):
        return f"T{action.tid} {action.thread}"
    if isinstance(action, EnvStep):
        return "env"
    return "model"


def _json_value(value: Any) -> Any:
    """``value`` as plain JSON data (lists, dicts, str, numbers); TypeError if it is not JSON."""
    return json.loads(json.dumps(value, sort_keys=True))


def _find_property(model: Model[Any, Any], name: str) -> Property[Any]:
    props = list(model.properties())
    for p in props:
        if p.name == name:
            return p
    known = ", ".join([*(p.name for p in props), DEADLOCK])
    raise KeyError(f"the model has no property {name!r}; it has: {known}")


def model_name(model: Model[Any, Any]) -> str:
    """model_name - a SystemModel's ``name``, or the model's class name."""
    name = getattr(model, "name", None)
    return name if isinstance(name, str) and name else type(model).__name__


def build_trace(
    model: Model[Any, Any],
    path: Path[Any, Any],
    *,
    property: str | None = None,
    kind: TraceKind | None = None,
    scenario: Mapping[str, Any] | str | None = None,
    design: str | None = None,
    topology: Topology | None = None,
) -> Trace:
    """build_trace - the structured trace of ``path``, a path the checker found in ``model``.

    ``property`` names the property the path is a discovery for ("deadlock" for a deadlock);
    ``kind`` defaults from it (always/eventually: counterexample, sometimes: example).
    ``scenario`` is what rebuilds the model (a name, or a JSON object with at least "name"); it
    defaults to the model's name. ``topology`` names memory ranges and PCI functions in
    platform effects (default: the model's ``topology`` attribute, if any). Steps of a
    SystemModel are re-run under a recorder to get their calls (no lock is needed: states are
    values). KeyError for an unknown property, TypeError when ``scenario`` is not JSON data.
    """
    prop: Property[Any] | None = None
    if property is not None and property != DEADLOCK:
        prop = _find_property(model, property)
    if kind is None and property is not None:
        if property == DEADLOCK:
            kind = "deadlock"
        elif prop is not None:
            kind = "example" if prop.expectation is Expectation.SOMETIMES else "counterexample"
    scen = _scenario(model, scenario)
    topo = topology if topology is not None else _topology(model)

    states = path.states
    fails_at = _property_step(prop, states, kind)
    steps: list[TraceStep] = []
    for step in path.steps[1:]:
        before = states[step.index - 1]
        action = step.action
        calls = step_calls(model, before, action)
        effects = step_effects(calls, before, step.state, topo)
        violating_access = any(e.kind == "finding" and e.violation for e in effects)
        flagged = violating_access or step.index == fails_at
        if kind == "deadlock" and step.index == len(path):
            flagged = True
        steps.append(
            TraceStep(
                index=step.index,
                actor=_actor(action),
                action=model.format_action(action),
                calls=calls,
                effects=effects,
                violation=flagged,
                action_data=_json_value(model.action_to_json(action)),
            )
        )
    verdict, details = _verdict(model, path, property, prop, kind, fails_at)
    return Trace(
        model=model_name(model),
        token=path.token,
        steps=tuple(steps),
        verdict=verdict,
        scenario=scen,
        design=design,
        property=property,
        cite=prop.cite if prop is not None else "",
        kind=kind,
        loop_start=path.loop_start,
        details=details,
        waits=_waits(path.last_state),
    )


def discovery_trace(
    model: Model[Any, Any],
    discovery: Discovery[Any, Any],
    *,
    scenario: Mapping[str, Any] | str | None = None,
    design: str | None = None,
    topology: Topology | None = None,
) -> Trace:
    """discovery_trace - ``build_trace`` for a checker Discovery (its path, property and kind)."""
    return build_trace(
        model,
        discovery.path,
        property=discovery.property,
        kind=discovery.kind,
        scenario=scenario,
        design=design,
        topology=topology,
    )


def _scenario(model: Model[Any, Any], scenario: Mapping[str, Any] | str | None) -> dict[str, Any]:
    if scenario is None:
        return {"name": model_name(model)}
    if isinstance(scenario, str):
        return {"name": scenario}
    data = _json_value(dict(scenario))
    if not isinstance(data.get("name"), str):
        raise TypeError(f"scenario must have a string 'name', got {dict(scenario)!r}")
    assert isinstance(data, dict)
    return data


def _property_step(prop: Property[Any] | None, states: Sequence[Any], kind: str | None) -> int:
    """The step after which the failing always-property first becomes false (-1: none)."""
    if prop is None or kind != "counterexample" or prop.expectation is not Expectation.ALWAYS:
        return -1
    for i, s in enumerate(states):
        if not prop.condition(s):
            return i
    return -1


def _verdict(
    model: Model[Any, Any],
    path: Path[Any, Any],
    name: str | None,
    prop: Property[Any] | None,
    kind: str | None,
    fails_at: int,
) -> tuple[str, tuple[str, ...]]:
    n = len(path)
    last = path.last_state
    if name == DEADLOCK or (kind == "deadlock" and prop is None):
        why = model.deadlock(last) or "nothing can run and work is unfinished"
        return f"deadlock after step {n}", (why,)
    if prop is None:
        return f"trace of {n} step{'s' if n != 1 else ''}", ()
    cite = f" ({prop.cite})" if prop.cite else ""
    what = f'{prop.expectation.value} "{prop.name}"'
    details = tuple(explain(prop, last)) if isinstance(last, KState) else ()
    if prop.expectation is Expectation.ALWAYS:
        if fails_at < 0:
            return f"{what} holds on every step of this trace{cite}", ()
        where = "in the initial state" if fails_at == 0 else f"after step {fails_at}"
        return f"counterexample: {what} fails {where}{cite}", details
    if prop.expectation is Expectation.SOMETIMES:
        for i, s in enumerate(path.states):
            if prop.condition(s):
                where = "in the initial state" if i == 0 else f"after step {i}"
                return f"example: {what} holds {where}{cite}", ()
        return f"{what} does not hold on this trace{cite}", ()
    if path.loop_start is not None:
        back = "the initial state" if path.loop_start == 0 else f"step {path.loop_start}"
        return f"counterexample: {what} never holds; the path loops back to {back}{cite}", ()
    return f"counterexample: {what} never holds; the path ends after step {n}{cite}", ()


def _waits(s: Any) -> tuple[Wait, ...]:
    """The threads blocked in ``s`` and what they wait for (SystemModel states only)."""
    if not isinstance(s, KState) or not isinstance(s.ext, World):
        return ()
    threads = s.ext.threads
    out: list[Wait] = []
    for t in threads:
        b = blocked_on(s, t)
        if b is None:
            continue
        holder = str(threads[b.holder]) if 0 <= b.holder < len(threads) else None
        out.append(Wait(str(t), b.on, holder))
    return tuple(out)


def thread_lane(actor: str) -> str:
    """thread_lane - the short name of a thread actor ("T2" for "T2 vfio-revoke"), else itself."""
    m = _THREAD_RE.match(actor)
    return f"T{m.group(1)}" if m else actor


__all__ = [
    "EFFECT_KINDS",
    "LOCK_CALLS",
    "UNLOCK_CALLS",
    "Call",
    "Effect",
    "EffectKind",
    "Trace",
    "TraceKind",
    "TraceStep",
    "Wait",
    "build_trace",
    "discovery_trace",
    "first_arg",
    "kernel_effects",
    "model_name",
    "parse_call",
    "platform_effects",
    "step_calls",
    "step_effects",
    "thread_lane",
]
