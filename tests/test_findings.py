"""Findings: paired claims over seeds, checked against scipy's paired t interval as the oracle."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

import oneshot_lab as ol
from oneshot_lab.analysis.findings import Claim, evaluate, show, tally, verdict


def records(diffs: dict[float, list[float]]) -> pd.DataFrame:
    """Tidy rows: method a and b per (sparsity, seed), a - b given per sparsity."""
    rows = []
    for sparsity, ds in diffs.items():
        for seed, d in enumerate(ds):
            base = 0.5 + 0.01 * seed
            rows += [{"method": "a", "sparsity": sparsity, "seed": seed, "stage": "one_shot", "test_accuracy": base + d},
                     {"method": "b", "sparsity": sparsity, "seed": seed, "stage": "one_shot", "test_accuracy": base},
                     {"method": "a", "sparsity": sparsity, "seed": seed, "stage": "finetuned", "test_accuracy": 0.0}]
    return pd.DataFrame(rows)


def test_intervals_and_verdicts_match_scipy_paired_t():
    diffs = {0.5: [0.02, 0.03, 0.025, 0.04, 0.01], 0.9: [-0.05, -0.02, -0.04, -0.03, -0.06],
             0.95: [0.01, -0.02, 0.03, -0.01, 0.0]}
    table = evaluate(records(diffs), [Claim(claim="a beats b", a="a", b="b", where={"stage": "one_shot"})])
    assert list(table["verdict"]) == ["supported", "contradicted", "inconclusive"]
    for row, d in zip(table.itertuples(), diffs.values()):
        d = np.array(d)
        low, high = sps.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=sps.sem(d))
        assert row.mean_difference == pytest.approx(d.mean()) and row.n == 5
        assert (row.ci_low, row.ci_high) == (pytest.approx(low), pytest.approx(high))
        assert row.agree == int((d > 0).sum())
    assert table["setting"].iloc[0] == "stage=one_shot, sparsity=0.5"


def test_lower_is_better_flips_the_sign_and_tally_counts_verdicts():
    frame = records({0.5: [0.02, 0.03, 0.025]}).rename(columns={"test_accuracy": "test_loss"})
    table = evaluate(frame, [Claim(claim="b has the lower loss", a="b", b="a", value="test_loss",
                                   lower_is_better=True, where={"stage": "one_shot"})])
    assert table["mean_difference"].iloc[0] == pytest.approx(0.025) and table["verdict"].iloc[0] == "supported"
    counts = tally(table)
    assert counts.loc[0, "supported"] == 1
    assert "seeds agreeing" in show(table).columns and show(table)["seeds agreeing"].iloc[0] == "3/3"


def test_one_seed_is_too_few():
    table = evaluate(records({0.5: [0.02]}), [Claim(claim="x", a="a", b="b", where={"stage": "one_shot"})])
    assert table["verdict"].iloc[0] == "too few seeds" == verdict(float("nan"), float("nan"), 1)


@pytest.mark.parametrize("kwargs, message", [
    (dict(claim="", a="a", b="b"), "claim must be a non-empty text"),
    (dict(claim="x", a="a", b="a"), "a and b must differ"),
    (dict(claim="x", a="a", b="b", lower_is_better="yes"), "lower_is_better must be True or False"),
])
def test_bad_claims_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Claim(**kwargs)


def test_missing_columns_and_absent_methods_are_named():
    frame = records({0.5: [0.02, 0.01]})
    with pytest.raises(ValueError, match="needs column.*'budget'"):
        evaluate(frame, [Claim(claim="x", a="a", b="b", by=("budget",))])
    with pytest.raises(ValueError, match="method 'c' is not in the table"):
        evaluate(frame, [Claim(claim="x", a="a", b="c")])
    with pytest.raises(ValueError, match="Claim objects"):
        evaluate(frame, ["a beats b"])
    assert ol.analysis.findings.Claim is Claim


def test_forest_plot_draws_one_row_per_finding():
    import matplotlib

    matplotlib.use("Agg")
    table = evaluate(records({0.5: [0.02, 0.03, 0.025], 0.9: [-0.01, 0.02, 0.0]}),
                     [Claim(claim="a beats b", a="a", b="b", where={"stage": "one_shot"})])
    ax = ol.analysis.forest.plot(table, title="t")
    assert len(ax.get_yticks()) == 2 and ax.get_title() == "t"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["supported", "inconclusive"]
    with pytest.raises(ValueError, match="empty"):
        ol.analysis.forest.plot(table.iloc[:0])
