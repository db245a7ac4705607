"""Exact greedy OBS on every row of a layer whose rows share one inverse Hessian (the solver inside OBC).

This is the per-row specialisation of the greedy-OBS core `obs_core` (Frantar, Singh & Alistarh 2022):
every row is a problem of its own with its own budget, each step removes one weight per row (batch 1),
and the rows of a chunk take their steps in lockstep.
Row r of W (rows x d) loses counts[r] weights, one at a time: each step removes the remaining weight q
of least w_q^2 / [H_r^-1]_qq (`obs_core.row_choice`: an argmin per row, ties to the lowest index), moves
the row by dw = -(w_q / [H_r^-1]_qq) H_r^-1 e_q and downdates H_r^-1 <- H_r^-1 - H_r^-1 e_q e_q^T H_r^-1 /
[H_r^-1]_qq (`obs_core.remove_from_blocks` with one entry per block, written out here so that it can be
delayed), where H_r^-1 starts as the shared H^-1 and is then row r's own. `traces` prunes every row completely and
records each step's increase of the objective, w_q^2 / (2 [H_r^-1]_qq): the greedy error traces from which
OBC chooses the per-row counts (`obc_counts`) before `prune_rows` prunes the rows to them.

The arithmetic is arranged so that most of it is matrix-matrix products (float64 throughout):

- Delayed updates. The weights and the diagonal of H_r^-1 are exact after every step, but the matrix
  itself is brought up to date only every `BLOCK` steps. Within a block, the column H_r^-1 e_q is the
  stale column minus the block's earlier rank-one terms, U^T U[:, q] (U: the block's scaled columns
  u = H_r^-1 e_q / sqrt([H_r^-1]_qq)), and at the end of the block A <- A - U^T U is one batched GEMM.
- Compaction. Removed columns are dropped from the working matrices every `COMPACT` steps (or once they
  are a quarter of the working size), so the work per row is about d^3 / 3 multiply-adds for d removals.
  The first block reads the shared H^-1 directly: the per-row copies are made by the first compaction.
- Rows in lockstep. Rows are processed `rows_per_chunk` at a time, longest first, every row of a chunk
  taking its k-th step together; a row that has finished runs idle to the end of the block and is then
  dropped. Chunks run on as many threads as torch has (each op on one thread), and the chunking does not
  depend on the thread count, so the result is bit-identical for any number of threads.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import torch

from ..util.parallel import one_thread
from .obs_core import row_choice

BLOCK = 32  # steps between updates of the working inverses
COMPACT = 128  # steps between compactions (at most)
CHUNK_ENTRIES = 2**25  # float64 entries of the working inverses of one chunk at most (256 MiB)
MAX_ROWS = 32  # rows of one chunk at most


def rows_per_chunk(d: int) -> int:
    """Rows processed together for a layer of width `d`: MAX_ROWS, fewer where d^2 entries per row would not fit."""
    return max(1, min(MAX_ROWS, CHUNK_ENTRIES // (d * d)))


def prune_rows(weight: torch.Tensor, h_inv: torch.Tensor, counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact greedy OBS on every row: row r loses counts[r] weights; returns (updated weights, keep mask)."""
    rows, d = weight.shape
    weight, h_inv = weight.to(torch.float64), h_inv.to(torch.float64)
    out = weight.clone()
    keep = torch.ones(rows, d, dtype=torch.bool)
    order = torch.argsort(counts, descending=True, stable=True)
    order = order[counts[order] > 0]
    chunks, results = run_chunks(weight, h_inv, counts, order, trace=False)
    for ids, (new, removed, _) in zip(chunks, results):
        out[ids] = new
        for row, count, gone in zip(ids.tolist(), counts[ids].tolist(), removed):
            keep[row, gone[:count]] = False
    out[~keep] = 0.0
    return out, keep


def traces(weight: torch.Tensor, h_inv: torch.Tensor) -> torch.Tensor:
    """Every row pruned completely by exact greedy OBS: the increase of dw^T H dw / 2 at each step (rows x d).

    Entry [r, k] is w_q^2 / (2 [H_r^-1]_qq) of row r's (k+1)-th removal, so the sum of row r's first k
    entries is the objective of the row pruned to k weights and refitted (exact for the quadratic); the
    first k removals are those of `prune_rows` with count k (the same steps).
    """
    rows, d = weight.shape
    counts = torch.full((rows,), d, dtype=torch.long)
    chunks, results = run_chunks(weight.to(torch.float64), h_inv.to(torch.float64), counts, torch.arange(rows),
                                 trace=True)
    out = torch.empty(rows, d, dtype=torch.float64)
    for ids, (_, _, increments) in zip(chunks, results):
        out[ids] = increments
    return out


def run_chunks(weight: torch.Tensor, h_inv: torch.Tensor, counts: torch.Tensor, order: torch.Tensor,
               trace: bool) -> tuple[list[torch.Tensor], list[tuple]]:
    """`prune_chunk` on the rows `order` (counts non-increasing) in chunks, on torch's threads; (chunks, results)."""
    size = rows_per_chunk(weight.shape[1])
    chunks = [order[start:start + size] for start in range(0, len(order), size)]
    threads = min(torch.get_num_threads(), len(chunks)) or 1
    job = lambda ids: prune_chunk(weight[ids], h_inv, counts[ids].tolist(), trace)
    with one_thread():
        if threads > 1:
            with ThreadPoolExecutor(threads) as pool:
                return chunks, list(pool.map(job, chunks))
        return chunks, [job(ids) for ids in chunks]


def prune_chunk(weight: torch.Tensor, h_inv: torch.Tensor, need: list[int],
                trace: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Greedy OBS on the rows of `weight` (need: removals per row, non-increasing).

    Returns the updated rows (entries removed are not zeroed), the removed columns of each row in
    order of removal (row r: its first need[r] entries) and, with `trace`, the increase of the
    objective at every step (n x need[0]; row r: its first need[r] entries), else None.
    """
    n, d = weight.shape
    total = need[0]
    store = torch.empty(n * d * d, dtype=torch.float64)  # working inverses, n x m x m, contiguous
    shared = True  # until the first compaction, every row's working inverse is h_inv itself
    w, out = weight.clone(), weight.clone()
    diag = torch.diagonal(h_inv).expand(n, d).clone()
    pos = torch.arange(d).expand(n, d).clone()  # working column -> layer column
    barrier = torch.zeros(n, d, dtype=torch.float64)  # +inf on columns removed since the last compaction
    removed = torch.zeros(n, total, dtype=torch.long)
    increments = torch.zeros(n, total, dtype=torch.float64) if trace else None
    u = torch.empty(n, BLOCK, d, dtype=torch.float64)
    scratch = torch.empty(d * d, dtype=torch.float64)
    finishing: dict[int, list[int]] = {}
    for row, count in enumerate(need):
        finishing.setdefault(count, []).append(row)
    m, step, since = d, 0, 0
    while step < total:
        n = sum(count > step for count in need)
        a = h_inv.expand(n, d, d) if shared else store[:n * m * m].view(n, m, m)
        b = min(BLOCK, total - step)
        view = (w[:n, :m], diag[:n, :m], barrier[:n, :m], pos[:n, :m], u[:n, :b, :m])
        for j in range(b):
            steps(a, view, j, removed[:n, step], None if increments is None else increments[:n, step])
            step += 1
            for row in finishing.get(step, ()):
                out[row, view[3][row]] = view[0][row]
        since += b
        if step == total:
            break
        n = sum(count > step for count in need)
        if shared or since >= COMPACT or 4 * since >= m:
            stay = torch.isfinite(barrier[:n, :m]).nonzero()[:, 1].reshape(n, m - since)
            compact(h_inv if shared else store, n, m, stay, store, scratch)
            for t in (w, diag, pos):
                t[:n, :m - since] = t[:n, :m].gather(1, stay)
            scaled = u[:n, :b, :m].gather(2, stay[:, None, :].expand(-1, b, -1))
            barrier[:n] = 0.0
            m, since, shared = m - since, 0, False
        else:
            scaled = u[:n, :b, :m]
        store[:n * m * m].view(n, m, m).baddbmm_(scaled.transpose(1, 2), scaled, alpha=-1.0)
    return out, removed, increments


def steps(a: torch.Tensor, view: tuple, j: int, removed: torch.Tensor, increments: torch.Tensor | None) -> None:
    """Step j of a block on every row of the chunk: choose, update weights and diagonal, record the column
    (and, given `increments`, w_q^2 / (2 [H^-1]_qq))."""
    w, diag, barrier, pos, u = view
    q = row_choice(w, diag, barrier)
    q1 = q[:, None]
    at = torch.arange(len(q))
    col = a[at, q]  # row q of the (symmetric) inverse as of the block's start
    if j:
        col.sub_(torch.bmm(u[at, :j, q].unsqueeze(1), u[:, :j]).squeeze(1))
    pivot = col.gather(1, q1)
    if increments is not None:
        wq = w.gather(1, q1)[:, 0]
        increments.copy_(wq * wq / (2.0 * pivot[:, 0]))
    w.addcmul_(w.gather(1, q1) / pivot, col, value=-1.0)
    scaled = torch.mul(col, pivot.rsqrt(), out=u[:, j])
    diag.addcmul_(scaled, scaled, value=-1.0)
    barrier.scatter_(1, q1, float("inf"))
    removed.copy_(pos.gather(1, q1)[:, 0])


def compact(source: torch.Tensor, n: int, m: int, stay: torch.Tensor, store: torch.Tensor,
            scratch: torch.Tensor) -> None:
    """Write rows/columns `stay` (n x k) of each m x m working inverse into `store` as n contiguous k x k matrices.

    `source` is either the shared m x m inverse or `store` itself (n contiguous m x m matrices); matrix r
    is read whole before matrix r is written, and never overlaps a later matrix, so in place is safe.
    """
    k = stay.shape[1]
    rows = scratch[:k * m].view(k, m)
    for r in range(n):
        matrix = source if source.dim() == 2 else source[r * m * m:(r + 1) * m * m].view(m, m)
        torch.index_select(matrix, 0, stay[r], out=rows)
        torch.index_select(rows, 1, stay[r], out=store[r * k * k:(r + 1) * k * k].view(k, k))
