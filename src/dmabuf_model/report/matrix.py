"""matrix: the exporter x importer compatibility matrix as a text table, Markdown or JSON.
Renders what dmabuf_model.flows computed by running the drivers (drivers.md §7), for the CLI.

``matrix_command_main`` is the whole ``dmabuf-model matrix`` command without click: it parses
the options, computes the matrix (flows.compute_matrix) and returns the text and the exit code
(0: every cell ran cleanly; 1: some cell broke a property, warned or got stuck; 2: usage error).

The JSON form is a list of objects with exactly the keys ``exporter``, ``importer``, ``flow``,
``errno`` (a name such as "EOPNOTSUPP", or null) and ``step`` (null unless rejected); with
``detail`` each object also has a "detail" object (flows.FlowResult.to_json).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from dmabuf_model.drivers import EXPORTERS, IMPORTERS, exporter_class, importer_class
from dmabuf_model.drivers.base import DriverError
from dmabuf_model.flows import (
    EXPORTER_DEVICE,
    EXPORTER_KINDS,
    IMPORTER_DEVICE,
    IMPORTER_KINDS,
    REJECTED,
    FlowResult,
    compute_matrix,
)

FORMATS: tuple[str, ...] = ("table", "markdown", "json")
"""The values of ``--format``."""

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2


class MatrixUsageError(ValueError):
    """A bad ``matrix`` argument: unknown format, driver identifier or option."""


# --- cell text ---------------------------------------------------------------------------------


def cell_text(r: FlowResult) -> str:
    """cell_text - the short cell: the flow, or "rejected EOPNOTSUPP (attach)" (drivers.md §7)."""
    if r.flow == REJECTED:
        return f"rejected {r.errno} ({r.step})"
    return r.flow


def cell_notes(r: FlowResult) -> list[str]:
    """cell_notes - what the run observed, as short phrases for the table's notes.

    Pins (and whether dma_buf_pin was a no-op), the TTM placement, the path the device's access
    took, the takeback and what it did to the importer, whether the importer could access the
    buffer again, and anything that broke (drivers.md §7 legend; flows module DOC).
    """
    d = r.detail
    out: list[str] = []
    if r.flow == REJECTED:
        if d.refused_by:
            out.append(f"refused by {d.refused_by}")
        if d.import_invalidations:
            out.append(
                f"invalidate_mappings ran {d.import_invalidations}x on the importer during "
                "its import (the exporter moved the BO)"
            )
        if d.placement:
            left = f", still pinned ({d.bo_pins})" if d.bo_pins else ""
            out.append(f"BO in {d.placement}{left}")
    else:
        if d.pinned:
            how = "pin-on-map" if d.pin_on_map else "dma_buf_pin"
            out.append(f"{how} held" + ("" if d.pin_op else " (a no-op: exporter has no pin op)"))
        if d.placement:
            out.append(f"BO in {d.placement}")
        if d.paths:
            out.append("device reaches " + ", ".join(d.paths))
        if d.import_invalidations:
            out.append(f"invalidated {d.import_invalidations}x during import (BO moved)")
        if d.takeback:
            did = f" = {d.takeback_ret}" if d.takeback_ret else ""
            inv = (
                f"invalidate_mappings {d.invalidations}x"
                if d.invalidations
                else "never invalidated"
            )
            moved = ""
            if d.placement_after and d.placement_after != d.placement:
                moved = f", BO moved to {d.placement_after}"
            out.append(f"{d.takeback}{did}: {inv}{moved}")
        if d.access_after is True:
            out.append("accessible again afterwards" if d.invalidations else "stays accessible")
        elif d.access_after is False:
            why = f" ({d.after_error})" if d.after_error else ""
            out.append(f"no access afterwards{why}: the importer must import again")
    out.extend(f"BROKEN {b}" for b in d.broken)
    out.extend(f"kernel {w}" for w in d.warnings)
    if d.stuck:
        out.append(f"STUCK {d.stuck}")
    return out


def _grid(
    results: Sequence[FlowResult],
) -> tuple[list[str], list[str], dict[tuple[str, str], FlowResult]]:
    exporters: list[str] = []
    importers: list[str] = []
    cells: dict[tuple[str, str], FlowResult] = {}
    for r in results:
        if r.exporter not in exporters:
            exporters.append(r.exporter)
        if r.importer not in importers:
            importers.append(r.importer)
        cells[(r.exporter, r.importer)] = r
    return exporters, importers, cells


def _machine(no_p2p: bool) -> str:
    if no_p2p:
        return (
            f"machine: {EXPORTER_DEVICE} and {IMPORTER_DEVICE} below one PCIe switch, "
            "no P2P path between functions (--no-p2p)"
        )
    return (
        f"machine: {EXPORTER_DEVICE} and {IMPORTER_DEVICE} below one PCIe switch "
        "(P2P through bus addresses)"
    )


# --- renderers ---------------------------------------------------------------------------------


def render_table(results: Sequence[FlowResult]) -> str:
    """render_table - a plain-text grid (exporter rows, importer columns), then one line of
    notes per pair. drivers.md §7."""
    if not results:
        return "(no pairs)\n"
    exporters, importers, cells = _grid(results)
    corner = "exporter \\ importer"
    widths = [max(len(corner), *(len(e) for e in exporters))]
    for i in importers:
        widths.append(max(len(i), *(len(cell_text(cells[(e, i)])) for e in exporters)))
    rows = [[corner, *importers]]
    rows += [[e, *(cell_text(cells[(e, i)]) for i in importers)] for e in exporters]
    lines = [_machine(results[0].no_p2p), ""]
    for n, row in enumerate(rows):
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines += ["", "notes:"]
    for r in results:
        notes = cell_notes(r)
        if notes:
            lines.append(f"  {r.exporter} x {r.importer}: " + "; ".join(notes))
    return "\n".join(lines) + "\n"


def render_markdown(results: Sequence[FlowResult], *, heading: str = "") -> str:
    """render_markdown - the grid as a Markdown table whose cells carry the flow in bold and
    the observed details (drivers.md §7 layout)."""
    if not results:
        return "(no pairs)\n"
    exporters, importers, cells = _grid(results)
    lines: list[str] = []
    if heading:
        lines += [heading, ""]
    machine = _machine(results[0].no_p2p)
    lines += [machine[0].upper() + machine[1:] + ".", ""]
    lines.append("| exporter \\ importer | " + " | ".join(importers) + " |")
    lines.append("|---" * (len(importers) + 1) + "|")
    for e in exporters:
        row = []
        for i in importers:
            r = cells[(e, i)]
            notes = "; ".join(cell_notes(r))
            text = f"**{cell_text(r)}**" + (f": {notes}" if notes else "")
            row.append(text.replace("|", "\\|"))
        lines.append(f"| **{e}** | " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def render_json(results: Sequence[FlowResult], *, detail: bool = False) -> str:
    """render_json - the list of cell objects (exporter, importer, flow, errno, step), as the
    issue asks for ``--format json``; ``detail`` adds each cell's observations (drivers.md §7)."""
    return json.dumps([r.to_json(detail=detail) for r in results], indent=2) + "\n"


# --- the command ---------------------------------------------------------------------------------


def _value(text: str) -> Any:
    low = text.lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    if low in ("none", "null"):
        return None
    try:
        return int(text, 0)
    except ValueError:
        return text


def parse_driver_options(
    items: Sequence[str], *, role: str, known: Mapping[str, str]
) -> dict[str, dict[str, Any]]:
    """parse_driver_options - "KIND.OPTION=VALUE" strings into {kind: {option: value}}.

    Values: true/false, none, integers (0x.. too), else the string. MatrixUsageError for a
    malformed item, an unknown identifier or an option the driver does not have.
    """
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        head, sep, value = item.partition("=")
        kind, dot, option = head.rpartition(".")
        if not sep or not dot or not kind or not option:
            raise MatrixUsageError(
                f"--{role}-option {item!r}: expected KIND.OPTION=VALUE, e.g. xe.vram_only=true"
            )
        if kind not in known:
            raise MatrixUsageError(
                f"--{role}-option {item!r}: {kind!r} is not a known {role}; known: "
                + ", ".join(known)
            )
        cls = exporter_class(kind) if role == "exporter" else importer_class(kind)
        if option not in cls.OPTIONS:
            raise MatrixUsageError(
                f"--{role}-option {item!r}: {kind} has no option {option!r}; options: "
                + ", ".join(sorted(cls.OPTIONS))
            )
        out.setdefault(kind, {})[option] = _value(value)
    return out


def _kinds(given: Sequence[str] | None, default: Sequence[str], role: str) -> list[str]:
    if not given:
        return list(default)
    known = EXPORTERS if role == "exporter" else IMPORTERS
    for k in given:
        if k not in known:
            raise MatrixUsageError(f"{k!r} is not a known {role}; known: " + ", ".join(known))
    return list(given)


def matrix_command_main(
    fmt: str,
    no_p2p: bool,
    *,
    exporters: Sequence[str] | None = None,
    importers: Sequence[str] | None = None,
    exporter_options: Sequence[str] = (),
    importer_options: Sequence[str] = (),
    detail: bool = False,
) -> tuple[str, int]:
    """matrix_command_main - ``dmabuf-model matrix``: (text to print, exit code).

    ``fmt`` is table, markdown or json; ``no_p2p`` runs every pair on a machine without P2P;
    ``exporters``/``importers`` restrict the rows and columns (identifiers of drivers.md §7);
    ``*_options`` are "KIND.OPTION=VALUE" strings; ``detail`` adds the observations to JSON.
    Exit code 0 when every cell ran cleanly, 1 when a cell broke a property, warned or got
    stuck (the notes say which), 2 with a message for a usage error.
    """
    try:
        if fmt not in FORMATS:
            raise MatrixUsageError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")
        rows = _kinds(exporters, EXPORTER_KINDS, "exporter")
        cols = _kinds(importers, IMPORTER_KINDS, "importer")
        exp_opts = parse_driver_options(exporter_options, role="exporter", known=EXPORTERS)
        imp_opts = parse_driver_options(importer_options, role="importer", known=IMPORTERS)
        results = compute_matrix(
            no_p2p=no_p2p,
            exporters=rows,
            importers=cols,
            exporter_options=exp_opts,
            importer_options=imp_opts,
        )
    except (MatrixUsageError, DriverError) as exc:
        return f"matrix: {exc}\n", EXIT_USAGE
    if fmt == "json":
        text = render_json(results, detail=detail)
    elif fmt == "markdown":
        text = render_markdown(results)
    else:
        text = render_table(results)
    code = EXIT_OK if all(r.detail.clean for r in results) else EXIT_FINDINGS
    return text, code


__all__ = [
    "FORMATS",
    "MatrixUsageError",
    "cell_notes",
    "cell_text",
    "matrix_command_main",
    "parse_driver_options",
    "render_json",
    "render_markdown",
    "render_table",
]
