"""DmaBufSystem: exporters, importers and a machine composed into one checkable SystemModel.

A scenario (or a test) names a topology, the exporters and the importers and which buffer each
importer takes; this module gives every driver its slot, boots the platform, runs each
exporter's setup (the buffers exist before checking starts) and gathers events and properties.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from dmabuf_model.check.model import Property
from dmabuf_model.drivers.base import Driver, DriverEnv, Exporter, Importer
from dmabuf_model.kernel.state import KState
from dmabuf_model.platform.oracle import no_dma_violation
from dmabuf_model.platform.state import PlatformState, platform_init
from dmabuf_model.platform.topology import Topology
from dmabuf_model.system.model import EnvEvent, SystemModel
from dmabuf_model.system.properties import CORE_PROPERTIES
from dmabuf_model.system.threads import platform_state, system_state


def _no_dma_violation(s: KState) -> bool:
    ps = platform_state(s)
    return not isinstance(ps, PlatformState) or no_dma_violation(ps)


def platform_properties() -> tuple[Property[KState], ...]:
    """platform_properties - the access oracle as a property: no device access reached memory
    after it was revoked, reset, reused or unplugged, and no write after invalidation
    (core-semantics §5.8, §6.5, §10 #22; the oracle's violation kinds)."""
    return (
        Property.always("no_dma_violation", _no_dma_violation, cite="core-semantics §10 #22, §6.5"),
    )


@dataclass
class DmaBufSystem:
    """A machine, its drivers in slot order, and the extra properties to check.

    Build it with ``DmaBufSystem(topology)``, then ``add_exporter``/``add_importer`` (each
    returns the driver object, whose slot is its position), then ``model()``. An importer is
    connected to the exporter whose buffer it imports through ``importer.source``.
    """

    topology: Topology
    options: dict[str, Any] = field(default_factory=dict)
    drivers: list[Driver] = field(default_factory=list)
    extra_properties: list[Property[KState]] = field(default_factory=list)

    @property
    def env(self) -> DriverEnv:
        """The static context every driver of this system shares."""
        return DriverEnv(self.topology, self.options)

    def add_exporter(self, cls: type[Exporter], *, device: str, **kw: Any) -> Exporter:
        """Create an exporter of class ``cls`` on ``device`` in the next slot."""
        drv = cls(len(self.drivers), self.env, device=device, **kw)
        self.drivers.append(drv)
        return drv

    def add_importer(
        self, cls: type[Importer], *, device: str, source: Exporter, **kw: Any
    ) -> Importer:
        """Create an importer of class ``cls`` on ``device`` that imports from ``source``."""
        drv = cls(len(self.drivers), self.env, device=device, **kw)
        drv.source = source
        self.drivers.append(drv)
        return drv

    @property
    def exporters(self) -> list[Exporter]:
        """The exporters, in slot order."""
        return [d for d in self.drivers if isinstance(d, Exporter)]

    @property
    def importers(self) -> list[Importer]:
        """The importers, in slot order."""
        return [d for d in self.drivers if isinstance(d, Importer)]

    def initial_state(self) -> KState:
        """Boot: the platform at power-on, every driver's initial record, then each driver's
        setup (exporters first: the buffers importers take must exist)."""
        ps = platform_init(self.topology)
        s = system_state(drivers=tuple(d.init_state() for d in self.drivers), platform=ps)
        for exp in self.exporters:
            s = exp.setup(s)
        for imp in self.importers:
            s = imp.setup(s)
        return s

    def events(self) -> Sequence[EnvEvent]:
        """Every driver's events, in slot order."""
        return [e for d in self.drivers for e in d.events()]

    def properties(self) -> list[Property[KState]]:
        """The core and platform properties, every driver's, then the extra ones."""
        props = list(CORE_PROPERTIES) + list(platform_properties())
        for d in self.drivers:
            props.extend(d.properties())
        props.extend(self.extra_properties)
        return props

    def model(self, *, name: str = "dmabuf-system") -> SystemModel:
        """The checkable model of this system."""
        return SystemModel(
            self.initial_state(),
            events=self.events(),
            properties=self.properties(),
            name=name,
            topology=self.topology,
        )
