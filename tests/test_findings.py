"""Findings: paired claims over seeds, checked against scipy's paired t interval as the oracle."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

import oneshot_lab as ol
from oneshot_lab.analysis.findings import Claim, evaluate, replicate, seed_rows, show, tally


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


def test_intervals_p_values_and_verdicts_match_scipy_paired_t():
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
        assert row.p_value == pytest.approx(sps.ttest_rel(d + 1.0, np.ones_like(d)).pvalue, rel=1e-9)
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
    assert table["verdict"].iloc[0] == "too few seeds"


def holm(p: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values, by hand (Holm 1979): max over i <= rank of (m - i + 1) p_(i), capped at 1."""
    order = np.argsort(p)
    out, running = np.empty(len(p)), 0.0
    for i, k in enumerate(order):
        running = max(running, min(1.0, (len(p) - i) * p[k]))
        out[k] = running
    return list(out)


def bh(p: list[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values, by hand: min over j >= rank of m p_(j) / j."""
    order, m = np.argsort(p), len(p)
    out, running = np.empty(m), 1.0
    for i in range(m - 1, -1, -1):
        running = min(running, m * p[order[i]] / (i + 1))
        out[order[i]] = running
    return list(out)


FAMILY = {0.5: [0.05, 0.06, 0.055, 0.07, 0.045], 0.7: [0.02, 0.03, -0.01, 0.04, 0.01],
          0.8: [0.004, -0.003, 0.002, 0.001, -0.002], 0.9: [0.03, 0.0, 0.05, 0.02, 0.04]}


@pytest.mark.parametrize("adjust, by_hand, library", [("holm", holm, "holm"), ("bh", bh, "fdr_bh")])
def test_the_family_is_adjusted_as_holm_and_benjamini_hochberg_say(adjust, by_hand, library):
    from statsmodels.stats.multitest import multipletests

    table = evaluate(records(FAMILY), [Claim(claim="a beats b", a="a", b="b", where={"stage": "one_shot"})],
                     adjust=adjust)
    raw = list(table["p_value"])
    assert list(table["p_adjusted"]) == pytest.approx(by_hand(raw), rel=1e-12)
    assert list(table["p_adjusted"]) == pytest.approx(list(multipletests(raw, method=library)[1]), rel=1e-12)
    assert (table["adjust"] == adjust).all()
    with pytest.raises(ValueError, match="unknown adjust 'bonferoni'; accepted: holm, bh, none"):
        evaluate(records(FAMILY), [Claim(claim="x", a="a", b="b")], adjust="bonferoni")


def test_the_floor_separates_supported_inconclusive_and_equivalent():
    from statsmodels.stats.weightstats import ttost_paired

    floor = 0.01
    table = evaluate(records(FAMILY), [Claim(claim="a beats b", a="a", b="b", where={"stage": "one_shot"})],
                     floor=floor)
    assert list(table["verdict"]) == ["supported", "inconclusive", "equivalent", "inconclusive"]
    base = 0.5 + 0.01 * np.arange(5)
    for row, d in zip(table.itertuples(), FAMILY.values()):
        tost = ttost_paired(base + np.array(d), base, -floor, floor)[0]
        assert row.p_equivalence == pytest.approx(tost, rel=1e-9)
    # 0.9 is significant before adjustment but its interval reaches below the floor: not a finding
    assert table["ci_low"].iloc[3] < floor < table["mean_difference"].iloc[3]
    wide = evaluate(records(FAMILY), [Claim(claim="a beats b", a="a", b="b", where={"stage": "one_shot"})], floor=0.06)
    assert wide["verdict"].iloc[0] == "inconclusive" and (wide["floor"] == 0.06).all()
    assert ol.findings.effect_floor(0.9, 1000) == pytest.approx(2 * np.sqrt(0.9 * 0.1 / 1000))
    with pytest.raises(ValueError, match="examples must be a positive whole number"):
        ol.findings.effect_floor(0.9, 0)


def test_two_arms_near_chance_get_no_verdict():
    frame = records({0.9: [0.05, 0.06, 0.055]})
    frame["test_accuracy"] = frame["test_accuracy"] - 0.4 + np.where(frame["method"] == "a", -0.05, 0.0)
    claim = Claim(claim="a beats b", a="a", b="b", where={"stage": "one_shot"})
    assert evaluate(frame, [claim], floor=0.03, chance=0.1)["verdict"].iloc[0] == "both at chance"
    assert evaluate(frame, [claim], floor=0.03)["verdict"].iloc[0] != "both at chance"


def test_replication_re_tests_the_discovered_findings_on_fresh_seeds():
    claim = [Claim(claim="a beats b", a="a", b="b", where={"stage": "one_shot"})]
    discovery = evaluate(records(FAMILY), claim, floor=0.01)
    fresh = seed_rows(records({0.5: [-0.05, -0.04, -0.06, -0.05, -0.045], 0.7: [0.05] * 5, 0.8: [0.0, 0.001, -0.001]}),
                      claim)
    out = replicate(discovery, fresh)
    assert list(out["replicated"]) == ["no", "", "yes", ""]
    assert list(out["replication_verdict"].fillna("-")) == ["contradicted", "-", "equivalent", "-"]
    assert out["replication_n"].iloc[2] == 3
    assert replicate(discovery, fresh[fresh.setting.str.endswith("0.8")])["replicated"].iloc[0] == "not run"


def test_seed_rows_give_back_every_interval():
    frame = records(FAMILY)
    claims = [Claim(claim="a beats b", a="a", b="b", where={"stage": "one_shot"})]
    table, seeds = evaluate(frame, claims), seed_rows(frame, claims)
    for row in table.itertuples():
        d = seeds[seeds.setting == row.setting]["difference"].to_numpy()
        low, high = sps.ttest_1samp(d, 0).confidence_interval(0.95)
        assert (row.ci_low, row.ci_high) == (pytest.approx(low, abs=1e-12), pytest.approx(high, abs=1e-12))
    assert list(seeds.columns) == ol.findings.SEED_COLUMNS and len(seeds) == 20


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


def test_only_seeds_both_arms_have_are_paired_and_bad_pairings_are_named():
    frame = records({0.5: [0.02, 0.01, 0.03, 0.02]})
    fewer = frame[~((frame.method == "b") & (frame.seed == 3))]
    assert evaluate(fewer, [Claim(claim="x", a="a", b="b", where={"stage": "one_shot"})])["n"].tolist() == [3]
    with pytest.raises(ValueError, match="'seed' is what pairs are matched on; it cannot also be in by"):
        Claim(claim="x", a="a", b="b", by=("seed",))
    apart = frame.assign(seed=frame.seed + 10 * (frame.method == "a"))
    with pytest.raises(ValueError, match="nothing to pair"):
        evaluate(apart, [Claim(claim="x", a="a", b="b", where={"stage": "one_shot"})])
    with pytest.raises(ValueError, match="confidence must be strictly between 0 and 1"):
        evaluate(frame, [Claim(claim="x", a="a", b="b")], confidence=1.5)
