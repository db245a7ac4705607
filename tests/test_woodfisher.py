"""'obs' (exact greedy by default, batched on request) and 'woodfisher' (block sizes up to the network, the
published independent update, absolute damping) through the registry, against independent oracles.

Oracles: per-example gradients by a plain autograd loop (not torch.func), the Fisher and its inverse built
densely with torch.linalg.inv, a brute-force greedy that re-inverts the Fisher of the alive weights at every
step, and WoodFisher's one-shot update written out from its formula.
"""

import copy

import pytest
import torch
from torch import nn

import oneshot_lab as ol
from oneshot_lab.core.data import Dataset, Split, sample
from oneshot_lab.pruning import fisher, obs_core
from oneshot_lab.pruning.prune import prune

F64 = torch.float64


@pytest.fixture(scope="module")
def data():
    return ol.load("synthetic", seed=0)


@pytest.fixture(scope="module")
def net():
    """20-6-4 ReLU MLP: 144 prunable weights in two layers, random (untrained) weights without ties."""
    model = nn.Sequential(nn.Linear(20, 6), nn.ReLU(), nn.Linear(6, 4))
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
    return model


def flat_weights(model):
    return torch.cat([model[0].weight.reshape(-1), model[2].weight.reshape(-1)]).detach().to(F64)


def gradients(model, data, samples, seed=0):
    """Per-example gradients of the cross-entropy w.r.t. both weights, one backward pass per example."""
    x, y = sample(data, samples, seed)
    rows = []
    for xi, yi in zip(x, y):
        model.zero_grad()
        nn.functional.cross_entropy(model(xi[None]), yi[None]).backward()
        rows.append(torch.cat([model[0].weight.grad.reshape(-1), model[2].weight.grad.reshape(-1)]).to(F64))
    return torch.stack(rows)


def fisher_matrix(g, lam, blocks=None):
    """G^T G / N + lambda I, zeroed outside the diagonal blocks [(start, stop)] if given."""
    f = g.T @ g / len(g)
    if blocks is not None:
        keep = torch.zeros_like(f, dtype=torch.bool)
        for a, b in blocks:
            keep[a:b, a:b] = True
        f = f * keep
    return f + lam * torch.eye(len(f), dtype=F64)


def brute_greedy(f, w, counts, groups):
    """Greedy OBS one weight per step, F^-1 of the alive weights re-inverted every step; groups with budgets."""
    w, alive, left, predicted = w.clone(), torch.ones(len(w), dtype=torch.bool), list(counts), 0.0
    while sum(left):
        idx = alive.nonzero()[:, 0]
        hinv = torch.linalg.inv(f[idx][:, idx])
        sal = w[idx] ** 2 / torch.diagonal(hinv)
        j = min((j for j in range(len(idx)) if left[groups[idx[j]]]), key=lambda j: (float(sal[j]), int(idx[j])))
        predicted += 0.5 * float(w[idx[j]] ** 2 / hinv[j, j])
        w[idx] -= hinv[:, j] * w[idx[j]] / hinv[j, j]
        w[idx[j]] = 0.0
        alive[idx[j]] = False
        left[groups[idx[j]]] -= 1
    return w, alive, predicted


def pruned_weights(result):
    return torch.cat([result.model[0].weight.reshape(-1), result.model[2].weight.reshape(-1)]).detach().to(F64)


def keep_mask(result):
    return torch.cat([result.masks["0.weight"].reshape(-1), result.masks["2.weight"].reshape(-1)])


@pytest.mark.parametrize("scope, samples", [("global", 40), ("layer", 40), ("global", 200)])
def test_obs_default_is_exact_greedy(data, net, scope, samples):
    """No batch given: one weight per step, equal to the brute-force greedy on the same damped Fisher."""
    g = gradients(net, data, samples)
    f = fisher_matrix(g, 0.05 * float((g**2).mean()))
    w = flat_weights(net)
    groups = [0] * 120 + [0 if scope == "global" else 1] * 24
    counts = [round(0.7 * 144)] if scope == "global" else [round(0.7 * 120), round(0.7 * 24)]
    oracle, keep, predicted = brute_greedy(f, w, counts, groups)
    result = prune(net, data, 0.7, "obs", scope, samples=samples, damp=0.05)
    assert torch.equal(keep_mask(result), keep)
    torch.testing.assert_close(pruned_weights(result), oracle, rtol=1e-4, atol=1e-5)
    assert result.predicted_increase == pytest.approx(predicted, rel=1e-6)


def test_batched_obs_is_another_configuration_and_says_so(data, net):
    exact = prune(net, data, 0.7, "obs", samples=40, damp=0.05)
    batched = prune(net, data, 0.7, "obs", samples=40, damp=0.05, batch=10)
    assert not exact.masks.equal(batched.masks)  # ten at a time is not the greedy sequence here
    assert ol.METHODS["obs"].configuration() == "samples=1024, damp=0.01, batch=1, max_weights=12000"
    assert ol.METHODS["obs"].configuration({"batch": "auto"}) == "samples=1024, damp=0.01, batch='auto', max_weights=12000"


@pytest.mark.parametrize("samples", [40, 200])  # Woodbury form (N < n) and dense
def test_woodfisher_network_greedy_equals_obs(data, net, samples):
    common = dict(samples=samples, damp=0.05)
    a = prune(net, data, 0.6, "obs", **common)
    b = prune(net, data, 0.6, "woodfisher", block_size="network", batch=1, **common)
    assert a.masks.equal(b.masks)
    torch.testing.assert_close(pruned_weights(a), pruned_weights(b), rtol=1e-9, atol=1e-12)
    assert a.predicted_increase == pytest.approx(b.predicted_increase, rel=1e-9)


def test_woodfisher_layer_blocks_greedy_equals_brute_force_on_the_block_diagonal(data, net):
    g = gradients(net, data, 60)
    lam = 1e-3
    f = fisher_matrix(g, lam, blocks=[(0, 120), (120, 144)])
    oracle, keep, predicted = brute_greedy(f, flat_weights(net), [round(0.6 * 144)], [0] * 144)
    result = prune(net, data, 0.6, "woodfisher", samples=60, damp=lam, damping="absolute", block_size="layer", batch=1)
    assert torch.equal(keep_mask(result), keep)
    torch.testing.assert_close(pruned_weights(result), oracle, rtol=1e-4, atol=1e-5)
    assert result.predicted_increase == pytest.approx(predicted, rel=1e-6)


@pytest.mark.parametrize("block, samples, scope, scale", [
    ("network", 40, "global", 1.0), ("network", 200, "layer", 0.7), ("layer", 60, "global", 1.0), (16, 30, "global", 0.9)])
def test_independent_update_by_hand(data, net, block, samples, scope, scale):
    """The published one-shot rule: pruned set Q chosen at once by w^2 / [F^-1]_qq, survivors moved by
    scale * sum_q -F^-1 e_q w_q / [F^-1]_qq, Q set to 0 (dense inverse of the block-diagonal Fisher)."""
    lam = 2e-3
    g = gradients(net, data, samples)
    blocks = fisher.ranges([120, 24], block)
    f = fisher_matrix(g, lam, blocks)
    finv = torch.linalg.inv(f)
    w = flat_weights(net)
    sal = w**2 / torch.diagonal(finv)
    if scope == "global":
        q = torch.topk(sal, round(0.8 * 144), largest=False).indices
    else:
        q = torch.cat([torch.topk(sal[:120], 96, largest=False).indices,
                       120 + torch.topk(sal[120:], round(0.8 * 24), largest=False).indices])
    step = torch.zeros_like(w)
    for j in q.tolist():
        step -= finv[:, j] * w[j] / finv[j, j]
    expected = w + scale * step
    expected[q] = 0.0
    result = prune(net, data, 0.8, "woodfisher", scope, samples=samples, damp=lam, damping="absolute",
                   block_size=block, update="independent", scale=scale)
    keep = torch.ones(144, dtype=torch.bool)
    keep[q] = False
    assert torch.equal(keep_mask(result), keep)
    torch.testing.assert_close(pruned_weights(result), expected, rtol=1e-4, atol=1e-5)
    d = expected - w
    assert result.predicted_increase == pytest.approx(0.5 * float(d @ f @ d), rel=1e-5)


def test_independent_update_keeps_prior_masks_out(data, net):
    """Entries pruned before stay 0 and out of the Fisher (restricted to the survivors), and count toward the target."""
    prior = {"0.weight": torch.rand(6, 20, generator=torch.Generator().manual_seed(1)) > 0.3,
             "2.weight": torch.ones(4, 6, dtype=torch.bool)}
    result = prune(net, data, 0.8, "woodfisher", masks=prior, samples=40, damp=1e-3, damping="absolute",
                   block_size="network", update="independent")
    assert int((~keep_mask(result)).sum()) == round(0.8 * 144)
    assert not bool((result.masks["0.weight"] & ~prior["0.weight"]).any())
    masked = copy.deepcopy(net)
    with torch.no_grad():
        masked[0].weight.mul_(prior["0.weight"])
    g = gradients(masked, data, 40)
    alive = torch.cat([prior["0.weight"].reshape(-1), prior["2.weight"].reshape(-1)])
    w = flat_weights(masked)
    live = alive.nonzero()[:, 0]
    finv = torch.linalg.inv(fisher_matrix(g[:, live], 1e-3))
    new = keep_mask(result)[live]
    q = (~new).nonzero()[:, 0]
    expected = w[live] - finv[:, q] @ (w[live][q] / torch.diagonal(finv)[q])
    expected[q] = 0.0
    torch.testing.assert_close(pruned_weights(result)[live], expected, rtol=1e-4, atol=1e-5)


def test_published_configuration_is_described():
    published = dict(samples=10000, damp=1e-3, damping="absolute", block_size="network", update="independent")
    assert ol.METHODS["woodfisher"].configuration(published) == \
        "samples=10000, damp=0.001, damping='absolute', block_size='network', update='independent', batch='auto', scale=1.0"


@pytest.mark.parametrize("options, message", [
    (dict(method="obs", batch="all"), r"batch must be an integer in \[1, 1000000000\] or one of auto, got 'all'"),
    (dict(method="obs", batch=2.5), r"batch must be an integer in \[1, 1000000000\] or one of auto, got 2.5"),
    (dict(block_size="rows"),
     r"block_size must be an integer in \[1, 1000000000\] or one of layer, network, got 'rows'"),
    (dict(update="joint"), "unknown update 'joint'; valid choices: greedy, independent"),
    (dict(damping="mean"), "unknown damping 'mean'; valid choices: relative, absolute"),
    (dict(scale=-1), "scale must be a number >= 0"),
    (dict(scale=0.9), "scale applies to update='independent' only, got scale=0.9 with update='greedy'"),
    (dict(update="independent", batch=1),
     "batch applies to update='greedy' only, got batch=1 with update='independent'"),
])
def test_bad_options_are_one_line_errors(data, net, options, message):
    args = dict(model=net, data=data, sparsity=0.5, method="woodfisher")
    args.update(options)
    with pytest.raises(ValueError, match=message) as error:
        prune(**args)
    assert "\n" not in str(error.value)


def test_blocks_that_would_not_fit_are_refused_before_any_work():
    wide = Split(torch.zeros(3, 20000), torch.tensor([0, 1, 0]))  # a 20000 x 2 layer: 40000 weights
    model = nn.Sequential(nn.Linear(20000, 2, bias=False))
    data = Dataset("wide", wide, wide, wide, 2)
    with pytest.raises(ValueError, match=r"block_size='layer' with update='greedy' holds 1 blocks of 40000 x 40000 "
                                         r"\(11.9 GiB\), above the lab's 2.0 GiB; use update='independent'"):
        prune(model, data, 0.5, "woodfisher", block_size="layer")
    with pytest.raises(ValueError, match="a Fisher block of 20000 weights from 30000 examples with damp=0.01 needs its "
                                         r"dense 20000 x 20000 inverse \(3.0 GiB\)"):
        fisher.check_blocks([20000], "network", 30000, 0.01)
    with pytest.raises(ValueError, match="from 100 examples with damp=0 needs"):
        fisher.check_blocks([20000], "layer", 100, 0)
    fisher.check_blocks([20000], "network", 100, 0.01)  # Woodbury form: fits
    fisher.check_blocks([20000], 128, 30000, 0.01)  # small blocks


@pytest.mark.parametrize("lazy", [1, 3])
def test_lazy_downdates_equal_brute_force(monkeypatch, data, net, lazy):
    """Pending downdates applied every `lazy` steps (obs_core.LAZY) give the same greedy (dense and Woodbury form)."""
    monkeypatch.setattr(obs_core, "LAZY", lazy)
    g = gradients(net, data, 40)
    lam = 0.05 * float((g**2).mean())
    oracle, keep, predicted = brute_greedy(fisher_matrix(g, lam), flat_weights(net), [100], [0] * 144)
    dense = obs_core.remove(flat_weights(net), fisher.fisher_inverse(g, 0.05), 100)
    low = fisher.obs_lowrank.remove_lowrank(flat_weights(net), g, lam, 100)
    for new, kept, increase in (dense, low):
        assert torch.equal(kept, keep)
        torch.testing.assert_close(new, oracle, rtol=1e-6, atol=1e-8)
        assert increase == pytest.approx(predicted, rel=1e-8)


def test_gram_blocks_equal_the_full_product():
    a = torch.randn(2100, 30, generator=torch.Generator().manual_seed(0), dtype=F64)
    k = obs_core.gram(a)
    torch.testing.assert_close(k, a @ a.T, rtol=1e-12, atol=1e-12)
    assert torch.equal(k, k.T)


def test_the_independent_fisher_is_factored_once_per_model_sample_and_setting(data, net, monkeypatch):
    """Several sparsities of one model reuse its factored Fisher (the same result as a fresh factorisation); another
    model, sample or damping is computed anew."""
    options = dict(samples=40, damp=1e-3, damping="absolute", block_size="network", update="independent")
    fisher.RECENT.clear()
    fresh = {s: flat_weights(prune(net, data, s, "woodfisher", **options).model) for s in (0.5, 0.8)}
    calls = []
    real = fisher.per_example_gradients
    monkeypatch.setattr(fisher, "per_example_gradients", lambda *a: calls.append(1) or real(*a))
    for s in (0.5, 0.8):  # the cache holds the last Fisher: equal results, no gradients recomputed
        assert torch.equal(flat_weights(prune(net, data, s, "woodfisher", **options).model), fresh[s])
    assert calls == []
    prune(net, data, 0.8, "woodfisher", **{**options, "samples": 41})
    other = copy.deepcopy(net)
    with torch.no_grad():
        other[0].bias.add_(1.0)  # not a pruned weight, but the gradients depend on it
    prune(other, data, 0.8, "woodfisher", **options)
    prune(net, data, 0.8, "woodfisher", **{**options, "damp": 2e-3})
    assert len(calls) == 3
