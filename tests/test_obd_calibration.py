"""OBD's quadratic model: predicted vs measured loss increase."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import oneshot_lab as ol
from oneshot_lab.studies import obd_calibration


def test_calibration_predicts_a_single_deletion_to_second_order(float64_data, float64_mlp):
    data, model = float64_data, float64_mlp()
    ol.fit(model, data, ol.TrainConfig(iterations=30, lr=1e-2))
    with torch.no_grad():
        model[0].weight.mul_(0.05)  # tiny weights make the cubic remainder negligible
    n = sum(ol.core.masks.parameter(model, k).numel() for k in ol.prunable(model))
    table = obd_calibration.calibration(model, data, "hessian", [1 / n, 3 / n], scope="global")
    assert list(table.deleted) == [1, 3]
    one = table.iloc[0]
    assert one.measured == pytest.approx(one.predicted + one.gradient_term, rel=1e-3, abs=1e-12)
    assert set(table.columns) >= {"fraction", "deleted", "predicted", "gradient_term", "measured", "base_loss"}


def test_calibration_uses_the_same_samples_for_curvature_gradient_and_loss(float64_data, float64_mlp):
    data, model = float64_data, float64_mlp()
    ol.fit(model, data, ol.TrainConfig(iterations=30, lr=1e-2))
    with torch.no_grad():
        model[0].weight.mul_(0.05)
    n = sum(ol.core.masks.parameter(model, k).numel() for k in ol.prunable(model))
    table = obd_calibration.calibration(model, data, "hessian", [1 / n], samples=12, seed=4)
    x, y = ol.core.data.sample(data, 12, 4)
    subset = dataclasses.replace(data, train=ol.core.data.Split(x, y))
    assert table.examples.iloc[0] == 12
    assert table.base_loss.iloc[0] == pytest.approx(ol.evaluate(model, subset, "train")["loss"])
    one = table.iloc[0]  # second order holds on the sample because all three terms come from it
    assert one.measured == pytest.approx(one.predicted + one.gradient_term, rel=1e-3, abs=1e-12)


def test_calibration_validates_fractions(float64_data, float64_mlp):
    data, model = float64_data, float64_mlp()
    with pytest.raises(ValueError, match="sparsity must be a number in|fractions\\[1\\] must be a number in"):
        obd_calibration.calibration(model, data, "ggn", [0.1, 1.5])
