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
  With fewer examples than weights the inverse is held in Woodbury form (`remove_lowrank`: N x n
  memory, no n x n matrix); the removals are the same as with the dense inverse (`remove`).
- "woodfisher": WoodFisher (Singh & Alistarh 2020): the same greedy OBS on a block-diagonal Fisher,
  blocks of `block_size` consecutive weights of one layer (row-major); each block's inverse is built by
  N Woodbury rank-one updates from (1/lambda) I. Each step removes the `batch` weights of least saliency
  over all blocks and applies the group OBS formula within every block that lost weights (greedy within
  blocks; with batch >= the count it is the one-shot group formula per block).
- "obc", "sparsegpt", "wanda": layer by layer on the reconstruction objective ||X W^T - X W_hat^T||^2,
  see `oneshot_lab.reconstruct`. Layers are pruned in model order, each on calibration inputs computed
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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
from torch import nn

from . import checks, reconstruct
from .curvature import sample, working_copy
from .prune import Masks, prunable

SCOPES = ("global", "layer")
LAYERWISE = ("obc", "sparsegpt", "wanda")


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


def _options(method: str, options: dict[str, Any]) -> dict[str, Any]:
    """The method's options with defaults filled in, every value checked."""
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
    return out


def prune(model: nn.Module, dataset, sparsity: float, method: str, scope: str = "global", **options) -> Pruned:
    """Prune `sparsity` of the prunable weights of a copy of `model` with `method`, updating the survivors.

    Options (defaults in `METHODS[method].options`, meaning in `OPTION_HELP`): samples, seed, damp, and
    per method batch, block_size, max_weights. Arguments are all checked before any work.
    """
    method = checks.one_of("method", method, METHODS)
    sparsity = checks.fraction("sparsity", sparsity)
    scope = checks.one_of("scope", scope, SCOPES)
    opts = _options(method, options)
    if dataset is None or not hasattr(dataset, "train"):
        raise ValueError(f"method {method!r} needs training data: pass a Dataset, got {dataset!r}")
    clone = working_copy(model)
    names = prunable(clone)
    sizes = [clone.get_parameter(n).numel() for n in names]
    if method == "obs" and sum(sizes) > opts["max_weights"]:
        raise ValueError(f"method 'obs' inverts the full {sum(sizes)} x {sum(sizes)} Fisher; this model has "
                         f"{sum(sizes)} prunable weights, above max_weights={opts['max_weights']}; "
                         f"use method 'woodfisher', 'obc' or 'sparsegpt'")
    if method == "woodfisher" and opts["damp"] == 0:
        raise ValueError("method 'woodfisher' needs damp > 0: its inverse starts from (1/lambda) I, got damp=0")
    if method in LAYERWISE:
        for name in names:
            reconstruct.check_layer(name, clone.get_submodule(name.rpartition(".")[0]))
    counts = {n: round(sparsity * s) for n, s in zip(names, sizes)} if scope == "layer" else None
    total = round(sparsity * sum(sizes))
    x, y = sample(dataset, opts["samples"], opts["seed"])
    if method in LAYERWISE:
        return _layerwise(clone, names, x, method, scope, sparsity, counts or total, opts)
    return _fisher(clone, names, x, y, method, scope, sparsity, counts or total, opts)


# ----------------------------------------------------------------------------------------------
# Greedy OBS on an explicit inverse curvature


def _pick(sal: torch.Tensor, group: torch.Tensor, remaining: torch.Tensor, batch: int) -> torch.Tensor:
    """Indices of the up to `batch` lowest saliencies whose group still has a remaining budget."""
    order = torch.argsort(sal, stable=True)
    order = order[torch.isfinite(sal[order])]
    if len(remaining) == 1:
        return order[:min(batch, int(remaining.sum()))]
    g = group[order]
    onehot = torch.nn.functional.one_hot(g, len(remaining))
    rank = (onehot.cumsum(0) * onehot).sum(1)  # 1-based rank of each entry within its group
    allowed = order[rank <= remaining[g]]
    return allowed[:min(batch, int(remaining.sum()))]


def _budgets(count: int | dict[str, int], names: list[str], sizes: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """(group id of every flat weight, budget of every group): one group (global) or one per layer."""
    if isinstance(count, int):
        return torch.zeros(sum(sizes), dtype=torch.long), torch.tensor([count])
    group = torch.cat([torch.full((s,), i, dtype=torch.long) for i, s in enumerate(sizes)])
    return group, torch.tensor([count[n] for n in names])


def _auto_batch(batch: int | None, count: int) -> int:
    """`batch`, or ceil(count / 256) so a run takes about 256 greedy steps."""
    return batch if batch is not None else max(1, -(-count // 256))


def remove(weights: torch.Tensor, h_inv: torch.Tensor, count: int, batch: int = 1,
           group: torch.Tensor | None = None, budgets: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Greedy Optimal Brain Surgeon on a weight vector with inverse curvature `h_inv` (n x n, float64).

    Each step removes the `batch` weights Q of least w_q^2 / [H^-1]_qq, moves the survivors by
    dw = -H^-1[:, Q] (H^-1[Q, Q])^-1 w_Q and downdates H^-1 <- H^-1 - H^-1[:, Q] (H^-1[Q, Q])^-1 H^-1[Q, :]
    (batch=1: the single-weight formulas). With `group` (a group id per weight) and `budgets`, a weight
    can only go while its group has budget left; else `count` weights go in all. Removed weights drop
    out of the working inverse as they accumulate. Returns (new weights, keep mask, predicted increase
    of the quadratic model, the sum of the group saliencies 1/2 w_Q^T (H^-1[Q, Q])^-1 w_Q).
    """
    n = weights.numel()
    if group is None:
        group, budgets = torch.zeros(n, dtype=torch.long), torch.tensor([count])
    remaining = budgets.clone()
    alive = torch.arange(n)
    w, hinv = weights.clone().to(torch.float64), h_inv.clone().to(torch.float64)
    gone = torch.zeros(n, dtype=torch.bool)  # removed since the last compaction
    keep = torch.ones(n, dtype=torch.bool)
    predicted = 0.0
    while int(remaining.sum()) > 0:
        sal = (w**2 / torch.diagonal(hinv)).masked_fill(gone, float("inf"))
        q = _pick(sal, group[alive], remaining, batch)
        if not len(q):
            raise RuntimeError("no weight left to remove")  # cannot happen: budgets never exceed group sizes
        cols = hinv[:, q]
        factor = torch.linalg.cholesky(cols[q])
        solved = torch.cholesky_solve(w[q, None], factor)
        predicted += 0.5 * float(w[q] @ solved[:, 0])
        w -= (cols @ solved)[:, 0]
        hinv -= cols @ torch.cholesky_solve(cols.T, factor)
        w[q] = 0.0
        gone[q] = True
        keep[alive[q]] = False
        remaining -= torch.bincount(group[alive[q]], minlength=len(remaining))
        if int(gone.sum()) * 8 >= len(alive):
            stay = ~gone
            alive, w, hinv = alive[stay], w[stay], hinv[stay][:, stay]
            gone = gone[stay]
    out = torch.zeros(n, dtype=torch.float64)
    out[alive] = w
    out[~keep] = 0.0
    return out, keep, predicted


def remove_lowrank(weights: torch.Tensor, grads: torch.Tensor, lam: float, count: int, batch: int = 1,
                   group: torch.Tensor | None = None,
                   budgets: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, float]:
    """`remove` with H = lambda I + G^T G / N (G: N x n, N < n) held in Woodbury form, never as an n x n matrix.

    On the alive set A, H_AA^-1 = (I - G_A^T K^-1 G_A) / lambda with K = N lambda I + G_A G_A^T (N x N).
    The pruner keeps Z = K^-1 G_A: the OBS columns H^-1[:, Q] = (E_Q - G_A^T Z_Q) / lambda, the
    diagonal of H^-1 follows the usual downdate, and removing Q downdates K by G_Q G_Q^T, so
    Z <- Z + Z_Q (I - G_Q^T Z_Q)^-1 (Z_Q^T G_A). The removals are the same as `remove` with the dense
    inverse, at O(N n) memory and O(N n count) time instead of O(n^2) and O(n^3).
    """
    n_examples, n = grads.shape
    if group is None:
        group, budgets = torch.zeros(n, dtype=torch.long), torch.tensor([count])
    remaining = budgets.clone()
    alive = torch.arange(n)
    w, gt = weights.clone().to(torch.float64), grads.to(torch.float64).T.contiguous()  # weights x examples
    kernel = gt.T @ gt
    torch.diagonal(kernel).add_(n_examples * lam)
    zt = torch.cholesky_solve(gt.T, torch.linalg.cholesky(kernel)).T.contiguous()  # (K^-1 G_A)^T
    diag = (1.0 - (gt * zt).sum(1)) / lam
    gone = torch.zeros(n, dtype=torch.bool)
    keep = torch.ones(n, dtype=torch.bool)
    eye = torch.eye(batch, dtype=torch.float64)
    predicted = 0.0
    while int(remaining.sum()) > 0:
        q = _pick((w**2 / diag).masked_fill(gone, float("inf")), group[alive], remaining, batch)
        b = len(q)
        zq, gq = zt[q], gt[q]  # b x N
        shared = gt @ zq.T  # G_A^T Z_Q, m x b
        cols = shared / -lam
        cols[q, torch.arange(b)] += 1.0 / lam  # H^-1[:, Q]
        factor = torch.linalg.cholesky(cols[q])
        solved = torch.cholesky_solve(torch.cat([w[q, None], cols.T], 1), factor)
        predicted += 0.5 * float(w[q] @ solved[:, 0])
        w -= cols @ solved[:, 0]
        diag -= (cols * solved[:, 1:].T).sum(1)
        w[q] = 0.0
        gone[q] = True
        keep[alive[q]] = False
        remaining -= torch.bincount(group[alive[q]], minlength=len(remaining))
        inner = eye[:b, :b] - gq @ zq.T
        zt.addmm_(torch.linalg.solve(inner, shared.T).T, zq)
        if int(gone.sum()) * 8 >= len(alive):
            stay = ~gone
            alive, w, diag, gt, zt, gone = alive[stay], w[stay], diag[stay], gt[stay], zt[stay], gone[stay]
    out = torch.zeros(n, dtype=torch.float64)
    out[alive] = w
    out[~keep] = 0.0
    return out, keep, predicted


def _woodfisher_remove(w: torch.Tensor, finv: torch.Tensor, valid: torch.Tensor, group: torch.Tensor,
                       budgets: torch.Tensor, batch: int) -> tuple[torch.Tensor, torch.Tensor, float]:
    """`remove` on a block-diagonal inverse: w (blocks x B), finv (blocks x B x B), valid marks real entries."""
    w, finv = w.clone(), finv.clone()
    size = w.shape[1]
    removed = ~valid
    remaining = budgets.clone()
    predicted = 0.0
    while int(remaining.sum()) > 0:
        sal = (w**2 / torch.diagonal(finv, dim1=1, dim2=2)).masked_fill(removed, float("inf")).reshape(-1)
        q = _pick(sal, group, remaining, batch)
        remaining -= torch.bincount(group[q], minlength=len(remaining))
        blocks = q // size
        for b in torch.unique(blocks).tolist():
            local = q[blocks == b] % size
            hb = finv[b]
            cols = hb[:, local]
            factor = torch.linalg.cholesky(cols[local])
            solved = torch.cholesky_solve(w[b, local, None], factor)
            predicted += 0.5 * float(w[b, local] @ solved[:, 0])
            w[b] -= (cols @ solved)[:, 0]
            hb -= cols @ torch.cholesky_solve(cols.T, factor)
            w[b, local] = 0.0
            removed[b, local] = True
    w[removed] = 0.0
    return w, ~removed & valid, predicted


# ----------------------------------------------------------------------------------------------
# Fisher-based pruners


def per_example_gradients(model: nn.Module, names: list[str], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Gradients of the cross-entropy of each example w.r.t. the parameters `names`, flattened: N x n float64."""
    from torch.func import functional_call, grad, vmap

    params = {n: p.detach() for n, p in model.named_parameters()}
    buffers = dict(model.named_buffers())

    def loss(weights, xi, yi):
        out = functional_call(model, ({**params, **weights}, buffers), (xi.unsqueeze(0),))
        return nn.functional.cross_entropy(out, yi.unsqueeze(0))

    rows = []
    for start in range(0, len(y), reconstruct.CHUNK):
        g = vmap(grad(loss), in_dims=(None, 0, 0))({n: params[n] for n in names}, x[start:start + reconstruct.CHUNK],
                                                    y[start:start + reconstruct.CHUNK])
        rows.append(torch.cat([g[n].reshape(len(g[n]), -1) for n in names], 1).to(torch.float64))
    return torch.cat(rows)


def fisher_inverse(grads: torch.Tensor, damp: float) -> torch.Tensor:
    """(F + lambda I)^-1 with F = G^T G / N and lambda = damp * mean(diag F), in one piece.

    With fewer examples than weights (and lambda > 0) this uses the Woodbury identity
    (lambda I + G^T G / N)^-1 = (I - G^T (N lambda I + G G^T)^-1 G) / lambda; else a Cholesky inverse.
    """
    n_examples, n = grads.shape
    lam = damp * float((grads**2).sum()) / (n_examples * n)
    if lam > 0 and n_examples < n:
        inner = torch.linalg.cholesky(grads @ grads.T + n_examples * lam * torch.eye(n_examples, dtype=grads.dtype))
        out = -(grads.T @ torch.cholesky_solve(grads, inner))
        torch.diagonal(out).add_(1.0)
        return out / lam
    fisher = grads.T @ grads / n_examples + lam * torch.eye(n, dtype=grads.dtype)
    factor, info = torch.linalg.cholesky_ex(fisher)
    if int(info):
        raise ValueError(f"the empirical Fisher of {n} weights from {n_examples} examples is singular; use damp > 0")
    return torch.cholesky_inverse(factor)


def woodbury_blocks(grads: torch.Tensor, lam: float) -> torch.Tensor:
    """Inverse of every block of lambda I + (1/N) sum g_n g_n^T by N rank-one Woodbury updates.

    grads: N x blocks x B. Starting from (1/lambda) I, example n gives
    F_n^-1 = F_{n-1}^-1 - (F_{n-1}^-1 g_n g_n^T F_{n-1}^-1) / (N + g_n^T F_{n-1}^-1 g_n), all blocks at once.
    """
    n_examples, blocks, size = grads.shape
    finv = torch.eye(size, dtype=torch.float64).expand(blocks, size, size) / lam
    finv = finv.contiguous()
    for g in grads:
        u = torch.bmm(finv, g.unsqueeze(2))  # blocks x B x 1 (F^-1 is symmetric: F^-1 g g^T F^-1 = u u^T)
        denom = n_examples + (g.unsqueeze(1) @ u).reshape(blocks, 1, 1)
        finv.baddbmm_(u / denom, u.transpose(1, 2), alpha=-1.0)
    return finv


def _blocked(values: torch.Tensor, sizes: list[int], block: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Split the last dim (concatenated layers) into zero-padded blocks within each layer: (..., blocks, block), valid."""
    pieces, valid, start = [], [], 0
    for s in sizes:
        nb = -(-s // block)
        padded = values.new_zeros(*values.shape[:-1], nb * block)
        padded[..., :s] = values[..., start:start + s]
        mask = torch.zeros(nb * block, dtype=torch.bool)
        mask[:s] = True
        pieces.append(padded.reshape(*values.shape[:-1], nb, block))
        valid.append(mask.reshape(nb, block))
        start += s
    return torch.cat(pieces, -2), torch.cat(valid)


def _fisher(clone, names, x, y, method, scope, sparsity, count, opts) -> Pruned:
    """obs / woodfisher on the working copy `clone`."""
    sizes = [clone.get_parameter(n).numel() for n in names]
    total = count if isinstance(count, int) else sum(count.values())
    batch = _auto_batch(opts["batch"], total)
    grads = per_example_gradients(clone, names, x, y)
    w = torch.cat([clone.get_parameter(n).detach().reshape(-1) for n in names]).to(torch.float64)
    group, budgets = _budgets(count, names, sizes)
    lam = opts["damp"] * float((grads**2).mean())
    if method == "obs" and lam > 0 and len(grads) < len(w):
        new, keep, predicted = remove_lowrank(w, grads, lam, total, batch, group, budgets)
    elif method == "obs":
        new, keep, predicted = remove(w, fisher_inverse(grads, opts["damp"]), total, batch, group, budgets)
    else:
        size = opts["block_size"]
        gb, valid = _blocked(grads, sizes, size)
        wb, _ = _blocked(w, sizes, size)
        groupb, _ = _blocked(group, sizes, size)
        newb, keepb, predicted = _woodfisher_remove(wb, woodbury_blocks(gb, lam), valid, groupb.reshape(-1),
                                                    budgets, batch)
        new, keep = newb[valid], keepb[valid]
    masks, layers, start = {}, [], 0
    with torch.no_grad():
        for name, s in zip(names, sizes):
            param = clone.get_parameter(name)
            param.copy_(new[start:start + s].reshape(param.shape).to(param.dtype))
            masks[name] = keep[start:start + s].reshape(param.shape)
            layers.append(Layer(name, s, s - int(masks[name].sum()), None))
            start += s
    return Pruned(Masks(masks), clone, method, scope, sparsity, tuple(layers), predicted)


# ----------------------------------------------------------------------------------------------
# Layer-wise pruners


def _layerwise(clone, names, x, method, scope, sparsity, count, opts) -> Pruned:
    """obc / sparsegpt / wanda on the working copy `clone`, layer after layer (see `reconstruct.prune_layers`)."""
    done = reconstruct.prune_layers(clone, names, x, method, count, opts["damp"], opts.get("block_size", 0))
    masks = Masks({name: keep for name, keep, _ in done})
    layers = tuple(Layer(name, keep.numel(), keep.numel() - int(keep.sum()), err) for name, keep, err in done)
    return Pruned(masks, clone, method, scope, sparsity, layers)


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
        reconstruct.check_layer(name, clone.get_submodule(name.rpartition(".")[0]))
    x, _ = sample(dataset, samples, seed)
    grams = reconstruct.grams(clone, names, x)
    out = {}
    for name in names:
        param = clone.get_parameter(name)
        out[name] = reconstruct.wanda(reconstruct.flat_weight(clone, name), grams[name]).reshape(param.shape).to(param.dtype)
    return out
