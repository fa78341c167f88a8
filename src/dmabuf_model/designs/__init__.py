"""designs: the seed thread's design debate as policies the core and the drivers consult.

One model, several kernels: each Design (designs/base.py) is a small record of switches that
kernel/dma_buf.py (through the CorePolicy stored on each buffer), drivers/vfio_pci.py and
drivers/rdma_umem.py read where the merged 2026 code, Leon's revoke-v1 proposal and the 6.19
kernel differ (core-semantics §3, §5.3, §5.18, §7; drivers.md §1.2, §1.8, §3.1).

Choosing one: a system's options carry a design name, ``DmaBufSystem(topo, options={"design":
"revoke-v1"})``; drivers read it from DriverEnv.options with ``design_of``. Without one, the
design is merged-2026, today's behaviour. ``pin-only-6.19`` takes an optional
``design_variant`` ("accept-at-attach", the default, or "refuse-at-pin"); the refuse-at-pin
variant is also registered on its own as ``pin-only-6.19-rc``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dmabuf_model.designs.base import Design, VfioPinOp
from dmabuf_model.designs.merged_2026 import MERGED_2026
from dmabuf_model.designs.pin_only_6_19 import PIN_ONLY_6_19, PIN_ONLY_6_19_RC, VARIANTS
from dmabuf_model.designs.revoke_v1 import REVOKE_V1

DEFAULT_DESIGN = MERGED_2026.name
"""The design of a system whose options name none: "merged-2026"."""

DESIGNS: dict[str, Design] = {
    d.name: d for d in (MERGED_2026, REVOKE_V1, PIN_ONLY_6_19, PIN_ONLY_6_19_RC)
}
"""Every registered design by name, in table-column order."""

DESIGN_NAMES: tuple[str, ...] = tuple(DESIGNS)
"""The names ``--design`` and a scenario's ``design`` accept."""


class DesignError(ValueError):
    """An unknown design or design variant was asked for; the message lists the known ones."""


def design_of(options: Mapping[str, Any] | None) -> Design:
    """design_of - the Design named by a system's options (merged-2026 when none is named).

    Reads ``options["design"]`` (a name of DESIGNS, or a Design itself) and, for
    pin-only-6.19, ``options["design_variant"]`` ("accept-at-attach" or "refuse-at-pin").
    DesignError names the known designs or variants otherwise.
    """
    opts = options or {}
    chosen = opts.get("design", DEFAULT_DESIGN)
    if isinstance(chosen, Design):
        design = chosen
    else:
        if chosen not in DESIGNS:
            known = ", ".join(DESIGN_NAMES)
            raise DesignError(f"design {chosen!r} is not a known design; known designs: {known}")
        design = DESIGNS[chosen]
    variant = opts.get("design_variant")
    if variant is None or variant == design.variant:
        return design
    if design.name not in (PIN_ONLY_6_19.name, PIN_ONLY_6_19_RC.name):
        raise DesignError(
            f"design {design.name!r} has no variants; design_variant={variant!r} applies to "
            f"{PIN_ONLY_6_19.name} only"
        )
    if variant not in VARIANTS:
        known = ", ".join(VARIANTS)
        raise DesignError(
            f"design_variant {variant!r} is not a variant of {PIN_ONLY_6_19.name}; "
            f"known variants: {known}"
        )
    return VARIANTS[variant]


__all__ = [
    "DEFAULT_DESIGN",
    "DESIGNS",
    "DESIGN_NAMES",
    "MERGED_2026",
    "PIN_ONLY_6_19",
    "PIN_ONLY_6_19_RC",
    "REVOKE_V1",
    "Design",
    "DesignError",
    "VfioPinOp",
    "design_of",
]
