"""Traces: a path of (action, state) steps from an initial state, that replays to the same states.

A counterexample is only useful if it can be run again (style-guide B1.4). Every strategy stores a
path as an initial-state index and action indices (TLC and stateright do the same), and this
module rebuilds the concrete states by replaying them; it also replays user-given actions.

A path's token is its indices joined by "/": the first number picks the initial state, each
further number picks the n-th enabled (action, next state) pair that ``Model.successors`` yields.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from dmabuf_model.check.model import Model
from dmabuf_model.errors import ModelDefinitionError, ReplayError

S = TypeVar("S", bound=Hashable)
A = TypeVar("A", bound=Hashable)

_NONDETERMINISM = (
    "The model produced different actions for the same state. This usually means actions() "
    "or successors() iterates a set or a dict whose order depends on PYTHONHASHSEED, or reads "
    "the clock, randomness or other outside state; return them in a deterministic order."
)

_MAX_LOOP_UNROLLINGS = 4096


@dataclass(frozen=True, slots=True)
class Step(Generic[S, A]):
    """One step of a path: the action taken (None for the initial state) and the state after it.

    ``action_index`` is the position of the pair among ``model.successors(previous state)``, or
    for step 0 the position of the initial state among ``model.init_states()``.
    """

    index: int
    action: A | None
    state: S
    action_index: int


@dataclass(frozen=True)
class Path(Generic[S, A]):
    """A trace from an initial state: ``steps[0]`` is the initial state, then one step per action.

    ``loop_start`` is set on a lasso (a liveness counterexample that cycles): the last state
    equals the state of step ``loop_start``, so steps ``loop_start + 1`` to the end repeat
    forever.
    """

    steps: tuple[Step[S, A], ...]
    loop_start: int | None = None

    def __len__(self) -> int:
        """The number of actions (steps after the initial state)."""
        return len(self.steps) - 1

    @property
    def init_index(self) -> int:
        """Which of ``model.init_states()`` the path starts from."""
        return self.steps[0].action_index

    @property
    def actions(self) -> list[A]:
        """The actions, in order (the initial state has none)."""
        return [s.action for s in self.steps[1:] if s.action is not None]

    @property
    def states(self) -> list[S]:
        """Every state, the initial state first."""
        return [s.state for s in self.steps]

    @property
    def last_state(self) -> S:
        """The state the path ends in."""
        return self.steps[-1].state

    @property
    def action_indices(self) -> tuple[int, ...]:
        """The successor index of each action (the token without its first number)."""
        return tuple(s.action_index for s in self.steps[1:])

    @property
    def token(self) -> str:
        """The replay token: the initial-state index, then each action index, joined by "/"."""
        return "/".join(str(s.action_index) for s in self.steps)

    def format(self, model: Model[S, A], *, verbose: bool = False, indent: str = "  ") -> str:
        """The path as text, one line per step ``  3. <format_action>``; a lasso marks its loop.

        With ``verbose`` each step is followed by the state it leads to (``model.format_state``).
        """
        lines: list[str] = []
        if verbose:
            lines.append(f"{indent}0. initial state: {model.format_state(self.steps[0].state)}")
        for step in self.steps[1:]:
            if self.loop_start is not None and step.index == self.loop_start + 1:
                lines.append(f"{indent}-- loop: the steps below repeat forever --")
            assert step.action is not None
            lines.append(f"{indent}{step.index}. {model.format_action(step.action)}")
            if verbose:
                lines.append(f"{indent}   -> {model.format_state(step.state)}")
        if self.loop_start is not None:
            back = "the initial state" if self.loop_start == 0 else f"step {self.loop_start}"
            lines.append(f"{indent}-- back to the state after {back} --")
        return "\n".join(lines)

    def to_json(
        self, model: Model[S, A], *, property: str | None = None, kind: str | None = None
    ) -> dict[str, Any]:
        """The documented JSON trace form (docs/checker.md, "Trace JSON").

        ``{"model", "property", "kind", "token", "steps": [{"index", "action", "state"}],
        "loop_start"}``; step 0 is the initial state and its action is null.
        """
        return {
            "model": type(model).__name__,
            "property": property,
            "kind": kind,
            "token": self.token,
            "steps": [
                {
                    "index": s.index,
                    "action": None if s.action is None else model.action_to_json(s.action),
                    "state": model.state_to_json(s.state),
                }
                for s in self.steps
            ],
            "loop_start": self.loop_start,
        }


def replay(
    model: Model[S, A], actions: Sequence[A] | str, *, init_index: int | None = None
) -> Path[S, A]:
    """replay - run a list of actions, or a replay token, again and return the path it takes.

    ``actions`` is either the actions in order (each must equal an action ``model.successors``
    yields at that point) or a token string "0/3/1" as printed in reports (a str is always read
    as a token; wrap a single string action in a list). Without ``init_index`` the actions are
    tried from each initial state in order and the first that replays wins.

    Raises ReplayError, naming the step that failed and what was enabled there.
    """
    if isinstance(actions, str):
        init, indices = parse_token(actions)
        return path_from_indices(model, init, indices, token=actions)
    inits = list(model.init_states())
    if not inits:
        raise ModelDefinitionError(f"{type(model).__name__}.init_states() returned no state.")
    if init_index is not None and not 0 <= init_index < len(inits):
        raise ReplayError(
            f"init_index={init_index} is out of range: the model has {len(inits)} initial "
            f"state(s), numbered 0-{len(inits) - 1}."
        )
    candidates = [init_index] if init_index is not None else list(range(len(inits)))
    best: tuple[int, str] | None = None
    for i in candidates:
        outcome = _replay_from(model, inits[i], i, actions)
        if isinstance(outcome, Path):
            return outcome
        if best is None or outcome[0] > best[0]:
            best = outcome
    assert best is not None
    raise ReplayError(best[1])


def parse_token(token: str) -> tuple[int, tuple[int, ...]]:
    """parse_token - split "0/3/1" into the initial-state index and the action indices.

    Raises ReplayError when the token is not made of non-negative integers joined by "/".
    """
    parts = token.strip().split("/")
    try:
        numbers = [int(p) for p in parts]
    except ValueError:
        raise ReplayError(
            f"token {token!r} is not a replay token: expected non-negative integers joined by "
            "'/', such as '0/3/1' (the first picks the initial state)."
        ) from None
    if any(n < 0 for n in numbers):
        raise ReplayError(f"token {token!r} has a negative index; indices start at 0.")
    return numbers[0], tuple(numbers[1:])


def path_from_indices(
    model: Model[S, A],
    init_index: int,
    indices: Sequence[int],
    loop_start: int | None = None,
    *,
    token: str | None = None,
) -> Path[S, A]:
    """path_from_indices - rebuild a path by replaying action indices from an initial state.

    Raises ReplayError when an index is out of range, which for a trace the checker recorded
    means the model is not deterministic.
    """
    inits = list(model.init_states())
    shown = token if token is not None else "/".join(map(str, (init_index, *indices)))
    if not 0 <= init_index < len(inits):
        raise ReplayError(
            f"token {shown} starts from initial state {init_index}, but the model has "
            f"{len(inits)} initial state(s), numbered 0-{len(inits) - 1}.\n{_NONDETERMINISM}"
        )
    state = inits[init_index]
    steps: list[Step[S, A]] = [Step(0, None, state, init_index)]
    for n, k in enumerate(indices, 1):
        succ = list(model.successors(state))
        if not 0 <= k < len(succ):
            enabled = f"actions 0-{len(succ) - 1} are enabled" if succ else "no action is enabled"
            raise ReplayError(
                f"step {n} of token {shown} asks for action {k}, but only {enabled}.\n"
                f"{_NONDETERMINISM}"
            )
        action, state = succ[k]
        steps.append(Step(n, action, state, k))
    return Path(tuple(steps), loop_start)


def concrete_path(
    model: Model[S, A],
    init_index: int,
    indices: Sequence[int],
    loop_start: int | None = None,
) -> Path[S, A]:
    """concrete_path - turn a trace through symmetry representatives into a real path.

    ``indices`` were recorded while expanding ``model.canonical`` representatives, so they name
    successors of representatives, not of the concrete states. Replay them among
    representatives, then walk the concrete states, at each step taking the first successor
    whose canonical form is the next representative. A lasso whose last state is only
    symmetric to its loop start is unrolled until a concrete state repeats.

    Raises ModelDefinitionError when no successor matches: ``canonical`` does not commute with
    the transitions (the model is not symmetric in the way ``canonical`` claims).
    """
    canon = model.canonical
    inits = list(model.init_states())
    rep = canon(inits[init_index])
    targets: list[S] = []
    for n, k in enumerate(indices, 1):
        succ = list(model.successors(rep))
        if not 0 <= k < len(succ):
            raise ReplayError(
                f"step {n} of a symmetry-reduced trace asks for action {k} of a representative, "
                f"but only {len(succ)} are enabled.\n{_NONDETERMINISM}"
            )
        rep = canon(succ[k][1])
        targets.append(rep)
    state = inits[init_index]
    steps: list[Step[S, A]] = [Step(0, None, state, init_index)]
    for target in targets:
        state = _follow(model, steps, state, target)
    if loop_start is None or steps[-1].state == steps[loop_start].state:
        return Path(tuple(steps), loop_start)
    loop = targets[loop_start:]
    boundary: dict[S, int] = {steps[loop_start].state: loop_start}
    for _ in range(_MAX_LOOP_UNROLLINGS):
        if state in boundary:
            return Path(tuple(steps), boundary[state])
        boundary[state] = len(steps) - 1
        for target in loop:
            state = _follow(model, steps, state, target)
    raise ModelDefinitionError(
        f"a symmetry-reduced lasso of {type(model).__name__} does not close on concrete states "
        f"after {_MAX_LOOP_UNROLLINGS} unrollings; check the property without symmetry=True."
    )


def _follow(model: Model[S, A], steps: list[Step[S, A]], state: S, target: S) -> S:
    """Append the first successor of ``state`` whose representative is ``target``; return it."""
    canon = model.canonical
    for k, (action, nxt) in enumerate(model.successors(state)):
        if canon(nxt) == target:
            steps.append(Step(len(steps), action, nxt, k))
            return nxt
    raise ModelDefinitionError(
        f"{type(model).__name__}.canonical() does not commute with the transitions: after step "
        f"{len(steps) - 1} no successor of the concrete state has the representative the "
        "symmetry-reduced search reached. canonical() must map every state of an orbit to the "
        "same representative, and the model must treat the permuted components alike."
    )


def _replay_from(
    model: Model[S, A], state: S, init_index: int, actions: Sequence[A]
) -> Path[S, A] | tuple[int, str]:
    """Replay ``actions`` from one initial state: the path, or (failing step, message)."""
    steps: list[Step[S, A]] = [Step(0, None, state, init_index)]
    for n, action in enumerate(actions, 1):
        succ = list(model.successors(state))
        for k, (a, nxt) in enumerate(succ):
            if a == action:
                steps.append(Step(n, a, nxt, k))
                state = nxt
                break
        else:
            enabled = ", ".join(model.format_action(a) for a, _ in succ)
            where = "the initial state" if n == 1 else f"the state after step {n - 1}"
            return n, (
                f"step {n}: action {model.format_action(action)!r} is not enabled in {where} "
                f"(starting from initial state {init_index}).\n"
                f"Enabled there: {enabled or 'nothing (an end state)'}.\n"
                "If these actions come from a trace the checker printed: " + _NONDETERMINISM
            )
    return Path(tuple(steps))


__all__ = ["Path", "Step", "concrete_path", "parse_token", "path_from_indices", "replay"]
