"""Compiled loops behind exact selection: the threshold bracket, tie tagging and libstdc++'s introselect replayed.

`bracket` and `tag_ties` are single passes that torch would need several for. `nth_element` replays
`std::nth_element` to learn which tied entries torch.topk keeps. On CPU, `torch.topk(scores, k,
largest=False)` with k * 64 > n copies the vector into (value, index) pairs and calls `std::nth_element(first, first + k - 1, last, comp)` with comp(a, b) = a.value < b.value (NaN
aside); the selected set is the first k pairs afterwards. Only values are compared, so running the same
algorithm on the values alone moves them exactly as torch moves its pairs: a tag carried beside each
value tells where the entries of interest end up. Compiled with numba on first use (cached on disk).
"""

from __future__ import annotations

import functools
import math

import numba
import numpy as np
import torch

MAX_TAGS = np.iinfo(np.int32).max


@numba.njit(cache=True, nogil=True)
def bracket(flat, lo, hi):  # pragma: no cover - compiled
    """(entries < lo, the entries in [lo, hi] in order) of a 1-D array, in one branch-free pass."""
    lo, hi = flat.dtype.type(lo), flat.dtype.type(hi)  # exact: both are values of the array's dtype
    out = np.empty(flat.size + 1, flat.dtype)  # pages are only touched as far as entries land in them
    below = m = 0
    for i in range(flat.size):
        v = flat[i]
        out[m] = v
        below += np.int64(v < lo)
        m += np.int64(v >= lo) & np.int64(v <= hi)
    return below, out[:m].copy()


@numba.njit(cache=True, nogil=True)
def tag_ties(piece, values, tags, chosen, positions, offset, t, count):  # pragma: no cover - compiled
    """Copy `piece` into values[offset:], mark chosen = entry <= t, tag the entries equal to t as count + 1,
    count + 2, ... and note their positions (branch-free: `positions` has room for one more); the new count."""
    t = piece.dtype.type(t)
    for i in range(piece.size):
        v = piece[i]
        values[offset + i] = v
        chosen[offset + i] = v <= t
        hit = np.int64(v == t)
        positions[count] = offset + i
        count += hit
        tags[offset + i] = count * hit
    return count


@numba.njit(cache=True, nogil=True)
def drop_unselected(tags, k, positions, chosen):  # pragma: no cover - compiled
    """Unmark in `chosen` the tagged entries that nth_element left at positions >= k; how many there were."""
    dropped = 0
    for i in range(k, tags.size):
        g = tags[i]
        if g:
            chosen[positions[g - 1]] = False
            dropped += 1
    return dropped


BLOCK = 128  # positions scanned per refill of a partition's stop buffers


@numba.njit(cache=True, nogil=True)
def partition(values, tags, first, last, lbuf, rbuf):  # pragma: no cover - compiled
    """std::__unguarded_partition(first + 1, last, pivot=first), the same swaps, found block by block.

    Hoare's scans swap the i-th entry >= pivot from the left with the i-th entry <= pivot from the right
    while the first lies before the second; the cut is then min(next left stop, last right swap). The stops
    are gathered branch-free a block at a time (BlockQuicksort, Edelkamp & Weiss 2016); entries changed by
    earlier swaps are only ever read beyond the crossing, where they cannot change the outcome.
    """
    pivot = values[first]
    lscan, rscan = first + 1, last - 1
    nl = il = nr = ir = 0
    last_right = last
    while True:
        if il == nl:
            nl = il = 0
            end = min(lscan + BLOCK, last)
            for p in range(lscan, end):
                lbuf[nl] = p
                nl += np.int64(values[p] >= pivot)
            lscan = end
            if nl == 0:
                if lscan == last:
                    return last_right
                continue
        if ir == nr:
            nr = ir = 0
            end = max(rscan - BLOCK, first - 1)
            for p in range(rscan, end, -1):
                rbuf[nr] = p
                nr += np.int64(values[p] <= pivot)
            rscan = end
            if nr == 0:
                continue
        left, right = lbuf[il], rbuf[ir]
        if not left < right:
            return min(left, last_right)
        values[left], values[right] = values[right], values[left]
        tags[left], tags[right] = tags[right], tags[left]
        last_right = right
        il += 1
        ir += 1


@numba.njit(cache=True, nogil=True)
def nth_element(values, tags, nth):  # pragma: no cover - compiled; checked against torch.topk in the tests
    """Partially sort `values` (and `tags` with them) as std::nth_element does; False if it would heap-select."""
    first, last = 0, values.size
    depth = 2 * int(math.log2(last))  # std::__lg(n) * 2
    lbuf, rbuf = np.empty(BLOCK, np.int64), np.empty(BLOCK, np.int64)
    while last - first > 3:
        if depth == 0:
            return False  # introselect's heap-select fallback: not replayed
        depth -= 1
        mid = first + (last - first) // 2
        a, b, c = first + 1, mid, last - 1  # __move_median_to_first(first, first + 1, mid, last - 1)
        if values[a] < values[b]:
            m = b if values[b] < values[c] else (c if values[a] < values[c] else a)
        else:
            m = a if values[a] < values[c] else (c if values[b] < values[c] else b)
        values[first], values[m] = values[m], values[first]
        tags[first], tags[m] = tags[m], tags[first]
        lo = partition(values, tags, first, last, lbuf, rbuf)
        if lo <= nth:
            first = lo
        else:
            last = lo
    for i in range(first + 1, last):  # __insertion_sort(first, last)
        v, g = values[i], tags[i]
        j = i
        if v < values[first]:
            while j > first:
                values[j], tags[j] = values[j - 1], tags[j - 1]
                j -= 1
        else:
            while v < values[j - 1]:
                values[j], tags[j] = values[j - 1], tags[j - 1]
                j -= 1
        values[j], tags[j] = v, g
    return True




@functools.lru_cache(maxsize=None)
def replay_agrees() -> bool:
    """Whether the replay picks what this process's torch.topk picks, on a tie-heavy vector (checked once).

    The replay is libstdc++'s algorithm; a torch built against another C++ library (macOS, Windows), or a
    future topk, picks otherwise, and selection then falls back to torch.topk itself.
    """
    gen = torch.Generator().manual_seed(0)
    flat = torch.randint(0, 7, (4099,), generator=gen).float()
    for k in (1000, 2049, 3700):
        t = torch.kthvalue(flat, k).values
        ours = chosen_with_ties([flat], k, t.item(), int((flat < t).sum()), int((flat == t).sum()))
        theirs = torch.zeros(flat.numel(), dtype=torch.bool)
        theirs[torch.topk(flat, k, largest=False, sorted=False).indices] = True
        if ours is None or not torch.equal(ours, theirs):
            return False
    return True


def chosen_with_ties(pieces: list[torch.Tensor], k: int, t: float, below: int, tied: int) -> torch.Tensor | None:
    """Flat bool: the entries torch.topk(cat(pieces), k, largest=False) selects, given its k-th lowest t and
    the numbers of entries below t and equal to it. None when not replayed: more than MAX_TAGS ties, a dtype
    other than float32 / float64, or introselect's heap-select fallback."""
    dtype = pieces[0].dtype
    if tied > MAX_TAGS or dtype not in (torch.float32, torch.float64) or any(p.dtype != dtype for p in pieces):
        return None
    n = sum(p.numel() for p in pieces)
    values = np.empty(n, pieces[0].numpy().dtype)
    tags = np.empty(n, np.int16 if tied <= np.iinfo(np.int16).max else np.int32)  # 2 bytes an entry when they do
    chosen, positions = np.empty(n, np.bool_), np.empty(tied + 1, np.int64)
    count, offset = 0, 0
    for p in pieces:
        count = tag_ties(p.reshape(-1).numpy(), values, tags, chosen, positions, offset, t, count)
        offset += p.numel()
    if count != tied or not nth_element(values, tags, k - 1):
        return None
    if below + tied - drop_unselected(tags, k, positions, chosen) != k:
        return None
    return torch.from_numpy(chosen)
