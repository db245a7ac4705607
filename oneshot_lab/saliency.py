"""Saliency scores: `{param_name: tensor}` shaped like the parameters; low scores are pruned first."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from . import curvature as _curvature
from .curvature import CURVATURES, working_copy
from .prune import _parameter, prunable

Scores = dict[str, torch.Tensor]
NEGATIVE = ("clamp", "signed", "abs")


def _names(model: nn.Module, names: list[str] | None) -> list[str]:
    """The parameters to score: `names`, or every prunable parameter."""
    return prunable(model) if names is None else list(names)


def _effective(model: nn.Module, name: str) -> torch.Tensor:
    """The weight the model computes with (under torch.nn.utils.prune: `weight_orig * weight_mask`)."""
    mod_name, _, attr = name.rpartition(".")
    return getattr(model.get_submodule(mod_name), attr) if mod_name else getattr(model, attr)


@torch.no_grad()
def magnitude(model: nn.Module, names: list[str] | None = None) -> Scores:
    """|w| of every prunable weight (entries pruned with torch.nn.utils.prune score 0)."""
    return {n: _effective(model, n).detach().abs().clone() for n in _names(model, names)}


@torch.no_grad()
def random(model: nn.Module, seed: int = 0, names: list[str] | None = None) -> Scores:
    """Uniform random scores from a generator seeded by `seed` (global RNG untouched)."""
    gen = torch.Generator().manual_seed(seed)
    return {n: torch.rand(_parameter(model, n).shape, generator=gen) for n in _names(model, names)}


def curvature_diagonal(model: nn.Module, dataset, curvature: str = "ggn", **options) -> Scores:
    """Raw (signed) diagonal curvature of every trainable parameter; see `curvature.diagonal`."""
    return _curvature.diagonal(model, dataset, curvature, **options)


def _check_negative(negative: str) -> None:
    """Raise unless `negative` names a way to treat negative curvature."""
    if negative not in NEGATIVE:
        raise ValueError(f"unknown negative={negative!r}; valid choices: {', '.join(NEGATIVE)}")


@torch.no_grad()
def obd_from_diagonal(model: nn.Module, diagonal: Scores, negative: str = "clamp",
                      names: list[str] | None = None) -> Scores:
    """OBD saliency s_k = h_kk w_k^2 / 2 (LeCun et al. 1989, eq. 5) from a precomputed curvature diagonal.

    Negative h_kk (exact Hessian, Hutchinson) are set to 0 by 'clamp' (the quadratic model cannot
    predict a loss decrease on deletion, so such weights go first), kept by 'signed' (pruned before
    any zero-curvature weight) or replaced by |h_kk| by 'abs'.
    """
    _check_negative(negative)
    clone = working_copy(model)
    out = {}
    for name in _names(clone, names):
        if name not in diagonal:
            raise ValueError(f"no curvature for parameter {name!r}; the diagonal covers: {', '.join(diagonal)}")
        h = diagonal[name]
        h = h.clamp_min(0) if negative == "clamp" else h.abs() if negative == "abs" else h
        out[name] = 0.5 * h * _parameter(clone, name).detach() ** 2
    return out


def obd(model: nn.Module, dataset, curvature: str = "ggn", negative: str = "clamp", samples: int | None = 2048,
        batch_size: int = 256, probes: int = 100, seed: int = 0, names: list[str] | None = None) -> Scores:
    """Optimal Brain Damage saliency h_kk w_k^2 / 2 with h the diagonal of `curvature` over `samples` training examples."""
    _check_negative(negative)
    diag = curvature_diagonal(model, dataset, curvature, samples=samples, batch_size=batch_size,
                              probes=probes, seed=seed)
    return obd_from_diagonal(model, diag, negative=negative, names=names)


def snip(model: nn.Module, dataset, samples: int | None = 2048, batch_size: int = 256, seed: int = 0,
         names: list[str] | None = None) -> Scores:
    """SNIP connection sensitivity |g_k w_k| (Lee et al. 2019), g the mean-loss gradient over `samples` training examples."""
    clone = working_copy(model)
    grads = _curvature.gradient(clone, dataset, samples=samples, batch_size=batch_size, seed=seed)
    return {n: (grads[n] * _parameter(clone, n)).detach().abs() for n in _names(clone, names)}


def _needs_data(name: str, dataset) -> None:
    """Raise if the data-driven criterion `name` was called without a dataset."""
    if dataset is None:
        raise ValueError(f"criterion {name!r} needs training data: pass dataset=")


def _obd_criterion(curvature: str) -> Callable[..., Scores]:
    """Registry entry for OBD with a fixed curvature."""
    def criterion(model, dataset=None, seed=0, **kw):
        _needs_data(f"obd_{curvature}", dataset)
        return obd(model, dataset, curvature=curvature, seed=seed, **kw)
    return criterion


def _obd_any(model, dataset=None, seed=0, **kw) -> Scores:
    """Registry entry for OBD with `curvature=` among the options (default 'ggn', LeCun's choice)."""
    _needs_data("obd", dataset)
    return obd(model, dataset, seed=seed, **kw)


def _snip_criterion(model, dataset=None, seed=0, **kw) -> Scores:
    """Registry entry for SNIP."""
    _needs_data("snip", dataset)
    return snip(model, dataset, seed=seed, **kw)


CRITERIA: dict[str, Callable[..., Scores]] = {
    "magnitude": lambda model, dataset=None, seed=0, **kw: magnitude(model, **kw),
    "random": lambda model, dataset=None, seed=0, **kw: random(model, seed=seed, **kw),
    "snip": _snip_criterion,
    "obd": _obd_any,
    **{f"obd_{c}": _obd_criterion(c) for c in CURVATURES},
}


def compute(criterion: str, model: nn.Module, dataset=None, seed: int = 0, **options) -> Scores:
    """Scores of `model` under the criterion called `criterion` (see `CRITERIA`)."""
    if criterion not in CRITERIA:
        raise ValueError(f"unknown criterion {criterion!r}; valid criteria: {', '.join(CRITERIA)}")
    return CRITERIA[criterion](model, dataset=dataset, seed=seed, **options)
