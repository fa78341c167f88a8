"""write_atomic: output files (traces, diagrams) are written whole or not at all.

A reader of out/ (replay, a browser, make demo's consumers) never sees half a file: the text
goes to a temporary file in the same directory and is renamed over the target.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dmabuf_model.report import write_atomic


def test_write_atomic_creates_and_replaces_a_file_whole(tmp_path: Path) -> None:
    """The file holds exactly the new text, and no temporary file is left behind."""
    target = tmp_path / "trace.json"
    assert write_atomic(target, "first\n") == target
    write_atomic(str(target), "second ⚠\n")
    assert target.read_text(encoding="utf-8") == "second ⚠\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trace.json"]


def test_a_writer_that_fails_midway_leaves_the_old_file_and_no_partial_one(tmp_path: Path) -> None:
    """Text the encoding cannot hold fails while writing: the old content stays, no temp file."""
    target = tmp_path / "out.svg"
    target.write_text("old\n", encoding="utf-8")
    with pytest.raises(UnicodeEncodeError):
        write_atomic(target, "new text\ud800 that cannot be encoded")
    assert target.read_text(encoding="utf-8") == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.svg"]


def test_a_failed_rename_leaves_no_file_at_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When os.replace fails, the target does not appear and the temporary file is removed."""

    def fail(src: str, dst: str) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk gone"):
        write_atomic(tmp_path / "out.mmd", "sequenceDiagram\n")
    assert list(tmp_path.iterdir()) == []


def test_written_files_get_the_mode_of_a_new_file(tmp_path: Path) -> None:
    """Not the 0600 of a temporary file: 0666 less the umask, as open() would give."""
    mask = os.umask(0o022)
    try:
        target = write_atomic(tmp_path / "t.txt", "x")
    finally:
        os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o644
