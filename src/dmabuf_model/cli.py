"""The dmabuf-model command line: a thin layer over the library (click).

Exit codes: 0 every property holds, 1 a violation was found, 2 bad input or usage.
"""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dmabuf-model")
def main() -> None:
    """An executable, checkable model of Linux DMA-buf sharing."""


@main.command()
def demo() -> None:
    """Walk one revoke on the core, step by step (the main job for now)."""
    from dmabuf_model.demo import run_demo

    run_demo()
