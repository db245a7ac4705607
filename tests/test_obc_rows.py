"""OBC's row solver (obc_rows.py) against a brute-force greedy loop: one row at a time, full inverse, no blocking."""

import pytest
import torch

from oneshot_lab.pruning import reconstruction, obc_rows


def brute_force(weight, h_inv, counts):
    """Greedy OBS row by row: remove the least w_q^2 / [H^-1]_qq, update w and the full inverse, repeat."""
    out = weight.clone()
    keep = torch.ones_like(weight, dtype=torch.bool)
    for r in range(weight.shape[0]):
        w, hinv = weight[r].clone(), h_inv.clone()
        for _ in range(int(counts[r])):
            sal = torch.where(keep[r], w**2 / torch.diagonal(hinv), torch.inf)
            q = int(sal.argmin())
            col = hinv[:, q].clone()
            w -= w[q] / col[q] * col
            hinv -= torch.outer(col, col) / col[q]
            keep[r, q] = False
        out[r] = w * keep[r]
    return out, keep


def problem(seed, rows, d, samples):
    """Weights, H^-1 of H = 2 X^T X / N + a little damping, and counts from 0 to d (both included)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(samples, d, generator=gen, dtype=torch.float64) @ torch.randn(d, d, generator=gen, dtype=torch.float64)
    h = reconstruction.curvature(x.T @ x, samples, 0.01)
    weight = torch.randn(rows, d, generator=gen, dtype=torch.float64)
    counts = torch.randint(0, d + 1, (rows,), generator=gen)
    counts[:3] = torch.tensor([0, d, d - 1])
    return weight, reconstruction.inverse(h, "test"), counts


@pytest.mark.parametrize("block, compact, max_rows", [(32, 128, 32), (4, 8, 3), (1, 1, 1), (5, 7, 4)])
def test_equals_brute_force_greedy(monkeypatch, block, compact, max_rows):
    monkeypatch.setattr(obc_rows, "BLOCK", block)
    monkeypatch.setattr(obc_rows, "COMPACT", compact)
    monkeypatch.setattr(obc_rows, "MAX_ROWS", max_rows)
    weight, h_inv, counts = problem(0, 11, 40, 200)
    new, keep = reconstruction.obc(weight, h_inv, counts)
    expected, expected_keep = brute_force(weight, h_inv, counts)
    assert torch.equal(keep, expected_keep)
    assert torch.equal((~keep).sum(1), counts)
    assert bool((new[~keep] == 0).all())
    torch.testing.assert_close(new, expected, rtol=1e-9, atol=1e-9)


def test_wide_layer_with_many_compactions_equals_brute_force():
    """d above COMPACT and rows above MAX_ROWS: several chunks, blocks and compactions with the real settings."""
    weight, h_inv, counts = problem(1, 40, 300, 900)
    new, keep = reconstruction.obc(weight, h_inv, counts)
    expected, expected_keep = brute_force(weight, h_inv, counts)
    assert torch.equal(keep, expected_keep)
    torch.testing.assert_close(new, expected, rtol=1e-8, atol=1e-9)


def test_bit_identical_for_any_thread_count(monkeypatch):
    monkeypatch.setattr(obc_rows, "MAX_ROWS", 4)
    weight, h_inv, counts = problem(2, 13, 50, 200)
    before = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            results.append(reconstruction.obc(weight, h_inv, counts))
            assert torch.get_num_threads() == threads
    finally:
        torch.set_num_threads(before)
    for new, keep in results[1:]:
        assert torch.equal(new, results[0][0]) and torch.equal(keep, results[0][1])


def test_chunk_rows_bounded_by_memory():
    assert obc_rows.rows_per_chunk(10) == obc_rows.MAX_ROWS
    assert obc_rows.rows_per_chunk(4000) == max(1, obc_rows.CHUNK_ENTRIES // 4000**2)
    assert obc_rows.rows_per_chunk(10**5) == 1


def brute_force_increments(weight, h_inv):
    """Every row pruned completely by the brute-force greedy loop: w_q^2 / (2 [H^-1]_qq) at every step."""
    out = torch.empty_like(weight)
    for r in range(weight.shape[0]):
        w, hinv, alive = weight[r].clone(), h_inv.clone(), torch.ones(weight.shape[1], dtype=torch.bool)
        for k in range(weight.shape[1]):
            q = int(torch.where(alive, w**2 / torch.diagonal(hinv), torch.inf).argmin())
            col = hinv[:, q].clone()
            out[r, k] = w[q] ** 2 / (2 * col[q])
            w -= w[q] / col[q] * col
            hinv -= torch.outer(col, col) / col[q]
            alive[q] = False
    return out


@pytest.mark.parametrize("block, compact, max_rows", [(32, 128, 32), (4, 8, 3), (5, 7, 4)])
def test_traces_equal_brute_force_and_the_objective_of_the_pruned_rows(monkeypatch, block, compact, max_rows):
    monkeypatch.setattr(obc_rows, "BLOCK", block)
    monkeypatch.setattr(obc_rows, "COMPACT", compact)
    monkeypatch.setattr(obc_rows, "MAX_ROWS", max_rows)
    weight, h_inv, counts = problem(3, 9, 40, 200)
    traces = obc_rows.traces(weight, h_inv)
    torch.testing.assert_close(traces, brute_force_increments(weight, h_inv), rtol=1e-9, atol=1e-12)
    new, keep = reconstruction.obc(weight, h_inv, counts)
    delta = new - weight
    objective = ((delta @ torch.linalg.inv(h_inv)) * delta).sum(1) / 2  # dw^T H dw / 2 per row
    prefix = torch.stack([traces[r, :k].sum() for r, k in enumerate(counts.tolist())])
    torch.testing.assert_close(prefix, objective, rtol=1e-8, atol=1e-9)


def test_traces_bit_identical_for_any_thread_count(monkeypatch):
    monkeypatch.setattr(obc_rows, "MAX_ROWS", 4)
    weight, h_inv, _ = problem(4, 13, 30, 200)
    before = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            results.append(obc_rows.traces(weight, h_inv))
    finally:
        torch.set_num_threads(before)
    assert all(torch.equal(r, results[0]) for r in results[1:])
