"""The conclusions the README may state: findings significant after the family's adjustment, beyond the effect
floor and replicated on fresh seeds (`results/<notebook>/replication.csv`); everything else is open."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..analysis import findings

REPLICATION = "replication.csv"  # the discovery findings with their re-test on fresh seeds (`oneshot-lab replicate`)
NOTEBOOKS = ("01_magnitude_pruning", "02_obd_saliency", "03_lottery_ticket_rewinding", "04_sweep_report",
             "05_beyond_the_diagonal", "07_pruning_at_init")


KEYS = ["claim", "setting", "a", "b", "value"]


def replications(results: Path) -> dict[str, pd.DataFrame]:
    """The committed replication table of every notebook that has one, by notebook, with `held`: replicated among
    the re-tested findings AND given the same verdict by the fresh run's own family (its `findings.csv`, adjusted
    over all its claims), so a conclusion survives both ways of counting the comparisons."""
    out = {}
    for nb in NOTEBOOKS:
        if not (results / nb / REPLICATION).is_file():
            continue
        table = pd.read_csv(results / nb / REPLICATION)
        own = results / nb / "replication" / "findings.csv"
        fresh = pd.read_csv(own)[[*KEYS, "verdict"]].rename(columns={"verdict": "own_verdict"}) if own.is_file() \
            else pd.DataFrame(columns=[*KEYS, "own_verdict"])
        table = table.merge(fresh, on=KEYS, how="left")
        table["held"] = (table["replicated"] == "yes") & (table["own_verdict"] == table["verdict"])
        out[nb] = table
    return out


def funnel(table: pd.DataFrame) -> dict[str, int]:
    """How many findings of one family survive each step: raw p < alpha, adjusted p < alpha, beyond the floor
    (supported or contradicted) or equivalent, and replicated."""
    alpha = 1 - table["confidence"]
    return {"findings": len(table), "raw p < 0.05": int((table["p_value"] < alpha).sum()),
            "adjusted p < 0.05": int((table["p_adjusted"] < alpha).sum()),
            "beyond the floor": int(table["verdict"].isin(["supported", "contradicted"]).sum()),
            "equivalent": int((table["verdict"] == "equivalent").sum()),
            "replicated": int((table["replicated"] == "yes").sum()),
            "also in the fresh run's family": int(table["held"].sum()) if "held" in table else 0}


def funnel_table(results: Path) -> pd.DataFrame:
    """Per notebook, the findings left after each step (docs/results.md)."""
    return pd.DataFrame([{"notebook": nb, **funnel(table)} for nb, table in replications(results).items()])


def interval(mean: float, low: float, high: float) -> str:
    """'+0.012 [+0.004, +0.020]'."""
    return "—" if not np.isfinite(mean) else f"{mean:+.3f} [{low:+.3f}, {high:+.3f}]"


BARE = ("stage", "setting", "experiment", "method", "condition", "network", "split")  # keys whose value says it


def short(setting: str) -> str:
    """'stage=finetuned, sparsity=0.5' -> 'finetuned sparsity=0.5'; values of `BARE` keys alone."""
    parts = [part.split("=", 1) for part in str(setting).split(", ")]
    return " ".join(kv[-1] if len(kv) == 1 or kv[0] in BARE else f"{kv[0]}={kv[1]}" for kv in parts)


def conclusions(results: Path) -> tuple[pd.DataFrame, list[str]]:
    """The README's conclusions, one row per notebook: each claim with replicated findings, its verdict, in how
    many settings and the range of the discovery's mean differences; and per notebook how many findings stay
    open ('01: 12 of 40')."""
    rows, open_counts = [], []
    for nb, table in replications(results).items():
        held = table[table["held"]]
        parts = [f"{claim} ({verdict}) at {', '.join(map(short, group['setting']))}: "
                 + (f"{group['mean_difference'].min():+.3f} to {group['mean_difference'].max():+.3f}" if len(group) > 1
                    else interval(*group[['mean_difference', 'ci_low', 'ci_high']].iloc[0]))
                 for (claim, verdict), group in held.groupby(["claim", "verdict"], sort=False)]
        rows.append({"notebook": nb, "replicated conclusions": "; ".join(parts) or "none",
                     "open": f"{len(table) - len(held)} of {len(table)}"})
        open_counts.append(f"{nb[:2]}: {len(table) - len(held)} of {len(table)}")
    return pd.DataFrame(rows, columns=["notebook", "replicated conclusions", "open"]), open_counts


def replication_table(table: pd.DataFrame) -> pd.DataFrame:
    """One notebook's discovered findings beside their replication (docs/results.md)."""
    found = table[table["verdict"].isin(findings.DISCOVERED)]
    return pd.DataFrame({
        "claim": found["claim"], "setting": found["setting"],
        "discovery": [interval(*v) for v in zip(found["mean_difference"], found["ci_low"], found["ci_high"])],
        "verdict": found["verdict"],
        "fresh seeds": [interval(*v) for v in zip(found["replication_mean_difference"],
                                                  found["replication_ci_low"], found["replication_ci_high"])],
        "verdict on fresh seeds": found["replication_verdict"].fillna("not run"),
        "replicated": found["replicated"]})


def accuracy(mean: float, low: float, high: float) -> str:
    """'0.944 [0.916, 0.972]', or the mean alone when it has no interval."""
    return f"{mean:.3f}" if not np.isfinite(low) else f"{mean:.3f} [{low:.3f}, {high:.3f}]"


def recipes_table(results: Path) -> pd.DataFrame:
    """Per committed recipe search (`results/recipes/NN/`): the chosen recipe with its validation accuracy, beside
    the best validation accuracy among the other points of its grid (test accuracy never enters the choice)."""
    rows = []
    for folder in sorted(p for p in (results / "recipes").iterdir() if (p / "chosen.csv").is_file()):
        chosen, summary = pd.read_csv(folder / "chosen.csv"), pd.read_csv(folder / "summary.csv")
        for row in chosen.itertuples():
            grid = summary[summary["setting"] == row.setting] if row.setting in set(summary["setting"]) else None
            others = None if grid is None else grid[grid["point"] != row.point].nlargest(1, "val_mean")
            rows.append({"notebook": folder.name, "setting": row.setting, "chosen recipe": row.recipe,
                         "validation": accuracy(row.val_mean, row.val_ci_low, row.val_ci_high),
                         "best other point": "—" if others is None or others.empty else
                         f"{others['recipe'].iloc[0]}: {others['val_mean'].iloc[0]:.3f}",
                         "points x seeds": f"{summary['point'].nunique()} x {int(row.n)}"})
    return pd.DataFrame(rows)
