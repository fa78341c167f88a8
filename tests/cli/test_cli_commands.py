"""The command line: --help everywhere, exit codes 0/1/2/130, JSON, replay, explain, the demo.

docs/scenarios.md "The commands". Scenario semantics are tested in tests/scenario; here only
what the command line adds: option parsing, output, files and exit codes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from dmabuf_model.cli import main
from dmabuf_model.designs import DESIGN_NAMES
from dmabuf_model.system.model import SystemModel

COMMANDS = [
    "check",
    "simulate",
    "replay",
    "explain",
    "scenarios",
    "demo",
    "walk",
    "matrix",
    "compare-designs",
]
BROKEN = "broken-exporter-no-fence-wait"


def run(*args: str) -> Any:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str) -> None:
    """Issue part 3: --help on every command."""
    result = run(command, "--help")
    assert result.exit_code == 0
    assert result.stdout.startswith(f"Usage: main {command} ")


def test_scenarios_lists_the_bundled_ones_one_line_each() -> None:
    """`dmabuf-model scenarios`: name, summary, expected verdict."""
    result = run("scenarios")
    lines = result.stdout.splitlines()
    assert result.exit_code == 0 and len(lines) == 5
    assert lines[-1].startswith("vfio-revoke ")
    assert lines[-1].endswith("(expected: holds)")


def test_an_unknown_design_exits_2_listing_the_known_ones() -> None:
    """Issue part 3: --design NAME from the single list in dmabuf_model.designs."""
    result = run("check", BROKEN, "--design", "v9")
    assert result.exit_code == 2
    for name in DESIGN_NAMES:
        assert name in result.stderr


def test_a_known_design_is_reported_and_changes_the_model() -> None:
    """Under pin-only-6.19 vfio-pci accepts the legacy pinned importer (docs/designs.md), so the
    refusal expected under the merged design is not met."""
    result = run("check", "legacy-pinned-rdma", "--design", "pin-only-6.19")
    assert "design pin-only-6.19" in result.stdout
    assert "Expected: refused with EOPNOTSUPP at dma_buf_dynamic_attach - NOT met" in result.stdout


def test_json_output_is_one_object_with_the_verdict_and_the_result() -> None:
    """--format json: machine-readable verdict, expectation and checker result."""
    result = run("check", BROKEN, "--format", "json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["verdict"] == "violation of no_dma_violation"
    assert data["expected"]["met"] is True
    assert data["exit_code"] == 1
    assert data["result"]["discoveries"][-1]["property"] == "no_dma_violation"


def test_bad_set_options_exit_2_with_one_line() -> None:
    """--set DRIVER.OPTION=VALUE: a malformed or unknown key is bad input."""
    result = run("check", BROKEN, "--set", "novalue")
    assert result.exit_code == 2
    assert result.stderr.startswith("--set novalue: not KEY=VALUE")
    result = run("check", BROKEN, "--set", "amdgpu.nope=1")
    assert result.exit_code == 2
    assert "exporters[0].options.nope: 'nope' is not an option of amdgpu" in result.stderr


def test_a_bounded_check_that_finds_nothing_says_it_was_incomplete() -> None:
    """--max-states: holds within the states explored (exit 0); too tight a bound leaves a
    sometimes property without an example, which is not a pass (exit 1)."""
    result = run("check", "legacy-pinned-rdma", "--max-states", "40")
    assert result.exit_code == 0
    assert (
        "Verdict: holds (within the states explored: the search was incomplete)." in result.stdout
    )
    result = run("check", "legacy-pinned-rdma", "--max-states", "5")
    assert result.exit_code == 1
    assert "Verdict: never reached vfio_revoke_completes[vfio]." in result.stdout


def test_options_the_checker_refuses_exit_2() -> None:
    """dfs with several workers is refused by check() (docs/checker.md)."""
    result = run("check", BROKEN, "--strategy", "dfs", "--workers", "2")
    assert result.exit_code == 2
    assert "workers=2 needs strategy='bfs'" in result.stderr


def test_symmetry_on_a_model_without_it_is_noted_and_ignored() -> None:
    """--symmetry: SystemModel has no canonical() yet; the check runs without it."""
    result = run("check", BROKEN, "--symmetry")
    assert result.exit_code == 1
    assert "Note: symmetry reduction is not available for this model" in result.stdout


def test_simulate_with_the_same_seed_prints_the_same_report() -> None:
    """`simulate --runs --steps --seed`: reproducible, and it finds the broken exporter's bug."""
    args = ("simulate", BROKEN, "--runs", "40", "--steps", "30", "--seed", "3")
    first, second = run(*args), run(*args)
    assert first.exit_code == second.exit_code == 1
    strip = [line for line in first.stdout.splitlines() if "sec=" not in line and "/s" not in line]
    again = [line for line in second.stdout.splitlines() if "sec=" not in line and "/s" not in line]
    assert strip == again
    assert "Random simulation: seed=3, runs=40, max_steps=30." in first.stdout


def test_replay_prints_a_diagram_on_request(tmp_path: Path) -> None:
    """replay --diagram mermaid|svg draws the replayed trace (docs/traces.md)."""
    trace = tmp_path / "t.json"
    assert run("check", BROKEN, "--trace-out", str(trace)).exit_code == 1
    data = json.loads(trace.read_text())
    assert data["scenario"]["name"] == BROKEN and "[[exporters]]" in data["scenario"]["toml"]
    mermaid = run("replay", str(trace), "--diagram", "mermaid")
    assert mermaid.exit_code == 0 and mermaid.stdout.startswith("sequenceDiagram")
    svg = run("replay", str(trace), "--diagram", "svg")
    assert svg.exit_code == 0 and svg.stdout.startswith("<?xml")


def test_replay_rebuilds_from_the_embedded_toml_without_the_file(tmp_path: Path) -> None:
    """The trace carries the scenario's TOML: replay works after the file is gone."""
    src = tmp_path / "mine.toml"
    from dmabuf_model.scenario import bundled

    text = next(b for b in bundled() if b.name == BROKEN).text()
    src.write_text(text.replace('name = "broken-exporter-no-fence-wait"', 'name = "mine"'))
    trace = tmp_path / "t.json"
    assert run("check", str(src), "--trace-out", str(trace)).exit_code == 1
    src.unlink()
    result = run("replay", str(trace))
    assert result.exit_code == 0
    assert result.stdout.startswith("mine: counterexample")


def test_a_trace_the_model_no_longer_follows_exits_1(tmp_path: Path) -> None:
    """replay checks every step's action: a changed action is one line, exit 1."""
    trace = tmp_path / "t.json"
    run("check", BROKEN, "--trace-out", str(trace))
    data = json.loads(trace.read_text())
    data["steps"][2]["action"] = "T3 xe-submit: something else"
    trace.write_text(json.dumps(data))
    result = run("replay", str(trace))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"replay: {trace}: step 3: the trace says ")
    assert len(result.stderr.splitlines()) == 1


def test_a_file_that_is_not_a_trace_exits_2(tmp_path: Path) -> None:
    """replay of a missing or malformed file is bad input."""
    assert run("replay", str(tmp_path / "none.json")).exit_code == 2
    (tmp_path / "bad.json").write_text('{"schema": "dmabuf-model-trace/1"}')
    result = run("replay", str(tmp_path / "bad.json"))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"{tmp_path / 'bad.json'}: ")


def test_explain_prints_each_attachment_and_json_on_request() -> None:
    """explain: text by default, one JSON object with --format json (core-semantics §6.4)."""
    text = run("explain", "legacy-pinned-rdma")
    assert text.exit_code == 0
    assert "flow: rejected: -EOPNOTSUPP at dma_buf_dynamic_attach" in text.stdout
    data = json.loads(run("explain", "vfio-revoke", "--format", "json").stdout)
    flows = {a["importer"]: a["flow"] for a in data["attachments"]}
    assert flows == {
        "iommufd": "revoked (pinned-revocable)",
        "odp": "movable",
        "irdma": "revoked (pinned-revocable)",
        "amdgpu": "movable",
    }


@pytest.fixture
def interrupt_after(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Make the search see Ctrl-C after a few expansions, as a user pressing it would."""
    original = SystemModel.successors
    calls = {"n": 0}

    def successors(self: SystemModel, state: Any) -> Any:
        calls["n"] += 1
        if calls["n"] > 5:
            raise KeyboardInterrupt
        return original(self, state)

    monkeypatch.setattr(SystemModel, "successors", successors)
    yield


def test_ctrl_c_prints_the_statistics_so_far_and_exits_130(interrupt_after: None) -> None:
    """The checker stops cleanly with an interrupted result; the command exits 130."""
    result = run("check", "gpu-eviction")
    assert result.exit_code == 130
    assert "Interrupted. states=" in result.stdout
    assert "the run was interrupted" in result.stdout


def test_demo_checks_vfio_revoke_and_writes_the_broken_exporters_trace(tmp_path: Path) -> None:
    """Issue part 5, `make demo`: vfio-revoke holds, then the broken exporter's trace (JSON,
    text) and diagram (SVG, Mermaid) are written and replay."""
    out = tmp_path / "out"
    result = run("demo", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "Expected: holds - met." in result.stdout
    assert "Expected: violation of no_dma_violation - met." in result.stdout
    base = out / BROKEN
    for suffix in (".json", ".txt", ".svg", ".mmd"):
        assert (out / f"{BROKEN}{suffix}").stat().st_size > 0
    assert (out / f"{BROKEN}.mmd").read_text().startswith("sequenceDiagram")
    assert run("replay", f"{base}.json").exit_code == 0


def test_walk_is_the_core_revoke_call_log() -> None:
    """The earlier demo stays available as `walk` (core-semantics §5.8)."""
    result = run("walk")
    assert result.exit_code == 0
    assert result.stdout.splitlines()[-1] == "kernel warnings: none"


def test_matrix_and_compare_designs_are_wired() -> None:
    """The drivers.md §7 matrix and the design comparison run from the command line."""
    result = run("matrix", "--exporter", "vfio-pci", "--importer", "iommufd", "--format", "json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)[0]["flow"] == "pinned-revocable"
    assert run("matrix", "--exporter", "nvme").exit_code == 2
    assert run("compare-designs", "--format", "yaml").exit_code == 2


def test_trace_out_creates_missing_directories_and_reports_unwritable_paths(
    tmp_path: Path,
) -> None:
    """--trace-out into a new directory works; an unwritable path is one line, exit 2."""
    target = tmp_path / "new" / "dir" / "t.json"
    assert run("check", BROKEN, "--trace-out", str(target)).exit_code == 1
    assert target.is_file()
    (tmp_path / "file").write_text("")
    result = run("check", BROKEN, "--trace-out", str(tmp_path / "file" / "t.json"))
    assert result.exit_code == 2
    assert len(result.stderr.splitlines()) == 1
