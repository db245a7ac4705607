"""What a pruning-at-initialisation study (notebook 07, `studies.at_init.run`) shows beyond the findings: where each
method empties a layer or disconnects the network, and each method's mask beside its sanity checks."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from . import plots

COLUMNS = ["method", "layer", "sparsity", "density", "collapsed", "connected"]
POINTS = ["method", "layer", "collapses_at", "max_intact_sparsity"]


def check(collapse: pd.DataFrame) -> pd.DataFrame:
    """`collapse` if it is the study's collapse table, else a one-line ValueError naming what is missing."""
    if not isinstance(collapse, pd.DataFrame):
        raise ValueError(f"collapse must be the DataFrame studies.at_init.run returns, got {type(collapse).__name__}")
    missing = [c for c in COLUMNS if c not in collapse.columns]
    if missing:
        raise ValueError(f"the collapse table lacks column(s) {missing}; it has {', '.join(map(str, collapse.columns))}")
    return collapse


def collapse_points(collapse: pd.DataFrame) -> pd.DataFrame:
    """Per method and layer: the lowest scanned sparsity at which the layer is empty in some seed (NaN: never in the
    scan), and per method the highest scanned sparsity at which every seed keeps every layer and an input-to-output
    path (SynFlow's maximal critical compression, read on the scanned grid; NaN if even the lowest fails)."""
    check(collapse)
    table = collapse[["method", "layer"]].drop_duplicates().reset_index(drop=True)
    empty = collapse[collapse.collapsed].groupby(["method", "layer"], sort=False).sparsity.min()
    table["collapses_at"] = [empty.get((m, layer), float("nan")) for m, layer in zip(table.method, table.layer)]
    state = collapse.groupby(["method", "sparsity"], as_index=False).agg(collapsed=("collapsed", "any"),
                                                                         connected=("connected", "all"))
    broken = state[state.collapsed | ~state.connected].groupby("method").sparsity.min()
    below = state[state.sparsity < state.method.map(broken).fillna(float("inf"))]
    table["max_intact_sparsity"] = table.method.map(below.groupby("method").sparsity.max())
    return table[POINTS]


def collapse_plot(collapse: pd.DataFrame, height: float = 3.2) -> sns.FacetGrid:
    """Per-layer density (mean over seeds) against the weights remaining, one panel per method, log axes (sparser to
    the right): a layer collapses where its line ends, before the right edge."""
    check(collapse)
    if collapse.empty:
        raise ValueError("the collapse table is empty: the study scanned no sparsity (collapse_sparsities)")
    kept = collapse[collapse.density > 0].assign(weights_remaining=lambda f: 100 * (1 - f.sparsity))
    grid = sns.relplot(data=kept, x="weights_remaining", y="density", hue="layer", col="method", kind="line",
                       marker="o", errorbar=None, height=height, aspect=1.1, col_wrap=min(3, collapse.method.nunique()))
    for ax in grid.axes.flat:
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.invert_xaxis()
    grid.set_axis_labels("% of prunable weights remaining (log)", "density of the layer (log)")
    grid.set_titles("{col_name}")
    grid.tight_layout()
    return grid


def sanity_checks(metrics: pd.DataFrame, methods: list[str], y: str = "test_accuracy") -> plt.Figure:
    """One panel per method: its mask beside its sanity checks (`condition`), `y` against weights remaining, with
    the dense network dashed (`plots.ticket_curves` per panel)."""
    missing = [m for m in methods if m not in set(metrics.get("method", ()))]
    if missing or not methods:
        raise ValueError(f"sanity_checks needs methods present in the metrics' method column, got {methods}")
    fig, axes = plt.subplots(1, len(methods), figsize=(5.2 * len(methods), 4.2), squeeze=False)
    for ax, method in zip(axes[0], methods):
        plots.ticket_curves(metrics[metrics.method.isin([method, "dense"])], y=y, hue="condition", ax=ax, title=method)
    fig.tight_layout()
    return fig
