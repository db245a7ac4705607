"""Layer collapse at initialisation: where each method empties a layer or disconnects the network, as a table and a
plot, from the `collapse` table of `studies.at_init.run`."""

from __future__ import annotations

import pandas as pd
import seaborn as sns

COLUMNS = ["method", "layer", "sparsity", "density", "collapsed", "connected"]


def check(collapse: pd.DataFrame) -> pd.DataFrame:
    """`collapse` if it is the study's collapse table, else a one-line ValueError naming what is missing."""
    if not isinstance(collapse, pd.DataFrame):
        raise ValueError(f"collapse must be the DataFrame studies.at_init.run returns, got {type(collapse).__name__}")
    missing = [c for c in COLUMNS if c not in collapse.columns]
    if missing:
        raise ValueError(f"the collapse table lacks column(s) {missing}; it has {', '.join(map(str, collapse.columns))}")
    return collapse


def points(collapse: pd.DataFrame) -> pd.DataFrame:
    """Per method and layer: the lowest scanned sparsity at which the layer is empty in some seed (NaN: never in the
    scan), and per method the highest scanned sparsity at which every seed keeps every layer and an input-to-output
    path (SynFlow's maximal critical compression, read on the scanned grid)."""
    check(collapse)
    table = collapse[["method", "layer"]].drop_duplicates().reset_index(drop=True)
    empty = collapse[collapse.collapsed].groupby(["method", "layer"], sort=False).sparsity.min()
    table["collapses_at"] = [empty.get((m, layer), float("nan")) for m, layer in zip(table.method, table.layer)]
    state = collapse.groupby(["method", "sparsity"]).agg(collapsed=("collapsed", "any"), connected=("connected", "all"))
    broken = state[state.collapsed | ~state.connected].reset_index().groupby("method").sparsity.min()
    intact = state.reset_index().groupby("method").apply(
        lambda g: g.sparsity[g.sparsity < broken.get(g.name, float("inf"))].max(), include_groups=False)
    table["max_intact_sparsity"] = table.method.map(intact)
    return table


def plot(collapse: pd.DataFrame, height: float = 3.2) -> sns.FacetGrid:
    """Per-layer density (mean over seeds) against the weights remaining, one panel per method, log axes (sparser to
    the right): a layer collapses where its line ends, before the right edge."""
    check(collapse)
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
