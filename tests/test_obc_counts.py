"""OBC's per-row counts (obc_counts.py) and OBC as published (traces, then counts, then the exact row solver).

Oracles: brute force over every vector of per-row counts and a plain dynamic programme over per-row counts
(least total trace error for each total), the published rule (each row's increments among the lowest),
the exact row solver given the chosen counts, least-squares refits, and SparseGPT on the very same inputs.
"""

import copy
import itertools

import pytest
import torch

import oneshot_lab as ol
from oneshot_lab.core import topk
from oneshot_lab.core.data import sample
from oneshot_lab.pruning import layer_by_layer, obc_counts, obc_rows, reconstruction


def cost_of(increments, counts):
    """Total trace error of `counts`: the sum of every row's first counts[r] increments."""
    return sum(float(increments[r, :k].sum()) for r, k in enumerate(counts.tolist()))


def brute_force(increments):
    """Least total trace error for every total, over every vector of per-row counts (rows x d small)."""
    lengths = torch.isfinite(increments).sum(1).tolist()
    best = {}
    for counts in itertools.product(*(range(n + 1) for n in lengths)):
        value = cost_of(increments, torch.tensor(counts))
        best[sum(counts)] = min(best.get(sum(counts), float("inf")), value)
    return best


def dynamic_programme(increments):
    """Least total trace error for every total: rows one by one, every count of the row against every total so far."""
    best = [0.0]
    for row in increments.tolist():
        prefix = [0.0]
        for v in row:
            if v != float("inf"):
                prefix.append(prefix[-1] + v)
        new = [float("inf")] * (len(best) + len(prefix) - 1)
        for s, b in enumerate(best):
            for k, c in enumerate(prefix):
                new[s + k] = min(new[s + k], b + c)
        best = new
    return best


def published_rule(increments, total):
    """IST-DASLab/OBC's counts: the number of each row's increments among the `total` lowest of the layer."""
    return topk.lowest(increments.reshape(-1), total).reshape(increments.shape).sum(1)


def hull_only(increments, total):
    """The counts of the hull greedy alone (step 1 of obc_counts)."""
    cost = obc_counts.cumulative(increments)
    return obc_counts.hull_greedy(cost, torch.isfinite(increments).sum(1), total)[0]


def random_increments(seed, rows=4, d=6, ragged=False):
    """Positive increments, far from monotone; with `ragged`, rows of different lengths (+inf past the end)."""
    gen = torch.Generator().manual_seed(seed)
    inc = torch.rand(rows, d, generator=gen, dtype=torch.float64) ** 3 * 10
    if ragged:
        for r, n in enumerate(torch.randint(0, d + 1, (rows,), generator=gen).tolist()):
            inc[r, n:] = float("inf")
    return inc


def real_traces(seed, rows=4, d=6):
    """Greedy OBS traces of a random layer (obc_rows.traces)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(40, d, generator=gen, dtype=torch.float64) @ torch.randn(d, d, generator=gen, dtype=torch.float64)
    h = reconstruction.curvature(x.T @ x, 40, 0.01)
    weight = torch.randn(rows, d, generator=gen, dtype=torch.float64)
    return obc_rows.traces(weight, reconstruction.inverse(h, "test"))


CASES = ([random_increments(s) for s in range(6)] + [random_increments(s, ragged=True) for s in range(6, 10)]
         + [real_traces(s) for s in range(4)])


@pytest.mark.parametrize("case", range(len(CASES)))
def test_allocation_is_optimal_against_brute_force(case):
    inc = CASES[case]
    best = brute_force(inc)
    for total, least in best.items():
        counts = obc_counts.allocate(inc, total)
        assert int(counts.sum()) == total
        assert bool((counts >= 0).all()) and bool((counts <= torch.isfinite(inc).sum(1)).all())
        assert cost_of(inc, counts) == pytest.approx(least, rel=1e-12, abs=1e-12)
        if bool(torch.isfinite(inc).all()):
            assert cost_of(inc, counts) <= cost_of(inc, published_rule(inc, total)) + 1e-12


def test_the_exact_step_matters_and_the_published_rule_is_beaten():
    """On these non-monotone increments the hull greedy alone and the published rule are sometimes not optimal."""
    hull_misses = rule_misses = 0
    for inc in CASES[:6]:
        best = brute_force(inc)
        for total, least in best.items():
            hull_misses += cost_of(inc, hull_only(inc, total)) > least + 1e-9
            rule_misses += cost_of(inc, published_rule(inc, total)) > least + 1e-9
    assert hull_misses > 0 and rule_misses > 0


def test_allocation_equals_a_dynamic_programme_on_a_wider_layer():
    inc = torch.cat([random_increments(20, rows=6, d=30), real_traces(21, rows=6, d=30)])
    best = dynamic_programme(inc)
    for total in range(0, inc.numel() + 1, 7):
        assert cost_of(inc, obc_counts.allocate(inc, total)) == pytest.approx(best[total], rel=1e-12, abs=1e-12)


def test_monotone_increments_give_the_greedy_on_increments():
    """Where every row's increments increase, the counts are the published rule's (no ties here)."""
    inc = torch.sort(random_increments(30, rows=8, d=20), 1).values
    for total in (0, 1, 37, 80, 159, 160):
        assert torch.equal(obc_counts.allocate(inc, total), published_rule(inc, total))


def test_fallback_is_no_worse_than_the_hull_or_the_published_rule(monkeypatch):
    monkeypatch.setattr(obc_counts, "MAX_WORK", 0)
    for inc in CASES[:6]:
        best = brute_force(inc)
        for total, least in best.items():
            got = cost_of(inc, obc_counts.allocate(inc, total))
            assert least - 1e-12 <= got <= min(cost_of(inc, hull_only(inc, total)),
                                                cost_of(inc, published_rule(inc, total))) + 1e-12


def test_ties_are_deterministic():
    inc = torch.ones(3, 4, dtype=torch.float64)
    assert obc_counts.allocate(inc, 5).tolist() == [4, 1, 0]
    assert torch.equal(obc_counts.allocate(CASES[0], 11), obc_counts.allocate(CASES[0].clone(), 11))


def test_a_total_beyond_the_rows_is_refused():
    with pytest.raises(ValueError, match=r"total must be in \[0, 24\] \(the entries of the rows\), got 25"):
        obc_counts.allocate(CASES[0], 25)


# ---------------------------------------------------------------------------------------------- OBC as published


@pytest.fixture(scope="module")
def trained():
    """A ReLU MLP 20-32-16-4 on the synthetic data, briefly trained."""
    data = ol.load("synthetic", seed=0)
    net = ol.build("mlp", data, seed=0, widths=(32, 16))
    ol.fit(net, data, ol.TrainConfig(optimizer="adam", lr=0.01, iterations=150, batch_size=64), progress=False)
    return data, net


@pytest.mark.parametrize("sparsity", [0.8, 0.9])
def test_obc_beats_sparsegpt_on_every_layer_given_the_same_inputs_and_counts(trained, sparsity):
    """OBC's error (Outcome.errors) against SparseGPT's on the inputs OBC's layer saw, with the same count.

    The first layer sees the same inputs in both full runs; a later layer sees inputs through the layers each
    method pruned, so there SparseGPT is run on the inputs through OBC's layers (the pairing that compares
    the two pruners, not their upstream damage)."""
    data, net = trained
    obc = ol.prune(net, data, sparsity, "obc", "layer", samples=256)
    sparsegpt = ol.prune(net, data, sparsity, "sparsegpt", "layer", samples=256)
    names = ol.prunable(net)
    assert obc.errors[names[0]] < sparsegpt.errors[names[0]]
    x, _ = sample(data, 256, 0)
    for i, name in enumerate(names):
        upstream = copy.deepcopy(net)  # OBC's layers before this one, the dense layer itself
        upstream.load_state_dict({**net.state_dict(),
                                  **{k: v for k, v in obc.model.state_dict().items() if k in names[:i]}})
        count = round(sparsity * net.get_parameter(name).numel())
        done = layer_by_layer.prune_layers(upstream, [name], x, "sparsegpt", [((name,), count)], 0.01, 128)
        assert obc.errors[name] <= done[0][2]


@pytest.mark.parametrize("sparsity", [0.8, 0.9])
def test_obc_counts_are_optimal_and_the_rows_are_the_solver_given_them(trained, sparsity):
    """Per layer: the row counts reach the least total trace error (a plain DP over per-row counts on the layer's
    own traces), and the weights are those of the exact row solver given these counts."""
    data, net = trained
    result = ol.prune(net, data, sparsity, "obc", "layer", samples=256)
    x, _ = sample(data, 256, 0)
    for i, name in enumerate(ol.prunable(net)):
        before = copy.deepcopy(net)
        before.load_state_dict({**net.state_dict(),
                                **{k: v for k, v in result.model.state_dict().items() if k in ol.prunable(net)[:i]}})
        gram = reconstruction.grams(before, [name], x)[name]
        h_inv = reconstruction.inverse(reconstruction.curvature(gram, len(x), 0.01), name)
        weight = reconstruction.flat_weight(net, name)
        counts = (~result.masks[name].reshape(weight.shape)).sum(1)
        inc = obc_rows.traces(weight, h_inv)
        assert cost_of(inc, counts) == pytest.approx(dynamic_programme(inc)[int(counts.sum())], rel=1e-9)
        expected, keep = reconstruction.obc(weight, h_inv, counts)
        assert torch.equal(keep, result.masks[name].reshape(weight.shape))
        torch.testing.assert_close(reconstruction.flat_weight(result.model, name), expected.to(torch.float32).double())


def test_rows_are_no_longer_emptied_by_the_first_ranking(trained):
    """The reproduced case: the saliency ranking emptied whole rows of the first layer; the trace counts keep
    weights in every row there (a row is emptied only where that is optimal, which the DP test checks)."""
    data, net = trained
    for sparsity in (0.8, 0.9):
        mask = ol.prune(net, data, sparsity, "obc", "layer", samples=256).masks["1.weight"]
        assert bool(mask.any(1).all())


def test_global_counts_come_from_all_layers_traces(trained):
    """scope='global': the per-layer counts split the total where the least total trace error over all rows of
    all layers (dense model's inputs) is reached: the layers' own optima at these counts sum to the global one."""
    data, net = trained
    result = ol.prune(net, data, 0.85, "obc", "global", samples=256)
    x, _ = sample(data, 256, 0)
    names = ol.prunable(net)
    grams = reconstruction.grams(net, names, x)
    h_invs = [reconstruction.inverse(reconstruction.curvature(grams[n], len(x), 0.01), n) for n in names]
    layers = [obc_rows.traces(reconstruction.flat_weight(net, n), h_inv) for n, h_inv in zip(names, h_invs)]
    width = max(t.shape[1] for t in layers)
    everything = torch.cat([torch.nn.functional.pad(t, (0, width - t.shape[1]), value=float("inf")) for t in layers])
    total = sum(int((~result.masks[n]).sum()) for n in names)
    assert total == round(0.85 * sum(m.numel() for m in result.masks.values()))
    split = sum(dynamic_programme(t)[int((~result.masks[n]).sum())] for n, t in zip(names, layers))
    assert split == pytest.approx(dynamic_programme(everything)[total], rel=1e-9)
