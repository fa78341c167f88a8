"""`dmabuf-model matrix`: the computed matrix against drivers.md §7, cell by cell; renderers.

EXPECTED is drivers.md §7's table transcribed (P2P-dependent cells assume a P2P path, as §7
says), with the static importer of §7 "Extra rows" as the last column. NO_P2P_CHANGES is what
the brief and §1.8 / §4 / §6 say --no-p2p changes. A cell the drivers compute differently is not
bent into agreement: it is an xfail(strict=True) naming the gap (DIVERGENCES), and the computed
behaviour is pinned in tests/test_flows.py.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

from dmabuf_model.flows import (
    EXPORTER_KINDS,
    IMPORTER_KINDS,
    FlowResult,
    compute_matrix,
)
from dmabuf_model.report.matrix import (
    cell_notes,
    cell_text,
    matrix_command_main,
    parse_driver_options,
    render_json,
    render_markdown,
    render_table,
)

ROOT = Path(__file__).resolve().parent.parent

Cell = tuple[str, str | None, str | None]
"""(flow, errno, step)"""

PR = ("pinned-revocable", None, None)
REV = ("revocable", None, None)
MOV = ("movable", None, None)
PIN = ("pinned", None, None)
STA = ("static", None, None)
PSTA = ("pinned/static", None, None)
NO_VFIO = ("rejected", "EOPNOTSUPP", "attach")
NO_PRIV = ("rejected", "EOPNOTSUPP", "iommufd private map")
NO_P2P_MAP = ("rejected", "EINVAL", "map")

# drivers.md §7, rows = exporters, columns = iommufd, rdma-odp, rdma-pinned,
# rdma-pinned-revocable, amdgpu, xe, static (the "Extra rows" static importer).
EXPECTED: dict[str, tuple[Cell, ...]] = {
    # §7: iommufd pinned-revocable; ODP revocable; legacy pinned EOPNOTSUPP at attach;
    # irdma pinned-revocable; amdgpu/xe revocable; static importer -> EOPNOTSUPP (§1.8).
    "vfio-pci": (PR, REV, NO_VFIO, PR, REV, REV, NO_VFIO),
    # §7: iommufd EOPNOTSUPP (only VFIO buffers, private map); ODP movable; pinned; pinned
    # (revoke never triggered); amdgpu/xe movable (other device); static: pin on map in GTT.
    "amdgpu": (NO_PRIV, MOV, PIN, PIN, MOV, MOV, PIN),
    # §7: same shape as amdgpu (xe pins to TT first for iommufd).
    "xe": (NO_PRIV, MOV, PIN, PIN, MOV, MOV, PIN),
    # §7: iommufd EOPNOTSUPP (attach OK, pin no-op, private map fails); ODP static; pinned/static
    # (pin is a no-op) twice; amdgpu/xe static; static importer: plain map.
    "system-heap": (NO_PRIV, STA, PSTA, PSTA, STA, STA, STA),
    "udmabuf": (NO_PRIV, STA, PSTA, PSTA, STA, STA, STA),
}

NO_P2P_CHANGES: dict[tuple[str, str], Cell] = {
    # drivers.md §1.8 last row, §6: VFIO map through dma_buf_phys_vec_to_sgt -> EINVAL.
    ("vfio-pci", "rdma-odp"): NO_P2P_MAP,
    ("vfio-pci", "rdma-pinned-revocable"): NO_P2P_MAP,
    ("vfio-pci", "amdgpu"): NO_P2P_MAP,
    ("vfio-pci", "xe"): NO_P2P_MAP,
}

P2P_PLACEMENT_CELLS = [
    (e, i)
    for e in ("amdgpu", "xe")
    for i in ("rdma-odp", "rdma-pinned", "rdma-pinned-revocable", "amdgpu", "xe")
]
"""§7: GPU cells that use VRAM through P2P, and fall back to GTT/TT without it."""

DIVERGENCES: dict[tuple[bool, str, str], str] = {
    (True, "amdgpu", "rdma-pinned-revocable"): (
        "without P2P the amdgpu pin moves the BO VRAM->GTT; move_notify invalidates the pinning "
        "attachment itself (drivers.md §4.1), ib_umem_dmabuf_revoke_locked revokes the umem "
        "inside dma_buf_pin and map_pages fails -EINVAL (§3.1); §7's 'pinned' assumes P2P"
    ),
    (True, "xe", "rdma-pinned-revocable"): (
        "without P2P the xe pin migrates the BO to TT; xe_bo_move_notify invalidates the "
        "pinning attachment itself (drivers.md §4.2), the umem is revoked inside dma_buf_pin "
        "and map_pages fails -EINVAL (§3.1); §7's 'pinned' assumes P2P"
    ),
}


def expected(no_p2p: bool) -> dict[tuple[str, str], Cell]:
    out = {
        (e, i): cell
        for e, row in EXPECTED.items()
        for i, cell in zip(IMPORTER_KINDS, row, strict=True)
    }
    if no_p2p:
        out.update(NO_P2P_CHANGES)
    return out


@pytest.fixture(scope="module")
def matrices() -> dict[bool, dict[tuple[str, str], dict[str, object]]]:
    """Both machines computed once, through the command's JSON."""
    out: dict[bool, dict[tuple[str, str], dict[str, object]]] = {}
    for no_p2p in (False, True):
        text, _ = matrix_command_main("json", no_p2p)
        out[no_p2p] = {(c["exporter"], c["importer"]): c for c in json.loads(text)}
    return out


def _cells() -> list[object]:
    params: list[object] = []
    for no_p2p in (False, True):
        for e in EXPORTER_KINDS:
            for i in IMPORTER_KINDS:
                reason = DIVERGENCES.get((no_p2p, e, i))
                marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
                ident = f"{'no-p2p' if no_p2p else 'p2p'}-{e}-x-{i}"
                params.append(pytest.param(no_p2p, e, i, marks=marks, id=ident))
    return params


@pytest.mark.parametrize(("no_p2p", "exporter", "importer"), _cells())
def test_json_cell_agrees_with_drivers_md_section_7(
    matrices: dict[bool, dict[tuple[str, str], dict[str, object]]],
    no_p2p: bool,
    exporter: str,
    importer: str,
) -> None:
    """drivers.md §7 (table, legend, extra rows); --no-p2p per §1.8, §4, §6."""
    got = matrices[no_p2p][(exporter, importer)]
    flow, err, step = expected(no_p2p)[(exporter, importer)]
    assert (got["flow"], got["errno"], got["step"]) == (flow, err, step)


def test_json_is_a_list_of_objects_with_exactly_the_five_keys(
    matrices: dict[bool, dict[tuple[str, str], dict[str, object]]],
) -> None:
    """Issue text: keys exporter, importer, flow, errno (a name or null) and step."""
    for cells in matrices.values():
        assert len(cells) == len(EXPORTER_KINDS) * len(IMPORTER_KINDS)
        for c in cells.values():
            assert set(c) == {"exporter", "importer", "flow", "errno", "step"}
            assert (c["errno"] is None) == (c["flow"] != "rejected")
            assert (c["step"] is None) == (c["flow"] != "rejected")


def test_no_p2p_changes_exactly_the_vfio_map_cells_and_the_divergences(
    matrices: dict[bool, dict[tuple[str, str], dict[str, object]]],
) -> None:
    """The matrix is computed, not tabulated: --no-p2p changes the cells §1.8 says."""
    changed = {
        pair
        for pair, cell in matrices[True].items()
        if (cell["flow"], cell["errno"], cell["step"])
        != tuple(matrices[False][pair][k] for k in ("flow", "errno", "step"))
    }
    divergent = {(e, i) for (no_p2p, e, i) in DIVERGENCES if no_p2p}
    assert changed == set(NO_P2P_CHANGES) | divergent


@pytest.mark.parametrize(("exporter", "importer"), P2P_PLACEMENT_CELLS)
def test_gpu_cells_use_vram_over_p2p_and_fall_back_to_tt_without_it(
    exporter: str, importer: str
) -> None:
    """drivers.md §7 amdgpu/xe rows: VRAM via P2P if the distance allows, else GTT/TT."""
    on = compute_matrix(exporters=[exporter], importers=[importer])[0]
    off = compute_matrix(no_p2p=True, exporters=[exporter], importers=[importer])[0]
    assert on.detail.placement == "VRAM"
    assert on.detail.paths == ("exp0.bar0 via bus_addr",) or on.flow == "rejected"
    assert off.detail.placement == "TT"


def test_xe_vram_only_bo_without_p2p_refuses_every_importer_at_attach() -> None:
    """drivers.md §7 xe row and §4.2: VRAM-only and no P2P -> attach -EOPNOTSUPP."""
    text, code = matrix_command_main(
        "json", True, exporters=["xe"], exporter_options=["xe.vram_only=true"]
    )
    cells = json.loads(text)
    assert code == 0
    assert {(c["flow"], c["errno"], c["step"]) for c in cells} == {NO_VFIO}


def test_xe_vram_only_bo_with_p2p_still_refuses_the_non_p2p_importers() -> None:
    """iommufd's misc device and a static importer never have peer2peer (§2.1, §5.3)."""
    text, _ = matrix_command_main(
        "json", False, exporters=["xe"], exporter_options=["xe.vram_only=true"]
    )
    refused = {c["importer"] for c in json.loads(text) if c["flow"] == "rejected"}
    assert refused == {"iommufd", "static"}


# --- the command ----------------------------------------------------------------------------------


def test_command_exits_0_with_p2p_and_1_without_because_of_the_pin_leak() -> None:
    """Exit codes of cli.py: 0 all holds, 1 a property broke (here core-semantics §10 #19)."""
    text, code = matrix_command_main("table", False)
    assert code == 0
    assert "BROKEN" not in text
    text, code = matrix_command_main("table", True)
    assert code == 1
    assert "amdgpu x rdma-pinned-revocable: " in text
    assert "BROKEN pins_balanced: attach0 pins=1" in text


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fmt": "yaml"}, r"^matrix: --format 'yaml': choose one of table, markdown, json\n$"),
        ({"importers": ["v4l2"]}, r"^matrix: 'v4l2' is not a known importer; known: iommufd"),
        ({"exporters": ["nvme"]}, r"^matrix: 'nvme' is not a known exporter; known: vfio-pci"),
        (
            {"exporter_options": ["xe.vram=1"]},
            r"^matrix: --exporter-option 'xe.vram=1': xe has no option 'vram'; options: ",
        ),
        (
            {"importer_options": ["dma_budget=1"]},
            r"^matrix: --importer-option 'dma_budget=1': expected KIND.OPTION=VALUE",
        ),
    ],
)
def test_command_usage_errors_exit_2_with_the_valid_choices(
    kwargs: dict[str, object], message: str
) -> None:
    args: dict[str, object] = {"fmt": "json", "no_p2p": False, **kwargs}
    text, code = matrix_command_main(**args)  # type: ignore[arg-type]
    assert code == 2
    assert __import__("re").match(message, text)


def test_driver_options_parse_booleans_integers_none_and_strings() -> None:
    got = parse_driver_options(
        ["xe.vram_only=true", "amdgpu.placement=GTT", "vfio-pci.nr_ranges=0x2"],
        role="exporter",
        known={"xe": "", "amdgpu": "", "vfio-pci": ""},
    )
    assert got == {
        "xe": {"vram_only": True},
        "amdgpu": {"placement": "GTT"},
        "vfio-pci": {"nr_ranges": 2},
    }
    imp = parse_driver_options(["rdma-odp.length=none"], role="importer", known={"rdma-odp": ""})
    assert imp == {"rdma-odp": {"length": None}}


def test_importer_option_reaches_the_driver() -> None:
    """An importer option changes the run: the irdma unpin fix removes the broken property."""
    text, code = matrix_command_main(
        "json",
        True,
        exporters=["amdgpu"],
        importers=["rdma-pinned-revocable"],
        importer_options=["rdma-pinned-revocable.unpin_when_revoked=true"],
    )
    assert code == 0
    assert json.loads(text)[0]["errno"] == "EINVAL"


# --- renderers ------------------------------------------------------------------------------------


def _small() -> list[FlowResult]:
    return compute_matrix(exporters=["vfio-pci", "system-heap"], importers=["iommufd", "static"])


def test_cell_text_is_the_flow_or_the_refusal() -> None:
    cells = {(r.exporter, r.importer): r for r in _small()}
    assert cell_text(cells[("vfio-pci", "iommufd")]) == "pinned-revocable"
    assert cell_text(cells[("vfio-pci", "static")]) == "rejected EOPNOTSUPP (attach)"
    assert cell_text(cells[("system-heap", "iommufd")]) == (
        "rejected EOPNOTSUPP (iommufd private map)"
    )


def test_cell_notes_say_what_the_run_observed() -> None:
    """drivers.md §7 vfio x iommufd: pin is a no-op, IOVA unmapped on revoke, no restore."""
    r = next(r for r in _small() if (r.exporter, r.importer) == ("vfio-pci", "iommufd"))
    assert cell_notes(r) == [
        "dma_buf_pin held (a no-op: exporter has no pin op)",
        "device reaches exp0.bar0 via iova (iommu_map)",
        "VFIO_DEVICE_RESET: invalidate_mappings 2x",
        "no access afterwards (iommu_fault): the importer must import again",
    ]


def test_table_is_a_grid_with_exporter_rows_and_importer_columns() -> None:
    lines = render_table(_small()).splitlines()
    assert lines[0].startswith("machine: exp0 and imp0 below one PCIe switch")
    assert lines[2].split() == ["exporter", "\\", "importer", "iommufd", "static"]
    assert lines[4].split()[:2] == ["vfio-pci", "pinned-revocable"]
    assert lines[4].endswith("rejected EOPNOTSUPP (attach)")
    assert lines[5].split()[0] == "system-heap"
    assert "notes:" in lines


def test_markdown_is_a_table_with_the_flow_in_bold() -> None:
    text = render_markdown(_small(), heading="## P2P")
    lines = text.splitlines()
    assert lines[0] == "## P2P"
    assert "| exporter \\ importer | iommufd | static |" in lines
    row = next(line for line in lines if line.startswith("| **vfio-pci** |"))
    assert "**pinned-revocable**: dma_buf_pin held" in row
    assert row.endswith("| **rejected EOPNOTSUPP (attach)** |")


def test_json_detail_adds_the_observations() -> None:
    data = json.loads(render_json(_small(), detail=True))
    first = data[0]
    assert first["detail"]["pinned"] is True
    assert first["detail"]["takeback"] == "VFIO_DEVICE_RESET"
    assert first["detail"]["broken"] == []


# --- the generated document -----------------------------------------------------------------------


def _generator() -> ModuleType:
    path = ROOT / "scripts" / "gen_matrix_doc.py"
    spec = importlib.util.spec_from_file_location("gen_matrix_doc", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_docs_matrix_md_is_what_the_generator_writes() -> None:
    """docs/matrix.md is generated (scripts/gen_matrix_doc.py), never edited by hand."""
    assert (ROOT / "docs/matrix.md").read_text() == _generator().render_doc()
