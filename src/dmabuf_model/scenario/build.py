"""build: a validated Scenario turned into the checkable SystemModel of its drivers.
The exporters and importers of drivers/ on the scenario's machine, composed by DmaBufSystem.

Building runs every driver's constructor and boot setup (an exporter exports its buffers, an
importer may map at boot), so mistakes only a driver can see (an option value it refuses, a
boot export that fails) surface here, still as ``FILE:LINE: FIELD: ...`` at the driver's table.
Each event a driver offers gets the budget the scenario gives it (0 when not listed), and each
``[[limits]]`` table becomes a guard on the events it names. Models no kernel file itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from dmabuf_model.check.model import Expectation, Property
from dmabuf_model.drivers import exporter_class, importer_class
from dmabuf_model.drivers.base import Driver, Exporter, Importer
from dmabuf_model.drivers.compose import DmaBufSystem
from dmabuf_model.kernel.state import KState
from dmabuf_model.platform.state import platform_init
from dmabuf_model.platform.topology import Topology
from dmabuf_model.scenario.schema import BUDGET_SUFFIX, DriverSpec, Scenario
from dmabuf_model.system.model import EnvEvent, SystemModel
from dmabuf_model.system.threads import recording, system_state, world

SOMETIMES_HOOKS: tuple[str, ...] = (
    "sometimes_properties",
    "revoke_completes",
    "revoked_while_mapped",
)
"""Driver methods that offer nontriviality (sometimes) properties a scenario may add."""

TEARDOWN_EVENTS = frozenset({"unmap", "dereg", "free", "close", "close_buf", "close_memfd"})
"""Event kinds that undo an import; ``explain`` does not run them."""


@dataclass
class BuiltScenario:
    """A scenario built into a model: the system, its drivers by scenario name, and the model.

    ``events`` maps each event kind ``DRIVER.EVENT`` to the names of the environment events it
    produced (memory off and memory on are both ``vfio.mem_disable``); ``driver_events`` are
    each driver's events without the limit guards, for scripted runs (``explain``).
    """

    scenario: Scenario
    design: str
    topology: Topology
    system: DmaBufSystem
    drivers: dict[str, Driver]
    initial_state: KState
    model: SystemModel
    events: dict[str, tuple[str, ...]] = field(default_factory=dict)
    driver_events: dict[str, list[EnvEvent]] = field(default_factory=dict)
    offered_sometimes: list[Property[KState]] = field(default_factory=list)
    boot_lines: dict[str, list[str]] = field(default_factory=dict)

    def exporter(self, name: str) -> Exporter:
        """The exporter called ``name``."""
        d = self.drivers[name]
        assert isinstance(d, Exporter)
        return d

    def importer(self, name: str) -> Importer:
        """The importer called ``name``."""
        d = self.drivers[name]
        assert isinstance(d, Importer)
        return d

    def event_kind(self, event_name: str) -> str | None:
        """The ``DRIVER.EVENT`` kind of an environment event name, or None."""
        for kind, names in self.events.items():
            if event_name in names:
                return kind
        return None


def _driver_class(spec: DriverSpec, role: str) -> type[Driver]:
    return exporter_class(spec.driver) if role == "exporters" else importer_class(spec.driver)


def build(scenario: Scenario, *, design: str | None = None) -> BuiltScenario:
    """build - the BuiltScenario of ``scenario`` under ``design`` (default: the scenario's).

    Drivers get slots in file order, exporters first; each importer imports from its
    ``source``. ScenarioError, at the driver's table, when a driver refuses its options or its
    boot setup fails; at ``[properties]`` for an unknown property name.
    """
    if design is not None and design != scenario.design:
        scenario = scenario.with_design(design)
    topo = scenario.topology()
    system = DmaBufSystem(topo, options={"design": scenario.design})
    drivers: dict[str, Driver] = {}
    for role, specs in (("exporters", scenario.exporters), ("importers", scenario.importers)):
        for i, spec in enumerate(specs):
            cls = _driver_class(spec, role)
            opts = spec.driver_options(cls)
            try:
                if role == "exporters":
                    drv: Driver = system.add_exporter(
                        cls,  # type: ignore[arg-type]
                        device=spec.device,
                        name=spec.name,
                        **opts,
                    )
                else:
                    src = drivers[str(spec.source)]
                    assert isinstance(src, Exporter)
                    drv = system.add_importer(
                        cls,  # type: ignore[arg-type]
                        device=spec.device,
                        source=src,
                        name=spec.name,
                        **opts,
                    )
            except Exception as exc:  # a driver refusing its configuration, in its own words
                raise scenario.error(
                    [role, i],
                    f"{spec.driver} cannot be set up this way: {_one_line(exc)}",
                    f"options and a device {spec.driver} accepts",
                ) from None
            drivers[spec.name] = drv
    boot_lines: dict[str, list[str]] = {}
    init = _boot(scenario, system, boot_lines)

    driver_events: dict[str, list[EnvEvent]] = {}
    events: list[EnvEvent] = []
    for name, drv in drivers.items():
        try:
            evs = list(drv.events())
        except Exception as exc:
            raise scenario.error(
                list(scenario.path_of(name)),
                f"events cannot be listed: {_one_line(exc)}",
                f"options {drv.kind} accepts",
            ) from None
        driver_events[name] = evs
        events.extend(evs)
    kinds = _event_kinds(scenario, system, drivers, driver_events)
    events = _limit_guards(scenario, events, kinds)

    offered: list[Property[KState]] = []
    for drv in drivers.values():
        offered.extend(_offered_sometimes(drv))
    props = _properties(scenario, system.properties(), offered)
    model = SystemModel(init, events=events, properties=props, name=scenario.name, topology=topo)
    return BuiltScenario(
        scenario=scenario,
        design=scenario.design,
        topology=topo,
        system=system,
        drivers=drivers,
        initial_state=init,
        model=model,
        events=kinds,
        driver_events=driver_events,
        offered_sometimes=offered,
        boot_lines=boot_lines,
    )


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if isinstance(exc, ValueError | KeyError) else f"{type(exc).__name__}: {text}"


def _boot(scenario: Scenario, system: DmaBufSystem, lines: dict[str, list[str]]) -> KState:
    """DmaBufSystem.initial_state, one driver at a time, so a failing setup names its table;
    the calls each driver's setup makes are kept in ``lines`` by driver name."""
    s = system_state(
        drivers=tuple(d.init_state() for d in system.drivers),
        platform=platform_init(system.topology),
    )
    for drv in [*system.exporters, *system.importers]:
        try:
            with recording() as got:
                s = drv.setup(s)
            lines[drv.name] = list(got)
        except Exception as exc:
            raise scenario.error(
                list(scenario.path_of(drv.name)),
                f"boot setup of {drv.kind} failed: {_one_line(exc)}",
                "a configuration whose boot steps succeed",
            ) from None
    return s


def _event_kinds(
    scenario: Scenario,
    system: DmaBufSystem,
    drivers: Mapping[str, Driver],
    driver_events: Mapping[str, list[EnvEvent]],
) -> dict[str, tuple[str, ...]]:
    """Which environment events each ``DRIVER.EVENT`` kind produced: build the driver again
    with that one budget at 0 and see which events disappear (a driver's events() is static)."""
    kinds: dict[str, tuple[str, ...]] = {}
    for name, drv in drivers.items():
        spec = scenario.driver(name)
        cls = type(drv)
        all_names = [e.name for e in driver_events[name]]
        for stem, budget in spec.events.items():
            if budget <= 0:
                continue
            opts = spec.driver_options(cls)
            opts[f"{stem}{BUDGET_SUFFIX}"] = 0
            try:
                probe = cls(drv.slot, system.env, device=drv.device, name=drv.name, **opts)
                left = {e.name for e in probe.events()}
            except Exception:
                left = set(all_names)
            kinds[f"{name}.{stem}"] = tuple(n for n in all_names if n not in left)
    return kinds


def _limit_guards(
    scenario: Scenario, events: list[EnvEvent], kinds: Mapping[str, tuple[str, ...]]
) -> list[EnvEvent]:
    """Each ``[[limits]]`` as a guard: an event of a kind that has not happened yet is enabled
    only while fewer than ``at_most`` kinds of the limit have happened."""
    if not scenario.limits:
        return events
    index = {e.name: i for i, e in enumerate(events)}
    initial = [e.budget for e in events]
    groups: list[tuple[list[list[int]], int]] = []
    for lim in scenario.limits:
        members = [[index[n] for n in kinds.get(k, ()) if n in index] for k in lim.events]
        groups.append((members, lim.at_most))

    def started(budgets: Sequence[int], member: list[int]) -> bool:
        return any(budgets[j] < initial[j] for j in member)

    out: list[EnvEvent] = []
    for i, ev in enumerate(events):
        mine = [(members, at_most) for members, at_most in groups if any(i in m for m in members)]
        if not mine:
            out.append(ev)
            continue
        out.append(replace(ev, guard=_guard(ev.guard, i, mine, started)))
    return out


def _guard(
    inner: Callable[[KState], bool] | None,
    index: int,
    groups: list[tuple[list[list[int]], int]],
    started: Callable[[Sequence[int], list[int]], bool],
) -> Callable[[KState], bool]:
    def guard(s: KState) -> bool:
        budgets = world(s).budgets
        for members, at_most in groups:
            own = next(m for m in members if index in m)
            if started(budgets, own):
                continue
            if sum(1 for m in members if started(budgets, m)) >= at_most:
                return False
        return inner is None or inner(s)

    return guard


def _offered_sometimes(drv: Driver) -> list[Property[KState]]:
    out: list[Property[KState]] = []
    for hook in SOMETIMES_HOOKS:
        fn = getattr(drv, hook, None)
        if fn is None:
            continue
        got = fn()
        out.extend([got] if isinstance(got, Property) else list(got))
    return [p for p in out if p.expectation is Expectation.SOMETIMES]


def _properties(
    scenario: Scenario, base: Sequence[Property[KState]], offered: Sequence[Property[KState]]
) -> list[Property[KState]]:
    spec = scenario.properties
    chosen: list[Property[KState]] = list(base)
    offered_names = [p.name for p in offered]
    if spec.sometimes is True:
        chosen.extend(offered)
    elif isinstance(spec.sometimes, tuple):
        for j, name in enumerate(spec.sometimes):
            if name not in offered_names:
                raise scenario.error(
                    ["properties", "sometimes", j],
                    f"{name!r} is not a sometimes property the drivers offer",
                    "one of: " + (", ".join(offered_names) or "(none)"),
                )
        chosen.extend(p for p in offered if p.name in spec.sometimes)
    if spec.only is not None:
        names = [p.name for p in chosen]
        for j, name in enumerate(spec.only):
            if name not in names:
                raise scenario.error(
                    ["properties", "only", j],
                    f"{name!r} is not a property of this scenario",
                    "one of: " + ", ".join(names),
                )
        chosen = [p for p in chosen if p.name in spec.only]
    return chosen


def property_names(built: BuiltScenario) -> list[str]:
    """property_names - the names of the properties the built model checks."""
    return [p.name for p in built.model.properties()]


__all__ = [
    "SOMETIMES_HOOKS",
    "TEARDOWN_EVENTS",
    "BuiltScenario",
    "build",
    "property_names",
]
