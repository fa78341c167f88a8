"""schema: what a scenario file says, as records, and every check that keeps a bad one out.
The platform, the drivers of drivers/ (vfio-pci, iommufd, ...) and their events, as one value.

A scenario is read from TOML (load.py) or given as a dict with the same keys from Python
(``Scenario.from_dict``). The JSON Schema in schemas/scenario.schema.json checks keys, types,
enums and bounds; this module adds what needs the driver registry and the machine: unknown
drivers (with the known list), unknown options and events of a driver (with its known ones), an
importer whose source is not an exporter, a device the platform does not have, an impossible
topology (a function below a switch port that does not exist), and bounds above a sane maximum.
Every problem is a ScenarioError whose text is ``FILE:LINE: FIELD: what is wrong (what was
expected)``. The format is documented in docs/scenarios.md.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError, best_match

from dmabuf_model.designs import DEFAULT_DESIGN, DESIGN_NAMES
from dmabuf_model.drivers import EXPORTERS, IMPORTERS, exporter_class, importer_class
from dmabuf_model.drivers.base import Driver
from dmabuf_model.errors import ScenarioError
from dmabuf_model.platform.topology import (
    Device,
    HostBridge,
    HostBridgeAllow,
    PciBridge,
    PciFunction,
    PciPortType,
    RamRegion,
    Topology,
)
from dmabuf_model.scenario.locate import FieldPath, Key, Locator, field_name

MAX_EVENT_BUDGET = 8
"""The largest number of times one event may happen in a run (a sane bound on the search)."""

COUNT_OPTION_MAX: Mapping[str, int] = {
    "buffers": 8,
    "nr_ranges": 64,
    "size_pages": 4096,
    "offset_pages": 4096,
    "list_limit": 1 << 20,
    "size_limit_mb": 1 << 20,
}
"""Driver options that count objects the model creates, and their sane maximum."""

INT_OPTION_LIMIT = 1 << 40
"""Any other integer option must lie within +- this bound (byte sizes, offsets, indices)."""

VERDICT_FORMS = (
    "holds",
    "violation of PROPERTY",
    "never reached PROPERTY",
    "refused with ERRNO at STEP",
)
"""The verdicts an [expect] section may state (docs/scenarios.md "Expectations")."""

BUDGET_SUFFIX = "_budget"


@cache
def scenario_schema() -> dict[str, Any]:
    """scenario_schema - the JSON Schema of scenario files (schemas/scenario.schema.json)."""
    text = (
        resources.files("dmabuf_model").joinpath("schemas/scenario.schema.json").read_text("utf-8")
    )
    schema = json.loads(text)
    assert isinstance(schema, dict)
    return schema


# --- records -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DriverSpec:
    """One ``[[exporters]]`` or ``[[importers]]`` table: which driver runs on which device.

    ``name`` defaults to the driver identifier and names the driver in traces, limits and
    ``--set``; ``source`` (importers) names the exporter whose buffer is imported; ``options``
    are the driver's own options (Driver.OPTIONS, mainline defaults otherwise); ``events`` are
    how many times each of its events may happen (every event not listed: never).
    """

    driver: str
    device: str
    name: str
    source: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    events: Mapping[str, int] = field(default_factory=dict)

    def driver_options(self, cls: type[Driver]) -> dict[str, Any]:
        """The keyword options for ``cls``: the scenario's options, then every budget option
        of the class from ``events`` (0 for an event the scenario does not list)."""
        opts = dict(self.options)
        for opt in cls.OPTIONS:
            if opt.endswith(BUDGET_SUFFIX):
                opts[opt] = int(self.events.get(opt[: -len(BUDGET_SUFFIX)], 0))
        return opts


@dataclass(frozen=True)
class Limit:
    """A ``[[limits]]`` table: at most ``at_most`` of these kinds of event happen in one run.

    Each kind is ``DRIVER.EVENT``; a kind counts once it has happened, however often its own
    budget lets it happen again (memory off and memory on are one kind, ``mem_disable``).
    """

    events: tuple[str, ...]
    at_most: int


@dataclass(frozen=True)
class PropertiesSpec:
    """The ``[properties]`` table: ``only`` restricts the properties checked to these names;
    ``sometimes`` adds the drivers' nontriviality (sometimes) properties: all (True), none
    (False) or the named ones."""

    only: tuple[str, ...] | None = None
    sometimes: bool | tuple[str, ...] = True


@dataclass(frozen=True)
class CheckSpec:
    """The ``[check]`` table: defaults for ``dmabuf-model check`` (the command line wins)."""

    strategy: str = "bfs"
    max_states: int | None = None
    max_depth: int | None = None
    symmetry: bool = False
    workers: int = 1
    runs: int = 1000
    steps: int = 200
    seed: int = 0


@dataclass(frozen=True)
class ExpectSpec:
    """The ``[expect]`` table (or one of its ``[[expect.variants]]``): the expected verdict.

    ``verdict`` is one of VERDICT_FORMS; ``mentions`` a text the violation's trace (or the
    refusal's explanation) must contain; ``unique_states``/``max_depth`` pinned counts of a
    complete breadth-first check. A variant applies when the run's ``--set`` overrides are
    exactly its ``set``.
    """

    verdict: str
    mentions: str | None = None
    unique_states: int | None = None
    max_depth: int | None = None
    set: Mapping[str, Any] = field(default_factory=dict)
    variants: tuple[ExpectSpec, ...] = ()

    def for_overrides(self, overrides: Mapping[str, Any]) -> ExpectSpec | None:
        """for_overrides - the expectation for a run with these ``--set`` overrides: this one
        without overrides, the variant whose ``set`` equals them, or None."""
        if not overrides:
            return self
        for v in self.variants:
            if dict(v.set) == dict(overrides):
                return v
        return None


@dataclass(frozen=True)
class Scenario:
    """A validated scenario: the platform, the drivers, their events, what to check and expect.

    Build one with ``Scenario.from_dict`` (same keys as the TOML file) or ``load.load``. The
    raw ``data`` is kept (with ``source`` and ``text``) so that errors found later, when the
    system is built, still point at a file line, and so that a trace can carry the scenario.
    """

    name: str
    platform: Mapping[str, Any]
    exporters: tuple[DriverSpec, ...]
    importers: tuple[DriverSpec, ...] = ()
    summary: str = ""
    cites: tuple[str, ...] = ()
    design: str = DEFAULT_DESIGN
    limits: tuple[Limit, ...] = ()
    properties: PropertiesSpec = field(default_factory=PropertiesSpec)
    check: CheckSpec = field(default_factory=CheckSpec)
    expect: ExpectSpec | None = None
    source: str = field(default="<python>", compare=False)
    text: str | None = field(default=None, compare=False, repr=False)
    data: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    locator: Locator = field(default_factory=Locator, compare=False, repr=False)

    @staticmethod
    def from_dict(
        data: Mapping[str, Any],
        *,
        source: str = "<python>",
        text: str | None = None,
        locator: Locator | None = None,
    ) -> Scenario:
        """Scenario.from_dict - validate ``data`` (the TOML document as a dict) and build the
        record. ScenarioError names the first problem (``source:line: field: ...``)."""
        return _Validator(data, source, text, locator).scenario()

    @property
    def drivers(self) -> tuple[DriverSpec, ...]:
        """Exporters then importers, in file order (the driver slots of the system)."""
        return self.exporters + self.importers

    def driver(self, name: str) -> DriverSpec:
        """The driver spec called ``name`` (KeyError otherwise)."""
        for d in self.drivers:
            if d.name == name:
                return d
        raise KeyError(name)

    def path_of(self, name: str) -> FieldPath:
        """The field path of the driver called ``name`` (``("importers", 1)``)."""
        for i, d in enumerate(self.exporters):
            if d.name == name:
                return ("exporters", i)
        for i, d in enumerate(self.importers):
            if d.name == name:
                return ("importers", i)
        raise KeyError(name)

    def error(self, path: Sequence[Key], what: str, expected: str | None = None) -> ScenarioError:
        """error - the ScenarioError for ``path`` in this scenario's file."""
        return scenario_error(self.source, self.locator, path, what, expected)

    def topology(self) -> Topology:
        """topology - the machine of ``[platform]`` (validated when the scenario was made)."""
        return build_topology(self.platform)

    def with_overrides(self, overrides: Mapping[str, Any]) -> Scenario:
        """with_overrides - the scenario with ``--set`` overrides applied and validated again.

        Keys are ``DRIVER.OPTION`` or ``DRIVER.events.EVENT``; ScenarioError for an unknown
        driver or a value the driver refuses, pointing at the driver's table."""
        if not overrides:
            return self
        data = apply_overrides(self, overrides)
        return Scenario.from_dict(data, source=self.source, text=self.text, locator=self.locator)

    def with_design(self, design: str) -> Scenario:
        """with_design - the same scenario under another design (validated)."""
        if design not in DESIGN_NAMES:
            raise ScenarioError(
                f"--design: {design!r} is not a known design "
                f"(expected one of: {', '.join(DESIGN_NAMES)})",
                field="--design",
            )
        return replace(self, design=design)


def scenario_error(
    source: str,
    locator: Locator,
    path: Sequence[Key],
    what: str,
    expected: str | None = None,
) -> ScenarioError:
    """scenario_error - ``SOURCE:LINE: FIELD: what (expected)`` as a ScenarioError, one line."""
    name = field_name(path)
    text = f"{name}: {what}" + (f" ({expected})" if expected else "")
    text = " ".join(text.split())
    return ScenarioError(text, file=source, line=locator.line(path), field=name)


def apply_overrides(scenario: Scenario, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """apply_overrides - a copy of the scenario's data with ``DRIVER.OPTION=VALUE`` and
    ``DRIVER.events.EVENT=N`` set; ScenarioError (field ``--set KEY``) for a bad key."""
    data = copy.deepcopy(dict(scenario.data))
    names = [d.name for d in scenario.drivers]
    for key, value in overrides.items():
        parts = key.split(".")
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[1] != "events"):
            raise ScenarioError(
                f"--set {key}: not a driver setting (expected DRIVER.OPTION=VALUE or "
                "DRIVER.events.EVENT=N)",
                field=f"--set {key}",
            )
        drv = parts[0]
        if drv not in names:
            raise ScenarioError(
                f"--set {key}: {drv!r} is not a driver of scenario {scenario.name!r} "
                f"(expected one of: {', '.join(names)})",
                field=f"--set {key}",
            )
        role, index = scenario.path_of(drv)
        table = data[str(role)][int(index)]
        sub = "events" if len(parts) == 3 else "options"
        table.setdefault(sub, {})[parts[-1]] = value
    return data


# --- topology ------------------------------------------------------------------------------------

_LAYOUTS = {"switch": (True, False), "siblings": (False, True), "root-ports": (False, False)}
_SIMPLE_ONLY = ("layout", "bars", "acs_redirect", "host_bridge_allow")
_CUSTOM_ONLY = ("host_bridges", "bridges")


def _is_custom(platform: Mapping[str, Any]) -> bool:
    return any(isinstance(f, Mapping) for f in platform.get("functions", ()))


def build_topology(platform: Mapping[str, Any]) -> Topology:
    """build_topology - the Topology of a validated ``[platform]`` table.

    Functions given as names use Topology.simple (``layout``: "switch", "siblings" or
    "root-ports"); functions given as tables describe the fabric port by port. ValueError from
    Topology for a fabric the checks let through. drivers.md §6.
    """
    devices = tuple(
        Device(d) if isinstance(d, str) else Device(d["name"], d.get("parent"))
        for d in platform.get("devices", ())
    )
    ram = platform.get("ram", 2)
    ram_pages = int(platform.get("ram_pages", 2))
    regions = (
        tuple(RamRegion(r["name"], int(r.get("pages", ram_pages))) for r in ram)
        if isinstance(ram, list)
        else None
    )
    iommu = bool(platform.get("iommu", True))
    amd_zen = bool(platform.get("amd_zen", False))
    no_p2p = bool(platform.get("no_p2p", False))
    if not _is_custom(platform):
        switch, siblings = _LAYOUTS[platform.get("layout", "switch")]
        topo = Topology.simple(
            list(platform["functions"]),
            switch=switch,
            siblings=siblings,
            bars=tuple(platform.get("bars", (2,))),
            ram=0 if regions is not None else int(ram),
            ram_pages=ram_pages,
            allow=HostBridgeAllow(platform.get("host_bridge_allow", "not_listed")),
            acs_redirect=bool(platform.get("acs_redirect", False)),
            iommu=iommu,
            amd_zen=amd_zen,
            no_p2p=no_p2p,
        )
        return topo.evolve(devices=devices, ram=regions if regions is not None else topo.ram)
    hbs = tuple(
        HostBridge(h["name"], HostBridgeAllow(h.get("allow", "not_listed")))
        for h in platform.get("host_bridges", ({"name": "hb0"},))
    )
    bridges = tuple(
        PciBridge(
            b["name"],
            PciPortType(b["type"]),
            b.get("upstream"),
            b.get("host_bridge", ""),
            bool(b.get("acs_redirect", False)),
        )
        for b in platform.get("bridges", ())
    )
    functions = tuple(
        PciFunction(
            f["name"],
            f.get("upstream"),
            f.get("host_bridge", ""),
            tuple(f.get("bars", (2,))),
            bool(f.get("acs_redirect", False)),
            bool(f.get("intel_display", False)),
            f.get("physfn"),
            bool(f.get("no_soft_reset", False)),
        )
        for f in platform["functions"]
    )
    if regions is None:
        regions = tuple(RamRegion(f"ram{i}", ram_pages) for i in range(int(ram)))
    return Topology(
        host_bridges=hbs,
        bridges=bridges,
        functions=functions,
        devices=devices,
        ram=regions,
        iommu=iommu,
        amd_zen=amd_zen,
        no_p2p=no_p2p,
    )


# --- validation ----------------------------------------------------------------------------------


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, Mapping):
        return "a table"
    return type(value).__name__


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _schema_expected(schema: Mapping[str, Any]) -> str:
    """A short "what was expected" for a (sub)schema, from its type, enum and bounds."""
    if "$ref" in schema:
        ref = str(schema["$ref"]).rsplit("/", 1)[-1]
        target = scenario_schema()["$defs"].get(ref, {})
        if ref == "name":
            return "a name: a letter, then letters, digits, '_' or '-'"
        return _schema_expected(target) if target else ref
    if "enum" in schema:
        return "one of: " + ", ".join(str(e) for e in schema["enum"])
    if "anyOf" in schema:
        return " or ".join(_schema_expected(s) for s in schema["anyOf"])
    if "allOf" in schema:
        return _schema_expected(schema["allOf"][0])
    t = schema.get("type")
    words = {
        "string": "a string",
        "integer": "an integer",
        "boolean": "true or false",
        "array": "an array",
        "object": "a table",
    }
    if isinstance(t, list):
        return " or ".join(words.get(str(x), str(x)) for x in t)
    text = words.get(str(t), str(t)) if t else "a value"
    bounds = []
    if "minimum" in schema:
        bounds.append(f">= {schema['minimum']}")
    if "maximum" in schema:
        bounds.append(f"<= {schema['maximum']}")
    if bounds:
        text += " " + " and ".join(bounds)
    return text


def _describe_schema_error(error: ValidationError) -> tuple[list[Key], str, str | None]:
    """(field path, what is wrong, what was expected) for one jsonschema error."""
    path: list[Key] = list(error.absolute_path)
    v = error.validator
    value = error.instance
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    if v == "required":
        missing = str(error.message).split("'")[1] if "'" in error.message else "?"
        props = schema.get("properties", {})
        expected = _schema_expected(props[missing]) if missing in props else None
        return [*path, missing], "missing", expected
    if v == "additionalProperties":
        known = sorted(schema.get("properties", {}))
        extra = sorted(set(value) - set(known)) if isinstance(value, Mapping) else []
        key = extra[0] if extra else "?"
        expected = "one of: " + ", ".join(known) if known else "no keys here"
        return [*path, key], "unknown key", expected
    if v in ("type", "anyOf", "oneOf", "pattern", "format", "const"):
        if v == "pattern" and isinstance(value, str):
            expected = str(schema.get("description") or _schema_expected(schema))
            return path, f"{_shown(value)} is not allowed here", expected
        return path, f"{_shown(value)} is {_kind(value)}", _schema_expected(schema)
    if v == "enum":
        return path, f"{_shown(value)} is not allowed", _schema_expected(schema)
    if v in ("maximum", "exclusiveMaximum"):
        return path, f"{_shown(value)} is too large", f"at most {error.validator_value}"
    if v in ("minimum", "exclusiveMinimum"):
        return path, f"{_shown(value)} is too small", f"at least {error.validator_value}"
    if v in ("maxItems", "maxProperties"):
        count = len(value) if isinstance(value, list | Mapping) else 0
        return path, f"{count} entries are too many", f"at most {error.validator_value}"
    if v in ("minItems", "minProperties"):
        return path, "too few entries", f"at least {error.validator_value}"
    if v == "maxLength":
        return path, "is too long", f"at most {error.validator_value} characters"
    if v == "minLength":
        return path, "is empty", "a non-empty string"
    return path, " ".join(str(error.message).split()), _schema_expected(schema)


def _first_schema_error(data: Any) -> ValidationError | None:
    validator = jsonschema.Draft202012Validator(scenario_schema())
    errors = list(validator.iter_errors(data))
    if not errors:
        return None
    # The error that best explains the problem (jsonschema's relevance order).
    best: ValidationError | None = best_match(errors)
    return best


class _Validator:
    """One pass over a scenario dict: the schema, then the semantic checks, then the record."""

    def __init__(
        self,
        data: Mapping[str, Any],
        source: str,
        text: str | None,
        locator: Locator | None,
    ) -> None:
        self.data = data
        self.source = source
        self.text = text
        self.locator = locator if locator is not None else Locator(text or "")
        self.classes: dict[str, type[Driver]] = {}

    def fail(self, path: Sequence[Key], what: str, expected: str | None = None) -> ScenarioError:
        return scenario_error(self.source, self.locator, path, what, expected)

    def scenario(self) -> Scenario:
        if not isinstance(self.data, Mapping):
            raise self.fail([], f"the scenario is {_kind(self.data)}", "a table")
        error = _first_schema_error(self.data)
        if error is not None:
            path, what, expected = _describe_schema_error(error)
            raise self.fail(path, what, expected)
        d = self.data
        info = d["scenario"]
        design = info.get("design", DEFAULT_DESIGN)
        if design not in DESIGN_NAMES:
            raise self.fail(
                ["scenario", "design"],
                f"{design!r} is not a known design",
                "one of: " + ", ".join(DESIGN_NAMES),
            )
        platform = d["platform"]
        topo = self.topology(platform)
        exporters = tuple(
            self.driver("exporters", i, t, topo) for i, t in enumerate(d["exporters"])
        )
        importers = tuple(
            self.driver("importers", i, t, topo) for i, t in enumerate(d.get("importers", ()))
        )
        self.names(exporters, importers)
        importers = tuple(self.source_of(i, imp, exporters) for i, imp in enumerate(importers))
        drivers = {s.name: s for s in exporters + importers}
        limits = tuple(self.limit(i, t, drivers) for i, t in enumerate(d.get("limits", ())))
        props = d.get("properties", {})
        sometimes = props.get("sometimes", True)
        properties = PropertiesSpec(
            only=tuple(props["only"]) if "only" in props else None,
            sometimes=tuple(sometimes) if isinstance(sometimes, list) else bool(sometimes),
        )
        chk = d.get("check", {})
        check = CheckSpec(**chk)
        expect = self.expect(d["expect"], drivers) if "expect" in d else None
        return Scenario(
            name=info["name"],
            platform=platform,
            exporters=exporters,
            importers=importers,
            summary=info.get("summary", ""),
            cites=tuple(info.get("cites", ())),
            design=design,
            limits=limits,
            properties=properties,
            check=check,
            expect=expect,
            source=self.source,
            text=self.text,
            data=self.data,
            locator=self.locator,
        )

    # -- platform ---------------------------------------------------------------------------------

    def topology(self, p: Mapping[str, Any]) -> Topology:
        functions = p["functions"]
        custom = _is_custom(p)
        for i, f in enumerate(functions):
            if isinstance(f, Mapping) != custom:
                raise self.fail(
                    ["platform", "functions", i],
                    "mixes names and tables",
                    "every function a name (a simple layout) or every function a table "
                    "(a custom fabric)",
                )
        for key in _SIMPLE_ONLY if custom else _CUSTOM_ONLY:
            if key in p:
                want = "functions given as names" if custom else "functions given as tables"
                raise self.fail(["platform", key], "does not apply to this platform", want)
        fn_names = [f["name"] if custom else f for f in functions]
        bridge_list = list(p.get("bridges", ()))
        bridge_names = [b["name"] for b in bridge_list]
        dev_names = [dv if isinstance(dv, str) else dv["name"] for dv in p.get("devices", ())]
        seen: dict[str, FieldPath] = {}
        groups: list[tuple[str, list[str]]] = [
            ("bridges", bridge_names),
            ("functions", fn_names),
            ("devices", dev_names),
        ]
        for key, names in groups:
            for i, n in enumerate(names):
                if n in seen:
                    raise self.fail(
                        ["platform", key, i],
                        f"name {n!r} is used twice (also at {field_name(seen[n])})",
                        "a name unique among bridges, functions and devices",
                    )
                seen[n] = ("platform", key, i)
        for i, dv in enumerate(p.get("devices", ())):
            if isinstance(dv, Mapping) and "parent" in dv:
                parent = dv["parent"]
                if parent not in fn_names and parent not in dev_names:
                    raise self.fail(
                        ["platform", "devices", i, "parent"],
                        f"{parent!r} is not a function or device of this platform",
                        "one of: " + ", ".join(fn_names + dev_names),
                    )
                if parent == dv["name"]:
                    raise self.fail(
                        ["platform", "devices", i, "parent"],
                        "a device is its own parent",
                        "another function or device",
                    )
        ram = p.get("ram")
        if isinstance(ram, list):
            ram_names = [r["name"] for r in ram]
            for i, n in enumerate(ram_names):
                if n in ram_names[:i]:
                    raise self.fail(
                        ["platform", "ram", i, "name"], f"{n!r} is used twice", "unique names"
                    )
        if custom:
            self.fabric(p, fn_names, bridge_list)
        try:
            return build_topology(p)
        except ValueError as exc:
            raise self.fail(
                ["platform"], f"impossible topology: {exc}", "a PCI tree the kernel could build"
            ) from None

    def fabric(
        self, p: Mapping[str, Any], fn_names: list[str], bridges: list[Mapping[str, Any]]
    ) -> None:
        hbs = [h["name"] for h in p.get("host_bridges", ({"name": "hb0"},))]
        for i, n in enumerate(hbs):
            if n in hbs[:i]:
                raise self.fail(
                    ["platform", "host_bridges", i, "name"], f"{n!r} is used twice", "unique"
                )
        by_name = {b["name"]: b for b in bridges}
        allowed_up = {
            "root_port": (),
            "switch_upstream": ("root_port", "switch_downstream"),
            "switch_downstream": ("switch_upstream",),
        }
        for i, b in enumerate(bridges):
            up = b.get("upstream")
            kind = b["type"]
            where: list[Key] = ["platform", "bridges", i]
            if kind == "root_port":
                if up is not None:
                    raise self.fail(
                        [*where, "upstream"],
                        "a root port has no upstream bridge",
                        "no upstream key; a root port sits on a host bridge",
                    )
                hb = b.get("host_bridge")
                if hb is None and len(hbs) > 1:
                    raise self.fail(where, "host_bridge is missing", "one of: " + ", ".join(hbs))
                if hb is not None and hb not in hbs:
                    raise self.fail(
                        [*where, "host_bridge"],
                        f"{hb!r} is not a host bridge of this platform",
                        "one of: " + ", ".join(hbs),
                    )
                continue
            if up is None:
                raise self.fail(
                    where,
                    f"a {kind} needs an upstream bridge",
                    "upstream = the name of a " + " or ".join(allowed_up[kind]),
                )
            if up not in by_name:
                raise self.fail(
                    [*where, "upstream"],
                    f"{up!r} is not a bridge of this platform",
                    "one of: " + (", ".join(by_name) or "(no bridges)"),
                )
            if by_name[up]["type"] not in allowed_up[kind]:
                raise self.fail(
                    [*where, "upstream"],
                    f"a {kind} cannot sit below {up!r}, a {by_name[up]['type']}",
                    "a " + " or ".join(allowed_up[kind]),
                )
        for i, b in enumerate(bridges):
            node, hops = b, 0
            while node.get("upstream") is not None and hops <= len(bridges):
                node = by_name[node["upstream"]]
                hops += 1
            if hops > len(bridges):
                raise self.fail(["platform", "bridges", i, "upstream"], "the bridges form a loop")
        for i, f in enumerate(p["functions"]):
            fwhere: list[Key] = ["platform", "functions", i]
            up = f.get("upstream")
            if up is not None and up not in by_name:
                raise self.fail(
                    [*fwhere, "upstream"],
                    f"{up!r} is not a bridge of this platform",
                    "one of: " + (", ".join(by_name) or "(no bridges: leave upstream out)"),
                )
            if up is not None and by_name[up]["type"] == "switch_upstream":
                raise self.fail(
                    [*fwhere, "upstream"],
                    f"a function cannot sit directly below {up!r}, a switch upstream port",
                    "a root_port or a switch_downstream port",
                )
            hb = f.get("host_bridge")
            if hb is not None and hb not in hbs:
                raise self.fail(
                    [*fwhere, "host_bridge"],
                    f"{hb!r} is not a host bridge of this platform",
                    "one of: " + ", ".join(hbs),
                )
            if up is None and hb is None and len(hbs) > 1:
                raise self.fail(
                    fwhere,
                    "a function on a root bus needs host_bridge",
                    "one of: " + ", ".join(hbs),
                )
            pf = f.get("physfn")
            if pf is not None and (pf not in fn_names or pf == f["name"]):
                raise self.fail(
                    [*fwhere, "physfn"],
                    f"{pf!r} is not another PCI function of this platform",
                    "one of: " + ", ".join(n for n in fn_names if n != f["name"]),
                )

    # -- drivers ----------------------------------------------------------------------------------

    def driver(self, role: str, i: int, t: Mapping[str, Any], topo: Topology) -> DriverSpec:
        where: list[Key] = [role, i]
        kind = t["driver"]
        registry, other, other_role = (
            (EXPORTERS, IMPORTERS, "an importer")
            if role == "exporters"
            else (IMPORTERS, EXPORTERS, "an exporter")
        )
        if kind not in registry:
            what = f"{kind!r} is not a known {role[:-1]}"
            if kind in other:
                this = "an importer" if role == "importers" else "an exporter"
                what = f"{kind!r} is {other_role}, not {this}"
            raise self.fail([*where, "driver"], what, "one of: " + ", ".join(registry))
        cls = exporter_class(kind) if role == "exporters" else importer_class(kind)
        device = t["device"]
        known_devices = [f.name for f in topo.functions] + [dv.name for dv in topo.devices]
        if device not in known_devices:
            raise self.fail(
                [*where, "device"],
                f"{device!r} is not a device of this platform",
                "one of: " + ", ".join(known_devices),
            )
        options: dict[str, Any] = {}
        for key, value in t.get("options", {}).items():
            options[key] = self.option(cls, [*where, "options", key], key, value)
        stems = sorted(o[: -len(BUDGET_SUFFIX)] for o in cls.OPTIONS if o.endswith(BUDGET_SUFFIX))
        events: dict[str, int] = {}
        for key, value in t.get("events", {}).items():
            if key not in stems:
                raise self.fail(
                    [*where, "events", key],
                    f"{key!r} is not an event of {kind}",
                    "one of: " + (", ".join(stems) or "(none: this driver has no events)"),
                )
            events[key] = int(value)
        name = t.get("name", kind)
        self.classes.setdefault(name, cls)
        return DriverSpec(
            driver=kind,
            device=device,
            name=name,
            source=t.get("source"),
            options=options,
            events=events,
        )

    def option(self, cls: type[Driver], where: list[Key], key: str, value: Any) -> Any:
        known = sorted(o for o in cls.OPTIONS if not o.endswith(BUDGET_SUFFIX))
        if key.endswith(BUDGET_SUFFIX) and key in cls.OPTIONS:
            stem = key[: -len(BUDGET_SUFFIX)]
            raise self.fail(where, "a budget is not an option", f"events.{stem} = N instead")
        if key not in cls.OPTIONS:
            raise self.fail(
                where,
                f"{key!r} is not an option of {cls.kind}",
                "one of: " + (", ".join(known) or "(none: this driver has no options)"),
            )
        default = cls.OPTIONS[key].default
        doc = cls.OPTIONS[key].doc
        if isinstance(default, bool):
            if not isinstance(value, bool | str):
                raise self.fail(where, f"{_shown(value)} is {_kind(value)}", f"a boolean: {doc}")
        elif isinstance(default, int):
            if isinstance(value, bool) or not isinstance(value, int):
                raise self.fail(where, f"{_shown(value)} is {_kind(value)}", f"an integer: {doc}")
        elif isinstance(default, str):
            if not isinstance(value, str):
                raise self.fail(where, f"{_shown(value)} is {_kind(value)}", f"a string: {doc}")
        elif isinstance(default, tuple) and not isinstance(value, list):
            raise self.fail(where, f"{_shown(value)} is {_kind(value)}", f"an array: {doc}")
        if isinstance(value, list):
            value = tuple(value)
        if isinstance(value, int) and not isinstance(value, bool):
            cap = COUNT_OPTION_MAX.get(key)
            if cap is not None and not 0 <= value <= cap:
                raise self.fail(where, f"{value} is out of range", f"0 to {cap}")
            if abs(value) > INT_OPTION_LIMIT:
                raise self.fail(where, f"{value} is too large", f"at most {INT_OPTION_LIMIT}")
        return value

    def names(self, exporters: tuple[DriverSpec, ...], importers: tuple[DriverSpec, ...]) -> None:
        seen: dict[str, FieldPath] = {}
        for role, specs in (("exporters", exporters), ("importers", importers)):
            for i, s in enumerate(specs):
                if s.name in seen:
                    raise self.fail(
                        [role, i, "name"],
                        f"{s.name!r} is already the name of {field_name(seen[s.name])}",
                        "a unique name; give each driver of the same kind its own name",
                    )
                seen[s.name] = (role, i)

    def source_of(self, i: int, imp: DriverSpec, exporters: tuple[DriverSpec, ...]) -> DriverSpec:
        names = [e.name for e in exporters]
        if imp.source is None:
            if len(exporters) == 1:
                return replace(imp, source=exporters[0].name)
            raise self.fail(
                ["importers", i, "source"],
                "missing: the scenario has several exporters",
                "one of: " + ", ".join(names),
            )
        if imp.source not in names:
            raise self.fail(
                ["importers", i, "source"],
                f"{imp.source!r} is not an exporter of this scenario",
                "one of: " + ", ".join(names),
            )
        return imp

    def limit(self, i: int, t: Mapping[str, Any], drivers: Mapping[str, DriverSpec]) -> Limit:
        known = [
            f"{n}.{stem}" for n, spec in drivers.items() for stem, b in spec.events.items() if b
        ]
        for j, ref in enumerate(t["events"]):
            if ref not in known:
                raise self.fail(
                    ["limits", i, "events", j],
                    f"{ref!r} is not an event this scenario lets happen",
                    "one of: " + (", ".join(known) or "(no events: list some under events)"),
                )
        return Limit(tuple(t["events"]), int(t["at_most"]))

    def expect(self, t: Mapping[str, Any], drivers: Mapping[str, DriverSpec]) -> ExpectSpec:
        variants = []
        for i, v in enumerate(t.get("variants", ())):
            for key in v["set"]:
                self.override_key(["expect", "variants", i, "set", key], key, drivers)
            variants.append(
                ExpectSpec(
                    verdict=v["verdict"],
                    mentions=v.get("mentions"),
                    unique_states=v.get("unique_states"),
                    max_depth=v.get("max_depth"),
                    set=dict(v["set"]),
                )
            )
        return ExpectSpec(
            verdict=t["verdict"],
            mentions=t.get("mentions"),
            unique_states=t.get("unique_states"),
            max_depth=t.get("max_depth"),
            variants=tuple(variants),
        )

    def override_key(self, where: list[Key], key: str, drivers: Mapping[str, DriverSpec]) -> None:
        parts = key.split(".")
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[1] != "events"):
            raise self.fail(where, "not a driver setting", "DRIVER.OPTION or DRIVER.events.EVENT")
        if parts[0] not in drivers:
            raise self.fail(
                where,
                f"{parts[0]!r} is not a driver of this scenario",
                "one of: " + ", ".join(drivers),
            )
        spec = drivers[parts[0]]
        cls = self.classes[spec.name]
        option = f"{parts[-1]}{BUDGET_SUFFIX}" if len(parts) == 3 else parts[-1]
        if option not in cls.OPTIONS or (len(parts) == 2 and option.endswith(BUDGET_SUFFIX)):
            raise self.fail(
                where,
                f"{parts[-1]!r} is not a setting of {spec.driver}",
                "one of: "
                + ", ".join(sorted(o for o in cls.OPTIONS if not o.endswith(BUDGET_SUFFIX))),
            )


__all__ = [
    "COUNT_OPTION_MAX",
    "INT_OPTION_LIMIT",
    "MAX_EVENT_BUDGET",
    "VERDICT_FORMS",
    "CheckSpec",
    "DriverSpec",
    "ExpectSpec",
    "Limit",
    "PropertiesSpec",
    "Scenario",
    "apply_overrides",
    "build_topology",
    "scenario_error",
    "scenario_schema",
]
