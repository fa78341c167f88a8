"""SystemModel: the kernel model, its threads and environment events as one checkable Model.

The state is a KState whose ext is a World (system/threads.py). An action is either one atomic
step of one runnable thread (ThreadStep) or an environment event that spawns a thread (EnvStep:
an FLR, a close, a DMA job completing), each event with a budget so the state space is finite.
The same step functions drive the checker, the simulator and scripted runs (design.md "Threads
are explicit"). When nothing is enabled and a thread is unfinished, ``deadlock`` names the
waits-for cycle ("T0 vfio-reset waits for resv0 held by T1 importer-fault, which waits for
memory_lock held by T0") or says which thread is blocked forever (core-semantics §4).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from dmabuf_model.check.model import Model, Property
from dmabuf_model.kernel.dma_resv import DmaResv
from dmabuf_model.kernel.locking import Mutex, RwSemaphore
from dmabuf_model.kernel.state import NO_TID, Blocked, KState, Tid, replace
from dmabuf_model.system.threads import (
    Branches,
    Program,
    StepResult,
    Thread,
    recording,
    spawn,
    with_world,
    world,
)


@dataclass(frozen=True, slots=True)
class EnvEvent:
    """An environment event: something outside the modelled kernel starts a code path.

    Each occurrence spawns a thread named ``thread_name`` (default: the program's name) running
    ``program`` with ``locals``; at most ``budget`` occurrences per run. ``guard``, when given,
    must hold for the event to be enabled (e.g. "close" only while the fd is open).
    """

    name: str
    program: Program
    budget: int = 1
    thread_name: str = ""
    locals: tuple[tuple[str, Hashable], ...] = ()
    guard: Callable[[KState], bool] | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class ThreadStep:
    """Action: thread ``tid`` runs the step at ``pc`` (alternative ``branch`` when it has several).

    ``thread`` and ``pc`` are carried so a trace reads on its own; the action is enabled only while
    the thread really is at ``pc``.
    """

    tid: Tid
    thread: str
    pc: str
    branch: str = ""

    def __str__(self) -> str:
        branch = f" [{self.branch}]" if self.branch else ""
        return f"T{self.tid} {self.thread}: {self.pc}{branch}"


@dataclass(frozen=True, slots=True)
class EnvStep:
    """Action: environment event number ``index`` (named ``event``) happens."""

    index: int
    event: str

    def __str__(self) -> str:
        return f"env: {self.event}"


Action = ThreadStep | EnvStep


def run_step(s: KState, t: Thread) -> StepResult:
    """run_step - run thread ``t``'s next step on ``s`` (its result: state, Blocked or Branches)."""
    out = t.program.step(t.pc)(s, t)
    if not isinstance(out, KState | Blocked | Branches):
        raise TypeError(
            f"step {t.pc!r} of program {t.program.name!r} returned {type(out).__name__}; a step "
            "returns the new KState (via goto/finish), a Blocked, or Branches"
        )
    return out


def blocked_on(s: KState, t: Thread) -> Blocked | None:
    """blocked_on - what ``t`` waits for in ``s``, or None if it can run (or is done)."""
    if t.done:
        return None
    out = run_step(s, t)
    if isinstance(out, Blocked):
        return out
    if isinstance(out, Branches):
        first: Blocked | None = None
        for _, thunk in out.alternatives:
            r = thunk()
            if isinstance(r, KState):
                return None
            first = first or r
        return first
    return None


def run_thread(s: KState, tid: Tid) -> KState:
    """run_thread - a scripted run: step thread ``tid`` until it is done.

    The same step functions as the checker's; where a step has Branches the first alternative
    that is not Blocked is taken. RuntimeError if the thread blocks, since a script has nobody
    to wait for.
    """
    while True:
        t = world(s).threads[tid]
        if t.done:
            return s
        out: KState | Blocked | Branches = run_step(s, t)
        if isinstance(out, Branches):
            results = [thunk() for _, thunk in out.alternatives]
            out = next((r for r in results if isinstance(r, KState)), results[0])
        if isinstance(out, Blocked):
            raise RuntimeError(f"{t} blocked at {t.pc!r} on {out.on} during a scripted run")
        s = out


def _who(s: KState, tid: Tid) -> str:
    threads = world(s).threads
    return str(threads[tid]) if 0 <= tid < len(threads) else f"T{tid}"


def explain_blocked(s: KState) -> str | None:
    """explain_blocked - why unfinished threads cannot run: a waits-for cycle, or a dead end.

    Meant for a state where nothing is enabled (Model.deadlock). Returns None when no thread is
    blocked. A cycle reads "deadlock: T0 a waits for X held by T1 b, which waits for Y held by
    T0"; a chain that ends at a resource nobody holds (an unsignalled fence, a completion) or at a
    thread that exited holding a lock reads "blocked forever: ...".
    """
    threads = world(s).threads
    blocked: dict[Tid, Blocked] = {}
    for t in threads:
        b = blocked_on(s, t)
        if b is not None:
            blocked[t.tid] = b
    if not blocked:
        return None

    def chain_from(start: Tid) -> tuple[list[Tid], bool]:
        order: list[Tid] = [start]
        cur = start
        while True:
            holder = blocked[cur].holder
            if holder == NO_TID or holder not in blocked:
                return order, False
            if holder in order:
                return order[order.index(holder) :], True
            order.append(holder)
            cur = holder

    for start in sorted(blocked):
        cycle, is_cycle = chain_from(start)
        if is_cycle:
            first = cycle[0]
            if len(cycle) == 1:
                b = blocked[first]
                return f"deadlock: {_who(s, first)} waits for {b.on} held by T{first} (itself)"
            parts = [f"{_who(s, first)} waits for {blocked[first].on} held by {_who(s, cycle[1])}"]
            for i, tid in enumerate(cycle[1:], start=1):
                nxt = cycle[(i + 1) % len(cycle)]
                held_by = f"T{nxt}" if nxt == first else _who(s, nxt)
                parts.append(f"which waits for {blocked[tid].on} held by {held_by}")
            return "deadlock: " + ", ".join(parts)

    # No cycle: describe each chain from threads nobody else is waiting for.
    waited_on = {b.holder for b in blocked.values()}
    roots = [tid for tid in sorted(blocked) if tid not in waited_on] or sorted(blocked)
    chains = []
    for start in roots:
        order, _ = chain_from(start)
        parts = []
        for i, tid in enumerate(order):
            b = blocked[tid]
            head = _who(s, tid) if i == 0 else "which"
            if b.holder == NO_TID:
                parts.append(f"{head} waits for {b.on}")
            else:
                parts.append(f"{head} waits for {b.on} held by {_who(s, b.holder)}")
        last = blocked[order[-1]].holder
        if last != NO_TID and last not in blocked:
            holder = threads[last] if 0 <= last < len(threads) else None
            parts.append("which has exited" if holder is not None and holder.done else "")
        chains.append(", ".join(p for p in parts if p))
    return "blocked forever: " + "; ".join(chains)


class SystemModel(Model[KState, Action]):
    """The kernel state plus threads and environment events, as a Model the checker explores.

    Actions are one per runnable thread (by tid; several when its step has Branches) and then one
    per environment event with budget left (in the order given). ``symmetric_slots`` is the
    documented hook for symmetry reduction: groups of interchangeable driver slots (e.g. two
    identical importers). ``canonical`` is still the identity; a later change sorts each group.
    """

    def __init__(
        self,
        init: KState | Sequence[KState],
        *,
        events: Sequence[EnvEvent] = (),
        properties: Sequence[Property[KState]] = (),
        symmetric_slots: Sequence[Sequence[int]] = (),
        name: str = "system",
        topology: Hashable = None,
    ) -> None:
        inits = [init] if isinstance(init, KState) else list(init)
        if not inits:
            raise ValueError("SystemModel needs at least one initial state")
        names = [e.name for e in events]
        if len(set(names)) != len(names):
            raise ValueError(f"environment event names must be unique, got {names}")
        budgets = tuple(e.budget for e in events)
        self._inits = tuple(with_world(s, replace(world(s), budgets=budgets)) for s in inits)
        self.events = tuple(events)
        self._properties = tuple(properties)
        self.symmetric_slots = tuple(tuple(g) for g in symmetric_slots)
        self.name = name
        self.topology = topology
        """The static machine (platform Topology), for names in traces; None without one."""

    # -- Model interface -----------------------------------------------------------------------

    def init_states(self) -> Sequence[KState]:
        """The initial states, each with every event's budget full."""
        return self._inits

    def successors(self, state: KState) -> Iterator[tuple[Action, KState]]:
        """Every enabled (action, next state): threads by tid, then events in order."""
        w = world(state)
        for t in w.threads:
            if t.done:
                continue
            out = run_step(state, t)
            if isinstance(out, KState):
                yield ThreadStep(t.tid, t.name, t.pc), out
            elif isinstance(out, Branches):
                seen: list[KState] = []
                for label, thunk in out.alternatives:
                    r = thunk()
                    # Alternatives that end in the same state (a timeout branch once the fence
                    # has signalled) are one action: the first label.
                    if isinstance(r, KState) and r not in seen:
                        seen.append(r)
                        yield ThreadStep(t.tid, t.name, t.pc, label), r
        for i, ev in enumerate(self.events):
            if w.budgets[i] > 0 and (ev.guard is None or ev.guard(state)):
                yield EnvStep(i, ev.name), self._fire(state, i)

    def actions(self, state: KState) -> Iterable[Action]:
        """The enabled actions, in the order of ``successors``."""
        return [a for a, _ in self.successors(state)]

    def next_state(self, state: KState, action: Action) -> KState | None:
        """The state after ``action``, or None when it is not enabled in ``state``."""
        if isinstance(action, EnvStep):
            w = world(state)
            if not 0 <= action.index < len(self.events):
                return None
            ev = self.events[action.index]
            if ev.name != action.event or w.budgets[action.index] <= 0:
                return None
            if ev.guard is not None and not ev.guard(state):
                return None
            return self._fire(state, action.index)
        r = self._run_thread_step(state, action)
        return r if isinstance(r, KState) else None

    def properties(self) -> Sequence[Property[KState]]:
        """The properties given at construction."""
        return self._properties

    def property(self, name: str) -> Property[KState]:
        """The property called ``name``; KeyError listing the names this model has."""
        for p in self._properties:
            if p.name == name:
                return p
        known = ", ".join(p.name for p in self._properties) or "none"
        raise KeyError(f"model {self.name!r} has no property {name!r}; it has: {known}")

    def deadlock(self, state: KState) -> str | None:
        """For a state with nothing enabled: the waits-for explanation, or None if all done."""
        if all(t.done for t in world(state).threads):
            return None
        return explain_blocked(state) or "deadlock: unfinished threads but none is blocked"

    def format_action(self, action: Action) -> str:
        """``T1 importer-map: pin and map`` or ``env: FLR``."""
        return str(action)

    def format_state(self, state: KState) -> str:
        """A compact multi-line rendering of threads, locks, buffers and warnings."""
        return format_system_state(state)

    def action_to_json(self, action: Action) -> object:
        """The action as a tagged JSON object."""
        if isinstance(action, EnvStep):
            return {"type": "EnvStep", "index": action.index, "event": action.event}
        return {
            "type": "ThreadStep",
            "tid": action.tid,
            "thread": action.thread,
            "pc": action.pc,
            "branch": action.branch,
        }

    # -- helpers ---------------------------------------------------------------------------------

    def _fire(self, state: KState, index: int) -> KState:
        ev = self.events[index]
        w = world(state)
        budgets = (*w.budgets[:index], w.budgets[index] - 1, *w.budgets[index + 1 :])
        s = with_world(state, replace(w, budgets=budgets))
        s, _ = spawn(s, ev.program, ev.thread_name, **dict(ev.locals))
        return s

    def _run_thread_step(self, state: KState, action: ThreadStep) -> KState | Blocked | None:
        threads = world(state).threads
        if not 0 <= action.tid < len(threads):
            return None
        t = threads[action.tid]
        if t.done or t.pc != action.pc:
            return None
        out = run_step(state, t)
        if isinstance(out, Branches):
            for label, thunk in out.alternatives:
                if label == action.branch:
                    return thunk()
            return None
        return out if not action.branch else None

    def describe_step(self, state: KState, action: Action) -> list[str]:
        """describe_step - the kernel-call log lines of ``action`` from ``state``, then effects.

        Re-runs the step under a recorder: ``T2 iommufd-map: dma_buf_pin(attach0) = 0`` per
        emitted call, then one ``=> takes resv0, signals fence1, WARN: ...`` line when the state
        changed in a way a reader cares about. ValueError when the action is not enabled.
        """
        with recording() as lines:
            if isinstance(action, EnvStep):
                after = self.next_state(state, action)
            else:
                r = self._run_thread_step(state, action)
                after = r if isinstance(r, KState) else None
        if after is None:
            raise ValueError(f"action {action} is not enabled in this state")
        if isinstance(action, EnvStep):
            # The event's only effect is the spawn, which the line already says.
            return [f"env: {action.event} starts {world(after).threads[-1]}"]
        prefix = f"T{action.tid} {action.thread}: "
        out = [prefix + line for line in lines] or [prefix + action.pc]
        if action.branch:
            out[0] += f" [{action.branch}]"
        effects = step_effects(state, after)
        if effects:
            out.append("    => " + ", ".join(effects))
        return out

    def describe_trace(self, actions: Sequence[Action], init: KState | None = None) -> list[str]:
        """describe_trace - number and describe each action of a trace from ``init``.

        ``init`` defaults to the first initial state. ValueError names the first action that is
        not enabled.
        """
        s = self._inits[0] if init is None else init
        out: list[str] = []
        for n, action in enumerate(actions, start=1):
            try:
                lines = self.describe_step(s, action)
            except ValueError as exc:
                raise ValueError(f"step {n}: {exc}") from None
            out.append(f"{n:3}. {lines[0]}")
            out.extend(f"     {line}" for line in lines[1:])
            nxt = self.next_state(s, action)
            assert nxt is not None
            s = nxt
        return out


def _lock_name(lock: Mutex | RwSemaphore) -> str:
    return lock.name


def step_effects(before: KState, after: KState) -> list[str]:
    """step_effects - what a step changed that a trace reader cares about, as short phrases.

    Locks and resvs taken or released, fences signalled, sg_tables mapped or unmapped, threads
    spawned or exited, and new kernel warnings.
    """
    out: list[str] = []
    for i, new_resv in enumerate(after.resvs):
        old_resv = before.resvs[i] if i < len(before.resvs) else DmaResv()
        if old_resv.holder != new_resv.holder:
            if old_resv.holder != NO_TID:
                out.append(f"releases resv{i}")
            if new_resv.holder != NO_TID:
                out.append(f"takes resv{i}")
    for i, new_lock in enumerate(after.locks):
        old_lock = before.locks[i] if i < len(before.locks) else None
        out.extend(_lock_changes(old_lock, new_lock))
    for i, fence in enumerate(after.fences):
        was = before.fences[i].signaled if i < len(before.fences) else False
        if fence.signaled and not was:
            err = f" (error {fence.error})" if fence.error else ""
            out.append(f"signals fence{i}{err}")
    for i, sgt in enumerate(after.sg_tables):
        was_live = before.sg_tables[i].live if i < len(before.sg_tables) else None
        if was_live is None and sgt.live:
            out.append(f"maps sgt{i}")
        elif was_live and not sgt.live:
            out.append(f"unmaps sgt{i}")
    old_threads = world(before).threads
    for t in world(after).threads:
        if t.tid >= len(old_threads):
            out.append(f"spawns {t}")
        elif t.done and not old_threads[t.tid].done:
            ret = t.local("ret")
            out.append(f"{t} exits" + (f" ({ret})" if ret is not None else ""))
    out.extend(str(w) for w in after.warnings if w not in before.warnings)
    return out


def _lock_changes(old: Mutex | RwSemaphore | None, new: Mutex | RwSemaphore) -> list[str]:
    name = _lock_name(new)
    out: list[str] = []
    if isinstance(new, Mutex):
        old_holder = old.holder if isinstance(old, Mutex) else NO_TID
        if old_holder != new.holder:
            if old_holder != NO_TID:
                out.append(f"releases {name}")
            if new.holder != NO_TID:
                out.append(f"takes {name}")
        return out
    old_writer = old.writer if isinstance(old, RwSemaphore) else NO_TID
    old_readers = old.readers if isinstance(old, RwSemaphore) else ()
    if old_writer != new.writer:
        if old_writer != NO_TID:
            out.append(f"releases {name} (write)")
        if new.writer != NO_TID:
            out.append(f"takes {name} (write)")
    for tid in new.readers:
        if tid not in old_readers:
            out.append(f"takes {name} (read, T{tid})")
    for tid in old_readers:
        if tid not in new.readers:
            out.append(f"releases {name} (read, T{tid})")
    return out


def format_system_state(s: KState) -> str:
    """format_system_state - threads, lock holders, buffers, attachments, live mappings, warnings.

    One line per object, for traces and the explorer; fields at their defaults are left out.
    """
    lines: list[str] = []
    w = world(s)
    for t in w.threads:
        where = "done" if t.done else f"at {t.pc!r}"
        locs = ", ".join(f"{k}={v!r}" for k, v in t.locals)
        lines.append(f"{t}: {where}" + (f" [{locs}]" if locs else ""))
    for i, r in enumerate(s.resvs):
        holder = f" held by T{r.holder}" if r.holder != NO_TID else ""
        fences = ", ".join(
            f"fence{f}:{u.name}{'*' if s.fences[f].signaled else ''}" for f, u in r.fences
        )
        lines.append(f"resv{i}{holder}" + (f" fences [{fences}]" if fences else ""))
    for lock in s.locks:
        if isinstance(lock, Mutex):
            holder = f" held by T{lock.holder}" if lock.holder != NO_TID else " free"
            lines.append(f"{lock.name}{holder}")
        else:
            parts = []
            if lock.writer != NO_TID:
                parts.append(f"writer T{lock.writer}")
            if lock.readers:
                parts.append("readers " + ",".join(f"T{r}" for r in lock.readers))
            lines.append(f"{lock.name} " + ("; ".join(parts) if parts else "free"))
    for i, b in enumerate(s.bufs):
        state = " released" if b.released else ""
        lines.append(f"buf{i} ({b.exp_name or b.ops.name}) resv{b.resv}{state}")
    for i, a in enumerate(s.attachments):
        kind = "dynamic" if a.importer_ops is not None else "static"
        extra = " detached" if a.detached else ""
        lines.append(
            f"attach{i} buf{a.dmabuf} {a.dev} {kind} pins={a.pins} map_pins={a.map_pins}{extra}"
        )
    for i, sgt in enumerate(s.sg_tables):
        if sgt.live:
            lines.append(f"sgt{i} live on attach{sgt.attach}")
    for slot, d in enumerate(w.drivers):
        lines.append(f"driver[{slot}]: {d!r}")
    if w.platform is not None:
        lines.append(f"platform: {w.platform!r}")
    lines.extend(str(warning) for warning in s.warnings)
    return "\n".join(lines)


__all__ = [
    "Action",
    "EnvEvent",
    "EnvStep",
    "SystemModel",
    "ThreadStep",
    "blocked_on",
    "explain_blocked",
    "format_system_state",
    "run_step",
    "run_thread",
    "step_effects",
]
