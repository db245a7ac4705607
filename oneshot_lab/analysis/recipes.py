"""Dense recipes chosen on validation: per grid point, mean and Student-t interval over seeds of the validation
and test accuracy, and the point with the best mean validation accuracy (test is reported, never used to choose)."""

from __future__ import annotations

import pandas as pd

from .stats import summarize

POINT = ["setting", "point", "recipe"]
ALL = "all settings"  # the setting label of the one recipe shared by several settings
TIE = 1e-9  # means of accuracies (multiples of 1 / examples) this close are equal: rounding, not a difference


def summary(rows: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Per (setting, point, recipe), in the order of `rows`: n, then mean, ci_low and ci_high of val_accuracy and
    of test_accuracy."""
    parts = []
    for split in ("val", "test"):
        table = summarize(rows, POINT, f"{split}_accuracy", confidence)[[*POINT, "n", "mean", "ci_low", "ci_high"]]
        parts.append(table.rename(columns={c: f"{split}_{c}" for c in ("mean", "ci_low", "ci_high")}))
    out = parts[0].merge(parts[1].drop(columns="n"), on=POINT)
    out["confidence"] = confidence
    return out


def choose(table: pd.DataFrame) -> pd.DataFrame:
    """Per setting, the `summary` row with the highest val_mean (a tie, within `TIE`: the earlier point); with
    several settings, also the point whose val_mean averaged over them is highest (setting 'all settings', no
    interval)."""
    missing = {*POINT, "val_mean", "test_mean"} - set(table.columns)
    if missing:
        raise ValueError(f"a recipe summary needs column(s) {sorted(missing)}; got {list(table.columns)}")
    if table.empty:
        raise ValueError("the recipe summary is empty: no grid point to choose from")
    ordered = table.sort_values("point", kind="stable")
    best = [first_best(ordered[ordered["setting"] == s]) for s in dict.fromkeys(table["setting"])]
    out = pd.DataFrame(best).reset_index(drop=True)
    if table["setting"].nunique() > 1:
        shared = table.groupby(["point", "recipe"], sort=True)[["val_mean", "test_mean"]].mean().reset_index()
        shared = shared[table.groupby("point")["setting"].nunique().reindex(shared["point"]).to_numpy()
                        == table["setting"].nunique()]  # only points every setting ran
        pick = first_best(shared)
        row = {"setting": ALL, "point": pick["point"], "recipe": pick["recipe"], "val_mean": pick["val_mean"],
               "test_mean": pick["test_mean"], **({"n": table["n"].min()} if "n" in table else {})}
        out = pd.concat([out, pd.DataFrame([row])], ignore_index=True)
    return out


def first_best(points: pd.DataFrame) -> pd.Series:
    """The first row of `points` whose val_mean is the highest (within `TIE`)."""
    return points[points["val_mean"] >= points["val_mean"].max() - TIE].iloc[0]
