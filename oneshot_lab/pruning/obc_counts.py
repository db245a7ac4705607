"""OBC's per-row counts: how many weights each row loses so that the total greedy error is least.

Row r's greedy trace (`obc_rows.traces`: exact greedy OBS pruning the row completely) gives C_r(k), the sum
of its first k increments: the error of the row pruned greedily to k removals and refitted (exact for the
quadratic objective). OBC (Frantar, Singh & Alistarh 2022) prunes each row to the count its traces choose;
`allocate` returns counts k_r minimising sum_r C_r(k_r) subject to sum_r k_r = total and 0 <= k_r <= the
row's length (counts are prefixes of each row's greedy order, so a row's cost is its trace's prefix sum):

1. Each C_r is replaced by its lower convex hull, and hull segments are taken in order of slope (ties: row,
   then position) until `total` is reached. This minimises the sum of the hulls, a lower bound LB; every
   row but at most one (the row whose segment is taken in part) sits on a hull vertex, where C_r equals its
   hull. Where increments never decrease (C_r convex) the hull is C_r and this is the greedy on increments.
2. If that row lies above its hull, the rest is exact: with lambda the slope of its segment and
   rho_r(k) = C_r(k) - lambda k - min_j (C_r(j) - lambda j) >= 0, every allocation's total is LB + sum_r
   rho_r(k_r), so an optimal one has rho_r(k_r) <= gap = (the hull allocation's total) - LB in every row.
   A dynamic programme over those candidate counts (few, near each row's hull vertex) finds the minimum
   (ties: a row's candidate counts are tried in increasing order and only a strict improvement replaces one).

The published implementation (IST-DASLab/OBC, `TrueOBS.prune_blocked`) gives each row the number of its
increments among the layer's `total` lowest: the same where increments never decrease, and no better
where they do (it can count increments that are not a prefix of the row's order). Should the programme
exceed `MAX_WORK` state updates, the better of the hull allocation and that rule is returned.
"""

from __future__ import annotations

import torch

from ..core import topk

MAX_WORK = 2**27  # state updates of the exact dynamic programme at most
TOLERANCE = 1e-9  # relative slack of the candidate bound (rounding of the reduced costs)


def cumulative(increments: torch.Tensor) -> torch.Tensor:
    """C (rows x (d + 1)): C[r, k] the sum of row r's first k increments (+inf past its last weight)."""
    cost = torch.zeros(increments.shape[0], increments.shape[1] + 1, dtype=torch.float64)
    torch.cumsum(increments.to(torch.float64), 1, out=cost[:, 1:])
    return cost


def allocate(increments: torch.Tensor, total: int) -> torch.Tensor:
    """Counts per row (summing to `total`) of least total trace error; `increments` rows x d, +inf past a row's end."""
    lengths = torch.isfinite(increments).sum(1)
    if not 0 <= total <= int(lengths.sum()):
        raise ValueError(f"total must be in [0, {int(lengths.sum())}] (the entries of the rows), got {total}")
    cost = cumulative(increments)
    counts, lam = hull_greedy(cost, lengths, total)
    return counts if lam is None else exact(cost, increments, counts, lam, total)


def lower_hull(values: list[float]) -> list[int]:
    """Vertices (indices, increasing) of the lower convex hull of the points (k, values[k]); collinear ones dropped."""
    hull: list[int] = []
    for k, v in enumerate(values):
        while len(hull) >= 2:
            o, a = hull[-2], hull[-1]
            if (a - o) * (v - values[o]) - (values[a] - values[o]) * (k - o) > 0:
                break
            hull.pop()
        hull.append(k)
    return hull


def hull_greedy(cost: torch.Tensor, lengths: torch.Tensor, total: int) -> tuple[torch.Tensor, float | None]:
    """Counts from hull segments taken in order of slope, and the slope of the segment taken in part (None if none)."""
    rows_, starts, ends, slopes = [], [], [], []
    for r, (values, n) in enumerate(zip(cost.tolist(), lengths.tolist())):
        hull = lower_hull(values[:n + 1])
        row_slopes = torch.tensor([(values[b] - values[a]) / (b - a) for a, b in zip(hull, hull[1:])],
                                  dtype=torch.float64)
        slopes.append(torch.cummax(row_slopes, 0).values if len(row_slopes) else row_slopes)  # rounding aside
        rows_ += [r] * (len(hull) - 1)
        starts += hull[:-1]
        ends += hull[1:]
    counts = torch.zeros(cost.shape[0], dtype=torch.long)
    if not rows_:
        return counts, None
    row, start, end = (torch.tensor(t) for t in (rows_, starts, ends))
    slope = torch.cat(slopes)
    order = torch.argsort(slope, stable=True)  # segments are listed by row, then position: the tie rule
    taken = torch.cumsum((end - start)[order], 0)
    whole = int(torch.searchsorted(taken, total, right=True))  # segments taken whole
    counts.index_put_((row[order[:whole]],), (end - start)[order[:whole]], accumulate=True)
    rest = total - (int(taken[whole - 1]) if whole else 0)
    if rest == 0:
        return counts, None
    s = int(order[whole])
    counts[int(row[s])] += rest
    return counts, float(slope[s])


def exact(cost: torch.Tensor, increments: torch.Tensor, counts: torch.Tensor, lam: float, total: int) -> torch.Tensor:
    """The optimal counts, by a dynamic programme over the counts whose reduced cost (at slope `lam`, that of the
    hull `counts`' segment taken in part) is within the hull allocation's gap."""
    k = torch.arange(cost.shape[1], dtype=torch.float64)
    shifted = cost - lam * k
    reduced = shifted - shifted.min(1, keepdim=True).values
    at = reduced.gather(1, counts[:, None])[:, 0]
    gap = float(at.sum())
    finite = cost[torch.isfinite(cost)]
    slack = TOLERANCE * (gap + float(finite.abs().max()) + abs(lam) * cost.shape[1])
    if gap <= slack:  # the row lies on its hull (collinear points): the hull allocation is optimal
        return counts
    candidates = reduced <= gap + slack
    active = (candidates.sum(1) > 1).nonzero()[:, 0]
    offsets = [candidates[r].nonzero()[:, 0] - counts[r] for r in active.tolist()]
    span = sum(int(o.max() - o.min()) for o in offsets) + 1
    if span * sum(len(o) for o in offsets) > MAX_WORK:
        return fallback(cost, increments, counts, total)
    chosen = programme(cost, counts, active, offsets)
    out = counts.clone()
    out[active] += chosen
    return out


def programme(cost: torch.Tensor, counts: torch.Tensor, active: torch.Tensor,
              offsets: list[torch.Tensor]) -> torch.Tensor:
    """Per active row the offset from its hull count, of least total cost with offsets summing to 0."""
    best = torch.zeros(1, dtype=torch.float64)  # best[s - low]: least cost of the rows so far with offsets summing to s
    low = 0
    picks = []
    for r, off in zip(active.tolist(), offsets):
        lo, hi = int(off.min()), int(off.max())
        new = torch.full((len(best) + hi - lo,), float("inf"), dtype=torch.float64)
        pick = torch.zeros(len(new), dtype=torch.long)
        for o in off.tolist():
            value = best + float(cost[r, counts[r] + o])
            window = new[o - lo:o - lo + len(best)]
            better = value < window
            window[better] = value[better]
            pick[o - lo:o - lo + len(best)][better] = o
        best, low = new, low + lo
        picks.append((pick, low))
    out, s = [], 0
    for pick, at in reversed(picks):
        o = int(pick[s - at])
        out.append(o)
        s -= o
    return torch.tensor(out[::-1], dtype=torch.long)


def fallback(cost: torch.Tensor, increments: torch.Tensor, counts: torch.Tensor, total: int) -> torch.Tensor:
    """The better of the hull allocation `counts` and the published rule (each row's increments among the lowest)."""
    rule = topk.lowest(increments.to(torch.float64).reshape(-1), total).reshape(increments.shape).sum(1)
    spend = lambda c: float(cost.gather(1, c[:, None]).sum())
    return rule if spend(rule) < spend(counts) else counts
