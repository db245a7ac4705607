"""Optimal Brain Damage's quadratic model checked: predicted vs measured loss increase as weights are deleted."""

from __future__ import annotations

import copy
from typing import Sequence

import pandas as pd
import torch
from torch import nn

from . import checks, saliency
from .curvature import Diagonal, gradient, working_copy
from .data import Dataset
from .prune import masks_from_scores, parameter
from .train import evaluate


def calibration(model: nn.Module, dataset: Dataset, diagonal: Diagonal, fractions: Sequence[float],
                order: dict[str, torch.Tensor] | None = None, scope: str = "global", split: str = "train",
                label: str = "") -> pd.DataFrame:
    """Predicted vs measured loss increase on `split` as the `fractions` of lowest-`order` weights are deleted.

    predicted = sum of deleted OBD saliencies h_kk w_k^2 / 2 with the signed diagonal (the quadratic
    model, g = 0 assumed); gradient_term = sum of -g_k w_k over the deleted weights (the first-order
    term OBD drops). `order` defaults to the clamped OBD saliency of `diagonal`.
    """
    fractions = checks.listing("fractions", fractions, checks.fraction)
    predicted = saliency.obd_from_diagonal(model, diagonal, negative="signed")
    order = order if order is not None else saliency.obd_from_diagonal(model, diagonal, negative="clamp")
    clone = working_copy(model)
    grads = gradient(clone, dataset, split=split)
    first = {n: -grads[n] * parameter(clone, n).detach() for n in predicted}
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
