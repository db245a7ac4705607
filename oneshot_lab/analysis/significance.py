"""The tests behind a verdict: paired t-tests, equivalence (TOST), multiplicity adjustment and the effect floor."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

ADJUSTMENTS = {"holm": "holm", "bh": "fdr_bh", "none": None}  # ours -> statsmodels' multipletests method
VERDICTS = ("supported", "contradicted", "equivalent", "inconclusive", "both at chance", "too few seeds")


def effect_floor(accuracy: float, examples: int) -> float:
    """Twice the binomial standard error of an accuracy measured on `examples` examples: 2 sqrt(p (1 - p) / n)."""
    if not 0 <= accuracy <= 1 or isinstance(accuracy, bool):
        raise ValueError(f"accuracy must be a fraction in [0, 1], got {accuracy!r}")
    if not isinstance(examples, (int, np.integer)) or isinstance(examples, bool) or examples < 1:
        raise ValueError(f"examples must be a positive whole number (the split's size), got {examples!r}")
    return 2 * math.sqrt(accuracy * (1 - accuracy) / examples)


def paired_test(differences: Sequence[float], floor: float, confidence: float) -> dict:
    """n, mean, the Student-t interval, the two-sided p of 'mean = 0' and the TOST p of '|mean| < floor'."""
    from scipy import stats as scipy_stats

    d = np.asarray(differences, dtype=float)
    n = int(d.size)
    out = {"n": n, "mean_difference": float(d.mean()) if n else math.nan, "ci_low": math.nan, "ci_high": math.nan,
           "p_value": math.nan, "p_equivalence": math.nan}
    if n < 2:
        if n == 1:
            out.update(ci_low=float(d[0]), ci_high=float(d[0]))
        return out
    with warnings.catch_warnings():  # identical differences: scipy warns of precision loss and may return NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        test = scipy_stats.ttest_1samp(d, 0.0)
        low, high = test.confidence_interval(confidence)
        above = scipy_stats.ttest_1samp(d, -floor, alternative="greater").pvalue
        below = scipy_stats.ttest_1samp(d, floor, alternative="less").pvalue
    out.update(ci_low=float(low), ci_high=float(high), p_value=float(test.pvalue),
               p_equivalence=float(max(above, below)))
    return out


def adjusted(p_values: Sequence[float], adjust: str) -> np.ndarray:
    """The family's p-values adjusted by `adjust` (statsmodels' multipletests); NaN entries stay NaN, untested."""
    if adjust not in ADJUSTMENTS:
        raise ValueError(f"unknown adjust {adjust!r}; accepted: {', '.join(ADJUSTMENTS)}")
    p = np.asarray(p_values, dtype=float)
    out = p.copy()
    finite = np.isfinite(p)
    if ADJUSTMENTS[adjust] and finite.any():
        from statsmodels.stats.multitest import multipletests

        out[finite] = multipletests(p[finite], method=ADJUSTMENTS[adjust])[1]
    return out


def at_chance(row: pd.Series) -> bool:
    """Whether both arms of an accuracy claim are within the floor of chance (no comparison is meaningful)."""
    chance = row.get("chance", math.nan)
    if not np.isfinite(chance):
        return False
    return bool(row["a_mean"] - chance <= row["floor"] and row["b_mean"] - chance <= row["floor"])


def verdict(row: pd.Series, alpha: float) -> str:
    """The verdict of one finding from its adjusted p-values, interval, floor and arms' means."""
    if row["n"] < 2:
        return "too few seeds"
    if at_chance(row):
        return "both at chance"
    significant = row["p_adjusted"] < alpha
    if significant and row["ci_low"] > row["floor"]:
        return "supported"
    if significant and row["ci_high"] < -row["floor"]:
        return "contradicted"
    if row["p_equivalence_adjusted"] < alpha:
        return "equivalent"
    return "inconclusive"
