"""Every bundled scenario gives its expected verdict and exit code, and every trace replays.

The issue's "done when": `dmabuf-model check NAME` exits 0 when every property holds and 1 on a
violation, reports its [expect] as met, and `dmabuf-model replay` reproduces the trace that
`--trace-out` wrote, step for step (docs/scenarios.md, docs/traces.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from dmabuf_model.cli import main
from dmabuf_model.scenario import bundled


def _runs() -> list[tuple[str, dict[str, object], str]]:
    out: list[tuple[str, dict[str, object], str]] = []
    for b in bundled():
        expect = b.load().expect
        assert expect is not None
        out.append((b.name, {}, expect.verdict))
        out.extend((b.name, dict(v.set), v.verdict) for v in expect.variants)
    return out


RUNS = _runs()


def _id(run: tuple[str, dict[str, object], str]) -> str:
    name, sets, _ = run
    return name + "".join(f"+{k}={v}" for k, v in sets.items())


def test_every_bundled_scenario_and_variant_is_covered() -> None:
    """Five scenarios and the watchdog variant (issue part 2)."""
    assert [_id(r) for r in RUNS] == [
        "broken-exporter-no-fence-wait",
        "broken-importer-never-unmaps",
        "broken-importer-never-unmaps+vfio.watchdog_1s=warn",
        "gpu-eviction",
        "legacy-pinned-rdma",
        "vfio-revoke",
    ]


@pytest.mark.parametrize("run", RUNS, ids=_id)
def test_bundled_scenario_meets_its_expectation_and_its_trace_replays(
    run: tuple[str, dict[str, object], str], tmp_path: Path
) -> None:
    """check: exit 0 for holds (and refused-but-holds), 1 for a violation; "Expected: ... -
    met."; the trace written with --trace-out replays to the same text."""
    name, sets, verdict = run
    trace = tmp_path / "trace.json"
    args = ["check", name, "--trace-out", str(trace)]
    for k, v in sets.items():
        args += ["--set", f"{k}={v}"]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    want = 1 if verdict.startswith("violation") else 0
    assert result.exit_code == want, result.output
    assert f"Expected: {verdict} - met." in result.stdout
    assert f"Verdict: {verdict if want else 'holds'}" in result.stdout
    if not want:
        assert not trace.exists()
        return
    checked = result.stdout.split("Trace of the first violation:\n", 1)[1].split("\n\nVerdict:")[0]
    replayed = CliRunner().invoke(main, ["replay", str(trace)], catch_exceptions=False)
    assert replayed.exit_code == 0, replayed.output
    assert replayed.stdout.rstrip("\n") == checked.rstrip("\n")


def test_the_expect_flag_turns_a_met_violation_into_exit_0() -> None:
    """--expect: the exit code says whether [expect] was met (docs/scenarios.md)."""
    result = CliRunner().invoke(main, ["check", "broken-exporter-no-fence-wait", "--expect"])
    assert result.exit_code == 0
