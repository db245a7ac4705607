"""The registry's methods that prune with calibration data and their own rule: OBS, WoodFisher, OBC and SparseGPT
(which update the surviving weights) and Wanda (which does not).

They run through `pruning.prune` like every method (`ol.prune(model, data, sparsity, "obc", scope)`): on a
working copy of the model, with the registry's sparsity semantics (scope="layer": round(s * n_layer) of every
layer; scope="global": round(s * n_total) overall).

Methods (formulas in REFERENCES.md, "Second order with weight updates"):

- "obs": Optimal Brain Surgeon (Hassibi & Stork 1993) with the inverse of the full empirical Fisher
  F = (1/N) sum_n g_n g_n^T + lambda I over all prunable weights (g_n: per-example gradients of the
  cross-entropy), lambda = damp * mean(diag F). Greedy: each step removes the `batch` weights of least
  w_q^2 / [F^-1]_qq together with the group OBS update dw = -F^-1[:, Q] (F^-1[Q, Q])^-1 w_Q and the
  matching downdate of F^-1 (batch=1: exact greedy OBS). scope="layer" only lets a layer's weights be
  chosen while the layer is short of its count. Refuses models above `max_weights` prunable weights.
  With fewer examples than weights the inverse is held in Woodbury form (`obs_lowrank.remove_lowrank`: N x n
  memory, no n x n matrix); the removals are the same as with the dense inverse (`obs_core.remove`; both on the one greedy-OBS core of `obs_core`).
- "woodfisher": WoodFisher (Singh & Alistarh 2020): the same greedy OBS on a block-diagonal Fisher,
  blocks of `block_size` consecutive weights of one layer (row-major); each block's inverse is built by
  N Woodbury rank-one updates from (1/lambda) I. Each step removes the `batch` weights of least saliency
  over all blocks and applies the group OBS formula within every block that lost weights (greedy within
  blocks; with batch >= the count it is the one-shot group formula per block).
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
BATCH = Option("batch", None, "weights removed per greedy step (1: exact greedy; None: ceil(count / 256))",
               Rule("int", 1, MAX_WEIGHTS))


def too_big(model: torch.nn.Module, options: dict) -> str | None:
    """Why 'obs' will not invert the full Fisher of `model` (more prunable weights than max_weights), or None."""
    size = sum(parameter(model, n).numel() for n in prunable(model))
    if size <= options["max_weights"]:
        return None
    return (f"it inverts the full {size} x {size} Fisher; this model has {size} prunable weights, above "
            f"max_weights={options['max_weights']}; use method 'woodfisher', 'obc' or 'sparsegpt'")


def run_fisher(request: Request, method: str) -> Outcome:
    """'obs' or 'woodfisher': greedy OBS on the empirical Fisher of the working copy (`pruning.fisher`)."""
    clone, options = request.model, request.options
    names = prunable(clone)
    x, y = sample(request.data, options["samples"], request.seed)
    new, keep, predicted, sizes = fisher.solve(clone, names, x, y, method, request.groups, options["damp"],
                                               options["batch"], options.get("block_size", 128), request.prior)
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
    Method("obs", "greedy Optimal Brain Surgeon with the full empirical-Fisher inverse (small models)",
           run=lambda r: run_fisher(r, "obs"), updates_weights=True, needs=("data", "trained"), source=__name__,
           options=(CALIBRATION, DAMP, BATCH,
                    Option("max_weights", 12000, "largest number of prunable weights 'obs' accepts")),
           supports=too_big),
    Method("woodfisher", "greedy OBS with a block-diagonal empirical Fisher inverted by Woodbury rank-one updates",
           run=lambda r: run_fisher(r, "woodfisher"), updates_weights=True, needs=("data", "trained"),
           source=__name__,
           options=(CALIBRATION, Option("damp", 0.01, "damping lambda relative to the mean Fisher diagonal (its "
                                        "inverse starts from (1/lambda) I)", Rule("float", 0.0, open_minimum=True)),
                    Option("block_size", 128, "weights per Fisher block"), BATCH)),
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
