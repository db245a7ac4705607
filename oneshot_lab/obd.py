"""Optimal Brain Damage procedures: iterative prune-retrain rounds, and predicted vs measured loss increase."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Sequence

import pandas as pd
import torch
from torch import nn

from . import saliency
from .curvature import Diagonal, gradient, working_copy
from .data import Dataset
from .experiment import Method, layer_rows, split_metrics
from .prune import _parameter, check_sparsity, masks_from_scores, Masks
from .train import TrainConfig, evaluate, fit


@dataclass
class IterativeResult:
    """The pruned and retrained model, its final masks, metrics per round and per-layer densities."""

    model: nn.Module
    masks: Masks
    metrics: pd.DataFrame
    layers: pd.DataFrame


def check_schedule(sparsities: Sequence[float]) -> list[float]:
    """`sparsities` as floats in [0, 1], non-empty and strictly increasing."""
    values = [check_sparsity(s) for s in sparsities]
    if not values or any(b <= a for a, b in zip(values, values[1:])):
        raise ValueError(f"sparsities must be a non-empty, strictly increasing list in [0, 1], got {list(sparsities)!r}")
    return values


def iterative(model: nn.Module, dataset: Dataset, sparsities: Sequence[float], retrain: TrainConfig,
              criterion: str = "obd_ggn", scope: str = "global", seed: int = 0,
              score_options: dict | None = None) -> IterativeResult:
    """LeCun's loop on a copy of `model`: score, prune to the next sparsity, retrain under the mask, repeat.

    Scores (and so the curvature) are recomputed on the retrained, masked model every round;
    pruned weights stay pruned. Metrics rows match `experiment.one_shot` with stage 'pruned'
    (just after deletion) and 'iterative' (after that round's retraining).
    """
    method = Method.parse(f"{criterion}/{scope}")
    targets = check_schedule(sparsities)
    label = f"iterative {method}"
    current = copy.deepcopy(model)
    masks = Masks.ones(current)
    metric_rows = [{"method": "dense", "criterion": "none", "scope": "none", "sparsity": 0.0, "density": 1.0,
                    "stage": "dense", "collapsed_layers": 0, "round": 0, **split_metrics(current, dataset)}]
    layer_table = []
    for round_, target in enumerate(targets, start=1):
        scores = saliency.compute(criterion, current, dataset, seed=seed, **(score_options or {}))
        masks = masks_from_scores(scores, target, scope, masks=masks)
        masks.apply(current)
        base = {"method": label, "criterion": criterion, "scope": scope, "sparsity": target,
                "density": masks.density(), "collapsed_layers": len(masks.collapsed_layers()), "round": round_}
        metric_rows.append({**base, "stage": "pruned", **split_metrics(current, dataset)})
        fit(current, dataset, retrain, masks=masks)
        metric_rows.append({**base, "stage": "iterative", **split_metrics(current, dataset)})
        layer_table += [{**row, "method": label} for row in layer_rows(masks, method, target)]
    return IterativeResult(current, masks, pd.DataFrame(metric_rows), pd.DataFrame(layer_table))


def calibration(model: nn.Module, dataset: Dataset, diagonal: Diagonal, fractions: Sequence[float],
                order: dict[str, torch.Tensor] | None = None, scope: str = "global", split: str = "train",
                label: str = "") -> pd.DataFrame:
    """Predicted vs measured loss increase on `split` as the `fractions` of lowest-`order` weights are deleted.

    predicted = sum of deleted OBD saliencies h_kk w_k^2 / 2 with the signed diagonal (the quadratic
    model, g = 0 assumed); gradient_term = sum of -g_k w_k over the deleted weights (the first-order
    term OBD drops). `order` defaults to the clamped OBD saliency of `diagonal`.
    """
    fractions = [check_sparsity(f) for f in fractions]
    if not fractions:
        raise ValueError("fractions is empty: give at least one deletion fraction in [0, 1]")
    predicted = saliency.obd_from_diagonal(model, diagonal, negative="signed")
    order = order if order is not None else saliency.obd_from_diagonal(model, diagonal, negative="clamp")
    clone = working_copy(model)
    grads = gradient(clone, dataset, split=split)
    first = {n: -grads[n] * _parameter(clone, n).detach() for n in predicted}
    base = evaluate(clone, dataset, split)["loss"]
    rows = []
    for fraction in fractions:
        masks = masks_from_scores(order, fraction, scope)
        deleted = {n: ~m for n, m in masks.items()}
        measured = evaluate(masks.apply(copy.deepcopy(clone)), dataset, split)["loss"] - base
        rows.append({"label": label, "fraction": fraction, "deleted": int(sum(int(d.sum()) for d in deleted.values())),
                     "predicted": float(sum(predicted[n][d].sum() for n, d in deleted.items())),
                     "gradient_term": float(sum(first[n][d].sum() for n, d in deleted.items())),
                     "measured": measured, "base_loss": base})
    return pd.DataFrame(rows)
