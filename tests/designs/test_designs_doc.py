"""docs/designs.md: its table is the one the checker gives today (issue 6 part 3).

The table between the GENERATED markers is written by scripts/gen_designs_doc.py from
compare_designs; this test regenerates it in a temporary directory and compares.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "gen_designs_doc", ROOT / "scripts" / "gen_designs_doc.py"
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_designs_table_in_the_docs_is_up_to_date() -> None:
    """Regenerating gives the same document: the table is not written by hand."""
    assert _script().main(["--check"]) == 0


def test_the_docs_explain_every_design_and_link_the_6_19_trace() -> None:
    """Each design has its paragraph; the done-criterion cell links its trace and diagram."""
    doc = (ROOT / "docs" / "designs.md").read_text(encoding="utf-8")
    for name in ("merged-2026", "revoke-v1", "pin-only-6.19", "pin-only-6.19-rc"):
        assert f"**{name}**" in doc
    stem = "designs/legacy-pinned-rdma.vfio-pci-x-rdma-pinned.pin-only-6.19"
    assert f"[trace of 11 steps]({stem}.txt), [diagram]({stem}.svg)" in doc
    assert (ROOT / "docs" / f"{stem}.json").is_file()
