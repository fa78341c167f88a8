"""Building a scenario into a SystemModel: budgets, event kinds, limits, properties, designs.

docs/scenarios.md; the drivers' events are drivers.md §1.4 (vfio-pci) and §4 (TTM eviction).
"""

from __future__ import annotations

from typing import Any

import pytest

from dmabuf_model.check import check
from dmabuf_model.errors import ScenarioError
from dmabuf_model.scenario import Scenario, build, resolve
from dmabuf_model.system.threads import world


def scenario(**changes: Any) -> Scenario:
    data: dict[str, Any] = {
        "scenario": {"name": "s"},
        "platform": {"functions": ["vfio0", "gpu0"]},
        "exporters": [
            {"name": "vfio", "driver": "vfio-pci", "device": "vfio0", "events": {"flr": 1}}
        ],
        "importers": [
            {"name": "gpu", "driver": "amdgpu", "device": "gpu0", "events": {"submit": 1}}
        ],
    }
    data.update(changes)
    return Scenario.from_dict(data)


def test_an_event_the_scenario_does_not_list_never_happens() -> None:
    """docs/scenarios.md: every budget not given in events is 0 (vfio-pci's mainline defaults
    would allow an FLR; here only memory off/on is listed)."""
    sc = scenario(
        exporters=[
            {
                "name": "vfio",
                "driver": "vfio-pci",
                "device": "vfio0",
                "events": {"mem_disable": 1},
            }
        ]
    )
    built = build(sc)
    names = [e.name for e in built.model.events]
    assert names == [
        "vfio: PCI_COMMAND memory off",
        "vfio: PCI_COMMAND memory on",
        "gpu: amdgpu_cs_ioctl",
    ]
    assert built.events["vfio.mem_disable"] == (
        "vfio: PCI_COMMAND memory off",
        "vfio: PCI_COMMAND memory on",
    )
    assert built.event_kind("gpu: amdgpu_cs_ioctl") == "gpu.submit"


def test_drivers_get_slots_in_file_order_and_importers_their_source() -> None:
    """Exporters first, then importers; source connects an importer to its exporter."""
    built = build(scenario())
    assert [d.slot for d in built.drivers.values()] == [0, 1]
    assert built.importer("gpu").source is built.exporter("vfio")


def test_the_design_reaches_the_drivers_through_the_system_options() -> None:
    """Issue part 3: drivers read DriverEnv.options["design"]."""
    built = build(scenario(), design="pin-only-6.19")
    assert built.design == "pin-only-6.19"
    assert built.system.options == {"design": "pin-only-6.19"}
    assert built.exporter("vfio").env.options["design"] == "pin-only-6.19"


def test_a_limit_allows_at_most_that_many_kinds_of_event_in_a_run() -> None:
    """[[limits]]: with at_most = 1 the FLR and the submission never both happen in a run,
    and each still happens on its own (every reachable state visited)."""
    sc = scenario(limits=[{"events": ["vfio.flr", "gpu.submit"], "at_most": 1}])
    model = build(sc).model
    used: set[tuple[int, ...]] = set()
    seen = set(model.init_states())
    frontier = list(seen)
    while frontier:
        s = frontier.pop()
        used.add(tuple(1 - b for b in world(s).budgets))
        for _, nxt in model.successors(s):
            if nxt not in seen:
                seen.add(nxt)
                frontier.append(nxt)
    assert used == {(0, 0), (1, 0), (0, 1)}


def test_a_limit_shrinks_the_search_and_keeps_its_verdict() -> None:
    """Limits only remove interleavings: fewer states, same verdict (docs/scenarios.md)."""
    free = check(build(scenario()).model, stop_at_first=False)
    limited = check(
        build(scenario(limits=[{"events": ["vfio.flr", "gpu.submit"], "at_most": 1}])).model,
        stop_at_first=False,
    )
    assert limited.stats.unique < free.stats.unique
    assert [d.property for d in limited.failures] == [d.property for d in free.failures]


def test_a_driver_that_refuses_its_device_is_reported_at_its_table() -> None:
    """Errors only a driver sees still name the table (docs/scenarios.md "Errors")."""
    sc = scenario(
        platform={"functions": ["vfio0", "gpu0"], "devices": ["misc"]},
        exporters=[{"name": "vfio", "driver": "vfio-pci", "device": "misc"}],
    )
    with pytest.raises(
        ScenarioError, match=r"^<python>: exporters\[0\]: vfio-pci cannot be set up"
    ):
        build(sc)


def test_a_boot_setup_that_fails_is_reported_at_the_importer() -> None:
    """iommufd's boot MAP_FILE of a system-heap buffer fails with -EOPNOTSUPP (drivers.md §2.1)."""
    sc = scenario(
        platform={"functions": ["nic0"], "devices": ["iommufd", "heap"]},
        exporters=[{"name": "heap", "driver": "system-heap", "device": "heap"}],
        importers=[
            {
                "name": "mmu",
                "driver": "iommufd",
                "device": "iommufd",
                "options": {"map_at_setup": True},
            }
        ],
    )
    with pytest.raises(ScenarioError, match=r"importers\[0\]: boot setup of iommufd failed: .*-95"):
        build(sc)


def test_properties_only_and_sometimes_choose_what_is_checked() -> None:
    """[properties]: sometimes=false drops the drivers' nontriviality properties; only keeps
    the named ones."""
    every = [p.name for p in build(scenario()).model.properties()]
    assert "vfio_revoke_completes[vfio]" in every
    none = [p.name for p in build(scenario(properties={"sometimes": False})).model.properties()]
    assert "vfio_revoke_completes[vfio]" not in none
    only = build(scenario(properties={"only": ["no_dma_violation", "pins_balanced"]}))
    assert [p.name for p in only.model.properties()] == ["pins_balanced", "no_dma_violation"]


def test_bundled_vfio_revoke_builds_every_importer_of_the_issue() -> None:
    """Issue part 2: iommufd, RDMA ODP, RDMA pinned-revocable and amdgpu import one vfio BAR;
    FLR, memory disable, close and hot-unplug may happen."""
    built = build(resolve("vfio-revoke"))
    kinds = {name: d.kind for name, d in built.drivers.items()}
    assert kinds == {
        "vfio": "vfio-pci",
        "iommufd": "iommufd",
        "odp": "rdma-odp",
        "irdma": "rdma-pinned-revocable",
        "amdgpu": "amdgpu",
    }
    assert {"vfio.flr", "vfio.mem_disable", "vfio.close", "vfio.unplug"} <= set(built.events)
