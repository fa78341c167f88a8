"""Shared helpers of the design tests (no tests here): systems under a design, scripted events.

Each design test builds a real DmaBufSystem whose options name the design (designs/__init__.py),
fires environment events by name and runs their threads to the end, as a user would script it.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from dmabuf_model.drivers.base import Importer
from dmabuf_model.drivers.compose import DmaBufSystem
from dmabuf_model.drivers.vfio_pci import VfioPciExporter
from dmabuf_model.kernel.state import KState
from dmabuf_model.platform.topology import Topology
from dmabuf_model.system.model import EnvStep, SystemModel, run_thread
from dmabuf_model.system.threads import world


def vfio_system(
    design: str, importer: type[Importer] | None = None, **imp: Any
) -> tuple[DmaBufSystem, VfioPciExporter, Any]:
    """A vfio-pci BAR (one FLR) under ``design`` and, optionally, one importer on dev1."""
    system = DmaBufSystem(Topology.simple(["vfio0", "dev1"]), options={"design": design})
    vfio = system.add_exporter(VfioPciExporter, device="vfio0")
    assert isinstance(vfio, VfioPciExporter)
    drv = None
    if importer is not None:
        drv = system.add_importer(importer, device="dev1", source=vfio, **imp)
    return system, vfio, drv


def fire(model: SystemModel, s: KState, event: str) -> tuple[KState, int]:
    """Fire the environment event named ``event``; the new state and its thread's tid."""
    for i, ev in enumerate(model.events):
        if ev.name == event:
            nxt = model.next_state(s, EnvStep(i, event))
            assert nxt is not None, f"event {event!r} is not enabled"
            return nxt, len(world(nxt).threads) - 1
    raise KeyError(f"{event!r}; events: {[e.name for e in model.events]}")


def go(model: SystemModel, s: KState, event: str) -> tuple[KState, Hashable]:
    """Fire ``event`` and run its thread (and any DMA engine it started) to the end."""
    s, tid = fire(model, s, event)
    s = run_thread(s, tid)
    for t in world(s).threads:
        if not t.done and t.name.endswith("DMA engine"):
            s = run_thread(s, t.tid)
    return s, world(s).threads[tid].local("ret")


def labels(model: SystemModel, event: str) -> list[str]:
    """The step labels of the program ``event`` starts."""
    for ev in model.events:
        if ev.name == event:
            return [label for label, _ in ev.program.steps]
    raise KeyError(event)
