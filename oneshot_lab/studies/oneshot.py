"""One-shot pruning studies: prune a trained model by registry methods at many sparsities, evaluate, fine-tune."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Any

import pandas as pd
from torch import nn

from ..core.data import Dataset, load
from ..core.masks import Masks, check_sparsity, macs, masks_from_scores
from ..core.model_checks import check_model
from ..core.models import build
from ..pruning import registry
from ..pruning.curvature import compare
from ..pruning.prune import check_layer_sparsities, check_request, prune
from ..training.fit_cache import cached_fit
from ..training.train import TrainConfig, evaluate
from ..util import checks, parallel
from ..util.config import Config, option


@dataclass(frozen=True)
class OneShotConfig(Config):
    """A one-shot study: every method at every sparsity, evaluated as pruned and optionally after a fine-tune."""

    methods: tuple = option(("magnitude/global",), "method/scope labels, e.g. 'magnitude/global' (ol.METHODS)")
    sparsities: tuple = option((0.5, 0.7, 0.8, 0.9, 0.95), "fractions of prunable weights removed")
    finetune: TrainConfig | None = option(None, "training under the binding mask after pruning (None: none)")
    score_options: dict = option({}, "keyword options per method: {name: {option: value}}")
    report_sparsity: float | None = option(None, "sparsity whose per-layer densities a report shows")
    seed: int = option(0, "seed of random scores, sampled curvature and calibration samples")
    budgets: tuple = option((), "extra fine-tune budgets in epochs (stage 'finetuned_<E>ep'), a control for budget")
    from_init: TrainConfig | None = option(
        None, "train each mask from the initial weights with this recipe (stage 'from_init'); None: no control")
    control_sparsities: tuple = option((), "sparsities at which budgets and from_init run (empty: all)")
    control_methods: tuple = option((), "methods for which budgets and from_init run (empty: all)")
    dense_layers: tuple = option((), "prunable parameters kept dense (e.g. the output layer's weight); the "
                                     "sparsity applies to the others")

    def __post_init__(self) -> None:
        """Validate every field and store it normalised."""
        super().__post_init__()  # sparsities, finetune, report_sparsity, seed, budgets, from_init, control_sparsities
        methods = checks.listing("methods", self.methods)
        for method in methods:
            registry.split_label(method)
        self.store("methods", tuple(methods))
        if self.budgets and self.finetune is None:
            raise ValueError(f"budgets {list(self.budgets)} need a finetune recipe to vary: set finetune")
        outside = [c for c in self.control_sparsities if not checks.among(c, self.sparsities)]
        if outside:
            raise ValueError(f"control_sparsities {outside} are not among the sparsities {list(self.sparsities)}")
        control_methods = checks.listing("control_methods", self.control_methods, nonempty=False)
        unknown = [m for m in control_methods if m not in self.methods]
        if unknown:
            raise ValueError(f"control_methods {unknown} are not among the methods {list(self.methods)}")
        self.store("control_methods", tuple(control_methods))
        self.store("dense_layers", tuple(checks.listing("dense_layers", self.dense_layers, nonempty=False,
                                                        distinct=True)))
        self.store("score_options", registry.check_options(self.score_options))
        if self.report_sparsity is not None and not checks.among(self.report_sparsity, self.sparsities):
            raise ValueError(f"report_sparsity {self.report_sparsity!r} is not one of the sparsities "
                             f"{list(self.sparsities)}: pick one of them")

    def controlled(self, method: str, sparsity: float) -> bool:
        """Whether the budget and from-init controls run for `method` at `sparsity`."""
        return ((not self.control_methods or method in self.control_methods)
                and (not self.control_sparsities or checks.among(sparsity, self.control_sparsities)))


def global_and_layer(criteria: list[str], layer_criteria: list[str]) -> list[str]:
    """Every method of `criteria` pruned globally, and those of `layer_criteria` (each one of them) layer-wise too."""
    criteria = checks.listing("criteria", criteria, distinct=True)
    layer = checks.listing("layer_criteria", layer_criteria, lambda n, v: checks.one_of(n, v, criteria), distinct=True,
                           nonempty=False)
    return registry.labels(criteria, ("global",)) + (registry.labels(layer, ("layer",)) if layer else [])


def check_methods(model: nn.Module, dataset: Dataset, config: OneShotConfig) -> None:
    """Raise a ValueError if a method of `config` cannot prune `model` on `dataset` (before any work)."""
    check_model(model, dataset)  # the model's shape and one example through it, once for every method
    check_layer_sparsities(model, dict.fromkeys(config.dense_layers, 0.0))
    for method in config.methods:
        entry = registry.get(registry.split_label(method)[0])
        check_request(entry, model, dataset, entry.check_options(config.score_options.get(entry.name)), fits=False)


def split_metrics(model: nn.Module, dataset: Dataset) -> dict:
    """Validation and test loss / accuracy as flat columns."""
    out = {}
    for split in ("val", "test"):
        for key, value in evaluate(model, dataset, split).items():
            out[f"{split}_{key}"] = value
    return out


def metrics_row(model: nn.Module, dataset: Dataset, masks: Masks | None, dense_macs: int, stage: str,
                method: str = "dense", criterion: str = "none", scope: str = "none", sparsity: float = 0.0) -> dict:
    """The one metrics row of the lab: what was pruned, its density and MACs, and val / test metrics.

    `masks=None` is the dense model (density 1, speedup 1); every row has the same columns.
    """
    kept = int(macs(model, dataset.input_shape, masks).kept_macs.sum()) if masks is not None else dense_macs
    return {"method": method, "criterion": criterion, "scope": scope, "sparsity": float(sparsity),
            "density": masks.density() if masks is not None else 1.0, "macs": kept,
            "speedup": dense_macs / kept if kept else float("inf"), "stage": stage,
            "collapsed_layers": len(masks.collapsed_layers()) if masks is not None else 0,
            **split_metrics(model, dataset)}


def dense_macs(model: nn.Module, dataset: Dataset) -> int:
    """Multiply-accumulates per example of the unpruned model's prunable layers."""
    return int(macs(model, dataset.input_shape).dense_macs.sum())


def one_shot(model: nn.Module, dataset: Dataset, config: OneShotConfig, progress: bool = True,
             initial: nn.Module | None = None, costs: list | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Prune a trained `model` one-shot by every method at every sparsity; `model` is left untouched.

    Returns (metrics, layers): one `metrics_row` per (method, sparsity, stage) with stage 'one_shot' and,
    if `config.finetune` is set, 'finetuned' (trained under the binding mask, with its early-stop
    iteration chosen on validation), 'finetuned_<E>ep' per extra budget and 'from_init' (the mask on the
    `initial` weights, trained with `config.from_init`); and one row per (method, sparsity, layer) with
    that layer's density (and its reconstruction error where the method measures one). A scoring method scores
    once and masks per sparsity; the others prune (and update) per sparsity.
    A `costs` list receives one {method, sparsity, prune_seconds} per mask (wall time, not reproducible).
    """
    if not isinstance(config, OneShotConfig):
        raise ValueError(f"config must be a OneShotConfig, got {type(config).__name__}")
    if config.from_init is not None and not isinstance(initial, nn.Module):
        raise ValueError("config.from_init trains each mask from the initial weights: pass initial=<the model "
                         "before training>")
    check_methods(model, dataset, config)
    total_macs = dense_macs(model, dataset)
    metric_rows, layer_tables = [metrics_row(model, dataset, None, total_macs, "dense")], []
    scores_by_criterion: dict[str, dict] = {}
    for method in config.methods:
        name, scope = registry.split_label(method)
        options = config.score_options.get(name, {})
        for sparsity in config.sparsities:
            labels: dict[str, Any] = dict(method=method, criterion=name, scope=scope, sparsity=sparsity)
            started = time.perf_counter()
            result = prune(model, dataset, sparsity, name, scope, seed=config.seed,
                           scores=scores_by_criterion.get(name),
                           layer_sparsities=dict.fromkeys(config.dense_layers, 0.0), **options)
            if result.scores is not None:
                scores_by_criterion[name] = result.scores
            if costs is not None:
                costs.append({"method": method, "sparsity": sparsity, "prune_seconds": time.perf_counter() - started})
            masks, pruned = result.masks, result.model
            metric_rows.append(metrics_row(pruned, dataset, masks, total_macs, "one_shot", **labels))
            trained = [("finetuned", config.finetune, pruned)] if config.finetune is not None else []
            if config.controlled(method, sparsity):
                trained += [(f"finetuned_{e}ep", config.finetune.replace(epochs=e), pruned) for e in config.budgets]
                if config.from_init is not None:
                    trained.append(("from_init", config.from_init, initial))
            for stage, recipe, start in trained:
                net = copy.deepcopy(start)
                best = cached_fit(masks.apply(net) if stage == "from_init" else net, dataset, recipe, masks=masks,
                                  progress=progress).best()
                metric_rows.append({**metrics_row(net, dataset, masks, total_macs, stage, **labels),
                                    "budget_iterations": recipe.total_iterations(len(dataset.train.y)),
                                    "best_iteration": best["iteration"],
                                    "early_stop_test_accuracy": best["test_accuracy"]})
            table = masks.table(method=method, sparsity=float(sparsity))
            if result.errors is not None:
                table = table.merge(result.table()[["layer", "error"]].rename(columns={"error": "reconstruction_error"}),
                                    on="layer", how="left")
            layer_tables.append(table)
    return pd.DataFrame(metric_rows), pd.concat(layer_tables, ignore_index=True)


def best_on_validation(metrics: pd.DataFrame, stage: str = "one_shot") -> pd.DataFrame:
    """Per sparsity, the method of `stage` with the highest validation accuracy, with its test accuracy.

    The dense row leads the table. Selection reads the validation split only; the test column is reported.
    """
    by = "sparsity"
    if not isinstance(metrics, pd.DataFrame):
        raise ValueError(f"metrics must be a DataFrame of metrics rows (one_shot's), got {type(metrics).__name__}")
    missing = {"stage", "method", by, "val_accuracy", "test_accuracy"} - set(metrics.columns)
    if missing:
        raise ValueError(f"metrics lacks column(s) {sorted(missing)}")
    rows = metrics[(metrics["stage"] == stage) & metrics["val_accuracy"].notna()]
    if rows.empty:
        raise ValueError(f"no rows of stage {stage!r}; stages present: {sorted(set(metrics['stage']))}")
    best = rows.loc[rows.groupby(by).val_accuracy.idxmax(), [by, "method", "val_accuracy", "test_accuracy"]]
    dense = metrics[metrics["stage"] == "dense"][["method", "val_accuracy", "test_accuracy"]].assign(**{by: 0.0})
    return pd.concat([dense, best], ignore_index=True)[[by, "method", "val_accuracy", "test_accuracy"]]


def agreement(scores: dict[str, dict], reference: str, sparsity: float, scope: str = "global") -> pd.DataFrame:
    """Per (criterion, layer): Spearman correlation of scores with `reference`'s, and Jaccard index of the kept sets.

    The kept sets are the masks of every criterion at `sparsity` and `scope`; the Jaccard index is NaN where
    both masks empty the layer. Columns: criterion, parameter, spearman_vs_<reference>, kept_jaccard.
    """
    if reference not in scores:
        raise ValueError(f"reference {reference!r} is not among the scores: {', '.join(scores)}")
    check_sparsity(sparsity)
    keep = {c: masks_from_scores(s, sparsity, scope) for c, s in scores.items()}
    table = compare(scores, reference)[["curvature", "parameter", "spearman"]].rename(
        columns={"curvature": "criterion", "spearman": f"spearman_vs_{reference}"})
    table["kept_jaccard"] = [float((keep[r.criterion][r.parameter] & keep[reference][r.parameter]).sum()
                                   / (keep[r.criterion][r.parameter] | keep[reference][r.parameter]).sum())
                             for r in table.itertuples()]
    return table


@dataclass(frozen=True)
class Replicates:
    """A one-shot study repeated over seeds: every table carries a `seed` column; `models` the dense models."""

    metrics: pd.DataFrame
    layers: pd.DataFrame
    histories: pd.DataFrame
    costs: pd.DataFrame
    models: dict


def replicate_seed(dataset: str, model: str, train: TrainConfig, study: OneShotConfig, seed: int,
                   model_options: dict | None = None, root: str | None = None, progress: bool = False) -> dict:
    """One seed of `replicate`: load the split, build, train, run the study; the tables and the dense model."""
    data = load(dataset, seed=seed, root=root)
    net = build(model, data, seed=seed, **(model_options or {}))
    initial = copy.deepcopy(net)
    history = cached_fit(net, data, train.replace(seed=seed), progress=progress)
    costs: list[dict] = []
    recipes = {name: getattr(study, name).replace(seed=seed) for name in ("finetune", "from_init")
               if getattr(study, name) is not None}  # the replicate's data order in every training, not the base seed's
    metrics, layers = one_shot(net, data, study.replace(seed=seed, **recipes), progress=progress, initial=initial,
                               costs=costs)
    return {"metrics": metrics.assign(seed=seed), "layers": layers.assign(seed=seed),
            "histories": history.frame().assign(seed=seed), "costs": pd.DataFrame(costs).assign(seed=seed),
            "model": net}


def replicate(dataset: str, model: str, train: TrainConfig, study: OneShotConfig, seeds: list[int],
              model_options: dict | None = None, root: str | None = None, progress: bool = True,
              workers: int | None = None) -> Replicates:
    """Per seed: load the data split, build and train the dense model, run the one-shot `study` on it.

    The seed sets the validation split, the initialisation, the data order (of the dense run, the fine-tunes
    and the from-init controls), random scores and calibration samples, so methods are paired on it. `models` maps each seed to its trained dense model. `costs` holds
    each mask's scoring / pruning wall time in seconds (a criterion's scores are computed at its first
    sparsity); it is kept apart from the metrics, which are bit-reproducible. Seeds run on `workers`
    processes (default: one per core; 0: in this process), each on one torch thread, so the results do
    not depend on `workers`.
    """
    seeds = checks.listing("seeds", seeds, checks.seed, distinct=True)
    if not isinstance(train, TrainConfig) or not isinstance(study, OneShotConfig):
        raise ValueError("train must be a TrainConfig and study a OneShotConfig")
    first = load(dataset, seed=seeds[0], root=root)
    check_methods(build(model, first, **(model_options or {})), first, study)  # bad input fails here, not in a worker
    workers = registry.workers_for([registry.split_label(m)[0] for m in study.methods], workers)
    jobs = [(dataset, model, train, study, seed, model_options, root, progress and workers == 0) for seed in seeds]
    done = parallel.map_jobs(replicate_seed, jobs, workers, progress=progress)
    tables = {k: pd.concat([d[k] for d in done], ignore_index=True) for k in ("metrics", "layers", "histories", "costs")}
    return Replicates(**tables, models={seed: d["model"] for seed, d in zip(seeds, done)})
