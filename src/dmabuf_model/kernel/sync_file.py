"""sync_file: a file that holds exactly one reference to a fence (drivers/dma-buf/sync_file.c).

Core-semantics §9.15 and §10 #47.
"""

from __future__ import annotations

from dataclasses import dataclass

from dmabuf_model.kernel.state import FenceId


@dataclass(frozen=True, slots=True)
class SyncFile:
    """Model of struct sync_file: its fence and whether its file is still open."""

    fence: FenceId
    released: bool = False
