"""Saliency scores `{param_name: tensor}` shaped like the parameters (low scores are pruned first), and the
criterion registry `CRITERIA` through which every caller names, configures and validates a criterion."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..util import checks
from .curvature import CURVATURES, diagonal, gradient, working_copy
from ..core.data import Dataset
from .updating import wanda_scores
from ..core.masks import parameter, prunable

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


# ---------------------------------------------------------------- the registry

@dataclass(frozen=True)
class Option:
    """One keyword option of a criterion: its default, accepted values and a one-line help."""

    name: str
    default: Any
    help: str
    kind: str = "int"  # int | str
    minimum: int | None = None
    choices: tuple[str, ...] = ()
    optional: bool = False  # None accepted (e.g. samples=None: the whole split)

    def check(self, value: Any) -> Any:
        """`value` validated for this option."""
        if value is None and self.optional:
            return None
        if self.choices:
            return checks.one_of(self.name, value, self.choices)
        return checks.integer(self.name, value, self.minimum)


@dataclass(frozen=True)
class Criterion:
    """A registry entry: the score function, its options, and what it needs to run."""

    name: str
    function: Callable[..., Scores]  # (model, dataset, seed, **options) -> Scores
    help: str
    options: tuple[Option, ...] = ()
    needs_data: bool = False

    def check(self, options: Mapping[str, Any] | None) -> dict[str, Any]:
        """Every option of this criterion with its value: `options` validated over the defaults."""
        options = checks.mapping(f"options of criterion {self.name!r}", options or {})
        known = {o.name: o for o in self.options}
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise ValueError(f"criterion {self.name!r} has no option(s) {', '.join(unknown)}; "
                             f"its options: {', '.join(known) or 'none'}")
        return {name: o.check(options[name]) if name in options else o.default for name, o in known.items()}

    def __call__(self, model: nn.Module, dataset=None, seed: int = 0, **options: Any) -> Scores:
        """The scores of `model` (options validated first)."""
        values = self.check(options)
        if not isinstance(model, nn.Module):
            raise ValueError(f"criterion {self.name!r} scores a torch model, got {type(model).__name__}")
        if self.needs_data and not isinstance(dataset, Dataset):
            raise ValueError(f"criterion {self.name!r} needs training data: pass dataset= a Dataset "
                             f"(oneshot_lab.load), got {type(dataset).__name__}")
        return self.function(model, dataset, checks.seed("seed", seed), **values)


SAMPLES = Option("samples", 2048, "training examples the scores are averaged over (None: all)", minimum=1,
                 optional=True)
BATCH = Option("batch_size", 256, "examples per backward pass", minimum=1)
PROBES = Option("probes", 100, "Rademacher probes of the Hutchinson estimate", minimum=1)
NEGATIVE_OPTION = Option("negative", "clamp", "negative curvature: clamp to 0, keep signed, or take abs",
                         kind="str", choices=NEGATIVE)


def _obd_entry(fixed: str | None) -> Criterion:
    """The registry entry for OBD with a fixed curvature, or with `curvature` as an option."""
    options = (NEGATIVE_OPTION, SAMPLES, BATCH, PROBES)
    if fixed is None:
        options = (Option("curvature", "ggn", "the curvature diagonal (LeCun used the GGN)", kind="str",
                          choices=CURVATURES),) + options
        return Criterion("obd", lambda m, d, s, **o: obd(m, d, seed=s, **o),
                         "Optimal Brain Damage h_kk w_k^2 / 2", options, needs_data=True)
    return Criterion(f"obd_{fixed}", lambda m, d, s, **o: obd(m, d, curvature=fixed, seed=s, **o),
                     f"Optimal Brain Damage with the {fixed} diagonal", options, needs_data=True)


CRITERIA: dict[str, Criterion] = {c.name: c for c in [
    Criterion("magnitude", lambda m, d, s: magnitude(m), "|w|"),
    Criterion("random", lambda m, d, s: random(m, seed=s), "uniform random scores (the control)"),
    Criterion("taylor", lambda m, d, s, **o: taylor(m, d, seed=s, **o),
              "|g w|, first-order Taylor (SNIP when the model is at initialisation)",
              (SAMPLES, BATCH), needs_data=True),
    Criterion("wanda", lambda m, d, s, **o: wanda_scores(m, d, seed=s, **o),
              "|W_ij| * ||X_j||_2 over calibration inputs (Wanda; the paper compares within rows), no update",
              (Option("samples", 1024, "calibration examples of the training split (None: all)", minimum=1,
                      optional=True),), needs_data=True),
    _obd_entry(None),
    *(_obd_entry(c) for c in CURVATURES),
]}


def criterion(name: str) -> Criterion:
    """The registry entry called `name`."""
    return CRITERIA[checks.one_of("criterion", name, CRITERIA)]


def check_options(score_options: Mapping[str, Mapping] | None) -> dict[str, dict]:
    """`score_options` ({criterion: {option: value}}, the one shape everywhere) with every criterion's options validated."""
    score_options = checks.mapping("score_options", score_options or {})
    return {name: criterion(name).check(options) for name, options in score_options.items()}


def compute(name: str, model: nn.Module, dataset=None, seed: int = 0, **options: Any) -> Scores:
    """Scores of `model` under the criterion called `name` (see `CRITERIA`)."""
    return criterion(name)(model, dataset, seed=seed, **options)
