"""pruning.prune with existing masks and per-layer sparsities, against independent oracles.

Oracles: exact counts written out by hand (cumulative targets), least-squares refits of every row on its
surviving columns (OBC, damping 0), the constrained minimiser of the quadratic model given the final mask (OBS),
SparseGPT's own guarantee on the columns after a row's last pruned one, and a Wanda mask worked out by hand.
"""

import copy
import re

import pytest
import torch
from torch import nn

import oneshot_lab as ol
from oneshot_lab.pruning import fisher, reconstruction, updating
from oneshot_lab.pruning.prune import prune
from oneshot_lab.core.data import sample
from oneshot_lab.core.data import Dataset, Split

METHODS = ("obs", "woodfisher", "obc", "sparsegpt", "wanda")
ROWS = {"wanda": {"rows": True}}  # wanda within rows, layer by layer: the rule these tests check


def bits(model):
    """Raw bytes of every parameter and buffer."""
    return {k: v.detach().numpy().tobytes() for k, v in model.state_dict().items()}


def random_prior(model, sparsity, seed=0):
    """A random layer-wise mask of `model` at `sparsity`."""
    return ol.masks_from_scores(ol.pruning.criteria.random(model, seed=seed), sparsity, "layer")


def inputs_of(model, data, name, samples, seed=0):
    """X of layer `name` in `model` on the calibration sample, as the layer-wise pruner saw it (float64 rows)."""
    x, _ = sample(data, samples, seed)
    module = model.get_submodule(name.rpartition(".")[0])
    seen = []
    handle = module.register_forward_pre_hook(lambda mod, args: seen.append(args[0]))
    with torch.no_grad():
        model(x)
    handle.remove()
    return reconstruction.layer_rows(module, seen[0]).to(torch.float64)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("scope", ["layer", "global"])
def test_prior_entries_stay_pruned_counts_are_cumulative_and_zero(synthetic, tiny_mlp, method, scope):
    prior = random_prior(tiny_mlp, 0.4, seed=1)
    before = bits(tiny_mlp)
    a = prune(tiny_mlp, synthetic, 0.7, method, scope, masks=prior, samples=128, seed=3, **ROWS.get(method, {}))
    b = prune(tiny_mlp, synthetic, 0.7, method, scope, masks=prior, samples=128, seed=3, **ROWS.get(method, {}))
    assert bits(tiny_mlp) == before
    sizes = {n: m.numel() for n, m in prior.items()}
    pruned = {n: int((~m).sum()) for n, m in a.masks.items()}
    if scope == "layer":
        assert pruned == {n: round(0.7 * s) for n, s in sizes.items()}
    assert sum(pruned.values()) == round(0.7 * sum(sizes.values()))
    for name, mask in a.masks.items():
        assert not bool((mask & ~prior[name]).any()), f"{name}: a pruned entry came back"
        weight = a.model.get_parameter(name)
        assert bool((weight[~mask] == 0).all())
    assert a.table()["pruned"].tolist() == list(pruned.values())
    assert a.masks.equal(b.masks) and bits(a.model) == bits(b.model)


@pytest.mark.parametrize("method", METHODS)
def test_layer_sparsities_give_a_layer_its_own_count_beside_the_pool(synthetic, tiny_mlp, method):
    names = ol.prunable(tiny_mlp)
    prior = random_prior(tiny_mlp, 0.3, seed=2)
    result = prune(tiny_mlp, synthetic, 0.75, method, "global", masks=prior, layer_sparsities={names[-1]: 0.5},
                       samples=128, **ROWS.get(method, {}))
    pruned = {n: int((~m).sum()) for n, m in result.masks.items()}
    assert pruned[names[-1]] == round(0.5 * prior[names[-1]].numel())
    pool = names[:-1]
    assert sum(pruned[n] for n in pool) == round(0.75 * sum(prior[n].numel() for n in pool))
    layer = prune(tiny_mlp, synthetic, 0.75, method, "layer", layer_sparsities={names[0]: 0.2}, samples=128, **ROWS.get(method, {}))
    assert {n: int((~m).sum()) for n, m in layer.masks.items()} == {
        n: round((0.2 if n == names[0] else 0.75) * prior[n].numel()) for n in names}


@pytest.mark.parametrize("method", METHODS)
def test_a_target_below_the_prior_prunes_nothing_more(synthetic, tiny_mlp, method):
    prior = random_prior(tiny_mlp, 0.5, seed=3)
    result = prune(tiny_mlp, synthetic, 0.2, method, "layer", masks=prior, samples=64, **ROWS.get(method, {}))
    assert result.masks.equal(prior)


@pytest.mark.parametrize("method", METHODS)
def test_an_all_true_prior_changes_nothing(synthetic, tiny_mlp, method):
    plain = prune(tiny_mlp, synthetic, 0.6, method, "global", samples=64, **ROWS.get(method, {}))
    ones = prune(tiny_mlp, synthetic, 0.6, method, "global", masks=ol.Masks.ones(tiny_mlp), samples=64,
                 **ROWS.get(method, {}))
    assert plain.masks.equal(ones.masks) and bits(plain.model) == bits(ones.model)


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_obc_rows_are_least_squares_refits_on_their_survivors(synthetic, tanh_mlp, scope):
    prior = random_prior(tanh_mlp, 0.3, seed=4)
    masked = prior.apply(copy.deepcopy(tanh_mlp))
    result = prune(tanh_mlp, synthetic, 0.6, "obc", scope, masks=prior, samples=300, damp=0)
    for name in ol.prunable(tanh_mlp):
        x = inputs_of(result.model, synthetic, name, 300)  # through the pruned layers before this one
        w = reconstruction.flat_weight(masked, name)  # the target: the layer of the model under the prior
        new = reconstruction.flat_weight(result.model, name)
        keep = result.masks[name].reshape(new.shape)
        assert not bool((keep & ~prior[name].reshape(new.shape)).any())
        for r in range(w.shape[0]):
            expected = torch.zeros(w.shape[1], dtype=torch.float64)
            if keep[r].any():
                expected[keep[r]] = torch.linalg.lstsq(x[:, keep[r]], (x @ w[r])[:, None]).solution[:, 0]
            torch.testing.assert_close(new[r], expected, rtol=1e-6, atol=1e-6)


def test_obs_is_the_constrained_minimiser_of_its_quadratic_model_given_the_final_mask(synthetic):
    """Greedy OBS on the damped Fisher restricted to the survivors: the weights it leaves minimise
    1/2 dw^T (F + lambda I) dw over the survivors, every pruned entry (prior and new) held at 0, with
    lambda = damp * mean(diag F) over the survivors. A softmax layer's Fisher is singular, hence damp > 0."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(20, 4))
    with torch.no_grad():
        model[1].weight.copy_(torch.randn(4, 20, generator=torch.Generator().manual_seed(5)))
    prior = random_prior(model, 0.25, seed=5)
    result = prune(model, synthetic, 0.6, "obs", masks=prior, samples=256, damp=0.05, batch=1)
    masked = prior.apply(copy.deepcopy(model))
    x, y = sample(synthetic, 256, 0)
    alive = prior["1.weight"].reshape(-1).nonzero()[:, 0]
    grads = fisher.per_example_gradients(masked, ["1.weight"], x, y)[:, alive]  # the survivors' problem only
    f = grads.T @ grads / len(grads)
    f += 0.05 * float(torch.diagonal(f).mean()) * torch.eye(len(alive), dtype=f.dtype)
    w0 = masked[1].weight.detach().reshape(-1).to(torch.float64)[alive]
    keep = result.masks["1.weight"].reshape(-1)[alive]
    kept, gone = keep.nonzero()[:, 0], (~keep).nonzero()[:, 0]
    expected = torch.zeros(80, dtype=torch.float64)
    expected[alive[kept]] = w0[kept] + torch.linalg.solve(f[kept][:, kept], f[kept][:, gone] @ w0[gone])
    torch.testing.assert_close(result.model[1].weight.detach().reshape(-1).to(torch.float64), expected,
                               rtol=1e-4, atol=1e-6)
    assert int((~result.masks["1.weight"]).sum()) == 48


def test_woodfisher_with_one_block_equals_obs_under_a_prior(synthetic):
    model = nn.Sequential(nn.Flatten(), nn.Linear(20, 4))
    with torch.no_grad():
        model[1].weight.copy_(torch.randn(4, 20, generator=torch.Generator().manual_seed(6)))
    prior = random_prior(model, 0.3, seed=6)
    common = dict(masks=prior, samples=64, damp=0.1, batch=1)
    a = prune(model, synthetic, 0.7, "obs", **common)
    b = prune(model, synthetic, 0.7, "woodfisher", block_size=80, **common)
    assert a.masks.equal(b.masks)
    torch.testing.assert_close(a.model[1].weight, b.model[1].weight, rtol=1e-5, atol=1e-7)


def test_sparsegpt_under_a_prior_refits_columns_after_the_last_pruned_one(synthetic, tanh_mlp):
    prior = random_prior(tanh_mlp, 0.3, seed=7)
    masked = prior.apply(copy.deepcopy(tanh_mlp))
    result = prune(tanh_mlp, synthetic, 0.5, "sparsegpt", "layer", masks=prior, samples=300, damp=0, block_size=5)
    for name in ol.prunable(tanh_mlp):
        x = inputs_of(result.model, synthetic, name, 300)
        w = reconstruction.flat_weight(masked, name)
        new = reconstruction.flat_weight(result.model, name)
        keep = result.masks[name].reshape(new.shape)
        for r in range(w.shape[0]):
            last = int((~keep[r]).nonzero().max())
            if last + 1 < w.shape[1]:
                target = x @ w[r] - x[:, :last + 1] @ new[r, :last + 1]
                expected = torch.linalg.lstsq(x[:, last + 1:], target[:, None]).solution[:, 0]
                torch.testing.assert_close(new[r, last + 1:], expected, rtol=1e-6, atol=1e-6)


def test_wanda_under_a_prior_by_hand():
    x = torch.tensor([[1.0, 0.0, 2.0, 0.0], [0.0, 1.0, 0.0, 2.0], [2.0, 0.0, 0.0, 1.0], [0.0, 3.0, 0.0, 0.0]])
    hand = Dataset("hand", *[Split(x, torch.tensor([0, 1, 0, 1]))] * 3, 2)
    model = nn.Sequential(nn.Linear(4, 2))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, 1.0, -1.0, 2.0], [0.5, -2.0, 3.0, 1.0]]))
    # ||X_j|| = sqrt(5), sqrt(10), 2, sqrt(5); scores |W| * ||X_j||: row 0 = [2.24, 3.16, 2, 4.47],
    # row 1 = [1.12, 6.32, 6, 2.24]. Plain Wanda at 0.5 prunes the two lowest of each row.
    plain = prune(model, hand, 0.5, "wanda", "layer", samples=None, rows=True)
    assert plain.masks["0.weight"].tolist() == [[False, True, False, True], [False, True, True, False]]
    # The prior prunes row 0's best entry. 4 of 8 in all, 1 already: the other 3 go to the rows in proportion
    # to their survivors (3 and 4 of 7): round(3 * 3/7) = 1 in row 0 (column 2), 2 in row 1 (columns 0 and 3).
    prior = {"0.weight": torch.tensor([[True, True, True, False], [True, True, True, True]])}
    result = prune(model, hand, 0.5, "wanda", "layer", masks=prior, samples=None, rows=True)
    assert result.masks["0.weight"].tolist() == [[True, True, False, False], [False, True, True, False]]
    assert result.model[0].weight[0, 3] == 0.0


@pytest.mark.parametrize("kwargs, message", [
    (dict(masks={"nope.weight": torch.ones(3, dtype=torch.bool)}), "masks name 'nope.weight', not a prunable"),
    (dict(masks={"1.weight": torch.ones(3, 3, dtype=torch.bool)}), "mask '1.weight' has shape (3, 3)"),
    (dict(masks={"1.weight": torch.ones(16, 20)}), "must be a bool tensor"),
    (dict(masks=[1, 2]), "masks must be a Masks (prunable parameter names mapped to bool tensors), got list"),
    (dict(layer_sparsities={"x.weight": 0.5}), "layer_sparsities names 'x.weight', not a prunable parameter"),
    (dict(layer_sparsities={"1.weight": 1.5}), "layer_sparsities['1.weight'] must be"),
    (dict(layer_sparsities=[0.5]), "layer_sparsities must be a mapping"),
])
def test_bad_masks_and_layer_sparsities_fail_before_any_work(synthetic, tiny_mlp, monkeypatch, kwargs, message):
    def no_work(*args, **kwargs):
        raise AssertionError("work started")

    monkeypatch.setattr(updating, "sample", no_work)
    with pytest.raises(ValueError, match=re.escape(message)) as error:
        prune(tiny_mlp, synthetic, 0.5, "obc", **kwargs)
    assert "\n" not in str(error.value)
