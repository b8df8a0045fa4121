"""Champion/challenger rules (components/common/promotion.py)."""

from __future__ import annotations

import pytest

from components.common.errors import DataError
from components.common.promotion import Rules, decide, decide_first, paired_p_value, per_case_mean_dice

RULES = Rules(min_dice=0.8, margin=0.01, require_significance=False, alpha=0.05)


def cases(values: list[float]) -> dict[str, float]:
    return {f"case_{i:02d}": v for i, v in enumerate(values)}


@pytest.mark.parametrize("dice, promoted", [(0.79, False), (0.8, True), (0.95, True)])
def test_first_model_needs_the_absolute_threshold(dice: float, promoted: bool) -> None:
    decision = decide_first(dice, RULES)
    assert decision.promote is promoted and decision.champion_mean_dice is None
    assert ("reaches" if promoted else "is below") in decision.reason


def test_margin_decides_and_the_paired_test_is_reported() -> None:
    champion = cases([0.80, 0.82, 0.78, 0.81, 0.79, 0.83, 0.80, 0.77])
    better = {k: v + 0.05 for k, v in champion.items()}
    slightly = {k: v + 0.005 for k, v in champion.items()}
    promoted = decide(0.85, 0.80, better, champion, RULES)
    assert promoted.promote and promoted.delta == pytest.approx(0.05) and promoted.num_cases == 8
    assert promoted.p_value == pytest.approx(1 / 2 ** 8)  # all 8 differences positive: exact one-sided p
    kept = decide(0.805, 0.80, slightly, champion, RULES)
    assert not kept.promote and kept.reason.startswith("kept the production model: not better by the margin")


def test_required_significance_keeps_the_champion_on_a_small_noisy_gain() -> None:
    champion = cases([0.80, 0.80, 0.80, 0.80])
    challenger = cases([0.95, 0.78, 0.79, 0.95])  # mean +0.08, but two of four cases worse
    strict = Rules(min_dice=0.8, margin=0.01, require_significance=True, alpha=0.05)
    assert decide(0.8675, 0.80, challenger, champion, RULES).promote
    kept = decide(0.8675, 0.80, challenger, champion, strict)
    assert not kept.promote and "not significant" in kept.reason and kept.p_value is not None and kept.p_value >= 0.05


def test_paired_test_needs_the_same_cases_and_tolerates_no_difference() -> None:
    assert paired_p_value(cases([0.5, 0.6]), cases([0.5, 0.6])) == 1.0
    with pytest.raises(DataError, match="different cases"):
        paired_p_value({"a": 0.5}, {"b": 0.5})


def test_per_case_mean_dice_leaves_out_empty_cells() -> None:
    rows = [{"case": "a", "dice_x": 0.5, "dice_y": 0.7, "hd95_x": 3.0}, {"case": "b", "dice_x": 0.9, "dice_y": ""}]
    assert per_case_mean_dice(rows) == {"a": pytest.approx(0.6), "b": pytest.approx(0.9)}


def test_decision_metadata_is_text() -> None:
    meta = decide(0.85, 0.80, cases([0.85]), cases([0.80]), RULES).metadata()
    assert meta["promotion_promote"] == "True" and meta["promotion_delta"] == "0.05000"
    assert all(isinstance(v, str) for v in meta.values())
