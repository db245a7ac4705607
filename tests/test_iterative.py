"""Iterative pruning: prune, retrain, re-score; the input model untouched; bad schedules rejected."""

from __future__ import annotations

import copy

import pytest
import torch

import oneshot_lab as ol
from oneshot_lab.studies import iterative


def config(**changes) -> iterative.IterativeConfig:
    """A two-round OBD-GGN config with 5 retraining steps, changed by `changes`."""
    return iterative.IterativeConfig(**{"sparsities": [0.3, 0.6], "retrain": ol.TrainConfig(iterations=5),
                                        "criterion": "obd_ggn", "scope": "layer",
                                        "score_options": {"obd_ggn": {"samples": None}}, **changes})


def test_iterative_prunes_retrains_and_leaves_the_model_alone(float64_data, float64_mlp):
    data, model = float64_data, float64_mlp()
    before = copy.deepcopy(model.state_dict())
    result = iterative.prune(model, data, config(), progress=False)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert result.masks.sparsity() == pytest.approx(0.6, abs=0.02)
    for name, mask in result.masks.items():
        assert (ol.core.masks.parameter(result.model, name)[~mask] == 0).all()
    assert list(result.metrics.stage) == ["dense", "pruned", "iterative", "pruned", "iterative"]
    assert {"macs", "speedup", "round"} <= set(result.metrics.columns) and result.metrics.macs.notna().all()
    assert set(result.layers.method) == {"iterative obd_ggn/layer"}
    again = iterative.prune(model, data, config(), progress=False)
    assert again.metrics.equals(result.metrics) and again.masks.equal(result.masks)


@pytest.mark.parametrize("changes, match", [
    (dict(sparsities=[0.6, 0.3]), "strictly increasing"),
    (dict(sparsities=[]), "must not be empty"),
    (dict(criterion="obd_newton"), "unknown method 'obd_newton'"),
    (dict(scope="net"), "unknown scope"),
    (dict(retrain=None), "retrain must be a TrainConfig"),
    (dict(score_options={"obd_ggn": {"samples": -1}}), r"samples must be an integer in \[1, 10000000\]"),
])
def test_iterative_rejects_bad_configs(changes, match):
    with pytest.raises(ValueError, match=match):
        config(**changes)


def test_replicate_runs_every_criterion_on_each_seeds_model_paired_on_the_seed():
    import oneshot_lab as ol
    from oneshot_lab.studies import iterative

    recipe = ol.TrainConfig(iterations=4, batch_size=32)
    study = ol.studies.oneshot.OneShotConfig(methods=["magnitude/global"], sparsities=[0.5])
    dense = ol.studies.oneshot.replicate("synthetic", "mlp", recipe, study, [0, 1], {"widths": [8]}, workers=0)
    config = iterative.IterativeConfig(sparsities=[0.5, 0.8], retrain=recipe, criterion="magnitude")
    metrics, layers = iterative.replicate(dense.models, "synthetic", config, ["magnitude", "random"], workers=0)
    assert sorted(set(metrics.seed)) == [0, 1] and set(layers.seed) == {0, 1}
    with ol.util.parallel.one_thread():
        one = iterative.prune(dense.models[1], ol.load("synthetic", seed=1), config.replace(criterion="random", seed=1),
                              progress=False).metrics
    mine = metrics[(metrics.seed == 1) & (metrics.criterion.isin(["random", "none"]))].iloc[-len(one):]
    assert mine.test_accuracy.tolist() == one.test_accuracy.tolist()
    with pytest.raises(ValueError, match="unknown method 'nosuch'"):
        iterative.replicate(dense.models, "synthetic", config, ["nosuch"])


@pytest.mark.parametrize("pruner, scope", [("obc", "layer"), ("sparsegpt", "global")])
def test_iterative_with_a_pruner_equals_the_hand_written_loop(float64_data, float64_mlp, pruner, scope):
    """Each round: obs.prune on top of the previous masks (its updated weights kept), then retraining."""
    data, model = float64_data, float64_mlp()
    cfg = config(criterion=pruner, scope=scope, score_options={pruner: {"samples": 64}}, seed=3)
    result = iterative.prune(model, data, cfg, progress=False)
    current, masks = copy.deepcopy(model), ol.Masks.ones(model)
    for target in cfg.sparsities:
        pruned = ol.prune(current, data, target, pruner, scope, masks=masks, samples=64, seed=3)
        current, masks = pruned.model, pruned.masks
        ol.fit(current, data, cfg.retrain, masks=masks, progress=False)
    assert result.masks.equal(masks)
    assert all(torch.equal(a, b) for a, b in zip(result.model.state_dict().values(), current.state_dict().values()))
    assert list(result.metrics.stage) == ["dense", "pruned", "iterative", "pruned", "iterative"]


def test_iterative_refuses_a_model_the_pruner_cannot_take(float64_data, float64_mlp):
    cfg = config(criterion="obs", score_options={"obs": {"max_weights": 10}})
    with pytest.raises(ValueError, match="method 'obs' cannot prune this model: it inverts the full"):
        iterative.prune(float64_mlp(), float64_data, cfg, progress=False)
    with pytest.raises(ValueError, match="unknown method 'obx'.*obc"):
        config(criterion="obx")
