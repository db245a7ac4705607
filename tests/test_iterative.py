"""Iterative pruning: prune, retrain, re-score; the input model untouched; bad schedules rejected."""

from __future__ import annotations

import copy

import pytest
import torch

import oneshot_lab as ol
from oneshot_lab import iterative


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
        assert (ol.prune.parameter(result.model, name)[~mask] == 0).all()
    assert list(result.metrics.stage) == ["dense", "pruned", "iterative", "pruned", "iterative"]
    assert {"macs", "speedup", "round"} <= set(result.metrics.columns) and result.metrics.macs.notna().all()
    assert set(result.layers.method) == {"iterative obd_ggn/layer"}
    again = iterative.prune(model, data, config(), progress=False)
    assert again.metrics.equals(result.metrics) and again.masks.equal(result.masks)


@pytest.mark.parametrize("changes, match", [
    (dict(sparsities=[0.6, 0.3]), "strictly increasing"),
    (dict(sparsities=[]), "must not be empty"),
    (dict(criterion="obd_newton"), "unknown criterion 'obd_newton'"),
    (dict(scope="net"), "unknown scope"),
    (dict(retrain=None), "retrain must be a TrainConfig"),
    (dict(score_options={"obd_ggn": {"samples": -1}}), "samples must be an integer >= 1"),
])
def test_iterative_rejects_bad_configs(changes, match):
    with pytest.raises(ValueError, match=match):
        config(**changes)
