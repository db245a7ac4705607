"""Intervals over seeds and paired differences, with scipy.stats as the oracle."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from oneshot_lab.analysis import stats


def frame():
    """Two methods over five seeds at two sparsities."""
    rng = np.random.default_rng(0)
    rows = [{"method": m, "sparsity": s, "seed": seed, "acc": 0.8 - s / 2 + (0.03 if m == "a" else 0.0)
             + rng.normal(0, 0.01)} for m in ("a", "b") for s in (0.5, 0.9) for seed in range(5)]
    return pd.DataFrame(rows)


def test_summarize_matches_scipy_t_interval():
    data = frame()
    out = stats.summarize(data, ["method", "sparsity"], "acc", confidence=0.9)
    for row in out.itertuples():
        x = data[(data.method == row.method) & (data.sparsity == row.sparsity)].acc
        low, high = scipy_stats.t.interval(0.9, len(x) - 1, loc=x.mean(), scale=scipy_stats.sem(x))
        assert (row.n, row.mean, row.std) == (5, pytest.approx(x.mean()), pytest.approx(x.std(ddof=1)))
        assert row.sem == pytest.approx(scipy_stats.sem(x))
        assert (row.ci_low, row.ci_high) == (pytest.approx(low), pytest.approx(high))
    assert out.text.iloc[0] == f"{out['mean'].iloc[0]:.3f} ± {out.half_width.iloc[0]:.3f}"


def test_t_quantiles_of_the_reference_table():
    assert [round(stats.t_quantile(0.95, n), 2) for n in (3, 5, 10)] == [4.30, 2.78, 2.26]


def test_one_value_has_no_spread():
    out = stats.summarize(pd.DataFrame({"g": ["x"], "v": [0.5]}), ["g"], "v")
    assert out.n.iloc[0] == 1 and np.isnan(out["std"].iloc[0]) and out.text.iloc[0] == "0.500 (n=1)"


def test_table_is_wide_text():
    out = stats.table(stats.summarize(frame(), ["sparsity", "method"], "acc"), "sparsity", "method")
    assert list(out.columns) == ["a", "b"] and list(out.index) == [0.5, 0.9]


@pytest.mark.parametrize("call, match", [
    (lambda f: stats.summarize(f, ["method"], "acc", confidence=1.0), "strictly between 0 and 1"),
    (lambda f: stats.summarize(f, ["method"], "method"), "column 'method' must be numeric"),
    (lambda f: stats.summarize([1, 2], ["method"], "acc"), "expected a pandas DataFrame"),
    (lambda f: stats.summarize(f, None, "acc"), "by must be a list"),
    (lambda f: stats.table(stats.summarize(f, ["method"], "acc"), ["method"], ["n"]), "column names must be text"),
])
def test_bad_input_is_one_clear_error(call, match):
    with pytest.raises(ValueError, match=match):
        call(frame())
