"""The k lowest entries of a score vector, the very set `torch.topk(largest=False)` returns on CPU, ties included.

`torch.nn.utils.prune` picks the entries to prune with `torch.topk(scores, k, largest=False)`. Which of several
entries tied at the threshold it picks is not a simple rule: on CPU, topk copies the vector into (value, index)
pairs and calls libstdc++'s `std::nth_element` (introselect: median-of-3 pivot moved to the front, Hoare
partition, insertion sort of the last three) at position k-1, or `std::partial_sort` when k * 64 <= n; the
selected set is the first k pairs afterwards. `sorted=True` only sorts those k pairs, so the set does not depend on it.

`lowest` finds the same set faster and with less memory when it can: an exact threshold from a sampled bracket
(a few comparison passes and a small `kthvalue`); when the entries tied at the threshold are all pruned there is
nothing to break and the set is exact. When some but not all ties are pruned, the choice among them is an
artifact of introselect's passes over the whole vector, so it calls torch.topk itself (unsorted: same set, no
sort of the k selected) to get the same answer.
"""

from __future__ import annotations

import torch

SAMPLE = 1 << 16  # entries sampled to bracket the threshold
SMALL = 1 << 15  # below this many entries, torch.topk itself is the fastest exact answer


def lowest(flat: torch.Tensor, k: int) -> torch.Tensor:
    """Bool vector marking the k lowest entries of 1-D float `flat` (no NaN), exactly as torch.topk picks them."""
    n = flat.numel()
    chosen = torch.zeros(n, dtype=torch.bool)
    if k <= 0:
        return chosen
    if k >= n:
        return chosen.fill_(True)
    if n <= SMALL or k * 64 <= n:
        chosen[torch.topk(flat, k, largest=False, sorted=False).indices] = True
        return chosen
    t = kth_lowest(flat, k)
    torch.lt(flat, t, out=chosen)
    below = int(chosen.sum())
    tied = flat == t
    if k - below == int(tied.sum()):
        return chosen.logical_or_(tied)
    del tied
    chosen.zero_()
    chosen[torch.topk(flat, k, largest=False, sorted=False).indices] = True
    return chosen


def kth_lowest(flat: torch.Tensor, k: int) -> torch.Tensor:
    """The k-th lowest value (1-based) of `flat`, as a 0-dim tensor; exact, from a sampled bracket."""
    n = flat.numel()
    gen = torch.Generator().manual_seed(n * 31 + k)
    sample = flat[torch.randint(n, (SAMPLE,), generator=gen)].sort().values
    margin = 4 * SAMPLE ** 0.5
    lo_at, hi_at = int(k / n * SAMPLE - margin), int(k / n * SAMPLE + margin)
    lo = sample[lo_at] if lo_at > 0 else None
    hi = sample[hi_at] if hi_at < SAMPLE else None
    below = int((flat < lo).sum()) if lo is not None else 0
    inside = flat
    if lo is not None and hi is not None:
        inside = flat[(flat >= lo).logical_and_(flat <= hi)]
    elif lo is not None:
        inside = flat[flat >= lo]
    elif hi is not None:
        inside = flat[flat <= hi]
    if below < k <= below + inside.numel():
        return torch.kthvalue(inside, k - below).values
    return torch.kthvalue(flat, k).values
