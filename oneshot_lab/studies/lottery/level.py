"""One level of iterative pruning (IMP): prune a fraction of the weights a mask still keeps, with any method of
the registry.

A level prunes round(rate * kept) of the entries the previous mask keeps: in every layer (scope 'layer'),
or over the pool of all layers (scope 'global'), a layer of `layer_rates` always on its own at its rate.
Entries already pruned stay pruned. Expressed as cumulative targets (the semantics of
`pruning.prune`), a group of n entries of which `kept` survive gets the target
sparsity (n - kept + round(rate * kept)) / n, which rounds back to exactly that count.
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from ...core.data import Dataset
from ...core.masks import Masks
from ...pruning.prune import prune, select, targets


def target(masks: Mapping[str, torch.Tensor], rate: float) -> float:
    """The cumulative sparsity of `masks` (one group) after pruning round(rate * kept) more of its entries."""
    kept = sum(int(m.sum()) for m in masks.values())
    total = sum(m.numel() for m in masks.values())
    target_pruned = total - (kept - round(rate * kept))
    # (total - k) / total * total rounds back to total - k exactly for any realistic layer size.
    return target_pruned / total if total else 0.0


def level_targets(masks: Masks, rate: float, scope: str = "layer",
                  layer_rates: Mapping[str, float] | None = None) -> tuple[dict[str, float], float]:
    """({layer: cumulative sparsity} of the layers pruned on their own, cumulative sparsity of the others' pool)."""
    layer_rates = dict(layer_rates or {})
    own = {n: target({n: masks[n]}, layer_rates.get(n, rate)) for n in masks if scope == "layer" or n in layer_rates}
    return own, target({n: m for n, m in masks.items() if n not in own}, rate)


def level_masks(scores: Mapping[str, torch.Tensor], masks: Masks, rate: float, scope: str = "layer",
                layer_rates: Mapping[str, float] | None = None) -> Masks:
    """Prune round(rate * kept) of the entries `masks` keeps by lowest `scores` (per layer, or over the global pool)."""
    own, pooled = level_targets(masks, rate, scope, layer_rates)
    return select(scores, masks, targets(masks, pooled, scope, own))


def next_masks(method: str, model: nn.Module, dataset: Dataset, masks: Masks, rate: float, scope: str,
               layer_rates: Mapping[str, float], seed: int, options: Mapping) -> Masks:
    """The next level's mask of `model` (trained under `masks`) by the registry method `method`.

    The method runs on `model` with `masks` as the entries already pruned and the level's cumulative targets,
    random scores and calibration samples drawn with `seed`; only its mask is kept, not any updated weights.
    """
    own, pooled = level_targets(masks, rate, scope, layer_rates)
    return prune(model, dataset, pooled, method, scope, masks=masks, seed=seed, layer_sparsities=own,
                 **options).masks
