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

SAMPLE = 1 << 16  # at most this many entries are sampled to bracket the threshold
SMALL = 1 << 15  # below this many entries, torch.topk itself is the fastest exact answer
MAX_TIES = 256  # more entries tied at the threshold than this: torch.topk itself
CHUNK = 1 << 14  # entries per block of the prefix counts that locate the i-th stop of a partition scan


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
    below = int(torch.count_nonzero(chosen))
    tied = flat == t
    if k - below == int(torch.count_nonzero(tied)):
        return chosen.logical_or_(tied)
    ties = tied.nonzero().squeeze(1)
    del tied
    picked = picked_ties(flat, k, ties) if ties.numel() <= MAX_TIES else None
    if picked is None or picked.numel() != k - below:
        chosen.zero_()
        chosen[torch.topk(flat, k, largest=False, sorted=False).indices] = True
        return chosen
    chosen[picked] = True
    return chosen


def kth_lowest(flat: torch.Tensor, k: int) -> torch.Tensor:
    """The k-th lowest value (1-based) of `flat`, as a 0-dim tensor; exact, from a sampled bracket."""
    n = flat.numel()
    gen = torch.Generator().manual_seed(n * 31 + k)
    size = min(SAMPLE, max(1024, n // 256))
    sample = flat[torch.randint(n, (size,), generator=gen)]
    margin = 4 * size ** 0.5  # the threshold lies between the two sample quantiles unless very unlucky
    lo_at, hi_at = int(k / n * size - margin), int(k / n * size + margin)
    lo = torch.kthvalue(sample, lo_at + 1).values if lo_at > 0 else None
    hi = torch.kthvalue(sample, hi_at + 1).values if hi_at < size else None
    keep = flat >= lo if lo is not None else None
    below = n - int(torch.count_nonzero(keep)) if keep is not None else 0
    if hi is not None:
        keep = keep.logical_and_(flat <= hi) if keep is not None else flat <= hi
    inside = flat[keep] if keep is not None else flat
    if below < k <= below + inside.numel():
        return torch.kthvalue(inside, k - below).values
    return torch.kthvalue(flat, k).values


class Stops:
    """Positions of the True entries of a bool vector, found through per-block prefix counts (no full nonzero)."""

    def __init__(self, mask: torch.Tensor):
        self.mask = mask
        self.found: dict[int, torch.Tensor] = {}  # block -> positions of its True entries
        self.cum = torch.stack([torch.count_nonzero(block) for block in mask.split(CHUNK)]).cumsum(0)
        self.total = int(self.cum[-1])

    def before(self, j: int) -> int:
        """True entries at positions < j."""
        block = j // CHUNK
        return (int(self.cum[block - 1]) if block else 0) + int(torch.count_nonzero(self.mask[block * CHUNK:j]))

    def at(self, i: int) -> int:
        """Position of the i-th True entry (0-based, from the left)."""
        block = int(torch.searchsorted(self.cum, i, right=True))
        within = i - (int(self.cum[block - 1]) if block else 0)
        if block not in self.found:
            self.found[block] = self.mask[block * CHUNK:(block + 1) * CHUNK].nonzero().squeeze(1)
        return block * CHUNK + int(self.found[block][within])


def picked_ties(flat: torch.Tensor, k: int, ties: torch.Tensor) -> torch.Tensor | None:
    """Which of the tied entries `ties` nth_element puts among the first k, by replaying its partition passes.

    torch.topk uses nth_element only when k * 64 > n (else partial_sort, not replayed here).
    Only the tied entries are followed; the values of the part still holding position k-1 are rebuilt after
    every pass (Hoare partition: the i-th stop of the left scan, >= pivot, trades places with the i-th stop of
    the right scan, <= pivot, while the first lies before the second). None if introselect would switch to
    its heap fallback (depth limit), which is not replayed.
    """
    values, nth = flat.clone(), k - 1
    where = {int(q): int(q) for q in ties}  # original index -> position in `values`
    picked: list[int] = []
    depth = 2 * (flat.numel().bit_length() - 1)
    while values.numel() > 3 and where:
        if depth == 0:
            return None
        depth -= 1
        values, nth, where, inside = partition_pass(values, nth, where)
        picked += inside
    if where:
        order = torch.sort(values, stable=True).indices.tolist()  # introselect ends with an insertion sort
        picked += [i for i, q in where.items() if order.index(q) <= nth]
    return torch.tensor(sorted(picked), dtype=torch.long)


def partition_pass(values: torch.Tensor, nth: int, where: dict[int, int]) -> tuple:
    """One introselect pass over `values`: (kept part, its nth, followed positions, followed entries left before it)."""
    n = values.numel()
    mid = n // 2
    va, vb, vc = values[1].item(), values[mid].item(), values[n - 1].item()
    if va < vb:
        median = mid if vb < vc else (n - 1 if va < vc else 1)
    else:
        median = 1 if va < vc else (n - 1 if vb < vc else mid)
    values[[0, median]] = values[[median, 0]]
    where = {i: (median if q == 0 else 0 if q == median else q) for i, q in where.items()}
    pivot = values[0].clone()
    segment = values[1:]
    ge, le = Stops(segment >= pivot), Stops(segment <= pivot)

    def crossed(i: int) -> bool:
        return ge.at(i) >= le.at(le.total - 1 - i)

    lo, hi = 0, min(ge.total, le.total)
    while lo < hi:
        half = (lo + hi) // 2
        lo, hi = (lo, half) if crossed(half) else (half + 1, hi)
    swaps = lo
    last_left = ge.at(swaps - 1) if swaps else -1
    first_right = le.at(le.total - swaps) if swaps else n
    cut = 1 + min(ge.at(swaps) if swaps < ge.total else n, first_right if swaps else n)
    moved = {}
    for i, q in where.items():
        j = q - 1
        if q and swaps and j <= last_left and bool(ge.mask[j]):
            moved[i] = 1 + le.at(le.total - 1 - ge.before(j))
        elif q and swaps and j >= first_right and bool(le.mask[j]):
            moved[i] = 1 + ge.at(le.total - 1 - le.before(j))
        else:
            moved[i] = q
    if cut <= nth:
        kept = segment[cut - 1:].clone()
        if swaps:
            incoming = segment[:last_left + 1].masked_select(ge.mask[:last_left + 1])
            kept[first_right - cut + 1:].masked_scatter_(le.mask[first_right:], incoming.flip(0))
        inside = [i for i, q in moved.items() if q < cut]
        return kept, nth - cut, {i: q - cut for i, q in moved.items() if q >= cut}, inside
    kept = values[:cut].clone()
    if swaps:
        incoming = segment[first_right:].masked_select(le.mask[first_right:])
        kept[1:last_left + 2].masked_scatter_(ge.mask[:last_left + 1], incoming.flip(0))
    return kept, nth, {i: q for i, q in moved.items() if q < cut}, []
