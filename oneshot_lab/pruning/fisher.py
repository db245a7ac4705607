"""Empirical-Fisher inverses for greedy OBS ('obs') and WoodFisher, and `solve`, which runs them on a model.

The greedy removal itself is `obs_core` (dense and block-diagonal inverses) and `obs_lowrank` (Woodbury
form); WoodFisher's published one-shot update (every pruned weight's OBS update computed alone, summed) is
`independent` here. Formulas in REFERENCES.md, "Second order with weight updates".
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping

import torch
from torch import nn

from . import obs_core, obs_lowrank, reconstruction

DENSE_MAX = 2**14  # weights of the largest dense inverse held (n x n float64: 2 GiB)
CHUNK_ENTRIES = 2**25  # entries of one N x c slice of the Woodbury diagonal (256 MiB float64)


def gib(entries: int) -> str:
    """The memory of `entries` float64 numbers, e.g. '7.3 GiB'."""
    return f"{entries * 8 / 2**30:.1f} GiB"


def per_example_gradients(model: nn.Module, names: list[str], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Gradients of the cross-entropy of each example w.r.t. the parameters `names`, flattened: N x n float64."""
    from torch.func import functional_call, grad, vmap

    params = {n: p.detach() for n, p in model.named_parameters()}
    buffers = dict(model.named_buffers())

    def loss(weights, xi, yi):
        out = functional_call(model, ({**params, **weights}, buffers), (xi.unsqueeze(0),))
        return nn.functional.cross_entropy(out, yi.unsqueeze(0))

    out = torch.empty(len(y), sum(params[n].numel() for n in names), dtype=torch.float64)  # no second copy
    for start in range(0, len(y), reconstruction.CHUNK):
        g = vmap(grad(loss), in_dims=(None, 0, 0))({n: params[n] for n in names}, x[start:start + reconstruction.CHUNK],
                                                    y[start:start + reconstruction.CHUNK])
        torch.cat([g[n].reshape(len(g[n]), -1) for n in names], 1, out=out[start:start + reconstruction.CHUNK])
    return out


def damping(grads: torch.Tensor, damp: float, absolute: bool = False) -> float:
    """lambda: `damp` itself (absolute, the reference code's --fisher-damp) or damp * mean(diag F), F = G^T G / N."""
    return float(damp) if absolute else damp * float((grads**2).mean())


def fisher_inverse(grads: torch.Tensor, damp: float, absolute: bool = False) -> torch.Tensor:
    """(F + lambda I)^-1 with F = G^T G / N and lambda = `damping(grads, damp, absolute)`, in one piece.

    With fewer examples than weights (and lambda > 0) this uses the Woodbury identity
    (lambda I + G^T G / N)^-1 = (I - G^T (N lambda I + G G^T)^-1 G) / lambda; else a Cholesky inverse.
    """
    n_examples, n = grads.shape
    lam = damping(grads, damp, absolute)
    if lam > 0 and n_examples < n:
        kernel = obs_core.gram(grads)
        torch.diagonal(kernel).add_(n_examples * lam)
        inner = torch.linalg.cholesky(kernel)
        out = obs_core.gram(torch.linalg.solve_triangular(inner, grads, upper=False).T).neg_()  # G^T K^-1 G
        torch.diagonal(out).add_(1.0)
        return out / lam
    fisher = obs_core.gram(grads.T) / n_examples + lam * torch.eye(n, dtype=grads.dtype)
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


class BlockInverse:
    """One diagonal block of the damped Fisher, F_b = G_b^T G_b / N + lambda I (G_b: N x B), for the one-shot update.

    With N < B it is held in Woodbury form (F_b^-1 = (I - G_b^T K^-1 G_b) / lambda, K = N lambda I + G_b G_b^T:
    O(N^2) memory besides G_b); else as its dense inverse (B x B).
    """

    def __init__(self, grads: torch.Tensor, lam: float) -> None:
        self.grads, self.lam = grads, lam
        n_examples, size = grads.shape
        if lam > 0 and n_examples < size:
            kernel = obs_core.gram(grads)
            torch.diagonal(kernel).add_(n_examples * lam)
            self.factor, self.inverse = torch.linalg.cholesky(kernel), None
        else:
            self.factor, self.inverse = None, fisher_inverse(grads.contiguous(), lam, absolute=True)

    def diagonal(self) -> torch.Tensor:
        """diag F_b^-1; in Woodbury form (1 - ||L^-1 g_j||^2) / lambda per column, computed in slices."""
        if self.inverse is not None:
            return torch.diagonal(self.inverse).clone()
        n_examples, size = self.grads.shape
        step = max(1, CHUNK_ENTRIES // n_examples)
        parts = [torch.linalg.solve_triangular(self.factor, self.grads[:, j:j + step], upper=False).pow_(2).sum(0)
                 for j in range(0, size, step)]
        return (1.0 - torch.cat(parts)) / self.lam

    def apply(self, v: torch.Tensor) -> torch.Tensor:
        """F_b^-1 v."""
        if self.inverse is not None:
            return self.inverse @ v
        inner = torch.cholesky_solve((self.grads @ v).unsqueeze(1), self.factor)[:, 0]
        return (v - self.grads.T @ inner) / self.lam

    def quadratic(self, d: torch.Tensor) -> float:
        """d^T F_b d."""
        return float((self.grads @ d).pow(2).sum()) / len(self.grads) + self.lam * float(d @ d)


def ranges(sizes: list[int], block: int | str) -> list[tuple[int, int]]:
    """(start, stop) of every Fisher block in the flat weights: the whole network, each layer, or `block`
    consecutive weights within a layer (row-major)."""
    if block == "network":
        return [(0, sum(sizes))]
    out, start = [], 0
    for s in sizes:
        step = s if block == "layer" else int(block)
        out += [(start + j, start + min(j + step, s)) for j in range(0, s, step)]
        start += s
    return out


def inverse_blocks(grads: torch.Tensor, alive: torch.Tensor, blocks: list[tuple[int, int]],
                   lam: float) -> tuple[torch.Tensor, list]:
    """diag F^-1 (inf where pruned) and the (indices, `BlockInverse`) of every block restricted to its `alive` entries."""
    parts, diag = [], torch.full((grads.shape[1],), float("inf"), dtype=torch.float64)
    for start, stop in blocks:
        idx = alive[start:stop].nonzero()[:, 0] + start
        if len(idx):
            whole = len(idx) == stop - start
            parts.append((idx, BlockInverse(grads[:, start:stop] if whole else grads[:, idx], lam)))
            diag[idx] = parts[-1][1].diagonal()
    return diag, parts


def independent(w: torch.Tensor, diag: torch.Tensor, parts: list, alive: torch.Tensor, group: torch.Tensor,
                budgets: torch.Tensor, scale: float) -> tuple[torch.Tensor, torch.Tensor, float]:
    """WoodFisher's one-shot update on a block-diagonal Fisher (`inverse_blocks`).

    All removals Q are chosen at once, the `budgets` lowest saliencies w_q^2 / [F^-1]_qq of each group (the
    registry's selection rule); the survivors move by scale * sum_q -(w_q / [F^-1]_qq) F^-1 e_q (each pruned
    weight's OBS update computed alone, summed) and Q is set to 0. Returns (new weights, keep mask, predicted
    increase 1/2 d^T F d of the whole displacement d).
    """
    q = obs_core.choose(obs_core.saliency(w, diag, ~alive), group, budgets, int(budgets.sum()))
    basis = torch.zeros_like(w)
    basis[q] = -w[q] / diag[q]
    new = w.clone()
    for idx, part in parts:
        new[idx] += scale * part.apply(basis[idx])
    keep = alive.clone()
    keep[q] = False
    new[~keep] = 0.0
    predicted = 0.5 * sum(part.quadratic(new[idx] - w[idx]) for idx, part in parts)
    return new, keep, predicted


def digest(clone: nn.Module, tensors: tuple[torch.Tensor, ...], settings: tuple) -> str:
    """A digest of everything an independent-update Fisher depends on: every parameter and buffer of `clone`,
    the calibration tensors and the settings (blocks, damping)."""
    h = hashlib.blake2b(digest_size=20)
    for name, t in [*clone.state_dict().items(), *(("", t) for t in tensors)]:
        h.update(name.encode())
        h.update(t.detach().contiguous().cpu().numpy().tobytes())
    h.update(repr(settings).encode())
    return h.hexdigest()


# The last independent-update Fisher (its digest -> diag and blocks): pruning one model at several sparsities
# factors its Fisher once (with 10,000 samples that is most of the cost); a different model, sample or setting
# has another digest and is computed anew.
RECENT: dict[str, tuple[torch.Tensor, list]] = {}
RECENT_LOCK = threading.Lock()


def check_blocks(sizes: list[int], block: int | str, n_examples: int, damp: float) -> None:
    """Refuse, before any work, a Fisher block above DENSE_MAX weights that cannot be held in Woodbury form
    (as many examples as weights, or no damping): its dense inverse would not fit."""
    for start, stop in ranges(sizes, block):
        size = stop - start
        if size > DENSE_MAX and (n_examples >= size or damp == 0):
            raise ValueError(f"a Fisher block of {size} weights from {n_examples} examples with damp={damp} needs its "
                             f"dense {size} x {size} inverse ({gib(size * size)}), above the lab's "
                             f"limit of {DENSE_MAX} weights; use fewer samples than weights and damp > 0 (Woodbury "
                             f"form) or a smaller block_size")


def solve(clone: nn.Module, names: list[str], x: torch.Tensor, y: torch.Tensor,
          groups: list[tuple[tuple[str, ...], int]], prior: Mapping[str, torch.Tensor] | None = None,
          block: int | str = "network", damp: float = 0.01, absolute: bool = False, batch: int | str = 1,
          update: str = "greedy", scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, float, list[int]]:
    """OBS removal of prunable weights of `clone` on their damped empirical Fisher: 'obs' and WoodFisher.

    `block`: the Fisher's diagonal blocks ("network": one, 'obs'; "layer": one per layer; an int: that many
    consecutive weights of a layer). `damp`, `absolute`: lambda (`damping`). `update="greedy"`: each step
    removes the `batch` weights of least saliency ("auto": ceil(count / 256)) with the group OBS update
    (`obs_core`; the whole network's inverse dense up to DENSE_MAX weights, else in Woodbury form);
    `update="independent"`: WoodFisher's one-shot update scaled by `scale` (`independent`).
    `groups`: (layers, count) pairs; a weight can only go while its group has fewer than `count` pruned.
    `prior`: masks of entries already pruned (0 in `clone`); they count toward their group and are out of the
    problem from the start: the Fisher is restricted to the surviving weights (each block to its survivors).
    Returns the new flat weights (float64), the flat keep mask, the predicted loss increase and the parameter sizes.
    """
    sizes = [clone.get_parameter(n).numel() for n in names]
    w = torch.cat([clone.get_parameter(n).detach().reshape(-1) for n in names]).to(torch.float64)
    alive = (torch.cat([prior[n].reshape(-1) for n in names]) if prior is not None
             else torch.ones(len(w), dtype=torch.bool))
    group, budgets = obs_core.budgets(groups, names, sizes, alive)
    total = int(budgets.sum())
    if total == 0:
        return w * alive, alive, 0.0, sizes
    if update == "independent" or block == "network":
        check_blocks(sizes, block, len(y), damp)
    live = alive.nonzero()[:, 0] if prior is not None else None
    if update == "independent":
        key = digest(clone, (x, y, alive), (tuple(names), block, damp, absolute))
        with RECENT_LOCK:
            found = RECENT.get(key)
        if found is None:
            grads = per_example_gradients(clone, names, x, y)
            lam = damping(grads if live is None else grads[:, live], damp, absolute)
            found = inverse_blocks(grads, alive, ranges(sizes, block), lam)
            with RECENT_LOCK:
                RECENT.clear()
                RECENT[key] = found
        new, keep, predicted = independent(w, *found, alive, group, budgets, scale)
        return new, keep, predicted, sizes
    grads = per_example_gradients(clone, names, x, y)
    lam = damping(grads if live is None else grads[:, live], damp, absolute)
    batch = obs_core.auto_batch(batch, total)
    if block == "network":
        g, wl, gl = (grads, w, group) if live is None else (grads[:, live], w[live], group[live])
        if len(wl) > DENSE_MAX:
            new_l, keep_l, predicted = obs_lowrank.remove_lowrank(wl, g, lam, total, batch, gl, budgets)
        else:
            h_inv = fisher_inverse(g, lam, absolute=True)
            new_l, keep_l, predicted = obs_core.remove(wl, h_inv, total, batch, gl, budgets)
        if live is None:
            return new_l, keep_l, predicted, sizes
        new, keep = torch.zeros_like(w), torch.zeros_like(alive)
        new[live], keep[live] = new_l, keep_l
        return new, keep, predicted, sizes
    size = max(sizes) if block == "layer" else int(block)
    gb, valid = _blocked(grads if live is None else grads * alive, sizes, size)
    wb, _ = _blocked(w, sizes, size)
    groupb, _ = _blocked(group, sizes, size)
    aliveb, _ = _blocked(alive, sizes, size)
    newb, keepb, predicted = obs_core.remove_blocks(wb, woodbury_blocks(gb, lam), valid & aliveb,
                                                    groupb.reshape(-1), budgets, batch)
    return newb[valid], keepb[valid], predicted, sizes
