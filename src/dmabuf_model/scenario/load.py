"""load: reading scenario files, and the scenarios bundled with the package.
TOML text to a validated Scenario (schema.py), with every mistake at its file line.

The bundled scenarios live in dmabuf_model/scenarios/*.toml (package data); a command-line
SCENARIO is a path or the name of one of them. Models no kernel file.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from dmabuf_model.errors import ScenarioError
from dmabuf_model.scenario.locate import Locator
from dmabuf_model.scenario.schema import Scenario

MAX_FILE_BYTES = 1 << 20
"""A scenario file larger than this is refused (a sane bound; bundled ones are ~3 KiB)."""

_TOML_POS = re.compile(r"^(?P<msg>.*?)\s*\(at line (?P<line>\d+), column (?P<col>\d+)\)$")
_TOML_END = re.compile(r"^(?P<msg>.*?)\s*\(at end of document\)$")


def loads(text: str, *, source: str = "<string>") -> Scenario:
    """loads - parse and validate scenario TOML ``text``; ``source`` names it in errors.

    ScenarioError ``source:line: field: what is wrong (what was expected)``: TOML syntax errors
    keep tomllib's line and column, every other mistake points at the key's line.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _syntax_error(str(exc), text, source) from None
    return Scenario.from_dict(data, source=source, text=text, locator=Locator(text))


def load(path: str | Path) -> Scenario:
    """load - read and validate the scenario file at ``path``.

    ScenarioError for a file that cannot be read, is not UTF-8, is too large, is not TOML or is
    not a valid scenario; the message starts with the path (and line).
    """
    name = str(path)
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        what = exc.strerror or type(exc).__name__
        raise ScenarioError(
            f"(file): cannot read it: {what} (expected a readable scenario file)", file=name
        ) from None
    return loads(_decode(raw, name), source=name)


def _decode(raw: bytes, name: str) -> str:
    if len(raw) > MAX_FILE_BYTES:
        raise ScenarioError(
            f"(file): {len(raw)} bytes is too large (expected at most {MAX_FILE_BYTES} bytes)",
            file=name,
            line=1,
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ScenarioError(
            f"(file): byte {exc.start} is not UTF-8 (expected a UTF-8 text file)",
            file=name,
            line=line,
        ) from None


def _syntax_error(message: str, text: str, source: str) -> ScenarioError:
    m = _TOML_POS.match(message)
    if m:
        line = int(m.group("line"))
        what = m.group("msg")
        col = m.group("col")
        return ScenarioError(
            f"(toml): {what} at column {col} (expected valid TOML)", file=source, line=line
        )
    m = _TOML_END.match(message)
    line = text.count("\n") + 1
    what = m.group("msg") if m else message
    return ScenarioError(
        f"(toml): {what} at the end of the file (expected valid TOML)", file=source, line=line
    )


# --- bundled scenarios ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Bundled:
    """A scenario shipped with the package: its name, its file and the first comment lines."""

    name: str
    resource: Traversable
    comment: str

    @property
    def path(self) -> str:
        """A printable location (``.../dmabuf_model/scenarios/NAME.toml``)."""
        return str(self.resource)

    def text(self) -> str:
        """The TOML text."""
        return self.resource.read_text("utf-8")

    def load(self) -> Scenario:
        """The validated Scenario."""
        return loads(self.text(), source=self.path)


def _scenarios_dir() -> Traversable:
    return resources.files("dmabuf_model").joinpath("scenarios")


def _comment(text: str) -> str:
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    return " ".join(x for x in lines if x)


def bundled() -> list[Bundled]:
    """bundled - the bundled scenarios, sorted by name."""
    out = []
    for entry in _scenarios_dir().iterdir():
        if entry.name.endswith(".toml"):
            out.append(Bundled(entry.name[:-5], entry, _comment(entry.read_text("utf-8"))))
    return sorted(out, key=lambda b: b.name)


def bundled_names() -> list[str]:
    """bundled_names - the names ``dmabuf-model scenarios`` lists."""
    return [b.name for b in bundled()]


def resolve(arg: str) -> Scenario:
    """resolve - the scenario a command line names: a path to a file, else a bundled name.

    ScenarioError when ``arg`` is neither, listing the bundled names.
    """
    p = Path(arg)
    if p.exists():
        return load(p)
    name = arg[:-5] if arg.endswith(".toml") else arg
    for b in bundled():
        if b.name == name:
            return b.load()
    known = ", ".join(bundled_names())
    raise ScenarioError(
        f"(file): not a file and not a bundled scenario (expected a path or one of: {known})",
        file=arg,
    )


__all__ = ["MAX_FILE_BYTES", "Bundled", "bundled", "bundled_names", "load", "loads", "resolve"]
