"""One-shot pruning studies: score a trained model, mask it at many sparsities, evaluate, fine-tune."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Sequence

import pandas as pd
from torch import nn

from . import saliency
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
        return f"{self.criterion}/{self.scope}"


def check_study(methods: Sequence[str], sparsities: Sequence[float],
                report_sparsity: float | None = None) -> list[Method]:
    """The parsed methods; ValueError for a bad method or sparsity, or a report sparsity not in `sparsities`."""
    if not methods:
        raise ValueError("methods is empty: give at least one 'criterion/scope', e.g. 'magnitude/global'")
    parsed = [Method.parse(m) for m in methods]
    if not sparsities:
        raise ValueError("sparsities is empty: give at least one value in [0, 1]")
    for s in sparsities:
        check_sparsity(s)
    if report_sparsity is not None and not any(abs(float(report_sparsity) - float(s)) < 1e-9 for s in sparsities):
        raise ValueError(f"report sparsity {report_sparsity!r} is not one of the sparsities {list(sparsities)}: "
                         "pick one of them")
    return parsed


def split_metrics(model: nn.Module, dataset: Dataset) -> dict:
    """Validation and test loss / accuracy as flat columns."""
    out = {}
    for split in ("val", "test"):
        for key, value in evaluate(model, dataset, split).items():
            out[f"{split}_{key}"] = value
    return out


def one_shot(model: nn.Module, dataset: Dataset, methods: Sequence[str], sparsities: Sequence[float],
             finetune: TrainConfig | None = None, seed: int = 0,
             score_options: dict | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Prune a trained `model` one-shot by every method at every sparsity; `model` is left untouched.

    Returns (metrics, layers): one row per (method, sparsity, stage) with stage 'one_shot' and,
    if `finetune` is given, 'finetuned' (trained under the binding mask); and one row per
    (method, sparsity, layer) with that layer's density.
    """
    parsed = check_study(methods, sparsities)
    dense_macs = int(macs(model, dataset.input_shape).dense_macs.sum())
    dense = {"method": "dense", "criterion": "none", "scope": "none", "sparsity": 0.0, "density": 1.0,
             "macs": dense_macs, "speedup": 1.0, "stage": "dense", "collapsed_layers": 0,
             **split_metrics(model, dataset)}
    metric_rows, layer_table = [dense], []
    scores_by_criterion: dict[str, dict] = {}
    for method in parsed:
        if method.criterion not in scores_by_criterion:
            scores_by_criterion[method.criterion] = saliency.compute(
                method.criterion, model, dataset, seed=seed, **(score_options or {}).get(method.criterion, {}))
        scores = scores_by_criterion[method.criterion]
        for sparsity in sparsities:
            masks = masks_from_scores(scores, sparsity, method.scope)
            kept_macs = int(macs(model, dataset.input_shape, masks).kept_macs.sum())
            base = {"method": str(method), "criterion": method.criterion, "scope": method.scope,
                    "sparsity": float(sparsity), "density": masks.density(), "macs": kept_macs,
                    "speedup": dense_macs / kept_macs if kept_macs else float("inf"),
                    "collapsed_layers": len(masks.collapsed_layers())}
            pruned = masks.apply(copy.deepcopy(model))
            metric_rows.append({**base, "stage": "one_shot", **split_metrics(pruned, dataset)})
            if finetune is not None:
                history = fit(pruned, dataset, finetune, masks=masks)
                best = history.best()
                metric_rows.append({**base, "stage": "finetuned", **split_metrics(pruned, dataset),
                                    "best_iteration": best["iteration"],
                                    "early_stop_test_accuracy": best["test_accuracy"]})
            layer_table += layer_rows(masks, method, sparsity)
    return pd.DataFrame(metric_rows), pd.DataFrame(layer_table)


def layer_rows(masks: Masks, method: Method, sparsity: float) -> list[dict]:
    """Per-layer density rows of one mask."""
    report = masks.report()
    report = report[report.layer != "total"]
    return [{"method": str(method), "sparsity": float(sparsity), "layer": r.layer, "entries": r.entries,
             "density": r.density, "collapsed": bool(r.collapsed)} for r in report.itertuples()]


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
