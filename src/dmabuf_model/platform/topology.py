"""topology: the static PCI fabric, memory ranges and P2P reachability (drivers/pci/p2pdma.c).

Host bridges, root ports, switches, functions and their BARs never change while a model runs, so
they live in one frozen ``Topology`` that is kept out of the per-state value (only what changes
is hashed by the checker). From the tree follow ``pci_p2pdma_distance`` and the P2P map type
(drivers.md §6).

DOC: how the map type is decided (calc_map_type_and_dist, in our words)

Both devices' chains of upstream bridges are walked from the provider side, looking for the
first bridge the client's chain shares. The distance is the number of hops up from each side
to that bridge: 0 for the same function, 2 for two functions of one device, 4 for devices below
two downstream ports of one switch. Every node passed on the way (the provider's nodes up to and
including the common one, the client's nodes below it) that has an ACS redirect bit (RR, CR or
EC) set counts as a redirect. No redirect: the TLPs turn around inside the fabric and the
device uses PCI bus addresses (MAP_BUS_ADDR). A redirect, or no common bridge at all (different
root ports or host bridges), sends the traffic through the host bridge (MAP_THRU_HOST_BRIDGE),
which is allowed only on AMD Zen CPUs or when the host bridges are on the allow-list; otherwise
the pair is MAP_NOT_SUPPORTED. Two Intel display functions of one physical function keep
MAP_BUS_ADDR despite a redirect.

``no_p2p=True`` is a platform on which every pair of distinct functions is NOT_SUPPORTED (as if
the CPU were not Zen, no host bridge were allow-listed and every port redirected); a function
reaching its own BAR keeps distance 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any


class PciP2pdmaMapType(Enum):
    """enum pci_p2pdma_map_type (include/linux/pci-p2pdma.h), without the internal UNKNOWN."""

    NOT_SUPPORTED = "not_supported"
    BUS_ADDR = "bus_addr"
    THRU_HOST_BRIDGE = "thru_host_bridge"

    def __str__(self) -> str:
        return f"PCI_P2PDMA_MAP_{self.name}"


class HostBridgeAllow(Enum):
    """Whether a host bridge is on pci_p2pdma_whitelist[] (drivers.md §6).

    LISTED_SAME_HOST_BRIDGE is an entry with REQ_SAME_HOST_BRIDGE: it allows traffic through
    the host bridge only between devices below that same host bridge.
    """

    NOT_LISTED = "not_listed"
    LISTED = "listed"
    LISTED_SAME_HOST_BRIDGE = "listed_same_host_bridge"


class PciPortType(Enum):
    """The PCIe port types a path goes through (PCI_EXP_TYPE_ROOT_PORT, ..._UPSTREAM, ...)."""

    ROOT_PORT = "root_port"
    SWITCH_UPSTREAM = "switch_upstream"
    SWITCH_DOWNSTREAM = "switch_downstream"


class RangeKind(Enum):
    """What backs a memory range: system RAM pages or a PCI BAR (MMIO, no struct page)."""

    SYSTEM_RAM = "system_ram"
    PCI_BAR = "pci_bar"


@dataclass(frozen=True, slots=True)
class HostBridge:
    """A PCI host bridge (struct pci_host_bridge) and its allow-list status."""

    name: str
    allow: HostBridgeAllow = HostBridgeAllow.NOT_LISTED


@dataclass(frozen=True, slots=True)
class PciBridge:
    """A PCIe port (a struct pci_dev that is a bridge).

    ``upstream`` is the bridge above it (pci_upstream_bridge), None for a root port, which sits
    on the root bus of ``host_bridge``. ``acs_redirect`` is true when its ACS control register
    has RR, CR or EC set (pci_bridge_has_acs_redir).
    """

    name: str
    type: PciPortType
    upstream: str | None = None
    host_bridge: str = ""
    acs_redirect: bool = False


@dataclass(frozen=True, slots=True)
class PciFunction:
    """A PCI function: its place in the tree and its BARs (pages per BAR, in BAR order).

    ``upstream`` is the port above it, None for a root-complex integrated endpoint on the root
    bus of ``host_bridge``. ``physfn`` names the PF of a VF (pci_physfn); ``intel_display``
    marks an Intel VGA/display function (pci_devfns_support_p2pdma). ``no_soft_reset`` is the
    PMCSR bit: when false, D3hot to D0 resets the function's internal state.
    """

    name: str
    upstream: str | None = None
    host_bridge: str = ""
    bars: tuple[int, ...] = (2,)
    acs_redirect: bool = False
    intel_display: bool = False
    physfn: str | None = None
    no_soft_reset: bool = False


@dataclass(frozen=True, slots=True)
class Device:
    """A struct device that is not PCI (a misc device such as iommufd's, an ib_device).

    ``parent`` is its parent device; find_parent_pci_dev walks parents to a PCI function.
    """

    name: str
    parent: str | None = None


@dataclass(frozen=True, slots=True)
class RamRegion:
    """A range of system RAM pages the model can allocate (a folio, a heap chunk)."""

    name: str
    pages: int = 2


@dataclass(frozen=True, slots=True)
class MemRangeInfo:
    """Static facts of one memory range: its name, what backs it, its size and owner.

    ``owner`` is the index of the PCI function of a BAR (-1 for RAM), ``bar`` the BAR number.
    """

    name: str
    kind: RangeKind
    pages: int
    owner: int = -1
    bar: int = -1


def _build_index(names: Sequence[str], what: str) -> dict[str, int]:
    index: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in index:
            raise ValueError(f"topology: {what} name {name!r} is used twice")
        index[name] = i
    return index


@dataclass(frozen=True, slots=True)
class Topology:
    """The static machine: fabric, functions, non-PCI devices, RAM, CPU and IOMMU facts.

    Not part of any state. Build it directly, with ``Topology.simple``, and change a fact with
    ``dataclasses.replace`` (``replace(topo, no_p2p=True)``): derived tables are rebuilt.
    Every name is unique across bridges, functions and devices.
    """

    host_bridges: tuple[HostBridge, ...] = (HostBridge("hb0"),)
    bridges: tuple[PciBridge, ...] = ()
    functions: tuple[PciFunction, ...] = ()
    devices: tuple[Device, ...] = ()
    ram: tuple[RamRegion, ...] = ()
    iommu: bool = True
    amd_zen: bool = False
    no_p2p: bool = False
    # Derived tables, rebuilt in __post_init__; not compared.
    _fn_index: dict[str, int] = field(default_factory=dict, init=False, repr=False, compare=False)
    _dev_index: dict[str, int] = field(default_factory=dict, init=False, repr=False, compare=False)
    _range_index: dict[str, int] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _ranges: tuple[MemRangeInfo, ...] = field(default=(), init=False, repr=False, compare=False)
    _bar_ranges: tuple[tuple[int, ...], ...] = field(
        default=(), init=False, repr=False, compare=False
    )
    _chains: tuple[tuple[str, ...], ...] = field(default=(), init=False, repr=False, compare=False)
    _hb_of: tuple[str, ...] = field(default=(), init=False, repr=False, compare=False)
    _acs: frozenset[str] = field(default=frozenset(), init=False, repr=False, compare=False)
    _map: tuple[tuple[tuple[PciP2pdmaMapType, int], ...], ...] = field(
        default=(), init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        hbs = _build_index([h.name for h in self.host_bridges], "host bridge")
        bridges = {b.name: b for b in self.bridges}
        _build_index(
            [b.name for b in self.bridges]
            + [f.name for f in self.functions]
            + [d.name for d in self.devices],
            "device",
        )
        fn_index = _build_index([f.name for f in self.functions], "function")
        dev_index = _build_index([d.name for d in self.devices], "device")

        def chain_of(name: str, upstream: str | None, own_hb: str) -> tuple[tuple[str, ...], str]:
            chain = [name]
            hb = own_hb
            node = upstream
            while node is not None:
                if node not in bridges:
                    raise ValueError(
                        f"topology: {chain[-1]!r} has upstream {node!r}, which is not a bridge; "
                        f"known bridges: {', '.join(sorted(bridges)) or '(none)'}"
                    )
                if node in chain:
                    raise ValueError(f"topology: bridge loop through {node!r}")
                chain.append(node)
                hb = bridges[node].host_bridge or hb
                node = bridges[node].upstream
            if not hb:
                hb = self.host_bridges[0].name if len(self.host_bridges) == 1 else ""
            if hb not in hbs:
                raise ValueError(
                    f"topology: {name!r} is below host bridge {hb!r}, which is not declared; "
                    f"set host_bridge on its root port"
                )
            return tuple(chain), hb

        chains: list[tuple[str, ...]] = []
        hb_of: list[str] = []
        for f in self.functions:
            chain, hb = chain_of(f.name, f.upstream, f.host_bridge)
            chains.append(chain)
            hb_of.append(hb)
            if f.physfn is not None and f.physfn not in fn_index:
                raise ValueError(f"topology: {f.name!r} has physfn {f.physfn!r}, not a function")
        for d in self.devices:
            if d.parent is not None and d.parent not in fn_index and d.parent not in dev_index:
                raise ValueError(f"topology: device {d.name!r} has unknown parent {d.parent!r}")

        ranges: list[MemRangeInfo] = [
            MemRangeInfo(r.name, RangeKind.SYSTEM_RAM, r.pages) for r in self.ram
        ]
        bar_ranges: list[tuple[int, ...]] = []
        for i, f in enumerate(self.functions):
            ids = []
            for bar, pages in enumerate(f.bars):
                ids.append(len(ranges))
                ranges.append(MemRangeInfo(f"{f.name}.bar{bar}", RangeKind.PCI_BAR, pages, i, bar))
            bar_ranges.append(tuple(ids))
        range_index = _build_index([r.name for r in ranges], "memory range")

        acs = frozenset(
            [b.name for b in self.bridges if b.acs_redirect]
            + [f.name for f in self.functions if f.acs_redirect]
        )
        setattr_ = object.__setattr__
        setattr_(self, "_fn_index", fn_index)
        setattr_(self, "_dev_index", dev_index)
        setattr_(self, "_range_index", range_index)
        setattr_(self, "_ranges", tuple(ranges))
        setattr_(self, "_bar_ranges", tuple(bar_ranges))
        setattr_(self, "_chains", tuple(chains))
        setattr_(self, "_hb_of", tuple(hb_of))
        setattr_(self, "_acs", acs)
        n = len(self.functions)
        setattr_(
            self,
            "_map",
            tuple(tuple(self._calc(p, c) for c in range(n)) for p in range(n)),
        )

    # -- builders -----------------------------------------------------------------------------

    @classmethod
    def simple(
        cls,
        devices: Sequence[str],
        *,
        switch: bool = True,
        siblings: bool = False,
        non_pci: Sequence[str | tuple[str, str]] = (),
        bars: Sequence[int] = (2,),
        ram: int = 2,
        ram_pages: int = 2,
        iommu: bool = True,
        amd_zen: bool = False,
        allow: HostBridgeAllow = HostBridgeAllow.NOT_LISTED,
        acs_redirect: bool = False,
        no_p2p: bool = False,
    ) -> Topology:
        """Topology.simple - a one-host-bridge machine with ``devices`` as PCI functions.

        ``switch=True`` (default): one root port, one switch, each device below its own
        downstream port (distance 4, BUS_ADDR unless ``acs_redirect``). ``siblings=True``: all
        devices are functions of one device below one root port (distance 2).
        ``switch=False``: each device below its own root port (through the host bridge, allowed
        only with ``amd_zen`` or ``allow``). ``non_pci`` adds non-PCI devices, each a name (no
        parent, e.g. iommufd's misc device) or (name, parent). ``acs_redirect`` sets ACS
        redirect on every port. ``ram`` RAM regions named ram0.. of ``ram_pages`` pages.
        """
        hb = HostBridge("hb0", allow)
        bridges: list[PciBridge] = []
        functions: list[PciFunction] = []
        fbars = tuple(bars)
        if siblings:
            bridges.append(PciBridge("rp0", PciPortType.ROOT_PORT, None, "hb0", acs_redirect))
            functions = [PciFunction(d, "rp0", bars=fbars) for d in devices]
        elif switch:
            bridges.append(PciBridge("rp0", PciPortType.ROOT_PORT, None, "hb0", acs_redirect))
            bridges.append(PciBridge("usp0", PciPortType.SWITCH_UPSTREAM, "rp0"))
            for i, d in enumerate(devices):
                port = f"dsp{i}"
                bridges.append(
                    PciBridge(port, PciPortType.SWITCH_DOWNSTREAM, "usp0", "", acs_redirect)
                )
                functions.append(PciFunction(d, port, bars=fbars))
        else:
            for i, d in enumerate(devices):
                port = f"rp{i}"
                bridges.append(PciBridge(port, PciPortType.ROOT_PORT, None, "hb0", acs_redirect))
                functions.append(PciFunction(d, port, bars=fbars))
        devs = tuple(Device(d) if isinstance(d, str) else Device(d[0], d[1]) for d in non_pci)
        return cls(
            host_bridges=(hb,),
            bridges=tuple(bridges),
            functions=tuple(functions),
            devices=devs,
            ram=tuple(RamRegion(f"ram{i}", ram_pages) for i in range(ram)),
            iommu=iommu,
            amd_zen=amd_zen,
            no_p2p=no_p2p,
        )

    def evolve(self, **changes: Any) -> Topology:
        """Topology.evolve - a copy with some facts changed (``topo.evolve(no_p2p=True)``)."""
        return replace(self, **changes)

    # -- lookups ------------------------------------------------------------------------------

    def fn(self, name: str) -> int:
        """Topology.fn - the index of PCI function ``name`` (ValueError if there is none)."""
        try:
            return self._fn_index[name]
        except KeyError:
            known = ", ".join(f.name for f in self.functions) or "(none)"
            raise ValueError(f"{name!r} is not a PCI function; functions: {known}") from None

    def is_pci(self, name: str) -> bool:
        """Topology.is_pci - true when ``name`` is a PCI function (dev_is_pci)."""
        return name in self._fn_index

    def find_parent_pci_dev(self, name: str) -> int | None:
        """find_parent_pci_dev - the PCI function ``name`` is or hangs below, or None.

        Walks the parents of a non-PCI device as p2pdma.c does; unknown names raise ValueError.
        """
        node: str | None = name
        while node is not None:
            if node in self._fn_index:
                return self._fn_index[node]
            if node not in self._dev_index:
                raise ValueError(f"{node!r} is not a device of this topology")
            node = self.devices[self._dev_index[node]].parent
        return None

    @property
    def ranges(self) -> tuple[MemRangeInfo, ...]:
        """All memory ranges: RAM regions first, then each function's BARs in order."""
        return self._ranges

    def range_id(self, name: str) -> int:
        """Topology.range_id - the id of the range called ``name`` ("ram0", "vfio0.bar0")."""
        try:
            return self._range_index[name]
        except KeyError:
            known = ", ".join(r.name for r in self._ranges) or "(none)"
            raise ValueError(f"{name!r} is not a memory range; ranges: {known}") from None

    def bar(self, fn: str, bar: int = 0) -> int:
        """Topology.bar - the range id of BAR ``bar`` of function ``fn``."""
        ids = self._bar_ranges[self.fn(fn)]
        if not 0 <= bar < len(ids):
            raise ValueError(f"{fn!r} has no BAR {bar}; it has {len(ids)}")
        return ids[bar]

    def bars_of(self, fn: int) -> tuple[int, ...]:
        """Topology.bars_of - the range ids of every BAR of function index ``fn``."""
        return self._bar_ranges[fn]

    @property
    def ram_ranges(self) -> tuple[int, ...]:
        """The range ids of the RAM regions, in order."""
        return tuple(range(len(self.ram)))

    def host_bridge_of(self, fn: int) -> str:
        """Topology.host_bridge_of - the host bridge above function index ``fn``."""
        return self._hb_of[fn]

    def upstream_chain(self, fn: int) -> tuple[str, ...]:
        """Topology.upstream_chain - ``fn`` then each pci_upstream_bridge up to the root bus."""
        return self._chains[fn]

    def dev_set(self, fn: str) -> tuple[str, ...]:
        """Topology.dev_set - the functions a bus/slot reset of ``fn``'s bus also resets.

        Every function below ``fn``'s upstream bridge (VFIO's dev_set for
        VFIO_DEVICE_PCI_HOT_RESET, drivers.md §1.4); an RCiEP has no bus to reset and is alone.
        """
        i = self.fn(fn)
        up = self.functions[i].upstream
        if up is None:
            return (fn,)
        return tuple(f.name for j, f in enumerate(self.functions) if up in self._chains[j][1:])

    # -- P2P map type and distance (drivers.md §6) ----------------------------------------------

    def _host_bridge_allowed(self, a: int, b: int) -> bool:
        """host_bridge_whitelist: both host bridges listed (same bridge for REQ_SAME_...)."""
        hbs = {h.name: h for h in self.host_bridges}
        ha, hb = hbs[self._hb_of[a]], hbs[self._hb_of[b]]
        if ha.name == hb.name:
            return ha.allow is not HostBridgeAllow.NOT_LISTED
        return ha.allow is HostBridgeAllow.LISTED and hb.allow is HostBridgeAllow.LISTED

    def _devfns_support_p2pdma(self, a: int, b: int) -> bool:
        fa, fb = self.functions[a], self.functions[b]
        if not (fa.intel_display and fb.intel_display):
            return False
        return (fa.physfn or fa.name) == (fb.physfn or fb.name)

    def _calc(self, provider: int, client: int) -> tuple[PciP2pdmaMapType, int]:
        """calc_map_type_and_dist for two function indices (see the module DOC)."""
        ca, cb = self._chains[provider], self._chains[client]
        acs = 0
        common = False
        dist = len(ca) + len(cb)
        for i, node in enumerate(ca):
            if node in self._acs:
                acs += 1
            if node in cb:
                j = cb.index(node)
                acs += sum(1 for x in cb[:j] if x in self._acs)
                dist = i + j
                common = True
                break
        if self.no_p2p and provider != client:
            return PciP2pdmaMapType.NOT_SUPPORTED, dist
        if common and (acs == 0 or self._devfns_support_p2pdma(provider, client)):
            return PciP2pdmaMapType.BUS_ADDR, dist
        if self.amd_zen or self._host_bridge_allowed(provider, client):
            return PciP2pdmaMapType.THRU_HOST_BRIDGE, dist
        return PciP2pdmaMapType.NOT_SUPPORTED, dist

    def calc_map_type_and_dist(self, provider: str, client: str) -> tuple[PciP2pdmaMapType, int]:
        """calc_map_type_and_dist - map type and hop distance between two PCI functions.

        Both must be PCI functions (ValueError otherwise). drivers.md §6.
        """
        return self._map[self.fn(provider)][self.fn(client)]


def pci_p2pdma_map_type(topo: Topology, provider: str, client: str) -> PciP2pdmaMapType:
    """pci_p2pdma_map_type - how ``client`` reaches a BAR of ``provider``.

    A client that is not itself a PCI function is NOT_SUPPORTED (dev_is_pci, no parent walk);
    this is what dma_buf_phys_vec_to_sgt consults, so an unsupported pair makes a VFIO
    map_dma_buf fail with -EINVAL. No lock. drivers.md §6.
    """
    if not topo.is_pci(client):
        return PciP2pdmaMapType.NOT_SUPPORTED
    return topo.calc_map_type_and_dist(provider, client)[0]


def pci_p2pdma_distance_many(topo: Topology, provider: str, clients: Sequence[str]) -> int:
    """pci_p2pdma_distance_many - summed distance from ``provider`` to every client, or -1.

    -1 when there is no client, when a client has no PCI function in its parent chain (e.g.
    iommufd's misc device), or when any pair is NOT_SUPPORTED. No lock. drivers.md §6.
    """
    if not clients:
        return -1
    total = 0
    for client in clients:
        fn = topo.find_parent_pci_dev(client)
        if fn is None:
            return -1
        map_type, dist = topo._map[topo.fn(provider)][fn]
        if map_type is PciP2pdmaMapType.NOT_SUPPORTED:
            return -1
        total += dist
    return total


def pci_p2pdma_distance(topo: Topology, provider: str, client: str) -> int:
    """pci_p2pdma_distance - hop distance from ``provider`` to ``client``, -1 if no P2P.

    What amdgpu and xe call in their attach op to clear peer2peer (drivers.md §4, §6).
    """
    return pci_p2pdma_distance_many(topo, provider, (client,))


__all__ = [
    "Device",
    "HostBridge",
    "HostBridgeAllow",
    "MemRangeInfo",
    "PciBridge",
    "PciFunction",
    "PciP2pdmaMapType",
    "PciPortType",
    "RamRegion",
    "RangeKind",
    "Topology",
    "pci_p2pdma_distance",
    "pci_p2pdma_distance_many",
    "pci_p2pdma_map_type",
]
