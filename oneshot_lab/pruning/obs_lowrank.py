"""Greedy OBS with H = lambda I + G^T G / N held in Woodbury form: the core's steps without an n x n matrix.

Used when there are fewer examples N than weights n and the dense inverse would not fit. The driver is the
core's (`obs_core.greedy`: its choice, group solve, increase and lazily applied downdates); only the
representation of H^-1 differs, so the removals are those of `obs_core.remove` on the dense inverse.
"""

from __future__ import annotations

import torch

from .obs_core import gram, greedy


class LowRankInverse:
    """H^-1 over the alive entries A: H_AA^-1 = (I - G_A^T K^-1 G_A) / lambda, K = N lambda I + G_A G_A^T (N x N).

    Keeps G_A and Z = K^-1 G_A (both N x m): a column H^-1[:, Q] = (E_Q - G_A^T Z_Q) / lambda costs O(N m).
    Dropping the entries R downdates K by G_R G_R^T, so Z <- Z + Z_R (I - G_R^T Z_R)^-1 (Z_R^T G_A).
    """

    def __init__(self, grads: torch.Tensor, lam: float) -> None:
        self.lam = lam
        self.gt = grads.to(torch.float64).T.contiguous()  # weights x examples
        kernel = gram(self.gt.T)
        torch.diagonal(kernel).add_(len(grads) * lam)
        self.zt = torch.cholesky_solve(self.gt.T, torch.linalg.cholesky(kernel)).T.contiguous()  # (K^-1 G_A)^T

    def diagonal(self) -> torch.Tensor:
        """diag H^-1."""
        return (1.0 - (self.gt * self.zt).sum(1)) / self.lam

    def columns(self, q: torch.Tensor) -> torch.Tensor:
        """H^-1[:, Q] (m x k)."""
        cols = (self.gt @ self.zt[q].T) / -self.lam
        cols[q, torch.arange(len(q))] += 1.0 / self.lam
        return cols

    def compact(self, low: torch.Tensor, stay: torch.Tensor) -> None:
        """Drop the entries not in `stay` (the pending downdate `low` is what dropping them does to H^-1)."""
        zr, gr = self.zt[~stay], self.gt[~stay]
        self.gt, self.zt = self.gt[stay], self.zt[stay]
        if len(zr):
            inner = torch.eye(len(zr), dtype=zr.dtype) - gr @ zr.T
            self.zt.addmm_((self.gt @ zr.T) @ torch.linalg.inv(inner).T, zr)


def remove_lowrank(weights: torch.Tensor, grads: torch.Tensor, lam: float, count: int, batch: int = 1,
                   group: torch.Tensor | None = None,
                   budgets: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, float]:
    """`obs_core.remove` with H = lambda I + G^T G / N (G: N x n, N < n) in Woodbury form: O(N n) memory.

    Returns (new weights, keep mask, predicted increase).
    """
    return greedy(weights, LowRankInverse(grads, lam), count, batch, group, budgets)
