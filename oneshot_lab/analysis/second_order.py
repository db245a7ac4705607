"""Tables read from a second-order comparison's records (`studies.second_order.Comparison`): the cost of each
method beside a plain backward pass, the reconstruction error of the layer-wise pruners, collapsed layers."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from . import claims, findings, stats


def cost_table(costs: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Per (setting, method): seconds to score or prune one mask, mean over seeds and sparsities with interval.

    A scoring method scores once for all sparsities, so its later sparsities cost only the masking; the
    `studies.second_order.REFERENCE` row is one plain forward + backward pass over the calibration samples.
    """
    missing = {"setting", "method", "prune_seconds"} - set(getattr(costs, "columns", ()))
    if missing:
        raise ValueError(f"costs lacks column(s) {sorted(missing)}: pass Comparison.costs")
    table = stats.summarize(costs, ["setting", "method"], "prune_seconds", confidence)
    return table[["setting", "method", "n", "mean", "ci_low", "ci_high", "text"]].rename(
        columns={"mean": "seconds", "text": "seconds (interval)"})


def collapsed(layers: pd.DataFrame) -> pd.DataFrame:
    """Per (setting, method, sparsity): how many (seed, layer) masks pruned a whole layer, and which layers."""
    missing = {"setting", "method", "sparsity", "layer", "collapsed", "seed"} - set(getattr(layers, "columns", ()))
    if missing:
        raise ValueError(f"layers lacks column(s) {sorted(missing)}: pass Comparison.layers")
    rows = []
    for (setting, method, sparsity), group in layers.groupby(["setting", "method", "sparsity"], sort=False):
        hit = group[group["collapsed"].astype(bool)]
        rows.append({"setting": setting, "method": method, "sparsity": sparsity,
                     "seeds": group["seed"].nunique(), "seeds_with_collapse": hit["seed"].nunique(),
                     "collapsed_masks": len(hit), "layers": ", ".join(dict.fromkeys(hit["layer"]))})
    return pd.DataFrame(rows, columns=["setting", "method", "sparsity", "seeds", "seeds_with_collapse",
                                       "collapsed_masks", "layers"])


def reconstruction(layers: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Per (setting, sparsity, layer, method) of the layer-wise pruners: reconstruction error over seeds."""
    missing = {"setting", "method", "sparsity", "layer", "reconstruction_error"} - set(getattr(layers, "columns", ()))
    if missing:
        raise ValueError(f"layers lacks column(s) {sorted(missing)}: pass Comparison.layers")
    rows = layers.assign(reconstruction_error=pd.to_numeric(layers["reconstruction_error"]))
    rows = rows.dropna(subset=["reconstruction_error"])
    return stats.summarize(rows, ["setting", "sparsity", "layer", "method"], "reconstruction_error", confidence)


def arm_densities(layers: pd.DataFrame) -> pd.DataFrame:
    """Per (setting, method, sparsity): each layer's fraction of weights kept, mean over seeds, as one text
    ('1.weight 16% · 3.weight 21% · 5.weight 60%'), so that a claim shows what each arm kept where."""
    missing = {"setting", "method", "sparsity", "layer", "density"} - set(getattr(layers, "columns", ()))
    if missing:
        raise ValueError(f"layers lacks column(s) {sorted(missing)}: pass Comparison.layers")
    mean = layers.groupby(["setting", "method", "sparsity", "layer"], sort=False)["density"].mean().reset_index()
    return (mean.groupby(["setting", "method", "sparsity"], sort=False)
            .apply(lambda g: " · ".join(f"{layer} {100 * d:.3g}%" for layer, d in zip(g["layer"], g["density"])),
                   include_groups=False)
            .rename("densities").reset_index())


def with_densities(table: pd.DataFrame, layers: pd.DataFrame) -> pd.DataFrame:
    """A findings table of notebook 05 with each arm's per-layer densities (`arm_densities`): density_a, density_b."""
    known = {(r.setting, r.method, round(float(r.sparsity), 9)): r.densities for r in arm_densities(layers).itertuples()}

    def lookup(setting: str, arm: str) -> str:
        parts = dict(part.split("=", 1) for part in setting.split(", "))
        return known.get((parts.get("setting"), arm, round(float(parts.get("sparsity", "nan")), 9)), "")

    return table.assign(density_a=[lookup(s, a) for s, a in zip(table["setting"], table["a"])],
                        density_b=[lookup(s, b) for s, b in zip(table["setting"], table["b"])])


def findings_family(metrics: pd.DataFrame, examples: Mapping[str, int], classes: int = 10,
                    confidence: float = 0.95) -> findings.Family:
    """Notebook 05's claims as one family, each setting's floor `findings.dense_floor` on its own test split."""
    if not isinstance(metrics, pd.DataFrame) or "setting" not in metrics.columns:
        raise ValueError("metrics must be Comparison.metrics (a table with a setting column)")
    floors = {name: findings.dense_floor(metrics[metrics["setting"] == name], n) for name, n in examples.items()
              if name in set(metrics["setting"])}
    return findings.family(metrics, claims.second_order(metrics), confidence, floors, 1 / classes,
                           floor_by="setting")
