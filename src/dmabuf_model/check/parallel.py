"""Parallel breadth-first search over every core (multiprocessing, fork), same result as one core.

Level-synchronous: each worker process owns a contiguous slice of the current level, expands it,
drops successors it has already seen (every worker keeps a copy of the fingerprint set) and sends
back only fingerprints, parent indices and action indices. The coordinator deduplicates across
workers in slice order, first one wins, which is exactly the order a sequential search
discovers states in; so the parallel search finds the same states, with the same discovery
indices and the same shortest traces. States never cross a process boundary except when the
coordinator moves a slice's tail to its neighbour to keep the workers balanced.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import traceback
from array import array
from collections.abc import Callable, Hashable
from multiprocessing.connection import Connection
from typing import Any, TypeVar

from dmabuf_model.check.model import Model, Property
from dmabuf_model.check.search import RawTrace, Run, Stop, chain, overrides
from dmabuf_model.check.store import array_bytes, set_bytes_estimate
from dmabuf_model.errors import CheckerInternalError

S = TypeVar("S", bound=Hashable)
A = TypeVar("A", bound=Hashable)

_REBALANCE_SLACK = 0.15
_REBALANCE_MIN = 512


def run_parallel_bfs(run: Run[S, A], workers: int) -> None:
    """run_parallel_bfs - breadth-first search of ``run.model`` with ``workers`` processes.

    Needs the "fork" start method (Linux, macOS with care): the workers inherit the model, so
    it does not have to be picklable; states that move between workers must be picklable.
    Counts and traces equal run_bfs's; statistics count the coordinator's store only.
    """
    model = run.model
    canon = model.canonical if run.symmetry else None
    ctx = multiprocessing.get_context("fork")
    parent = array("q")
    action = array("q")
    fps0: list[int] = []
    frontier0: list[S] = []
    for i, s in enumerate(run.inits):
        key = canon(s) if canon is not None else s
        fp = hash(key)
        if fp in fps0:
            continue
        fps0.append(fp)
        parent.append(-1)
        action.append(i)
        frontier0.append(key)
    run.states = len(run.inits)
    props = [*run.active_always, *run.active_sometimes]
    conns: list[Connection] = []
    procs: list[Any] = []
    for w in range(workers):
        mine, theirs = ctx.Pipe()
        proc = ctx.Process(
            target=_worker,
            args=(model, theirs, run.symmetry, props, set(fps0)),
            name=f"dmabuf-model-check-{w}",
            daemon=True,
        )
        proc.start()
        theirs.close()
        conns.append(mine)
        procs.append(proc)
    transitions = 0
    depth = 0
    sizes = [0] * workers
    try:
        _ask(conns[0], ("extend", frontier0, False))
        sizes[0] = len(frontier0)
        for idx, key in enumerate(frontier0):
            if run.hits(key):
                run.record_hits(key, _tracer(parent, action, idx, canon is not None))
        base = 0
        while sum(sizes):
            depth += 1
            run.depth = depth
            if run.max_depth is not None and depth >= run.max_depth:
                if any(_ask(c, ("probe",)) for c in conns):
                    run.limit(f"max_depth={run.max_depth} reached")
                break
            _rebalance(conns, sizes)
            offsets = [base + sum(sizes[:w]) for w in range(workers)]
            for w, c in enumerate(conns):
                c.send(("expand", offsets[w], run.wants_deadlocks()))
            replies = [_reply(c) for c in conns]
            level_seen: set[int] = set()
            masks: list[bytes] = []
            accepted = [0] * workers
            deadlock: tuple[int, str] | None = None
            full = False
            for w, (fps_b, par_b, act_b, dead, trans) in enumerate(replies):
                transitions += trans
                if dead is not None and (deadlock is None or dead[0] < deadlock[0]):
                    deadlock = dead
                fps = array("q")
                fps.frombytes(fps_b)
                par = array("q")
                par.frombytes(par_b)
                act = array("q")
                act.frombytes(act_b)
                mask = bytearray(len(fps))
                for j, fp in enumerate(fps):
                    if full or fp in level_seen:
                        continue
                    if run.max_states is not None and len(parent) >= run.max_states:
                        full = True
                        continue
                    level_seen.add(fp)
                    mask[j] = 1
                    parent.append(par[j])
                    action.append(act[j])
                    accepted[w] += 1
                masks.append(bytes(mask))
            run.states = len(run.inits) + transitions
            new_fps = array("q", level_seen).tobytes()
            first = len(parent) - sum(accepted)
            names = [p.name for p in props if p.name not in run.found]
            for w, c in enumerate(conns):
                c.send(("accept", masks[w], new_fps, first, names))
                first += accepted[w]
            violations: dict[str, int] = {}
            for c in conns:
                for name, gidx in _reply(c):
                    if name not in violations or gidx < violations[name]:
                        violations[name] = gidx
            base += sum(sizes)
            sizes = accepted
            for prop in props:
                if prop.name in violations and prop.name not in run.found:
                    init, indices = chain(parent, action, violations[prop.name])
                    run.record_property(prop, RawTrace(init, indices, canonical=canon is not None))
            if deadlock is not None and run.wants_deadlocks():
                init, indices = chain(parent, action, deadlock[0])
                run.record_deadlock(
                    deadlock[1], RawTrace(init, indices, canonical=canon is not None)
                )
            if full:
                run.limit(f"max_states={run.max_states} reached")
                raise Stop
            run.tick(len(parent), depth)
    except Stop:
        pass
    except KeyboardInterrupt:
        run.interrupted = True
    finally:
        _shutdown(conns, procs)
        run.states = len(run.inits) + transitions
        run.transitions = transitions
        run.unique = len(parent)
        run.depth = depth + 1 if sum(sizes) and run.stopped else max(depth, 1 if parent else 0)
        # Each worker holds a copy of the fingerprint set; count one copy per worker.
        run.store_bytes = (
            array_bytes(parent) + array_bytes(action) + workers * set_bytes_estimate(len(parent))
        )


def _tracer(parent: array[int], action: array[int], index: int, canonical: bool) -> Any:
    def build() -> RawTrace:
        init, indices = chain(parent, action, index)
        return RawTrace(init, indices, canonical=canonical)

    return build


def _reply(conn: Connection) -> Any:
    """Receive a worker's answer; re-raise an exception the model raised inside the worker."""
    msg = conn.recv()
    if isinstance(msg, tuple) and msg and msg[0] == "error":
        exc, text = msg[1], msg[2]
        if isinstance(exc, BaseException):
            exc.add_note("raised in a parallel worker:\n" + text)
            raise exc
        raise CheckerInternalError("a parallel worker failed:\n" + text)
    return msg


def _ask(conn: Connection, msg: tuple[Any, ...]) -> Any:
    conn.send(msg)
    return _reply(conn)


def _rebalance(conns: list[Connection], sizes: list[int]) -> None:
    """Move slice tails/heads between neighbours so every worker holds about total / workers.

    The concatenation of the slices, in worker order, is the level in discovery order; moving a
    tail to the next worker's head (or a head to the previous worker's tail) keeps that order.
    """
    n = len(sizes)
    total = sum(sizes)
    if n < 2 or total < _REBALANCE_MIN:
        return
    if max(sizes) <= (1 + _REBALANCE_SLACK) * total / n:
        return
    target = [total * (w + 1) // n for w in range(n)]
    for _ in range(n):
        prefix = 0
        moved = False
        for w in range(n - 1):
            prefix += sizes[w]
            diff = prefix - target[w]
            if diff > 0:
                states = _ask(conns[w], ("take", diff, True))
                _ask(conns[w + 1], ("extend", states, True))
            elif diff < 0:
                take = min(-diff, sizes[w + 1])
                if take == 0:
                    continue
                states = _ask(conns[w + 1], ("take", take, False))
                _ask(conns[w], ("extend", states, False))
                diff = -take
            else:
                continue
            sizes[w] -= diff
            sizes[w + 1] += diff
            prefix -= diff
            moved = True
        if not moved:
            return


def _shutdown(conns: list[Connection], procs: list[Any]) -> None:
    for c in conns:
        with contextlib.suppress(BrokenPipeError, OSError):
            c.send(("stop",))
    for p in procs:
        p.join(timeout=2)
        if p.is_alive():
            p.terminate()
            p.join()
    for c in conns:
        c.close()


def _worker(
    model: Model[S, A],
    conn: Connection,
    symmetry: bool,
    props: list[Property[S]],
    seen: set[int],
) -> None:
    """A worker's loop: answer the coordinator's requests until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    canon: Callable[[S], S] | None = model.canonical if symmetry else None
    boundary = model.within_boundary if overrides(model, "within_boundary") else None
    successors = model.successors
    frontier: list[S] = []
    cands: list[S] = []
    while True:
        msg = conn.recv()
        op = msg[0]
        try:
            if op == "stop":
                break
            if op == "expand":
                reply, cands = _expand(
                    model, successors, frontier, msg[1], msg[2], seen, canon, boundary
                )
                conn.send(reply)
            elif op == "accept":
                mask, new_fps, first, names = msg[1], msg[2], msg[3], msg[4]
                fps = array("q")
                fps.frombytes(new_fps)
                seen.update(fps)
                frontier = [t for t, keep in zip(cands, mask, strict=True) if keep]
                cands = []
                active = [p for p in props if p.name in names]
                conn.send(_violations(frontier, first, active))
            elif op == "take":
                n, tail = msg[1], msg[2]
                if tail:
                    part, frontier = frontier[len(frontier) - n :], frontier[: len(frontier) - n]
                else:
                    part, frontier = frontier[:n], frontier[n:]
                conn.send(part)
            elif op == "extend":
                states, at_head = msg[1], msg[2]
                frontier = [*states, *frontier] if at_head else [*frontier, *states]
                conn.send(True)
            elif op == "probe":
                conn.send(_probe(successors, frontier, seen, canon, boundary))
            else:
                raise CheckerInternalError(f"unknown request {op!r}")
        except BaseException as exc:  # forwarded to the coordinator
            text = traceback.format_exc()
            try:
                conn.send(("error", exc, text))
            except Exception:
                conn.send(("error", None, text))
    conn.close()
    os._exit(0)


def _expand(
    model: Model[S, A],
    successors: Callable[[S], Any],
    frontier: list[S],
    offset: int,
    deadlocks: bool,
    seen: set[int],
    canon: Callable[[S], S] | None,
    boundary: Callable[[S], bool] | None,
) -> tuple[tuple[bytes, bytes, bytes, tuple[int, str] | None, int], list[S]]:
    fps = array("q")
    par = array("q")
    act = array("q")
    cands: list[S] = []
    local: set[int] = set()
    dead: tuple[int, str] | None = None
    transitions = 0
    for p, s in enumerate(frontier):
        if boundary is not None and not boundary(s):
            continue
        gidx = offset + p
        n = 0
        for k, (_a, t) in enumerate(successors(s)):
            n += 1
            if canon is not None:
                t = canon(t)
            fp = hash(t)
            if fp in seen or fp in local:
                continue
            local.add(fp)
            fps.append(fp)
            par.append(gidx)
            act.append(k)
            cands.append(t)
        transitions += n
        if n == 0 and deadlocks and dead is None:
            why = model.deadlock(s)
            if why is not None:
                dead = (gidx, why)
    return (fps.tobytes(), par.tobytes(), act.tobytes(), dead, transitions), cands


def _violations(frontier: list[S], first: int, active: list[Property[S]]) -> list[tuple[str, int]]:
    from dmabuf_model.check.model import Expectation

    out: list[tuple[str, int]] = []
    for prop in active:
        want = prop.expectation is Expectation.SOMETIMES
        cond = prop.condition
        for p, s in enumerate(frontier):
            if bool(cond(s)) is want:
                out.append((prop.name, first + p))
                break
    return out


def _probe(
    successors: Callable[[S], Any],
    frontier: list[S],
    seen: set[int],
    canon: Callable[[S], S] | None,
    boundary: Callable[[S], bool] | None,
) -> bool:
    for s in frontier:
        if boundary is not None and not boundary(s):
            continue
        for _a, t in successors(s):
            if hash(canon(t) if canon is not None else t) not in seen:
                return True
    return False


__all__ = ["run_parallel_bfs"]
