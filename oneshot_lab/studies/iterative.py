"""Iterative pruning with any method of the registry, as LeCun, Denker & Solla (1989) ran OBD: prune, retrain, repeat.

Every round prunes the retrained model again, so scores and curvature are recomputed each time."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import pandas as pd
from torch import nn

from ..pruning import registry
from ..pruning.prune import check_request, prune as prune_once
from ..util import checks, parallel
from ..util.config import Config, option
from ..core.data import Dataset, load
from .oneshot import dense_macs, metrics_row
from ..core.masks import Masks
from ..core.model_checks import check_model
from ..training.train import TrainConfig, fit


@dataclass(frozen=True)
class IterativeConfig(Config):
    """Rounds of pruning to increasing sparsities, each followed by retraining under the mask."""

    sparsities: tuple = option((0.5, 0.7, 0.8, 0.9, 0.95), "strictly increasing sparsity after each round")
    retrain: TrainConfig = option(TrainConfig(), "training under the mask after every round")
    criterion: str = option("obd_ggn", "the method run every round on the retrained model (any name in ol.METHODS; "
                                       "a weight-updating method's updated weights are what is retrained)")
    scope: str = option("global", "global or layer")
    score_options: dict = option({}, "keyword options per method: {name: {option: value}}")
    seed: int = option(0, "seed of random scores and sampled curvature")

    def __post_init__(self) -> None:
        """Validate every field and store it normalised."""
        super().__post_init__()  # sparsities, retrain, seed
        checks.increasing("sparsities", self.sparsities)
        registry.get(self.criterion)
        registry.check_scope(self.scope)
        self.store("score_options", registry.check_options(self.score_options))

    @property
    def method(self) -> str:
        """The 'method/scope' label."""
        return f"{self.criterion}/{self.scope}"


@dataclass
class IterativeResult:
    """The pruned and retrained model, its final masks, metrics per round and per-layer densities."""

    model: nn.Module
    masks: Masks
    metrics: pd.DataFrame
    layers: pd.DataFrame


def prune(model: nn.Module, dataset: Dataset, config: IterativeConfig, progress: bool = True) -> IterativeResult:
    """The loop on a copy of `model`: score, prune to the next sparsity, retrain under the mask, repeat.

    Every round runs the method on the retrained, masked model (`pruning.prune` with the previous masks), so
    scores and curvature are recomputed and pruned weights stay pruned; a weight-updating method's updated
    weights are what is retrained (Hassibi & Stork's prune-with-update, then retrain). Metrics rows are
    `oneshot.metrics_row`s with stage 'pruned' (just after deletion) and 'iterative' (after that round's
    retraining), and a `round` column.
    """
    if not isinstance(config, IterativeConfig):
        raise ValueError(f"config must be an IterativeConfig, got {type(config).__name__}")
    label = f"iterative {config.method}"
    options = config.score_options.get(config.criterion, {})
    check_request(registry.get(config.criterion), model, dataset, options)  # refused before any work
    current = copy.deepcopy(model)
    total_macs = dense_macs(current, dataset)
    masks = Masks.ones(current)
    rows = [{**metrics_row(current, dataset, None, total_macs, "dense"), "round": 0}]
    layer_tables = []
    for round_, target in enumerate(config.sparsities, start=1):
        pruned = prune_once(current, dataset, target, config.criterion, config.scope, masks=masks, seed=config.seed,
                            **options)
        current, masks = pruned.model, pruned.masks
        labels = dict(method=label, criterion=config.criterion, scope=config.scope, sparsity=target)
        rows.append({**metrics_row(current, dataset, masks, total_macs, "pruned", **labels), "round": round_})
        fit(current, dataset, config.retrain, masks=masks, progress=progress)
        rows.append({**metrics_row(current, dataset, masks, total_macs, "iterative", **labels), "round": round_})
        layer_tables.append(masks.table(method=label, sparsity=target))
    return IterativeResult(current, masks, pd.DataFrame(rows), pd.concat(layer_tables, ignore_index=True))


def replicate_seed(model: nn.Module, dataset: str, configs: list[IterativeConfig], seed: int,
                   root: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One seed of `replicate`: every config's loop on that seed's model and data split."""
    data = load(dataset, seed=seed, root=root)
    done = [prune(model, data, config.replace(seed=seed), progress=False) for config in configs]
    return (pd.concat([d.metrics.assign(seed=seed) for d in done], ignore_index=True),
            pd.concat([d.layers.assign(seed=seed) for d in done], ignore_index=True))


def replicate(models: dict, dataset: str, config: IterativeConfig, criteria: list[str], root: str | None = None,
              workers: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The loop for every criterion on each seed's trained model (`{seed: model}`, e.g. `Replicates.models`).

    Each seed reloads its own data split and scores with its own seed, so criteria are paired on the seed.
    Seeds run on `workers` processes (default one per core, 0 in this process), each on one torch thread.
    Returns (metrics, layers) with a `seed` column.
    """
    criteria = checks.listing("criteria", criteria, distinct=True)
    configs = [config.replace(criterion=c) for c in criteria]  # every criterion checked before any work
    if not isinstance(models, dict) or not models:
        raise ValueError(f"models must map seeds to trained models, got {type(models).__name__}")
    for model in models.values():
        check_model(model)  # its shape here; each worker's prune checks it against its seed's data
    workers = registry.workers_for(criteria, workers)
    done = parallel.map_jobs(replicate_seed, [(m, dataset, configs, s, root) for s, m in models.items()], workers)
    return (pd.concat([d[0] for d in done], ignore_index=True), pd.concat([d[1] for d in done], ignore_index=True))
