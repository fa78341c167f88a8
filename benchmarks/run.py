"""Benchmark the checker against SPIN on the toy revoke model (``make bench``).

Runs, in one go, for N importers (default 9): our vectorised BFS, our parallel BFS, our BFS with
symmetry reduction, the generic Python BFS on a hand-written Model (at a smaller N by default,
it is the slow path), and SPIN 6.5 on the Promela twin revoke_toy.pml with an exhaustive search.
Prints time, distinct states, states/s and bytes/state for each, the ratio to SPIN, whether the
counts agree (1,973,832 at N = 9, SPIN, TLC and Rumur agree), and the 6-step counterexample of
the model without its guard. Work files go to benchmarks/_work/ (git-ignored).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORK = HERE / "_work"
sys.path.insert(0, str(HERE))

from dmabuf_model.check import check  # noqa: E402
from revoke_toy import RevokeToy, RevokeToyPlain, expected_states  # noqa: E402


@dataclass
class Row:
    """One line of the results table."""

    name: str
    seconds: float
    states: int
    bytes_per_state: float | None
    note: str = ""
    comparable: bool = True

    @property
    def rate(self) -> float:
        return self.states / self.seconds if self.seconds > 0 else float("inf")


def ours(
    name: str, model: object, n_expected: int | None, *, comparable: bool = True, **options: object
) -> Row:
    """Run check() and turn its statistics into a row; verify the count when one is expected."""
    t0 = time.perf_counter()
    result = check(model, stop_at_first=False, **options)  # type: ignore[arg-type]
    wall = time.perf_counter() - t0
    st = result.stats
    if not result.complete:
        raise SystemExit(f"{name}: the search did not complete: {result.limits}")
    result.assert_properties()
    note = st.engine + (f", {st.workers} workers" if st.workers > 1 else "")
    if n_expected is not None and st.unique != n_expected:
        note += f"; COUNT MISMATCH (expected {n_expected:,})"
    return Row(name, wall, st.unique, st.bytes_per_state, note, comparable)


def ensure_spin() -> str | None:
    """The path of spin, installing the Debian package when missing; None (and why) if not."""
    spin = shutil.which("spin")
    if spin:
        return spin
    if os.geteuid() != 0:
        print("SPIN: `spin` is not installed and we are not root; skipping SPIN's column.")
        return None
    print("SPIN: installing the Debian package `spin` (apt-get) ...", flush=True)
    try:
        subprocess.run(["apt-get", "update"], check=True, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "spin"], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"SPIN: could not install spin ({exc}); skipping SPIN's column.")
        return None
    return shutil.which("spin")


def run_spin(spin: str, n: int, *, guard: bool) -> tuple[Row | None, str]:
    """Compile and run SPIN's exhaustive search; the row and pan's summary lines."""
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        return None, "no C compiler found; skipping SPIN"
    work = WORK / ("spin" if guard else "spin_noguard")
    work.mkdir(parents=True, exist_ok=True)
    shutil.copy(HERE / "revoke_toy.pml", work / "revoke_toy.pml")
    defines = [f"-DN={n}"] + ([] if guard else ["-DNOGUARD"])
    subprocess.run(
        [spin, *defines, "-a", "revoke_toy.pml"], cwd=work, check=True, capture_output=True
    )
    t0 = time.perf_counter()
    subprocess.run(
        [cc, "-O2", "-DSAFETY", "-DNOREDUCE", "-o", "pan", "pan.c"],
        cwd=work,
        check=True,
        capture_output=True,
    )
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = subprocess.run(
        ["./pan", "-w24", "-m100000"], cwd=work, check=False, capture_output=True, text=True
    ).stdout
    wall = time.perf_counter() - t0
    stored = int(_grab(r"(\d+) states, stored", out) or 0)
    elapsed = float(_grab(r"pan: elapsed time ([\d.e+]+) seconds", out) or wall)
    states_mb = float(_grab(r"([\d.]+)\s+actual memory usage for states", out) or 0)
    hash_mb = float(_grab(r"([\d.]+)\s+memory used for hash table", out) or 0)
    summary = "\n".join(
        line
        for line in out.splitlines()
        if re.search(r"states, stored|State-vector|assertion violated|elapsed|rate", line)
    )
    bps = (states_mb + hash_mb) * 2**20 / stored if stored else None
    note = f"pan -DSAFETY -DNOREDUCE -w24; compile {compile_s:.1f} s not counted"
    return Row("SPIN 6.5 (exhaustive DFS)", elapsed, stored, bps, note), summary


def _grab(pattern: str, text: str) -> str | None:
    m = re.search(pattern, text)
    return m.group(1) if m else None


def main() -> int:
    """Run every benchmark row and print the table; exit 1 if a count disagrees."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=9, help="importers (default 9)")
    parser.add_argument(
        "--generic-n", type=int, default=7, help="importers for the generic Python rows"
    )
    parser.add_argument("--no-spin", action="store_true", help="skip SPIN")
    args = parser.parse_args()
    n = args.n
    want = expected_states(n)
    print(f"Toy revoke model, N = {n} importers: expect {want:,} distinct states.", flush=True)
    load = os.getloadavg()[0]
    print(
        f"{os.cpu_count()} cores, load average {load:.2f} before the run "
        "(other processes on the cores slow every row, the parallel ones most).\n",
        flush=True,
    )
    rows = [
        ours("ours: BFS, no symmetry", RevokeToy(n), want),
        ours("ours: parallel BFS", RevokeToy(n), want, workers=0),
        ours("ours: BFS with symmetry", RevokeToy(n, symmetric=True), None, symmetry=True),
    ]
    gn = args.generic_n
    rows.append(
        ours(
            f"ours: generic BFS, Model subclass, N={gn}",
            RevokeToyPlain(gn),
            expected_states(gn),
            comparable=gn == n,
        )
    )
    rows.append(
        ours(
            f"ours: generic parallel BFS, N={gn}",
            RevokeToyPlain(gn),
            expected_states(gn),
            comparable=gn == n,
            workers=0,
        )
    )
    spin_row: Row | None = None
    spin_summary = ""
    spin = None if args.no_spin else ensure_spin()
    if spin:
        spin_row, spin_summary = run_spin(spin, n, guard=True)
        if spin_row is not None:
            rows.append(spin_row)
    print(f"{'run':44} {'sec':>7} {'states':>11} {'states/s':>11} {'B/state':>8} {'vs SPIN':>8}")
    for r in rows:
        ratio = (
            f"{spin_row.seconds / r.seconds:.1f}x"
            if spin_row and r.seconds and r.comparable
            else "-"
        )
        bps = f"{r.bytes_per_state:.1f}" if r.bytes_per_state is not None else "-"
        print(f"{r.name:44} {r.seconds:7.2f} {r.states:11,} {r.rate:11,.0f} {bps:>8} {ratio:>8}")
        if r.note:
            print(f"{'':46}({r.note})")
    ok = all("MISMATCH" not in r.note for r in rows)
    print()
    if spin_row is not None:
        agree = spin_row.states == want
        ok = ok and agree
        print(
            f"SPIN stored {spin_row.states:,} states, ours {rows[0].states:,}: "
            f"{'they agree' if agree and rows[0].states == want else 'THEY DISAGREE'}."
        )
        print(spin_summary)
        sym = rows[2]
        print(
            f"Targets: >= 100,000 states/s without symmetry: {rows[0].rate:,.0f} "
            f"({'met' if rows[0].rate >= 100_000 else 'NOT met'}); symmetry time to verdict "
            f"<= SPIN/10 = {spin_row.seconds / 10:.2f} s: {sym.seconds:.2f} s "
            f"({'met' if sym.seconds <= spin_row.seconds / 10 else 'NOT met'})."
        )
    print()
    print("Without the guard (finish ignores DMA in flight):")
    bug = check(RevokeToy(n, guard=False))
    d = bug.discoveries["no_dma_after_reuse"]
    print(f"ours, BFS: shortest counterexample, {len(d.path)} steps, {bug.stats.seconds:.2f} s")
    print(d.path.format(bug.model))
    if spin:
        _row, summary = run_spin(spin, n, guard=False)
        print("SPIN (depth-first, not shortest):")
        print(summary)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
