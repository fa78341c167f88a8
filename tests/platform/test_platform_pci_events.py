"""Which platform events end which range generations (drivers.md §1.4; platform.pci, memory)."""

from __future__ import annotations

from dmabuf_model.kernel import errno
from dmabuf_model.platform import (
    GenCause,
    PciPowerState,
    PlatformState,
    Topology,
    TransferStatus,
    dma_map_phys,
    dma_submit,
    pci_hot_add,
    pci_memory_decoding,
    pci_reassign_resource,
    pci_remove_bus_device,
    pci_reset_bus,
    pci_reset_function,
    pci_set_power_state,
    pci_surprise_removal,
    pci_write_command_memory,
    pcie_flr,
    platform_init,
    ram_alloc,
    ram_free,
)
from dmabuf_model.platform import PciFunction as Fn
from dmabuf_model.platform.topology import PciBridge, PciPortType

TOPO = Topology.simple(["vfio0", "mlx5_0"], bars=(2, 2), ram=2)
D0, D3HOT, D3COLD = PciPowerState.D0, PciPowerState.D3hot, PciPowerState.D3cold


def history(ps: PlatformState, topo: Topology, name: str) -> tuple[GenCause, ...]:
    return ps.ranges[topo.range_id(name)].history


def test_flr_ends_every_bar_generation_of_that_function_only() -> None:
    """drivers.md §1.4: FLR resets one function; its BARs' generations end (RESET)."""
    ps, ret = pci_reset_function(platform_init(TOPO), TOPO, "vfio0")
    assert ret == 0
    assert history(ps, TOPO, "vfio0.bar0") == (GenCause.RESET,)
    assert history(ps, TOPO, "vfio0.bar1") == (GenCause.RESET,)
    assert history(ps, TOPO, "mlx5_0.bar0") == ()


def test_raw_flr_clears_memory_decode_and_reset_function_restores_it() -> None:
    """pcie_flr is the hardware reset; pci_reset_function saves and restores config space."""
    raw, _ = pcie_flr(platform_init(TOPO), TOPO, "vfio0")
    assert not pci_memory_decoding(raw, TOPO.fn("vfio0"))
    restored, _ = pci_reset_function(platform_init(TOPO), TOPO, "vfio0")
    assert pci_memory_decoding(restored, TOPO.fn("vfio0"))


def test_memory_disable_stops_decode_without_ending_a_generation() -> None:
    """drivers.md §1.4: clearing PCI_COMMAND_MEMORY is not a reset: no generation changes."""
    ps = pci_write_command_memory(platform_init(TOPO), TOPO, "vfio0", False)
    assert not pci_memory_decoding(ps, TOPO.fn("vfio0"))
    assert history(ps, TOPO, "vfio0.bar0") == ()
    ps = pci_write_command_memory(ps, TOPO, "vfio0", True)
    assert pci_memory_decoding(ps, TOPO.fn("vfio0"))


def test_d3hot_stops_decode_and_back_to_d0_resets_without_no_soft_reset() -> None:
    """drivers.md §1.4: D3hot disables decode; D3hot->D0 resets unless No_Soft_Reset."""
    ps, ret = pci_set_power_state(platform_init(TOPO), TOPO, "vfio0", D3HOT)
    assert ret == 0 and not pci_memory_decoding(ps, TOPO.fn("vfio0"))
    assert history(ps, TOPO, "vfio0.bar0") == ()
    ps, ret = pci_set_power_state(ps, TOPO, "vfio0", D0)
    assert ret == 0 and pci_memory_decoding(ps, TOPO.fn("vfio0"))
    assert history(ps, TOPO, "vfio0.bar0") == (GenCause.RESET,)


def test_d3hot_to_d0_with_no_soft_reset_keeps_the_generation() -> None:
    """PMCSR No_Soft_Reset: the function keeps its state across D3hot."""
    topo = Topology(
        bridges=(PciBridge("rp0", PciPortType.ROOT_PORT, None, "hb0"),),
        functions=(Fn("vfio0", "rp0", no_soft_reset=True),),
    )
    ps, _ = pci_set_power_state(platform_init(topo), topo, "vfio0", D3HOT)
    ps, _ = pci_set_power_state(ps, topo, "vfio0", D0)
    assert history(ps, topo, "vfio0.bar0") == ()


def test_d3cold_always_resets_and_low_power_cannot_go_shallower() -> None:
    """D3cold loses power; only deeper states or D0 follow a low-power state (-EINVAL)."""
    ps, _ = pci_set_power_state(platform_init(TOPO), TOPO, "vfio0", D3COLD)
    ps2, ret = pci_set_power_state(ps, TOPO, "vfio0", D3HOT)
    assert ret == -errno.EINVAL and ps2 is ps
    ps, ret = pci_set_power_state(ps, TOPO, "vfio0", D0)
    assert ret == 0 and history(ps, TOPO, "vfio0.bar0") == (GenCause.RESET,)


def test_hot_reset_of_a_dev_set_resets_every_function_in_it() -> None:
    """drivers.md §1.4: VFIO_DEVICE_PCI_HOT_RESET resets every device of the dev_set."""
    topo = Topology.simple(["fn0", "fn1"], siblings=True)
    ps = pci_write_command_memory(platform_init(topo), topo, "fn1", False)
    ps, ret = pci_reset_bus(ps, topo, "fn0")
    assert ret == 0
    assert history(ps, topo, "fn0.bar0") == (GenCause.RESET,)
    assert history(ps, topo, "fn1.bar0") == (GenCause.RESET,)
    assert not pci_memory_decoding(ps, topo.fn("fn1"))  # config restored as it was
    alone, _ = pci_reset_bus(platform_init(TOPO), TOPO, "vfio0")
    assert history(alone, TOPO, "mlx5_0.bar0") == ()


def test_orderly_unplug_ends_generations_as_unplugged_and_refuses_later_events() -> None:
    """drivers.md §1.4: removal after remove(); the BAR windows are released."""
    ps = pci_remove_bus_device(platform_init(TOPO), TOPO, "vfio0")
    assert history(ps, TOPO, "vfio0.bar0") == (GenCause.UNPLUGGED,)
    assert not pci_memory_decoding(ps, TOPO.fn("vfio0"))
    assert pci_reset_function(ps, TOPO, "vfio0") == (ps, -errno.ENODEV)
    assert pci_remove_bus_device(ps, TOPO, "vfio0") is ps


def test_surprise_unplug_then_hot_add_reassigns_the_window() -> None:
    """A surprise removal, then a newcomer in the slot: the old address reaches someone else."""
    ps = pci_surprise_removal(platform_init(TOPO), TOPO, "vfio0")
    assert history(ps, TOPO, "vfio0.bar0") == (GenCause.SURPRISE_UNPLUGGED,)
    ps = pci_hot_add(ps, TOPO, "vfio0")
    assert history(ps, TOPO, "vfio0.bar0") == (
        GenCause.SURPRISE_UNPLUGGED,
        GenCause.REASSIGNED,
    )
    assert pci_memory_decoding(ps, TOPO.fn("vfio0"))


def test_resource_reassignment_ends_one_bar_generation() -> None:
    """A BAR moved to a new window: REASSIGNED for that BAR only."""
    ps = pci_reassign_resource(platform_init(TOPO), TOPO, "vfio0", 1)
    assert history(ps, TOPO, "vfio0.bar1") == (GenCause.REASSIGNED,)
    assert history(ps, TOPO, "vfio0.bar0") == ()


def test_ram_free_ends_the_generation_and_alloc_hands_the_region_out_again() -> None:
    """Freed RAM goes back to the allocator, lowest region first, with a new generation."""
    ps = platform_init(TOPO)
    ps, r0 = ram_alloc(ps, TOPO)
    ps, r1 = ram_alloc(ps, TOPO)
    assert (r0, r1) == (0, 1)
    assert ram_alloc(ps, TOPO) == (ps, -errno.ENOMEM)
    ps = ram_free(ps, TOPO, r0)
    assert ps.ranges[r0].history == (GenCause.FREED,) and not ps.ranges[r0].allocated
    ps, again = ram_alloc(ps, TOPO)
    assert again == r0 and ps.ranges[r0].gen == 1 and ps.ranges[r0].allocated


def test_reset_d3_and_removal_abort_the_functions_pending_dma() -> None:
    """A reset, D3 or removed function stops mastering: its pending transfers are ABORTED."""

    def reset(ps: PlatformState) -> PlatformState:
        return pci_reset_function(ps, TOPO, "mlx5_0")[0]

    def d3hot(ps: PlatformState) -> PlatformState:
        return pci_set_power_state(ps, TOPO, "mlx5_0", D3HOT)[0]

    def vanish(ps: PlatformState) -> PlatformState:
        return pci_surprise_removal(ps, TOPO, "mlx5_0")

    for event in (reset, d3hot, vanish):
        ps, m = dma_map_phys(platform_init(TOPO), TOPO, "mlx5_0", TOPO.bar("vfio0"))
        ps, x = dma_submit(ps, TOPO, "mlx5_0", m, write=True, fence=7)
        ps = event(ps)
        assert ps.transfers[x].status is TransferStatus.ABORTED
        assert ps.transfers[x].fence == 7
        assert ps.findings == ()


def test_a_removed_or_d3_function_cannot_start_dma_or_be_mapped_for() -> None:
    """A function in D3hot or removed does not master: dma_submit returns -ENODEV."""
    ps, m = dma_map_phys(platform_init(TOPO), TOPO, "mlx5_0", TOPO.bar("vfio0"))
    d3, _ = pci_set_power_state(ps, TOPO, "mlx5_0", D3HOT)
    assert dma_submit(d3, TOPO, "mlx5_0", m) == (d3, -errno.ENODEV)
    gone = pci_remove_bus_device(ps, TOPO, "mlx5_0")
    assert dma_submit(gone, TOPO, "mlx5_0", m) == (gone, -errno.ENODEV)
    assert dma_map_phys(gone, TOPO, "mlx5_0", TOPO.bar("vfio0")) == (gone, -errno.ENODEV)
