"""Statistics over seeds: Student-t intervals and the text tables built from them (paired findings: `findings`)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from ..util import checks


def _columns(frame: pd.DataFrame, names: Iterable[str]) -> None:
    """Raise a ValueError unless `frame` is a DataFrame with every column of `names`."""
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"expected a pandas DataFrame (a tidy table), got {type(frame).__name__}")
    names = list(names)
    bad = [n for n in names if not isinstance(n, str)]
    if bad:
        raise ValueError(f"column names must be text, got {bad!r}")
    missing = [c for c in names if c not in frame.columns]
    if missing:
        raise ValueError(f"no column(s) {', '.join(map(repr, missing))}; available: "
                         f"{', '.join(map(str, frame.columns))}")


def t_quantile(confidence: float, n: int) -> float:
    """The two-sided Student-t quantile t((1 + confidence) / 2, n - 1); NaN for n < 2."""
    from scipy import stats as scipy_stats

    return float(scipy_stats.t.ppf((1 + confidence) / 2, n - 1)) if n > 1 else math.nan


def interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """The Student-t interval mean +- t * s / sqrt(n) of `values` (both ends the mean when n = 1)."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return math.nan, math.nan
    if x.size == 1:
        return float(x[0]), float(x[0])
    half = t_quantile(confidence, x.size) * x.std(ddof=1) / math.sqrt(x.size)
    return float(x.mean() - half), float(x.mean() + half)


def summarize(frame: pd.DataFrame, by: Sequence[str], value: str, confidence: float = 0.95) -> pd.DataFrame:
    """Per group of `by`: n, mean, std (ddof 1), standard error and the Student-t interval of `value`.

    Columns: the `by` columns, n, mean, std, sem, ci_low, ci_high, half_width, confidence and `text`
    ('mean ± half_width', or 'mean (n=1)'). NaN values are left out of n.
    """
    by = [by] if isinstance(by, str) else checks.listing("by", by, nonempty=False)
    if not 0 < checks.number("confidence", confidence) < 1:
        raise ValueError(f"confidence must be a number strictly between 0 and 1, got {confidence!r}")
    _columns(frame, [value, *by])
    if not pd.api.types.is_numeric_dtype(frame[value]):
        raise ValueError(f"column {value!r} must be numeric, got dtype {frame[value].dtype}")
    rows = []
    groups = frame.groupby(by, sort=False, dropna=False)[value] if by else [((), frame[value])]
    for key, values in groups:
        x = values.dropna().to_numpy(dtype=float)
        n = int(x.size)
        std = float(x.std(ddof=1)) if n > 1 else math.nan
        low, high = interval(x, confidence)
        key = key if isinstance(key, tuple) else (key,)
        rows.append({**dict(zip(by, key)), "n": n, "mean": float(x.mean()) if n else math.nan, "std": std,
                     "sem": std / math.sqrt(n) if n > 1 else math.nan, "ci_low": low, "ci_high": high,
                     "half_width": (high - low) / 2 if n > 1 else math.nan})
    out = pd.DataFrame(rows, columns=[*by, "n", "mean", "std", "sem", "ci_low", "ci_high", "half_width"])
    out["confidence"] = confidence
    out["text"] = [f"{m:.3f} ± {h:.3f}" if n > 1 else f"{m:.3f} (n={n})"
                   for m, h, n in zip(out["mean"], out["half_width"], out["n"])]
    return out


def table(summary: pd.DataFrame, index: str | Sequence[str], columns: str) -> pd.DataFrame:
    """A wide text table of `summarize` output: one row per `index`, one column per `columns` value."""
    index = [index] if isinstance(index, str) else checks.listing("index", index)
    _columns(summary, [*index, columns, "text"])
    wide = summary.pivot_table(index=index, columns=columns, values="text", aggfunc="first", sort=False)
    return wide.rename_axis(columns=None).fillna("")
