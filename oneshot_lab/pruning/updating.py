"""The registry's methods that prune with calibration data and their own rule: OBS, WoodFisher, OBC and SparseGPT
(which update the surviving weights) and Wanda (which does not).

They run through `pruning.prune` like every method (`ol.prune(model, data, sparsity, "obc", scope)`): on a
working copy of the model, with the registry's sparsity semantics (scope="layer": round(s * n_layer) of every
layer; scope="global": round(s * n_total) overall).

Methods (formulas in REFERENCES.md, "Second order with weight updates"):

- "obs": Optimal Brain Surgeon (Hassibi & Stork 1993) with the inverse of the full empirical Fisher
  F = (1/N) sum_n g_n g_n^T + lambda I over all prunable weights (g_n: per-example gradients of the
  cross-entropy), lambda = damp * mean(diag F). Exact greedy by default (batch=1): each step removes the one
  weight of least w_q^2 / [F^-1]_qq with the OBS update dw = -(w_q / [F^-1]_qq) F^-1 e_q and the matching
  downdate of F^-1. batch=k > 1 (or "auto": ceil(count / 256)) is the batched variant: each step removes the
  k weights of least saliency together with the group OBS update dw = -F^-1[:, Q] (F^-1[Q, Q])^-1 w_Q; say
  which ran (`Method.configuration`, every table's config column). scope="layer" only lets a layer's weights be chosen while the layer is short
  of its count. Refuses models above `max_weights` prunable weights, before any work. The inverse is dense up
  to `fisher.DENSE_MAX` weights (built by the Woodbury identity when N < n), else held in Woodbury form
  (`obs_lowrank`: N x n memory); both on the one greedy-OBS core of `obs_core`.
- "woodfisher": WoodFisher (Singh & Alistarh 2020) on a block-diagonal Fisher: blocks of `block_size`
  consecutive weights of one layer (row-major), "layer" (a block per layer) or "network" (one block: the
  full Fisher); lambda = damp * mean(diag F) (damping="relative") or damp itself (damping="absolute", the
  reference code's --fisher-damp). update="greedy": greedy OBS over all blocks, each step removing the
  `batch` weights of least saliency with the group OBS formula within every block that lost weights
  (block_size="network" with batch=1 is "obs"). update="independent", the published one-shot rule: all
  pruned weights chosen at once by w_q^2 / [F^-1]_qq (the registry's selection rule), the survivors moved
  by `scale` times the sum of every pruned weight's own OBS update -(w_q / [F^-1]_qq) F^-1 e_q, the pruned
  set to 0 (`fisher.independent`); a block with more weights than examples is held in Woodbury form.
  The published MNIST-MLP configuration (784-40-20-10, the table in `analysis.published`): samples=10000,
  damp=1e-3, damping="absolute", block_size="network", update="independent", scale=1.
- "wanda" (Sun et al. 2024): |W_ij| * ||X_j||_2 over calibration inputs; by default compared within a layer
  (scope="layer") or over all layers (scope="global") by the registry's selection rule, like a score; with
  rows=True compared within each output row, the paper's rule, layer by layer as below.
- "obc", "sparsegpt", "wanda" with rows=True: layer by layer on the reconstruction objective ||X W^T - X W_hat^T||^2,
  see `oneshot_lab.pruning.reconstruction`. Layers are pruned in model order, each on calibration inputs computed
  through the already pruned (and updated) layers before it. "obc" prunes every row by exact greedy
  OBS with H = 2 X^T X / N + damp * mean(diag) I; "sparsegpt" uses SparseGPT's column-blocked update;
  "wanda" keeps the weights and prunes within each output row.

Per-layer counts of the layer-wise methods: scope="layer" gives each layer round(s * n_layer).
With scope="global", "sparsegpt" and "wanda" rank every weight of every layer once, at the start, by its
OBS reconstruction saliency w^2 / (2 [H^-1]_jj) (H from the dense model's calibration inputs; the
predicted squared output error per example, comparable across layers) and give each layer the number of
its entries among the round(s * n_total) lowest; "obc" gives each layer the sum of its rows' counts among
the per-row counts of least total greedy-trace error over all rows of all layers (traces, below, on the
dense model's calibration inputs; the same units). Within a layer, "obc" is OBC as published (Frantar,
Singh & Alistarh 2022): every row is pruned completely by exact greedy OBS on the layer's current inputs,
recording each step's error increment (the row's greedy trace); the row counts of least total trace error
for the layer's count are chosen (`pruning.obc_counts`, exact; a row's count is a prefix of its greedy
order, so no row is emptied unless that is optimal), and the exact per-row solver then prunes every row
to its count. "sparsegpt" picks its mask per column block over all rows; "wanda" spreads the layer's count
evenly over the rows (floor or ceil of count / rows, by cumulative rounding) and compares within each row.

Existing masks (`masks=`, e.g. the previous level of IMP) and per-layer targets (`layer_sparsities=`):
the copy is the model under `masks`, whose pruned entries stay pruned and exactly 0 and count toward the
targets (cumulative, as in `core.masks.masks_from_scores`; a group whose target is below what is already pruned
prunes nothing more). A layer of `layer_sparsities` is a group of its own; `sparsity` and `scope` apply to
the others. The pruned entries are out of the problem from the start, so no update revives them:
"obs" / "woodfisher" work on the Fisher restricted to the surviving weights (each block restricted to its
survivors); "obc" traces and prunes each row on H restricted to its kept columns (rows grouped by pattern, see
`oneshot_lab.pruning.layer_by_layer`; its global counts too), and the global ranking uses those restricted saliencies; "sparsegpt" has them in
its mask at their columns and shares the remaining count over the column blocks in proportion to their
survivors; "wanda" shares it over the rows in proportion to their survivors. Without masks (or with
all-true ones) every method gives bit for bit what it gives without the argument.
"""

from __future__ import annotations

import torch

from ..core.data import sample
from ..core.masks import Masks, parameter, prunable
from . import fisher, layer_by_layer
from .criteria import CALIBRATION, matrix_layers, wanda
from .prune import Outcome, Request, select
from ..util.rules import MAX_WEIGHTS, Rule
from .registry import Method, Option

DAMP = Option("damp", 0.01, "damping lambda relative to the mean curvature diagonal")
STEP = Rule("int", 1, MAX_WEIGHTS, choices=("auto",))


def too_big(model: torch.nn.Module, options: dict) -> str | None:
    """Why 'obs' will not invert the full Fisher of `model` (more prunable weights than max_weights), or None."""
    size = sum(parameter(model, n).numel() for n in prunable(model))
    if size <= options["max_weights"]:
        return None
    return (f"it inverts the full {size} x {size} Fisher; this model has {size} prunable weights, above "
            f"max_weights={options['max_weights']}; use method 'woodfisher', 'obc' or 'sparsegpt'")


def woodfisher_fits(model: torch.nn.Module, options: dict) -> str | None:
    """Refuse conflicting 'woodfisher' options (a ValueError); why greedy blocks of `model` would not fit, or None."""
    block, update = options["block_size"], options["update"]
    if update == "greedy" and options["scale"] != 1.0:
        raise ValueError(f"scale applies to update='independent' only, got scale={options['scale']} with "
                         f"update='greedy' (the greedy update is exact for the quadratic model)")
    if update == "independent" and options["batch"] != "auto":
        raise ValueError(f"batch applies to update='greedy' only, got batch={options['batch']!r} with "
                         f"update='independent' (all pruned weights are chosen at once)")
    if update == "independent" or block == "network":
        return None
    sizes = [parameter(model, n).numel() for n in prunable(model)]
    size = max(sizes) if block == "layer" else block
    count = sum(-(-s // size) for s in sizes)
    if count * size * size <= fisher.DENSE_MAX ** 2:
        return None
    return (f"block_size={block!r} with update='greedy' holds {count} blocks of {size} x {size} "
            f"({fisher.gib(count * size * size)}), above the lab's {fisher.gib(fisher.DENSE_MAX ** 2)}; "
            f"use update='independent', block_size='network' or a smaller block_size")


def run_fisher(request: Request, method: str) -> Outcome:
    """'obs' or 'woodfisher': greedy OBS on the empirical Fisher of the working copy (`pruning.fisher`)."""
    clone, options = request.model, request.options
    names = prunable(clone)
    x, y = sample(request.data, options["samples"], request.seed)
    wood = method == "woodfisher"
    new, keep, predicted, sizes = fisher.solve(
        clone, names, x, y, request.groups, request.prior, options["block_size"] if wood else "network",
        options["damp"], wood and options["damping"] == "absolute", options["batch"],
        options["update"] if wood else "greedy", options["scale"] if wood else 1.0)
    masks, start = {}, 0
    with torch.no_grad():
        for name, size in zip(names, sizes):
            param = clone.get_parameter(name)
            param.copy_(new[start:start + size].reshape(param.shape).to(param.dtype))
            masks[name] = keep[start:start + size].reshape(param.shape)
            start += size
    return Outcome(Masks(masks), predicted_increase=predicted)


def run_layerwise(request: Request, method: str) -> Outcome:
    """'obc', 'sparsegpt' or 'wanda' per row: layers in order on inputs through the layers pruned before them."""
    clone, options = request.model, request.options
    x, _ = sample(request.data, options["samples"], request.seed)
    done = layer_by_layer.prune_layers(clone, prunable(clone), x, method, request.groups, options["damp"],
                                       options.get("block_size", 0), request.prior)
    return Outcome(Masks({name: m for name, m, _ in done}), errors={name: err for name, _, err in done})


def run_wanda(request: Request) -> Outcome | Masks:
    """Wanda compared within each layer or over all layers (the registry's rule), or within rows (rows=True)."""
    if request.options["rows"]:
        return run_layerwise(request, "wanda")
    scores = wanda(request.model, request.data, request.options["samples"], request.seed)
    return select(scores, request.keep, request.targets)


METHODS = (
    Method("obs", "greedy Optimal Brain Surgeon with the full empirical-Fisher inverse (small models); exact "
                  "greedy (one weight per step) unless batch says otherwise",
           run=lambda r: run_fisher(r, "obs"), updates_weights=True, needs=("data", "trained"), source=__name__,
           options=(CALIBRATION, DAMP,
                    Option("batch", 1, "weights removed per greedy step: 1 exact greedy OBS; k > 1 or 'auto' "
                                       "(ceil(count / 256)) the batched variant", STEP),
                    Option("max_weights", 12000, "largest number of prunable weights 'obs' accepts")),
           supports=too_big),
    Method("woodfisher", "OBS with a block-diagonal empirical Fisher (WoodFisher): greedy, or the published "
                         "one-shot independent update",
           run=lambda r: run_fisher(r, "woodfisher"), updates_weights=True, needs=("data", "trained"),
           source=__name__, supports=woodfisher_fits,
           options=(CALIBRATION,
                    Option("damp", 0.01, "damping: lambda = damp * mean(diag F) (damping='relative') or damp "
                                         "(damping='absolute')", Rule("float", 0.0, open_minimum=True)),
                    Option("damping", "relative", "how damp sets lambda: 'relative' to the mean Fisher diagonal, "
                                                  "or 'absolute' (the reference code's --fisher-damp)",
                           Rule("str", choices=("relative", "absolute"))),
                    Option("block_size", 128, "Fisher blocks: that many consecutive weights of a layer, 'layer' "
                                              "(one per layer) or 'network' (the full Fisher)",
                           Rule("int", 1, MAX_WEIGHTS, choices=("layer", "network"))),
                    Option("update", "greedy", "'greedy': greedy OBS, batch weights per step; 'independent': all "
                                               "pruned weights chosen at once, the sum of their own OBS updates "
                                               "(the published one-shot rule)",
                           Rule("str", choices=("greedy", "independent"))),
                    Option("batch", "auto", "update='greedy': weights removed per step (1 exact greedy; 'auto' "
                                            "ceil(count / 256))", STEP),
                    Option("scale", 1.0, "update='independent': multiplier of the summed update (the reference "
                                         "code's --scale-prune-update)", Rule("float", 0.0)))),
    Method("obc", "layer-wise exact greedy OBS on the reconstruction error of every row (OBC)",
           run=lambda r: run_layerwise(r, "obc"), updates_weights=True, needs=("data",), source=__name__,
           options=(CALIBRATION, DAMP), supports=matrix_layers),
    Method("sparsegpt", "layer-wise SparseGPT: column blocks, adaptive masks, approximate OBS updates",
           run=lambda r: run_layerwise(r, "sparsegpt"), updates_weights=True, needs=("data",), source=__name__,
           options=(CALIBRATION, DAMP, Option("block_size", 128, "columns per block")),
           supports=matrix_layers),
    Method("wanda", "|W_ij| * ||X_j||_2 over calibration inputs (Wanda), no weight update",
           run=run_wanda, needs=("data",), source=__name__, supports=matrix_layers,
           options=(CALIBRATION,
                    Option("rows", False, "compare within each output row, layer by layer on inputs through the "
                                          "pruned layers before it (the paper's rule)", Rule("bool")),
                    Option("damp", 0.01, "rows=True with scope='global': damping of the OBS saliencies that share "
                                         "the count over layers"))),
)
