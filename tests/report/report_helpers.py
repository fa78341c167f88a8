"""Traces the report tests draw: the checker's own counterexamples on the core examples.

The pin-vs-invalidate race (core-semantics §5.8, §10 #22), the resv/memory_lock ABBA deadlock
(drivers.md §1.7, core-semantics §4), the unlocked importer's kernel warnings (§10 #8), and a
small platform model in which a device writes through a mapping of a BAR that was reset
(core-semantics §10 #22, drivers.md §1.4: the oracle's dma_after_reset). Built once per session.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from dmabuf_model.check import Model, Property, check
from dmabuf_model.kernel.state import KState
from dmabuf_model.platform import (
    Topology,
    dma_engine_run,
    dma_map_phys,
    dma_submit,
    no_dma_violation,
    pci_reset_function,
    platform_init,
)
from dmabuf_model.platform.state import PlatformState
from dmabuf_model.report import Trace, build_trace, discovery_trace
from dmabuf_model.system import (
    EnvEvent,
    SystemModel,
    Thread,
    emit_call,
    finish,
    goto,
    program,
    spawn,
    system_state,
)
from dmabuf_model.system.examples import EXAMPLES, lock_order, pin_invalidate_race
from dmabuf_model.system.threads import platform_state, set_platform_state

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("DMABUF_MODEL_UPDATE_GOLDEN") == "1"


def assert_golden(name: str, text: str) -> None:
    """The text equals golden/NAME; DMABUF_MODEL_UPDATE_GOLDEN=1 rewrites the file instead."""
    path = GOLDEN / name
    if UPDATE:
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), f"differs from {path}"


@cache
def split_race_trace() -> Trace:
    """The shortest counterexample to no_device_mapping_after_revoke (6 steps)."""
    model = pin_invalidate_race("split")
    result = check(model, stop_at_first=False)
    return discovery_trace(
        model,
        result.discoveries["no_device_mapping_after_revoke"],
        scenario={"name": "pin_invalidate_race_split"},
    )


@cache
def deadlock_trace() -> Trace:
    """The ABBA deadlock of lock_order("nested") (2 steps)."""
    model = lock_order("nested")
    result = check(model)
    return discovery_trace(model, result.discoveries["deadlock"], scenario="lock_order")


@cache
def warning_trace() -> Trace:
    """The unlocked importer's pin and map without the resv: two WARNs in one step."""
    model = pin_invalidate_race("unlocked")
    result = check(model)
    return discovery_trace(
        model, result.discoveries["no_kernel_warning"], scenario="pin_invalidate_race_unlocked"
    )


def rebuild_example(scenario: dict[str, Any]) -> Model[Any, Any]:
    """What the CLI will pass to replay_trace: scenario name -> model (here: the examples)."""
    return EXAMPLES[scenario["name"]]()


# --- a small platform model: a device writes through a mapping of a BAR that gets reset ------

TOPO = Topology.simple(["vfio0", "mlx5_0"], switch=True)


def _ps(s: KState) -> PlatformState:
    ps = platform_state(s)
    assert isinstance(ps, PlatformState)
    return ps


def _map_bar(s: KState, t: Thread) -> KState:
    ps, m = dma_map_phys(_ps(s), TOPO, "mlx5_0", TOPO.bar("vfio0"))
    emit_call("dma_map_phys", "mlx5_0, vfio0.bar0", m)
    return goto(set_platform_state(s, ps), t, "write")


def _write(s: KState, t: Thread) -> KState:
    ps, x = dma_submit(_ps(s), TOPO, "mlx5_0", 0, write=True)
    emit_call("dma_submit", "mlx5_0, mapping 0, write", x)
    ps, _ = dma_engine_run(ps, TOPO, "mlx5_0")
    emit_call("dma_engine_run", "mlx5_0")
    return finish(set_platform_state(s, ps), t, ret=0)


def _reset(s: KState, t: Thread) -> KState:
    ps, ret = pci_reset_function(_ps(s), TOPO, "vfio0")
    emit_call("pci_reset_function", "vfio0", ret)
    return finish(set_platform_state(s, ps), t, ret=ret)


DEVICE_DMA = program("device-dma", ("map BAR", _map_bar), ("write", _write))
RESET = program("vfio-reset", ("pci_reset_function", _reset))


def _no_dma_violation(s: KState) -> bool:
    return no_dma_violation(_ps(s))


def platform_model() -> SystemModel:
    """T0 maps vfio0's BAR for mlx5_0 and writes through it; the "reset" event resets vfio0."""
    s = system_state(platform=platform_init(TOPO))
    s, _ = spawn(s, DEVICE_DMA)
    return SystemModel(
        s,
        events=(EnvEvent("reset", RESET),),
        properties=(
            Property.always("no_dma_violation", _no_dma_violation, cite="core-semantics §10 #22"),
        ),
        name="device_dma_after_reset",
    )


@cache
def platform_trace() -> Trace:
    """The counterexample to no_dma_violation: map, reset, write (dma_after_reset)."""
    model = platform_model()
    result = check(model)
    return discovery_trace(
        model, result.discoveries["no_dma_violation"], scenario="platform", topology=TOPO
    )


# --- a model that is not a SystemModel: no calls, actor "model" --------------------------------


class Counter(Model[int, str]):
    """Counts to 3 by "inc"; "always below 2" fails after two steps."""

    def init_states(self) -> Sequence[int]:
        return [0]

    def actions(self, state: int) -> Iterable[str]:
        return ["inc"] if state < 3 else []

    def next_state(self, state: int, action: str) -> int | None:
        return state + 1

    def properties(self) -> Sequence[Property[int]]:
        return [Property.always("below_two", lambda s: s < 2)]


def counter_trace() -> Trace:
    model = Counter()
    path = check(model).discovery("below_two")
    assert path is not None
    return build_trace(model, path, property="below_two")
