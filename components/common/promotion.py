"""Champion/challenger decision: does a newly trained model (challenger) replace the production model
(champion)? Pure functions over the two models' test metrics on the same cases; the promote step
(components/promote.py) measures them and acts on the decision.

Rules (``conf/promote``):

* no champion: the challenger is promoted when its test mean Dice reaches ``min_dice``;
* a champion: the challenger is promoted when its mean Dice is higher by at least ``margin``; with
  ``require_significance`` also only when a one-sided Wilcoxon signed-rank test over the per-case mean
  Dice (challenger > champion) gives p < ``alpha``. The p-value is reported either way.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

import numpy as np
from scipy.stats import wilcoxon

from .errors import DataError


@dataclass(frozen=True)
class Rules:
    min_dice: float
    margin: float
    require_significance: bool
    alpha: float

    @classmethod
    def from_config(cls, cfg: Any) -> Rules:
        return cls(min_dice=float(cfg.min_dice), margin=float(cfg.margin),
                   require_significance=bool(cfg.require_significance), alpha=float(cfg.alpha))


@dataclass(frozen=True)
class Decision:
    """What was decided and why, with the figures it rests on."""

    promote: bool
    reason: str
    challenger_mean_dice: float
    champion_mean_dice: float | None = None
    delta: float | None = None
    p_value: float | None = None
    num_cases: int = 0

    def metadata(self) -> dict[str, str]:
        """The decision as model metadata (text values; empty where a figure does not apply)."""
        return {f"promotion_{k}": "" if v is None else (f"{v:.5f}" if isinstance(v, float) else str(v))
                for k, v in asdict(self).items()}


def per_case_mean_dice(rows: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Case id -> mean Dice over the foreground classes (``dice_<class>`` cells of ``metrics.json`` rows;
    an empty cell, a class absent from label and prediction, is left out)."""
    out = {}
    for row in rows:
        values = [float(v) for k, v in row.items() if k.startswith("dice_") and v not in ("", None)]
        out[str(row["case"])] = float(np.mean(values)) if values else float("nan")
    return out


def paired_p_value(challenger: Mapping[str, float], champion: Mapping[str, float]) -> float:
    """One-sided Wilcoxon signed-rank p-value for "challenger's per-case Dice is higher" on the same cases.

    Cases where either side has no Dice are left out; with no difference at all the p-value is 1.
    """
    if set(challenger) != set(champion):
        missing = sorted(set(challenger) ^ set(champion))
        raise DataError("promote", f"challenger and champion were scored on different cases (e.g. {missing[:3]})")
    pairs = [(challenger[c], champion[c]) for c in sorted(challenger)
             if math.isfinite(challenger[c]) and math.isfinite(champion[c])]
    diffs = np.array([a - b for a, b in pairs])
    if not np.any(diffs != 0):
        return 1.0
    return float(wilcoxon(diffs, alternative="greater", zero_method="wilcox").pvalue)


def decide_first(challenger_mean: float, rules: Rules) -> Decision:
    """No production model yet: promote when the challenger reaches the absolute threshold."""
    ok = challenger_mean >= rules.min_dice
    reason = (f"no production model yet; test mean Dice {challenger_mean:.4f} "
              f"{'reaches' if ok else 'is below'} promote.min_dice {rules.min_dice:.4f}")
    return Decision(promote=ok, reason=reason, challenger_mean_dice=challenger_mean)


def decide(challenger_mean: float, champion_mean: float, challenger_cases: Mapping[str, float],
           champion_cases: Mapping[str, float], rules: Rules) -> Decision:
    """Compare the challenger with the champion measured on the same cases."""
    delta = challenger_mean - champion_mean
    p_value = paired_p_value(challenger_cases, champion_cases)
    figures = (f"test mean Dice {challenger_mean:.4f} vs production {champion_mean:.4f} "
               f"(delta {delta:+.4f}, margin {rules.margin:.4f}; Wilcoxon p={p_value:.3g} on {len(challenger_cases)} cases)")
    if delta < rules.margin:
        promote, why = False, "kept the production model: not better by the margin"
    elif rules.require_significance and p_value >= rules.alpha:
        promote, why = False, f"kept the production model: better by the margin but not significant (alpha {rules.alpha})"
    else:
        promote, why = True, "promoted: better than the production model by the margin"
    return Decision(promote=promote, reason=f"{why}; {figures}", challenger_mean_dice=challenger_mean,
                    champion_mean_dice=champion_mean, delta=delta, p_value=p_value, num_cases=len(challenger_cases))
