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


def findings_family(metrics: pd.DataFrame, examples: Mapping[str, int], classes: int = 10,
                    confidence: float = 0.95) -> findings.Family:
    """Notebook 05's claims as one family, each setting's floor `findings.dense_floor` on its own test split."""
    if not isinstance(metrics, pd.DataFrame) or "setting" not in metrics.columns:
        raise ValueError("metrics must be Comparison.metrics (a table with a setting column)")
    floors = {name: findings.dense_floor(metrics[metrics["setting"] == name], n) for name, n in examples.items()
              if name in set(metrics["setting"])}
    return findings.family(metrics, claims.second_order(metrics), confidence, floors, 1 / classes,
                           floor_by="setting")
