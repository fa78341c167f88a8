"""files: writing report files whole or not at all, so a crash never leaves half a trace behind.

``make demo`` and ``dmabuf-model check --trace-out`` write traces and diagrams that other tools
read back (replay, a browser); a reader must see either the old file or the new one. The text
goes to a temporary file in the same directory, is flushed to disk, then renamed over the target
(rename within one file system is atomic on POSIX). Models no kernel file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def _umask() -> int:
    """The process umask: read from /proc on Linux (no side effect), else set and restored."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: str | os.PathLike[str], text: str, *, encoding: str = "utf-8") -> Path:
    """write_atomic - write ``text`` to ``path`` so that it appears whole or not at all.

    Writes a temporary file in the target's directory, flushes and fsyncs it, gives it the mode
    a new file would get (0666 less the umask), then os.replace()s it over ``path``. On any
    error the temporary file is removed, ``path`` is left as it was, and the error is raised
    again (OSError, UnicodeEncodeError for text the encoding cannot hold). Returns the path.
    """
    target = Path(path)
    directory = target.parent
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding=encoding, newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return target


__all__ = ["write_atomic"]
