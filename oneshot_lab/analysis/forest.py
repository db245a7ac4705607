"""Forest plots of findings: each claim's mean paired difference with its interval, coloured by verdict."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

COLOURS = {"supported": "tab:green", "contradicted": "tab:red", "equivalent": "tab:blue", "inconclusive": "tab:gray",
           "both at chance": "tab:olive", "too few seeds": "lightgray"}


def plot(findings: pd.DataFrame, title: str = "", ax: plt.Axes | None = None) -> plt.Axes:
    """One row per (claim, setting): the point is the mean paired difference a - b, the bar its interval."""
    needed = {"claim", "setting", "mean_difference", "ci_low", "ci_high", "verdict"}
    if not isinstance(findings, pd.DataFrame) or not needed <= set(findings.columns):
        raise ValueError(f"plot needs the table findings.evaluate returns (columns {sorted(needed)})")
    if findings.empty:
        raise ValueError("the findings table is empty: nothing to plot")
    rows = findings.iloc[::-1].reset_index(drop=True)
    if ax is None:
        _, ax = plt.subplots(figsize=(8.0, 0.32 * len(rows) + 1.2))
    for y, row in rows.iterrows():
        colour = COLOURS.get(row["verdict"], "black")
        ax.plot([row["ci_low"], row["ci_high"]], [y, y], color=colour, lw=2)
        ax.plot(row["mean_difference"], y, "o", color=colour)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(range(len(rows)), [f"{c} | {s}" for c, s in zip(rows["claim"], rows["setting"])], fontsize=8)
    confidence = findings["confidence"].iloc[0] if "confidence" in findings.columns else None
    ax.set_xlabel("mean paired difference a - b" + (f" with its {confidence:.0%} Student-t interval"
                                                   if confidence is not None else ""))
    handles = [plt.Line2D([], [], color=c, marker="o", lw=2, label=v) for v, c in COLOURS.items()
               if v in set(findings["verdict"])]
    ax.legend(handles=handles, loc="best", fontsize=8)
    ax.set_title(title)
    return ax
