"""The generic explicit-state checker: BFS, DFS, parallel, vectorised, simulation, traces.

Stateright's and TLC's ideas for Python models; it knows nothing about DMA-buf (nothing here
imports dmabuf_model.kernel, .drivers, .platform or .system, and a test enforces it), so anyone
can check their own protocol with it. See docs/checker.md.
"""

from dmabuf_model.check.checker import Strategy, check
from dmabuf_model.check.model import DEADLOCK, Expectation, Model, Property
from dmabuf_model.check.path import Path, Step, replay
from dmabuf_model.check.result import CheckResult, Discovery, DiscoveryKind, Statistics
from dmabuf_model.check.simulate import simulate
from dmabuf_model.check.vector import (
    Command,
    GuardedCommandModel,
    all_of,
    any_of,
    not_,
    where,
)
from dmabuf_model.errors import (
    CheckerInternalError,
    ModelDefinitionError,
    ReplayError,
)

__all__ = [
    "DEADLOCK",
    "CheckResult",
    "CheckerInternalError",
    "Command",
    "Discovery",
    "DiscoveryKind",
    "Expectation",
    "GuardedCommandModel",
    "Model",
    "ModelDefinitionError",
    "Path",
    "Property",
    "ReplayError",
    "Statistics",
    "Step",
    "Strategy",
    "all_of",
    "any_of",
    "check",
    "not_",
    "replay",
    "simulate",
    "where",
]
