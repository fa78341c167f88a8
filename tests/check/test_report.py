"""The text report's shape (stateright's), the statistics it prints, and the progress display.

Style-guide B7 and A1.6: "Done. states=… unique=… depth=… sec=…", then each discovery with its
path, one numbered line per step, pinned here so a change is deliberate.
"""

from __future__ import annotations

import io
import re

from check_toys import Abba, LostUpdate, TwoPhase

from dmabuf_model.check import check
from dmabuf_model.check.report import ProgressDisplay


def test_report_starts_with_the_done_line_and_lists_each_step() -> None:
    """The first line, the engine line, the discovery head and the numbered steps."""
    result = check(LostUpdate())
    lines = result.report().splitlines()
    assert re.fullmatch(r"Done\. states=\d+ unique=\d+ depth=5 sec=\d+\.\d\d", lines[0])
    assert re.fullmatch(
        r"Engine: bfs; [\d,]+ transitions; [\d,]+ states/s; [\d.]+ bytes/state "
        r"\([\d,]+ bytes in the visited store\)\.",
        lines[1],
    )
    assert lines[2].startswith("States are stored as 64-bit fingerprints: the chance that a")
    head = lines.index(
        'Discovered "no_lost_update" always counterexample (toy: lost update) Path[4]:'
    )
    assert lines[head + 1 : head + 6] == [
        "  1. t0: read or write",
        "  2. t1: read or write",
        "  3. t0: read or write",
        "  4. t1: read or write",
        "Replay token: 0/0/1/0/0",
    ]


def test_verbose_report_shows_the_state_after_each_step() -> None:
    """verbose=True adds the initial state and one '->' line per step."""
    text = check(Abba()).report(verbose=True)
    assert "  0. initial state: Locks(pc=(0, 0), holder=(-1, -1))" in text
    assert "     -> Locks(pc=(1, 0), holder=(0, -1))" in text


def test_statistics_report_rate_memory_and_the_collision_estimate() -> None:
    """states/s and bytes/state are positive; the collision estimate is TLC's formula."""
    st = check(TwoPhase(3), stop_at_first=False).stats
    assert st.states_per_second > 0
    assert 20 < st.bytes_per_state < 400
    assert st.collision_probability == 288 * 1146 / 2.0**64
    assert st.to_json()["unique"] == 288


def test_progress_display_prints_checking_lines_when_asked() -> None:
    """Plain mode (not a terminal): a 'Checking.' line, then nothing until the interval."""
    out = io.StringIO()
    display = ProgressDisplay(True, stream=out)
    display.update(10, 5, 2, 0.5)
    display.update(20, 9, 3, 0.6)
    display.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("Checking. states=10 unique=5 depth=2 states/s=10 sec=0.5")


def test_progress_display_stays_silent_by_default_off_a_terminal() -> None:
    """enabled=None shows progress only on a terminal; a StringIO is not one."""
    out = io.StringIO()
    display = ProgressDisplay(None, stream=out)
    display.update(10, 5, 2, 0.5)
    assert out.getvalue() == ""
