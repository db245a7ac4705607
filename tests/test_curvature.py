"""Diagonal curvature against torch.func oracles, scaling, errors, isolation and determinism."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from torch import nn
from torch.func import functional_call, grad, hessian

import oneshot_lab as ol
from oneshot_lab.pruning import curvature
from oneshot_lab.core.data import Dataset, Split


def _dataset(n: int = 48, dim: int = 6, classes: int = 3, seed: int = 0) -> Dataset:
    """A tiny float64 classification set."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dim, generator=gen, dtype=torch.float64)
    y = torch.randint(classes, (n,), generator=gen)
    return Dataset("tiny", Split(x, y), Split(x[:8], y[:8]), Split(x[:8], y[:8]), classes)


def _mlp(activation: str, seed: int = 0) -> nn.Sequential:
    """A 6-5-4-3 float64 MLP (two hidden layers, so second derivatives of the activation matter)."""
    torch.manual_seed(seed)
    act = {"relu": nn.ReLU, "tanh": nn.Tanh}[activation]
    return nn.Sequential(nn.Linear(6, 5), act(), nn.Linear(5, 4), act(), nn.Linear(4, 3)).double()


def _oracle(model: nn.Module, data: Dataset) -> dict[str, torch.Tensor]:
    """Diagonal of torch.func.hessian of the mean cross-entropy over the training split."""
    x, y = data.train
    params = {n: p.detach() for n, p in model.named_parameters()}

    def loss(p):
        return nn.functional.cross_entropy(functional_call(model, p, (x,)), y)

    full = hessian(loss)(params)
    return {n: torch.diagonal(full[n][n].reshape(p.numel(), p.numel())).reshape(p.shape) for n, p in params.items()}


def _rel(a: dict, b: dict) -> float:
    """Largest per-parameter relative L2 difference."""
    return max(float((a[n] - b[n]).norm() / b[n].norm()) for n in b)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_hessian_matches_torch_func(activation):
    data, model = _dataset(), _mlp(activation)
    diag = curvature.diagonal(model, data, "hessian", samples=None, batch_size=10)
    assert _rel(diag, _oracle(model, data)) < 1e-6


def test_ggn_equals_hessian_for_relu_and_differs_for_tanh():
    data = _dataset()
    relu, tanh = _mlp("relu"), _mlp("tanh")
    assert _rel(curvature.diagonal(relu, data, "ggn", samples=None), _oracle(relu, data)) < 1e-6
    assert _rel(curvature.diagonal(tanh, data, "ggn", samples=None), _oracle(tanh, data)) > 1e-2


def test_tanh_hessian_diagonal_can_be_negative_and_ggn_cannot():
    data, model = _dataset(), _mlp("tanh")
    exact = curvature.diagonal(model, data, "hessian", samples=None)
    ggn = curvature.diagonal(model, data, "ggn", samples=None)
    assert any(bool((h < 0).any()) for h in exact.values())
    assert all(bool((g >= 0).all()) for g in ggn.values())


def test_fisher_is_mean_of_squared_per_sample_gradients():
    data, model = _dataset(), _mlp("tanh")
    x, y = data.train
    params = {n: p.detach() for n, p in model.named_parameters()}
    per_sample = [grad(lambda p: nn.functional.cross_entropy(functional_call(model, p, (x[i:i + 1],)), y[i:i + 1]))(params)
                  for i in range(len(y))]
    loop = {n: sum(g[n] ** 2 for g in per_sample) / len(y) for n in params}
    assert _rel(curvature.diagonal(model, data, "fisher", samples=None, batch_size=7), loop) < 1e-10


@pytest.mark.parametrize("kind", ["hessian", "ggn", "fisher"])
def test_batch_size_does_not_change_the_mean(kind):
    data, model = _dataset(), _mlp("tanh")
    one = curvature.diagonal(model, data, kind, samples=None, batch_size=48)
    many = curvature.diagonal(model, data, kind, samples=None, batch_size=5)
    assert _rel(many, one) < 1e-12


def test_ggn_mc_is_close_to_ggn_with_many_samples_and_seeded():
    data, model = _dataset(n=400), _mlp("relu")
    exact = curvature.diagonal(model, data, "ggn", samples=None)
    mc = curvature.diagonal(model, data, "ggn_mc", samples=None, seed=3)
    assert _rel(mc, exact) < 0.3
    again = curvature.diagonal(model, data, "ggn_mc", samples=None, seed=3)
    assert all(torch.equal(mc[n], again[n]) for n in mc)
    other = curvature.diagonal(model, data, "ggn_mc", samples=None, seed=4)
    assert any(not torch.equal(mc[n], other[n]) for n in mc)


def test_hutchinson_converges_to_the_exact_diagonal():
    data, model = _dataset(), _mlp("tanh")
    exact = _oracle(model, data)
    errors = [_rel(curvature.diagonal(model, data, "hutchinson", samples=None, probes=p, seed=1), exact)
              for p in (16, 256, 4096)]
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.25 * errors[0]


def test_user_model_is_not_modified_or_extended():
    data, model = _dataset(), _mlp("relu")
    model.train()
    before = copy.deepcopy(model.state_dict())
    rng = torch.get_rng_state()
    for kind in curvature.CURVATURES:
        curvature.diagonal(model, data, kind, samples=None, probes=4)
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert torch.equal(rng, torch.get_rng_state())
    for module in model.modules():
        assert not module._forward_hooks and not module._backward_hooks
    for p in model.parameters():
        assert p.grad is None and not hasattr(p, "diag_h") and not hasattr(p, "diag_ggn_exact")
    x, y = data.train  # torch.func still works on the user's model (an extended model breaks it)
    grad(lambda p: nn.functional.cross_entropy(functional_call(model, p, (x,)), y))(dict(model.named_parameters()))


def test_every_curvature_is_deterministic():
    data, model = _dataset(), _mlp("tanh")
    for kind in curvature.CURVATURES:
        a = curvature.diagonal(model, data, kind, samples=20, probes=4, seed=2)
        b = curvature.diagonal(model, data, kind, samples=20, probes=4, seed=2)
        assert all(torch.equal(a[n], b[n]) for n in a), kind


def test_backward_hook_warning_never_escapes():
    data, model = _dataset(), _mlp("relu")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for kind in curvature.BACKPACK_CURVATURES:
            curvature.diagonal(model, data, kind, samples=None)
    assert not [w for w in caught if "backward hook" in str(w.message)]


def test_batchnorm_with_hessian_names_the_layer_and_the_alternatives():
    data = _dataset()
    model = nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 3)).double()
    with pytest.raises(ValueError, match=r"1 \(BatchNorm1d\).*ggn, ggn_mc, fisher, hutchinson"):
        curvature.diagonal(model, data, "hessian")
    assert curvature.supported_curvatures(model) == ["ggn", "ggn_mc", "fisher", "hutchinson"]
    assert set(curvature.diagonal(model, data, "ggn", samples=None)) == {n for n, _ in model.named_parameters()}


def test_inplace_activation_and_unknown_curvature_are_errors():
    data = _dataset()
    inplace = nn.Sequential(nn.Linear(6, 5), nn.ReLU(inplace=True), nn.Linear(5, 3)).double()
    with pytest.raises(ValueError, match="in-place"):
        curvature.diagonal(inplace, data, "ggn")
    with pytest.raises(ValueError, match="unknown curvature 'newton'.*hessian, ggn, ggn_mc, fisher, hutchinson"):
        curvature.diagonal(_mlp("relu"), data, "newton")


def test_samples_draw_a_seeded_subset():
    data = _dataset()
    x1, _ = ol.core.data.sample(data, 10, seed=0)
    x2, _ = ol.core.data.sample(data, 10, seed=0)
    x3, _ = ol.core.data.sample(data, 10, seed=1)
    assert len(x1) == 10 and torch.equal(x1, x2) and not torch.equal(x1, x3)
    with pytest.raises(ValueError, match="samples"):
        ol.core.data.sample(data, 0)


def test_torch_prune_reparametrised_weights_get_curvature():
    data, model = _dataset(), _mlp("relu")
    masks = ol.core.masks.masks_from_scores(ol.pruning.criteria.magnitude(model), 0.5)
    plain = masks.apply(copy.deepcopy(model))
    masks.to_torch_prune(model)
    assert _rel(curvature.diagonal(model, data, "ggn", samples=None),
                curvature.diagonal(plain, data, "ggn", samples=None)) < 1e-12


def test_compare_reports_exact_agreement_for_the_reference():
    data, model = _dataset(), _mlp("tanh")
    diags = {k: curvature.diagonal(model, data, k, samples=None) for k in ("hessian", "ggn")}
    table = curvature.compare(diags, "hessian")
    assert set(table.curvature) == {"hessian", "ggn"}
    ref = table[table.curvature == "hessian"]
    assert (ref.relative_error == 0).all() and (ref.spearman > 0.999).all()
    with pytest.raises(ValueError, match="reference 'fisher'"):
        curvature.compare(diags, "fisher")


def test_values_table_same_seeded_entries_for_every_label():
    gen = torch.Generator().manual_seed(0)
    exact = {"0.weight": torch.rand(4, 5, generator=gen), "2.weight": torch.rand(3, generator=gen)}
    values = {"hessian": exact, "score": {n: -2 * t for n, t in exact.items()}}
    table = curvature.values_table(values, ["0.weight", "2.weight"], max_points=7, seed=1)
    assert list(table.columns) == ["label", "parameter", "entry", "value"]
    assert list(table.label) == ["hessian"] * 7 + ["score"] * 7
    by_label = {label: rows[["parameter", "entry"]].values.tolist() for label, rows in table.groupby("label")}
    assert by_label["hessian"] == by_label["score"] and len({tuple(k) for k in by_label["hessian"]}) == 7
    for row in table.itertuples():  # every value is the tensor's entry at (parameter, flat index)
        assert row.value == pytest.approx(float(values[row.label][row.parameter].flatten()[row.entry]))
    again = curvature.values_table(values, ["0.weight", "2.weight"], max_points=7, seed=1)
    assert again.equals(table)
    other = curvature.values_table(values, ["0.weight", "2.weight"], max_points=7, seed=2)
    assert not other[["parameter", "entry"]].equals(table[["parameter", "entry"]])
    everything = curvature.values_table(values, ["2.weight"], max_points=None)
    assert list(everything.entry) == [0, 1, 2] * 2 and set(everything.parameter) == {"2.weight"}
    assert len(curvature.values_table(values, ["0.weight", "2.weight"], max_points=100)) == 2 * 23


def test_values_table_rejects_missing_parameters_and_shapes():
    values = {"a": {"w": torch.ones(3)}, "b": {"w": torch.ones(4)}}
    with pytest.raises(ValueError, match="'a' has no entry for v"):
        curvature.values_table(values, ["w", "v"])
    with pytest.raises(ValueError, match="'b' has other shapes"):
        curvature.values_table(values, ["w"])
    with pytest.raises(ValueError, match="names is empty"):
        curvature.values_table(values, [])
    with pytest.raises(ValueError, match="max_points"):
        curvature.values_table({"a": {"w": torch.ones(3)}}, ["w"], max_points=0)


def test_convergence_labels_rows_by_probe_count_and_drops_the_exact_rows():
    gen = torch.Generator().manual_seed(0)
    exact = {"0.weight": torch.rand(20, 10, generator=gen) + 1e-3, "2.weight": torch.rand(5, 20, generator=gen) + 1e-3}
    noisy = {n: d + torch.randn(d.shape, generator=gen) for n, d in exact.items()}
    close = {n: d * 1.1 for n, d in exact.items()}
    table = curvature.convergence(exact, {1: noisy, 10: close})
    assert list(table["curvature"]) == ["hutchinson_1"] * 2 + ["hutchinson_10"] * 2
    assert list(table["probes"]) == [1, 1, 10, 10]
    assert table[table.probes == 10]["relative_error"].to_numpy() == pytest.approx([0.1, 0.1])
    with pytest.raises(ValueError, match="positive int probe counts"):
        curvature.convergence(exact, {"hutchinson_4": close})
    with pytest.raises(ValueError, match="estimates is empty"):
        curvature.convergence(exact, {})


def test_preferred_is_ggn_else_the_first_but_hutchinson():
    assert curvature.preferred(["hessian", "ggn", "fisher"]) == "ggn"
    assert curvature.preferred(["hutchinson", "fisher", "hessian"]) == "fisher"
    assert curvature.preferred(["hutchinson"]) == "hutchinson"
    with pytest.raises(ValueError, match="unknown or no curvatures"):
        curvature.preferred([])
