"""Saliency scores: `{param_name: tensor}` shaped like the parameters; low scores are pruned first."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from .prune import _parameter, prunable

Scores = dict[str, torch.Tensor]


def _names(model: nn.Module, names: list[str] | None) -> list[str]:
    """The parameters to score: `names`, or every prunable parameter."""
    return prunable(model) if names is None else list(names)


@torch.no_grad()
def magnitude(model: nn.Module, names: list[str] | None = None) -> Scores:
    """|w| of every prunable weight."""
    return {n: _parameter(model, n).detach().abs().clone() for n in _names(model, names)}


@torch.no_grad()
def random(model: nn.Module, seed: int = 0, names: list[str] | None = None) -> Scores:
    """Uniform random scores from a generator seeded by `seed` (global RNG untouched)."""
    gen = torch.Generator().manual_seed(seed)
    return {n: torch.rand(_parameter(model, n).shape, generator=gen) for n in _names(model, names)}


CRITERIA: dict[str, Callable[..., Scores]] = {
    "magnitude": lambda model, dataset=None, seed=0, **kw: magnitude(model, **kw),
    "random": lambda model, dataset=None, seed=0, **kw: random(model, seed=seed, **kw),
}


def compute(criterion: str, model: nn.Module, dataset=None, seed: int = 0, **options) -> Scores:
    """Scores of `model` under the criterion called `criterion` (see `CRITERIA`)."""
    if criterion not in CRITERIA:
        raise ValueError(f"unknown criterion {criterion!r}; valid criteria: {', '.join(CRITERIA)}")
    return CRITERIA[criterion](model, dataset=dataset, seed=seed, **options)
