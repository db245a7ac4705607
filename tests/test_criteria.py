"""The scoring methods (OBD, Taylor, magnitude, random, Wanda) against oracles, and their registry entries."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.func import functional_call, grad

import oneshot_lab as ol
from oneshot_lab.pruning import criteria, curvature, registry
from oneshot_lab.pruning.prune import prune, score
from oneshot_lab.studies import oneshot


def test_obd_saliency_is_half_h_w_squared(float64_data, float64_mlp):
    data, model = float64_data, float64_mlp()
    diag = curvature.diagonal(model, data, "ggn", samples=None)
    scores = criteria.obd(model, data, curvature="ggn", samples=None)
    assert set(scores) == set(ol.prunable(model))
    for name, s in scores.items():
        w = dict(model.named_parameters())[name].detach()
        assert torch.allclose(s, 0.5 * diag[name] * w ** 2, rtol=1e-12, atol=0)


def test_negative_curvature_choices(float64_data, float64_mlp):
    model = float64_mlp()
    diag = {n: -torch.ones_like(p) for n, p in model.named_parameters()}
    w = model[0].weight.detach()
    clamp = criteria.obd_from_diagonal(model, diag, "clamp")["0.weight"]
    signed = criteria.obd_from_diagonal(model, diag, "signed")["0.weight"]
    absolute = criteria.obd_from_diagonal(model, diag, "abs")["0.weight"]
    assert torch.equal(clamp, torch.zeros_like(w))
    assert torch.allclose(signed, -0.5 * w ** 2) and torch.allclose(absolute, 0.5 * w ** 2)
    with pytest.raises(ValueError, match="unknown negative 'flip'; valid choices: clamp, signed, abs"):
        criteria.obd(model, float64_data, negative="flip")


def test_taylor_is_abs_gradient_times_weight(float64_data, float64_mlp):
    data, model = float64_data, float64_mlp()
    x, y = data.train
    params = {n: p.detach() for n, p in model.named_parameters()}
    g = grad(lambda p: nn.functional.cross_entropy(functional_call(model, p, (x,)), y))(params)
    scores = criteria.taylor(model, data, samples=None, batch_size=10)
    for name, s in scores.items():
        assert torch.allclose(s, (g[name] * params[name]).abs(), rtol=1e-10, atol=1e-14)


def test_every_criterion_is_registered_and_runs_in_one_shot(float64_data, float64_mlp):
    data, model = float64_data, float64_mlp()
    expected = {"taylor", "obd", *(f"obd_{c}" for c in curvature.CURVATURES)}
    assert expected <= set(registry.METHODS)
    before = copy.deepcopy(model.state_dict())
    methods = [f"{c}/{s}" for c in sorted(expected) for s in ("global", "layer")]
    metrics, layers = oneshot.one_shot(model, data, oneshot.OneShotConfig(
        methods=methods, sparsities=[0.5], score_options={"obd_hutchinson": {"probes": 8}}), progress=False)
    assert set(metrics.method) == {"dense", *methods}
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match="needs training data"):
        score(model, None, "obd_ggn")


def test_obd_ggn_equals_obd_hessian_on_relu(float64_data, float64_mlp):
    data, model = float64_data, float64_mlp("relu")
    a = score(model, data, "obd_ggn", samples=None)
    b = score(model, data, "obd", curvature="hessian", samples=None)
    assert all(torch.allclose(a[n], b[n], rtol=1e-10, atol=1e-15) for n in a)


def test_registry_entries_describe_their_options():
    obd_entry = registry.METHODS["obd"]
    assert [o.name for o in obd_entry.options] == ["curvature", "negative", "samples", "batch_size", "probes"]
    assert "data" in obd_entry.needs and not registry.METHODS["magnitude"].needs
    assert obd_entry.check_options({"probes": 8}) == {"curvature": "ggn", "negative": "clamp", "samples": 2048,
                                                       "batch_size": 256, "probes": 8}
    assert all(o.help for c in registry.METHODS.values() for o in c.options)


@pytest.mark.parametrize("name, options, match", [
    ("nosuch", {}, "unknown method 'nosuch'; valid choices: magnitude, random, taylor"),
    ("magnitude", {"names": ["1.weight"]}, "method 'magnitude' has no option 'names'; its options: none"),
    ("obd_ggn", {"curvature": "hessian"}, "its options: negative, samples, batch_size, probes"),
    ("obd", {"curvature": "diag"}, "unknown curvature 'diag'; valid choices: hessian, ggn"),
    ("obd", {"samples": 2.5}, "samples must be an integer"),
    ("taylor", {"batch_size": True}, "batch_size must be an integer"),
])
def test_unknown_criteria_and_options_are_named(tiny_mlp, name, options, match):
    with pytest.raises(ValueError, match=match):
        score(tiny_mlp, None, name, **options)


def test_score_options_have_one_shape():
    assert registry.check_options({"obd": {"probes": 3}})["obd"]["probes"] == 3
    with pytest.raises(ValueError, match="score_options must be a mapping"):
        registry.check_options([("obd", {})])
    with pytest.raises(ValueError, match="unknown method 'samples'"):
        registry.check_options({"samples": 64})  # a flat dict is the wrong shape


def test_wanda_masks_are_the_lowest_of_its_scores_per_layer(synthetic, tiny_mlp):
    scores = criteria.wanda(tiny_mlp, synthetic, samples=64, seed=3)
    pruned = prune(tiny_mlp, synthetic, 0.5, "wanda", "layer", seed=3, samples=64)
    assert pruned.masks.equal(ol.masks_from_scores(scores, 0.5, "layer"))
    config = oneshot.OneShotConfig(methods=["wanda/layer", "magnitude/layer"], sparsities=[0.5],
                                   score_options={"wanda": {"samples": 64}})
    metrics, _ = oneshot.one_shot(tiny_mlp, synthetic, config, progress=False)
    assert set(metrics.method) == {"dense", "wanda/layer", "magnitude/layer"}


def test_scoring_needs_a_model_and_a_dataset(synthetic, tiny_mlp):
    with pytest.raises(ValueError, match="needs training data: pass data= a Dataset .* got str"):
        score(tiny_mlp, "synthetic", "taylor")
    with pytest.raises(ValueError, match="prunes a torch nn.Module, got NoneType"):
        score(None, None, "magnitude")
