"""PlatformState is one small, hashable value, and the platform stays below the kernel.

design.md "The state is a value" and the package picture (dependencies point down);
style-guide B4 (tuples of frozen records, no list/dict/set inside a state).
"""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import dmabuf_model.platform as platform_pkg
from dmabuf_model.platform import (
    PlatformState,
    Topology,
    dma_map_phys,
    dma_submit,
    format_platform,
    pci_reset_function,
    platform_init,
    ram_alloc,
)

TOPO = Topology.simple(["vfio0", "mlx5_0"], non_pci=["iommufd"])


def busy_state() -> PlatformState:
    ps = platform_init(TOPO)
    ps, r = ram_alloc(ps, TOPO)
    ps, _ = dma_map_phys(ps, TOPO, "mlx5_0", r)
    ps, m = dma_map_phys(ps, TOPO, "mlx5_0", TOPO.bar("vfio0"))
    ps, _ = pci_reset_function(ps, TOPO, "vfio0")
    ps, _ = dma_submit(ps, TOPO, "mlx5_0", m, write=True, fence=1)
    return ps


def walk(value: object) -> list[object]:
    """Every object reachable through dataclass fields and tuples."""
    out: list[object] = [value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            out.extend(walk(getattr(value, f.name)))
    elif isinstance(value, tuple):
        for item in value:
            out.extend(walk(item))
    return out


def test_equal_histories_give_equal_hashable_states() -> None:
    """Two runs of the same steps give equal states with equal (cached) hashes."""
    a, b = busy_state(), busy_state()
    assert a == b and hash(a) == hash(b)
    assert a != platform_init(TOPO)
    assert len({a, b, platform_init(TOPO)}) == 2


def test_state_holds_only_tuples_of_frozen_slotted_records() -> None:
    """style-guide B4: no list, dict or set inside a state; every record frozen and slotted."""
    for obj in walk(busy_state()):
        assert not isinstance(obj, list | dict | set), obj
        if dataclasses.is_dataclass(obj):
            params = getattr(type(obj), "__dataclass_params__")  # noqa: B009
            assert params.frozen, type(obj)
            assert hasattr(type(obj), "__slots__"), type(obj)


def test_a_step_shares_what_it_does_not_touch() -> None:
    """design.md: a step returns a new state sharing every untouched component."""
    ps = busy_state()
    after, _ = dma_submit(ps, TOPO, "mlx5_0", 1)
    assert after.ranges is ps.ranges and after.domains is ps.domains
    assert after.transfers is not ps.transfers


def test_topology_evolve_rebuilds_the_derived_tables() -> None:
    """Changing a static fact (no_p2p) rebuilds the map-type table."""
    assert TOPO.evolve(no_p2p=True).calc_map_type_and_dist("vfio0", "mlx5_0")[1] == 4
    assert TOPO.evolve(no_p2p=True) != TOPO
    assert hash(TOPO) == hash(Topology.simple(["vfio0", "mlx5_0"], non_pci=["iommufd"]))


def test_format_platform_lists_what_changed_since_boot() -> None:
    """Trace rendering: changed ranges, mappings, transfers."""
    assert format_platform(platform_init(TOPO), TOPO) == []
    lines = format_platform(busy_state(), TOPO)
    assert lines == [
        "ram0: allocated",
        "vfio0.bar0: gen 1 (reset)",
        "mapping 0: mlx5_0 -> ram0 pages 0..1 gen 0 iova 0 in domain 1 live",
        "mapping 1: mlx5_0 -> vfio0.bar0 pages 0..1 gen 0 bus_addr live",
        "transfer 0: mlx5_0 write via mapping 1 page 0 pending",
    ]


def test_platform_imports_nothing_from_the_kernel_but_errno_and_state() -> None:
    """design.md: the platform is the hardware; only kernel.errno and kernel.state are allowed."""
    allowed = {"dmabuf_model.kernel.errno", "dmabuf_model.kernel.state"}
    package_dir = Path(platform_pkg.__file__).parent
    for path in sorted(package_dir.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [f"{node.module}.{a.name}" for a in node.names]
                names = [n if node.module == "dmabuf_model.kernel" else node.module for n in names]
            else:
                continue
            for name in names:
                if name.startswith("dmabuf_model.") and not name.startswith(
                    "dmabuf_model.platform"
                ):
                    assert name in allowed, f"{path.name} imports {name}"


def test_package_quick_start_runs() -> None:
    """The example in dmabuf_model.platform's docstring stays true."""
    doc = platform_pkg.__doc__ or ""
    code = "\n".join(
        line[4:] for line in doc.split("::", 1)[1].splitlines() if line.startswith("    ")
    )
    exec(code, dict(vars(platform_pkg)))
