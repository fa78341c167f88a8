"""scenario: the scenario file format, its validation, and building a checkable system from it.

A scenario says which machine (platform), which drivers export and import which buffers, which
events may happen and how often, what to check and what verdict to expect; docs/scenarios.md
documents the format. ``load``/``loads``/``resolve`` read TOML, ``Scenario.from_dict`` takes the
same keys from Python, ``build`` composes the drivers into a SystemModel, ``explain_flows`` shows
how each attachment negotiates its flow (core-semantics §6.4) and ``evaluate`` compares a check
with the scenario's [expect].
"""

from dmabuf_model.scenario.build import BuiltScenario, build
from dmabuf_model.scenario.load import Bundled, bundled, bundled_names, load, loads, resolve
from dmabuf_model.scenario.schema import (
    CheckSpec,
    DriverSpec,
    ExpectSpec,
    Limit,
    PropertiesSpec,
    Scenario,
)

__all__ = [
    "BuiltScenario",
    "Bundled",
    "CheckSpec",
    "DriverSpec",
    "ExpectSpec",
    "Limit",
    "PropertiesSpec",
    "Scenario",
    "build",
    "bundled",
    "bundled_names",
    "load",
    "loads",
    "resolve",
]
