"""The scoring methods of the registry: magnitude, random, first-order Taylor and the OBD family (and Wanda's scores).

Each score function returns `{parameter name: tensor}` shaped like the prunable weights (low scores are pruned
first); `METHODS` holds their registry entries (options, needs, what a model must support). The registry turns
scores into masks (`pruning.prune`). The `wanda` score function is here; its registry entry is in `updating`."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..core.data import sample
from ..core.masks import parameter, prunable, working_copy
from ..util import checks, rules
from ..util.rules import Rule
from . import reconstruction
from .curvature import CURVATURES, diagonal, gradient, supported_curvatures
from .registry import Method, Option

Scores = dict[str, torch.Tensor]
NEGATIVE = ("clamp", "signed", "abs")


def _names(model: nn.Module, names: list[str] | None) -> list[str]:
    """The parameters to score: `names`, or every prunable parameter."""
    return prunable(model) if names is None else list(names)


def _effective(model: nn.Module, name: str) -> torch.Tensor:
    """The weight the model computes with (under torch.nn.utils.prune: `weight_orig * weight_mask`)."""
    module_name, _, attr = name.rpartition(".")
    return getattr(model.get_submodule(module_name), attr)


@torch.no_grad()
def magnitude(model: nn.Module, names: list[str] | None = None) -> Scores:
    """|w| of every prunable weight (entries pruned with torch.nn.utils.prune score 0)."""
    return {n: _effective(model, n).detach().abs() for n in _names(model, names)}


@torch.no_grad()
def random(model: nn.Module, seed: int = 0, names: list[str] | None = None) -> Scores:
    """Uniform random scores from a generator seeded by `seed` (global RNG untouched)."""
    gen = torch.Generator().manual_seed(seed)
    return {n: torch.rand(parameter(model, n).shape, generator=gen) for n in _names(model, names)}


@torch.no_grad()
def obd_from_diagonal(model: nn.Module, diagonal: Scores, negative: str = "clamp",
                      names: list[str] | None = None) -> Scores:
    """OBD saliency s_k = h_kk w_k^2 / 2 (LeCun et al. 1989, eq. 5) from a precomputed curvature diagonal.

    Negative h_kk (exact Hessian, Hutchinson) are set to 0 by 'clamp' (the quadratic model cannot
    predict a loss decrease on deletion, so such weights go first), kept by 'signed' (pruned before
    any zero-curvature weight) or replaced by |h_kk| by 'abs'.
    """
    checks.one_of("negative", negative, NEGATIVE)
    clone = working_copy(model)
    out = {}
    for name in _names(clone, names):
        if name not in diagonal:
            raise ValueError(f"no curvature for parameter {name!r}; the diagonal covers: {', '.join(diagonal)}")
        h = diagonal[name]
        h = h.clamp_min(0) if negative == "clamp" else h.abs() if negative == "abs" else h
        out[name] = 0.5 * h * parameter(clone, name).detach() ** 2
    return out


def obd(model: nn.Module, dataset, curvature: str = "ggn", negative: str = "clamp", samples: int | None = 2048,
        batch_size: int = 256, probes: int = 100, seed: int = 0, names: list[str] | None = None) -> Scores:
    """Optimal Brain Damage saliency h_kk w_k^2 / 2 with h the diagonal of `curvature` over `samples` training examples."""
    checks.one_of("negative", negative, NEGATIVE)
    diag = diagonal(model, dataset, curvature, samples=samples, batch_size=batch_size, probes=probes, seed=seed)
    return obd_from_diagonal(model, diag, negative=negative, names=names)


def taylor(model: nn.Module, dataset, samples: int | None = 2048, batch_size: int = 256, seed: int = 0,
           names: list[str] | None = None) -> Scores:
    """First-order Taylor score |g_k w_k|, g the mean-loss gradient over `samples` training examples.

    On a network at initialisation this is SNIP's connection sensitivity (Lee et al. 2019); on a trained
    network it is the first-order Taylor estimate of the loss change, which is what the lab's one-shot
    studies compute, hence the name.
    """
    clone = working_copy(model)
    grads = gradient(clone, dataset, samples=samples, batch_size=batch_size, seed=seed)
    return {n: (grads[n] * parameter(clone, n)).detach().abs() for n in _names(clone, names)}




@torch.no_grad()
def wanda(model: nn.Module, dataset, samples: int | None = 1024, seed: int = 0) -> Scores:
    """Wanda scores |W_ij| * ||X_j||_2 of every prunable weight, shaped like the weights (model untouched).

    X_j is input feature j of the layer (for a Conv layer: entry j of the unfolded patch) over all `samples`
    seeded training examples (and all positions), all computed in one pass of the dense model.
    """
    clone = working_copy(model)
    names = prunable(clone)
    x, _ = sample(dataset, samples, seed)
    grams = reconstruction.grams(clone, names, x)
    out = {}
    for name in names:
        param = clone.get_parameter(name)
        out[name] = reconstruction.wanda(reconstruction.flat_weight(clone, name), grams[name]).reshape(param.shape) \
            .to(param.dtype)
    return out


def matrix_layers(model: nn.Module, options: dict | None = None) -> str | None:
    """Why `model` has a prunable layer that is not a matrix product of its inputs (Linear, Conv1d/2d), or None."""
    try:
        for name in prunable(model):
            reconstruction.check_layer(name, model.get_submodule(name.rpartition(".")[0]))
    except ValueError as error:
        return str(error)
    return None


def curvature_supported(curvature: str) -> Any:
    """A `supports` rule: None if BackPACK can compute `curvature` (or the option's) for the model."""
    def supports(model: nn.Module, options: dict) -> str | None:
        wanted = options.get("curvature", curvature)
        if wanted in supported_curvatures(model):
            return None
        return f"BackPACK cannot compute the {wanted!r} diagonal of its layers (see pruning.curvature.check)"
    return supports


ALL_ALLOWED = rules.RULES["samples"].but(optional=True, note="training examples; None: all")
SAMPLES = Option("samples", 2048, "training examples the scores are averaged over", ALL_ALLOWED)
BATCH = Option("batch_size", 256, "examples per backward pass")
PROBES = Option("probes", 100, "Rademacher probes of the Hutchinson estimate")
NEGATIVE_OPTION = Option("negative", "clamp", "negative curvature: clamp to 0, keep signed, or take abs",
                         Rule("str", choices=NEGATIVE))
CALIBRATION = Option("samples", 1024, "calibration examples of the training split", ALL_ALLOWED)


def obd_entry(fixed: str | None) -> Method:
    """The registry entry for OBD with a fixed curvature, or with `curvature` as an option."""
    options = (NEGATIVE_OPTION, SAMPLES, BATCH, PROBES)
    if fixed is None:
        options = (Option("curvature", "ggn", "the curvature diagonal (LeCun used the GGN)",
                          Rule("str", choices=CURVATURES)),) + options
        return Method("obd", "Optimal Brain Damage h_kk w_k^2 / 2", score=lambda m, d, s, **o: obd(m, d, seed=s, **o),
                      options=options, needs=("data", "trained"), supports=curvature_supported("ggn"),
                      source=__name__)
    return Method(f"obd_{fixed}", f"Optimal Brain Damage with the {fixed} diagonal",
                  score=lambda m, d, s, **o: obd(m, d, curvature=fixed, seed=s, **o), options=options,
                  needs=("data", "trained"), supports=curvature_supported(fixed), source=__name__)


METHODS = (
    Method("magnitude", "|w|", score=lambda m, d, s: magnitude(m), source=__name__),
    Method("random", "uniform random scores (the control)", score=lambda m, d, s: random(m, seed=s), source=__name__),
    Method("taylor", "|g w|, first-order Taylor (SNIP when the model is at initialisation)",
           score=lambda m, d, s, **o: taylor(m, d, seed=s, **o), options=(SAMPLES, BATCH), needs=("data",),
           source=__name__),
    obd_entry(None),
    *(obd_entry(c) for c in CURVATURES),
)
