"""pci_p2pdma_distance and the P2P map type over small topologies (drivers.md §6)."""

from __future__ import annotations

import pytest

from dmabuf_model.platform import (
    Device,
    HostBridge,
    HostBridgeAllow,
    PciBridge,
    PciFunction,
    PciPortType,
    Topology,
    pci_p2pdma_distance,
    pci_p2pdma_distance_many,
    pci_p2pdma_map_type,
)
from dmabuf_model.platform import PciP2pdmaMapType as MapType

ROOT = PciPortType.ROOT_PORT
LISTED = HostBridgeAllow.LISTED
SAME_HB_ONLY = HostBridgeAllow.LISTED_SAME_HOST_BRIDGE


def two_host_bridges(allow_a: HostBridgeAllow, allow_b: HostBridgeAllow) -> Topology:
    """gpu below hb0's root port, nic below hb1's root port."""
    return Topology(
        host_bridges=(HostBridge("hb0", allow_a), HostBridge("hb1", allow_b)),
        bridges=(PciBridge("rp0", ROOT, None, "hb0"), PciBridge("rp1", ROOT, None, "hb1")),
        functions=(PciFunction("gpu", "rp0"), PciFunction("nic", "rp1")),
    )


def test_same_function_has_distance_zero_and_bus_addr() -> None:
    """drivers.md §6: distance 0 for the same function, MAP_BUS_ADDR."""
    topo = Topology.simple(["vfio0", "mlx5_0"])
    assert topo.calc_map_type_and_dist("vfio0", "vfio0") == (MapType.BUS_ADDR, 0)
    assert pci_p2pdma_distance(topo, "vfio0", "vfio0") == 0


def test_sibling_functions_have_distance_two() -> None:
    """drivers.md §6: two functions of one device are 2 hops apart, BUS_ADDR."""
    topo = Topology.simple(["fn0", "fn1"], siblings=True)
    assert topo.calc_map_type_and_dist("fn0", "fn1") == (MapType.BUS_ADDR, 2)
    assert pci_p2pdma_distance(topo, "fn0", "fn1") == 2


def test_two_ports_of_one_switch_have_distance_four_and_bus_addr() -> None:
    """drivers.md §6: devices below two downstream ports of one switch: 4, BUS_ADDR."""
    topo = Topology.simple(["vfio0", "mlx5_0"], switch=True)
    assert pci_p2pdma_map_type(topo, "vfio0", "mlx5_0") is MapType.BUS_ADDR
    assert pci_p2pdma_distance(topo, "vfio0", "mlx5_0") == 4


def test_acs_redirect_on_the_path_sends_traffic_through_the_host_bridge() -> None:
    """drivers.md §6: an ACS redirect on the path means THRU_HOST_BRIDGE, if allowed."""
    allowed = Topology.simple(["vfio0", "mlx5_0"], acs_redirect=True, allow=LISTED)
    assert allowed.calc_map_type_and_dist("vfio0", "mlx5_0") == (MapType.THRU_HOST_BRIDGE, 4)
    refused = Topology.simple(["vfio0", "mlx5_0"], acs_redirect=True)
    assert pci_p2pdma_map_type(refused, "vfio0", "mlx5_0") is MapType.NOT_SUPPORTED
    assert pci_p2pdma_distance(refused, "vfio0", "mlx5_0") == -1


def test_acs_redirect_on_one_downstream_port_is_enough() -> None:
    """drivers.md §6: a redirect on either side's path below the common bridge counts."""
    topo = Topology(
        host_bridges=(HostBridge("hb0"),),
        bridges=(
            PciBridge("rp0", ROOT, None, "hb0"),
            PciBridge("usp0", PciPortType.SWITCH_UPSTREAM, "rp0"),
            PciBridge("dsp0", PciPortType.SWITCH_DOWNSTREAM, "usp0"),
            PciBridge("dsp1", PciPortType.SWITCH_DOWNSTREAM, "usp0", acs_redirect=True),
        ),
        functions=(PciFunction("gpu", "dsp0"), PciFunction("nic", "dsp1")),
        amd_zen=True,
    )
    assert topo.calc_map_type_and_dist("gpu", "nic") == (MapType.THRU_HOST_BRIDGE, 4)
    assert topo.calc_map_type_and_dist("nic", "gpu") == (MapType.THRU_HOST_BRIDGE, 4)


def test_redirect_above_the_common_bridge_does_not_count() -> None:
    """drivers.md §6: only nodes up to the common bridge are looked at."""
    topo = Topology(
        bridges=(
            PciBridge("rp0", ROOT, None, "hb0", acs_redirect=True),
            PciBridge("usp0", PciPortType.SWITCH_UPSTREAM, "rp0"),
            PciBridge("dsp0", PciPortType.SWITCH_DOWNSTREAM, "usp0"),
            PciBridge("dsp1", PciPortType.SWITCH_DOWNSTREAM, "usp0"),
        ),
        functions=(PciFunction("gpu", "dsp0"), PciFunction("nic", "dsp1")),
    )
    assert topo.calc_map_type_and_dist("gpu", "nic") == (MapType.BUS_ADDR, 4)


def test_different_root_ports_without_allow_list_are_not_supported() -> None:
    """drivers.md §6: no common bridge, not Zen, not allow-listed: NOT_SUPPORTED, -1."""
    topo = Topology.simple(["vfio0", "mlx5_0"], switch=False)
    assert topo.calc_map_type_and_dist("vfio0", "mlx5_0") == (MapType.NOT_SUPPORTED, 4)
    assert pci_p2pdma_distance(topo, "vfio0", "mlx5_0") == -1


def test_different_root_ports_with_allow_listed_host_bridge_go_through_it() -> None:
    """drivers.md §6: an allow-listed host bridge permits THRU_HOST_BRIDGE."""
    topo = Topology.simple(["vfio0", "mlx5_0"], switch=False, allow=LISTED)
    assert pci_p2pdma_map_type(topo, "vfio0", "mlx5_0") is MapType.THRU_HOST_BRIDGE
    assert pci_p2pdma_distance(topo, "vfio0", "mlx5_0") == 4


def test_different_root_ports_on_amd_zen_go_through_the_host_bridge() -> None:
    """drivers.md §6: AMD Zen (family >= 0x17) permits THRU_HOST_BRIDGE without a list."""
    topo = Topology.simple(["vfio0", "mlx5_0"], switch=False, amd_zen=True)
    assert pci_p2pdma_map_type(topo, "vfio0", "mlx5_0") is MapType.THRU_HOST_BRIDGE


def test_same_host_bridge_entry_refuses_devices_on_two_host_bridges() -> None:
    """drivers.md §6: REQ_SAME_HOST_BRIDGE entries only allow one host bridge."""
    same_only = two_host_bridges(SAME_HB_ONLY, SAME_HB_ONLY)
    assert pci_p2pdma_map_type(same_only, "gpu", "nic") is MapType.NOT_SUPPORTED
    both_listed = two_host_bridges(LISTED, LISTED)
    assert both_listed.calc_map_type_and_dist("gpu", "nic") == (MapType.THRU_HOST_BRIDGE, 4)
    one_listed = two_host_bridges(LISTED, HostBridgeAllow.NOT_LISTED)
    assert pci_p2pdma_map_type(one_listed, "gpu", "nic") is MapType.NOT_SUPPORTED


def test_same_host_bridge_entry_allows_two_root_ports_of_that_bridge() -> None:
    """drivers.md §6: a REQ_SAME_HOST_BRIDGE entry is enough below one host bridge."""
    topo = Topology.simple(["vfio0", "mlx5_0"], switch=False, allow=SAME_HB_ONLY)
    assert pci_p2pdma_map_type(topo, "vfio0", "mlx5_0") is MapType.THRU_HOST_BRIDGE


def test_intel_display_functions_of_one_pf_keep_bus_addr_despite_acs() -> None:
    """drivers.md §6: Intel GPU functions of the same physical device get BUS_ADDR."""
    topo = Topology(
        bridges=(PciBridge("rp0", ROOT, None, "hb0", acs_redirect=True),),
        functions=(
            PciFunction("xe_pf", "rp0", intel_display=True),
            PciFunction("xe_vf1", "rp0", intel_display=True, physfn="xe_pf"),
            PciFunction("nic", "rp0"),
        ),
    )
    assert topo.calc_map_type_and_dist("xe_pf", "xe_vf1") == (MapType.BUS_ADDR, 2)
    assert pci_p2pdma_map_type(topo, "xe_pf", "nic") is MapType.NOT_SUPPORTED


def test_non_pci_client_has_no_distance() -> None:
    """drivers.md §6, §4.1: iommufd's misc device is not PCI: distance -1, NOT_SUPPORTED."""
    topo = Topology.simple(["vfio0"], non_pci=["iommufd"])
    assert pci_p2pdma_distance(topo, "vfio0", "iommufd") == -1
    assert pci_p2pdma_map_type(topo, "vfio0", "iommufd") is MapType.NOT_SUPPORTED


def test_non_pci_child_of_a_pci_function_uses_its_parent_for_distance() -> None:
    """drivers.md §6: the parent chain is searched for a PCI device (find_parent_pci_dev)."""
    topo = Topology.simple(["vfio0", "mlx5_0"], non_pci=[("mlx5_ib0", "mlx5_0")])
    assert pci_p2pdma_distance(topo, "vfio0", "mlx5_ib0") == 4
    # pci_p2pdma_map_type looks at the device itself, which is not PCI.
    assert pci_p2pdma_map_type(topo, "vfio0", "mlx5_ib0") is MapType.NOT_SUPPORTED


def test_distance_many_sums_and_any_unsupported_client_gives_minus_one() -> None:
    """drivers.md §6: summed distance; -1 for no client, a non-PCI one or an unsupported pair."""
    topo = Topology.simple(["vfio0", "a", "b"], non_pci=["iommufd"])
    assert pci_p2pdma_distance_many(topo, "vfio0", ["a", "b", "vfio0"]) == 8
    assert pci_p2pdma_distance_many(topo, "vfio0", []) == -1
    assert pci_p2pdma_distance_many(topo, "vfio0", ["a", "iommufd"]) == -1


def test_no_p2p_option_makes_every_distinct_pair_unsupported() -> None:
    """The matrix's --no-p2p: all P2P NOT_SUPPORTED; a function still reaches its own BAR."""
    topo = Topology.simple(["vfio0", "mlx5_0"], amd_zen=True).evolve(no_p2p=True)
    assert pci_p2pdma_map_type(topo, "vfio0", "mlx5_0") is MapType.NOT_SUPPORTED
    assert pci_p2pdma_distance(topo, "vfio0", "mlx5_0") == -1
    assert pci_p2pdma_distance(topo, "vfio0", "vfio0") == 0


def test_dev_set_is_every_function_below_the_same_bridge() -> None:
    """drivers.md §1.4: a hot reset covers the dev_set sharing the reset bus."""
    siblings = Topology.simple(["fn0", "fn1"], siblings=True)
    assert siblings.dev_set("fn0") == ("fn0", "fn1")
    switch = Topology.simple(["vfio0", "mlx5_0"])
    assert switch.dev_set("vfio0") == ("vfio0",)


def test_ranges_are_ram_then_bars_and_unknown_names_explain_themselves() -> None:
    """Range ids are stable: RAM regions first, then each function's BARs."""
    topo = Topology.simple(["vfio0"], bars=(2, 4), ram=1)
    assert [r.name for r in topo.ranges] == ["ram0", "vfio0.bar0", "vfio0.bar1"]
    assert topo.bar("vfio0", 1) == 2 and topo.ranges[2].pages == 4
    with pytest.raises(ValueError, match=r"^'gpu0' is not a PCI function; functions: vfio0$"):
        topo.fn("gpu0")
    with pytest.raises(ValueError, match=r"upstream 'nope', which is not a bridge"):
        Topology(functions=(PciFunction("x", "nope"),))
    with pytest.raises(ValueError, match=r"unknown parent"):
        Topology(devices=(Device("ib0", "missing"),))
