"""compare-designs: every row under every design, and what each cell says (issue 6 part 2).

The done-criteria of the issue: under pin-only-6.19 (accept at attach) legacy-pinned-rdma is a
DMA-after-reset violation with its shortest trace; under merged-2026 it is refused at attach
with EOPNOTSUPP; under revoke-v1 "a dynamic importer maps again after the FLR" is never
reached. core-semantics §7; drivers.md §1.3, §1.8, §3.1.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dmabuf_model.check import check
from dmabuf_model.drivers.compose import DmaBufSystem
from dmabuf_model.drivers.rdma_umem import RdmaOdpImporter, RdmaPinnedImporter
from dmabuf_model.drivers.vfio_pci import VfioPciExporter
from dmabuf_model.errors import ScenarioError
from dmabuf_model.platform.topology import Topology
from dmabuf_model.report.designs import (
    CASES,
    FILE_ROWS,
    Cell,
    DesignCase,
    Row,
    cases_for,
    compare_designs,
    compare_designs_main,
    model_for,
    run_cell,
    scenario_case,
    to_html,
    to_json,
    to_markdown,
)
from dmabuf_model.report.tracejson import load_trace, replay_trace


def _case(scenario: str, pair: str) -> DesignCase:
    return next(c for c in CASES if c.scenario == scenario and c.pair == pair)


LEGACY = _case("legacy-pinned-rdma", "vfio-pci x rdma-pinned")
ODP = _case("vfio-revoke", "vfio-pci x rdma-odp")
AMDGPU = _case("vfio-revoke", "vfio-pci x amdgpu")


def test_legacy_pinned_rdma_under_6_19_is_dma_after_reset_with_its_shortest_trace(
    tmp_path: Path,
) -> None:
    """Accepted at attach, revoked in name only by the stub move_notify, the NIC writes into
    the BAR after the FLR (drivers.md §1.8, §3.1). BFS: 11 steps, no shorter violation."""
    cell = run_cell(LEGACY, "pin-only-6.19", out_dir=tmp_path)
    assert cell.verdict == "violation" and cell.property == "no_dma_violation"
    assert cell.finding == "dma_after_reset" and cell.steps == 11
    assert cell.label() == "violation: no_dma_violation (dma_after_reset) (trace of 11 steps)"
    stem = "legacy-pinned-rdma.vfio-pci-x-rdma-pinned.pin-only-6.19"
    assert cell.trace == str(tmp_path / f"{stem}.json")
    assert (tmp_path / f"{stem}.txt").read_text().count("dma_buf_move_notify(buf0)") == 1
    assert "<svg" in (tmp_path / f"{stem}.svg").read_text()
    trace = load_trace(tmp_path / f"{stem}.json")
    assert trace.design == "pin-only-6.19"
    assert [s.action for s in trace.steps] == [
        "env: vfio-pci: VFIO_DEVICE_RESET",
        "T1 vfio-pci: VFIO_DEVICE_RESET: down_write memory_lock",
        "env: rdma-pinned: ibv_reg_dmabuf_mr",
        "T2 rdma-pinned ibv_reg_dmabuf_mr: ib_umem_dmabuf_get",
        "T2 rdma-pinned ibv_reg_dmabuf_mr: dma_resv_lock, dma_buf_pin, ib_umem_dmabuf_map_pages",
        "T2 rdma-pinned ibv_reg_dmabuf_mr: ib_umem_dmabuf_map_pages: wait KERNEL fences",
        "T1 vfio-pci: VFIO_DEVICE_RESET: "
        "vfio_pci_dma_buf_move(revoked=true): lock resv, revoke, move_notify, unlock",
        "T1 vfio-pci: VFIO_DEVICE_RESET: pci_try_reset_function",
        "env: rdma-pinned: NIC accesses the MR",
        "T3 rdma-pinned NIC: NIC accesses the MR",
        "T4 dev1 DMA engine: dma_engine_run",
    ]
    assert replay_trace(trace, model_for).token == trace.token


@pytest.mark.parametrize(
    ("design", "label"),
    [
        ("merged-2026", "refused: EOPNOTSUPP at attach"),
        ("revoke-v1", "refused: EOPNOTSUPP at attach"),
        ("pin-only-6.19-rc", "refused: EOPNOTSUPP at pin"),
    ],
)
def test_legacy_pinned_rdma_is_refused_where_the_design_refuses_it(design: str, label: str) -> None:
    """drivers.md §1.8: at attach since v7 (and under revoke-v1's revoke mode), at pin between
    the 6.19-rc fix and v7; every property holds and the pinned importer is never accepted."""
    cell = run_cell(LEGACY, design, out_dir=None)
    assert cell.label() == label
    assert "pinned_importer_accepted" in cell.never_reached


def test_revoke_v1_never_maps_again_after_the_flr_where_merged_does() -> None:
    """What a one-way revoke loses (core-semantics §7): the ODP MR cannot fault back in."""
    v1 = run_cell(ODP, "revoke-v1", out_dir=None)
    assert v1.verdict == "holds"
    assert v1.never_reached == ("dynamic_importer_maps_again_after_flr",)
    assert v1.label() == "holds; never reached: dynamic_importer_maps_again_after_flr"
    merged = run_cell(ODP, "merged-2026", out_dir=None)
    assert merged.label() == "holds" and "dynamic_importer_maps_again_after_flr" in merged.reached


def test_6_19_never_completes_a_revoke() -> None:
    """Without v7's waits VFIO never learns that importer DMA stopped (drivers.md §1.3)."""
    cell = run_cell(ODP, "pin-only-6.19", out_dir=None)
    assert cell.label() == "holds; never reached: vfio_revoke_completes"


def test_every_property_holds_for_the_merged_vfio_odp_pair() -> None:
    """Exhaustive: every always-property holds and every sometimes one is reached (§7 cell)."""
    system = ODP.build("merged-2026")
    result = check(system.model(), stop_at_first=False)
    result.assert_properties()
    assert result.complete


def test_without_the_fence_wait_a_gpu_job_lands_in_the_reset_bar() -> None:
    """pin-only-6.19 x amdgpu: the revoke does not wait for BOOKKEEP fences, so a GPU job
    queued before it writes the BAR after the reset ("vfio: Wait for dma-buf invalidation to
    complete" fixed this, drivers.md §1.3 step 3)."""
    cell = run_cell(AMDGPU, "pin-only-6.19", out_dir=None)
    assert (cell.property, cell.finding, cell.steps) == ("no_dma_violation", "dma_after_reset", 7)
    assert run_cell(AMDGPU, "merged-2026", out_dir=None).label() == "holds"


def _rows() -> list[Cell]:
    return [
        Cell("merged-2026", "refused", errno="EOPNOTSUPP", step="attach"),
        Cell(
            "pin-only-6.19",
            "violation",
            property="no_dma_violation",
            finding="dma_after_reset",
            steps=11,
            text="out/x.txt",
            diagram="out/x.svg",
            trace="out/x.json",
        ),
    ]


def test_markdown_has_a_column_per_design_and_links_violations() -> None:
    """Issue 6 part 2: a row per scenario pair, a column per design, linked traces."""
    rows = compare_designs([LEGACY], ["merged-2026"], out_dir=None)
    assert to_markdown(rows).splitlines() == [
        "| scenario | exporter x importer | merged-2026 |",
        "|---|---|---|",
        "| legacy-pinned-rdma | vfio-pci × rdma-pinned | refused: EOPNOTSUPP at attach |",
    ]
    md = to_markdown([Row(LEGACY, tuple(_rows()))], link_base="out")
    assert "violation: no_dma_violation (dma_after_reset) ([trace of 11 steps](x.txt), " in md
    assert "[diagram](x.svg))" in md


def test_json_and_html_carry_the_same_cells() -> None:
    rows = [Row(LEGACY, tuple(_rows()))]
    data = json.loads(to_json(rows))
    assert data[0]["scenario"] == "legacy-pinned-rdma" and data[0]["pair"] == LEGACY.pair
    cells = data[0]["cells"]
    assert [c["label"] for c in cells] == [
        "refused: EOPNOTSUPP at attach",
        "violation: no_dma_violation (dma_after_reset) (trace of 11 steps)",
    ]
    assert cells[1]["trace"] == "out/x.json" and cells[0]["errno"] == "EOPNOTSUPP"
    page = to_html(rows)
    assert page.startswith("<!DOCTYPE html>") and '<a href="out/x.svg">diagram</a>' in page


def test_compare_designs_main_rejects_bad_input_with_exit_code_2() -> None:
    """Usage errors are one line and exit 2 (style-guide B7, B8)."""
    assert compare_designs_main([], "yaml") == (
        "compare-designs: unknown format 'yaml'; choose one of markdown, json, html\n",
        2,
    )
    text, code = compare_designs_main(["nope"], "markdown")
    assert code == 2 and text.startswith("nope: (file): not a file and not a bundled scenario")
    assert text.count("\n") == 1
    text, code = compare_designs_main([], "json", designs=["v9"])
    assert code == 2 and text.startswith("compare-designs: unknown design 'v9'")


def test_compare_designs_main_runs_the_named_scenarios(tmp_path: Path) -> None:
    text, code = compare_designs_main(["legacy-pinned-rdma"], "json", out_dir=str(tmp_path))
    data = json.loads(text)
    assert code == 0 and [row["pair"] for row in data] == ["vfio-pci x rdma-pinned"]
    labels = [c["label"] for c in data[0]["cells"]]
    assert labels == [
        "refused: EOPNOTSUPP at attach",
        "refused: EOPNOTSUPP at attach",
        "violation: no_dma_violation (dma_after_reset) (trace of 11 steps)",
        "refused: EOPNOTSUPP at pin",
    ]


def test_cases_for_keeps_table_order_and_names_unknown_scenarios() -> None:
    assert [c.pair for c in cases_for(["vfio-revoke"])] == [
        "vfio-pci x iommufd",
        "vfio-pci x rdma-odp",
        "vfio-pci x rdma-pinned-revocable",
        "vfio-pci x amdgpu",
    ]
    everything = cases_for([])
    assert everything[: len(CASES)] == list(CASES)
    assert [c.scenario for c in everything[len(CASES) :]] == list(FILE_ROWS)
    with pytest.raises(ScenarioError, match=r"^x: \(file\): not a file and not a bundled scenario"):
        cases_for(["x"])


def test_a_bundled_scenario_without_design_rows_runs_whole_from_its_file() -> None:
    """compare-designs takes any bundled scenario or scenario file (issue 6, part 2)."""
    (case,) = cases_for(["broken-exporter-no-fence-wait"])
    assert case.pair == "amdgpu x xe"
    cell = run_cell(case, "merged-2026", out_dir=None)
    assert cell.label().startswith("violation: no_dma_violation (dma_after_reuse)")


def _two_importers(design: str) -> DmaBufSystem:
    system = DmaBufSystem(Topology.simple(["exp0", "nic0", "nic1"]), options={"design": design})
    vfio = system.add_exporter(VfioPciExporter, device="exp0")
    system.add_importer(RdmaOdpImporter, device="nic0", source=vfio, access_budget=0)
    system.add_importer(RdmaPinnedImporter, device="nic1", source=vfio, access_budget=0)
    return system


def test_a_whole_scenario_is_one_row_with_every_pair_and_the_refused_importer() -> None:
    """scenario_case: the adapter for scenario files; the refusal names the importer."""
    case = scenario_case("two-nics", _two_importers, "ODP and legacy pinned MRs of one BAR")
    assert case.pair == "vfio-pci x rdma-odp, vfio-pci x rdma-pinned"
    names = [p.name for p in case.build("merged-2026").extra_properties]
    assert names == [
        "vfio_revoke_completes",
        "pinned_importer_accepted",
        "dynamic_importer_maps_again_after_flr",
    ]
    cell = run_cell(case, "merged-2026", out_dir=None)
    assert cell.label() == "refused: EOPNOTSUPP at attach (rdma-pinned)"
