"""The design registry: names, the default, variants and the switches each design sets.

core-semantics §3, §5.3, §5.18, §7; drivers.md §1.2, §1.8, §3.1 (what each design changes).
"""

from __future__ import annotations

import pytest

from dmabuf_model.designs import (
    DEFAULT_DESIGN,
    DESIGN_NAMES,
    DESIGNS,
    MERGED_2026,
    PIN_ONLY_6_19,
    PIN_ONLY_6_19_RC,
    REVOKE_V1,
    DesignError,
    design_of,
)
from dmabuf_model.kernel.dma_buf import MAINLINE_POLICY, CorePolicy


def test_registry_lists_the_four_designs_in_column_order() -> None:
    """Issue 6 part 1: merged-2026, revoke-v1 and both 6.19 variants."""
    assert DESIGN_NAMES == ("merged-2026", "revoke-v1", "pin-only-6.19", "pin-only-6.19-rc")
    assert all(DESIGNS[n].name == n for n in DESIGN_NAMES)


def test_without_a_design_option_the_design_is_merged_2026() -> None:
    """The default is today's behaviour (core-semantics §7 resolution)."""
    assert DEFAULT_DESIGN == "merged-2026"
    assert design_of({}) is MERGED_2026 and design_of(None) is MERGED_2026


def test_merged_2026_reproduces_the_mainline_core_and_drivers() -> None:
    """merged-2026 changes nothing: mainline core policy, v7 VFIO, no stub (§7, drivers §1.2)."""
    d = MERGED_2026
    assert d.core == MAINLINE_POLICY == CorePolicy()
    assert d.callback_name == "invalidate_mappings" and d.notify_fn == "dma_buf_invalidate_mappings"
    assert d.vfio_attach_requires_revocable and d.vfio_revoke_waits and d.invalidate_contract
    assert d.vfio_pin_op is None and not d.legacy_pinned_stub_callback


def test_revoke_v1_has_a_one_way_core_state_and_a_negotiated_mode() -> None:
    """revoke-v1 [inference]: exactly the two ideas of the v1 proposal (core-semantics §7)."""
    d = REVOKE_V1
    assert d.core_revoked_state and d.revoke_mode_negotiated and d.inference
    changed = {k for k, v in d.switches().items() if MERGED_2026.switches()[k] != v}
    assert changed == {"core_revoked_state", "revoke_mode_negotiated"}


@pytest.mark.parametrize(
    ("design", "pin_op", "requires_revocable"),
    [(PIN_ONLY_6_19, None, False), (PIN_ONLY_6_19_RC, "always_eopnotsupp", False)],
    ids=["accept-at-attach", "refuse-at-pin"],
)
def test_the_6_19_variants_use_move_notify_and_differ_only_in_the_pin_op(
    design: object, pin_op: str | None, requires_revocable: bool
) -> None:
    """drivers.md §1.2 (pin op history), §1.8, §3.1 (stub); core-semantics §5.3 (callback)."""
    assert design in (PIN_ONLY_6_19, PIN_ONLY_6_19_RC)
    d = PIN_ONLY_6_19 if design is PIN_ONLY_6_19 else PIN_ONLY_6_19_RC
    assert d.callback_name == "move_notify" and d.notify_fn == "dma_buf_move_notify"
    assert d.vfio_pin_op == pin_op and d.vfio_attach_requires_revocable is requires_revocable
    assert not d.vfio_revoke_waits and not d.invalidate_contract
    assert d.legacy_pinned_stub_callback and d.dynamic_attach_requires_callback
    assert not d.pin_on_map_for_dynamic  # CONFIG_DMABUF_MOVE_NOTIFY=y assumed


def test_design_variant_selects_the_6_19_variant() -> None:
    """Both 6.19 variants are selectable by variant name as well as by design name."""
    assert design_of({"design": "pin-only-6.19"}) is PIN_ONLY_6_19
    assert design_of({"design": "pin-only-6.19", "design_variant": "refuse-at-pin"}) is (
        PIN_ONLY_6_19_RC
    )
    assert design_of({"design": "pin-only-6.19-rc", "design_variant": "accept-at-attach"}) is (
        PIN_ONLY_6_19
    )
    assert design_of({"design": REVOKE_V1}) is REVOKE_V1


def test_an_unknown_design_names_the_known_ones() -> None:
    """A bad name is a user error with the valid choices (style-guide B8)."""
    with pytest.raises(DesignError, match=r"^design 'v8' is not a known design; known designs: "):
        design_of({"design": "v8"})


def test_a_variant_of_a_design_without_variants_is_refused() -> None:
    with pytest.raises(DesignError, match=r"^design 'revoke-v1' has no variants"):
        design_of({"design": "revoke-v1", "design_variant": "refuse-at-pin"})
    with pytest.raises(DesignError, match=r"known variants: accept-at-attach, refuse-at-pin$"):
        design_of({"design": "pin-only-6.19", "design_variant": "sometimes"})
