"""Empirical-Fisher inverses for greedy OBS ('obs') and WoodFisher, and `solve`, which runs them on a model.

The greedy removal itself is `obs_core` (dense and block-diagonal inverses) and `obs_lowrank` (Woodbury
form). Formulas in REFERENCES.md, "Second order with weight updates".
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from . import obs_core, obs_lowrank, reconstruction


def per_example_gradients(model: nn.Module, names: list[str], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Gradients of the cross-entropy of each example w.r.t. the parameters `names`, flattened: N x n float64."""
    from torch.func import functional_call, grad, vmap

    params = {n: p.detach() for n, p in model.named_parameters()}
    buffers = dict(model.named_buffers())

    def loss(weights, xi, yi):
        out = functional_call(model, ({**params, **weights}, buffers), (xi.unsqueeze(0),))
        return nn.functional.cross_entropy(out, yi.unsqueeze(0))

    rows = []
    for start in range(0, len(y), reconstruction.CHUNK):
        g = vmap(grad(loss), in_dims=(None, 0, 0))({n: params[n] for n in names}, x[start:start + reconstruction.CHUNK],
                                                    y[start:start + reconstruction.CHUNK])
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
    """Inverse of every block of lambda I + (1/N) sum g_n g_n^T, all blocks in one batched factorisation.

    grads: N x blocks x B. WoodFisher builds the same inverse by N rank-one Woodbury updates; one batched
    Cholesky of the B x B blocks (or, with N < B, of the N x N Woodbury inner matrices) gives it directly.
    """
    n_examples, blocks, size = grads.shape
    g = grads.permute(1, 0, 2)  # blocks x N x B
    if n_examples < size:  # (lambda I + G^T G / N)^-1 = (I - G^T (N lambda I + G G^T)^-1 G) / lambda
        inner = torch.baddbmm(torch.eye(n_examples, dtype=g.dtype).mul(n_examples * lam), g, g.transpose(1, 2))
        out = -(g.transpose(1, 2) @ torch.cholesky_solve(g, torch.linalg.cholesky(inner)))
        torch.diagonal(out, dim1=1, dim2=2).add_(1.0)
        return out / lam
    fisher = torch.baddbmm(torch.eye(size, dtype=g.dtype).mul(lam), g.transpose(1, 2), g, alpha=1.0 / n_examples)
    return torch.cholesky_inverse(torch.linalg.cholesky(fisher))


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


def solve(clone: nn.Module, names: list[str], x: torch.Tensor, y: torch.Tensor, method: str,
          groups: list[tuple[tuple[str, ...], int]], damp: float, batch: int | None, block_size: int = 128,
          prior: Mapping[str, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor, float, list[int]]:
    """Greedy OBS ('obs') or WoodFisher ('woodfisher') removal of prunable weights of `clone`.

    `groups`: (layers, count) pairs; a weight can only go while its group has fewer than `count` pruned.
    `prior`: masks of entries already pruned (0 in `clone`); they count toward their group and are out of the
    problem from the start: the Fisher is restricted to the surviving weights ('woodfisher': each block to its
    survivors). Returns the new flat weights (float64), the flat keep mask, the predicted loss increase and the
    parameter sizes.
    """
    sizes = [clone.get_parameter(n).numel() for n in names]
    w = torch.cat([clone.get_parameter(n).detach().reshape(-1) for n in names]).to(torch.float64)
    alive = (torch.cat([prior[n].reshape(-1) for n in names]) if prior is not None
             else torch.ones(len(w), dtype=torch.bool))
    group, budgets = obs_core.budgets(groups, names, sizes, alive)
    total = int(budgets.sum())
    if total == 0:
        return w * alive, alive, 0.0, sizes
    batch = obs_core.auto_batch(batch, total)
    grads = per_example_gradients(clone, names, x, y)
    live = alive.nonzero()[:, 0] if prior is not None else None
    lam = damp * float((grads**2 if live is None else grads[:, live]**2).mean())
    if method == "obs":
        g, wl, gl = (grads, w, group) if live is None else (grads[:, live], w[live], group[live])
        if lam > 0 and len(g) < len(wl):
            new_l, keep_l, predicted = obs_lowrank.remove_lowrank(wl, g, lam, total, batch, gl, budgets)
        else:
            new_l, keep_l, predicted = obs_core.remove(wl, fisher_inverse(g, damp), total, batch, gl, budgets)
        if live is None:
            return new_l, keep_l, predicted, sizes
        new, keep = torch.zeros_like(w), torch.zeros_like(alive)
        new[live], keep[live] = new_l, keep_l
        return new, keep, predicted, sizes
    gb, valid = _blocked(grads if live is None else grads * alive, sizes, block_size)
    wb, _ = _blocked(w, sizes, block_size)
    groupb, _ = _blocked(group, sizes, block_size)
    aliveb, _ = _blocked(alive, sizes, block_size)
    newb, keepb, predicted = obs_core.remove_blocks(wb, woodbury_blocks(gb, lam), valid & aliveb,
                                                    groupb.reshape(-1), budgets, batch)
    return newb[valid], keepb[valid], predicted, sizes
