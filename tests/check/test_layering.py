"""The checker knows nothing about DMA-buf: dmabuf_model.check imports no domain package.

design.md "Dependencies point down the picture", style-guide B1.2 and B11: someone checking their
own protocol can use check/ alone. Enforced on the source (every import statement) and at run
time (importing the package loads no domain module).
"""

from __future__ import annotations

import ast
import inspect
import pathlib
import subprocess
import sys

import dmabuf_model.check

FORBIDDEN = ("kernel", "drivers", "platform", "system", "designs", "scenario", "report", "cli")
CHECK_DIR = pathlib.Path(dmabuf_model.check.__file__).parent


def _imports(path: pathlib.Path) -> list[str]:
    tree = ast.parse(path.read_text())
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
    return names


def test_no_checker_module_imports_a_domain_package() -> None:
    """Every import in src/dmabuf_model/check/*.py stays inside check, errors or the stdlib."""
    bad = [
        f"{path.name}: {name}"
        for path in sorted(CHECK_DIR.glob("*.py"))
        for name in _imports(path)
        if name.startswith("dmabuf_model.") and name.split(".")[1] in FORBIDDEN
    ]
    assert bad == []


def test_importing_the_checker_loads_no_domain_module() -> None:
    """A fresh interpreter that imports dmabuf_model.check has no domain module loaded."""
    code = (
        "import sys, dmabuf_model.check\n"
        "parts = [m.split('.') for m in sys.modules if m.startswith('dmabuf_model.')]\n"
        f"print(sorted('.'.join(p) for p in parts if p[1] in {FORBIDDEN!r}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_public_api_is_exported_once_with_all() -> None:
    """Every name in dmabuf_model.check.__all__ exists and is documented."""
    for name in dmabuf_model.check.__all__:
        obj = getattr(dmabuf_model.check, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert obj.__doc__, name
