"""One level of iterative pruning (IMP): prune a fraction of the weights a mask still keeps, with a registry
criterion's scores or with a weight-updating pruner of `obs`.

A level prunes round(rate * kept) of the entries the previous mask keeps: in every layer (scope 'layer'),
or over the pool of all layers (scope 'global'), a layer of `layer_rates` always on its own at its rate.
Entries already pruned stay pruned. Expressed as cumulative targets (the semantics of
`prune.masks_from_scores` and `updating.prune`), a group of n entries of which `kept` survive gets the target
sparsity (n - kept + round(rate * kept)) / n, which rounds back to exactly that count.
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from ...pruning import updating, criteria
from ...core.data import Dataset
from ...pruning.methods import PRUNERS
from ...core.masks import Masks, masks_from_scores


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
    out: dict[str, torch.Tensor] = {}
    for name, sparsity in own.items():
        out.update(masks_from_scores({name: scores[name]}, sparsity, scope="global", masks={name: masks[name]}))
    pool = [n for n in masks if n not in own]
    if pool:
        out.update(masks_from_scores({n: scores[n] for n in pool}, pooled, scope="global",
                                     masks={n: masks[n] for n in pool}))
    return Masks({n: out[n] for n in masks})


def next_masks(criterion: str, model: nn.Module, dataset: Dataset, masks: Masks, rate: float, scope: str,
               layer_rates: Mapping[str, float], seed: int, options: Mapping) -> Masks:
    """The next level's mask of `model` (trained under `masks`) by a registry criterion or a pruner.

    A criterion scores `model` and `level_masks` prunes; a pruner (`methods.PRUNERS`) runs `updating.prune` on
    `model` with `masks` as prior and the level's cumulative targets, its calibration sample drawn from the
    training split with `seed` (unless `options` fix one); only its mask is kept, not its updated weights.
    """
    if criterion not in PRUNERS:
        scores = criteria.compute(criterion, model, dataset, seed=seed, **options)
        return level_masks(scores, masks, rate, scope, layer_rates)
    own, pooled = level_targets(masks, rate, scope, layer_rates)
    return updating.prune(model, dataset, pooled, criterion, scope, masks=masks, layer_sparsities=own,
                     **{"seed": seed, **options}).masks
