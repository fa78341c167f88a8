"""The exception hierarchy: Python exceptions mean the model, the scenario or the tool is wrong.

Kernel errno results are values and kernel WARN/BUG outcomes are state (style-guide B8); nothing
here is ever raised for them. Each docstring says when the error is raised and its usual causes.
"""

from __future__ import annotations


class DmaBufModelError(Exception):
    """Root of every error this package raises on purpose; catch it to catch them all."""


class ModelDefinitionError(DmaBufModelError):
    """A model, driver or property is declared wrongly.

    Raised before or during a check when the definition itself cannot be right, for example: no
    initial state, an unhashable state, two properties with one name, a property named
    "deadlock" (reserved), ``symmetry=True`` on a model without ``canonical()``, a
    ``canonical()`` that does not commute with the transitions, or a guarded-command expression
    that cannot be evaluated elementwise. The message names the offending item and the fix.
    """


class ScenarioError(DmaBufModelError):
    """A scenario file is malformed: the message names the key, the value and the valid choices.

    ``file``, ``line`` and ``field`` locate the problem when they are known; ``str()`` starts
    with ``file:line: `` (or ``file: ``) so editors can jump to it. The message itself should
    quote the field and value in the user's words, e.g.
    ``importers[1].driver = 'iommufdd' is not a known driver.``
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line
        self.field = field

    def __str__(self) -> str:
        if self.file is None:
            return self.message
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.message}"


class ReplayError(DmaBufModelError):
    """A trace (a list of actions, or an action-index token) does not replay on the model.

    Usual causes: the model is not deterministic (``actions()`` iterates a set or a dict whose
    order depends on PYTHONHASHSEED, or reads the clock, randomness or other external state), the
    model changed since the trace was recorded, or the actions were written by hand and one of
    them is not enabled where it is used. The message says which step failed and what was
    enabled there.
    """


class CheckerInternalError(DmaBufModelError):
    """A bug in the checker itself: please report it with the model that triggered it.

    Nothing the checker reported in the same run can be trusted once this is raised.
    """


__all__ = [
    "CheckerInternalError",
    "DmaBufModelError",
    "ModelDefinitionError",
    "ReplayError",
    "ScenarioError",
]
