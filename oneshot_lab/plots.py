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


def ticket_curves(metrics: pd.DataFrame, y: str = "early_stop_test_accuracy", hue: str = "condition",
                  style: str | None = None, ax: plt.Axes | None = None, title: str = "") -> plt.Axes:
    """`y` against % of weights remaining (log x, sparser to the right), mean and sd band over seeds; dense dashed."""
    ax = _axes(ax)
    dense = metrics[metrics["condition"] == "dense"]
    pruned = metrics[metrics["condition"] != "dense"]
    sns.lineplot(data=pruned, x="weights_remaining", y=y, hue=hue, style=style, marker="o", errorbar="sd", ax=ax)
    if not dense.empty:
        ax.axhline(dense[y].mean(), color="black", linestyle="--", linewidth=1, label=f"dense ({dense[y].mean():.3g})")
    ax.set_xscale("log")
    ax.invert_xaxis()
    ticks = sorted(set(round(v, 1) for v in metrics["weights_remaining"]))[::-1]
    ax.set_xticks(ticks[:: max(1, len(ticks) // 8)])
    ax.get_xaxis().set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.minorticks_off()
    ax.set_xlabel("% of prunable weights remaining (log scale)")
    ax.set_ylabel(y.replace("_", " "))
    ax.set_title(title)
    ax.legend(fontsize="small")
    return ax


def instability(barriers: pd.DataFrame, split: str = "test", hue: str = "network",
                ax: plt.Axes | None = None, title: str = "") -> plt.Axes:
    """Error barrier (percentage points) against the rewind iteration k; below ~2 points counts as stable."""
    ax = _axes(ax)
    rows = barriers[barriers["split"] == split].assign(barrier_pct=lambda f: 100 * f["barrier"])
    sns.lineplot(data=rows, x="rewind_iteration", y="barrier_pct", hue=hue, marker="o", errorbar="sd", ax=ax)
    ax.axhline(2.0, color="grey", linestyle=":", linewidth=1, label="2-point threshold")
    ax.set_xlabel("rewind iteration k")
    ax.set_ylabel(f"error barrier on {split} (percentage points)")
    ax.set_title(title or "instability: two copies from iteration k, different data orders")
    ax.legend(fontsize="small")
    return ax


def interpolation(path: pd.DataFrame, split: str = "test", hue: str = "rewind_iteration", style: str | None = "network",
                  ax: plt.Axes | None = None, title: str = "") -> plt.Axes:
    """Error along the straight line between two trained copies (alpha 0 -> 1), one line per `hue`."""
    ax = _axes(ax)
    rows = path[path["split"] == split].assign(error_pct=lambda f: 100 * f["error"])
    style = style if style in rows.columns and rows[style].nunique() > 1 else None
    sns.lineplot(data=rows, x="alpha", y="error_pct", hue=hue, style=style, marker=".", errorbar="sd",
                 palette="viridis", ax=ax)
    ax.set_xlabel("interpolation alpha (0 = copy A, 1 = copy B)")
    ax.set_ylabel(f"{split} error (%)")
    ax.set_title(title or "linear interpolation between the two copies")
    ax.legend(fontsize="small", title=None if style else hue)
    return ax


def _compression(sparsity):
    """Compression ratio 1 / (1 - sparsity) (array-friendly)."""
    import numpy as np

    return 1.0 / np.clip(1.0 - np.asarray(sparsity, dtype=float), 1e-12, None)


def _sparsity(compression):
    """Sparsity 1 - 1 / compression (array-friendly)."""
    import numpy as np

    return 1.0 - 1.0 / np.clip(np.asarray(compression, dtype=float), 1e-12, None)


def _log2_compression(sparsity):
    """log2 of the compression ratio: the x coordinate of the log-compression scale."""
    import numpy as np

    return np.log2(_compression(sparsity))


def _from_log2_compression(value):
    """Inverse of `_log2_compression`."""
    return _sparsity(2.0 ** value)


def sweep_curves(metrics: pd.DataFrame, y: str = "test_accuracy", stage: str | None = None,
                 log_compression: bool = True, ax: plt.Axes | None = None, title: str = "") -> plt.Axes:
    """`y` against sparsity per method over a sweep: mean and sd band over seeds, dense mean +- sd band,
    random / magnitude baselines dashed; with `log_compression` a log-scale compression-ratio axis on top."""
    ax = _axes(ax)
    dense = metrics[metrics["stage"] == "dense"]
    pruned = metrics[metrics["stage"] != "dense"]
    if stage is not None:
        pruned = pruned[pruned["stage"] == stage]
    family = pruned["method"].str.split("/").str[0]
    pruned = pruned.assign(kind=family.where(family.isin(["random", "magnitude"]), "candidate")
                           .replace({"random": "random baseline", "magnitude": "magnitude baseline"}))
    sns.lineplot(data=pruned, x="sparsity", y=y, hue="method", style="kind", marker="o", errorbar="sd", ax=ax,
                 style_order=[k for k in ("candidate", "magnitude baseline", "random baseline")
                              if k in set(pruned["kind"])])
    if not dense.empty:
        mean, sd = dense[y].mean(), dense[y].std() if len(dense) > 1 else 0.0
        ax.axhline(mean, color="black", linestyle="--", linewidth=1, label=f"dense ({mean:.3f} ± {sd:.3f})")
        ax.axhspan(mean - sd, mean + sd, color="black", alpha=0.08, linewidth=0)
    if log_compression:
        ax.set_xscale("function", functions=(_log2_compression, _from_log2_compression))
        ticks = sorted(pruned["sparsity"].unique())
        ax.set_xticks(ticks, [f"{s:g}" for s in ticks])
        top = ax.secondary_xaxis("top", functions=(_compression, _sparsity))
        top.set_xticks(_compression(ticks), [f"{c:.3g}×" for c in _compression(ticks)])
        top.set_xlabel("compression ratio (log scale)")
    ax.set_xlabel("sparsity (fraction of prunable weights removed)")
    ax.set_ylabel(y.replace("_", " "))
    ax.set_title(title)
    ax.legend(fontsize="small")
    return ax
