"""Optimal Brain Damage's quadratic model checked: predicted vs measured loss increase as weights are deleted."""

from __future__ import annotations

import copy
import dataclasses
from typing import Sequence

import pandas as pd
import torch
from torch import nn

from ..util import checks
from ..pruning import criteria
from ..core.data import sample
from ..core.masks import working_copy
from ..pruning.curvature import check_options, gradient
from ..pruning.curvature import diagonal as curvature_diagonal
from ..core.data import Dataset, Split
from ..core.masks import masks_from_scores, parameter
from ..core.model_checks import check_model
from ..training.train import evaluate


def calibration(model: nn.Module, dataset: Dataset, curvature: str, fractions: Sequence[float],
                order: dict[str, torch.Tensor] | None = None, samples: int | None = None, seed: int = 0,
                probes: int = 100, scope: str = "global", label: str = "") -> pd.DataFrame:
    """Predicted vs measured loss increase as the `fractions` of lowest-`order` weights are deleted.

    Everything is computed on the same examples by construction: `samples` training examples drawn with
    `seed` (None: the whole training split) give the `curvature` diagonal, the gradient and the loss
    whose increase is measured. predicted = sum of deleted OBD saliencies h_kk w_k^2 / 2 with the signed
    diagonal (the quadratic model, g = 0 assumed); gradient_term = sum of -g_k w_k over the deleted
    weights (the first-order term OBD drops). `order` defaults to the clamped OBD criteria.
    """
    fractions = checks.listing("fractions", fractions, checks.fraction)
    check_options(samples, 256, probes, seed)
    check_model(model, dataset)  # shared layers, tied weights, data the model cannot take: before any work
    x, y = sample(dataset, samples, seed)
    same = dataclasses.replace(dataset, train=Split(x, y))
    diagonal = curvature_diagonal(model, same, curvature, samples=None, probes=probes, seed=seed)
    predicted = criteria.obd_from_diagonal(model, diagonal, negative="signed")
    order = order if order is not None else criteria.obd_from_diagonal(model, diagonal, negative="clamp")
    clone = working_copy(model)
    grads = gradient(clone, same, split="train")
    first = {n: -grads[n] * parameter(clone, n).detach() for n in predicted}
    base = evaluate(clone, same, "train")["loss"]
    rows = []
    for fraction in fractions:
        masks = masks_from_scores(order, fraction, scope)
        deleted = {n: ~m for n, m in masks.items()}
        measured = evaluate(masks.apply(copy.deepcopy(clone)), same, "train")["loss"] - base
        rows.append({"label": label, "fraction": fraction, "deleted": int(sum(int(d.sum()) for d in deleted.values())),
                     "predicted": float(sum(predicted[n][d].sum() for n, d in deleted.items())),
                     "gradient_term": float(sum(first[n][d].sum() for n, d in deleted.items())),
                     "measured": measured, "base_loss": base, "examples": len(y)})
    return pd.DataFrame(rows)
