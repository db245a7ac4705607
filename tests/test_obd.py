"""OBD and SNIP saliencies, the criterion registry, calibration and iterative OBD."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.func import functional_call, grad

import oneshot_lab as ol
from oneshot_lab import curvature, obd, saliency
from oneshot_lab.data import Dataset, Split


def _dataset(n: int = 64, dim: int = 6, classes: int = 3, seed: int = 0) -> Dataset:
    """A tiny float64 classification set with distinct val / test splits."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n + 32, dim, generator=gen, dtype=torch.float64)
    y = torch.randint(classes, (n + 32,), generator=gen)
    return Dataset("tiny", Split(x[:n], y[:n]), Split(x[n:n + 16], y[n:n + 16]), Split(x[n + 16:], y[n + 16:]), classes)


def _mlp(activation: str = "tanh", seed: int = 0) -> nn.Sequential:
    """A 6-8-3 float64 MLP."""
    torch.manual_seed(seed)
    act = {"relu": nn.ReLU, "tanh": nn.Tanh}[activation]
    return nn.Sequential(nn.Linear(6, 8), act(), nn.Linear(8, 3)).double()


def test_obd_saliency_is_half_h_w_squared():
    data, model = _dataset(), _mlp()
    diag = curvature.diagonal(model, data, "ggn", samples=None)
    scores = saliency.obd(model, data, curvature="ggn", samples=None)
    assert set(scores) == set(ol.prunable(model))
    for name, s in scores.items():
        w = dict(model.named_parameters())[name].detach()
        assert torch.allclose(s, 0.5 * diag[name] * w ** 2, rtol=1e-12, atol=0)


def test_negative_curvature_choices():
    model = _mlp()
    diag = {n: -torch.ones_like(p) for n, p in model.named_parameters()}
    w = model[0].weight.detach()
    clamp = saliency.obd_from_diagonal(model, diag, "clamp")["0.weight"]
    signed = saliency.obd_from_diagonal(model, diag, "signed")["0.weight"]
    absolute = saliency.obd_from_diagonal(model, diag, "abs")["0.weight"]
    assert torch.equal(clamp, torch.zeros_like(w))
    assert torch.allclose(signed, -0.5 * w ** 2) and torch.allclose(absolute, 0.5 * w ** 2)
    with pytest.raises(ValueError, match="negative='flip'.*clamp, signed, abs"):
        saliency.obd(model, _dataset(), negative="flip")


def test_snip_is_abs_gradient_times_weight():
    data, model = _dataset(), _mlp()
    x, y = data.train
    params = {n: p.detach() for n, p in model.named_parameters()}
    g = grad(lambda p: nn.functional.cross_entropy(functional_call(model, p, (x,)), y))(params)
    scores = saliency.snip(model, data, samples=None, batch_size=10)
    for name, s in scores.items():
        assert torch.allclose(s, (g[name] * params[name]).abs(), rtol=1e-10, atol=1e-14)


def test_every_criterion_is_registered_and_runs_in_one_shot():
    data, model = _dataset(), _mlp()
    expected = {"snip", "obd", *(f"obd_{c}" for c in curvature.CURVATURES)}
    assert expected <= set(saliency.CRITERIA)
    before = copy.deepcopy(model.state_dict())
    methods = [f"{c}/{s}" for c in sorted(expected) for s in ("global", "layer")]
    metrics, layers = ol.experiment.one_shot(model, data, methods, [0.5], seed=0,
                                             score_options={"obd_hutchinson": {"probes": 8}})
    assert set(metrics.method) == {"dense", *methods}
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match="needs training data"):
        saliency.compute("obd_ggn", model)


def test_obd_ggn_equals_obd_hessian_on_relu():
    data, model = _dataset(), _mlp("relu")
    a = saliency.compute("obd_ggn", model, data, samples=None)
    b = saliency.compute("obd", model, data, curvature="hessian", samples=None)
    assert all(torch.allclose(a[n], b[n], rtol=1e-10, atol=1e-15) for n in a)


def test_calibration_predicts_a_single_deletion_to_second_order():
    data, model = _dataset(), _mlp()
    ol.fit(model, data, ol.TrainConfig(iterations=30, lr=1e-2, progress=False))
    with torch.no_grad():
        model[0].weight.mul_(0.05)  # tiny weights make the cubic remainder negligible
    diag = curvature.diagonal(model, data, "hessian", samples=None)
    n = sum(ol.prune._parameter(model, k).numel() for k in ol.prunable(model))
    table = obd.calibration(model, data, diag, [1 / n, 3 / n], scope="global")
    assert list(table.deleted) == [1, 3]
    one = table.iloc[0]
    assert one.measured == pytest.approx(one.predicted + one.gradient_term, rel=1e-3, abs=1e-12)
    assert set(table.columns) >= {"fraction", "deleted", "predicted", "gradient_term", "measured", "base_loss"}


def test_calibration_validates_fractions():
    data, model = _dataset(), _mlp()
    diag = curvature.diagonal(model, data, "ggn", samples=None)
    with pytest.raises(ValueError, match="sparsity must be in"):
        obd.calibration(model, data, diag, [0.1, 1.5])


def test_iterative_obd_prunes_retrains_and_leaves_the_model_alone():
    data, model = _dataset(), _mlp()
    before = copy.deepcopy(model.state_dict())
    result = obd.iterative(model, data, [0.3, 0.6], ol.TrainConfig(iterations=5, progress=False),
                           criterion="obd_ggn", scope="layer", score_options={"samples": None})
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert result.masks.sparsity() == pytest.approx(0.6, abs=0.02)
    for name, mask in result.masks.items():
        assert (ol.prune._parameter(result.model, name)[~mask] == 0).all()
    assert list(result.metrics.stage) == ["dense", "pruned", "iterative", "pruned", "iterative"]
    assert set(result.layers.method) == {"iterative obd_ggn/layer"}
    again = obd.iterative(model, data, [0.3, 0.6], ol.TrainConfig(iterations=5, progress=False),
                          criterion="obd_ggn", scope="layer", score_options={"samples": None})
    assert again.metrics.equals(result.metrics) and again.masks.equal(result.masks)


def test_iterative_rejects_bad_schedules():
    data, model = _dataset(), _mlp()
    config = ol.TrainConfig(iterations=1, progress=False)
    with pytest.raises(ValueError, match="strictly increasing"):
        obd.iterative(model, data, [0.6, 0.3], config)
    with pytest.raises(ValueError, match="bad method 'obd_newton/global'"):
        obd.iterative(model, data, [0.5], config, criterion="obd_newton")
