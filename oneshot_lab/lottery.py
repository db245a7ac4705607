"""Lottery tickets: iterative magnitude pruning with rewinding, controls, and linear-mode-connectivity instability."""

from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import pandas as pd
import torch
from torch import nn

from . import curvature as _curvature
from . import saliency, train
from .data import Dataset
from .progress import bar
from .prune import SCOPES, Masks, masks_from_scores, prunable
from .train import History, TrainConfig

RETRAIN_MODES = ("weight_rewind", "lr_rewind", "finetune")
CONTROLS = ("reinit", "random_mask", "shuffled_mask")
State = dict[str, torch.Tensor]


@dataclass
class IMPResult:
    """One IMP run: tidy metrics per (level, condition), per-layer densities, curves and the masks."""

    metrics: pd.DataFrame
    layers: pd.DataFrame
    curves: pd.DataFrame
    masks: list[Masks]
    control_masks: dict[str, list[Masks]] = field(default_factory=dict)
    rewind_state: State = field(default_factory=dict)

    def sparsest_matching(self, condition: str = "ticket", tolerance: float = 0.0) -> dict:
        """The sparsest level of `condition` within `tolerance` of the dense early-stop val accuracy (val only)."""
        rows = self.metrics[self.metrics.condition == condition]
        if rows.empty:
            raise ValueError(f"no rows for condition {condition!r}; present: {sorted(set(self.metrics.condition))}")
        dense = float(self.metrics[self.metrics.condition == "dense"]["early_stop_val_accuracy"].iloc[0])
        good = rows[rows.early_stop_val_accuracy >= dense - tolerance]
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


def level_masks(scores: Mapping[str, torch.Tensor], masks: Masks, rate: float, scope: str = "layer",
                layer_rates: Mapping[str, float] | None = None) -> Masks:
    """Prune round(rate * kept) of the entries `masks` keeps (per layer, or over the global pool)."""
    layer_rates = dict(layer_rates or {})
    out: dict[str, torch.Tensor] = {}
    for name in masks:
        if scope == "layer" or name in layer_rates:
            out.update(_prune_remaining({name: scores[name]}, {name: masks[name]}, layer_rates.get(name, rate)))
    pool = [n for n in masks if n not in out]
    if pool:
        out.update(_prune_remaining({n: scores[n] for n in pool}, {n: masks[n] for n in pool}, rate))
    return Masks({n: out[n] for n in masks})


def _prune_remaining(scores: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor], rate: float) -> Masks:
    """One pool: keep kept - round(rate * kept) entries, expressed as the total target masks_from_scores takes."""
    kept = sum(int(m.sum()) for m in masks.values())
    total = sum(m.numel() for m in masks.values())
    target_pruned = total - (kept - round(rate * kept))
    # (total - k) / total * total rounds back to total - k exactly for any realistic layer size.
    return masks_from_scores(scores, target_pruned / total if total else 0.0, scope="global", masks=masks)


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


# The public scoring function behind each registry entry of saliency.CRITERIA, and the arguments `compute`
# fills in itself (so they cannot be score options). The registry entries take **kw and forward it, so
# their own signatures say nothing; criteria missing here are forwarded unchecked.
_SCORE_FUNCTIONS: dict[str, tuple] = {
    "magnitude": (saliency.magnitude, ("model",)),
    "random": (saliency.random, ("model", "seed")),
    "snip": (saliency.snip, ("model", "dataset", "seed")),
    "obd": (saliency.obd, ("model", "dataset", "seed")),
    **{f"obd_{c}": (saliency.obd, ("model", "dataset", "seed", "curvature")) for c in _curvature.CURVATURES},
}
_OPTION_CHOICES = {"curvature": _curvature.CURVATURES, "negative": saliency.NEGATIVE}


def check_score_options(criterion: str, score_options: Mapping | None) -> None:
    """Raise a clear ValueError unless `criterion` accepts every keyword in `score_options`.

    Checked without scoring anything: the names against the signature of the public function behind
    the criterion (`saliency.magnitude`, `.random`, `.snip`, `.obd`), minus the arguments `saliency.compute`
    passes itself (model, dataset, seed; curvature for 'obd_<curvature>'), and the values of `curvature`
    and `negative` against their valid choices. A criterion added to `saliency.CRITERIA` without an entry
    in `_SCORE_FUNCTIONS` has its options passed through unchecked.
    """
    if criterion not in saliency.CRITERIA:
        raise ValueError(f"unknown criterion {criterion!r}; valid criteria: {', '.join(saliency.CRITERIA)}")
    if score_options is None:
        return
    if not isinstance(score_options, Mapping):
        raise ValueError(f"score_options must be a mapping of keyword options, got {score_options!r}")
    if criterion not in _SCORE_FUNCTIONS:
        return
    function, fixed = _SCORE_FUNCTIONS[criterion]
    accepted = [n for n in inspect.signature(function).parameters if n not in fixed]
    unknown = sorted(set(score_options) - set(accepted))
    if unknown:
        raise ValueError(f"criterion {criterion!r} does not accept score option(s) {unknown}; "
                         f"it accepts: {', '.join(accepted) or 'none'}")
    for name, choices in _OPTION_CHOICES.items():
        if name in score_options and score_options[name] not in choices:
            raise ValueError(f"score option {name}={score_options[name]!r} is not valid; "
                             f"valid choices: {', '.join(choices)}")


def check_imp(model: nn.Module, dataset: Dataset, config: TrainConfig, levels: int = 5, rate: float = 0.2,
              rewind_iteration: int = 0, scope: str = "layer", criterion: str = "magnitude",
              layer_rates: Mapping[str, float] | None = None, retrain: str = "weight_rewind",
              controls: Sequence[str] = (), finetune_lr: float | None = None,
              score_options: Mapping | None = None) -> None:
    """Raise a clear ValueError for any bad argument of `imp` (same names and defaults), before any work."""
    total = config.total_iterations(len(dataset.train.y))
    if not isinstance(levels, int) or isinstance(levels, bool) or levels < 0:
        raise ValueError(f"levels must be an int >= 0, got {levels!r}")
    for name, value in [("rate", rate), *[(f"layer_rates[{k!r}]", v) for k, v in (layer_rates or {}).items()]]:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
            raise ValueError(f"{name} must be a fraction in [0, 1], got {value!r}")
    unknown = sorted(set(layer_rates or {}) - set(prunable(model)))
    if unknown:
        raise ValueError(f"layer_rates names unknown layers {unknown}; prunable layers: {', '.join(prunable(model))}")
    if not isinstance(rewind_iteration, int) or not 0 <= rewind_iteration < total:
        raise ValueError(f"rewind_iteration must be an int in [0, {total}) (the run has {total} iterations), "
                         f"got {rewind_iteration!r}")
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}; valid scopes: {', '.join(SCOPES)}")
    if criterion not in saliency.CRITERIA:
        raise ValueError(f"unknown criterion {criterion!r}; valid criteria: {', '.join(saliency.CRITERIA)}")
    if retrain not in RETRAIN_MODES:
        raise ValueError(f"unknown retrain mode {retrain!r}; valid modes: {', '.join(RETRAIN_MODES)}")
    if (not isinstance(controls, (list, tuple)) or any(c not in CONTROLS for c in controls)
            or len(set(controls)) != len(controls)):
        raise ValueError(f"controls must be a list of distinct names from {', '.join(CONTROLS)}; got {controls!r}")
    if controls and retrain != "weight_rewind":
        raise ValueError(f"controls test a ticket's initialisation and need retrain='weight_rewind', "
                         f"got retrain={retrain!r} with controls {list(controls)}")
    if finetune_lr is not None and not float(finetune_lr) >= 0:
        raise ValueError(f"finetune_lr must be >= 0, got {finetune_lr!r}")
    check_score_options(criterion, score_options)




def _row(level: int, condition: str, retrain: str, masks: Masks, history: History) -> dict:
    """One metrics row: density, early stop chosen by minimum val loss, and the final evaluation."""
    best, final = history.best(), history.final()
    return {"level": level, "condition": condition, "retrain": retrain, "density": masks.density(),
            "weights_remaining": 100 * masks.density(), "sparsity": masks.sparsity(),
            "collapsed_layers": len(masks.collapsed_layers()),
            "early_stop_iteration": int(best["iteration"]), "early_stop_val_loss": best["val_loss"],
            "early_stop_val_accuracy": best["val_accuracy"], "early_stop_test_accuracy": best["test_accuracy"],
            "final_val_accuracy": final["val_accuracy"], "final_test_accuracy": final["test_accuracy"]}


def _layer_rows(level: int, condition: str, masks: Masks) -> list[dict]:
    """Per-layer density rows of one mask."""
    return [{"level": level, "condition": condition, "layer": n, "entries": m.numel(), "kept": int(m.sum()),
             "density": int(m.sum()) / m.numel()} for n, m in masks.items()]


def _retrain_config(config: TrainConfig, retrain: str, finetune_lr: float | None, total: int) -> TrainConfig:
    """The config of a retraining level: the schedule replayed, or a constant small LR for fine-tuning."""
    if retrain != "finetune":
        return config
    # Renda et al. (2020) fine-tune at the final learning rate of the original schedule.
    lr = config.lr_at(total - 1, total) if finetune_lr is None else float(finetune_lr)
    return config.replace(schedule="constant", lr=lr)


def _seed(seed: int, level: int, tag: int) -> int:
    """A distinct, reproducible seed per (run seed, level, purpose)."""
    return 1_000_003 * seed + 1_009 * level + tag


def imp(model: nn.Module, dataset: Dataset, config: TrainConfig = TrainConfig(), levels: int = 5,
        rate: float = 0.2, rewind_iteration: int = 0, scope: str = "layer", criterion: str = "magnitude",
        layer_rates: Mapping[str, float] | None = None, retrain: str = "weight_rewind",
        controls: Sequence[str] = (), finetune_lr: float | None = None, seed: int = 0,
        score_options: Mapping | None = None) -> IMPResult:
    """Iterative pruning with rewinding (Frankle & Carbin 2019; Frankle et al. 2020; Renda et al. 2020).

    Level 0 trains `model` (left untouched) densely with `config`, snapshotting iteration
    `rewind_iteration` = k. Each level scores the previous level's final weights with `criterion`,
    prunes `rate` of the remaining prunable weights (`layer_rates` overrides it per layer, always
    layer-wise) and retrains from iteration k (fresh optimizer, same data order, `total - k` steps):
    'weight_rewind' restarts from the iteration-k weights times the mask (the ticket), 'lr_rewind'
    keeps the trained weights and replays the schedule from k, 'finetune' keeps them at a constant
    `finetune_lr` (default: the schedule's final LR). `controls` retrain, on each level's ticket
    mask, a fresh initialisation ('reinit'), a nested random mask with the ticket's per-layer counts
    ('random_mask') or the ticket mask shuffled within each layer ('shuffled_mask'), all from k.
    Early stopping uses the validation loss only; `seed` drives criterion and control randomness.
    `score_options` are keyword options of the criterion (see `check_score_options`); every argument
    is validated before the dense run.
    """
    check_imp(model, dataset, config, levels, rate, rewind_iteration, scope, criterion, layer_rates,
              retrain, controls, finetune_lr, score_options)
    controls = list(controls)
    total, k = config.total_iterations(len(dataset.train.y)), rewind_iteration
    retrain_config = _retrain_config(config, retrain, finetune_lr, total)
    trained = copy.deepcopy(model)
    dense = train.fit(trained, dataset, config, snapshot_at=[k])
    ones = Masks.ones(model)
    masks, control_masks = [ones], {c: [ones] for c in controls if c != "reinit"}
    log = _Log()
    log.add(0, "dense", "none", ones, dense)
    generators = {c: torch.Generator().manual_seed(_seed(seed, 0, i)) for i, c in enumerate(CONTROLS)}
    with bar(total=levels, desc="IMP levels", disable=not config.progress) as progress:
        for level in range(1, levels + 1):
            scores = saliency.compute(criterion, trained, dataset, seed=_seed(seed, level, 7),
                                      **(score_options or {}))
            masks.append(level_masks(scores, masks[-1], rate, scope, layer_rates))
            net = (rewind(copy.deepcopy(model), dense.snapshots[k], masks[-1]) if retrain == "weight_rewind"
                   else masks[-1].apply(copy.deepcopy(trained)))
            log.add(level, "ticket", retrain, masks[-1],
                    train.fit(net, dataset, retrain_config, masks=masks[-1], start_iteration=k))
            for control in controls:
                start, mask = _control(control, model, dense.snapshots[k], masks[-1],
                                       control_masks.get(control), generators[control], _seed(seed, level, 11))
                log.add(level, control, retrain, mask,
                        train.fit(start, dataset, config, masks=mask, start_iteration=k))
            trained = net
            progress.update(1)
    return IMPResult(metrics=log.metrics().assign(rewind_iteration=k, criterion=criterion, scope=scope, rate=rate),
                     layers=pd.DataFrame(log.layers), curves=pd.concat(log.curves, ignore_index=True),
                     masks=masks, control_masks=control_masks, rewind_state=dense.snapshots[k])


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
    layers: list[dict] = field(default_factory=list)
    curves: list[pd.DataFrame] = field(default_factory=list)

    def add(self, level: int, condition: str, retrain: str, masks: Masks, history: History) -> None:
        """Record one trained (level, condition)."""
        self.rows.append(_row(level, condition, retrain, masks, history))
        self.layers += _layer_rows(level, condition, masks)
        self.curves.append(history.frame().assign(level=level, condition=condition))

    def metrics(self) -> pd.DataFrame:
        """The metrics rows as a DataFrame."""
        return pd.DataFrame(self.rows)


@dataclass
class Instability:
    """Linear-mode-connectivity results: errors along each path and the error barrier per rewind point."""

    path: pd.DataFrame
    barriers: pd.DataFrame


def interpolate(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor], alpha: float) -> State:
    """The state (1 - alpha) * a + alpha * b (non-float buffers taken from `a`)."""
    return {n: (1 - alpha) * a[n] + alpha * b[n] if a[n].is_floating_point() else a[n].clone() for n in a}


def error_path(model: nn.Module, dataset: Dataset, a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor],
               points: int = 11, splits: Sequence[str] = ("val", "test")) -> pd.DataFrame:
    """Loss, accuracy and error of `model`'s architecture at `points` evenly spaced states from `a` to `b`."""
    net, rows = copy.deepcopy(model), []
    for alpha in torch.linspace(0, 1, points).tolist():
        net.load_state_dict(interpolate(a, b, alpha))
        for split in splits:
            result = train.evaluate(net, dataset, split)
            rows.append({"alpha": alpha, "split": split, **result, "error": 1 - result["accuracy"]})
    return pd.DataFrame(rows)


def error_barrier(path: pd.DataFrame) -> pd.DataFrame:
    """Per split: max error along the path minus the mean error of its two ends (Frankle et al. 2020)."""
    rows = []
    for split, rows_split in path.groupby("split", sort=False):
        ends = rows_split.loc[[rows_split.alpha.idxmin(), rows_split.alpha.idxmax()], "error"]
        rows.append({"split": split, "barrier": rows_split.error.max() - ends.mean(),
                     "max_error": rows_split.error.max(), "end_error": ends.mean()})
    return pd.DataFrame(rows)


def check_instability(model: nn.Module, dataset: Dataset, config: TrainConfig, rewind_iterations: Sequence[int],
                      masks: Mapping[str, torch.Tensor] | None = None, data_seeds: Sequence[int] = (1, 2),
                      points: int = 11) -> Masks | None:
    """Raise a clear ValueError for any bad argument of `instability` (same names), before any work.

    Returns `masks` as a `Masks` checked against `model` (names and shapes), or None.
    """
    total = config.total_iterations(len(dataset.train.y))
    if not isinstance(rewind_iterations, (list, tuple)) or not rewind_iterations:
        raise ValueError(f"rewind_iterations must be a non-empty list of ints, got {rewind_iterations!r}")
    bad = [k for k in rewind_iterations if not isinstance(k, int) or not 0 <= k < total]
    if bad:
        raise ValueError(f"rewind_iterations must lie in [0, {total}) (the run has {total} iterations); bad: {bad}")
    if not isinstance(data_seeds, (list, tuple)) or len(data_seeds) != 2 or data_seeds[0] == data_seeds[1]:
        raise ValueError(f"data_seeds must be two distinct seeds (one data order per copy), got {data_seeds!r}")
    if not isinstance(points, int) or isinstance(points, bool) or points < 2:
        raise ValueError(f"points must be an int >= 2, got {points!r}")
    if masks is None:
        return None
    if not isinstance(masks, Masks):
        if not isinstance(masks, Mapping):
            raise ValueError(f"masks must be a Masks (parameter name -> bool tensor) or None, got {type(masks).__name__}")
        try:
            masks = Masks(masks)
        except TypeError as error:
            raise ValueError(str(error)) from None
    masks.check(model)
    return masks


def instability(model: nn.Module, dataset: Dataset, config: TrainConfig, rewind_iterations: Sequence[int],
                masks: Masks | None = None, data_seeds: Sequence[int] = (1, 2), points: int = 11) -> Instability:
    """Error barrier between two copies trained from iteration k with different data orders, for each k.

    A parent run trains `model` (left untouched) densely with `config` up to the end, snapshotting every
    k; each copy restarts from the iteration-k weights (times `masks`, if given: the sparse network
    rewound to k) and trains to the end with `config.seed` replaced by one of `data_seeds` (the data
    order; same schedule). The copies' final weights are interpolated linearly at `points` points.
    """
    masks = check_instability(model, dataset, config, rewind_iterations, masks, data_seeds, points)
    rewind_iterations = list(rewind_iterations)
    parent = train.fit(copy.deepcopy(model), dataset, config, snapshot_at=rewind_iterations)
    paths, barriers = [], []
    for k in rewind_iterations:
        ends = []
        for data_seed in data_seeds:
            net = rewind(copy.deepcopy(model), parent.snapshots[k], masks)
            train.fit(net, dataset, config.replace(seed=data_seed), masks=masks, start_iteration=k)
            ends.append(train.snapshot(net))
        path = error_path(model, dataset, ends[0], ends[1], points).assign(rewind_iteration=k)
        paths.append(path)
        barriers.append(error_barrier(path).assign(rewind_iteration=k))
    density = masks.density() if masks is not None else 1.0
    return Instability(path=pd.concat(paths, ignore_index=True).assign(density=density),
                       barriers=pd.concat(barriers, ignore_index=True).assign(density=density))


_LIST_HINT = (" -- a string, not a list (papermill -p passes text: give lists with -y, e.g. "
              "-y 'retrain_modes: [lr_rewind]')")


def _not_a_list(name: str, value) -> None:
    """Raise a clear ValueError if `value` (the parameter `name`) is text or anything else but a list / tuple."""
    if not isinstance(value, (list, tuple)):
        hint = _LIST_HINT.replace("retrain_modes", name) if isinstance(value, str) else ""
        raise ValueError(f"{name} must be a list, got {value!r}{hint}")


def replicate_seeds(seed: int, offsets: Sequence[int]) -> list[int]:
    """The replicate seeds of a study: `seed + offset` for each offset (distinct ints), so sweeping `seed` moves them all."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int, got {seed!r}")
    if (not isinstance(offsets, (list, tuple)) or not offsets
            or any(isinstance(o, bool) or not isinstance(o, int) for o in offsets) or len(set(offsets)) != len(offsets)):
        raise ValueError(f"seeds must be a non-empty list of distinct int offsets (added to seed), got {offsets!r}")
    return [seed + offset for offset in offsets]


def _prefixed(what: str, check, *args, **kwargs):
    """Run `check`, prefixing the message of any ValueError with the name of the parameter it is about."""
    try:
        return check(*args, **kwargs)
    except ValueError as error:
        raise ValueError(f"{what}: {error}") from None


def check_experiment(model: nn.Module, dataset: Dataset, config: TrainConfig, *, levels: int, rate: float,
                     layer_rates: Mapping[str, float] | None, scope: str, criterion: str, controls: Sequence[str],
                     late_rewind: int, retrain_modes: Sequence[str], instability_iterations: Sequence[int],
                     instability_level: int, points: int, seeds: Sequence[int], seed: int = 0,
                     match_tolerance: float = 0.0, score_options: Mapping | None = None) -> None:
    """Raise a clear ValueError for any bad parameter of a whole lottery study (notebook 03), before training.

    The study is: `imp` with `controls` rewound to 0; `imp` rewound to `late_rewind`; one `imp` per mode of
    `retrain_modes`; `instability` at `instability_iterations` of the dense net and of the ticket mask of
    level `instability_level` (0 <= level <= `levels`, 0 being the dense mask); all for every replicate seed
    `seed + s` for s in `seeds`. Every call is validated with the checks those functions run themselves.
    """
    for name, value in [("controls", controls), ("retrain_modes", retrain_modes),
                        ("instability_iterations", instability_iterations), ("seeds", seeds)]:
        _not_a_list(name, value)
    check_imp(model, dataset, config, levels, rate, 0, scope, criterion, layer_rates, "weight_rewind",
              controls, None, score_options)
    _prefixed("late_rewind", check_imp, model, dataset, config, levels, rate, late_rewind, scope, criterion,
              layer_rates)
    if any(m not in RETRAIN_MODES for m in retrain_modes) or len(set(retrain_modes)) != len(retrain_modes):
        bad = [m for m in retrain_modes if m not in RETRAIN_MODES] or "a name repeated"
        raise ValueError(f"retrain_modes must be a list of distinct names from {', '.join(RETRAIN_MODES)}; "
                         f"got {retrain_modes!r} (bad: {bad!r})")
    _prefixed("instability analysis", check_instability, model, dataset, config, instability_iterations,
              points=points)
    if (isinstance(instability_level, bool) or not isinstance(instability_level, int)
            or not 0 <= instability_level <= levels):
        raise ValueError(f"instability_level must be an int in [0, levels] = [0, {levels}] (the IMP level whose "
                         f"ticket mask is tested), got {instability_level!r}")
    if isinstance(match_tolerance, bool) or not isinstance(match_tolerance, (int, float)) or not match_tolerance >= 0:
        raise ValueError(f"match_tolerance must be a number >= 0, got {match_tolerance!r}")
    replicate_seeds(seed, seeds)


def summarize(metrics: pd.DataFrame, y: str = "early_stop_test_accuracy",
              by: Sequence[str] = ("level", "condition")) -> pd.DataFrame:
    """Mean, standard deviation and count of `y` over seeds per `by` group, with the mean % of weights remaining."""
    missing = sorted(set([y, *by, "weights_remaining"]) - set(metrics.columns))
    if missing:
        raise ValueError(f"metrics lacks columns {missing}; it has: {', '.join(metrics.columns)}")
    grouped = metrics.groupby(list(by), sort=False)
    out = grouped[y].agg(["mean", "std", "count"]).reset_index()
    out.insert(len(by), "weights_remaining", grouped["weights_remaining"].mean().to_numpy())
    return out.assign(metric=y)


def mean_std_table(summary: pd.DataFrame, columns: str = "condition", digits: int = 3) -> pd.DataFrame:
    """A wide 'mean ± std' text table from `summarize` output: one row per level, one column per `columns` value."""
    text = summary.assign(cell=[f"{m:.{digits}f} ± {0 if pd.isna(s) else s:.{digits}f}"
                                for m, s in zip(summary["mean"], summary["std"])])
    wide = text.pivot_table(index="level", columns=columns, values="cell", aggfunc="first", sort=False)
    remaining = text.groupby("level")["weights_remaining"].mean().round(1)
    wide.insert(0, "% weights remaining", remaining.reindex(wide.index))
    return wide.rename_axis(columns=None).fillna("")
