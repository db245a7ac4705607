"""Every committed findings table recomputes from the per-seed rows committed beside it, with scipy and
statsmodels as the oracle (not the lab's code): intervals, raw and adjusted p-values, equivalence, verdicts."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.weightstats import ttost_paired

RESULTS = Path(__file__).resolve().parents[1] / "results"
TABLES = sorted(RESULTS.glob("*/findings.csv")) + sorted(RESULTS.glob("*/replication/findings.csv"))
KEYS = ["claim", "setting", "a", "b", "value"]
METHODS = {"holm": "holm", "bh": "fdr_bh"}


def test_every_findings_table_has_its_per_seed_rows():
    assert TABLES, "no committed findings tables"
    missing = [str(t.relative_to(RESULTS)) for t in TABLES if not (t.parent / "findings_seeds.csv").is_file()]
    assert not missing, f"findings tables without the per-seed rows behind them: {missing}"


def oracle(differences: np.ndarray, floor: float, confidence: float) -> dict:
    """The statistics of one finding computed by scipy / statsmodels directly. Identical differences have no
    variance: the interval is the mean itself and TOST's p is 0 inside the floor (scipy's t-test gives NaN for a
    zero mean, which leaves the finding out of the family's adjustment)."""
    n = len(differences)
    mean = differences.mean()
    p_value = sps.ttest_1samp(differences, 0.0).pvalue
    if np.ptp(differences) == 0:
        return {"n": n, "mean_difference": mean, "ci_low": mean, "ci_high": mean, "p_value": p_value,
                "p_equivalence": 0.0 if abs(mean) < floor else 1.0}
    low, high = sps.t.interval(confidence, n - 1, loc=mean, scale=sps.sem(differences))
    return {"n": n, "mean_difference": mean, "ci_low": low, "ci_high": high, "p_value": p_value,
            "p_equivalence": ttost_paired(differences, np.zeros(n), -floor, floor)[0]}


def adjusted(p: pd.Series, method: str) -> np.ndarray:
    """statsmodels' adjustment over the finite p-values of a family (NaN: no test, left out)."""
    out = p.to_numpy(dtype=float).copy()
    finite = np.isfinite(out)
    out[finite] = multipletests(out[finite], method=method)[1]
    return out


def expected_verdict(row: pd.Series, alpha: float) -> str:
    """The verdict rule of docs/reference.md, applied to the oracle's numbers."""
    chance = row["chance"]
    if np.isfinite(chance) and row["a_mean"] - chance <= row["floor"] and row["b_mean"] - chance <= row["floor"]:
        return "both at chance"
    if row["p_adjusted"] < alpha and row["ci_low"] > row["floor"]:
        return "supported"
    if row["p_adjusted"] < alpha and row["ci_high"] < -row["floor"]:
        return "contradicted"
    return "equivalent" if row["p_equivalence_adjusted"] < alpha else "inconclusive"


@pytest.mark.parametrize("path", TABLES, ids=lambda p: str(p.relative_to(RESULTS)))
def test_committed_findings_recompute_from_their_seeds(path):
    table = pd.read_csv(path)
    seeds = pd.read_csv(path.parent / "findings_seeds.csv")
    confidence = float(table["confidence"].iloc[0])
    rows = []
    for key, group in seeds.groupby(KEYS, sort=False):
        d = group["difference"].to_numpy(dtype=float)
        assert np.allclose(np.abs(group["a_value"] - group["b_value"]), np.abs(d), rtol=0, atol=1e-12)
        rows.append({**dict(zip(KEYS, key)), **oracle(d, float(group["floor"].iloc[0]), confidence),
                     "a_mean": group["a_value"].mean(), "b_mean": group["b_value"].mean(),
                     "floor": group["floor"].iloc[0], "chance": group["chance"].iloc[0]})
    ours = pd.DataFrame(rows)
    method = METHODS[table["adjust"].iloc[0]]
    ours["p_adjusted"] = adjusted(ours["p_value"], method)
    ours["p_equivalence_adjusted"] = adjusted(ours["p_equivalence"], method)
    merged = table.merge(ours, on=KEYS, suffixes=("", "_oracle"), validate="one_to_one")
    assert len(merged) == len(table) == len(ours)
    for column in ("n", "mean_difference", "ci_low", "ci_high", "p_value", "p_adjusted", "p_equivalence",
                   "p_equivalence_adjusted", "a_mean", "b_mean"):
        np.testing.assert_allclose(merged[column], merged[f"{column}_oracle"], rtol=0, atol=1e-12, err_msg=column)
    ours["expected"] = [expected_verdict(r, 1 - confidence) for _, r in ours.iterrows()]
    assert list(merged["verdict"]) == list(table.merge(ours, on=KEYS)["expected"])


REPLICATIONS = sorted(RESULTS.glob("*/replication.csv"))


def test_every_notebook_with_findings_has_a_committed_replication():
    assert {p.parent.name for p in REPLICATIONS} == {t.parent.name for t in RESULTS.glob("*/findings.csv")}


@pytest.mark.parametrize("path", REPLICATIONS, ids=lambda p: p.parent.name)
def test_committed_replications_recompute_from_the_fresh_seeds(path):
    table = pd.read_csv(path, keep_default_na=False, na_values=[""])
    fresh = pd.read_csv(path.parent / "replication" / "findings_seeds.csv")
    found = table[table["verdict"].isin(["supported", "contradicted", "equivalent"])]
    rows = []
    for _, row in found.iterrows():
        d = fresh[(fresh[KEYS] == row[KEYS]).all(axis=1)]["difference"].to_numpy(dtype=float)
        rows.append({**oracle(d, float(row["floor"]), float(table["confidence"].iloc[0])),
                     "a_mean": np.nan, "b_mean": np.nan, "chance": row["chance"], "floor": row["floor"]})
    ours = pd.DataFrame(rows, index=found.index)
    method = METHODS[table["adjust"].iloc[0]]
    ours["p_adjusted"] = adjusted(ours["p_value"], method)
    ours["p_equivalence_adjusted"] = adjusted(ours["p_equivalence"], method)
    for column in ("n", "mean_difference", "ci_low", "ci_high", "p_adjusted"):
        np.testing.assert_allclose(found[f"replication_{column}"], ours[column], rtol=0, atol=1e-12, err_msg=column)
    replicated = np.where(found["replication_verdict"] == found["verdict"], "yes", "no")
    assert list(found["replicated"]) == list(replicated)
    assert (table.loc[~table.index.isin(found.index), "replicated"].isna()).all()
