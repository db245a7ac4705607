"""Seaborn figures from tidy result tables (one row per observation)."""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
import torch


def _axes(ax: plt.Axes | None, size: tuple[float, float] | None = (6.5, 4.0)) -> plt.Axes:
    """`ax`, or the axes of a new figure (of matplotlib's default size if `size` is None)."""
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
        ends = _log2_compression([ticks[0], ticks[-1]])
        ax.set_xlim(_from_log2_compression(ends[0] - 0.3), _from_log2_compression(ends[1] + 0.3))
        ax.set_xticks(ticks, [f"{s:g}" for s in ticks])
        ax.minorticks_off()
        top = ax.twiny()  # same scale and limits as the sparsity axis, labelled with compression ratios
        top.set_xscale("function", functions=(_log2_compression, _from_log2_compression))
        top.set_xlim(ax.get_xlim())
        top.set_xticks(ticks, [f"{c:.3g}×" for c in _compression(ticks)])
        top.minorticks_off()
        top.set_xlabel("compression ratio (log scale)")
    ax.set_xlabel("sparsity (fraction of prunable weights removed)")
    ax.set_ylabel(y.replace("_", " "))
    ax.set_title(title)
    ax.legend(fontsize="small")
    return ax


# --- figures of notebook 02 (Optimal Brain Damage) ---------------------------------------------------------------

def _flat(values: dict, names: Sequence[str], what: str) -> torch.Tensor:
    """The tensors of `values` for `names`, flattened and concatenated (ValueError naming what is missing)."""
    missing = [n for n in names if n not in values]
    if missing:
        raise ValueError(f"{what} has no entry for {', '.join(missing)}; it has: {', '.join(values)}")
    return torch.cat([values[n].detach().flatten() for n in names])


def curvature_scatter(diagonals: dict[str, dict[str, torch.Tensor]], reference: str, names: Sequence[str],
                      max_points: int = 4000, seed: int = 0, title: str = "") -> plt.Figure:
    """A log-log panel per estimate vs the `reference` diagonal (random `max_points` of `names`); negatives red."""
    if reference not in diagonals:
        raise ValueError(f"reference {reference!r} is not among the diagonals: {', '.join(diagonals)}")
    if not names:
        raise ValueError("names is empty: give the parameters to plot (e.g. oneshot_lab.prunable(model))")
    flat = {k: _flat(d, names, f"diagonal {k!r}") for k, d in diagonals.items()}
    pick = torch.randperm(len(flat[reference]), generator=torch.Generator().manual_seed(seed))[:max_points]
    pick = pick[flat[reference][pick] > 0]
    if len(pick) == 0:
        raise ValueError(f"no positive {reference!r} entries among the sampled weights: nothing to draw on log axes")
    others = [k for k in diagonals if k != reference]
    panels = max(1, len(others))
    fig, axes = plt.subplots(1, panels, figsize=(3.6 * panels, 3.8), squeeze=False, sharex=True, sharey=True)
    for ax, kind in zip(axes[0], others):
        exact, estimate = flat[reference][pick], flat[kind][pick]
        ax.scatter(exact[estimate > 0], estimate[estimate > 0], s=4, alpha=0.4, label="estimate > 0")
        ax.scatter(exact[estimate < 0], -estimate[estimate < 0], s=4, alpha=0.4, color="tab:red",
                   label="estimate < 0 (|·|)")
        ax.axline((float(exact.min()),) * 2, (float(exact.max()),) * 2, color="black", linestyle="--", linewidth=0.8)
        ax.set(xscale="log", yscale="log", xlabel=f"{reference} diagonal (exact)", title=kind)
    axes[0, 0].set_ylabel("estimated diagonal")
    if others:
        axes[0, -1].legend(fontsize="x-small", loc="lower right", markerscale=3)
    fig.suptitle(title or f"curvature estimates vs the {reference} diagonal")
    fig.tight_layout()
    return fig


def estimator_convergence(convergence: pd.DataFrame, y: str = "relative_error", ax: plt.Axes | None = None,
                          title: str = "Hutchinson: relative error of the diagonal vs probes") -> plt.Axes:
    """`y` against probes per parameter (log-log), with a ∝ 1/√probes guide from the median at the fewest probes."""
    missing = {"probes", "parameter", y} - set(convergence.columns)
    if missing:
        raise ValueError(f"convergence needs columns {sorted(missing)} (see oneshot_lab.curvature.convergence); "
                         f"it has {list(convergence.columns)}")
    if convergence.empty:
        raise ValueError("convergence is empty: nothing to plot")
    ax = _axes(ax, size=None)
    sns.lineplot(data=convergence, x="probes", y=y, hue="parameter", marker="o", ax=ax)
    counts = sorted(convergence["probes"].unique())
    start = convergence[convergence["probes"] == counts[0]][y].median()
    ax.plot(counts, [start * (counts[0] / p) ** 0.5 for p in counts], "k:", label="∝ 1/√probes")
    ax.legend(fontsize="small")
    ax.set(xscale="log", yscale="log", title=title, ylabel="relative L2 error vs exact diagonal")
    return ax


def saliency_vs_magnitude(scores: dict[str, dict[str, torch.Tensor]], criterion: str,
                          names: Sequence[str] | None = None, max_points: int = 3000,
                          ax: plt.Axes | None = None, title: str = "") -> plt.Axes:
    """`criterion` score against `scores['magnitude']`, log-log, one colour per layer (first `max_points` of each)."""
    for key in ("magnitude", criterion):
        if key not in scores:
            raise ValueError(f"scores has no {key!r} entry; it has: {', '.join(scores)}")
    names = list(names) if names is not None else [n for n in scores[criterion] if n in scores["magnitude"]]
    magnitude = {n: _flat(scores["magnitude"], [n], "scores['magnitude']")[:max_points] for n in names}
    saliency = {n: _flat(scores[criterion], [n], f"scores[{criterion!r}]")[:max_points] for n in names}
    points = pd.DataFrame([{"layer": n, "magnitude": float(m), "saliency": float(s)}
                           for n in names for m, s in zip(magnitude[n], saliency[n])])
    points = points[(points.magnitude > 0) & (points.saliency > 0)] if not points.empty else points
    if points.empty:
        raise ValueError(f"no weight has a positive magnitude and {criterion!r} score: nothing to draw on log axes")
    ax = _axes(ax, size=None)
    sns.scatterplot(data=points, x="magnitude", y="saliency", hue="layer", s=6, alpha=0.5, linewidth=0, ax=ax)
    ax.set(xscale="log", yscale="log", xlabel="|w|", ylabel=f"{criterion} saliency  h w² / 2",
           title=title or f"{criterion} saliency vs magnitude, per layer")
    return ax


def calibration(calibration: pd.DataFrame, baseline: str | None = None) -> plt.Figure:
    """Measured (solid) and predicted (dashed) loss increase vs fraction deleted; measured vs predicted, log-log."""
    missing = {"label", "fraction", "measured", "predicted"} - set(calibration.columns)
    if missing:
        raise ValueError(f"calibration needs columns {sorted(missing)} (see oneshot_lab.obd.calibration); "
                         f"it has {list(calibration.columns)}")
    labels = list(calibration["label"].unique())
    baseline = labels[-1] if baseline is None and labels else baseline
    if baseline not in labels:
        raise ValueError(f"baseline {baseline!r} is not a label of calibration: {', '.join(map(str, labels))}")
    others = [label for label in labels if label != baseline]
    palette = {**dict(zip(others, sns.color_palette("tab10", len(others)))), baseline: (0.5, 0.5, 0.5)}
    positive = calibration[calibration["predicted"] > 0]
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
    sns.lineplot(data=calibration, x="fraction", y="measured", hue="label", palette=palette, marker="o", ax=axes[0])
    sns.lineplot(data=positive, x="fraction", y="predicted", hue="label", palette=palette, linestyle="--",
                 legend=False, ax=axes[0])
    axes[0].set(yscale="log", xlabel="fraction of weights deleted (lowest score first)",
                ylabel="training loss increase", title="measured (solid) and predicted (dashed)")
    sns.scatterplot(data=positive, x="predicted", y="measured", hue="label", palette=palette, size="fraction",
                    legend=False, ax=axes[1])
    ends = [positive[["predicted", "measured"]].min().min(), positive[["predicted", "measured"]].max().max()]
    axes[1].plot(ends, ends, "k--", linewidth=0.8, label="perfect prediction")
    axes[1].set(xscale="log", yscale="log", xlabel="predicted increase (sum of deleted saliencies)",
                ylabel="measured increase", title="calibration (marker size = fraction deleted)")
    axes[1].legend(loc="upper left", fontsize="small")
    axes[0].legend(fontsize="small")
    fig.tight_layout()
    return fig


def accuracy_grid(metrics: pd.DataFrame, y: str = "test_accuracy", stages: Sequence[str] = ("one_shot", "finetuned"),
                  scopes: Sequence[str] = ("global", "layer"), hue: str = "criterion", title: str = "") -> plt.Figure:
    """`accuracy_vs_sparsity` per (stage row, scope column), dense in every panel, one shared legend on the right."""
    missing = {"stage", "scope", "sparsity", hue, y} - set(metrics.columns)
    if missing:
        raise ValueError(f"metrics needs columns {sorted(missing)}; it has {list(metrics.columns)}")
    absent = ([s for s in stages if s not in set(metrics["stage"])]
              + [s for s in scopes if s not in set(metrics["scope"])])
    if absent:
        raise ValueError(f"metrics has no rows for {', '.join(absent)}: stages {sorted(metrics['stage'].unique())}, "
                         f"scopes {sorted(metrics['scope'].unique())}")
    fig, axes = plt.subplots(len(stages), len(scopes), figsize=(6.5 * len(scopes), 4.5 * len(stages)), sharey=True,
                             squeeze=False)
    for row, stage in enumerate(stages):
        for col, scope in enumerate(scopes):
            accuracy_vs_sparsity(metrics[metrics["scope"].isin([scope, "none"])], y=y, stage=stage, hue=hue,
                                 ax=axes[row, col], title=f"{stage.replace('_', '-')}, {scope} scope")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    for ax in axes.flat:
        ax.get_legend().remove()
    fig.legend(handles, labels, loc="center right", fontsize="small")
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0, 0.84, 1))
    return fig
