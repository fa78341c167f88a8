"""pci: PCI functions as hardware: memory decode, D-states, FLR, bus reset, hot-unplug.

The events VFIO revokes around (drivers.md §1.4) and what each does to the memory behind a
function's BARs (drivers/pci/pci.c, drivers/pci/remove.c, drivers/pci/hotplug/).

DOC: what each event does to BAR generations

* Clearing PCI_COMMAND_MEMORY, or a power state of D3hot and below, stops the function from
  decoding its BARs. The memory is still there; an access is answered with an Unsupported
  Request (the oracle's ``ur_access``). No generation changes.
* FLR, a secondary bus reset of a dev_set, D3cold to D0, and D3hot to D0 without No_Soft_Reset
  reset the function: whatever was behind the BARs is gone, every BAR's generation ends (RESET).
  The power-state rules come from the PCI PM specification, not from drivers.md [inference].
* Orderly removal (after the drivers' remove) ends the BAR generations with UNPLUGGED, a
  surprise removal with SURPRISE_UNPLUGGED; a later hot-add hands the window to a new device
  (REASSIGNED), as does pci_reassign_resource.
* A function that is reset, removed or put into D3 also stops mastering: its DMA engine's
  pending transfers are ABORTED (their fences are the driver layer's business), and it cannot
  start new ones while removed or in D3 [inference: the model's simplification of bus
  mastering; the Bus Master Enable bit itself is not modelled].

The kernel saves and restores config space around pci_reset_function and pci_reset_bus, and
VFIO restores it after a power transition, so those keep the command register's memory bit;
pcie_flr alone is the raw hardware reset and leaves it cleared.
"""

from __future__ import annotations

from enum import IntEnum
from typing import TYPE_CHECKING

from dmabuf_model.kernel import errno
from dmabuf_model.kernel.state import record, replace, tuple_set
from dmabuf_model.platform.memory import GenCause, range_bump
from dmabuf_model.platform.topology import Topology

if TYPE_CHECKING:
    from dmabuf_model.platform.state import PlatformState


class PciPowerState(IntEnum):
    """pci_power_t: PCI_D0 .. PCI_D3cold, ordered as in the kernel."""

    D0 = 0
    D1 = 1
    D2 = 2
    D3hot = 3
    D3cold = 4

    def __str__(self) -> str:
        return f"PCI_{self.name}"


@record
class PciFunctionState:
    """The changing hardware state of one PCI function.

    ``mem_enable`` is PCI_COMMAND_MEMORY in the command register; ``present`` is false once the
    function is removed or vanished; ``domain`` is the IOMMU domain translating its DMA (-1: no
    translation, as without an IOMMU or with an identity domain).
    """

    mem_enable: bool = True
    power_state: PciPowerState = PciPowerState.D0
    present: bool = True
    domain: int = -1


def pci_memory_decoding(ps: PlatformState, fn: int) -> bool:
    """pci_memory_decoding - does function index ``fn`` answer accesses to its BARs?

    True when present, PCI_COMMAND_MEMORY is set and the power state is below D3hot, the test
    __vfio_pci_memory_enabled makes (drivers.md §1.4). D1/D2 count as decoding, as there
    [inference].
    """
    f = ps.functions[fn]
    return f.present and f.mem_enable and f.power_state < PciPowerState.D3hot


def _set_fn(ps: PlatformState, fn: int, f: PciFunctionState) -> PlatformState:
    return ps.evolve(functions=tuple_set(ps.functions, fn, f))


def _bump_bars(ps: PlatformState, topo: Topology, fn: int, cause: GenCause) -> PlatformState:
    for r in topo.bars_of(fn):
        ps = range_bump(ps, r, cause)
    return ps


def _stop_mastering(ps: PlatformState, topo: Topology, fn: int) -> PlatformState:
    from dmabuf_model.platform.dma import dma_engine_abort  # dma imports pci's records

    return dma_engine_abort(ps, topo, topo.functions[fn].name)


def pci_write_command_memory(
    ps: PlatformState, topo: Topology, fn: str, enable: bool
) -> PlatformState:
    """pci_write_command_memory - set or clear PCI_COMMAND_MEMORY of function ``fn``.

    A config write (VFIO's vfio_basic_config_write, drivers.md §1.4). No generation changes;
    while clear, BAR accesses get Unsupported Requests. A removed function ignores it.
    """
    i = topo.fn(fn)
    f = ps.functions[i]
    if not f.present or f.mem_enable == enable:
        return ps
    return _set_fn(ps, i, replace(f, mem_enable=enable))


def pci_set_power_state(
    ps: PlatformState, topo: Topology, fn: str, state: PciPowerState
) -> tuple[PlatformState, int]:
    """pci_set_power_state - move function ``fn`` to power state ``state``.

    D0 is reachable from anything; otherwise only deeper states (else -EINVAL, as the
    kernel's low-power path refuses D3hot to D1). Entering D3hot or D3cold stops the
    function's DMA. Leaving D3cold, or D3hot without No_Soft_Reset, for D0 resets the function
    (RESET on every BAR). The command register is kept (config space is restored).
    Returns 0, -ENODEV for a removed function, -EINVAL for a forbidden transition.
    drivers.md §1.4.
    """
    i = topo.fn(fn)
    f = ps.functions[i]
    if not f.present:
        return ps, -errno.ENODEV
    cur = f.power_state
    if state == cur:
        return ps, 0
    if state != PciPowerState.D0 and cur != PciPowerState.D0 and state < cur:
        return ps, -errno.EINVAL
    if state >= PciPowerState.D3hot and cur < PciPowerState.D3hot:
        ps = _stop_mastering(ps, topo, i)
    if state == PciPowerState.D0 and (
        cur == PciPowerState.D3cold
        or (cur == PciPowerState.D3hot and not topo.functions[i].no_soft_reset)
    ):
        ps = _bump_bars(ps, topo, i, GenCause.RESET)
    return _set_fn(ps, i, replace(ps.functions[i], power_state=state)), 0


def pcie_flr(ps: PlatformState, topo: Topology, fn: str) -> tuple[PlatformState, int]:
    """pcie_flr - Function Level Reset of ``fn``, as the hardware sees it.

    Every BAR's generation ends (RESET), the command register is cleared (memory decode off),
    the function is in D0 and its pending DMA is aborted. Nothing restores config space: use
    pci_reset_function for the kernel's save/reset/restore. Returns 0 or -ENODEV if removed.
    drivers.md §1.4.
    """
    i = topo.fn(fn)
    if not ps.functions[i].present:
        return ps, -errno.ENODEV
    ps = _stop_mastering(ps, topo, i)
    ps = _bump_bars(ps, topo, i, GenCause.RESET)
    f = replace(ps.functions[i], mem_enable=False, power_state=PciPowerState.D0)
    return _set_fn(ps, i, f), 0


def pci_reset_function(ps: PlatformState, topo: Topology, fn: str) -> tuple[PlatformState, int]:
    """pci_reset_function - save config space, FLR ``fn``, restore config space.

    What VFIO_DEVICE_RESET and an emulated FLR end up doing (drivers.md §1.4): generations
    end (RESET) and DMA is aborted, but the memory bit comes back as it was; the function is
    left in D0. Returns 0 or -ENODEV if removed.
    """
    i = topo.fn(fn)
    saved = ps.functions[i].mem_enable
    ps, ret = pcie_flr(ps, topo, fn)
    if ret:
        return ps, ret
    return _set_fn(ps, i, replace(ps.functions[i], mem_enable=saved)), 0


def pci_reset_bus(ps: PlatformState, topo: Topology, fn: str) -> tuple[PlatformState, int]:
    """pci_reset_bus - secondary bus reset of the dev_set of ``fn``, config space restored.

    VFIO_DEVICE_PCI_HOT_RESET (drivers.md §1.4): every present function of
    ``topo.dev_set(fn)`` is reset (RESET on all its BARs, DMA aborted, D0), each keeping its
    memory bit. Returns 0, or -ENODEV if ``fn`` itself is removed.
    """
    if not ps.functions[topo.fn(fn)].present:
        return ps, -errno.ENODEV
    for name in topo.dev_set(fn):
        j = topo.fn(name)
        if not ps.functions[j].present:
            continue
        ps = _stop_mastering(ps, topo, j)
        ps = _bump_bars(ps, topo, j, GenCause.RESET)
        ps = _set_fn(ps, j, replace(ps.functions[j], power_state=PciPowerState.D0))
    return ps, 0


def pci_remove_bus_device(ps: PlatformState, topo: Topology, fn: str) -> PlatformState:
    """pci_remove_bus_device - orderly removal of ``fn``, after its drivers' remove() ran.

    The second half of pci_stop_and_remove_bus_device (hot-unplug by attention button or
    sysfs, driver unbind then removal): the function stops mastering, its BAR windows are
    released and their generations end (UNPLUGGED). The drivers' remove runs first; that is
    where VFIO must have revoked (drivers.md §1.4, §6 provider lifetime). A removed function
    is left alone.
    """
    i = topo.fn(fn)
    if not ps.functions[i].present:
        return ps
    ps = _stop_mastering(ps, topo, i)
    ps = _bump_bars(ps, topo, i, GenCause.UNPLUGGED)
    return _set_fn(ps, i, replace(ps.functions[i], present=False, mem_enable=False))


def pci_surprise_removal(ps: PlatformState, topo: Topology, fn: str) -> PlatformState:
    """pci_surprise_removal - ``fn`` vanishes (link down) before any driver hears of it.

    Generations end with SURPRISE_UNPLUGGED; pending DMA of the function is aborted. The
    drivers learn of it later (pciehp then runs the same remove path). An access to the gone
    BAR window is answered with an Unsupported Request and is not counted as a violation
    until the window is reused (see the oracle). drivers.md §1.4.
    """
    i = topo.fn(fn)
    if not ps.functions[i].present:
        return ps
    ps = _stop_mastering(ps, topo, i)
    ps = _bump_bars(ps, topo, i, GenCause.SURPRISE_UNPLUGGED)
    return _set_fn(ps, i, replace(ps.functions[i], present=False, mem_enable=False))


def pci_hot_add(ps: PlatformState, topo: Topology, fn: str) -> PlatformState:
    """pci_hot_add - a (new) device appears in ``fn``'s slot and gets the same BAR windows.

    The bus address windows of the removed function are handed to the newcomer: every BAR
    generation ends with REASSIGNED, so a stale address now reaches someone else's memory.
    The new function starts in D0 with memory decode on and no IOMMU domain change. A
    present function is left alone.
    Spec: drivers.md §1.4, §6.
    """
    i = topo.fn(fn)
    if ps.functions[i].present:
        return ps
    ps = _bump_bars(ps, topo, i, GenCause.REASSIGNED)
    f = replace(ps.functions[i], present=True, mem_enable=True, power_state=PciPowerState.D0)
    return _set_fn(ps, i, f)


def pci_reassign_resource(
    ps: PlatformState, topo: Topology, fn: str, bar: int = 0
) -> PlatformState:
    """pci_reassign_resource - move BAR ``bar`` of ``fn`` to a new bus address window.

    Anything still holding the old address reaches memory that is no longer this BAR's:
    the generation ends with REASSIGNED.
    Spec: drivers.md §1.4, §6.
    """
    return range_bump(ps, topo.bar(fn, bar), GenCause.REASSIGNED)


__all__ = [
    "PciFunctionState",
    "PciPowerState",
    "pci_hot_add",
    "pci_memory_decoding",
    "pci_reassign_resource",
    "pci_remove_bus_device",
    "pci_reset_bus",
    "pci_reset_function",
    "pci_set_power_state",
    "pci_surprise_removal",
    "pci_write_command_memory",
    "pcie_flr",
]
