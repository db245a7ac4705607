"""One-shot pruners that also update the surviving weights: OBS, WoodFisher, OBC, SparseGPT (and Wanda).

`prune(model, dataset, sparsity, method)` returns a `Pruned`: the masks and a pruned copy of the model;
the caller's model is never modified. Sparsity semantics are those of `prune.masks_from_scores`: the
prunable parameters are the `weight` of every Linear / Conv layer, scope="layer" prunes
round(s * n_layer) entries of every layer and scope="global" round(s * n_total) overall.

Methods (formulas in REFERENCES.md, "Second order with weight updates"):

- "obs": Optimal Brain Surgeon (Hassibi & Stork 1993) with the inverse of the full empirical Fisher
  F = (1/N) sum_n g_n g_n^T + lambda I over all prunable weights (g_n: per-example gradients of the
  cross-entropy), lambda = damp * mean(diag F). Greedy: each step removes the `batch` weights of least
  w_q^2 / [F^-1]_qq together with the group OBS update dw = -F^-1[:, Q] (F^-1[Q, Q])^-1 w_Q and the
  matching downdate of F^-1 (batch=1: exact greedy OBS). scope="layer" only lets a layer's weights be
  chosen while the layer is short of its count. Refuses models above `max_weights` prunable weights.
  With fewer examples than weights the inverse is held in Woodbury form (`fisher.remove_lowrank`: N x n
  memory, no n x n matrix); the removals are the same as with the dense inverse (`fisher.remove`).
- "woodfisher": WoodFisher (Singh & Alistarh 2020): the same greedy OBS on a block-diagonal Fisher,
  blocks of `block_size` consecutive weights of one layer (row-major); each block's inverse is built by
  N Woodbury rank-one updates from (1/lambda) I. Each step removes the `batch` weights of least saliency
  over all blocks and applies the group OBS formula within every block that lost weights (greedy within
  blocks; with batch >= the count it is the one-shot group formula per block).
- "obc", "sparsegpt", "wanda": layer by layer on the reconstruction objective ||X W^T - X W_hat^T||^2,
  see `oneshot_lab.pruning.reconstruction`. Layers are pruned in model order, each on calibration inputs computed
  through the already pruned (and updated) layers before it. "obc" prunes every row by exact greedy
  OBS with H = 2 X^T X / N + damp * mean(diag) I; "sparsegpt" uses SparseGPT's column-blocked update;
  "wanda" keeps the weights and prunes by |W_ij| * ||X_j||_2 within each output row.

Per-layer counts of the layer-wise methods: scope="layer" gives each layer round(s * n_layer).
scope="global" ranks every weight of every layer once, at the start, by its OBS reconstruction
saliency w^2 / (2 [H^-1]_jj) (H from the dense model's calibration inputs; the predicted squared output
error per example, comparable across layers) and gives each layer the number of its entries among the
round(s * n_total) lowest. Within a layer, "obc" gives each row the number of its entries among the
layer's count lowest saliencies (on the layer's current inputs) and then prunes the row greedily;
"sparsegpt" picks its mask per column block over all rows; "wanda" spreads the layer's count evenly
over the rows (floor or ceil of count / rows, by cumulative rounding) and compares within each row.

Existing masks (`masks=`, e.g. the previous level of IMP) and per-layer targets (`layer_sparsities=`):
the copy is the model under `masks`, whose pruned entries stay pruned and exactly 0 and count toward the
targets (cumulative, as in `prune.masks_from_scores`; a group whose target is below what is already pruned
prunes nothing more). A layer of `layer_sparsities` is a group of its own; `sparsity` and `scope` apply to
the others. The pruned entries are out of the problem from the start, so no update revives them:
"obs" / "woodfisher" work on the Fisher restricted to the surviving weights (each block restricted to its
survivors); "obc" prunes each row on H restricted to its kept columns (rows grouped by pattern, see
`oneshot_lab.pruning.layer_by_layer`), and the global ranking uses those restricted saliencies; "sparsegpt" has them in
its mask at their columns and shares the remaining count over the column blocks in proportion to their
survivors; "wanda" shares it over the rows in proportion to their survivors. Without masks (or with
all-true ones) every method gives bit for bit what it gives without the argument.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
from torch import nn

from ..util import checks
from . import fisher, layer_by_layer, reconstruction
from .curvature import sample, working_copy
from ..core.masks import Masks, parameter, prunable

SCOPES = ("global", "layer")
LAYERWISE = ("obc", "sparsegpt", "wanda")
Groups = list[tuple[tuple[str, ...], int]]  # (layers pruned together, entries pruned in them in the end)


@dataclass(frozen=True)
class Method:
    """A pruner: one-line help and its options with their defaults."""

    help: str
    options: dict[str, Any]


_COMMON = {"samples": 1024, "seed": 0}
METHODS: dict[str, Method] = {
    "obs": Method("greedy Optimal Brain Surgeon with the full empirical-Fisher inverse (small models)",
                  {**_COMMON, "damp": 0.01, "batch": None, "max_weights": 12000}),
    "woodfisher": Method("greedy OBS with a block-diagonal empirical Fisher inverted by Woodbury rank-one updates",
                         {**_COMMON, "damp": 0.01, "block_size": 128, "batch": None}),
    "obc": Method("layer-wise exact greedy OBS on the reconstruction error of every row (OBC)",
                  {**_COMMON, "damp": 0.01}),
    "sparsegpt": Method("layer-wise SparseGPT: column blocks, adaptive masks, approximate OBS updates",
                        {**_COMMON, "damp": 0.01, "block_size": 128}),
    "wanda": Method("layer-wise |W| x input norm within each output row, no weight update",
                    {**_COMMON, "damp": 0.01}),
}
OPTION_HELP = {
    "samples": "training examples drawn (seeded) for gradients / calibration inputs; None: all",
    "seed": "seed of the generator that draws the samples",
    "damp": "damping lambda relative to the mean curvature diagonal (wanda: only for scope='global')",
    "batch": "weights removed per greedy step (1: exact greedy; None: ceil(count / 256))",
    "max_weights": "largest number of prunable weights 'obs' accepts",
    "block_size": "woodfisher: weights per Fisher block; sparsegpt: columns per block",
}


@dataclass(frozen=True)
class Layer:
    """What happened to one prunable parameter: `error` is the reconstruction error (layer-wise methods)."""

    name: str
    entries: int
    pruned: int
    error: float | None


@dataclass(frozen=True)
class Pruned:
    """Masks and a pruned, weight-updated copy of the model.

    `predicted_increase` (obs, woodfisher): 1/2 dw^T F dw under the damped quadratic model of the loss.
    `layers[i].error` (obc, sparsegpt, wanda): ||X (W - W_hat)^T||_F^2 / N on the layer's calibration inputs.
    """

    masks: Masks
    model: nn.Module
    method: str
    scope: str
    sparsity: float
    layers: tuple[Layer, ...]
    predicted_increase: float | None = None

    def table(self) -> pd.DataFrame:
        """One row per layer: layer, entries, pruned, sparsity, error."""
        return pd.DataFrame([{"layer": l.name, "entries": l.entries, "pruned": l.pruned,
                              "sparsity": l.pruned / l.entries, "error": l.error} for l in self.layers])


def check_options(method: str, options: dict[str, Any]) -> dict[str, Any]:
    """The method's options with defaults filled in, every value checked."""
    checks.one_of("method", method, METHODS)
    options = checks.mapping(f"{method} options", options)
    defaults = METHODS[method].options
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise ValueError(f"unknown option {unknown[0]!r} for method {method!r}; valid options: {', '.join(defaults)}")
    out = {**defaults, **options}
    if out["samples"] is not None:
        out["samples"] = checks.integer("samples", out["samples"], 1)
    out["seed"] = checks.seed("seed", out["seed"])
    out["damp"] = checks.number("damp", out["damp"], 0.0)
    if "block_size" in out:
        out["block_size"] = checks.integer("block_size", out["block_size"], 1)
    if "max_weights" in out:
        out["max_weights"] = checks.integer("max_weights", out["max_weights"], 1)
    if out.get("batch") is not None:
        out["batch"] = checks.integer("batch", out["batch"], 1)
    if method == "woodfisher" and out["damp"] == 0:
        raise ValueError("method 'woodfisher' needs damp > 0: its inverse starts from (1/lambda) I, got damp=0")
    return out


def check_fit(model: nn.Module, dataset, method: str, options: dict[str, Any]) -> None:
    """Raise a ValueError if `method` with its checked `options` cannot prune `model` on `dataset`."""
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch nn.Module, got {type(model).__name__}")
    if dataset is None or not hasattr(dataset, "train"):
        raise ValueError(f"method {method!r} needs training data: pass a Dataset, got {dataset!r}")
    names = prunable(model)
    size = sum(parameter(model, n).numel() for n in names)
    if method == "obs" and size > options["max_weights"]:
        raise ValueError(f"method 'obs' inverts the full {size} x {size} Fisher; this model has {size} prunable "
                         f"weights, above max_weights={options['max_weights']}; use method 'woodfisher', 'obc' "
                         f"or 'sparsegpt'")
    if method in LAYERWISE:
        for name in names:
            reconstruction.check_layer(name, model.get_submodule(name.rpartition(".")[0]))


def check_masks(model: nn.Module, masks: Mapping[str, torch.Tensor] | None) -> Masks:
    """`masks` as Masks over every prunable parameter of `model` (a parameter it does not name keeps every entry)."""
    names = prunable(model)
    if masks is None:
        return Masks({n: torch.ones_like(parameter(model, n), dtype=torch.bool) for n in names})
    if not isinstance(masks, Mapping):
        raise ValueError(f"masks must map prunable parameter names to bool tensors (a Masks), got {type(masks).__name__}")
    unknown = sorted(set(masks) - set(names))
    if unknown:
        raise ValueError(f"masks name {unknown[0]!r}, not a prunable parameter; prunable parameters: {', '.join(names)}")
    try:
        given = Masks(masks)
    except (TypeError, RuntimeError) as error:
        raise ValueError(str(error)) from None
    given.check(model)
    return Masks({n: given[n] if n in given else torch.ones_like(parameter(model, n), dtype=torch.bool)
                  for n in names})


def check_layer_sparsities(model: nn.Module, layer_sparsities: Mapping[str, float] | None) -> dict[str, float]:
    """`layer_sparsities` ({prunable parameter name: sparsity}) checked, in model order."""
    names = prunable(model)
    given = checks.mapping("layer_sparsities", layer_sparsities or {})
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise ValueError(f"layer_sparsities names {unknown[0]!r}, not a prunable parameter; prunable parameters: "
                         f"{', '.join(names)}")
    return {n: checks.fraction(f"layer_sparsities[{n!r}]", given[n]) for n in names if n in given}


def groups(keep: Masks, sparsity: float, scope: str, own: Mapping[str, float]) -> Groups:
    """The layers pruned together and how many of their entries end up pruned (those pruned already included).

    A layer of `own`, or every layer with scope='layer', is a group of its own with round(s * n_layer); the
    other layers share round(sparsity * n_pool); a group never prunes fewer entries than `keep` already does.
    """
    alone = [n for n in keep if scope == "layer" or n in own]
    pool = tuple(n for n in keep if n not in alone)
    out = [((n,), own.get(n, sparsity)) for n in alone] + ([(pool, sparsity)] if pool else [])
    return [(layers, max(round(s * sum(keep[n].numel() for n in layers)), sum(int((~keep[n]).sum()) for n in layers)))
            for layers, s in out]


def prune(model: nn.Module, dataset, sparsity: float, method: str, scope: str = "global",
          masks: Mapping[str, torch.Tensor] | None = None, layer_sparsities: Mapping[str, float] | None = None,
          **options) -> Pruned:
    """Prune a copy of `model` with `method` to `sparsity` of its prunable weights, updating the survivors.

    `masks` (e.g. IMP's previous level): the entries it prunes stay pruned and are 0 in the copy (the copy
    is `model` under `masks`), count toward every target (sparsity is the cumulative target, as in
    `prune.masks_from_scores`) and are treated as removed before the pruner starts (see the module doc);
    no update revives them. `layer_sparsities` ({parameter name: sparsity}) gives layers their own target,
    always within the layer; `sparsity` and `scope` apply to the other layers (over their pool if
    scope='global'). Options (defaults in `METHODS[method].options`, meaning in `OPTION_HELP`): samples,
    seed, damp, and per method batch, block_size, max_weights. Arguments are all checked before any work.
    """
    method = checks.one_of("method", method, METHODS)
    sparsity = checks.fraction("sparsity", sparsity)
    scope = checks.one_of("scope", scope, SCOPES)
    opts = check_options(method, options)
    check_fit(model, dataset, method, opts)
    clone = working_copy(model)
    keep = check_masks(clone, masks)
    budget = groups(keep, sparsity, scope, check_layer_sparsities(clone, layer_sparsities))
    keep.apply(clone)
    prior = None if all(bool(m.all()) for m in keep.values()) else keep
    names = prunable(clone)
    x, y = sample(dataset, opts["samples"], opts["seed"])
    if method in LAYERWISE:
        done = layer_by_layer.prune_layers(clone, names, x, method, budget, opts["damp"], opts.get("block_size", 0), prior)
        layers = tuple(Layer(name, m.numel(), m.numel() - int(m.sum()), err) for name, m, err in done)
        return Pruned(Masks({name: m for name, m, _ in done}), clone, method, scope, sparsity, layers)
    return _fisher(clone, names, x, y, method, scope, sparsity, budget, opts, prior)


def _fisher(clone, names, x, y, method, scope, sparsity, budget, opts, prior) -> Pruned:
    """obs / woodfisher on the working copy `clone`."""
    new, keep, predicted, sizes = fisher.solve(clone, names, x, y, method, budget, opts["damp"], opts["batch"],
                                               opts.get("block_size", 128), prior)
    masks, layers, start = {}, [], 0
    with torch.no_grad():
        for name, s in zip(names, sizes):
            param = clone.get_parameter(name)
            param.copy_(new[start:start + s].reshape(param.shape).to(param.dtype))
            masks[name] = keep[start:start + s].reshape(param.shape)
            layers.append(Layer(name, s, s - int(masks[name].sum()), None))
            start += s
    return Pruned(Masks(masks), clone, method, scope, sparsity, tuple(layers), predicted)


def wanda_scores(model: nn.Module, dataset, samples: int | None = 1024, seed: int = 0) -> dict[str, torch.Tensor]:
    """Wanda scores |W_ij| * ||X_j||_2 of every prunable weight, shaped like the weights (model untouched).

    X_j is input feature j of the layer (for a Conv layer: entry j of the unfolded patch) over all
    `samples` seeded training examples (and all positions), all computed in one pass of the dense model.
    Wanda compares scores within an output row; `prune.masks_from_scores` compares them within a layer
    (scope="layer") or over all layers (scope="global"). `prune(..., method="wanda")` does the per-row rule.
    """
    if samples is not None:
        samples = checks.integer("samples", samples, 1)
    seed = checks.seed("seed", seed)
    if dataset is None or not hasattr(dataset, "train"):
        raise ValueError(f"wanda needs training data: pass a Dataset, got {dataset!r}")
    clone = working_copy(model)
    names = prunable(clone)
    for name in names:
        reconstruction.check_layer(name, clone.get_submodule(name.rpartition(".")[0]))
    x, _ = sample(dataset, samples, seed)
    grams = reconstruction.grams(clone, names, x)
    out = {}
    for name in names:
        param = clone.get_parameter(name)
        out[name] = reconstruction.wanda(reconstruction.flat_weight(clone, name), grams[name]).reshape(param.shape).to(param.dtype)
    return out
