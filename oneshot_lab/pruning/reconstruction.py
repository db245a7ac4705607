"""Layer-wise pruning against the reconstruction objective ||X W^T - X W_hat^T||^2: OBC, SparseGPT, Wanda.

Every layer is a matrix product: a Linear layer's input rows, or a Conv layer's unfolded input patches
(one row per example and output position), form X (M x d); the layer's weight, flattened to (rows x d),
is W. All that the pruners need from the calibration data is the Gram matrix G = X^T X and the number N
of calibration examples: the mean reconstruction curvature is H = 2 G / N, the error of a pruned layer
is E = ||X (W - W_hat)^T||_F^2 / N (squared output error per example, summed over rows and positions),
and Wanda's input norms are sqrt(diag G). All inverse-Hessian maths is float64.

Callers go through `ol.prune` with the methods of `oneshot_lab.pruning.updating` (whose docstring gives the
per-layer counts); this module holds the layer-wise algorithms, and `oneshot_lab.pruning.layer_by_layer.prune_layers`
runs them over a model. OBC's per-row counts (how many weights each row loses) are chosen there from every row's
greedy error trace (`obc_rows.traces`, `obc_counts.allocate`: least total trace error, as published); `obc` below
is the exact per-row solver given the counts.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..core import topk
from . import obc_rows, obs_core

CHUNK = 256  # calibration examples per forward pass


class _Stop(Exception):
    """Raised by a capture hook once every requested layer has seen its input."""


def check_layer(name: str, module: nn.Module) -> None:
    """Raise a ValueError if `module` is not a layer these pruners can write as a matrix product."""
    if isinstance(module, nn.Linear):
        return
    if not isinstance(module, (nn.Conv1d, nn.Conv2d)):
        raise ValueError(f"layer {name!r} is a {type(module).__name__}; layer-wise pruners handle Linear, "
                         f"Conv1d and Conv2d only (use method='obs' or 'woodfisher')")
    if module.groups != 1 or module.padding_mode != "zeros" or isinstance(module.padding, str) and module.padding != "valid":
        raise ValueError(f"layer {name!r}: layer-wise pruners need groups=1, zero padding given as numbers, got "
                         f"groups={module.groups}, padding={module.padding!r}, padding_mode={module.padding_mode!r}")


def layer_rows(module: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """The input of `module` as the matrix X (M x d) with module(inputs) = X W^T (+ bias), W flattened row-major."""
    if isinstance(module, nn.Linear):
        return inputs.reshape(-1, module.in_features)
    padding = (0,) * len(module.kernel_size) if isinstance(module.padding, str) else module.padding
    if isinstance(module, nn.Conv1d):  # a Conv1d is a Conv2d of height 1
        inputs = inputs.unsqueeze(2)
        kernel, dilation = (1, *module.kernel_size), (1, *module.dilation)
        padding, stride = (0, *padding), (1, *module.stride)
    else:
        kernel, dilation, stride = module.kernel_size, module.dilation, module.stride
    patches = F.unfold(inputs, kernel, dilation=dilation, padding=padding, stride=stride)  # N x d x positions
    return patches.transpose(1, 2).reshape(-1, patches.shape[1])


def flat_weight(model: nn.Module, name: str) -> torch.Tensor:
    """The float64 weight of parameter `name` as a (rows x d) matrix."""
    weight = model.get_parameter(name).detach()
    return weight.reshape(weight.shape[0], -1).to(torch.float64)


@torch.no_grad()
def grams(model: nn.Module, names: list[str], x: torch.Tensor) -> dict[str, torch.Tensor]:
    """G = X^T X (float64) of the input of every layer in `names` over the examples `x`, one pass per chunk.

    The forward pass stops as soon as every named layer has seen its input, so asking for an early
    layer costs only the layers before it.
    """
    modules = {name: model.get_submodule(name.rpartition(".")[0]) for name in names}
    out = {name: None for name in names}
    seen: set[str] = set()

    def hook_for(name):
        def hook(module, args):
            rows = layer_rows(module, args[0].detach()).to(torch.float64)
            out[name] = rows.T @ rows if out[name] is None else out[name].addmm_(rows.T, rows)
            seen.add(name)
            if len(seen) == len(names):
                raise _Stop
        return hook

    handles = [modules[n].register_forward_pre_hook(hook_for(n)) for n in names]
    try:
        for start in range(0, len(x), CHUNK):
            seen.clear()
            try:
                model(x[start:start + CHUNK])
            except _Stop:
                pass
    finally:
        for handle in handles:
            handle.remove()
    return out


def curvature(gram: torch.Tensor, n_examples: int, damp: float) -> torch.Tensor:
    """H = 2 G / N + damp * mean(diag) I; an input that is 0 on every example gets the mean diagonal (1 if all are).

    A weight on a dead input never changes the output on the calibration data; giving it a positive
    diagonal (and no coupling) keeps H invertible and leaves it in place when kept, as SparseGPT does.
    """
    h = 2.0 * gram / n_examples
    diag = torch.diagonal(h)
    dead = diag == 0
    mean = float(diag.mean())
    diag[dead] = float(diag[~dead].mean()) if not dead.all() else 1.0
    diag += damp * mean
    return h


def inverse(h: torch.Tensor, name: str) -> torch.Tensor:
    """H^-1 through a Cholesky factorisation, or a ValueError saying how to make H invertible."""
    factor, info = torch.linalg.cholesky_ex(h)
    if int(info):
        raise ValueError(f"the reconstruction curvature of layer {name!r} is singular (fewer independent "
                         f"calibration inputs than its {h.shape[0]} columns); use damp > 0 or more samples")
    return torch.cholesky_inverse(factor)


def saliency(weight: torch.Tensor, h_inv: torch.Tensor) -> torch.Tensor:
    """OBS saliency w^2 / (2 [H^-1]_jj) of every entry: the predicted error of removing it alone."""
    return obs_core.saliency(weight, torch.diagonal(h_inv)) / 2.0


def error(delta: torch.Tensor, gram: torch.Tensor, n_examples: int) -> float:
    """Reconstruction error ||X delta^T||_F^2 / N = trace(delta G delta^T) / N."""
    return float(((delta @ gram) * delta).sum()) / n_examples


def spread(count: int, sizes: torch.Tensor) -> torch.Tensor:
    """`count` shared over parts of `sizes` entries in proportion to their sizes, by cumulative rounding.

    Equal sizes give every part the floor or ceil of count / parts; a part never gets more than its size
    while `count` is at most the total.
    """
    edges = [0, *torch.cumsum(sizes, 0).tolist()]
    cut = torch.tensor([round(count * e / edges[-1]) if edges[-1] else 0 for e in edges])
    return cut[1:] - cut[:-1]


def obc(weight: torch.Tensor, h_inv: torch.Tensor, counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact greedy OBS on every row (Frantar, Singh & Alistarh 2022): row r loses counts[r] weights.

    Each step removes, in every row still pruning, the weight of least w_q^2 / [H^-1]_qq, updates the
    row by dw = -(w_q / [H^-1]_qq) H^-1 e_q and downdates that row's own copy of H^-1 (`obc_rows.prune_rows`:
    delayed blocked updates, compaction, rows in lockstep chunks). Returns (updated weights, keep mask).
    """
    return obc_rows.prune_rows(weight, h_inv, counts)


def sparsegpt(weight: torch.Tensor, h: torch.Tensor, count: int, block_size: int,
              prior: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """SparseGPT (Frantar & Alistarh 2023): columns left to right in blocks, one approximate OBS update per column.

    With U the upper Cholesky factor of H^-1 (H^-1 = U^T U), block [i1, i2) prunes its share of the
    `count` entries (cumulative rounding over columns, so the layer prunes exactly `count`) chosen as the
    lowest w^2 / U_cc^2 over the whole block (`topk.lowest`), on the weights as already updated by earlier blocks
    (adaptive mask selection). Column c then sets its pruned entries to 0 and spreads the error
    (w_c - q_c) / U_cc over the later columns of the block along U[c, c:], and after the block the
    accumulated errors move the remaining columns by Err @ U[i1:i2, i2:].
    `prior` (keep mask, rows x d): its pruned entries are in every block's mask from the start and count
    toward `count`; the rest of the count is shared over the blocks in proportion to their surviving entries.
    Returns (updated weights, keep mask).
    """
    rows, d = weight.shape
    w = weight.clone()
    keep = torch.ones(rows, d, dtype=torch.bool)
    alive = torch.ones(rows, d, dtype=torch.bool) if prior is None else prior
    shares = spread(count - int((~alive).sum()), alive.sum(0))  # new entries to prune, per column
    u = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)
    for i1 in range(0, d, block_size):
        i2 = min(i1 + block_size, d)
        k = int(shares[i1:i2].sum())
        block, ub = w[:, i1:i2], u[i1:i2, i1:i2]
        diag = torch.diagonal(ub)
        scores = block**2 / diag**2
        if prior is not None:
            scores = scores.masked_fill(~alive[:, i1:i2], float("-inf"))
            k += int((~alive[:, i1:i2]).sum())
        prune = topk.lowest(scores.reshape(-1), k).reshape(rows, i2 - i1)
        err = torch.zeros_like(block)
        for i in range(i2 - i1):
            col = block[:, i]
            e = torch.where(prune[:, i], col, 0.0) / diag[i]
            block[:, i:] -= e[:, None] * ub[i, i:][None, :]
            block[:, i] = torch.where(prune[:, i], 0.0, block[:, i])
            err[:, i] = e
        w[:, i2:] -= err @ u[i1:i2, i2:]
        keep[:, i1:i2] = ~prune
    w[~keep] = 0.0
    return w, keep


def wanda(weight: torch.Tensor, gram: torch.Tensor) -> torch.Tensor:
    """Wanda scores |W_ij| * ||X_j||_2 (Sun et al. 2024) from the Gram matrix of the inputs."""
    return weight.abs() * torch.diagonal(gram).clamp_min(0).sqrt()


def row_mask(scores: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Keep mask pruning the counts[r] lowest scores within each row r (Wanda's per-output comparison)."""
    keep = torch.ones_like(scores, dtype=torch.bool)
    order = torch.argsort(scores, dim=1, stable=True)
    ranks = torch.empty_like(order).scatter_(1, order, torch.arange(scores.shape[1]).expand_as(order))
    keep[ranks < counts[:, None]] = False
    return keep
