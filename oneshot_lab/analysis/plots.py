"""Seaborn figures from tidy tables (one row per observation), organised by what they show."""

from __future__ import annotations

from functools import partial
from typing import Any, Callable, Iterable, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D

from ..util import checks
from .stats import interval

DENSE_SHARED = ("none", "dense")  # facet values of dense rows that mean "the same dense model in every facet"


def _axes(ax: plt.Axes | None, size: tuple[float, float] | None = (6.5, 4.0)) -> plt.Axes:
    """`ax`, or the axes of a new figure (of matplotlib's default size if `size` is None)."""
    return ax if ax is not None else plt.subplots(figsize=size)[1]


def _require(frame: pd.DataFrame, columns: Iterable[str | None], what: str, source: str = "") -> None:
    """Raise a ValueError unless `frame` is a DataFrame with the columns (None skipped)."""
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"{what} draws a tidy pandas DataFrame, got {type(frame).__name__}")
    missing = sorted({c for c in columns if c is not None} - set(frame.columns))
    if missing:
        raise ValueError(f"{what} needs columns {missing}{f' (see {source})' if source else ''}; "
                         f"it has {list(frame.columns)}")


def _errorbar(confidence: float) -> Callable[[Sequence[float]], tuple[float, float]]:
    """A seaborn errorbar callable: the Student-t interval of the values at `confidence`."""
    return partial(interval, confidence=confidence)


def _band(frame: pd.DataFrame, by: Sequence[str | None], y: str, confidence: float) -> str:
    """'band: 95% t-interval over seeds (n=…)', n the observations per plotted point (a range if they differ)."""
    counts = frame.groupby([c for c in by if c is not None], dropna=False)[y].count()
    low, high = (int(counts.min()), int(counts.max())) if len(counts) else (0, 0)
    return f"band: {100 * confidence:g}% t-interval over seeds (n={low if low == high else f'{low}–{high}'})"


def _dense_line(ax: plt.Axes, values: pd.Series, confidence: float) -> None:
    """The dense model on `ax`: a dashed line at the mean of `values`, a grey band for its t-interval."""
    values = values.dropna()
    if values.empty:
        return
    mean, (low, high) = float(values.mean()), interval(values, confidence)
    ax.axhline(mean, color="black", linestyle="--", linewidth=1, label=f"dense ({mean:.3f})")
    if high > low:
        ax.axhspan(low, high, color="black", alpha=0.08, linewidth=0, label="dense band")


# --- accuracy against sparsity -------------------------------------------------------------------------------------

def baseline_kind(method: pd.Series) -> pd.Series:
    """'magnitude baseline', 'random baseline' or 'candidate' per method name ('criterion/scope')."""
    family = method.astype(str).str.split("/").str[0]
    return family.map({"magnitude": "magnitude baseline", "random": "random baseline"}).fillna("candidate")


def _compression(sparsity: Any) -> np.ndarray:
    """Compression ratio 1 / (1 - sparsity)."""
    return 1.0 / np.clip(1.0 - np.asarray(sparsity, dtype=float), 1e-12, None)


def _log2_compression(sparsity: Any) -> np.ndarray:
    """log2 of the compression ratio: the x coordinate of the log-compression scale."""
    return np.log2(_compression(sparsity))


def _from_log2_compression(value: Any) -> np.ndarray:
    """Sparsity at log2 compression `value` (inverse of `_log2_compression`)."""
    return 1.0 - 1.0 / np.clip(2.0 ** np.asarray(value, dtype=float), 1e-12, None)


def _log_compression_axis(ax: plt.Axes, sparsities: Sequence[float], top: bool) -> None:
    """Log-compression x scale with sparsity ticks; with `top`, a compression-ratio axis above."""
    ticks = sorted(sparsities)
    ends = _log2_compression([ticks[0], ticks[-1]])
    for axis in [ax, ax.twiny()] if top else [ax]:
        axis.set_xscale("function", functions=(_log2_compression, _from_log2_compression))
        axis.set_xlim(_from_log2_compression(ends[0] - 0.3), _from_log2_compression(ends[1] + 0.3))
        labels = [f"{s:g}" for s in ticks] if axis is ax else [f"{c:.3g}×" for c in _compression(ticks)]
        axis.set_xticks(ticks, labels)
        axis.minorticks_off()
        if axis is not ax:
            axis.set_xlabel("compression ratio (log scale)")


def _legend(grid: sns.FacetGrid, extra: dict[str, Any], note: str, size: dict[str, Any]) -> None:
    """Replace the grid's legend by one with its entries, `extra` and `note` in the title."""
    entries, title = {}, ""
    if grid.legend is not None:
        entries = dict(zip([t.get_text() for t in grid.legend.texts], grid.legend.legend_handles))
        title = grid.legend.get_title().get_text()
        grid.legend.remove()
        rows, cols = grid.axes.shape  # undo the width relplot's legend added, as the new legend adds its own
        grid.figure.set_size_inches(cols * size["height"] * size["aspect"], rows * size["height"])
    entries.update(extra)
    grid.add_legend(legend_data=entries, label_order=list(entries), title=f"{title}\n{note}" if title else note,
                    adjust_subtitles=True)


def accuracy_vs_sparsity(metrics: pd.DataFrame, y: str = "test_accuracy", hue: str | None = "method",
                         style: str | None = None, col: str | None = None, row: str | None = None,
                         stage: str | Sequence[str] | None = None, log_compression: bool = False,
                         confidence: float = 0.95, title: str = "", **relplot_kws: Any) -> sns.FacetGrid:
    """`y` against sparsity, a facet per `col` x `row`, mean and t-interval band over seeds; dense dashed in each.

    Rows with stage 'dense' are the unpruned model; in a facet they are those whose facet value is the
    facet's, or 'none', 'dense' or missing. `style="kind"` marks the magnitude and random baselines (the
    column is derived from `method` when absent). Extra keywords go to `seaborn.relplot`.
    """
    derive_kind = style == "kind" and "kind" not in metrics.columns
    _require(metrics, ["sparsity", "stage", y, hue, "method" if derive_kind else style, col, row], "metrics")
    dense = metrics[metrics["stage"] == "dense"]
    pruned = metrics[metrics["stage"] != "dense"]
    if stage is not None:
        stages = [stage] if isinstance(stage, str) else list(stage)
        pruned = pruned[pruned["stage"].isin(stages)]
        if pruned.empty:
            raise ValueError(f"no rows of stage {', '.join(stages)}; stages: {sorted(metrics['stage'].unique())}")
    if pruned.empty:
        raise ValueError("metrics has no pruned rows (stage other than 'dense'): nothing to plot")
    if derive_kind:
        pruned = pruned.assign(kind=baseline_kind(pruned["method"]))
    if style == "kind":
        present, order = set(pruned["kind"]), ("candidate", "magnitude baseline", "random baseline")
        relplot_kws.setdefault("style_order", [k for k in order if k in present] + sorted(present - set(order)))
    relplot_kws = {"height": 4.0, "aspect": 1.4, "marker": "o", **relplot_kws}
    grid = sns.relplot(data=pruned, kind="line", x="sparsity", y=y, hue=hue, style=style, col=col, row=row,
                       errorbar=_errorbar(confidence), **relplot_kws)
    facets = grid.axes_dict.items() if (row or col) else [(None, grid.ax)]
    for name, ax in facets:
        names = dict(zip([v for v in (row, col) if v], name if row and col else (name,)))
        keep = np.ones(len(dense), dtype=bool)
        for var, value in names.items():
            keep &= ((dense[var] == value) | dense[var].isna() | dense[var].astype(str).isin(DENSE_SHARED)).to_numpy()
        _dense_line(ax, dense.loc[keep, y], confidence)
        if log_compression:
            _log_compression_axis(ax, pruned["sparsity"].unique(), top=any(ax is a for a in grid.axes[0]))
    grid.set_axis_labels("sparsity (fraction of prunable weights removed)", y.replace("_", " "))
    extra = {"dense (unpruned)": Line2D([], [], color="black", linestyle="--", linewidth=1)} if len(dense) else {}
    _legend(grid, extra, _band(pruned, ["sparsity", hue, style, col, row], y, confidence), relplot_kws)
    if title:
        grid.figure.suptitle(title)
    grid.tight_layout()
    return grid


def training_curves(curves: pd.DataFrame, title: str = "") -> sns.FacetGrid:
    """A `History.frame()`: training loss, and accuracy of every split, against epochs (one panel each)."""
    _require(curves, ["epoch", "split", "loss", "accuracy"], "training_curves", "History.frame")
    if curves.empty:
        raise ValueError("training_curves got an empty history: nothing to plot")
    long = curves.melt(id_vars=["epoch", "split"], value_vars=["loss", "accuracy"], var_name="metric")
    long = long[(long["metric"] == "accuracy") | (long["split"] == "train")]
    grid = sns.relplot(data=long, x="epoch", y="value", hue="split", col="metric", kind="line",
                       facet_kws={"sharey": False}, height=3.5, aspect=1.4)
    grid.set_titles("{col_name}")
    grid.figure.suptitle(title)
    return grid


# --- where the weights go ------------------------------------------------------------------------------------------

def layer_density(layers: pd.DataFrame, sparsity: float, hue: str = "method",
                  ax: plt.Axes | None = None) -> plt.Axes:
    """Per-layer density of each method's mask at one sparsity; collapsed layers are marked."""
    ax = _axes(ax)
    at = layers[checks.same_fraction(layers["sparsity"], sparsity)]
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


# --- curvature and saliency ----------------------------------------------------------------------------------------

def _wide(values: pd.DataFrame, labels: Sequence[str]) -> pd.DataFrame:
    """`values_table` rows as one row per (parameter, entry) and one column per label (ValueError if one is absent)."""
    _require(values, ["label", "parameter", "entry", "value"], "values", "oneshot_lab.pruning.curvature.values_table")
    present = list(values["label"].unique())
    for label in labels:
        if label not in present:
            raise ValueError(f"values has no label {label!r}; it has: {', '.join(map(str, present))}")
    return values.pivot(index=["parameter", "entry"], columns="label", values="value").reset_index()


def curvature_scatter(values: pd.DataFrame, reference: str, title: str = "") -> sns.FacetGrid:
    """A log-log panel per estimate against the `reference` diagonal; negative estimates red at |value|."""
    wide = _wide(values, [reference])
    others = [label for label in values["label"].unique() if label != reference]
    if not others:
        raise ValueError(f"values has only the reference {reference!r}: no estimate to compare")
    wide = wide[wide[reference] > 0]
    if wide.empty:
        raise ValueError(f"no positive {reference!r} entries among the sampled weights: nothing to draw on log axes")
    points = wide.rename(columns={reference: "exact"}).melt(id_vars=["parameter", "entry", "exact"], value_vars=others,
                                                            var_name="estimate", value_name="value")
    points = points[points["value"] != 0]
    signs = ("estimate > 0", "estimate < 0 (|·|)")
    points = points.assign(sign=np.where(points["value"] > 0, *signs), absolute=points["value"].abs())
    grid = sns.relplot(data=points, kind="scatter", x="exact", y="absolute", col="estimate", col_order=others,
                       hue="sign", hue_order=list(signs), palette=dict(zip(signs, ("tab:blue", "tab:red"))),
                       s=6, alpha=0.4, linewidth=0, height=3.6, aspect=1.0)
    grid.set(xscale="log", yscale="log")
    grid.set_titles("{col_name}")
    grid.set_axis_labels(f"{reference} diagonal (exact)", "estimated diagonal")
    ends = (float(points["exact"].min()), float(points["exact"].max()))
    for ax in grid.axes.flat:
        ax.axline((ends[0],) * 2, (ends[1],) * 2, color="black", linestyle="--", linewidth=0.8, label="y = x")
    grid.figure.suptitle(title or f"curvature estimates vs the {reference} diagonal")
    grid.tight_layout()
    return grid


def estimator_convergence(convergence: pd.DataFrame, y: str = "relative_error", ax: plt.Axes | None = None,
                          title: str = "Hutchinson: relative error of the diagonal vs probes") -> plt.Axes:
    """`y` against probes per parameter (log-log), with a ∝ 1/√probes guide from the median at the fewest probes."""
    _require(convergence, ["probes", "parameter", y], "convergence", "oneshot_lab.pruning.curvature.convergence")
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


def saliency_vs_magnitude(values: pd.DataFrame, criterion: str, ax: plt.Axes | None = None,
                          title: str = "") -> plt.Axes:
    """`criterion` score against the 'magnitude' score per weight of a `values_table`, log-log, a colour per layer."""
    points = _wide(values, ["magnitude", criterion])
    points = points[["parameter", "entry", "magnitude", criterion]].rename(columns={criterion: "saliency"})
    points = points[(points["magnitude"] > 0) & (points["saliency"] > 0)]
    if points.empty:
        raise ValueError(f"no weight has a positive magnitude and {criterion!r} score: nothing to draw on log axes")
    ax = _axes(ax, size=None)
    sns.scatterplot(data=points, x="magnitude", y="saliency", hue="parameter", s=6, alpha=0.5, linewidth=0, ax=ax)
    ax.set(xscale="log", yscale="log", xlabel="|w|", ylabel=f"{criterion} saliency  h w² / 2",
           title=title or f"{criterion} saliency vs magnitude, per layer")
    return ax


def calibration(calibration: pd.DataFrame, baseline: str | None = None) -> plt.Figure:
    """Measured (solid) and predicted (dashed) loss increase vs fraction deleted; measured vs predicted, log-log."""
    _require(calibration, ["label", "fraction", "measured", "predicted"], "calibration", "oneshot_lab.studies.obd_calibration.calibration")
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


# --- lottery tickets -----------------------------------------------------------------------------------------------

def ticket_curves(metrics: pd.DataFrame, y: str = "early_stop_test_accuracy", hue: str = "condition",
                  style: str | None = None, ax: plt.Axes | None = None, title: str = "",
                  confidence: float = 0.95) -> plt.Axes:
    """`y` against % of weights remaining (log x, sparser to the right), mean and t-interval band; dense dashed."""
    _require(metrics, ["condition", "weights_remaining", y, hue, style], "metrics")
    ax = _axes(ax)
    pruned = metrics[metrics["condition"] != "dense"]
    sns.lineplot(data=pruned, x="weights_remaining", y=y, hue=hue, style=style, marker="o",
                 errorbar=_errorbar(confidence), ax=ax)
    _dense_line(ax, metrics.loc[metrics["condition"] == "dense", y], confidence)
    ax.set_xscale("log")
    ax.invert_xaxis()
    ticks = sorted(set(round(v, 1) for v in metrics["weights_remaining"]))[::-1]
    ax.set_xticks(ticks[:: max(1, len(ticks) // 8)])
    ax.get_xaxis().set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.minorticks_off()
    ax.set_xlabel("% of prunable weights remaining (log scale)")
    ax.set_ylabel(y.replace("_", " "))
    ax.set_title(title)
    ax.legend(fontsize="small", title=_band(pruned, ["weights_remaining", hue, style], y, confidence))
    return ax


def instability(barriers: pd.DataFrame, split: str = "test", hue: str = "network",
                ax: plt.Axes | None = None, title: str = "", confidence: float = 0.95) -> plt.Axes:
    """Error barrier (percentage points) against the rewind iteration k; below ~2 points counts as stable."""
    _require(barriers, ["split", "rewind_iteration", "barrier", hue], "barriers", "oneshot_lab.studies.lottery.stability.instability")
    ax = _axes(ax)
    rows = barriers[barriers["split"] == split].assign(barrier_pct=lambda f: 100 * f["barrier"])
    sns.lineplot(data=rows, x="rewind_iteration", y="barrier_pct", hue=hue, marker="o",
                 errorbar=_errorbar(confidence), ax=ax)
    ax.axhline(2.0, color="grey", linestyle=":", linewidth=1, label="2-point threshold")
    ax.set_xlabel("rewind iteration k")
    ax.set_ylabel(f"error barrier on {split} (percentage points)")
    ax.set_title(title or "instability: two copies from iteration k, different data orders")
    ax.legend(fontsize="small", title=_band(rows, ["rewind_iteration", hue], "barrier_pct", confidence))
    return ax


def interpolation(path: pd.DataFrame, split: str = "test", hue: str = "rewind_iteration", style: str | None = "network",
                  ax: plt.Axes | None = None, title: str = "", confidence: float = 0.95) -> plt.Axes:
    """Error along the straight line between two trained copies (alpha 0 -> 1), one line per `hue`."""
    _require(path, ["split", "alpha", "error", hue], "path", "oneshot_lab.studies.lottery.stability.instability")
    ax = _axes(ax)
    rows = path[path["split"] == split].assign(error_pct=lambda f: 100 * f["error"])
    style = style if style in rows.columns and rows[style].nunique() > 1 else None
    sns.lineplot(data=rows, x="alpha", y="error_pct", hue=hue, style=style, marker=".",
                 errorbar=_errorbar(confidence), palette="viridis", ax=ax)
    ax.set_xlabel("interpolation alpha (0 = copy A, 1 = copy B)")
    ax.set_ylabel(f"{split} error (%)")
    ax.set_title(title or "linear interpolation between the two copies")
    note = _band(rows, ["alpha", hue, style], "error_pct", confidence)
    ax.legend(fontsize="small", title=note if style else f"{hue}\n{note}")
    return ax
