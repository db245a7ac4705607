"""CHITA's solver: L0-constrained ridge least squares on a low-rank quadratic, by iterative hard thresholding.

The problem (Benbaki et al., ICML 2023; REFERENCES.md, "CHITA"): with A (n x p, here the per-example gradients
over sqrt(n)) and the dense weights w0,

    min_w  f(w) = ||A (w - w0)||^2 + lam ||w - w0||^2   s.t. at most keep[g] nonzero weights in every group g,

that is ||A w - b||^2 + lam ||w - w0||^2 with b = A w0, or twice the OBS quadratic model
1/2 (w - w0)^T (A^T A + lam I) (w - w0). A^T A (p x p) is never formed: every step is a product with A or A^T,
and the refit on a support S of m weights solves an n x n system when m > n, else an m x m one.

`solve` follows the reference implementation (github mazumder-lab/CHITA, `CHITA_opt/L0_card_const.py`):
start from the magnitude projection of w0 (the first hard-thresholding step from w0, where the gradient is 0);
each iteration takes the gradient g = A^T A (w - w0) + lam (w - w0) (half of f's) and compares the projections
P(w - t g) for the step sizes t = 1/L (L = ||A||_2^2 + lam bounds the curvature, so this plain IHT step never
raises f), the exact line-search step along the gradient restricted to the support, and t_c, 2 t_c, 4 t_c, ...
while they keep improving (t_c: the smallest step that changes the support, the reference's line search). Each
candidate is compared after `REFINE` conjugate-gradient steps on its own support (the restricted least squares),
so that a new support is judged by what it can reach rather than by the raw gradient step. The best candidate
is taken if it lowers f; when it keeps the support, the weights on it become the exact refit (the minimiser of f
on that support). The run stops when no candidate from an exact refit lowers f by more than `tolerance`
(relative), or after `iterations` steps; the result is always the exact refit on its final support.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

SEARCH = 6  # support-changing steps tried per iteration: t_c, 2 t_c, ..., 2^5 t_c (the reference doubles up to 5 times)
REFINE = 3  # conjugate-gradient steps on a candidate's support before candidates are compared
POWER_STEPS = 10  # power iterations for ||A||_2^2 (deterministic start; the estimate is raised by 5%)


@dataclass(frozen=True)
class Solution:
    """What `solve` returns: the weights (exactly 0 off the support), the support, f at them and the steps taken."""

    weights: torch.Tensor
    support: torch.Tensor
    objective: float
    steps: int
    refits: int


def objective(a: torch.Tensor, w: torch.Tensor, w0: torch.Tensor, lam: float) -> float:
    """f(w) = ||A (w - w0)||^2 + lam ||w - w0||^2."""
    return value(a, a @ w0, w0, lam, w)


def project(v: torch.Tensor, group: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """The support of the hard-thresholding projection: the keep[g] largest |v| of every group g (ties: lower index)."""
    support = torch.zeros(len(v), dtype=torch.bool)
    for g, k in enumerate(keep.tolist()):
        members = (group == g).nonzero()[:, 0]
        if k >= len(members):
            support[members] = True
        elif k > 0:
            order = torch.argsort(-v[members].abs(), stable=True)
            support[members[order[:k]]] = True
    return support


def refit(a: torch.Tensor, w0: torch.Tensor, lam: float, support: torch.Tensor) -> torch.Tensor:
    """The minimiser of f with the weights off `support` at 0 (lam = 0 and not unique: the one nearest w0).

    On S, w_S = w0_S + u with u = argmin ||A_S u - r||^2 + lam ||u||^2, r = A w0 - A_S w0_S (what the dropped
    weights contributed): u = A_S^T (A_S A_S^T + lam I)^-1 r (n x n) when S has more weights than A has rows,
    else (A_S^T A_S + lam I)^-1 A_S^T r; with lam = 0 the least-norm u.
    """
    w = torch.zeros_like(w0)
    cols = support.nonzero()[:, 0]
    if len(cols) == 0:
        return w
    a_s = a[:, cols]
    r = a @ w0 - a_s @ w0[cols]
    n, m = a_s.shape
    if lam == 0:
        u = torch.linalg.lstsq(a_s, r[:, None], driver="gelsd").solution[:, 0]
    elif m > n:
        inner = a_s @ a_s.T
        inner.diagonal().add_(lam)
        u = a_s.T @ torch.cholesky_solve(r[:, None], torch.linalg.cholesky(inner))[:, 0]
    else:
        normal = a_s.T @ a_s
        normal.diagonal().add_(lam)
        u = torch.cholesky_solve((a_s.T @ r)[:, None], torch.linalg.cholesky(normal))[:, 0]
    w[cols] = w0[cols] + u
    return w


def curvature_bound(a: torch.Tensor, lam: float) -> float:
    """L = ||A||_2^2 + lam, ||A||_2^2 by power iteration on A^T A from a fixed start, raised by 5%."""
    v = torch.ones(a.shape[1], dtype=a.dtype) / a.shape[1] ** 0.5
    norm = 0.0
    for _ in range(POWER_STEPS):
        u = a.T @ (a @ v)
        norm = float(u.norm())
        if norm == 0:
            break
        v = u / norm
    return 1.05 * norm + lam


def value(a: torch.Tensor, b: torch.Tensor, w0: torch.Tensor, lam: float, w: torch.Tensor) -> float:
    """f(w) = ||A w - b||^2 + lam ||w - w0||^2 with b = A w0 given."""
    return float((a @ w - b).square().sum() + lam * (w - w0).square().sum())


def refine(a: torch.Tensor, b: torch.Tensor, w0: torch.Tensor, lam: float, w: torch.Tensor, support: torch.Tensor,
           steps: int) -> tuple[torch.Tensor, float]:
    """`steps` conjugate-gradient steps on f restricted to `support` (zero elsewhere), from `w`; the weights and f.

    Only the support's columns of A are used (a tenth of A at 90% sparsity): with the weights off the support at
    0, f = ||A_S w_S - b||^2 + lam ||w_S - w0_S||^2 + lam ||w0 off S||^2."""
    cols = support.nonzero()[:, 0]
    a_s, ws, w0s = a[:, cols], w[cols], w0[cols]
    dropped = lam * float(w0.square().sum() - w0s.square().sum())
    r = -(a_s.T @ (a_s @ ws - b) + lam * (ws - w0s))
    d, rr = r.clone(), float(r.square().sum())
    for _ in range(steps):
        if rr == 0:
            break
        hd = a_s.T @ (a_s @ d) + lam * d
        alpha = rr / float(d @ hd)
        ws, r = ws + alpha * d, r - alpha * hd
        rr, previous = float(r.square().sum()), rr
        d = r + (rr / previous) * d
    out = torch.zeros_like(w)
    out[cols] = ws
    return out, float((a_s @ ws - b).square().sum() + lam * (ws - w0s).square().sum()) + dropped


def candidate(a: torch.Tensor, b: torch.Tensor, w0: torch.Tensor, lam: float, z: torch.Tensor, group: torch.Tensor,
              keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
    """(P(z) refined on its support, the support, f there) for the hard-thresholding projection P."""
    s = project(z, group, keep)
    w, f = refine(a, b, w0, lam, z, s, REFINE)
    return w, s, f


def change_step(w: torch.Tensor, g: torch.Tensor, support: torch.Tensor, group: torch.Tensor, groups: int) -> float:
    """The step t at which P(w - t g) first takes in a weight off `support`: where the largest |t g_i| off the
    support of a group overtakes |w_j - t g_j| of one of its kept weights j (the reference's 'L_change')."""
    off = torch.zeros(groups, dtype=g.dtype).scatter_reduce(0, group[~support], g[~support].abs(), "amax",
                                                            include_self=True)[group[support]]
    wj, gj = w[support], g[support]
    toward = torch.sign(wj) == torch.sign(gj)  # |w_j - t g_j| shrinks
    rate = torch.where(toward, gj.abs() + off, off - gj.abs())
    times = torch.where(rate > 0, wj.abs() / rate.clamp_min(1e-300), torch.full_like(wj, float("inf")))
    return float(times.min()) if len(times) else float("inf")


def best_step(a: torch.Tensor, b: torch.Tensor, w: torch.Tensor, w0: torch.Tensor, g: torch.Tensor, lam: float,
              support: torch.Tensor, group: torch.Tensor, keep: torch.Tensor,
              lip: float) -> tuple[torch.Tensor, torch.Tensor, float]:
    """The best projected gradient step P(w - t g): t = 1/L (never raises f), the exact line-search step on the
    support, and the steps that change the support, t_c, 2 t_c, 4 t_c, ... while f improves (t_c: `change_step`)."""
    gs = g * support
    curvature = float((a @ gs).square().sum() + lam * gs.square().sum())
    steps = [1.0 / lip] + ([float(gs.square().sum()) / curvature] if curvature > 0 else [])
    best = min((candidate(a, b, w0, lam, w - t * g, group, keep) for t in steps), key=lambda c: c[2])
    t = change_step(w, g, support, group, len(keep))
    for i in range(SEARCH if t < float("inf") else 0):
        trial = candidate(a, b, w0, lam, w - (2.0**i * t) * g, group, keep)
        if trial[2] >= best[2] and i > 0:
            break
        best = trial if trial[2] < best[2] else best
    return best


def solve(a: torch.Tensor, w0: torch.Tensor, lam: float, group: torch.Tensor, keep: torch.Tensor,
          iterations: int = 100, tolerance: float = 1e-7) -> Solution:
    """min ||A (w - w0)||^2 + lam ||w - w0||^2 with at most keep[g] nonzeros in each group g (float64 throughout).

    `group`: a group id (0, 1, ...) per weight; `keep`: the weights each group keeps (at most its size).
    """
    a, w0 = a.to(torch.float64).T.contiguous().T, w0.to(torch.float64)  # column-major: a support's columns are
    # contiguous, so `refine` gathers them as whole blocks
    b = a @ w0
    support = project(w0, group, keep)
    w = w0 * support
    f = value(a, b, w0, lam, w)
    lip = curvature_bound(a, lam)
    steps = refits = 0
    refitted = False
    while steps < iterations:
        g = a.T @ (a @ w - b) + lam * (w - w0)
        z, s, fz = best_step(a, b, w, w0, g, lam, support, group, keep, lip)
        steps += 1
        if fz < f - tolerance * abs(f):
            same = bool(torch.equal(s, support))
            w, support, f, refitted = z, s, fz, False
            if not same:
                continue
        elif refitted:  # no step from the minimiser on its support improves f: a fixed point
            break
        w = refit(a, w0, lam, support)
        f = value(a, b, w0, lam, w)
        refits += 1
        refitted = True
    if not refitted:
        w = refit(a, w0, lam, support)
        f = value(a, b, w0, lam, w)
        refits += 1
    return Solution(w, support, f, steps, refits)
