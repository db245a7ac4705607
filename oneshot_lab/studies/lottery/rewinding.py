"""Lottery tickets: iterative magnitude pruning with rewinding (config object), retraining modes and controls.

The pruning of one level, by any method of the registry, lives in `level`."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Mapping

import pandas as pd
import torch
from torch import nn

from ...core.data import Dataset
from ...core.masks import Masks, masks_from_scores, prunable
from ...pruning import registry
from ...pruning.prune import check_request
from ...training import train
from ...training.train import History, TrainConfig
from ...util import checks, rules
from ...util.config import Config, option
from ...util.progress import bar
from .level import level_masks, next_masks  # noqa: F401 (rewinding.level_masks stays a public name)

RETRAIN_MODES = ("weight_rewind", "lr_rewind", "finetune")
CONTROLS = ("reinit", "random_mask", "shuffled_mask")
MATCH_VALUES = ("early_stop_val_accuracy", "final_val_accuracy")
State = dict[str, torch.Tensor]


@dataclass(frozen=True)
class IMPConfig(Config):
    """Iterative magnitude pruning with rewinding: what is pruned each level, and how each level is retrained."""

    train: TrainConfig = option(TrainConfig(), "the recipe of the dense run and of every level (from iteration k)")
    levels: int = option(5, "pruning rounds after the dense run")
    rate: float = option(0.2, "fraction of the remaining prunable weights pruned per level")
    layer_rates: dict = option({}, "per-layer rate overrides {parameter name: rate}, always applied layer-wise")
    scope: str = option("layer", "layer | global: where the per-level rate is applied")
    criterion: str = option("magnitude", "the method that prunes each level: a name in ol.METHODS (a weight-updating "
                                         "method's mask only)")
    score_options: dict = option({}, "keyword options per method: {name: {option: value}}")
    rewind_iteration: int = option(0, "iteration k whose weights the survivors are rewound to (0: the init)")
    retrain: str = option("weight_rewind", "weight_rewind | lr_rewind | finetune")
    controls: tuple = option((), "controls trained on every ticket mask: reinit, random_mask, shuffled_mask")
    finetune_lr: float | None = option(None, "learning rate of 'finetune' (default: the schedule's final LR)")
    seed: int = option(0, "seed of criterion and control randomness")

    def __post_init__(self) -> None:
        """Validate every field and store it normalised (train, levels, rate, rewind_iteration, finetune_lr and
        seed by their rules in `rules.RULES`)."""
        super().__post_init__()
        rates = checks.mapping("layer_rates", self.layer_rates)
        self.store("layer_rates", {k: checks.fraction(f"layer_rates[{k!r}]", v) for k, v in rates.items()})
        registry.check_scope(self.scope)
        registry.get(self.criterion)
        self.store("score_options", registry.check_options(self.score_options))
        checks.one_of("retrain mode", self.retrain, RETRAIN_MODES)
        controls = checks.listing("controls", self.controls, lambda n, v: checks.one_of("control", v, CONTROLS),
                                  distinct=True, nonempty=False)
        if controls and self.retrain != "weight_rewind":
            raise ValueError(f"controls test a ticket's initialisation and need retrain='weight_rewind', "
                             f"got retrain={self.retrain!r} with controls {controls}")
        self.store("controls", tuple(controls))

    def check(self, model: nn.Module, dataset: Dataset) -> None:
        """Raise a ValueError if this config does not fit `model` and `dataset` (layer names, rewind point)."""
        unknown = sorted(set(self.layer_rates) - set(prunable(model)))
        if unknown:
            raise ValueError(f"layer_rates names unknown layers {unknown}; prunable layers: "
                             f"{', '.join(prunable(model))}")
        method = registry.get(self.criterion)
        check_request(method, model, dataset, method.check_options(self.score_options.get(self.criterion, {})))
        total = self.train.total_iterations(len(dataset.train.y))
        if not self.rewind_iteration < total:
            raise ValueError(f"rewind_iteration must be an int in [0, {total}) (the run has {total} iterations), "
                             f"got {self.rewind_iteration!r}")

    def with_seed(self, seed: int) -> "IMPConfig":
        """This config for replicate `seed`: the data order and the criterion / control randomness."""
        return self.replace(train=self.train.replace(seed=seed), seed=seed)


@dataclass
class IMPResult:
    """One IMP run: tidy metrics per (level, condition), per-layer densities, curves and the masks."""

    metrics: pd.DataFrame
    layers: pd.DataFrame
    curves: pd.DataFrame
    masks: list[Masks]
    control_masks: dict[str, list[Masks]] = field(default_factory=dict)
    rewind_state: State = field(default_factory=dict)

    def sparsest_matching(self, condition: str = "ticket", tolerance: float = 0.0,
                          value: str = "early_stop_val_accuracy") -> dict:
        """The sparsest level of `condition` whose `value` (a val column) is within `tolerance` of the dense one."""
        checks.one_of("matching value", value, MATCH_VALUES)
        rows = self.metrics[self.metrics.condition == condition]
        if rows.empty:
            raise ValueError(f"no rows for condition {condition!r}; present: {sorted(set(self.metrics.condition))}")
        dense = float(self.metrics[self.metrics.condition == "dense"][value].iloc[0])
        good = rows[rows[value] >= dense - tolerance]
        return good.loc[good.density.idxmin()].to_dict() if not good.empty else {}


def rewind(model: nn.Module, state: Mapping[str, torch.Tensor], masks: Masks | None = None) -> nn.Module:
    """Load `state` into `model` (values copied, never aliased), zero the pruned entries, return it."""
    model.load_state_dict(state)
    return masks.apply(model) if masks is not None else model


def reinitialize(model: nn.Module, seed: int) -> nn.Module:
    """A copy of `model` with every layer's parameters re-drawn from its default initialiser under `seed`."""
    fresh = copy.deepcopy(model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for module in fresh.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
    return fresh


def random_mask_like(reference: Masks, previous: Masks, generator: torch.Generator) -> Masks:
    """A random mask nested in `previous` that keeps, in every layer, as many entries as `reference`."""
    out = {}
    for name, ref in reference.items():
        scores = torch.rand(ref.shape, generator=generator)
        out.update(masks_from_scores({name: scores}, 1 - int(ref.sum()) / ref.numel(), scope="layer",
                                     masks={name: previous[name]}))
    return Masks(out)


def shuffled_mask(reference: Masks, generator: torch.Generator) -> Masks:
    """`reference` with its entries permuted uniformly at random within each layer."""
    return Masks({n: m.reshape(-1)[torch.randperm(m.numel(), generator=generator)].reshape(m.shape)
                  for n, m in reference.items()})


def _row(level: int, condition: str, retrain: str, masks: Masks, history: History) -> dict:
    """One metrics row: density, early stop chosen by minimum val loss, and the final evaluation."""
    best, final = history.best(), history.final()
    return {"level": level, "condition": condition, "retrain": retrain, "density": masks.density(),
            "weights_remaining": 100 * masks.density(), "sparsity": masks.sparsity(),
            "collapsed_layers": len(masks.collapsed_layers()),
            "early_stop_iteration": int(best["iteration"]), "early_stop_val_loss": best["val_loss"],
            "early_stop_val_accuracy": best["val_accuracy"], "early_stop_test_accuracy": best["test_accuracy"],
            "final_val_accuracy": final["val_accuracy"], "final_test_accuracy": final["test_accuracy"]}


def _retrain_config(config: TrainConfig, retrain: str, finetune_lr: float | None, total: int) -> TrainConfig:
    """The config of a retraining level: the schedule replayed, or a constant small LR for fine-tuning."""
    if retrain != "finetune":
        return config
    # Renda et al. (2020) fine-tune at the final learning rate of the original schedule.
    lr = config.lr_at(total - 1, total) if finetune_lr is None else float(finetune_lr)
    return config.replace(schedule="constant", lr=lr)


PRUNE_TAG, CONTROL_TAG = 7, 11  # the purposes of `derived_seed`: a level's pruning, its controls


def derived_seed(seed: int, level: int, tag: int) -> int:
    """A distinct, reproducible seed per (run seed, level, purpose), within the seeds `checks.seed` accepts."""
    return (1_000_003 * seed + 1_009 * level + tag) % (checks.SEED_MAX + 1)


def dense_run(model: nn.Module, dataset: Dataset, recipe: TrainConfig, snapshot_at: tuple = (0,),
              progress: bool = True) -> tuple[nn.Module, History]:
    """A trained copy of `model` (left untouched) and its history, snapshotting each iteration of `snapshot_at`."""
    trained = copy.deepcopy(model)
    return trained, train.fit(trained, dataset, recipe, snapshot_at=snapshot_at, progress=progress)


def imp(model: nn.Module, dataset: Dataset, config: IMPConfig = IMPConfig(), progress: bool = True,
        dense: tuple[nn.Module, History] | None = None) -> IMPResult:
    """Iterative pruning with rewinding (Frankle & Carbin 2019; Frankle et al. 2020; Renda et al. 2020).

    Level 0 trains `model` (left untouched) densely with `config.train`, snapshotting iteration
    k = `rewind_iteration`. Each level runs the method `criterion` (any name in the registry) on the previous
    level's final weights under the current mask, pruning `rate` of the remaining prunable weights
    (`layer_rates` overrides it per layer, always layer-wise; see `level`), random scores and calibration
    samples seeded from `seed` and the level; only its mask is kept (a weight-updating method's updates are
    discarded), and retraining from iteration k (fresh optimizer, same data order, `total - k` steps) is:
    'weight_rewind' restarts from the iteration-k weights times the mask (the ticket), 'lr_rewind'
    keeps the trained weights and replays the schedule from k, 'finetune' keeps them at a constant
    `finetune_lr` (default: the schedule's final LR). `controls` retrain, on each level's ticket
    mask, a fresh initialisation ('reinit'), a nested random mask with the ticket's per-layer counts
    ('random_mask') or the ticket mask shuffled within each layer ('shuffled_mask'), all from k.
    Early stopping uses the validation loss only. The config is checked against the model and data first.
    `dense` reuses a `dense_run` of `model` with `config.train` (it must hold the iteration-k snapshot).
    """
    IMPConfig.checked("config", config).check(model, dataset)
    recipe, seed = config.train, config.seed
    total, k = recipe.total_iterations(len(dataset.train.y)), config.rewind_iteration
    retrain_config = _retrain_config(recipe, config.retrain, config.finetune_lr, total)
    options = config.score_options.get(config.criterion, {})
    if dense is None:
        dense = dense_run(model, dataset, recipe, (k,), progress)
    elif k not in dense[1].snapshots:
        raise ValueError(f"the dense run given has snapshots at {sorted(dense[1].snapshots)}, not at k = {k}")
    trained, dense = copy.deepcopy(dense[0]), dense[1]
    ones = Masks.ones(model)
    masks, control_masks = [ones], {c: [ones] for c in config.controls if c != "reinit"}
    log = _Log()
    log.add(0, "dense", "none", ones, dense)
    generators = {c: torch.Generator().manual_seed(derived_seed(seed, 0, i)) for i, c in enumerate(CONTROLS)}
    with bar(total=config.levels, desc="IMP levels", disable=not progress) as meter:
        for level in range(1, config.levels + 1):
            masks.append(next_masks(config.criterion, trained, dataset, masks[-1], config.rate, config.scope,
                                    config.layer_rates, derived_seed(seed, level, PRUNE_TAG), options))
            net = (rewind(copy.deepcopy(model), dense.snapshots[k], masks[-1]) if config.retrain == "weight_rewind"
                   else masks[-1].apply(copy.deepcopy(trained)))
            log.add(level, "ticket", config.retrain, masks[-1],
                    train.fit(net, dataset, retrain_config, masks=masks[-1], start_iteration=k, progress=progress))
            for control in config.controls:
                start, mask = _control(control, model, dense.snapshots[k], masks[-1],
                                       control_masks.get(control), generators[control], derived_seed(seed, level, CONTROL_TAG))
                log.add(level, control, config.retrain, mask,
                        train.fit(start, dataset, recipe, masks=mask, start_iteration=k, progress=progress))
            trained = net
            meter.update(1)
    metrics = log.metrics().assign(rewind_iteration=k, criterion=config.criterion, scope=config.scope,
                                   rate=config.rate, budget=1)
    return IMPResult(metrics=metrics, layers=pd.concat(log.layers, ignore_index=True),
                     curves=pd.concat(log.curves, ignore_index=True),
                     masks=masks, control_masks=control_masks, rewind_state=dense.snapshots[k])


def budget_controls(model: nn.Module, dataset: Dataset, config: IMPConfig, result: IMPResult, levels: list[int],
                    factor: int, progress: bool = True) -> pd.DataFrame:
    """The controls of `result` at `levels` retrained for `factor` times the iterations: a budget curve.

    Each control starts from exactly the network and mask it started from in `imp` (same initialisation, same
    mask) and trains from k for `factor` x the recipe's iterations (cosine / step schedules stretched, the
    evaluation cadence scaled too). Rows are `imp`'s metrics rows with condition '<control>_x<factor>' and
    a `budget` column (= factor).
    """
    factor = rules.RULES["budget"].check("budget factor", factor)
    levels = checks.listing("budget levels", levels, lambda n, v: checks.integer(n, v, 1, len(result.masks) - 1),
                            distinct=True, nonempty=False)
    recipe, k = config.train, config.rewind_iteration
    total = recipe.total_iterations(len(dataset.train.y))
    longer = recipe.replace(iterations=factor * total,
                            eval_every=factor * recipe.eval_every if recipe.eval_every else None)
    log = _Log()
    for level in levels:
        for control in config.controls:
            if control == "reinit":
                mask = result.masks[level]
                start = mask.apply(reinitialize(model, derived_seed(config.seed, level, CONTROL_TAG)))
            else:
                mask = result.control_masks[control][level]
                start = rewind(copy.deepcopy(model), result.rewind_state, mask)
            log.add(level, f"{control}_x{factor}", config.retrain, mask,
                    train.fit(start, dataset, longer, masks=mask, start_iteration=k, progress=progress))
    metrics = log.metrics() if log.rows else pd.DataFrame(columns=result.metrics.columns)
    return metrics.assign(rewind_iteration=k, criterion=config.criterion, scope=config.scope, rate=config.rate,
                          budget=factor)


def _control(control: str, model: nn.Module, state: State, ticket: Masks, previous: list[Masks] | None,
             generator: torch.Generator, init_seed: int) -> tuple[nn.Module, Masks]:
    """The starting network and mask of one control at one level (appends new control masks to `previous`)."""
    if control == "reinit":
        return ticket.apply(reinitialize(model, init_seed)), ticket
    mask = (random_mask_like(ticket, previous[-1], generator) if control == "random_mask"
            else shuffled_mask(ticket, generator))
    previous.append(mask)
    return rewind(copy.deepcopy(model), state, mask), mask


@dataclass
class _Log:
    """Accumulates the tidy rows of an IMP run."""

    rows: list[dict] = field(default_factory=list)
    layers: list[pd.DataFrame] = field(default_factory=list)
    curves: list[pd.DataFrame] = field(default_factory=list)

    def add(self, level: int, condition: str, retrain: str, masks: Masks, history: History) -> None:
        """Record one trained (level, condition)."""
        self.rows.append(_row(level, condition, retrain, masks, history))
        self.layers.append(masks.table(level=level, condition=condition))
        self.curves.append(history.frame().assign(level=level, condition=condition))

    def metrics(self) -> pd.DataFrame:
        """The metrics rows as a DataFrame."""
        return pd.DataFrame(self.rows)




def matching(results: Mapping[int, IMPResult], conditions: list[str], tolerance: float = 0.0,
             value: str = "early_stop_val_accuracy") -> pd.DataFrame:
    """Per seed and condition, the sparsest level whose `value` (val accuracy) is within `tolerance` of dense.

    Validation only (see `IMPResult.sparsest_matching`); the level's test accuracy is reported beside it,
    and the level is empty where no pruned level qualified.
    """
    tolerance = checks.number("match tolerance", tolerance, 0.0)
    conditions = checks.listing("conditions", conditions, distinct=True)
    if not isinstance(results, Mapping):
        raise ValueError(f"results must map seed -> IMPResult (as ticket_study.run returns), "
                         f"got {type(results).__name__}")
    rows = []
    for seed, result in results.items():
        for condition in conditions:
            found = result.sparsest_matching(condition, tolerance=tolerance, value=value)
            test = value.replace("_val_", "_test_")
            rows.append({"seed": seed, "condition": condition, "sparsest_matching_level": found.get("level"),
                         "weights_remaining": found.get("weights_remaining"), "tolerance": tolerance, "value": value,
                         "val_accuracy": found.get(value), "test_accuracy": found.get(test)})
    return pd.DataFrame(rows)
