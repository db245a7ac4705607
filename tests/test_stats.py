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


def test_paired_difference_matches_a_one_sample_t_interval_on_differences():
    data = frame()
    out = stats.paired(data, "a", "b", by=["sparsity"], value="acc")
    for row in out.itertuples():
        at = data[data.sparsity == row.sparsity]
        diff = (at[at.method == "a"].set_index("seed").acc - at[at.method == "b"].set_index("seed").acc)
        low, high = scipy_stats.t.interval(0.95, len(diff) - 1, loc=diff.mean(), scale=scipy_stats.sem(diff))
        assert row.mean_difference == pytest.approx(diff.mean())
        assert (row.ci_low, row.ci_high) == (pytest.approx(low), pytest.approx(high))
        assert row.agree == int((np.sign(diff) == np.sign(diff.mean())).sum()) and row.supported == (low > 0)
        assert row.n == 5


def test_paired_uses_only_seeds_both_have_and_names_bad_input():
    data = frame()
    data = data[~((data.method == "b") & (data.seed == 4))]
    assert (stats.paired(data, "a", "b", by="sparsity", value="acc").n == 4).all()
    with pytest.raises(ValueError, match="method 'c' is not in the table"):
        stats.paired(data, "a", "c", value="acc")
    with pytest.raises(ValueError, match="no column"):
        stats.paired(data, "a", "b", value="top5")


def test_table_is_wide_text():
    out = stats.table(stats.summarize(frame(), ["sparsity", "method"], "acc"), "sparsity", "method")
    assert list(out.columns) == ["a", "b"] and list(out.index) == [0.5, 0.9]


@pytest.mark.parametrize("call, match", [
    (lambda f: stats.summarize(f, ["method"], "acc", confidence=1.0), "strictly between 0 and 1"),
    (lambda f: stats.summarize(f, ["method"], "method"), "column 'method' must be numeric"),
    (lambda f: stats.summarize([1, 2], ["method"], "acc"), "expected a pandas DataFrame"),
    (lambda f: stats.summarize(f, None, "acc"), "by must be a list"),
    (lambda f: stats.paired(f, "a", "b", by="seed", value="acc"), "cannot also be in by"),
    (lambda f: stats.paired(f[~((f.method == "b") & (f.sparsity == 0.5))].assign(
        seed=lambda g: g.seed + 10 * (g.method == "a")), "a", "b", value="acc"), "nothing to pair"),
    (lambda f: stats.table(stats.summarize(f, ["method"], "acc"), ["method"], ["n"]), "column names must be text"),
])
def test_bad_input_is_one_clear_error(call, match):
    with pytest.raises(ValueError, match=match):
        call(frame())
