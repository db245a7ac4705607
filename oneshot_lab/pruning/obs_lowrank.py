"""Greedy OBS with H = lambda I + G^T G / N held in Woodbury form: the core's steps without an n x n matrix.

Used when there are fewer examples N than weights n. The choice of each step (`obs_core.choose` on
`obs_core.saliency`) and its solve and increase (`obs_core.solve_group`) are the core's; only the
representation of H^-1 differs, so the removals are those of `obs_core.remove` on the dense inverse.
"""

from __future__ import annotations

import torch

from .obs_core import choose, saliency, solve_group


def remove_lowrank(weights: torch.Tensor, grads: torch.Tensor, lam: float, count: int, batch: int = 1,
                   group: torch.Tensor | None = None,
                   budgets: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, float]:
    """`obs_core.remove` with H = lambda I + G^T G / N (G: N x n, N < n) in Woodbury form.

    On the alive set A, H_AA^-1 = (I - G_A^T K^-1 G_A) / lambda with K = N lambda I + G_A G_A^T (N x N).
    The pruner keeps Z = K^-1 G_A: the OBS columns H^-1[:, Q] = (E_Q - G_A^T Z_Q) / lambda, the
    diagonal of H^-1 follows the usual downdate, and removing Q downdates K by G_Q G_Q^T, so
    Z <- Z + Z_Q (I - G_Q^T Z_Q)^-1 (Z_Q^T G_A). O(N n) memory and O(N n count) time instead of O(n^2)
    and O(n^3). Returns (new weights, keep mask, predicted increase).
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
        q = choose(saliency(w, diag, gone), group[alive], remaining, batch)
        b = len(q)
        zq, gq = zt[q], gt[q]  # b x N
        shared = gt @ zq.T  # G_A^T Z_Q, m x b
        cols = shared / -lam
        cols[q, torch.arange(b)] += 1.0 / lam  # H^-1[:, Q]
        _, solved, increase = solve_group(cols[q], w[q], cols.T)
        predicted += increase
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
