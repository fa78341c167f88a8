"""The examples in docs/checker.md run and say what the text says they say."""

from __future__ import annotations

import pathlib
import re
from typing import Any

DOC = pathlib.Path(__file__).resolve().parents[2] / "docs" / "checker.md"


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)


def test_the_first_example_finds_the_lost_update_it_prints() -> None:
    """The lost-update example's report shows the four steps and token given in the docs."""
    namespace: dict[str, Any] = {"print": lambda *a, **k: None}
    exec(_blocks()[0], namespace)
    result = namespace["result"]
    assert result.discoveries["no_lost_update"].path.token == "0/0/1/0/0"
    assert "Replay token: 0/0/1/0/0" in DOC.read_text()


def test_the_guarded_command_example_checks_on_both_engines() -> None:
    """The Mutex example: mutual exclusion holds, the engines agree, symmetry reduces."""
    from dmabuf_model.check import check

    namespace: dict[str, Any] = {}
    exec(next(b for b in _blocks() if "class Mutex" in b), namespace)
    mutex = namespace["Mutex"]
    vector = check(mutex(3))
    generic = check(mutex(3), vectorised=False)
    reduced = check(mutex(3), symmetry=True)
    assert vector.stats.engine == "vectorised bfs (numpy)"
    assert vector.stats.unique == generic.stats.unique == 20
    assert reduced.stats.unique == 10
    for result in (vector, generic, reduced):
        result.assert_properties()
