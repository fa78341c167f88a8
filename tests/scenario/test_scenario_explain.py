"""explain: the flow each attachment negotiates, from the drivers' own attach/pin/map paths.

core-semantics §6.4 (how an importer reaches its flow), §5.6 (pin on map for static
attachments), §10 #24; drivers.md §7 (the compatibility matrix these cells must agree with).
"""

from __future__ import annotations

from typing import Any

import pytest

from dmabuf_model.drivers.base import TakebackKind
from dmabuf_model.scenario import Scenario, build, resolve
from dmabuf_model.scenario.explain import (
    MOVABLE,
    PINNED,
    REJECTED,
    REVOKED,
    STATIC,
    classify_flow,
    explain_flows,
    format_explanation,
)


def test_vfio_revoke_flows_are_the_matrix_cells() -> None:
    """drivers.md §7, vfio-pci row: iommufd and irdma pin and are revocable (the revoked flow,
    §6.4 step 4); RDMA ODP and amdgpu hold no pin (the movable flow, step 3)."""
    flows = {f.importer: f for f in explain_flows(build(resolve("vfio-revoke")))}
    assert {n: f.flow for n, f in flows.items()} == {
        "iommufd": REVOKED,
        "odp": MOVABLE,
        "irdma": REVOKED,
        "amdgpu": MOVABLE,
    }
    for f in flows.values():
        assert (f.dynamic, f.peer2peer, f.revocable) == (True, True, True)
    assert flows["iommufd"].pinned and not flows["iommufd"].mapped  # no sg_table (§2.1)
    assert flows["odp"].mapped and not flows["odp"].pinned


def test_the_legacy_pinned_importer_is_rejected_at_attach() -> None:
    """drivers.md §1.8: no invalidate_mappings, so vfio-pci's attach refuses it (EOPNOTSUPP)."""
    (f,) = explain_flows(build(resolve("legacy-pinned-rdma")))
    assert (f.flow, f.errno, f.step) == (REJECTED, "EOPNOTSUPP", "dma_buf_dynamic_attach")
    assert not f.revocable and f.dynamic
    assert (
        "dma_buf_dynamic_attach(buf0, nic0, ib_umem_dmabuf_attach_pinned_ops[1]) = -EOPNOTSUPP"
        in f.lines
    )


def _pair(exporter: dict[str, Any], importer: dict[str, Any]) -> Scenario:
    return Scenario.from_dict(
        {
            "scenario": {"name": "pair"},
            "platform": {"functions": ["exp0", "imp0"], "devices": ["heap"]},
            "exporters": [exporter],
            "importers": [importer],
        }
    )


def test_a_static_importer_of_a_gpu_buffer_is_pinned_on_map() -> None:
    """core-semantics §5.6: a static attachment to an exporter with pin is pinned per mapping."""
    sc = _pair(
        {"name": "gpu", "driver": "amdgpu", "device": "exp0"},
        {"name": "media", "driver": "static", "device": "imp0", "events": {"job": 1}},
    )
    (f,) = explain_flows(build(sc))
    assert (f.flow, f.dynamic, f.pinned, f.revocable) == (PINNED, False, True, False)


def test_a_dynamic_importer_of_a_static_exporter_is_static() -> None:
    """drivers.md §7: RDMA ODP of a system-heap buffer is never invalidated."""
    sc = _pair(
        {"name": "heap", "driver": "system-heap", "device": "heap"},
        {"name": "odp", "driver": "rdma-odp", "device": "imp0", "events": {"reg": 1, "access": 1}},
    )
    (f,) = explain_flows(build(sc))
    assert (f.flow, f.dynamic, f.revocable, f.pinned) == (STATIC, True, True, False)


def test_explain_runs_the_import_path_even_when_the_scenario_gives_it_no_budget() -> None:
    """explain shows how the attachment would negotiate: the importer's own import events run
    with their mainline budgets even if the scenario's run never imports."""
    sc = _pair(
        {"name": "heap", "driver": "system-heap", "device": "heap"},
        {"name": "odp", "driver": "rdma-odp", "device": "imp0"},
    )
    (f,) = explain_flows(build(sc))
    assert f.attach is not None  # ibv_reg_dmabuf_mr and the first access ran
    assert f.mapped
    assert f.flow == STATIC


@pytest.mark.parametrize(
    ("kw", "flow"),
    [
        ({"dynamic": False, "pin_op": True}, PINNED),
        ({"dynamic": False, "pin_op": False}, STATIC),
        ({"revocable": False}, PINNED),
        ({"pinned": True}, REVOKED),
        ({}, MOVABLE),
        ({"takeback": None}, STATIC),
        ({"takeback": TakebackKind.MOVE}, MOVABLE),
    ],
)
def test_classify_flow_follows_the_four_steps_of_6_4(kw: dict[str, Any], flow: str) -> None:
    """core-semantics §6.4: callback presence and pin success decide the flow."""
    args: dict[str, Any] = {
        "dynamic": True,
        "revocable": True,
        "pinned": False,
        "mapped": True,
        "pin_op": False,
        "takeback": TakebackKind.REVOKE,
    }
    args.update(kw)
    assert classify_flow(**args)[0] == flow


def test_a_mapping_without_pin_or_callback_is_flagged_unsafe() -> None:
    """core-semantics §10 #24: dynamic, no invalidate_mappings, mapped, no pin."""
    _, why = classify_flow(
        dynamic=True, revocable=False, pinned=False, mapped=True, pin_op=True, takeback=None
    )
    assert why.endswith("it holds a mapping without a pin: unsafe (core-semantics §10 #24)")


def test_the_text_names_every_attachment_property_and_cites_6_4() -> None:
    """The explain command's output: one block per importer with the five answers."""
    built = build(resolve("legacy-pinned-rdma"))
    text = format_explanation(built, explain_flows(built))
    assert "exporter vfio: vfio-pci on vfio0; revokes (the storage goes away)" in text
    assert "  attach0 on buf0 (detached after the failure)" in text
    assert (
        "  dynamic: yes   peer2peer: yes (allow_peer2peer yes)   revocable: no   pinned: no"
        "   mapped: no" in text
    )
    assert "flow: rejected: -EOPNOTSUPP at dma_buf_dynamic_attach" in text
    assert "core-semantics §6.4" in text
