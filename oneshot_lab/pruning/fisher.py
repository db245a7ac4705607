"""Greedy Optimal Brain Surgeon removal on an empirical-Fisher inverse: dense, Woodbury (low-rank) and
block-diagonal (WoodFisher) forms. Formulas in REFERENCES.md, "Second order with weight updates"."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from . import reconstruction


# ----------------------------------------------------------------------------------------------
# Greedy OBS on an explicit inverse curvature


def _pick(sal: torch.Tensor, group: torch.Tensor, remaining: torch.Tensor, batch: int) -> torch.Tensor:
    """Indices of the up to `batch` lowest saliencies whose group still has a remaining budget."""
    if len(remaining) == 1:
        return _lowest(sal, min(batch, int(remaining.sum())))
    order = torch.argsort(sal, stable=True)
    order = order[torch.isfinite(sal[order])]
    g = group[order]
    onehot = torch.nn.functional.one_hot(g, len(remaining))
    rank = (onehot.cumsum(0) * onehot).sum(1)  # 1-based rank of each entry within its group
    allowed = order[rank <= remaining[g]]
    return allowed[:min(batch, int(remaining.sum()))]


def _lowest(sal: torch.Tensor, k: int) -> torch.Tensor:
    """The first `k` finite entries of a stable ascending sort of `sal` (ties: lowest index first), sorting
    only the entries at or below the k-th smallest value."""
    k = min(k, int(torch.isfinite(sal).sum()))
    if k == 0:
        return torch.zeros(0, dtype=torch.long)
    cut = torch.topk(sal, k, largest=False, sorted=False).values.max()
    candidates = (sal <= cut).nonzero()[:, 0]
    return candidates[torch.argsort(sal[candidates], stable=True)[:k]]


def _budgets(groups: list[tuple[tuple[str, ...], int]], names: list[str], sizes: list[int],
             alive: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(group id of every flat weight, removals left to every group: its count less its entries not `alive`)."""
    index = {name: i for i, (layers, _) in enumerate(groups) for name in layers}
    group = torch.cat([torch.full((s,), index[n], dtype=torch.long) for n, s in zip(names, sizes)])
    done = torch.bincount(group[~alive], minlength=len(groups))
    return group, torch.tensor([count for _, count in groups]) - done


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
    """`remove` on a block-diagonal inverse: w (blocks x B), finv (blocks x B x B), valid marks real entries.

    Each step's removals are solved for all touched blocks at once: a block removing k < kmax weights has
    its system padded with identity rows and zero columns, which changes neither its update nor its downdate.
    """
    w, finv = w.clone(), finv.clone()
    size = w.shape[1]
    removed = ~valid
    remaining = budgets.clone()
    predicted = 0.0
    while int(remaining.sum()) > 0:
        sal = (w**2 / torch.diagonal(finv, dim1=1, dim2=2)).masked_fill(removed, float("inf")).reshape(-1)
        q = _pick(sal, group, remaining, batch)
        remaining -= torch.bincount(group[q], minlength=len(remaining))
        touched, row = torch.unique(q // size, return_inverse=True)
        order = torch.argsort(row, stable=True)
        counts = torch.bincount(row, minlength=len(touched))
        slot = torch.arange(len(q)) - (torch.cumsum(counts, 0) - counts)[row[order]]
        local = torch.zeros(len(touched), int(counts.max()), dtype=torch.long)
        present = torch.zeros(local.shape, dtype=torch.bool)
        local[row[order], slot] = q[order] % size
        present[row[order], slot] = True
        hb = finv[touched]
        cols = hb.gather(2, local.unsqueeze(1).expand(-1, size, -1)) * present.unsqueeze(1)  # T x B x k
        square = cols.gather(1, local.unsqueeze(2).expand(-1, -1, local.shape[1]))  # T x k x k
        pair = present.unsqueeze(2) & present.unsqueeze(1)
        square = torch.where(pair, square, torch.diag_embed(torch.ones_like(present, dtype=square.dtype)))
        factor = torch.linalg.cholesky(square)
        wl = w[touched].gather(1, local) * present
        solved = torch.cholesky_solve(wl.unsqueeze(2), factor)  # T x k x 1, 0 on padding
        predicted += 0.5 * float((wl * solved[..., 0]).sum())
        w[touched] -= (cols @ solved)[..., 0]
        finv[touched] = hb.baddbmm_(cols, torch.cholesky_solve(cols.transpose(1, 2), factor), alpha=-1.0)
        blocks, entries = touched[row], q % size
        w[blocks, entries] = 0.0
        removed[blocks, entries] = True
    w[removed] = 0.0
    return w, ~removed & valid, predicted


# ----------------------------------------------------------------------------------------------
# Per-example gradients and Fisher inverses


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
    group, budgets = _budgets(groups, names, sizes, alive)
    total = int(budgets.sum())
    if total == 0:
        return w * alive, alive, 0.0, sizes
    batch = _auto_batch(batch, total)
    grads = per_example_gradients(clone, names, x, y)
    live = alive.nonzero()[:, 0] if prior is not None else None
    lam = damp * float((grads**2 if live is None else grads[:, live]**2).mean())
    if method == "obs":
        g, wl, gl = (grads, w, group) if live is None else (grads[:, live], w[live], group[live])
        if lam > 0 and len(g) < len(wl):
            new_l, keep_l, predicted = remove_lowrank(wl, g, lam, total, batch, gl, budgets)
        else:
            new_l, keep_l, predicted = remove(wl, fisher_inverse(g, damp), total, batch, gl, budgets)
        if live is None:
            return new_l, keep_l, predicted, sizes
        new, keep = torch.zeros_like(w), torch.zeros_like(alive)
        new[live], keep[live] = new_l, keep_l
        return new, keep, predicted, sizes
    gb, valid = _blocked(grads if live is None else grads * alive, sizes, block_size)
    wb, _ = _blocked(w, sizes, block_size)
    groupb, _ = _blocked(group, sizes, block_size)
    aliveb, _ = _blocked(alive, sizes, block_size)
    newb, keepb, predicted = _woodfisher_remove(wb, woodbury_blocks(gb, lam), valid & aliveb, groupb.reshape(-1),
                                                budgets, batch)
    return newb[valid], keepb[valid], predicted, sizes
