"""Seaborn figures from tidy result tables (one row per observation)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns


def _axes(ax: plt.Axes | None, size: tuple[float, float] = (6.5, 4.0)) -> plt.Axes:
    """`ax`, or the axes of a new figure."""
    return ax if ax is not None else plt.subplots(figsize=size)[1]


def accuracy_vs_sparsity(metrics: pd.DataFrame, y: str = "test_accuracy", stage: str | None = None,
                         hue: str = "method", ax: plt.Axes | None = None, title: str = "") -> plt.Axes:
    """`y` against sparsity per method (mean and standard-deviation band over seeds), dense as a dashed line."""
    ax = _axes(ax)
    dense = metrics[metrics["stage"] == "dense"]
    pruned = metrics[metrics["stage"] != "dense"]
    if stage is not None:
        pruned = pruned[pruned["stage"] == stage]
    multi_stage = stage is None and pruned["stage"].nunique() > 1
    sns.lineplot(data=pruned, x="sparsity", y=y, hue=hue, style="stage" if multi_stage else None,
                 marker="o", errorbar="sd", ax=ax)
    if not dense.empty:
        ax.axhline(dense[y].mean(), color="black", linestyle="--", linewidth=1,
                   label=f"dense ({dense[y].mean():.3f})")
    ax.set_xlabel("sparsity (fraction of prunable weights removed)")
    ax.set_ylabel(y.replace("_", " "))
    ax.set_title(title)
    ax.legend(fontsize="small")
    return ax


def layer_density(layers: pd.DataFrame, sparsity: float, hue: str = "method",
                  ax: plt.Axes | None = None) -> plt.Axes:
    """Per-layer density of each method's mask at one sparsity; collapsed layers are marked."""
    ax = _axes(ax)
    at = layers[(layers["sparsity"] - sparsity).abs() < 1e-9]
    if at.empty:
        raise ValueError(f"no layer rows at sparsity {sparsity}; available: {sorted(layers['sparsity'].unique())}")
    sns.barplot(data=at, x="layer", y="density", hue=hue, errorbar=None, ax=ax)
    ax.axhline(1 - sparsity, color="black", linestyle=":", linewidth=1, label=f"uniform {1 - sparsity:.2f}")
    for row in at[at["collapsed"]].itertuples():
        ax.annotate("collapsed", (list(at["layer"].unique()).index(row.layer), 0), ha="center", va="bottom",
                    color="red", fontsize="small")
    ax.set_title(f"per-layer density at sparsity {sparsity:g}")
    ax.set_ylabel("density (fraction kept)")
    ax.tick_params(axis="x", rotation=30)
    ax.legend(fontsize="small")
    return ax
