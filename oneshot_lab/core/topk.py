"""The k lowest entries of a score vector, the very set `torch.topk(largest=False)` returns on CPU, ties included.

`torch.nn.utils.prune` picks the entries to prune with `torch.topk(scores, k, largest=False)`. Which of several
entries tied at the threshold it picks is not a simple rule: on CPU, topk copies the vector into (value, index)
pairs and calls libstdc++'s `std::nth_element` (introselect: median-of-3 pivot moved to the front, Hoare
partition, insertion sort of the last three) at position k-1, or `std::partial_sort` when k * 64 <= n; the
selected set is the first k pairs afterwards. `sorted=True` only sorts those k pairs, so the set does not depend on it.

`lowest` finds the same set faster and with less memory: an exact threshold from a sampled bracket (one
comparison pass per score tensor and a small `kthvalue`, no concatenated copy); when the entries tied at the
threshold are all pruned there is nothing to break and the set is exact. When some but not all ties are
pruned, the choice among them is an artifact of introselect's passes over the whole vector: `topk_kernels`
replays those passes on the values alone (compiled), following only the tied entries. torch.topk itself
answers what is not replayed (small vectors, k * 64 <= n, dtypes other than float32 / float64, and the
rare inputs on which introselect falls back to heap selection).
"""

from __future__ import annotations

import functools
from typing import Sequence

import torch

SAMPLE = 1 << 16  # at most this many entries are sampled to bracket the threshold
SMALL = 1 << 15  # below this many entries, torch.topk itself is the fastest exact answer
KERNEL_DTYPES = (torch.float32, torch.float64)  # what the compiled loops of `topk_kernels` take


def lowest(flat: torch.Tensor, k: int) -> torch.Tensor:
    """Bool vector marking the k lowest entries of 1-D float `flat` (no NaN), exactly as torch.topk picks them."""
    return lowest_of([flat], k)[0]


def lowest_of(pieces: Sequence[torch.Tensor], k: int) -> list[torch.Tensor]:
    """Bool masks, shaped like `pieces`, marking the k lowest entries of their concatenation as torch.topk does.

    Without ties to break, every piece is only compared against the threshold where it lies (no concatenated
    copy); the concatenation is made only to replay or call torch.topk.
    """
    n = sum(p.numel() for p in pieces)
    if k <= 0 or k >= n:
        return [torch.full(p.shape, k > 0, dtype=torch.bool) for p in pieces]
    dtype = functools.reduce(torch.promote_types, [p.dtype for p in pieces])
    pieces = [p.detach().to(dtype) for p in pieces]  # topk compares the concatenation, in the promoted dtype
    if n <= SMALL or k * 64 <= n:
        return split(topk_set(flat_cat(pieces), k), pieces)
    t, below, tied = threshold(pieces, k)
    if k - below == tied:
        return [p <= t for p in pieces]
    from . import topk_kernels  # compiled on first use

    chosen = topk_kernels.chosen_with_ties(pieces, k, t.item(), below, tied) if topk_kernels.replay_agrees() else None
    if chosen is None:
        chosen = topk_set(flat_cat(pieces), k)
    return split(chosen, pieces)


def topk_set(flat: torch.Tensor, k: int) -> torch.Tensor:
    """Bool vector of the k entries torch.topk(largest=False) returns (unsorted: same set, no sort)."""
    chosen = torch.zeros(flat.numel(), dtype=torch.bool)
    chosen[torch.topk(flat, k, largest=False, sorted=False).indices] = True
    return chosen


def flat_cat(pieces: Sequence[torch.Tensor]) -> torch.Tensor:
    """The pieces flattened and concatenated (a view of the only piece when there is one)."""
    return pieces[0].reshape(-1) if len(pieces) == 1 else torch.cat([p.reshape(-1) for p in pieces])


def split(flat: torch.Tensor, pieces: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """`flat` cut into views shaped like `pieces`."""
    out, start = [], 0
    for p in pieces:
        out.append(flat[start:start + p.numel()].reshape(p.shape))
        start += p.numel()
    return out


def bracket(flat: torch.Tensor, lo: float, hi: float) -> tuple[int, torch.Tensor]:
    """(entries of 1-D `flat` below lo, its entries in [lo, hi]): one compiled pass where the dtype allows."""
    if flat.dtype in KERNEL_DTYPES:
        from . import topk_kernels  # compiled on first use

        below, inside = topk_kernels.bracket(flat.numpy(), lo, hi)
        return int(below), torch.from_numpy(inside)
    return int(torch.count_nonzero(flat < lo)), flat[(flat >= lo) & (flat <= hi)]


def threshold(pieces: Sequence[torch.Tensor], k: int) -> tuple[torch.Tensor, int, int]:
    """(t, entries below t, entries equal to t), t the k-th lowest of the pieces' entries; exact.

    A sample brackets t between two of its quantiles; one pass per piece counts the entries below the
    bracket and gathers those inside it, and kthvalue runs on those few only.
    """
    flats = [p.reshape(-1) for p in pieces]
    n = sum(f.numel() for f in flats)
    gen = torch.Generator().manual_seed(n * 31 + k)
    size = min(SAMPLE, max(1024, n // 256))
    sample = torch.cat([f[torch.randint(f.numel(), (max(1, round(size * f.numel() / n)),), generator=gen)]
                        for f in flats if f.numel()])
    size = sample.numel()
    margin = 4 * size ** 0.5  # the threshold lies between the two sample quantiles unless very unlucky
    lo_at, hi_at = int(k / n * size - margin), int(k / n * size + margin)
    lo = torch.kthvalue(sample, lo_at + 1).values if lo_at > 0 else None
    hi = torch.kthvalue(sample, hi_at + 1).values if hi_at < size else None
    lo = lo.item() if lo is not None else -float("inf")
    hi = hi.item() if hi is not None else float("inf")
    below, inside = 0, []
    for f in flats:
        under, within = bracket(f, lo, hi)
        below += under
        inside.append(within)
    within = torch.cat(inside)
    if not below < k <= below + within.numel():  # the sample missed: select on everything
        below, within = 0, torch.cat(flats)
    t = torch.kthvalue(within, k - below).values
    return t, below + int(torch.count_nonzero(within < t)), int(torch.count_nonzero(within == t))
