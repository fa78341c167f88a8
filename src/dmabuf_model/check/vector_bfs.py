"""The vectorised breadth-first engine for GuardedCommandModel: a numpy pass per command per level.

Each state is one int64 code (mixed radix over the variables' sizes), so a BFS level is a sorted
array of codes, "seen before?" is a lookup in a bitmap with one bit per possible code (or, for
huge code spaces, a binary search in the sorted levels), and a command is applied to every state
of a level at once: decode the variables it reads, evaluate its guard as a boolean array, add the
update's delta to the codes. States are stored exactly, so no fingerprint collision can hide
one. Traces are rebuilt by searching each earlier level for a predecessor, then handed to the
generic path code as action indices, like every other strategy's.
"""

from __future__ import annotations

import contextlib
import itertools
import mmap
import multiprocessing
import os
import signal
import traceback
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any

import numpy as np
import numpy.typing as npt

from dmabuf_model.check.model import Expectation, Property
from dmabuf_model.check.search import RawTrace, Run, Stop, overrides
from dmabuf_model.check.vector import Command, GuardedCommandModel, State
from dmabuf_model.errors import CheckerInternalError, ModelDefinitionError

Codes = npt.NDArray[np.int64]
Mask = npt.NDArray[np.bool_]

CHUNK = 1 << 16
"""States decoded and expanded at a time: bounds the temporary arrays (a few MB)."""
BITMAP_LIMIT = 1 << 31
"""Largest code space stored as a bitmap (256 MB); beyond it, sorted levels and binary search."""
PARALLEL_MIN = 1 << 13
"""Levels smaller than this are expanded in the coordinator alone (no worth in shipping them)."""


FLOAT_EXACT = 1 << 50
"""Below this many codes, floor(code / stride) is computed exactly as a float multiply (4x
faster than int64 division): (code + 0.5) / stride is never within 2^-50 of an integer."""


class Encoding:
    """Mixed-radix codes: code = sum(value[k] * stride[k]), stride[0] = 1."""

    def __init__(self, sizes: Sequence[int]) -> None:
        self.sizes = tuple(sizes)
        strides = []
        total = 1
        for size in sizes:
            strides.append(total)
            total *= size
        self.strides = tuple(strides)
        self.total = total
        self.inverse = tuple(1.0 / s for s in strides)
        self.use_float = total <= FLOAT_EXACT

    def encode(self, state: State) -> int:
        """The code of one state."""
        return sum(v * s for v, s in zip(state, self.strides, strict=True))

    def decode(self, code: int) -> State:
        """The state of one code."""
        return tuple((code // s) % n for s, n in zip(self.strides, self.sizes, strict=True))


class Columns:
    """The ``v`` a guard, update or condition receives on a level: ``v[k]`` decodes variable
    ``k`` of every state (once, then cached).

    Row k is q(k) - q(k + 1) * size[k], where q(k) = floor(code / stride[k]), each q computed
    once and shared by two rows.
    """

    __slots__ = ("_enc", "_half", "_q", "_rows", "codes")

    def __init__(self, enc: Encoding, codes: Codes) -> None:
        self._enc = enc
        self.codes = codes
        self._rows: dict[int, Codes] = {}
        self._q: dict[int, Codes] = {}
        self._half: npt.NDArray[np.float64] | None = None

    def _quotient(self, k: int) -> Codes:
        q = self._q.get(k)
        if q is None:
            enc = self._enc
            if k == 0:
                q = self.codes
            elif enc.use_float:
                half = self._half
                if half is None:
                    half = self.codes.astype(np.float64) + 0.5
                    self._half = half
                q = np.multiply(half, enc.inverse[k]).astype(np.int64)
            else:
                q = self.codes // enc.strides[k]
            self._q[k] = q
        return q

    def __getitem__(self, k: int) -> Codes:
        row = self._rows.get(k)
        if row is None:
            size = self._enc.sizes[k]
            if k == len(self._enc.sizes) - 1:
                row = self._quotient(k)
            else:
                row = self._quotient(k) - self._quotient(k + 1) * size
            self._rows[k] = row
        return row

    def __len__(self) -> int:
        return len(self.codes)


class Subset:
    """``v`` restricted to the states where a guard holds (what an update receives)."""

    __slots__ = ("_cache", "_cols", "_idx")

    def __init__(self, cols: Columns, idx: npt.NDArray[np.intp]) -> None:
        self._cols = cols
        self._idx = idx
        self._cache: dict[int, Codes] = {}

    def __getitem__(self, k: int) -> Codes:
        row = self._cache.get(k)
        if row is None:
            row = self._cols[k][self._idx]
            self._cache[k] = row
        return row

    def __len__(self) -> int:
        return len(self._idx)


def as_mask(value: Any, n: int, what: str) -> Mask:
    """A guard's or condition's result as a bool array of length ``n`` (scalars broadcast)."""
    arr = np.asarray(value)
    if arr.shape == ():
        return np.full(n, bool(arr), dtype=np.bool_)
    if arr.shape != (n,):
        raise ModelDefinitionError(
            f"{what} returned an array of shape {arr.shape}, expected ({n},): it must combine "
            "v[k] elementwise"
        )
    return arr.astype(np.bool_, copy=False)


def _not_elementwise(what: str, exc: Exception) -> ModelDefinitionError:
    return ModelDefinitionError(
        f"{what} cannot be evaluated on a whole level ({exc}). Write it elementwise: combine "
        "comparisons with &, | and parentheses, and use not_(), all_of(), any_of(), where() "
        "from dmabuf_model.check instead of not, and, or, all(), any() and if; or check with "
        "vectorised=False."
    )


class Expander:
    """Applies every command to a chunk of codes: the successors, the enabled mask, and counts."""

    def __init__(self, model: GuardedCommandModel, enc: Encoding) -> None:
        self.model = model
        self.enc = enc
        self.commands: tuple[Command, ...] = model.commands

    def successors(
        self, codes: Codes, cmd: Command, cols: Columns
    ) -> tuple[npt.NDArray[np.intp], Codes]:
        """Where ``cmd`` is enabled among ``codes`` (indices) and the codes it leads to."""
        try:
            guard = as_mask(cmd.guard(cols), len(codes), f"the guard of command {cmd.name!r}")
        except ValueError as exc:
            raise _not_elementwise(f"the guard of command {cmd.name!r}", exc) from None
        idx = np.flatnonzero(guard)
        if not len(idx):
            return idx, codes[:0]
        sub = Subset(cols, idx)
        try:
            update = cmd.update(sub)
        except ValueError as exc:
            raise _not_elementwise(f"the update of command {cmd.name!r}", exc) from None
        nxt = codes[idx]
        for k, value in update.items():
            size = self.enc.sizes[k]
            new = np.asarray(value, dtype=np.int64)
            if new.size and (int(new.min()) < 0 or int(new.max()) >= size):
                bad = int(new.min()) if int(new.min()) < 0 else int(new.max())
                raise ModelDefinitionError(
                    f"command {cmd.name!r} sets {self.model.variables[k]} = {bad}, outside its "
                    f"values 0..{size - 1}"
                )
            nxt = nxt + (new - sub[k]) * self.enc.strides[k]
        return idx, nxt

    def expand(
        self, codes: Codes, seen: Callable[[Codes], Mask], terminals: bool
    ) -> tuple[list[Codes], int, Codes | None]:
        """Successor codes not yet seen (per command, unsorted), the transition count, and the
        codes with no enabled command (when ``terminals``)."""
        parts: list[Codes] = []
        transitions = 0
        cols = Columns(self.enc, codes)
        enabled = np.zeros(len(codes), dtype=np.bool_) if terminals else None
        for cmd in self.commands:
            idx, nxt = self.successors(codes, cmd, cols)
            if not len(idx):
                continue
            transitions += len(nxt)
            if enabled is not None:
                enabled[idx] = True
            parts.append(nxt[~seen(nxt)])
        dead = codes[~enabled] if enabled is not None else None
        return parts, transitions, dead


class Bitmap:
    """One bit per possible code; can live in shared memory for the parallel workers."""

    def __init__(self, total: int, *, shared: bool = False) -> None:
        n = (total + 7) // 8
        self._mm: mmap.mmap | None = None
        if shared:
            self._mm = mmap.mmap(-1, max(n, 1))
            self.bits = np.frombuffer(self._mm, dtype=np.uint8, count=n)
        else:
            self.bits = np.zeros(n, dtype=np.uint8)

    def contains(self, codes: Codes) -> Mask:
        """Which codes are set."""
        shift = (codes & 7).astype(np.uint8)
        hit: Mask = ((self.bits[codes >> 3] >> shift) & 1).astype(np.bool_)
        return hit

    def add(self, codes: Codes) -> None:
        """Set sorted, distinct codes."""
        if not len(codes):
            return
        byte = codes >> 3
        bit = np.left_shift(np.uint8(1), (codes & 7).astype(np.uint8))
        starts = np.flatnonzero(np.concatenate(([True], byte[1:] != byte[:-1])))
        self.bits[byte[starts]] |= np.bitwise_or.reduceat(bit, starts)

    @property
    def nbytes(self) -> int:
        """Bytes of the bitmap."""
        return int(self.bits.nbytes)


class SortedLevels:
    """Seen-set for code spaces too big for a bitmap: binary search in sorted arrays, merged
    into one array every few levels."""

    def __init__(self) -> None:
        self.merged: Codes = np.zeros(0, dtype=np.int64)
        self.recent: list[Codes] = []

    def contains(self, codes: Codes) -> Mask:
        """Which codes were added."""
        hit = np.zeros(len(codes), dtype=np.bool_)
        for arr in (self.merged, *self.recent):
            if len(arr):
                pos = np.searchsorted(arr, codes)
                pos[pos == len(arr)] = len(arr) - 1
                hit |= arr[pos] == codes
        return hit

    def add(self, codes: Codes) -> None:
        """Add sorted, distinct codes."""
        self.recent.append(codes)
        if len(self.recent) > 8:
            self.merged = np.sort(np.concatenate([self.merged, *self.recent]), kind="stable")
            self.recent = []

    @property
    def nbytes(self) -> int:
        """Bytes of the merged array and the recent levels."""
        return int(self.merged.nbytes + sum(a.nbytes for a in self.recent))


def sorted_unique(parts: list[Codes]) -> Codes:
    """The distinct codes of ``parts``, ascending."""
    if not parts:
        return np.zeros(0, dtype=np.int64)
    allc = np.concatenate(parts)
    if not len(allc):
        return allc
    allc.sort(kind="stable")
    keep = np.empty(len(allc), dtype=np.bool_)
    keep[0] = True
    np.not_equal(allc[1:], allc[:-1], out=keep[1:])
    return allc[keep]


def run_vector_bfs(run: Run[State, Command], workers: int = 1) -> None:
    """run_vector_bfs - breadth-first search of a GuardedCommandModel, a level at a time.

    Same states, depths and verdicts as run_bfs; the counterexample is a shortest one, though
    not always the same shortest one (levels are processed in code order, not discovery
    order). With ``workers`` > 1 and a bitmap-sized code space, the level is split between the
    coordinator and ``workers - 1`` forked processes that share the bitmap.
    """
    model = run.model
    if not isinstance(model, GuardedCommandModel):
        raise CheckerInternalError("run_vector_bfs needs a GuardedCommandModel")
    enc = Encoding(model.sizes)
    expander = Expander(model, enc)
    use_bitmap = enc.total <= BITMAP_LIMIT
    parallel = workers > 1 and use_bitmap
    if workers > 1 and not use_bitmap:
        run.notes.append(
            "Parallel vectorised search needs a bitmap-sized code space; ran on one core."
        )
    store: Bitmap | SortedLevels = (
        Bitmap(enc.total, shared=parallel) if use_bitmap else SortedLevels()
    )
    run.fingerprint_bits = None
    run.workers = workers if parallel else 1
    levels: list[Codes] = []
    pool: _Pool | None = None
    transitions = 0
    unique = 0
    try:
        init_codes = []
        for s in run.inits:
            if len(s) != len(enc.sizes) or any(
                not 0 <= v < n for v, n in zip(s, enc.sizes, strict=False)
            ):
                raise ModelDefinitionError(
                    f"initial state {s!r} of {type(model).__name__} does not fit its variables "
                    f"{model.variables} with sizes {model.sizes}"
                )
            init_codes.append(enc.encode(s))
        level = np.unique(np.array(init_codes, dtype=np.int64))
        if run.max_states is not None and len(level) > run.max_states:
            level = level[: run.max_states]
            run.limit(f"max_states={run.max_states} reached")
        store.add(level)
        levels.append(level)
        unique = len(level)
        run.states = len(run.inits)
        _check_level(run, enc, levels, model)
        if run.limits:
            raise Stop
        if parallel:
            pool = _Pool(model, enc, store, workers - 1)
        while len(level):
            run.depth = len(levels)
            run.unique = unique
            if run.max_depth is not None and len(levels) >= run.max_depth:
                parts, _t, _d = _expand_level(expander, store, level, False, None, run)
                if len(sorted_unique(parts)):
                    run.limit(f"max_depth={run.max_depth} reached")
                break
            terminals = run.wants_deadlocks()
            parts, trans, dead = _expand_level(expander, store, level, terminals, pool, run)
            transitions += trans
            run.states = len(run.inits) + transitions
            if dead is not None and len(dead):
                _check_deadlocks(run, enc, levels, model, dead)
            new = sorted_unique(parts)
            full = run.max_states is not None and unique + len(new) >= run.max_states
            if run.max_states is not None and full:
                new = new[: run.max_states - unique]
            store.add(new)
            unique += len(new)
            if len(new):
                levels.append(new)
                _check_level(run, enc, levels, model)
            if full:
                run.limit(f"max_states={run.max_states} reached")
                raise Stop
            level = new
            run.tick(unique, len(levels))
    except Stop:
        pass
    except KeyboardInterrupt:
        run.interrupted = True
    finally:
        if pool is not None:
            pool.close()
        run.states = len(run.inits) + transitions
        run.transitions = transitions
        run.unique = unique
        run.depth = len(levels)
        run.store_bytes = store.nbytes + sum(int(a.nbytes) for a in levels)


def _expand_level(
    expander: Expander,
    store: Bitmap | SortedLevels,
    level: Codes,
    terminals: bool,
    pool: _Pool | None,
    run: Run[State, Command],
) -> tuple[list[Codes], int, Codes | None]:
    """Expand a whole level in chunks (split with the pool's workers when there is one)."""
    if pool is not None and len(level) >= PARALLEL_MIN:
        return pool.expand(expander, level, terminals)
    parts: list[Codes] = []
    transitions = 0
    deads: list[Codes] = []
    for start in range(0, len(level), CHUNK):
        chunk_parts, trans, dead = expander.expand(
            level[start : start + CHUNK], store.contains, terminals
        )
        parts.extend(chunk_parts)
        transitions += trans
        if dead is not None:
            deads.append(dead)
        run.tick(run.unique, run.depth)
    return parts, transitions, (np.concatenate(deads) if deads else None)


def _check_level(
    run: Run[State, Command], enc: Encoding, levels: list[Codes], model: GuardedCommandModel
) -> None:
    """Evaluate the active always/sometimes properties on the newest level."""
    level = levels[-1]
    props: list[Property[State]] = [*run.active_always, *run.active_sometimes]
    if not props:
        return
    found: list[tuple[Property[State], int]] = []
    for start in range(0, len(level), CHUNK):
        codes = level[start : start + CHUNK]
        cols = Columns(enc, codes)
        for prop in props:
            if any(p is prop for p, _ in found):
                continue
            what = f"the condition of property {prop.name!r}"
            try:
                ok = as_mask(prop.condition(cols), len(codes), what)  # type: ignore[arg-type]
            except ValueError as exc:
                raise _not_elementwise(what, exc) from None
            hit = ~ok if prop.expectation is Expectation.ALWAYS else ok
            if hit.any():
                found.append((prop, int(codes[int(np.argmax(hit))])))
    for prop, code in found:
        run.record_property(prop, _trace(model, enc, levels, len(levels) - 1, code))


def _check_deadlocks(
    run: Run[State, Command],
    enc: Encoding,
    levels: list[Codes],
    model: GuardedCommandModel,
    dead: Codes,
) -> None:
    """Ask the model about each end state of the level, in code order, until one deadlocks."""
    if not overrides(model, "deadlock"):
        return
    for code in np.sort(dead):
        why = model.deadlock(enc.decode(int(code)))
        if why is not None:
            run.record_deadlock(why, _trace(model, enc, levels, len(levels) - 1, int(code)))
            return


def _trace(
    model: GuardedCommandModel, enc: Encoding, levels: list[Codes], depth: int, code: int
) -> RawTrace:
    """The raw trace to ``code`` (in ``levels[depth]``): the smallest predecessor code in each
    earlier level, then each step's index among the scalar successors."""
    expander = Expander(model, enc)
    codes = [code]
    for d in range(depth, 0, -1):
        code = _predecessor(expander, levels[d - 1], code)
        codes.append(code)
    codes.reverse()
    states = [enc.decode(c) for c in codes]
    inits = list(model.init_states())
    init_index = inits.index(states[0])
    indices: list[int] = []
    for a, b in itertools.pairwise(states):
        for k, (_c, t) in enumerate(model.successors(a)):
            if t == b:
                indices.append(k)
                break
        else:
            raise CheckerInternalError(
                f"the vectorised and scalar successors of {model.format_state(a)} disagree"
            )
    return RawTrace(init_index, tuple(indices))


def _predecessor(expander: Expander, level: Codes, target: int) -> int:
    for start in range(0, len(level), CHUNK):
        codes = level[start : start + CHUNK]
        cols = Columns(expander.enc, codes)
        best: int | None = None
        for cmd in expander.commands:
            idx, nxt = expander.successors(codes, cmd, cols)
            match = nxt == target
            if match.any():
                cand = int(codes[idx[match]].min())
                best = cand if best is None else min(best, cand)
        if best is not None:
            return best
    raise CheckerInternalError(f"no predecessor found for state code {target}")


class _Pool:
    """Forked workers that expand slices of a level against the shared bitmap."""

    def __init__(
        self, model: GuardedCommandModel, enc: Encoding, store: Bitmap | SortedLevels, n: int
    ) -> None:
        ctx = multiprocessing.get_context("fork")
        self._contains: Callable[[Codes], Mask] = store.contains
        self.conns: list[Connection] = []
        self.procs: list[Any] = []
        for w in range(n):
            mine, theirs = ctx.Pipe()
            proc = ctx.Process(
                target=_pool_worker,
                args=(model, enc, store, theirs),
                name=f"dmabuf-model-vector-{w}",
                daemon=True,
            )
            proc.start()
            theirs.close()
            self.conns.append(mine)
            self.procs.append(proc)

    def expand(
        self, expander: Expander, level: Codes, terminals: bool
    ) -> tuple[list[Codes], int, Codes | None]:
        pieces = np.array_split(level, len(self.conns) + 1)
        for conn, piece in zip(self.conns, pieces[1:], strict=True):
            conn.send((piece.tobytes(), terminals))
        parts: list[Codes] = []
        transitions = 0
        deads: list[Codes] = []
        mine = pieces[0]
        store_contains = self._contains
        for start in range(0, len(mine), CHUNK):
            p, t, d = expander.expand(mine[start : start + CHUNK], store_contains, terminals)
            parts.extend(p)
            transitions += t
            if d is not None:
                deads.append(d)
        for conn in self.conns:
            msg = conn.recv()
            if msg[0] == "error":
                exc, text = msg[1], msg[2]
                if isinstance(exc, BaseException):
                    exc.add_note("raised in a vectorised worker:\n" + text)
                    raise exc
                raise CheckerInternalError("a vectorised worker failed:\n" + text)
            _tag, cand_b, t, dead_b = msg
            parts.append(np.frombuffer(cand_b, dtype=np.int64))
            transitions += t
            if dead_b is not None:
                deads.append(np.frombuffer(dead_b, dtype=np.int64))
        return parts, transitions, (np.concatenate(deads) if terminals and deads else None)

    def close(self) -> None:
        for conn in self.conns:
            with contextlib.suppress(BrokenPipeError, OSError):
                conn.send(None)
        for proc in self.procs:
            proc.join(timeout=2)
            if proc.is_alive():
                proc.terminate()
                proc.join()
        for conn in self.conns:
            conn.close()


def _pool_worker(
    model: GuardedCommandModel, enc: Encoding, store: Bitmap | SortedLevels, conn: Connection
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    expander = Expander(model, enc)
    while True:
        msg = conn.recv()
        if msg is None:
            break
        try:
            codes = np.frombuffer(msg[0], dtype=np.int64)
            terminals = msg[1]
            parts: list[Codes] = []
            transitions = 0
            deads: list[Codes] = []
            for start in range(0, len(codes), CHUNK):
                p, t, d = expander.expand(codes[start : start + CHUNK], store.contains, terminals)
                parts.extend(p)
                transitions += t
                if d is not None:
                    deads.append(d)
            cand = sorted_unique(parts)
            dead = np.concatenate(deads).tobytes() if deads else None
            conn.send(("ok", cand.tobytes(), transitions, dead))
        except BaseException as exc:  # forwarded to the coordinator
            text = traceback.format_exc()
            try:
                conn.send(("error", exc, text))
            except Exception:
                conn.send(("error", None, text))
    conn.close()
    os._exit(0)


__all__ = ["Bitmap", "Columns", "Encoding", "Expander", "SortedLevels", "run_vector_bfs"]
