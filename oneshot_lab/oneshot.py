"""One-shot pruning studies: score a trained model, mask it at many sparsities, evaluate, fine-tune."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import pandas as pd
from torch import nn

from . import checks, saliency
from .config import Config, option
from .curvature import compare
from .data import Dataset
from .prune import SCOPES, Masks, check_sparsity, macs, masks_from_scores
from .train import TrainConfig, evaluate, fit


@dataclass(frozen=True)
class Method:
    """A pruning method: a saliency criterion and a scope, written 'criterion/scope'."""

    criterion: str
    scope: str

    @classmethod
    def parse(cls, text: str) -> "Method":
        """Parse 'magnitude/global' style text, validating both halves."""
        criterion, sep, scope = str(text).partition("/")
        if not sep or criterion not in saliency.CRITERIA or scope not in SCOPES:
            raise ValueError(f"bad method {text!r}: write 'criterion/scope' with criterion in "
                             f"{{{', '.join(saliency.CRITERIA)}}} and scope in {{{', '.join(SCOPES)}}}")
        return cls(criterion, scope)

    def __str__(self) -> str:
        """The \'criterion/scope\' text."""
        return f"{self.criterion}/{self.scope}"


@dataclass(frozen=True)
class OneShotConfig(Config):
    """A one-shot study: every method at every sparsity, evaluated as pruned and optionally after a fine-tune."""

    methods: tuple = option(("magnitude/global",), "criterion/scope pairs, e.g. 'magnitude/global'")
    sparsities: tuple = option((0.5, 0.7, 0.8, 0.9, 0.95), "fractions of prunable weights removed")
    finetune: TrainConfig | None = option(None, "training under the binding mask after pruning (None: none)")
    score_options: dict = option({}, "keyword options per criterion: {criterion: {option: value}}")
    report_sparsity: float | None = option(None, "sparsity whose per-layer densities a report shows")
    seed: int = option(0, "seed of random scores and of sampled curvature")

    def __post_init__(self) -> None:
        """Validate every field and store it normalised."""
        methods = checks.listing("methods", self.methods)
        for method in methods:
            Method.parse(method)
        self.store("methods", tuple(methods))
        self.store("sparsities", tuple(checks.listing("sparsities", self.sparsities, checks.fraction)))
        if self.finetune is not None and not isinstance(self.finetune, TrainConfig):
            raise ValueError(f"finetune must be a TrainConfig or None, got {self.finetune!r}")
        self.store("score_options", saliency.check_options(self.score_options))
        if self.report_sparsity is not None and not any(
                abs(checks.fraction("report_sparsity", self.report_sparsity) - s) < 1e-9 for s in self.sparsities):
            raise ValueError(f"report_sparsity {self.report_sparsity!r} is not one of the sparsities "
                             f"{list(self.sparsities)}: pick one of them")
        self.store("seed", checks.seed("seed", self.seed))

    @property
    def parsed(self) -> list[Method]:
        """The methods as `Method` objects."""
        return [Method.parse(m) for m in self.methods]


def methods(criteria: list[str], scopes: tuple[str, ...] = SCOPES) -> list[str]:
    """Every 'criterion/scope' pair of `criteria` and `scopes`, criterion-major."""
    criteria = checks.listing("criteria", criteria, distinct=True)
    scopes = checks.listing("scopes", scopes, distinct=True)
    return [str(Method.parse(f"{c}/{s}")) for c in criteria for s in scopes]


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


def one_shot(model: nn.Module, dataset: Dataset, config: OneShotConfig,
             progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Prune a trained `model` one-shot by every method at every sparsity; `model` is left untouched.

    Returns (metrics, layers): one `metrics_row` per (method, sparsity, stage) with stage 'one_shot' and,
    if `config.finetune` is set, 'finetuned' (trained under the binding mask, with its early-stop
    iteration chosen on validation); and one row per (method, sparsity, layer) with that layer's density.
    """
    if not isinstance(config, OneShotConfig):
        raise ValueError(f"config must be a OneShotConfig, got {type(config).__name__}")
    total_macs = dense_macs(model, dataset)
    metric_rows, layer_tables = [metrics_row(model, dataset, None, total_macs, "dense")], []
    scores_by_criterion: dict[str, dict] = {}
    for method in config.parsed:
        if method.criterion not in scores_by_criterion:
            scores_by_criterion[method.criterion] = saliency.compute(
                method.criterion, model, dataset, seed=config.seed, **config.score_options.get(method.criterion, {}))
        for sparsity in config.sparsities:
            masks = masks_from_scores(scores_by_criterion[method.criterion], sparsity, method.scope)
            labels: dict[str, Any] = dict(method=str(method), criterion=method.criterion, scope=method.scope,
                                          sparsity=sparsity)
            pruned = masks.apply(copy.deepcopy(model))
            metric_rows.append(metrics_row(pruned, dataset, masks, total_macs, "one_shot", **labels))
            if config.finetune is not None:
                best = fit(pruned, dataset, config.finetune, masks=masks, progress=progress).best()
                metric_rows.append({**metrics_row(pruned, dataset, masks, total_macs, "finetuned", **labels),
                                    "best_iteration": best["iteration"],
                                    "early_stop_test_accuracy": best["test_accuracy"]})
            layer_tables.append(masks.table(method=str(method), sparsity=float(sparsity)))
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
