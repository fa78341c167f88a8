"""Guarded-command models over bounded integer variables, checkable a whole level at a time.

A model written as guarded commands (Murphi and TLA+ style: each command is a guard and an
update over small integer variables) is an ordinary Model whose state is a tuple of ints, so
every strategy (DFS, simulation, replay, symmetry, liveness) works on it. Because each guard and
update is written with elementwise operators, the same functions also run on numpy arrays that
hold one variable of many states, which lets vector_bfs.py expand a whole BFS level per command.

Writing expressions: a guard, an update or a property condition receives ``v`` and reads variable
``k`` as ``v[k]`` (``k`` is what ``variable``/``array`` returned). ``v[k]`` is an int when one state
is evaluated and a numpy array when a level is. So combine conditions with ``&``, ``|``, ``==``,
``!=``, ``<``, arithmetic, and the helpers ``all_of``, ``any_of``, ``not_`` and ``where``; never
with ``and``, ``or``, ``not`` or ``if``, which numpy cannot apply elementwise (the vectorised engine
raises ModelDefinitionError naming the command if you do). Parenthesise comparisons:
``(v[BUF] == LIVE) & (v[MAP[i]] == UNMAPPED)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dmabuf_model.check.model import Model
from dmabuf_model.errors import ModelDefinitionError

State = tuple[int, ...]
Guard = Callable[[Any], Any]
"""v -> bool (or a bool array): is the command enabled."""
Update = Callable[[Any], Mapping[int, Any]]
"""v -> {variable index: new value (int or int array)}; variables not named keep their value."""

_MAX_CODES = 2**62


@dataclass(frozen=True, eq=False)
class Command:
    """One guarded command: the action type of a GuardedCommandModel; prints as its name.

    Command names are unique within a model, so a command equals (and hashes like) its name:
    ``replay(model, ["map(0)", "revoke"])`` works with plain strings.
    """

    name: str
    index: int
    guard: Guard = field(repr=False)
    update: Update = field(repr=False)

    def __str__(self) -> str:
        return self.name

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Command):
            return self.name == other.name
        if isinstance(other, str):
            return self.name == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.name)


def all_of(values: Iterable[Any]) -> Any:
    """all_of - elementwise AND of conditions (True for none); works on ints and arrays."""
    result: Any = True
    for v in values:
        result = result & v
    return result


def any_of(values: Iterable[Any]) -> Any:
    """any_of - elementwise OR of conditions (False for none); works on ints and arrays."""
    result: Any = False
    for v in values:
        result = result | v
    return result


def not_(value: Any) -> Any:
    """not_ - elementwise negation of a condition; works on bools and bool arrays."""
    if isinstance(value, np.ndarray):
        return np.logical_not(value)
    return not value


def where(condition: Any, if_true: Any, if_false: Any) -> Any:
    """where - elementwise ``if_true if condition else if_false``; works on ints and arrays."""
    if (
        isinstance(condition, np.ndarray)
        or isinstance(if_true, np.ndarray)
        or isinstance(if_false, np.ndarray)
    ):
        return np.where(condition, if_true, if_false)
    return if_true if condition else if_false


class GuardedCommandModel(Model[State, Command]):
    """A Model declared as bounded integer variables and guarded commands.

    Subclass, call ``super().__init__()``, then declare variables with ``variable``/``array``
    and commands with ``command`` (in the order actions should be tried), optionally
    ``symmetric`` for interchangeable array indices, and override ``properties()`` (and
    ``deadlock()``) as for any Model. ``init_states()`` defaults to the declared ``init``
    values; override it for several initial states. Do not override ``actions``,
    ``next_state`` or ``successors``: the vectorised engine would not see the change (it
    refuses to run if you do).
    """

    def __init__(self) -> None:
        self._names: list[str] = []
        self._sizes: list[int] = []
        self._init: list[int] = []
        self._layout: list[tuple[str, tuple[int, ...], bool]] = []
        self._commands: list[Command] = []
        self._symmetric: tuple[tuple[int, ...], ...] = ()

    # -- declaring ------------------------------------------------------------------------------

    def variable(self, name: str, size: int, *, init: int = 0) -> int:
        """variable - declare a variable with values 0..size-1; returns its index for ``v[k]``."""
        self._check_new(name, size, init)
        self._names.append(name)
        self._sizes.append(size)
        self._init.append(init)
        self._layout.append((name, (len(self._names) - 1,), False))
        return len(self._names) - 1

    def array(self, name: str, length: int, size: int, *, init: int = 0) -> tuple[int, ...]:
        """array - declare ``length`` variables ``name[i]`` with values 0..size-1; returns their
        indices."""
        self._check_new(name, size, init)
        if length < 1:
            raise ModelDefinitionError(f"array {name!r} needs length >= 1, got length={length}")
        start = len(self._names)
        for i in range(length):
            self._names.append(f"{name}[{i}]")
            self._sizes.append(size)
            self._init.append(init)
        positions = tuple(range(start, start + length))
        self._layout.append((name, positions, True))
        return positions

    def command(self, name: str, guard: Guard, update: Update) -> Command:
        """command - declare a guarded command; enabled where ``guard(v)`` holds, it sets the
        variables ``update(v)`` names. Commands are tried in declaration order."""
        if any(c.name == name for c in self._commands):
            raise ModelDefinitionError(
                f"{type(self).__name__} declares two commands named {name!r}; command names "
                "appear in traces, so each must be unique (add the index: 'map(3)')."
            )
        cmd = Command(name, len(self._commands), guard, update)
        self._commands.append(cmd)
        return cmd

    def symmetric(self, *arrays: Sequence[int]) -> None:
        """symmetric - declare the indices of these arrays interchangeable, permuted together.

        ``canonical`` then sorts the index tuples (``arrays[0][i], arrays[1][i], ...``), which
        is the exact representative of the orbit when every command and property treats the
        indices alike (for example one ``map``/``dma`` pair per importer).
        """
        if not arrays or len({len(a) for a in arrays}) != 1:
            raise ModelDefinitionError(
                "symmetric() needs one or more arrays of the same length, as returned by array()"
            )
        self._symmetric = tuple(tuple(a) for a in arrays)

    def _check_new(self, name: str, size: int, init: int) -> None:
        if any(n == name for n, _, _ in self._layout):
            raise ModelDefinitionError(f"{type(self).__name__} declares {name!r} twice")
        if size < 1:
            raise ModelDefinitionError(f"variable {name!r} needs size >= 1, got size={size}")
        if not 0 <= init < size:
            raise ModelDefinitionError(
                f"variable {name!r} has init={init}, outside its values 0..{size - 1}"
            )

    # -- what was declared ----------------------------------------------------------------------

    @property
    def variables(self) -> tuple[str, ...]:
        """Every variable's name, in index order (array elements as ``name[i]``)."""
        return tuple(self._names)

    @property
    def sizes(self) -> tuple[int, ...]:
        """Every variable's number of values, in index order."""
        return tuple(self._sizes)

    @property
    def commands(self) -> tuple[Command, ...]:
        """The commands, in the order they are tried."""
        return tuple(self._commands)

    @property
    def symmetric_arrays(self) -> tuple[tuple[int, ...], ...]:
        """The arrays declared interchangeable by ``symmetric``."""
        return self._symmetric

    def vector_blocker(self) -> str:
        """Why the vectorised engine cannot check this model, or "" when it can."""
        if not self._commands:
            return f"{type(self).__name__} declares no command"
        for name in ("actions", "next_state", "successors", "within_boundary"):
            if getattr(type(self), name) is not getattr(GuardedCommandModel, name):
                return f"{type(self).__name__} overrides {name}()"
        total = 1
        for size in self._sizes:
            total *= size
        if total > _MAX_CODES:
            return f"its {len(self._sizes)} variables have {total} combinations, more than 2^62"
        return ""

    # -- the Model interface --------------------------------------------------------------------

    def init_states(self) -> Sequence[State]:
        """The one initial state of the declared ``init`` values."""
        return (tuple(self._init),)

    def actions(self, state: State) -> Iterable[Command]:
        """The commands whose guard holds in ``state``, in declaration order."""
        return [c for c in self._commands if c.guard(state)]

    def next_state(self, state: State, action: Command) -> State | None:
        """The state after ``action``, or None when its guard does not hold."""
        if not action.guard(state):
            return None
        return self._apply(state, action)

    def successors(self, state: State) -> Iterator[tuple[Command, State]]:
        """Every enabled command with its next state, in declaration order."""
        for c in self._commands:
            if c.guard(state):
                yield c, self._apply(state, c)

    def _apply(self, state: State, cmd: Command) -> State:
        new = list(state)
        sizes = self._sizes
        for k, value in cmd.update(state).items():
            v = int(value)
            if not 0 <= v < sizes[k]:
                raise ModelDefinitionError(
                    f"command {cmd.name!r} sets {self._names[k]} = {v}, outside its values "
                    f"0..{sizes[k] - 1}"
                )
            new[k] = v
        return tuple(new)

    def canonical(self, state: State) -> State:
        """The orbit representative under ``symmetric`` (sorted index tuples); else ``state``."""
        arrays = self._symmetric
        if not arrays:
            return state
        rows = sorted(zip(*(tuple(state[p] for p in arr) for arr in arrays), strict=True))
        new = list(state)
        for j, arr in enumerate(arrays):
            for i, p in enumerate(arr):
                new[p] = rows[i][j]
        return tuple(new)

    @property
    def has_symmetry(self) -> bool:
        """True when ``symmetric`` was declared."""
        return bool(self._symmetric)

    def format_action(self, action: Command) -> str:
        """The command's name."""
        return str(action)

    def format_state(self, state: State) -> str:
        """``buf=1 map=[1 0 2] dma=[0 1 0]``."""
        parts = []
        for name, positions, is_array in self._layout:
            if is_array:
                parts.append(f"{name}=[{' '.join(str(state[p]) for p in positions)}]")
            else:
                parts.append(f"{name}={state[positions[0]]}")
        return " ".join(parts)

    def action_to_json(self, action: Command) -> Any:
        """The command's name."""
        return str(action)

    def state_to_json(self, state: State) -> Any:
        """``{"buf": 1, "map": [1, 0, 2], ...}``."""
        out: dict[str, Any] = {}
        for name, positions, is_array in self._layout:
            out[name] = [state[p] for p in positions] if is_array else state[positions[0]]
        return out


__all__ = [
    "Command",
    "Guard",
    "GuardedCommandModel",
    "State",
    "Update",
    "all_of",
    "any_of",
    "not_",
    "where",
]
