"""`prune(model, data, sparsity, method, ...)`: one call for every method of the registry, on a copy of the model.

Sparsity is the fraction of prunable entries (the `weight` of every Linear / Conv layer) that end up zero:
scope="layer" prunes round(s * n_layer) of every layer, scope="global" round(s * n_total) over all of them,
torch.nn.utils.prune's rounding. Entries already pruned (`masks=`, e.g. IMP's previous level) stay pruned,
are zero in the copy and count toward the target; `layer_sparsities` gives layers a target of their own.
A scoring method's scores become masks through one rule (`core.masks.masks_from_scores`: the entries
torch.topk(largest=False) picks, ties included); a weight-updating method prunes the copy itself. The
caller's model is never modified.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
from torch import nn

from ..core.data import Dataset
from ..core.masks import Masks, as_masks, masks_from_scores, prunable, working_copy
from ..core.model_checks import check_model
from ..util import checks
from .registry import METHODS, Method, check_scope, get

Scores = dict[str, torch.Tensor]
Groups = list[tuple[tuple[str, ...], int]]  # (layers pruned together, entries pruned in them in the end)


@dataclass(frozen=True)
class Request:
    """What a method with `run` is asked to do: prune `model` (a working copy, already under `keep`) in place.

    `targets` are (layers pruned together, their target sparsity); `keep` the entries still there (all True when
    nothing was pruned before). Entries `keep` prunes must stay pruned and be left out of the problem.
    """

    model: nn.Module
    data: Dataset | None
    targets: list[tuple[tuple[str, ...], float]]
    keep: Masks
    scope: str
    seed: int
    options: dict

    @property
    def prior(self) -> Masks | None:
        """`keep` if it prunes anything, else None."""
        return None if all(bool(m.all()) for m in self.keep.values()) else self.keep

    @property
    def groups(self) -> Groups:
        """(layers, entries pruned in them in the end): round(s * n) of each group, never fewer than `keep` prunes."""
        return [(layers, max(round(s * sum(self.keep[n].numel() for n in layers)),
                             sum(int((~self.keep[n]).sum()) for n in layers))) for layers, s in self.targets]


@dataclass(frozen=True)
class Outcome:
    """What a weight-updating method returns: its masks, and what it measured on the way (optional)."""

    masks: Masks
    errors: Mapping[str, float] | None = None  # per layer: reconstruction error ||X (W - W_hat)^T||^2 / N
    predicted_increase: float | None = None  # the loss increase its quadratic model predicts


@dataclass(frozen=True)
class Pruned:
    """The masks and a pruned copy of the model (weights updated by methods that update), with what was measured."""

    masks: Masks
    model: nn.Module
    method: str
    scope: str
    sparsity: float
    scores: Scores | None = None  # a scoring method's scores (pass them back as `scores=` to reuse them)
    errors: Mapping[str, float] | None = None
    predicted_increase: float | None = None

    def table(self) -> pd.DataFrame:
        """One row per layer: layer, entries, pruned, sparsity, error (None unless the method measured it)."""
        errors = self.errors or {}
        return pd.DataFrame([{"layer": n, "entries": m.numel(), "pruned": m.numel() - int(m.sum()),
                              "sparsity": 1 - int(m.sum()) / m.numel(), "error": errors.get(n)}
                             for n, m in self.masks.items()])


def check_layer_sparsities(model: nn.Module, layer_sparsities: Mapping[str, float] | None) -> dict[str, float]:
    """`layer_sparsities` ({prunable parameter name: sparsity}) checked, in model order."""
    names = prunable(model)
    given = checks.mapping("layer_sparsities", layer_sparsities or {})
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise ValueError(f"layer_sparsities names {unknown[0]!r}, not a prunable parameter; prunable parameters: "
                         f"{', '.join(names)}")
    return {n: checks.fraction(f"layer_sparsities[{n!r}]", given[n]) for n in names if n in given}


def targets(keep: Masks, sparsity: float, scope: str, own: Mapping[str, float]) -> list[tuple[tuple[str, ...], float]]:
    """The layers pruned together and their sparsity: a layer of `own` (or every layer with scope='layer') alone."""
    alone = [n for n in keep if scope == "layer" or n in own]
    pool = tuple(n for n in keep if n not in alone)
    return [((n,), own.get(n, sparsity)) for n in alone] + ([(pool, sparsity)] if pool else [])


def check_request(entry: Method, model: Any, data: Any, options: dict, fits: bool = True) -> None:
    """Raise a ValueError if `entry` cannot prune `model` on `data` with its checked `options`: the model's shape
    (`core.model_checks`: shared layers, tied weights, ...), with `fits` one example of `data` through the model
    (callers checking many methods on one model and data pass it once), then what the method needs and supports."""
    if not isinstance(model, nn.Module):
        raise ValueError(f"method {entry.name!r} prunes a torch nn.Module, got {type(model).__name__}")
    if "data" in entry.needs and not isinstance(data, Dataset):
        raise ValueError(f"method {entry.name!r} needs training data: pass data= a Dataset (oneshot_lab.load), "
                         f"got {type(data).__name__}")
    check_model(model, data if fits and isinstance(data, Dataset) else None)
    reason = entry.unsupported(model, options)
    if reason:
        raise ValueError(f"method {entry.name!r} cannot prune this model: {reason}")


def prune(model: nn.Module, data: Dataset | None, sparsity: float, method: str = "magnitude", scope: str = "global",
          masks: Mapping[str, torch.Tensor] | None = None, seed: int = 0,
          layer_sparsities: Mapping[str, float] | None = None, scores: Scores | None = None, **options: Any) -> Pruned:
    """Prune a copy of `model` to `sparsity` with the registry method called `method` (see `ol.METHODS`).

    The method works on a working copy (eval mode, torch.nn.utils.prune masks folded in) of `model` under
    `masks`; `Pruned.model` is such a copy, pruned. `seed` draws the random scores and calibration samples.
    `scores`: a scoring method's scores from an earlier call with the same model, masks, options and seed
    (`Pruned.scores`), so that many sparsities cost one scoring; they are not recomputed, so they must be that
    call's. `Pruned.sparsity` is the target asked for. Every argument is checked before any work.
    """
    entry = get(method)
    sparsity = checks.fraction("sparsity", sparsity)
    scope = check_scope(scope)
    seed = checks.seed("seed", seed)
    options = entry.check_options(options)
    check_request(entry, model, data, options)
    if scores is not None and entry.score is None:
        raise ValueError(f"method {entry.name!r} computes no scores; pass scores=None")
    keep = as_masks(model, masks, complete=True)
    plan = targets(keep, sparsity, scope, check_layer_sparsities(model, layer_sparsities))
    if entry.run is not None:
        return run(entry, model, data, sparsity, scope, keep, plan, seed, options)
    if scores is None:
        scores = entry.score(keep.apply(working_copy(model)), data, seed, **options)
    check_scores(entry.name, scores, keep)
    chosen = select(scores, keep, plan)
    return Pruned(chosen, chosen.apply(working_copy(model)), entry.name, scope, sparsity, scores)


def score(model: nn.Module, data: Dataset | None, method: str = "magnitude", seed: int = 0,
          **options: Any) -> Scores:
    """The scores of the scoring method `method` (low are pruned first), everything checked as `prune` checks it."""
    entry = get(method)
    if entry.score is None:
        raise ValueError(f"method {entry.name!r} computes no scores (it makes its masks itself); scoring methods: "
                         f"{', '.join(n for n, m in METHODS.items() if m.score is not None)}")
    options = entry.check_options(options)
    check_request(entry, model, data, options)
    return entry.score(model, data, checks.seed("seed", seed), **options)


def check_scores(method: str, scores: Any, keep: Masks) -> None:
    """Raise a ValueError unless `scores` holds a tensor shaped like every prunable weight."""
    if not isinstance(scores, Mapping):
        raise ValueError(f"method {method!r} returned {type(scores).__name__}, not {{parameter name: scores}}")
    for name, mask in keep.items():
        if name not in scores:
            raise ValueError(f"method {method!r} returned no scores for {name!r}; it must score every prunable "
                             f"weight: {', '.join(keep)}")
        if not isinstance(scores[name], torch.Tensor) or tuple(scores[name].shape) != tuple(mask.shape):
            shape = tuple(scores[name].shape) if isinstance(scores[name], torch.Tensor) else type(scores[name]).__name__
            raise ValueError(f"method {method!r}: the scores of {name!r} have shape {shape}, the weight has "
                             f"{tuple(mask.shape)}")


def check_outcome(method: str, masks: Masks, request: Request) -> None:
    """Raise a ValueError unless `masks` keeps every entry pruned before and prunes exactly what each group asks."""
    for name, mask in request.keep.items():
        if name not in masks or tuple(masks[name].shape) != tuple(mask.shape):
            raise ValueError(f"method {method!r} returned no mask of shape {tuple(mask.shape)} for {name!r}")
        revived = int((masks[name] & ~mask).sum())
        if revived:
            raise ValueError(f"method {method!r} revived {revived} entries of {name!r} that were pruned before")
    for layers, count in request.groups:
        pruned = sum(int((~masks[n]).sum()) for n in layers)
        if pruned != count:
            raise ValueError(f"method {method!r} pruned {pruned} entries of {', '.join(layers)}; the request asked "
                             f"for {count} (sparsity counts are exact: round(s * n))")


def select(scores: Scores, keep: Masks, plan: list[tuple[tuple[str, ...], float]]) -> Masks:
    """The masks pruning the lowest `scores` of each group to its target (entries `keep` prunes go first, and stay)."""
    prior = None if all(bool(m.all()) for m in keep.values()) else keep
    out: dict[str, torch.Tensor] = {}
    for layers, target in plan:
        out.update(masks_from_scores({n: scores[n] for n in layers}, target, "global",
                                     masks=None if prior is None else {n: prior[n] for n in layers}))
    return Masks({n: out[n] for n in keep})


def run(entry: Method, model: nn.Module, data: Dataset | None, sparsity: float, scope: str, keep: Masks,
        plan: list[tuple[tuple[str, ...], float]], seed: int, options: dict) -> Pruned:
    """A method with its own `run` on a working copy of `model` under `keep`."""
    clone = working_copy(model)
    keep.apply(clone)
    request = Request(clone, data, plan, keep, scope, seed, options)
    outcome = entry.run(request)
    outcome = outcome if isinstance(outcome, Outcome) else Outcome(outcome)
    if not isinstance(outcome.masks, Mapping):
        raise ValueError(f"method {entry.name!r} returned {type(outcome.masks).__name__}; run() must return its "
                         f"masks (ol.Masks) or an Outcome")
    try:
        outcome = dataclasses.replace(outcome, masks=Masks(outcome.masks))
    except TypeError as error:
        raise ValueError(f"method {entry.name!r} returned bad masks: {error}") from None
    check_outcome(entry.name, outcome.masks, request)
    masks = Masks({n: outcome.masks[n] for n in keep})
    masks.apply(clone)
    return Pruned(masks, clone, entry.name, scope, sparsity, None, outcome.errors, outcome.predicted_increase)
