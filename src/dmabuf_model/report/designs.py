"""designs: the seed thread's designs side by side - one checked system per scenario and design.

``dmabuf-model compare-designs`` (issue 6): every scenario, or exporter x importer pair of a
scenario, is built once per design (designs/, DriverEnv.options["design"]) and checked
exhaustively; each cell of the table says what that design does with it (core-semantics §7,
drivers.md §1.8):

* ``holds``: every always-property holds; the sometimes-properties a design never reaches are
  listed, because a design can lose behaviour without breaking anything ("a dynamic importer
  maps again after the FLR completes", which revoke-v1's one-way revoke never reaches);
* ``violation: PROPERTY (trace of N steps)``: the shortest counterexample, written as a trace
  (JSON that replay reads, text) and a diagram (SVG) under the output directory;
* ``refused: ERRNO at STEP``: no violation, and the importer's import path fails at that kernel
  call (attach, pin, map, the iommufd private map) when run alone from the initial state.

It models no kernel file: it runs the checker (check/) on DmaBufSystem models (drivers/) and
renders the results as markdown, JSON or HTML. Until the scenario files of
src/dmabuf_model/scenario exist, the scenarios are the Python-built CASES below, one row per
design-relevant exporter x importer pair of the bundled scenarios they are named after;
``scenario_case`` turns any builder ``design -> DmaBufSystem`` (a scenario file's) into a row.
"""

from __future__ import annotations

import contextlib
import html
import json
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from dmabuf_model.check import check
from dmabuf_model.check.model import Expectation, Property
from dmabuf_model.check.result import CheckResult, Discovery
from dmabuf_model.designs import DESIGN_NAMES, DESIGNS, DesignError, design_of
from dmabuf_model.drivers.amdgpu import AmdgpuExporter, AmdgpuImporter
from dmabuf_model.drivers.base import Exporter, Importer
from dmabuf_model.drivers.compose import DmaBufSystem
from dmabuf_model.drivers.iommufd import IommufdImporter
from dmabuf_model.drivers.rdma_umem import (
    RdmaOdpImporter,
    RdmaPinnedImporter,
    RdmaPinnedRevocableImporter,
)
from dmabuf_model.drivers.vfio_pci import VfioPciExporter, vfio_dma_buf
from dmabuf_model.errors import ScenarioError
from dmabuf_model.kernel.dma_buf import live_sgts
from dmabuf_model.kernel.state import KState
from dmabuf_model.platform.oracle import violations
from dmabuf_model.platform.state import PlatformState
from dmabuf_model.platform.topology import Topology
from dmabuf_model.report.files import write_atomic
from dmabuf_model.report.svg import trace_to_svg
from dmabuf_model.report.text import trace_to_text
from dmabuf_model.report.trace import discovery_trace, parse_call
from dmabuf_model.report.tracejson import trace_dumps
from dmabuf_model.system.model import EnvStep, SystemModel, run_thread
from dmabuf_model.system.threads import recording, world

Verdict = Literal["holds", "violation", "refused", "incomplete"]
"""What a cell says (see the module DOC); "incomplete" when a state bound stopped the check."""

FORMATS: tuple[str, ...] = ("markdown", "json", "html")
"""The output formats of compare_designs_main."""

DEFAULT_OUT_DIR = "out/designs"
"""Where compare_designs_main writes the traces and diagrams of violations."""

MAX_STATES = 300_000
"""Bound per check; a cell that hits it without a violation is "incomplete"."""

STEP_OF_CALL: dict[str, str] = {
    "dma_buf_dynamic_attach": "attach",
    "dma_buf_attach": "attach",
    "dma_buf_pin": "pin",
    "dma_buf_map_attachment": "map",
    "vfio_pci_dma_buf_iommufd_map": "iommufd private map",
}
"""The step a refusing kernel call stands for (core-semantics §6.4: attach, pin, map)."""


# --- design-loss properties ----------------------------------------------------------------------


def pinned_importer_accepted(exporter: Exporter) -> Property[KState]:
    """pinned_importer_accepted - sometimes: an importer holds a pin on one of ``exporter``'s
    buffers (dma_buf_pin succeeded and the attachment is listed).

    What the merged design gives up for the legacy pinned RDMA importer (refused at attach) and
    the 6.19-rc fix for every pinning importer (refused at pin). drivers.md §1.8, §7.
    """

    def cond(s: KState) -> bool:
        bufs = set(exporter.buffers(s))
        return any(a.pins > 0 and not a.detached and a.dmabuf in bufs for a in s.attachments)

    return Property.sometimes("pinned_importer_accepted", cond, cite="drivers.md §1.8, §7")


def dynamic_importer_maps_again_after_flr(vfio: VfioPciExporter) -> Property[KState]:
    """dynamic_importer_maps_again_after_flr - sometimes: after a VFIO_DEVICE_RESET has run to
    its end (revoke, reset, unrevoke), an unpinned dynamic importer holds a mapping of the
    buffer that no invalidation reached: it mapped again after the FLR.

    A one-way revoke (revoke-v1) never reaches it; the merged design and 6.19 do (drivers.md §1.8
    "the importer re-maps after unrevoke", §3.3; core-semantics §7).
    """
    reset = vfio.op_program("reset")

    def cond(s: KState) -> bool:
        if not any(t.done and t.program == reset for t in world(s).threads):
            return False
        for i, a in enumerate(s.attachments):
            ops = a.importer_ops
            if a.detached or ops is None or ops.invalidate_mappings is None or a.pins:
                continue
            if vfio_dma_buf(s, a.dmabuf) is None:
                continue
            if any(not s.sg_tables[t].invalidated for t in live_sgts(s, i)):
                return True
        return False

    return Property.sometimes(
        "dynamic_importer_maps_again_after_flr", cond, cite="drivers.md §1.8, §3.3"
    )


PINNING_IMPORTERS = frozenset({"iommufd", "rdma-pinned", "rdma-pinned-revocable"})
"""Importer kinds that call dma_buf_pin (drivers.md §2.1, §3.1)."""
DYNAMIC_IMPORTERS = frozenset({"rdma-odp", "amdgpu", "xe"})
"""Importer kinds that map without a pin and map again after an invalidation (§3.3, §4.3)."""


def add_design_properties(system: DmaBufSystem) -> DmaBufSystem:
    """add_design_properties - add the sometimes-properties that show what a design loses.

    For each vfio-pci exporter: vfio_revoke_completes (its revoke ran both waits, drivers.md
    §1.3), pinned_importer_accepted when a pinning importer takes its buffer, and
    dynamic_importer_maps_again_after_flr when a dynamic one does. Names get the exporter's
    name in brackets when the system has several vfio-pci exporters. Returns ``system``.
    """
    vfios = [e for e in system.exporters if isinstance(e, VfioPciExporter)]
    for vfio in vfios:
        kinds = {i.kind for i in system.importers if i.source is vfio}
        props = [vfio.revoke_completes()]
        if kinds & PINNING_IMPORTERS:
            props.append(pinned_importer_accepted(vfio))
        if kinds & DYNAMIC_IMPORTERS:
            props.append(dynamic_importer_maps_again_after_flr(vfio))
        if len(vfios) > 1:
            props = [
                p
                if p.name.endswith("]")
                else Property(f"{p.name}[{vfio.name}]", p.expectation, p.condition, p.cite)
                for p in props
            ]
        system.extra_properties.extend(props)
    return system


# --- the scenarios -------------------------------------------------------------------------------

Builder = Callable[[str], DmaBufSystem]
"""Builds a case's system under a design name (design-loss properties added)."""


@dataclass(frozen=True)
class DesignCase:
    """One row of the table: a scenario, or one exporter x importer pair of it.

    ``scenario`` is the scenario's name, ``pair`` "exporter x importer" by matrix identifiers
    (several joined with ", " for a whole scenario), ``summary`` one line on what the row
    exercises, ``build`` the system under a design.
    """

    scenario: str
    pair: str
    summary: str
    build: Builder = field(compare=False, repr=False)

    @property
    def slug(self) -> str:
        """slug - a file-name-safe row id: scenario and pair ("vfio-revoke.vfio-pci-rdma-odp")."""
        pair = re.sub(r"[^a-z0-9]+", "-", self.pair.lower()).strip("-")
        return f"{self.scenario}.{pair}" if pair else self.scenario


def _pair(exporter: type[Exporter], importer: type[Importer], **imp: Any) -> Builder:
    """An exporter with its defaults (vfio-pci: one FLR; amdgpu: one eviction) on exp0 and one
    importer on dev1, two functions behind one switch (P2P by bus address)."""

    def build(design: str) -> DmaBufSystem:
        system = DmaBufSystem(Topology.simple(["exp0", "dev1"]), options={"design": design})
        exp = system.add_exporter(exporter, device="exp0")
        system.add_importer(importer, device="dev1", source=exp, **imp)
        return add_design_properties(system)

    return build


def scenario_case(
    scenario: str, build: Callable[[str], DmaBufSystem], summary: str = ""
) -> DesignCase:
    """scenario_case - a whole scenario as one row (the adapter for scenario files).

    ``build(design)`` returns the scenario's DmaBufSystem under that design (a scenario file's
    builder given ``design``); the design-loss properties are added, and the pair column lists
    every exporter x importer pair of the system.
    """
    probe = build(DESIGN_NAMES[0])
    pairs = ", ".join(f"{i.source.kind if i.source else '?'} x {i.kind}" for i in probe.importers)

    def built(design: str) -> DmaBufSystem:
        return add_design_properties(build(design))

    return DesignCase(scenario, pairs, summary, built)


CASES: tuple[DesignCase, ...] = (
    DesignCase(
        "legacy-pinned-rdma",
        "vfio-pci x rdma-pinned",
        "legacy pinned RDMA MR of a VFIO BAR; an FLR while the NIC may DMA",
        _pair(VfioPciExporter, RdmaPinnedImporter, dereg_budget=0),
    ),
    DesignCase(
        "vfio-revoke",
        "vfio-pci x iommufd",
        "IOMMU_IOAS_MAP_FILE of a VFIO BAR (pinned, revocable); an FLR during device DMA",
        _pair(VfioPciExporter, IommufdImporter, unmap_budget=0),
    ),
    DesignCase(
        "vfio-revoke",
        "vfio-pci x rdma-odp",
        "mlx5 ODP MR of a VFIO BAR: faults, zap on revoke, fault again after the FLR",
        _pair(VfioPciExporter, RdmaOdpImporter, dereg_budget=0),
    ),
    DesignCase(
        "vfio-revoke",
        "vfio-pci x rdma-pinned-revocable",
        "irdma pinned revocable MR of a VFIO BAR; the FLR revokes it for good",
        _pair(VfioPciExporter, RdmaPinnedRevocableImporter, dereg_budget=0),
    ),
    DesignCase(
        "vfio-revoke",
        "vfio-pci x amdgpu",
        "amdgpu imports a VFIO BAR: evicted on revoke, maps again on the next submission",
        _pair(VfioPciExporter, AmdgpuImporter),
    ),
    DesignCase(
        "gpu-eviction",
        "amdgpu x rdma-odp",
        "control row: an amdgpu VRAM BO evicted under an ODP MR (movable, no revoke)",
        _pair(AmdgpuExporter, RdmaOdpImporter, dereg_budget=0),
    ),
)
"""The built-in rows: the design-relevant pairs of the bundled scenarios legacy-pinned-rdma,
vfio-revoke and gpu-eviction, each with budgets of 1 so a check takes well under a second."""


def scenario_names() -> tuple[str, ...]:
    """scenario_names - the scenarios compare-designs knows, in table order."""
    return tuple(dict.fromkeys(c.scenario for c in CASES))


FILE_ROWS: tuple[str, ...] = ("broken-exporter-no-fence-wait", "broken-importer-never-unmaps")
"""Bundled scenarios run whole, as one row each, when no scenario is named."""


def _file_case(arg: str) -> DesignCase:
    """A scenario file (a bundled name or a path) as one row, built by the scenario loader."""
    from dmabuf_model.scenario import build, resolve

    sc = resolve(arg)
    return scenario_case(sc.name, lambda design: build(sc, design=design).system, sc.summary)


def cases_for(scenarios: Sequence[str]) -> list[DesignCase]:
    """cases_for - the rows of the named scenarios (all when none is named), in table order.

    A name with design rows of its own (``CASES``: one row per exporter x importer pair) gives
    those rows; any other bundled scenario or scenario file is run whole as one row. A
    ScenarioError (unknown name, malformed file) propagates with its FILE:LINE message.
    """
    known = scenario_names()
    if not scenarios:
        return [*CASES, *(_file_case(name) for name in FILE_ROWS)]
    rows: list[DesignCase] = []
    for name in scenarios:
        if name in known:
            rows.extend(c for c in CASES if c.scenario == name)
        else:
            rows.append(_file_case(name))
    return rows


# --- one cell ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    """What one design does with one row.

    ``property`` and ``steps`` name the shortest counterexample of a violation, ``finding`` the
    oracle's finding kind when the property is no_dma_violation; ``errno``/``step`` the refusal;
    ``refused_by`` the refused importer when the row has several; ``reached``/``never_reached``
    the sometimes-properties. ``trace``/``text``/``diagram`` are
    the files written for a violation (paths as written). ``states`` counts distinct states.
    """

    design: str
    verdict: Verdict
    property: str | None = None
    finding: str | None = None
    steps: int | None = None
    errno: str | None = None
    step: str | None = None
    refused_by: str | None = None
    reached: tuple[str, ...] = ()
    never_reached: tuple[str, ...] = ()
    states: int = 0
    seconds: float = 0.0
    trace: str | None = None
    text: str | None = None
    diagram: str | None = None

    def label(self) -> str:
        """label - the cell as the issue words it (no links)."""
        if self.verdict == "violation":
            what = f"{self.property} ({self.finding})" if self.finding else str(self.property)
            return f"violation: {what} (trace of {self.steps} steps)"
        if self.verdict == "refused":
            by = f" ({self.refused_by})" if self.refused_by else ""
            return f"refused: {self.errno} at {self.step}{by}"
        if self.verdict == "incomplete":
            return f"incomplete: no violation in the first {self.states} states"
        if self.never_reached:
            return "holds; never reached: " + ", ".join(self.never_reached)
        return "holds"

    def to_json(self) -> dict[str, Any]:
        """to_json - the cell as a JSON object (label included)."""
        return {
            "design": self.design,
            "verdict": self.verdict,
            "label": self.label(),
            "property": self.property,
            "finding": self.finding,
            "steps": self.steps,
            "errno": self.errno,
            "step": self.step,
            "refused_by": self.refused_by,
            "reached": list(self.reached),
            "never_reached": list(self.never_reached),
            "states": self.states,
            "seconds": round(self.seconds, 3),
            "trace": self.trace,
            "text": self.text,
            "diagram": self.diagram,
        }


@dataclass(frozen=True)
class Row:
    """A row: its case and one cell per design, in column order."""

    case: DesignCase
    cells: tuple[Cell, ...]


_ERR_RE = re.compile(r"^-E[A-Z0-9]+$")


def refusal(system: DmaBufSystem) -> tuple[str, str, str] | None:
    """refusal - where an importer's import path fails when it runs alone, or None.

    Boots the system (recording the calls of imports made at boot), then for each importer in
    slot order runs its first event (its registration, map or import ioctl) alone from the
    initial state, to its end as a scripted thread, recording the kernel calls. The first call
    that returned a negative errno names the refusal: (errno name, step, importer name), the
    step from STEP_OF_CALL or the function's name. core-semantics §6.4.
    """
    model = system.model()
    init = model.init_states()[0]
    with recording() as boot:
        system.initial_state()  # boot again, recording: an import at boot shows its calls
    found = _first_error(boot)
    if found is not None:
        return (*found, "boot")
    for importer in system.importers:
        for i, ev in enumerate(model.events):
            if not ev.name.startswith(f"{importer.name}:"):
                continue
            nxt = model.next_state(init, EnvStep(i, ev.name))
            if nxt is None:
                break
            with recording() as lines, contextlib.suppress(RuntimeError):
                # A lone run that blocks has nothing more to tell.
                run_thread(nxt, len(world(nxt).threads) - 1)
            found = _first_error(lines)
            if found is not None:
                return (*found, importer.name)
            break
    return None


def _first_error(lines: Sequence[str]) -> tuple[str, str] | None:
    for line in lines:
        call = parse_call(line.strip())
        if call.fn is not None and call.ret is not None and _ERR_RE.match(call.ret):
            return call.ret.lstrip("-"), STEP_OF_CALL.get(call.fn, call.fn)
    return None


def _first_failure(result: CheckResult[KState, Any]) -> Discovery[KState, Any] | None:
    order = {p.name: i for i, p in enumerate(result.properties)}
    failures = result.failures
    if not failures:
        return None
    return min(failures, key=lambda d: (len(d.path), order.get(d.property, len(order))))


def _finding(d: Discovery[KState, Any]) -> str | None:
    ps = world(d.path.last_state).platform
    if d.property != "no_dma_violation" or not isinstance(ps, PlatformState):
        return None
    found = violations(ps)
    return str(found[0].kind) if found else None


def run_cell(
    case: DesignCase,
    design: str,
    *,
    out_dir: str | os.PathLike[str] | None = None,
    max_states: int = MAX_STATES,
) -> Cell:
    """run_cell - check ``case`` under ``design`` and say what happened (see the module DOC).

    Exhaustive BFS over the whole state space (every property's first discovery). A violation
    is the shortest failing path (ties: the property declared first); with ``out_dir`` its
    trace is written there as NAME.json (replayable), NAME.txt and NAME.svg, NAME being
    "<row slug>.<design>". DesignError for an unknown design.
    """
    design_of({"design": design})
    system = case.build(design)
    model = system.model(name=f"{case.slug}[{design}]")
    start = time.perf_counter()
    result = check(model, stop_at_first=False, max_states=max_states)
    seconds = time.perf_counter() - start
    sometimes = [p.name for p in result.properties if p.expectation is Expectation.SOMETIMES]
    never = tuple(n for n in sometimes if n in result.never_reached)
    reached = tuple(n for n in sometimes if n not in result.never_reached)
    common: dict[str, Any] = {
        "design": design,
        "reached": reached,
        "never_reached": never if result.complete else (),
        "states": result.stats.unique,
        "seconds": seconds,
    }
    failure = _first_failure(result)
    if failure is not None:
        files = _write_trace(model, failure, case, design, out_dir) if out_dir else {}
        return Cell(
            verdict="violation",
            property=failure.property,
            finding=_finding(failure),
            steps=len(failure.path),
            trace=files.get("trace"),
            text=files.get("text"),
            diagram=files.get("diagram"),
            **common,
        )
    refused = refusal(system)
    if refused is not None:
        errno, step, by = refused
        many = len(system.importers) > 1
        return Cell(
            verdict="refused", errno=errno, step=step, refused_by=by if many else None, **common
        )
    if not result.complete:
        return Cell(verdict="incomplete", **common)
    return Cell(verdict="holds", **common)


def _write_trace(
    model: SystemModel,
    d: Discovery[KState, Any],
    case: DesignCase,
    design: str,
    out_dir: str | os.PathLike[str],
) -> dict[str, str]:
    trace = discovery_trace(
        model,
        d,
        scenario={"name": case.scenario, "pair": case.pair, "design": design},
        design=design,
    )
    base = Path(out_dir)
    base.mkdir(parents=True, exist_ok=True)
    stem = f"{case.slug}.{design}"
    out = {
        "trace": write_atomic(base / f"{stem}.json", trace_dumps(trace)),
        "text": write_atomic(base / f"{stem}.txt", trace_to_text(trace, verbose=True)),
        "diagram": write_atomic(base / f"{stem}.svg", trace_to_svg(trace)),
    }
    return {k: str(v) for k, v in out.items()}


def model_for(scenario: Mapping[str, Any]) -> SystemModel:
    """model_for - rebuild the model a compare-designs trace came from (replay_trace's rebuild).

    ``scenario`` is the trace's scenario object: {"name", "pair", "design"}. ValueError when no
    row has that name and pair; DesignError for an unknown design.
    """
    name, pair = scenario.get("name"), scenario.get("pair")
    design = str(scenario.get("design", DESIGN_NAMES[0]))
    for case in CASES:
        if case.scenario == name and case.pair == pair:
            design_of({"design": design})
            return case.build(design).model(name=f"{case.slug}[{design}]")
    if isinstance(name, str) and name not in scenario_names():
        case = _file_case(name)
        design_of({"design": design})
        return case.build(design).model(name=f"{case.slug}[{design}]")
    raise ValueError(f"no compare-designs row {name!r} / {pair!r}; rows: {scenario_names()}")


def compare_designs(
    cases: Sequence[DesignCase],
    designs: Sequence[str] = DESIGN_NAMES,
    *,
    out_dir: str | os.PathLike[str] | None = DEFAULT_OUT_DIR,
    max_states: int = MAX_STATES,
) -> list[Row]:
    """compare_designs - every case under every design: the rows of the table, in order."""
    return [
        Row(case, tuple(run_cell(case, d, out_dir=out_dir, max_states=max_states) for d in designs))
        for case in cases
    ]


# --- renderers -----------------------------------------------------------------------------------


def _link(path: str | None, base: str | os.PathLike[str] | None) -> str | None:
    if path is None:
        return None
    if base is None:
        return Path(path).as_posix()
    return Path(os.path.relpath(path, base)).as_posix()


def _designs_of(rows: Sequence[Row]) -> list[str]:
    return [c.design for c in rows[0].cells] if rows else list(DESIGN_NAMES)


def to_markdown(rows: Sequence[Row], *, link_base: str | os.PathLike[str] | None = None) -> str:
    """to_markdown - the table: a row per scenario pair, a column per design.

    Violation cells link their text trace and SVG diagram; ``link_base`` makes the links
    relative to that directory (the directory of the document the table goes in).
    """
    designs = _designs_of(rows)
    head = ["scenario", "exporter x importer", *designs]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [row.case.scenario, row.case.pair.replace(" x ", " × ")]
        for c in row.cells:
            text = c.label()
            if c.verdict == "violation":
                what = f"{c.property} ({c.finding})" if c.finding else str(c.property)
                trace = _link(c.text, link_base)
                diagram = _link(c.diagram, link_base)
                steps = f"trace of {c.steps} steps"
                if trace:
                    steps = f"[{steps}]({trace})"
                if diagram:
                    steps += f", [diagram]({diagram})"
                text = f"violation: {what} ({steps})"
            cells.append(text.replace("|", "\\|"))
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def to_json(rows: Sequence[Row], *, link_base: str | os.PathLike[str] | None = None) -> str:
    """to_json - the table as JSON: a list of rows {scenario, pair, summary, cells: [...]}."""
    data = []
    for row in rows:
        cells = []
        for c in row.cells:
            obj = c.to_json()
            for key in ("trace", "text", "diagram"):
                obj[key] = _link(obj[key], link_base)
            cells.append(obj)
        data.append(
            {
                "scenario": row.case.scenario,
                "pair": row.case.pair,
                "summary": row.case.summary,
                "cells": cells,
            }
        )
    return json.dumps(data, indent=2) + "\n"


_VERDICT_COLOUR = {
    "holds": "#e6f4e6",
    "violation": "#fbe3e3",
    "refused": "#fff4d6",
    "incomplete": "#eeeeee",
}


def to_html(rows: Sequence[Row], *, link_base: str | os.PathLike[str] | None = None) -> str:
    """to_html - a standalone HTML page with the table; violation cells link trace and SVG."""
    designs = _designs_of(rows)
    esc = html.escape
    lines = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8"><title>dmabuf-model: designs</title>',
        "<style>table{border-collapse:collapse;font-family:sans-serif;font-size:14px}"
        "td,th{border:1px solid #999;padding:4px 8px;vertical-align:top}</style></head><body>",
        "<h1>The revoke designs compared</h1>",
        "<table>",
        "<tr><th>scenario</th><th>exporter × importer</th>"
        + "".join(f"<th>{esc(d)}</th>" for d in designs)
        + "</tr>",
    ]
    for row in rows:
        tds = [
            f"<td>{esc(row.case.scenario)}</td>",
            f'<td title="{esc(row.case.summary)}">{esc(row.case.pair.replace(" x ", " × "))}</td>',
        ]
        for c in row.cells:
            body = esc(c.label())
            links = [
                f'<a href="{esc(href)}">{name}</a>'
                for name, href in (
                    ("trace", _link(c.text, link_base)),
                    ("diagram", _link(c.diagram, link_base)),
                    ("json", _link(c.trace, link_base)),
                )
                if href
            ]
            if links:
                body += "<br>" + " · ".join(links)
            tds.append(f'<td style="background:{_VERDICT_COLOUR[c.verdict]}">{body}</td>')
        lines.append("<tr>" + "".join(tds) + "</tr>")
    lines += ["</table>", "</body></html>"]
    return "\n".join(lines) + "\n"


RENDERERS: dict[str, Callable[..., str]] = {
    "markdown": to_markdown,
    "json": to_json,
    "html": to_html,
}


def compare_designs_main(
    scenarios: list[str],
    fmt: str,
    *,
    out_dir: str = DEFAULT_OUT_DIR,
    designs: Sequence[str] | None = None,
    link_base: str | None = None,
) -> tuple[str, int]:
    """compare_designs_main - the compare-designs command: (output text, exit code).

    Runs ``scenarios`` (every known one when empty) under each design (all registered ones by
    default) and renders the table as ``fmt`` ("markdown", "json" or "html"), writing the traces
    of violations under ``out_dir``; links are relative to ``link_base`` (default: as written).
    Exit code 0 when the table was produced (violations in a design are results, not errors),
    2 with a one-line message for an unknown scenario, design or format.
    """
    if fmt not in RENDERERS:
        return f"compare-designs: unknown format {fmt!r}; choose one of {', '.join(FORMATS)}\n", 2
    chosen = tuple(designs) if designs else DESIGN_NAMES
    for name in chosen:
        if name not in DESIGNS:
            known = ", ".join(DESIGN_NAMES)
            return f"compare-designs: unknown design {name!r}; known designs: {known}\n", 2
    try:
        cases = cases_for(scenarios)
    except ScenarioError as exc:
        return f"{exc}\n", 2
    try:
        rows = compare_designs(cases, chosen, out_dir=out_dir)
    except DesignError as exc:  # pragma: no cover - names were checked above
        return f"compare-designs: {exc}\n", 2
    return RENDERERS[fmt](rows, link_base=link_base), 0


__all__ = [
    "CASES",
    "DEFAULT_OUT_DIR",
    "DYNAMIC_IMPORTERS",
    "FILE_ROWS",
    "FORMATS",
    "MAX_STATES",
    "PINNING_IMPORTERS",
    "STEP_OF_CALL",
    "Cell",
    "DesignCase",
    "Row",
    "add_design_properties",
    "cases_for",
    "compare_designs",
    "compare_designs_main",
    "dynamic_importer_maps_again_after_flr",
    "model_for",
    "pinned_importer_accepted",
    "refusal",
    "run_cell",
    "scenario_case",
    "scenario_names",
    "to_html",
    "to_json",
    "to_markdown",
]
