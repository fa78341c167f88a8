"""locate: the line of every key and table in a TOML scenario, for `FILE:LINE: FIELD:` errors.

tomllib returns values without positions, so this small scanner reads the same (already valid)
TOML text again and records where each key, table header and array element starts. It models no
kernel file; it exists so that a scenario mistake points at the line to fix (docs/scenarios.md).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

Key = str | int
FieldPath = tuple[Key, ...]

_BARE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


def field_name(path: Sequence[Key]) -> str:
    """field_name - ``importers[1].options.dma_device`` from the keys and indices of a value."""
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


class Locator:
    """Line numbers (1-based) of the keys, tables and array elements of one TOML text.

    Built by scanning the text once; ``line(path)`` answers with the line of the longest known
    prefix of ``path``, so a missing key points at its table and an unknown value at its key.
    The text must already be valid TOML (tomllib parsed it): the scanner trusts its syntax and
    simply stops recording if it meets something it does not expect.
    """

    def __init__(self, text: str = "") -> None:
        self.lines: dict[FieldPath, int] = {}
        self._text = text
        self._i = 0
        self._line = 1
        self._arrays: dict[FieldPath, int] = {}
        if text:
            # Keep what was recorded: positions are a convenience, never an error.
            with contextlib.suppress(IndexError, ValueError):
                self._scan()

    def line(self, path: Sequence[Key]) -> int | None:
        """line - the line of ``path`` or of its longest recorded prefix; None without a text."""
        if not self._text:
            return None
        p = tuple(path)
        while p:
            if p in self.lines:
                return self.lines[p]
            p = p[:-1]
        return 1

    # -- scanner ---------------------------------------------------------------------------------

    def _peek(self, k: int = 0) -> str:
        j = self._i + k
        return self._text[j] if j < len(self._text) else ""

    def _advance(self, n: int = 1) -> None:
        for _ in range(n):
            if self._peek() == "\n":
                self._line += 1
            self._i += 1

    def _record(self, path: FieldPath, line: int) -> None:
        self.lines.setdefault(path, line)

    def _skip_space(self, newlines: bool) -> None:
        while True:
            c = self._peek()
            if c in (" ", "\t", "\r") or (newlines and c == "\n"):
                self._advance()
            elif c == "#":
                while self._peek() not in ("", "\n"):
                    self._advance()
            else:
                return

    def _scan(self) -> None:
        table: FieldPath = ()
        while True:
            self._skip_space(newlines=True)
            c = self._peek()
            if not c:
                return
            if c == "[":
                table = self._header()
            else:
                line = self._line
                keys = self._key()
                self._skip_space(newlines=False)
                if self._peek() != "=":
                    raise ValueError("expected '='")
                self._advance()
                self._skip_space(newlines=False)
                path = table + keys
                for n in range(1, len(keys) + 1):
                    self._record(table + keys[:n], line)
                self._value(path)
            self._skip_space(newlines=False)
            while self._peek() not in ("", "\n"):
                self._advance()

    def _header(self) -> FieldPath:
        line = self._line
        array = self._peek(1) == "["
        self._advance(2 if array else 1)
        self._skip_space(newlines=False)
        keys = self._key()
        self._skip_space(newlines=False)
        self._advance(2 if array else 1)
        resolved: list[Key] = []
        for n, k in enumerate(keys):
            resolved.append(k)
            last = n == len(keys) - 1
            here = tuple(resolved)
            if last and array:
                index = self._arrays.get(here, -1) + 1
                self._arrays[here] = index
                self._record(here, line)
                resolved.append(index)
            elif here in self._arrays:
                resolved.append(self._arrays[here])
        path = tuple(resolved)
        self._record(path, line)
        return path

    def _key(self) -> FieldPath:
        keys: list[Key] = []
        while True:
            self._skip_space(newlines=False)
            c = self._peek()
            if c in ('"', "'"):
                keys.append(self._string())
            else:
                start = self._i
                while self._peek() in _BARE and self._peek():
                    self._advance()
                if self._i == start:
                    raise ValueError("expected a key")
                keys.append(self._text[start : self._i])
            self._skip_space(newlines=False)
            if self._peek() != ".":
                return tuple(keys)
            self._advance()

    def _string(self) -> str:
        quote = self._peek()
        if self._peek(1) == quote and self._peek(2) == quote:
            self._advance(3)
            start = self._i
            while not (self._peek() == quote and self._peek(1) == quote and self._peek(2) == quote):
                if not self._peek():
                    raise ValueError("unterminated string")
                if quote == '"' and self._peek() == "\\":
                    self._advance()
                self._advance()
            end = self._i
            self._advance(3)
            while self._peek() == quote:  # up to two quotes may close the content
                self._advance()
            return self._text[start:end]
        self._advance()
        start = self._i
        while self._peek() != quote:
            if self._peek() in ("", "\n"):
                raise ValueError("unterminated string")
            if quote == '"' and self._peek() == "\\":
                self._advance()
            self._advance()
        end = self._i
        self._advance()
        return self._text[start:end]

    def _value(self, path: FieldPath) -> None:
        c = self._peek()
        if c in ('"', "'"):
            self._string()
        elif c == "{":
            self._advance()
            while True:
                self._skip_space(newlines=True)
                if self._peek() == "}":
                    self._advance()
                    return
                line = self._line
                keys = self._key()
                self._skip_space(newlines=False)
                if self._peek() != "=":
                    raise ValueError("expected '='")
                self._advance()
                self._skip_space(newlines=False)
                for n in range(1, len(keys) + 1):
                    self._record(path + keys[:n], line)
                self._value(path + keys)
                self._skip_space(newlines=True)
                if self._peek() == ",":
                    self._advance()
        elif c == "[":
            self._advance()
            index = 0
            while True:
                self._skip_space(newlines=True)
                if self._peek() == "]":
                    self._advance()
                    return
                self._record((*path, index), self._line)
                self._value((*path, index))
                self._skip_space(newlines=True)
                if self._peek() == ",":
                    self._advance()
                    index += 1
        else:
            start = self._i
            while self._peek() not in ("", ",", "]", "}", "\n", "#"):
                self._advance()
            if self._i == start:
                raise ValueError("expected a value")


__all__ = ["FieldPath", "Key", "Locator", "field_name"]
