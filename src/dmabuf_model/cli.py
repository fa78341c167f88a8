"""The dmabuf-model command line: a thin layer over the library (click).

Exit codes: 0 every property holds, 1 a violation was found, 2 bad input or usage, 130 the run
was interrupted (Ctrl-C; the statistics so far are printed first). With ``check --expect`` the
exit code says whether the scenario's [expect] was met instead (0 met, 1 not met). A scenario
mistake is one line on stderr, ``FILE:LINE: FIELD: what is wrong (what was expected)``, never a
traceback. docs/scenarios.md documents the scenario files and every command.
"""

from __future__ import annotations

import json
import os
import sys
import tomllib
from collections.abc import Callable, Sequence
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, ParamSpec, TypeVar

import click

from dmabuf_model.designs import DESIGN_NAMES
from dmabuf_model.errors import DmaBufModelError, ReplayError, ScenarioError

if TYPE_CHECKING:
    from dmabuf_model.check.result import CheckResult
    from dmabuf_model.scenario import BuiltScenario, Scenario

EXIT_OK = 0
EXIT_VIOLATION = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

DEMO_HOLDS = "vfio-revoke"
DEMO_BROKEN = "broken-exporter-no-fence-wait"

P = ParamSpec("P")
R = TypeVar("R")


def _fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    click.echo(" ".join(message.split()), err=True)
    sys.exit(code)


def _guarded(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn the library's exceptions into one line on stderr and the documented exit code.

    DMABUF_MODEL_DEBUG=1 re-raises unexpected exceptions with their traceback.
    """

    @wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except ReplayError as exc:
            _fail(f"replay: {exc}", EXIT_VIOLATION)
        except ScenarioError as exc:
            _fail(str(exc))
        except DmaBufModelError as exc:
            _fail(f"{type(exc).__name__}: {exc}")
        except KeyboardInterrupt:
            _fail("interrupted", EXIT_INTERRUPTED)
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            _fail(f"{where}(file): {exc.strerror or exc} (expected a path that can be written)")
        except (click.exceptions.Exit, click.ClickException, SystemExit):
            raise
        except Exception as exc:
            if os.environ.get("DMABUF_MODEL_DEBUG"):
                raise
            _fail(
                f"dmabuf-model: {type(exc).__name__}: {exc} (the scenario reached a state the "
                "model cannot handle; set DMABUF_MODEL_DEBUG=1 for the traceback)"
            )

    return wrapper


def _parse_sets(items: Sequence[str]) -> dict[str, Any]:
    """``DRIVER.OPTION=VALUE`` strings; VALUE is a TOML value (true, 3, "x") or a bare word."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ScenarioError(
                f"--set {item}: not KEY=VALUE (expected DRIVER.OPTION=VALUE, e.g. "
                "vfio.watchdog_1s=warn)",
                field="--set",
            )
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        out[key.strip()] = value
    return out


def _scenario(arg: str, design: str | None, sets: Sequence[str]) -> tuple[Scenario, dict[str, Any]]:
    from dmabuf_model.scenario import resolve

    scenario = resolve(arg)
    overrides = _parse_sets(sets)
    scenario = scenario.with_overrides(overrides)
    if design is not None:
        scenario = scenario.with_design(design)
    return scenario, overrides


def _trace_scenario(scenario: Scenario, overrides: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": scenario.name,
        "path": scenario.source,
        "toml": scenario.text,
        "set": overrides,
    }


def _rebuild(design: str | None) -> Callable[[dict[str, Any]], Any]:
    """The replay callback: the model of a trace's embedded scenario (TOML text or name)."""

    def rebuild(data: dict[str, Any]) -> Any:
        from dmabuf_model.scenario import build, loads, resolve

        text = data.get("toml")
        if isinstance(text, str):
            scenario = loads(text, source=str(data.get("path") or data["name"]))
        else:
            scenario = resolve(str(data["name"]))
        sets = data.get("set") or {}
        if not isinstance(sets, dict):
            raise ScenarioError("scenario.set: is not a table (expected DRIVER.OPTION: VALUE)")
        scenario = scenario.with_overrides(sets)
        return build(scenario, design=design).model

    return rebuild


design_option = click.option(
    "--design",
    type=click.Choice(DESIGN_NAMES),
    default=None,
    help="The design variant (default: the scenario's, else merged-2026).",
)
set_option = click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="DRIVER.OPTION=VALUE",
    help="Override a driver option (or DRIVER.events.EVENT=N); repeatable.",
)
format_option = click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Report as text or as one JSON object on stdout.",
)
trace_option = click.option(
    "--trace-out",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the first violation's trace as JSON (with the scenario embedded) to FILE.",
)
expect_option = click.option(
    "--expect",
    "use_expect",
    is_flag=True,
    help="Exit 0 when the scenario's [expect] is met and 1 when it is not.",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dmabuf-model")
def main() -> None:
    """An executable, checkable model of Linux DMA-buf sharing.

    SCENARIO is a scenario file or the name of a bundled one (see `dmabuf-model scenarios`).
    Exit codes: 0 every property holds, 1 a violation was found, 2 bad input or usage, 130
    interrupted.
    """


# --- check and simulate ---------------------------------------------------------------------------


def _run(
    scenario: Scenario,
    overrides: dict[str, Any],
    *,
    strategy: str,
    symmetry: bool,
    workers: int,
    max_states: int | None,
    max_depth: int | None,
    runs: int,
    steps: int,
    seed: int,
    fmt: str,
    trace_out: str | None,
    use_expect: bool,
) -> int:
    """Build, check or simulate, report; the exit code."""
    from dmabuf_model.check import check, simulate
    from dmabuf_model.scenario import build

    built = build(scenario)
    model = built.model
    notes: list[str] = []
    if symmetry and not model.has_symmetry:
        notes.append("symmetry reduction is not available for this model: checked without it")
        symmetry = False
    if strategy == "simulate":
        result: CheckResult[Any, Any] = simulate(
            model, seed=seed, runs=runs, max_steps=steps, progress=None
        )
    else:
        try:
            result = check(
                model,
                strategy="dfs" if strategy == "dfs" else "bfs",
                symmetry=symmetry,
                workers=workers,
                max_states=max_states,
                max_depth=max_depth,
                progress=None,
            )
        except ValueError as exc:
            raise ScenarioError(f"(options): {exc}", file="dmabuf-model check") from None
    return _report(built, overrides, result, fmt, trace_out, use_expect, strategy, notes)


def _report(
    built: BuiltScenario,
    overrides: dict[str, Any],
    result: CheckResult[Any, Any],
    fmt: str,
    trace_out: str | None,
    use_expect: bool,
    strategy: str,
    notes: list[str],
) -> int:
    from dmabuf_model.report import discovery_trace, trace_dumps, trace_to_text, write_atomic
    from dmabuf_model.scenario.expect import evaluate, verdict_of

    sc = built.scenario
    verdict = verdict_of(result)
    expected = sc.expect.for_overrides(overrides) if sc.expect is not None else None
    outcome = evaluate(built, result, expected) if expected is not None else None
    first = result.failures[0] if result.failures else None
    trace = None
    if first is not None:
        trace = discovery_trace(
            built.model, first, scenario=_trace_scenario(sc, overrides), design=built.design
        )
    written = None
    if trace_out is not None:
        if trace is None:
            notes.append(f"no violation: nothing written to {trace_out}")
        else:
            Path(trace_out).parent.mkdir(parents=True, exist_ok=True)
            write_atomic(trace_out, trace_dumps(trace))
            written = trace_out
    if result.interrupted:
        code = EXIT_INTERRUPTED
    elif use_expect and outcome is not None:
        code = EXIT_OK if outcome.met else EXIT_VIOLATION
    elif use_expect:
        notes.append("--expect: the scenario has no [expect] section; exit code from the verdict")
        code = EXIT_OK if result.ok else EXIT_VIOLATION
    else:
        code = EXIT_OK if result.ok else EXIT_VIOLATION
    if fmt == "json":
        out = {
            "scenario": sc.name,
            "path": sc.source,
            "design": built.design,
            "set": overrides,
            "strategy": strategy,
            "verdict": verdict,
            "expected": outcome.to_json() if outcome is not None else None,
            "trace_out": written,
            "notes": notes,
            "exit_code": code,
            "result": result.to_json(),
        }
        click.echo(json.dumps(out, indent=2, default=str))
        return code
    sets = "".join(f", --set {k}={v}" for k, v in overrides.items())
    click.echo(
        f"Scenario {sc.name} ({sc.source}), design {built.design}{sets}, strategy {strategy}."
    )
    click.echo(result.report())
    if trace is not None:
        click.echo("")
        click.echo("Trace of the first violation:")
        click.echo(trace_to_text(trace).rstrip("\n"))
    click.echo("")
    qualifier = ""
    if verdict == "holds" and result.stats.runs:
        qualifier = " (on the runs simulated: a simulation is not exhaustive)"
    elif verdict == "holds" and not result.complete:
        qualifier = " (within the states explored: the search was incomplete)"
    click.echo(f"Verdict: {verdict}{qualifier}.")
    if outcome is not None:
        click.echo(outcome.text())
    for note in notes:
        click.echo(f"Note: {note}.")
    if written is not None:
        click.echo(f"Trace written to {written} (dmabuf-model replay {written}).")
    return code


@main.command("check")
@click.argument("scenario")
@design_option
@click.option(
    "--strategy",
    type=click.Choice(["bfs", "dfs", "simulate"]),
    default=None,
    help="Breadth-first (shortest traces), depth-first, or random simulation.",
)
@click.option(
    "--symmetry/--no-symmetry", default=None, help="Symmetry reduction (when the model has it)."
)
@click.option(
    "--workers", type=click.IntRange(0, 256), default=None, help="Processes for bfs; 0: one a core."
)
@click.option(
    "--max-states", type=click.IntRange(1, 10**9), default=None, help="Stop after N states."
)
@click.option("--max-depth", type=click.IntRange(1, 100_000), default=None, help="Depth bound.")
@trace_option
@format_option
@set_option
@expect_option
@_guarded
def check_command(
    scenario: str,
    design: str | None,
    strategy: str | None,
    symmetry: bool | None,
    workers: int | None,
    max_states: int | None,
    max_depth: int | None,
    trace_out: str | None,
    fmt: str,
    sets: tuple[str, ...],
    use_expect: bool,
) -> None:
    """Check every reachable state of SCENARIO against its properties.

    Prints the statistics, every discovery with its path, the trace of the first violation,
    the verdict and whether the scenario's [expect] is met.
    """
    sc, overrides = _scenario(scenario, design, sets)
    c = sc.check
    code = _run(
        sc,
        overrides,
        strategy=strategy or c.strategy,
        symmetry=c.symmetry if symmetry is None else symmetry,
        workers=c.workers if workers is None else workers,
        max_states=max_states if max_states is not None else c.max_states,
        max_depth=max_depth if max_depth is not None else c.max_depth,
        runs=c.runs,
        steps=c.steps,
        seed=c.seed,
        fmt=fmt,
        trace_out=trace_out,
        use_expect=use_expect,
    )
    sys.exit(code)


@main.command("simulate")
@click.argument("scenario")
@click.option("--runs", type=click.IntRange(1, 10**7), default=None, help="Random runs.")
@click.option("--steps", type=click.IntRange(0, 10**6), default=None, help="Steps per run.")
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=None, help="Random seed.")
@design_option
@trace_option
@format_option
@set_option
@expect_option
@_guarded
def simulate_command(
    scenario: str,
    runs: int | None,
    steps: int | None,
    seed: int | None,
    design: str | None,
    trace_out: str | None,
    fmt: str,
    sets: tuple[str, ...],
    use_expect: bool,
) -> None:
    """Check SCENARIO on seeded random runs (the same seed gives the same runs)."""
    sc, overrides = _scenario(scenario, design, sets)
    c = sc.check
    code = _run(
        sc,
        overrides,
        strategy="simulate",
        symmetry=False,
        workers=1,
        max_states=None,
        max_depth=None,
        runs=c.runs if runs is None else runs,
        steps=c.steps if steps is None else steps,
        seed=c.seed if seed is None else seed,
        fmt=fmt,
        trace_out=trace_out,
        use_expect=use_expect,
    )
    sys.exit(code)


# --- replay, explain, scenarios -----------------------------------------------------------------


@main.command("replay")
@click.argument("trace", type=click.Path(dir_okay=False))
@click.option(
    "--diagram",
    type=click.Choice(["text", "mermaid", "svg"]),
    default="text",
    show_default=True,
    help="Print the replayed trace as text, Mermaid source or an SVG document.",
)
@click.option("--verbose", is_flag=True, help="Text: one line per kernel call.")
@_guarded
def replay_command(trace: str, diagram: str, verbose: bool) -> None:
    """Replay a TRACE written by check --trace-out, step for step, and print it.

    The model is rebuilt from the scenario embedded in the trace. Exit 0 when every step
    replays as written, 1 when the model no longer does what the trace says, 2 for a file
    that is not a trace.
    """
    from dmabuf_model.report import (
        load_trace,
        replay_trace,
        trace_to_mermaid,
        trace_to_svg,
        trace_to_text,
    )

    if not Path(trace).is_file():
        raise ScenarioError("(file): no such file (expected a trace written by check)", file=trace)
    data = load_trace(trace)
    fresh = replay_trace(data, _rebuild(data.design), source=trace)
    if diagram == "mermaid":
        click.echo(trace_to_mermaid(fresh), nl=False)
    elif diagram == "svg":
        click.echo(trace_to_svg(fresh), nl=False)
    else:
        click.echo(trace_to_text(fresh, verbose=verbose))
    sys.exit(EXIT_OK)


@main.command("explain")
@click.argument("scenario")
@design_option
@set_option
@format_option
@_guarded
def explain_command(scenario: str, design: str | None, sets: tuple[str, ...], fmt: str) -> None:
    """Show the flow each attachment of SCENARIO negotiates, and why, before any checking.

    Each importer's attach, pin and map path runs alone on a fresh system (core-semantics
    §6.4): dynamic or static, peer2peer, revocable, pinned, and the flow it reaches.
    """
    from dataclasses import asdict

    from dmabuf_model.scenario import build
    from dmabuf_model.scenario.explain import explain_flows, format_explanation

    sc, _ = _scenario(scenario, design, sets)
    built = build(sc)
    flows = explain_flows(built)
    if fmt == "json":
        out = {
            "scenario": sc.name,
            "design": built.design,
            "attachments": [asdict(f) for f in flows],
        }
        click.echo(json.dumps(out, indent=2))
    else:
        click.echo(format_explanation(built, flows))
    sys.exit(EXIT_OK)


@main.command("scenarios")
@_guarded
def scenarios_command() -> None:
    """List the bundled scenarios, one line each: name, summary, expected verdict."""
    from dmabuf_model.scenario import bundled

    items = [(b.name, b.load()) for b in bundled()]
    width = max((len(n) for n, _ in items), default=0)
    for name, sc in items:
        expected = sc.expect.verdict if sc.expect is not None else "no expectation"
        click.echo(f"{name:<{width}}  {sc.summary} (expected: {expected})")
    sys.exit(EXIT_OK)


# --- the main job and the older walk -----------------------------------------------------------


@main.command("demo")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    default="out",
    show_default=True,
    help="Directory for the trace and diagrams.",
)
@_guarded
def demo(out_dir: str) -> None:
    """The main job: check vfio-revoke (every property holds), then check
    broken-exporter-no-fence-wait and write its trace (JSON, text) and diagram (SVG, Mermaid)
    under OUT."""
    from dmabuf_model.check import check
    from dmabuf_model.report import (
        discovery_trace,
        trace_dumps,
        trace_to_mermaid,
        trace_to_svg,
        trace_to_text,
        write_atomic,
    )
    from dmabuf_model.scenario import build, resolve
    from dmabuf_model.scenario.expect import evaluate, verdict_of

    ok = True
    for name in (DEMO_HOLDS, DEMO_BROKEN):
        sc = resolve(name)
        built = build(sc)
        click.echo(f"== dmabuf-model check {name}")
        result = check(built.model, progress=None)
        st = result.stats
        click.echo(
            f"{st.unique:,} states, depth {st.max_depth}, {st.seconds:.1f} s: "
            f"verdict {verdict_of(result)}."
        )
        if sc.expect is not None:
            outcome = evaluate(built, result, sc.expect)
            click.echo(outcome.text())
            ok = ok and outcome.met
        if not result.failures:
            continue
        trace = discovery_trace(
            built.model, result.failures[0], scenario=_trace_scenario(sc, {}), design=built.design
        )
        text = trace_to_text(trace)
        click.echo(text)
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        base = Path(out_dir) / name
        for suffix, body in (
            (".json", trace_dumps(trace)),
            (".txt", text + "\n"),
            (".svg", trace_to_svg(trace)),
            (".mmd", trace_to_mermaid(trace)),
        ):
            write_atomic(f"{base}{suffix}", body)
        click.echo(f"Wrote {base}.json, .txt, .svg and .mmd (dmabuf-model replay {base}.json).")
    sys.exit(EXIT_OK if ok else EXIT_VIOLATION)


@main.command("walk")
def walk() -> None:
    """Walk one revoke on the DMA-buf core, step by step, as a call log."""
    from dmabuf_model.demo import run_demo

    run_demo()


# --- the drivers.md §7 matrix and the design comparison (report/matrix.py, report/designs.py) ---


@main.command("matrix")
@click.option("--format", "fmt", type=click.Choice(["table", "markdown", "json"]), default="table")
@click.option("--no-p2p", is_flag=True, help="Run every pair on a machine without P2P.")
@click.option("--exporter", "exporters", multiple=True, help="Only these exporters (rows).")
@click.option("--importer", "importers", multiple=True, help="Only these importers (columns).")
@click.option("--exporter-option", multiple=True, metavar="KIND.OPTION=VALUE")
@click.option("--importer-option", multiple=True, metavar="KIND.OPTION=VALUE")
@click.option("--detail", is_flag=True, help="JSON: add what each run observed.")
def matrix(
    fmt: str,
    no_p2p: bool,
    exporters: tuple[str, ...],
    importers: tuple[str, ...],
    exporter_option: tuple[str, ...],
    importer_option: tuple[str, ...],
    detail: bool,
) -> None:
    """Negotiate every exporter x importer pair and print the flow each reaches (drivers.md §7)."""
    from dmabuf_model.report.matrix import matrix_command_main

    text, code = matrix_command_main(
        fmt,
        no_p2p,
        exporters=exporters,
        importers=importers,
        exporter_options=exporter_option,
        importer_options=importer_option,
        detail=detail,
    )
    click.echo(text, nl=False, err=code == EXIT_USAGE)
    sys.exit(code)


@main.command("compare-designs")
@click.argument("scenarios", nargs=-1)
@click.option(
    "--format", "fmt", type=click.Choice(["markdown", "json", "html"]), default="markdown"
)
@click.option("--design", "designs", multiple=True, type=click.Choice(DESIGN_NAMES))
@click.option("--out", "out_dir", default="out/designs", show_default=True)
@click.option("--link-base", default=None, help="Make trace links relative to this directory.")
def compare_designs(
    scenarios: tuple[str, ...],
    fmt: str,
    designs: tuple[str, ...],
    out_dir: str,
    link_base: str | None,
) -> None:
    """Check each design case under every design and print the comparison table."""
    from dmabuf_model.report.designs import compare_designs_main

    text, code = compare_designs_main(
        list(scenarios), fmt, out_dir=out_dir, designs=designs or None, link_base=link_base
    )
    click.echo(text, nl=False, err=code == EXIT_USAGE)
    sys.exit(code)


__all__ = ["EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "EXIT_VIOLATION", "main"]
