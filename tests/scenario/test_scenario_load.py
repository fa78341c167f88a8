"""Reading scenarios: the bundled files, paths and names, the Python form, topologies, positions.

docs/scenarios.md; the platform facts are drivers.md §6 (P2P distance and map type).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dmabuf_model.errors import ScenarioError
from dmabuf_model.platform.topology import PciP2pdmaMapType
from dmabuf_model.scenario import Scenario, bundled, bundled_names, load, loads, resolve
from dmabuf_model.scenario.locate import Locator, field_name

ISSUE_SCENARIOS = [
    "broken-exporter-no-fence-wait",
    "broken-importer-never-unmaps",
    "gpu-eviction",
    "legacy-pinned-rdma",
    "vfio-revoke",
]

MINIMAL = """\
[scenario]
name = "mini"

[platform]
functions = ["vfio0", "gpu0"]

[[exporters]]
name = "vfio"
driver = "vfio-pci"
device = "vfio0"
events = { flr = 1 }

[[importers]]
driver = "amdgpu"
device = "gpu0"
events = { submit = 1 }
"""


def test_the_bundled_scenarios_are_the_five_of_the_issue() -> None:
    """Issue part 2: vfio-revoke, gpu-eviction, legacy-pinned-rdma and the two broken ones."""
    assert bundled_names() == ISSUE_SCENARIOS


@pytest.mark.parametrize("name", ISSUE_SCENARIOS)
def test_every_bundled_scenario_says_what_it_shows_and_its_expected_verdict(name: str) -> None:
    """Issue part 2: each file opens with a comment naming its expected verdict, and its
    [expect] section states it."""
    b = next(x for x in bundled() if x.name == name)
    assert "Expected" in b.comment
    sc = b.load()
    assert sc.name == name
    assert sc.expect is not None
    assert sc.summary and sc.cites


def test_resolve_takes_a_path_or_a_bundled_name(tmp_path: Path) -> None:
    """A command-line SCENARIO is a file, else a bundled name (with or without .toml)."""
    (tmp_path / "mini.toml").write_text(MINIMAL)
    assert resolve(str(tmp_path / "mini.toml")).name == "mini"
    assert resolve("vfio-revoke").name == "vfio-revoke"
    assert resolve("vfio-revoke.toml").name == "vfio-revoke"


def test_an_unknown_scenario_name_lists_the_bundled_ones() -> None:
    """The error names the argument and every bundled scenario."""
    with pytest.raises(ScenarioError, match=r"^nope: \(file\): not a file and not a bundled") as e:
        resolve("nope")
    assert "vfio-revoke" in str(e.value)


def test_a_file_that_is_not_utf8_is_refused_at_its_line(tmp_path: Path) -> None:
    """load decodes UTF-8 itself so the error has a line."""
    (tmp_path / "x.toml").write_bytes(b'[scenario]\nname = "\xff"\n')
    with pytest.raises(ScenarioError, match=r"x\.toml:2: \(file\): byte 19 is not UTF-8"):
        load(tmp_path / "x.toml")


def test_a_toml_syntax_error_keeps_tomllib_line_and_column() -> None:
    """docs/scenarios.md "Errors": syntax errors keep the parser's position."""
    with pytest.raises(ScenarioError) as e:
        loads("[scenario]\nname = 'x'\n[platform\n", source="s.toml")
    assert str(e.value) == (
        "s.toml:3: (toml): Expected ']' at the end of a table declaration at column 10 "
        "(expected valid TOML)"
    )
    assert e.value.line == 3


def test_from_dict_takes_the_same_names_as_the_toml_file() -> None:
    """Issue part 1: "the same scenario can be built from Python with the same names"."""
    import tomllib

    from_toml = loads(MINIMAL)
    from_python = Scenario.from_dict(tomllib.loads(MINIMAL))
    assert from_python == from_toml
    assert from_python.importers[0].source == "vfio"  # the only exporter
    assert from_python.importers[0].name == "amdgpu"  # the driver identifier


def test_python_errors_name_the_field_without_a_line() -> None:
    """From Python there is no file: the message starts with <python>."""
    with pytest.raises(ScenarioError, match=r"^<python>: exporters: missing \(an array\)$"):
        Scenario.from_dict({"scenario": {"name": "x"}, "platform": {"functions": ["a"]}})


def test_overrides_set_an_option_or_an_event_and_are_validated() -> None:
    """--set DRIVER.OPTION=VALUE and DRIVER.events.EVENT=N (docs/scenarios.md)."""
    sc = loads(MINIMAL)
    changed = sc.with_overrides({"vfio.watchdog_1s": "warn", "amdgpu.events.submit": 2})
    assert changed.driver("vfio").options == {"watchdog_1s": "warn"}
    assert changed.driver("amdgpu").events == {"submit": 2}
    with pytest.raises(ScenarioError, match=r"^--set gpu\.x: 'gpu' is not a driver"):
        sc.with_overrides({"gpu.x": 1})
    with pytest.raises(ScenarioError, match=r"exporters\[0\]\.options\.nope: 'nope' is not an"):
        sc.with_overrides({"vfio.nope": 1})


def test_an_unknown_design_lists_the_known_ones() -> None:
    """Issue part 3: --design accepts the registered designs and names them otherwise."""
    with pytest.raises(ScenarioError, match=r"'v9' is not a known design \(expected one of: "):
        loads(MINIMAL).with_design("v9")
    assert loads(MINIMAL).with_design("revoke-v1").design == "revoke-v1"


def test_the_switch_layout_puts_functions_four_hops_apart() -> None:
    """drivers.md §6: below one switch, distance 4 and bus addresses."""
    topo = loads(MINIMAL).topology()
    assert topo.calc_map_type_and_dist("vfio0", "gpu0") == (PciP2pdmaMapType.BUS_ADDR, 4)


def test_the_siblings_layout_makes_functions_of_one_device() -> None:
    """drivers.md §6: two functions of one device are 2 hops apart."""
    sc = loads(
        MINIMAL.replace(
            'functions = ["vfio0", "gpu0"]', 'functions = ["vfio0", "gpu0"]\nlayout = "siblings"'
        )
    )
    assert sc.topology().calc_map_type_and_dist("vfio0", "gpu0")[1] == 2


def test_a_custom_fabric_builds_the_declared_tree() -> None:
    """Functions as tables: ports, ACS redirect and the host bridge allow-list (drivers.md §6)."""
    text = MINIMAL.replace(
        'functions = ["vfio0", "gpu0"]',
        """host_bridges = [{ name = "hb0", allow = "listed" }]
bridges = [
  { name = "rp0", type = "root_port" },
  { name = "usp0", type = "switch_upstream", upstream = "rp0" },
  { name = "dsp0", type = "switch_downstream", upstream = "usp0", acs_redirect = true },
  { name = "dsp1", type = "switch_downstream", upstream = "usp0" },
]
functions = [
  { name = "vfio0", upstream = "dsp0" },
  { name = "gpu0", upstream = "dsp1" },
]
devices = ["iommufd", { name = "ib0", parent = "gpu0" }]
ram = [{ name = "sysram", pages = 4 }]""",
    )
    topo = loads(text).topology()
    assert topo.calc_map_type_and_dist("vfio0", "gpu0") == (PciP2pdmaMapType.THRU_HOST_BRIDGE, 4)
    assert topo.find_parent_pci_dev("ib0") == topo.fn("gpu0")
    assert [r.name for r in topo.ram] == ["sysram"]


def test_the_locator_finds_keys_tables_and_array_elements() -> None:
    """scenario/locate.py: the line of a key, of an inline-table key, of an array element,
    of an array-of-tables header, and of the nearest known parent."""
    text = (
        MINIMAL
        + '\n[[importers]]\ndriver = "xe"\ndevice = "gpu0"\nevents = { submit = 1,\n  free = 1 }\n'
    )
    loc = Locator(text)
    lines = text.splitlines()
    assert lines[loc.line(("exporters", 0, "driver")) - 1] == 'driver = "vfio-pci"'
    assert lines[loc.line(("importers", 1)) - 1] == "[[importers]]"
    assert loc.line(("importers", 1)) == 18
    assert lines[loc.line(("importers", 1, "events", "free")) - 1] == "  free = 1 }"
    assert loc.line(("platform", "functions", 1)) == 5
    assert loc.line(("importers", 1, "missing", "deeper")) == 18
    assert loc.line(("nothing",)) == 1
    assert Locator("").line(("a",)) is None


def test_field_names_read_like_the_toml_keys() -> None:
    """Error FIELDs: dotted keys and [index]."""
    assert (
        field_name(("importers", 1, "options", "dma_device")) == "importers[1].options.dma_device"
    )
    assert field_name(()) == "(top level)"
