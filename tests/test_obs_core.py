"""The greedy-OBS core (obs_core.py) against independent oracles.

Oracles: a brute-force greedy loop that recomputes H_A^-1 = inv(H[A, A]) from scratch for the alive set A
at every step (torch.linalg.inv), sort-based selection, and the least-squares refit given the mask.
"""

import pytest
import torch

from oneshot_lab.pruning import obs_core

F64 = torch.float64


def spd(n, seed):
    """A random well-conditioned SPD matrix and random weights (the optimum of 1/2 (v - w)^T H (v - w))."""
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(n, 2 * n, generator=gen, dtype=F64)
    return a @ a.T / n + 0.1 * torch.eye(n, dtype=F64), torch.randn(n, generator=gen, dtype=F64)


def brute_force(h, w, batch, group, budgets):
    """Greedy OBS with H_A^-1 recomputed from scratch: per step, walk the alive weights by (w_q^2 / [H_A^-1]_qq,
    index) and take each whose group still has budget, up to `batch`; then refit. Returns (removals per step,
    weights, predicted increase)."""
    n = len(w)
    w, alive, left, steps, predicted = w.clone(), torch.ones(n, dtype=torch.bool), budgets.clone(), [], 0.0
    while int(left.sum()) > 0:
        idx = alive.nonzero()[:, 0]
        hinv = torch.linalg.inv(h[idx][:, idx])
        sal = w[idx] ** 2 / torch.diagonal(hinv)
        taken = []
        for j in sorted(range(len(idx)), key=lambda j: (float(sal[j]), int(idx[j]))):
            if len(taken) < batch and left[group[idx[j]]] > 0:
                taken.append(j)
                left[group[idx[j]]] -= 1
        q = torch.tensor(taken)
        solved = torch.linalg.solve(hinv[q][:, q], w[idx][q])
        predicted += 0.5 * float(w[idx][q] @ solved)
        w[idx] -= hinv[:, q] @ solved
        w[idx[q]] = 0.0
        alive[idx[q]] = False
        steps.append(sorted(idx[q].tolist()))
    return steps, w, predicted


def refit(h, w0, keep):
    """Minimiser of 1/2 (v - w0)^T H (v - w0) with the entries outside `keep` fixed at 0."""
    v = torch.zeros_like(w0)
    k, r = keep, ~keep
    v[k] = w0[k] + torch.linalg.solve(h[k][:, k], h[k][:, r] @ w0[r])
    return v


CASES = [(1, None), (3, None), (1, [2, 5]), (4, [2, 5]), (4, [0, 4, 3])]


def grouping(n, budgets):
    """(group ids, budgets) for 1 or more groups of consecutive weights."""
    if budgets is None:
        return torch.zeros(n, dtype=torch.long), torch.tensor([9])
    sizes = [n // len(budgets)] * (len(budgets) - 1)
    sizes.append(n - sum(sizes))
    return torch.repeat_interleave(torch.arange(len(budgets)), torch.tensor(sizes)), torch.tensor(budgets)


@pytest.mark.parametrize("batch, given", CASES)
@pytest.mark.parametrize("seed", [0, 1])
def test_dense_greedy_equals_brute_force(batch, given, seed):
    h, w = spd(12, seed)
    group, budgets = grouping(12, given)
    steps, oracle, predicted = brute_force(h, w, batch, group, budgets)
    new, keep, increase = obs_core.remove(w, torch.linalg.inv(h), int(budgets.sum()), batch, group, budgets)
    assert sorted((~keep).nonzero()[:, 0].tolist()) == sorted(sum(steps, []))
    torch.testing.assert_close(new, oracle, rtol=1e-9, atol=1e-9)
    assert increase == pytest.approx(predicted, rel=1e-9)
    if given is None:  # the removal order: `count` removals are the first `count` of the oracle's
        for count in range(batch, int(budgets.sum()), batch):
            _, keep_c, _ = obs_core.remove(w, torch.linalg.inv(h), count, batch)
            assert sorted((~keep_c).nonzero()[:, 0].tolist()) == sorted(sum(steps[:count // batch], []))


@pytest.mark.parametrize("batch, given", CASES)
def test_block_form_with_one_block_equals_dense(batch, given):
    h, w = spd(12, 2)
    group, budgets = grouping(12, given)
    hinv = torch.linalg.inv(h)
    dense = obs_core.remove(w, hinv, int(budgets.sum()), batch, group, budgets)
    valid = torch.ones(1, 12, dtype=torch.bool)
    new, keep, increase = obs_core.remove_blocks(w[None], hinv[None], valid, group, budgets, batch)
    assert torch.equal(keep[0], dense[1])
    torch.testing.assert_close(new[0], dense[0], rtol=1e-9, atol=1e-12)
    assert increase == pytest.approx(dense[2], rel=1e-9)


@pytest.mark.parametrize("batch, given", CASES)
def test_block_form_equals_brute_force_on_the_block_diagonal(batch, given):
    """Three blocks (the last padded) are one problem with a block-diagonal H: the brute force on it."""
    blocks = [spd(5, s) for s in (3, 4, 5)]
    blocks[2] = (blocks[2][0][:3, :3], blocks[2][1][:3])
    h = torch.block_diag(*[b[0] for b in blocks])
    w = torch.cat([b[1] for b in blocks])
    group, budgets = grouping(13, given)
    steps, oracle, predicted = brute_force(h, w, batch, group, budgets)
    valid = torch.ones(3, 5, dtype=torch.bool)
    valid[2, 3:] = False
    wb, hb = torch.zeros(3, 5, dtype=F64), torch.eye(5, dtype=F64).repeat(3, 1, 1)
    for i, (hi, wi) in enumerate(blocks):
        wb[i, :len(wi)], hb[i, :len(wi), :len(wi)] = wi, torch.linalg.inv(hi)
    groupb = torch.zeros(15, dtype=torch.long)
    groupb[valid.reshape(-1)] = group
    new, keep, increase = obs_core.remove_blocks(wb, hb, valid, groupb, budgets, batch)
    assert sorted((~keep[valid]).nonzero()[:, 0].tolist()) == sorted(sum(steps, []))
    torch.testing.assert_close(new[valid], oracle, rtol=1e-9, atol=1e-9)
    assert increase == pytest.approx(predicted, rel=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_any_sequence_of_removals_leaves_the_least_squares_refit(seed):
    """Arbitrary (not greedy) removals of varying size, padded blocks: survivors are the refit given the mask."""
    gen = torch.Generator().manual_seed(seed)
    problems = [spd(6, 10 * seed + b) for b in range(3)]
    w = torch.stack([p[1] for p in problems])
    hinv = torch.stack([torch.linalg.inv(p[0]) for p in problems])
    keep = torch.ones(3, 6, dtype=torch.bool)
    increase = 0.0
    while bool(keep.any()):
        touched = torch.randperm(3, generator=gen)[:int(torch.randint(1, 4, (1,), generator=gen))]
        touched = touched[keep[touched].any(1)].sort().values
        if not len(touched):
            continue
        k = int(torch.randint(1, 4, (1,), generator=gen))
        local = torch.zeros(len(touched), k, dtype=torch.long)
        present = torch.zeros(len(touched), k, dtype=torch.bool)
        for t, b in enumerate(touched.tolist()):
            pick = keep[b].nonzero()[:, 0]
            pick = pick[torch.randperm(len(pick), generator=gen)[:k]]
            local[t, :len(pick)], present[t, :len(pick)] = pick, True
        wt, ht = w[touched], hinv[touched]
        increase += obs_core.remove_from_blocks(wt, ht, local, present)
        w[touched], hinv[touched] = wt, ht
        for t, b in enumerate(touched.tolist()):
            keep[b, local[t][present[t]]] = False
        for b, (h, w0) in enumerate(problems):
            torch.testing.assert_close(w[b], refit(h, w0, keep[b]), rtol=1e-9, atol=1e-10)
    loss = sum(0.5 * float(w0 @ h @ w0) for h, w0 in problems)  # every weight gone: the loss at 0 less at w0
    assert increase == pytest.approx(loss, rel=1e-9)


def test_choose_respects_budgets_and_takes_the_lowest_allowed():
    """Tied saliencies: the step takes min(batch, sum(remaining)), no group over budget, nothing lower left out."""
    gen = torch.Generator().manual_seed(5)
    for _ in range(50):
        n = int(torch.randint(5, 40, (1,), generator=gen))
        sal = torch.randint(0, 5, (n,), generator=gen).to(F64)
        sal[torch.rand(n, generator=gen) < 0.2] = float("inf")
        group = torch.randint(0, 3, (n,), generator=gen)
        finite = torch.bincount(group[torch.isfinite(sal)], minlength=3)
        remaining = (torch.rand(3, generator=gen) * (finite + 1)).long()
        batch = int(torch.randint(1, 8, (1,), generator=gen))
        q = obs_core.choose(sal, group, remaining, batch)
        taken = torch.bincount(group[q], minlength=3)
        assert len(q) == min(batch, int(remaining.sum())) and len(set(q.tolist())) == len(q)
        assert bool((taken <= remaining).all()) and bool(torch.isfinite(sal[q]).all())
        assert sal[q].tolist() == sorted(sal[q].tolist())
        out = torch.ones(n, dtype=torch.bool)
        out[q] = False
        open_groups = taken < remaining
        left_out = sal[out & open_groups[group]]
        if len(q) == batch and len(left_out):
            assert float(left_out.min()) >= float(sal[q].max())


def test_choose_without_groups_is_the_topk_set():
    sal = torch.tensor([3.0, 1.0, 1.0, 0.0, 1.0, float("inf"), 2.0, 1.0], dtype=F64)
    q = obs_core.choose(sal, torch.zeros(8, dtype=torch.long), torch.tensor([4]), 3)
    assert sorted(q.tolist()) == sorted(torch.topk(sal, 3, largest=False).indices.tolist())
    assert int(q[0]) == 3


def test_budgets_count_what_a_prior_already_removed():
    alive = torch.tensor([True, False, True, True, False, False])
    group, left = obs_core.budgets([(("a",), 2), (("b", "c"), 3)], ["a", "b", "c"], [2, 1, 3], alive)
    assert group.tolist() == [0, 0, 1, 1, 1, 1] and left.tolist() == [1, 1]
    assert obs_core.auto_batch("auto", 513) == 3 and obs_core.auto_batch(5, 513) == 5
