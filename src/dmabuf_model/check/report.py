"""Reports: the text report shaped like stateright's, the JSON form, and the progress display.

A long run prints ``Checking. states=… unique=… depth=…`` while it works and ``Done. states=…
unique=… depth=… sec=…`` at the end, then every discovery with its path, one line per step
(style-guide B7). The progress display goes to stderr, at most four updates a second.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Hashable
from typing import IO, TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from dmabuf_model.check.result import CheckResult, Discovery

S = TypeVar("S", bound=Hashable)
A = TypeVar("A", bound=Hashable)

_TTY_INTERVAL = 0.25
_PLAIN_INTERVAL = 5.0


def format_report(result: CheckResult[S, A], *, verbose: bool = False) -> str:
    """format_report - the text report: the Done line, the engine line, each discovery's path.

    With ``verbose`` every step of every path is followed by the state it leads to.
    """
    st = result.stats
    head = "Interrupted." if result.interrupted else "Done."
    lines = [
        f"{head} states={st.states} unique={st.unique} depth={st.max_depth} sec={st.seconds:.2f}"
    ]
    if st.runs:
        lines.append(f"Simulation: {st.runs} runs.")
    engine = st.engine + (f", {st.workers} workers" if st.workers > 1 else "")
    if st.symmetry:
        engine += ", symmetry reduction (one representative per orbit)"
    lines.append(
        f"Engine: {engine}; {st.transitions:,} transitions; {st.states_per_second:,.0f} states/s; "
        f"{st.bytes_per_state:.1f} bytes/state ({st.store_bytes:,} bytes in the visited store)."
    )
    if st.fingerprint_bits is None:
        lines.append("States are stored exactly: no fingerprint collision can hide a state.")
    else:
        lines.append(
            f"States are stored as {st.fingerprint_bits}-bit fingerprints: the chance that a "
            f"collision hid a state is about {st.collision_probability:.1e} (TLC's optimistic "
            "estimate)."
        )
    if result.limits:
        lines.append("Incomplete: " + "; ".join(result.limits) + ".")
    lines.extend(result.notes)
    for d in result.discoveries.values():
        lines.append(_discovery_head(d))
        lines.append(d.path.format(result.model, verbose=verbose))
        lines.append(f"Replay token: {d.path.token}")
    for name in result.never_reached:
        scope = (
            "no reachable state satisfies it"
            if result.complete
            else "not within the states explored"
        )
        lines.append(f'Never reached: sometimes "{name}" has no example ({scope}).')
    for name in result.unchecked:
        lines.append(
            f'Not checked: eventually "{name}" (the run stopped before the liveness search).'
        )
    return "\n".join(lines)


def _discovery_head(d: Discovery[Any, Any]) -> str:
    what = d.kind if d.expectation is None else f"{d.expectation.value} {d.kind}"
    extra = []
    if d.cite:
        extra.append(d.cite)
    if d.description:
        extra.append(d.description)
    tail = f" ({'; '.join(extra)})" if extra else ""
    return f'Discovered "{d.property}" {what}{tail} Path[{len(d.path)}]:'


def result_to_json(result: CheckResult[S, A]) -> dict[str, Any]:
    """result_to_json - the whole result as a JSON-serialisable dict (docs/checker.md)."""
    return {
        "model": type(result.model).__name__,
        "complete": result.complete,
        "interrupted": result.interrupted,
        "limits": list(result.limits),
        "stats": result.stats.to_json(),
        "discoveries": [d.to_json(result.model) for d in result.discoveries.values()],
        "never_reached": list(result.never_reached),
        "unchecked": list(result.unchecked),
        "notes": list(result.notes),
    }


class ProgressDisplay:
    """Live progress on stderr: a rich status line on a terminal, plain lines otherwise.

    ``enabled=None`` shows progress only when stderr is a terminal. Updates are throttled to
    four a second on a terminal and one every five seconds in plain mode, so the display never
    slows the search down.
    """

    def __init__(self, enabled: bool | None, stream: IO[str] | None = None) -> None:
        self._stream = stream if stream is not None else sys.stderr
        tty = bool(getattr(self._stream, "isatty", lambda: False)())
        self.enabled = tty if enabled is None else enabled
        self._tty = tty
        self._last = 0.0
        self._live: Any = None
        if self.enabled and tty:
            from rich.console import Console
            from rich.live import Live

            console = Console(file=self._stream, highlight=False)
            self._live = Live("", console=console, auto_refresh=False, transient=True)
            self._live.start()

    def update(self, states: int, unique: int, depth: int, elapsed: float) -> None:
        """Show the counters if enough time passed since the last update."""
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < (_TTY_INTERVAL if self._tty else _PLAIN_INTERVAL):
            return
        self._last = now
        rate = unique / elapsed if elapsed > 0 else 0.0
        line = (
            f"Checking. states={states} unique={unique} depth={depth} "
            f"states/s={rate:,.0f} sec={elapsed:.1f}"
        )
        if self._live is not None:
            self._live.update(line, refresh=True)
        else:
            print(line, file=self._stream, flush=True)

    def close(self) -> None:
        """Remove the live line (a terminal) and stop updating."""
        if self._live is not None:
            self._live.stop()
            self._live = None
        self.enabled = False


__all__ = ["ProgressDisplay", "format_report", "result_to_json"]
