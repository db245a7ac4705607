"""The one greedy Optimal Brain Surgeon core: saliency, the choice of the next removals, the group update.

Greedy OBS (Hassibi & Stork 1993; formulas in REFERENCES.md, "Second order with weight updates") repeats
one step until every group has met its budget: remove the weights Q of least saliency w_q^2 / [H^-1]_qq,
move the survivors by dw = -H^-1[:, Q] (H^-1[Q, Q])^-1 w_Q and downdate
H^-1 <- H^-1 - H^-1[:, Q] (H^-1[Q, Q])^-1 H^-1[Q, :]. For a quadratic objective the survivors are then
the least-squares refit given the mask, whatever the sequence of removals.

This module holds every piece of that step and the drivers:

- `saliency`, `lowest`, `choose`, `budgets`, `auto_batch`: which weights go next. The k lowest are the set
  `torch.topk(largest=False)` returns (`oneshot_lab.core.topk.lowest`, ties included), taken in order
  of saliency (ties: lowest index first).
- `solve_group` and `remove_from_blocks`: the group update and downdate on a batch of independent blocks.
- `greedy` on one inverse whose downdates are applied lazily (`remove`: a dense inverse, `DenseInverse`;
  `obs_lowrank.remove_lowrank`: the Woodbury form) and `remove_blocks` (block-diagonal, WoodFisher: many
  blocks, padded, each step's downdate applied at once).

OBC's per-row solver (`obc_rows`) is the per-row specialisation: batch 1, one budget per row, rows in
lockstep with their own inverses; its choice is `row_choice`.
"""

from __future__ import annotations

import torch

from ..core import topk

Groups = list[tuple[tuple[str, ...], int]]  # (layers pruned together, entries pruned in them in the end)


# ----------------------------------------------------------------------------------------------
# Choice of the next removals


def saliency(weights: torch.Tensor, diag: torch.Tensor, removed: torch.Tensor | None = None) -> torch.Tensor:
    """OBS saliency w_q^2 / [H^-1]_qq of every entry (twice the increase of removing it alone); +inf where `removed`."""
    sal = weights**2 / diag
    return sal if removed is None else sal.masked_fill(removed, float("inf"))


def row_choice(weights: torch.Tensor, diag: torch.Tensor, barrier: torch.Tensor) -> torch.Tensor:
    """Column of least saliency in every row of `weights` (rows x d); `barrier` is 0, or +inf where removed.

    The batch-1 choice of OBC's lockstep rows: one argmin per row, ties to the lowest index.
    """
    return torch.addcdiv(barrier, weights * weights, diag).argmin(1)


def lowest(values: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the k lowest finite entries of 1-D `values` (fewer if fewer are finite), lowest first.

    The set is the one `torch.topk(values, k, largest=False)` returns (`core.topk.lowest`, ties included);
    it is ordered by value, equal values by index.
    """
    k = min(k, int(torch.isfinite(values).sum()))
    if k <= 0:
        return torch.zeros(0, dtype=torch.long)
    chosen = topk.lowest(values, k).nonzero()[:, 0]
    return chosen[torch.argsort(values[chosen], stable=True)]


def choose(sal: torch.Tensor, group: torch.Tensor, remaining: torch.Tensor, batch: int) -> torch.Tensor:
    """Indices of the next removals: the min(batch, sum(remaining)) lowest saliencies a group's budget allows.

    `group`: a group id per entry; `remaining`: removals left per group. A group with `batch` or more
    left offers every entry (it cannot be over-drawn in one step), one with fewer its `remaining` lowest,
    one with none nothing; the step takes the lowest of the offers (`lowest`: torch.topk's set, ordered).
    """
    total = min(batch, int(remaining.sum()))
    short = remaining < batch
    if not bool(short.any()):
        return lowest(sal, total)
    offered = sal.masked_fill(short[group], float("inf"))
    for g, left in zip(short.nonzero()[:, 0].tolist(), remaining[short].tolist()):
        if left > 0:
            members = (group == g).nonzero()[:, 0]
            offer = members[lowest(sal[members], left)]
            offered[offer] = sal[offer]
    return lowest(offered, total)


def budgets(groups: Groups, names: list[str], sizes: list[int],
            alive: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(group id of every flat weight, removals left to every group: its count less its entries not `alive`)."""
    index = {name: i for i, (layers, _) in enumerate(groups) for name in layers}
    group = torch.cat([torch.full((s,), index[n], dtype=torch.long) for n, s in zip(names, sizes)])
    done = torch.bincount(group[~alive], minlength=len(groups))
    return group, torch.tensor([count for _, count in groups]) - done


def auto_batch(batch: int | str, count: int) -> int:
    """`batch`, or ceil(count / 256) for "auto", so that a run takes about 256 greedy steps."""
    return max(1, -(-count // 256)) if batch == "auto" else int(batch)


# ----------------------------------------------------------------------------------------------
# The group update


def gram(a: torch.Tensor, pieces: int = 8) -> torch.Tensor:
    """a @ a^T; for a of 2048 rows or more only the row blocks on and below the diagonal (of `pieces`) are
    multiplied, about 56% of the work of the general product, and mirrored above it."""
    n = len(a)
    if n < 2048:
        return a @ a.T
    step = -(-n // pieces)
    out = a.new_empty(n, n)
    for i in range(0, n, step):
        out[i:i + step, :i + step] = a[i:i + step] @ a[:i + step].T
    return out.tril_().add_(out.tril(-1).T)


def small_solve(factor: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """(L L^T)^-1 rhs for Cholesky factors L (..., k, k) of small systems and a wide rhs (..., k, c).

    By the explicit inverse: LAPACK's triangular solves with k = 1 and thousands of right-hand sides take
    milliseconds each, the product microseconds (the results agree to rounding).
    """
    return torch.cholesky_inverse(factor) @ rhs


def solve_group(square: torch.Tensor, wq: torch.Tensor,
                extra: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, float]:
    """(Cholesky factor of H^-1[Q, Q], its solve of [w_Q, extra], increase 1/2 w_Q^T (H^-1[Q, Q])^-1 w_Q).

    Batched over leading dims: square (..., k, k), wq (..., k), extra (..., k, c); the increase is summed
    over the batch. Column 0 of the solve is (H^-1[Q, Q])^-1 w_Q, the next c the solve of `extra`.
    """
    factor = torch.linalg.cholesky(square)
    rhs = wq.unsqueeze(-1) if extra is None else torch.cat([wq.unsqueeze(-1), extra], -1)
    solved = small_solve(factor, rhs)
    return factor, solved, 0.5 * float((wq * solved[..., 0]).sum())


def remove_from_blocks(w: torch.Tensor, hinv: torch.Tensor, local: torch.Tensor,
                       present: torch.Tensor | None = None) -> float:
    """Group OBS removal of entries `local` (T x k) from T independent blocks, in place; returns the increase.

    w: T x B weights, hinv: T x B x B inverse curvatures (a dense inverse is one block). Block t loses
    Q = local[t]: w moves by -H^-1[:, Q] (H^-1[Q, Q])^-1 w_Q, w_Q becomes exactly 0 and H^-1 is downdated
    by H^-1[:, Q] (H^-1[Q, Q])^-1 H^-1[Q, :]. A block that loses fewer than k marks its unused slots False
    in `present`: its system is padded with identity rows and zero columns, which changes neither its
    update nor its downdate. Returns 1/2 sum_t w_Q^T (H^-1[Q, Q])^-1 w_Q.
    """
    size, k = w.shape[1], local.shape[1]
    cols = hinv.gather(2, local.unsqueeze(1).expand(-1, size, -1))  # T x B x k
    wq = w.gather(1, local)
    if present is not None:
        cols = cols * present.unsqueeze(1)
        wq = wq * present
    square = cols.gather(1, local.unsqueeze(2).expand(-1, -1, k))  # T x k x k
    if present is not None:
        pair = present.unsqueeze(2) & present.unsqueeze(1)
        square = torch.where(pair, square, torch.diag_embed(torch.ones_like(present, dtype=square.dtype)))
    factor, solved, increase = solve_group(square, wq)
    w -= (cols @ solved)[..., 0]
    hinv.baddbmm_(cols, small_solve(factor, cols.transpose(1, 2)), alpha=-1.0)
    if present is None:
        w.scatter_(1, local, 0.0)
    else:
        w[torch.arange(len(local)).unsqueeze(1).expand_as(local)[present], local[present]] = 0.0
    return increase


# ----------------------------------------------------------------------------------------------
# Greedy drivers


LAZY = 256  # most pending downdate columns before they are applied to the base inverse


class DenseInverse:
    """H^-1 as an explicit matrix over the entries alive since the last compaction (a `greedy` base)."""

    def __init__(self, h_inv: torch.Tensor) -> None:
        self.matrix = h_inv.to(torch.float64).clone()

    def diagonal(self) -> torch.Tensor:
        """diag H^-1 (a copy)."""
        return torch.diagonal(self.matrix).clone()

    def columns(self, q: torch.Tensor) -> torch.Tensor:
        """H^-1[:, Q] (m x k)."""
        return self.matrix[:, q]

    def compact(self, low: torch.Tensor, stay: torch.Tensor) -> None:
        """Apply the pending downdate H^-1 - low low^T and keep the entries `stay`."""
        idx = stay.nonzero()[:, 0]
        kept = low[idx]
        self.matrix = self.matrix.index_select(0, idx).index_select(1, idx).addmm_(kept, kept.T, alpha=-1.0)


def greedy(weights: torch.Tensor, inverse, count: int, batch: int = 1, group: torch.Tensor | None = None,
           budgets: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Greedy OBS on a weight vector with inverse curvature `inverse` (`DenseInverse`, `obs_lowrank.LowRankInverse`).

    Each step removes the weights Q `choose` picks (at most `batch`): w moves by -H^-1[:, Q] S^-1 w_Q with
    S = H^-1[Q, Q] = L L^T, w_Q becomes exactly 0, and H^-1 is downdated by U U^T, U = H^-1[:, Q] L^-T. The
    downdates are kept as columns U (H^-1 = base - U U^T, diag H^-1 updated at once) and applied to the base
    when LAZY columns are pending or an eighth of the alive entries went, which also drops the removed
    entries: a step costs the base's columns plus O(m r) instead of an O(m^2) downdate. With `group` (a group
    id per weight) and `budgets`, a weight can only go while its group has budget left; else `count` weights
    go in all. Returns (new weights, keep mask, predicted increase of the quadratic model: the sum of the
    steps' increases).
    """
    n = weights.numel()
    if group is None:
        group, budgets = torch.zeros(n, dtype=torch.long), torch.tensor([count])
    remaining = budgets.clone()
    alive = torch.arange(n)
    w = weights.clone().to(torch.float64)
    diag = inverse.diagonal()
    gone = torch.zeros(n, dtype=torch.bool)  # removed since the last compaction
    keep = torch.ones(n, dtype=torch.bool)
    cap = max(batch, LAZY)
    low, used = w.new_empty(n, cap + batch), 0
    predicted = 0.0
    while int(remaining.sum()) > 0:
        q = choose(saliency(w, diag, gone), group[alive], remaining, batch)
        if not len(q):
            raise RuntimeError("no weight left to remove")  # cannot happen: budgets never exceed group sizes
        cols = inverse.columns(q)
        if used:
            cols = cols - low[:, :used] @ low[q, :used].T
        factor, solved, increase = solve_group(cols[q], w[q])
        predicted += increase
        w -= cols @ solved[:, 0]
        step = cols @ torch.linalg.solve_triangular(factor, torch.eye(len(q), dtype=w.dtype), upper=False).T
        low[:, used:used + len(q)] = step
        used += len(q)
        diag -= (step * step).sum(1)
        w[q] = 0.0
        gone[q] = True
        keep[alive[q]] = False
        remaining -= torch.bincount(group[alive[q]], minlength=len(remaining))
        if used >= cap or int(gone.sum()) * 8 >= len(alive):
            stay = ~gone
            inverse.compact(low[:, :used], stay)
            alive, w, gone, diag = alive[stay], w[stay], gone[stay], inverse.diagonal()
            low, used = w.new_empty(len(alive), cap + batch), 0
    out = torch.zeros(n, dtype=torch.float64)
    out[alive] = w
    out[~keep] = 0.0
    return out, keep, predicted


def remove(weights: torch.Tensor, h_inv: torch.Tensor, count: int, batch: int = 1, group: torch.Tensor | None = None,
           budgets: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Greedy OBS (`greedy`) with a dense inverse curvature `h_inv` (n x n, float64)."""
    return greedy(weights, DenseInverse(h_inv), count, batch, group, budgets)


def slots(q: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(touched blocks, T x k entries each loses, T x k real-or-padding) for flat indices `q` into blocks of `size`."""
    touched, row = torch.unique(q // size, return_inverse=True)
    order = torch.argsort(row, stable=True)
    counts = torch.bincount(row, minlength=len(touched))
    slot = torch.arange(len(q)) - (torch.cumsum(counts, 0) - counts)[row[order]]
    local = torch.zeros(len(touched), int(counts.max()), dtype=torch.long)
    present = torch.zeros(local.shape, dtype=torch.bool)
    local[row[order], slot] = q[order] % size
    present[row[order], slot] = True
    return touched, local, present


def remove_blocks(w: torch.Tensor, hinv: torch.Tensor, valid: torch.Tensor, group: torch.Tensor,
                  budgets: torch.Tensor, batch: int) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Greedy OBS on a block-diagonal inverse (WoodFisher): w (blocks x B), hinv (blocks x B x B), valid real entries.

    `group`: a group id per flat entry, `budgets`: removals per group. Each step `choose`s over all blocks
    and updates every touched block at once by `remove_from_blocks`. Returns (new weights, keep mask, predicted
    increase).
    """
    w, hinv = w.clone(), hinv.clone()
    size = w.shape[1]
    removed = ~valid
    remaining = budgets.clone()
    predicted = 0.0
    while int(remaining.sum()) > 0:
        sal = saliency(w, torch.diagonal(hinv, dim1=1, dim2=2), removed).reshape(-1)
        q = choose(sal, group, remaining, batch)
        remaining -= torch.bincount(group[q], minlength=len(remaining))
        touched, local, present = slots(q, size)
        wt, ht = w[touched], hinv[touched]
        predicted += remove_from_blocks(wt, ht, local, present)
        w[touched], hinv[touched] = wt, ht
        removed[touched[:, None].expand_as(local)[present], local[present]] = True
    w[removed] = 0.0
    return w, ~removed & valid, predicted
