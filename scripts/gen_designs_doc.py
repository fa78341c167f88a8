"""Regenerate the table of docs/designs.md by running compare-designs (issue 6 part 3).

Usage: python scripts/gen_designs_doc.py [--check]

Checks every row of dmabuf_model.report.designs.CASES under every design, writes the traces and
diagrams of the violations under docs/designs/ and replaces the part of docs/designs.md between
the BEGIN/END GENERATED markers with the table (links relative to docs/). The paragraphs around
the markers are written by hand. With --check nothing is written: the exit code is 1 when the
document (or a trace) is out of date.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from dmabuf_model.designs import DESIGNS
from dmabuf_model.report.designs import CASES, compare_designs, to_markdown
from dmabuf_model.report.files import write_atomic

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "designs.md"
TRACES = ROOT / "docs" / "designs"
BEGIN = "<!-- BEGIN GENERATED: scripts/gen_designs_doc.py; do not edit by hand -->"
END = "<!-- END GENERATED -->"


def switches_table() -> str:
    """The policy switches of every design (designs/), one row per switch."""
    designs = list(DESIGNS.values())
    out = [
        "| switch | " + " | ".join(d.name for d in designs) + " |",
        "|" + "---|" * (len(designs) + 1),
    ]
    for key in designs[0].switches():
        values = ["`" + str(d.switches()[key]) + "`" for d in designs]
        out.append(f"| `{key}` | " + " | ".join(values) + " |")
    return "\n".join(out) + "\n"


def generated_block(trace_dir: Path) -> str:
    """The text between the markers: the table, its links relative to ``trace_dir``'s parent
    (docs/, where designs.md is), so a fresh directory named "designs" gives the same text."""
    rows = compare_designs(CASES, out_dir=trace_dir)
    table = to_markdown(rows, link_base=trace_dir.parent)
    states = sum(c.states for r in rows for c in r.cells)
    cells = sum(len(r.cells) for r in rows)
    note = (
        f"\n{cells} checks, {states} distinct states in all; every cell comes from\n"
        "`compare_designs` (src/dmabuf_model/report/designs.py).\n"
    )
    return f"{BEGIN}\n\n{table}{note}\nThe switches each design sets:\n\n{switches_table()}\n{END}"


def splice(doc: str, block: str) -> str:
    """``doc`` with the text from BEGIN to END replaced by ``block``."""
    start, end = doc.find(BEGIN), doc.find(END)
    if start < 0 or end < start:
        raise SystemExit(f"{DOC}: the markers {BEGIN!r} ... {END!r} are missing")
    return doc[:start] + block + doc[end + len(END) :]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report whether it is stale")
    args = parser.parse_args(argv)
    doc = DOC.read_text(encoding="utf-8")
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            fresh_dir = Path(tmp) / "designs"
            block = generated_block(fresh_dir)
            stale = splice(doc, block) != doc
            for f in sorted(fresh_dir.glob("*")):
                if f.suffix == ".json" and not (TRACES / f.name).exists():
                    stale = True
        if stale:
            print(f"{DOC.relative_to(ROOT)} is out of date; run python scripts/gen_designs_doc.py")
            return 1
        return 0
    TRACES.mkdir(parents=True, exist_ok=True)
    for old in TRACES.glob("*"):
        if old.suffix in (".json", ".txt", ".svg"):
            old.unlink()
    write_atomic(DOC, splice(doc, generated_block(TRACES)))
    print(f"wrote {DOC.relative_to(ROOT)} and {TRACES.relative_to(ROOT)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
