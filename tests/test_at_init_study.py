"""Notebook 07's study (pruning at initialisation): equal weights remaining across arms, the sanity-check masks, the
path count, layer-collapse points, claims and the published directions — each against a hand computation."""

import re

import pandas as pd
import pytest
import torch
from torch import nn

import oneshot_lab as ol
from oneshot_lab.analysis import at_init as analysis, claims, published
from oneshot_lab.core.masks import Masks
from oneshot_lab.studies import at_init
from oneshot_lab.studies.lottery.level import target

RECIPE = ol.TrainConfig(optimizer="adam", lr=0.01, batch_size=32, iterations=4, eval_every=2)


def test_level_sparsities_keep_what_imp_keeps():
    assert at_init.level_sparsities(100, 0.8, 3) == [0.8, 0.96, 0.99]  # kept 20, 4, 1 by hand
    for total, rate, levels in [(1234, 0.8, 4), (76810, 0.7, 5), (97, 0.5, 6)]:
        ones = {"w": torch.ones(total, dtype=torch.bool)}
        kept = total
        for sparsity in at_init.level_sparsities(total, rate, levels):
            expected = target({"w": torch.arange(total) < kept}, rate)  # IMP's own cumulative target
            kept -= round(rate * kept)
            assert sparsity == pytest.approx(expected, abs=0) and round(sparsity * total) == total - kept
        assert ones["w"].numel() == total


def test_paths_count_input_to_output_paths_of_the_masks():
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    m1 = torch.tensor([[1, 0, 1], [0, 0, 0], [1, 1, 1], [0, 1, 0]], dtype=torch.bool)
    m2 = torch.tensor([[1, 1, 0, 0], [0, 0, 1, 1]], dtype=torch.bool)
    masks = Masks({"0.weight": m1, "2.weight": m2})
    assert at_init.paths(net, masks, (3,)) == float(m2.double().sum(0) @ m1.double().sum(1))  # 1^T M2 M1 1
    cut = Masks({"0.weight": m1, "2.weight": torch.tensor([[0, 1, 0, 0], [0, 1, 0, 0]], dtype=torch.bool)})
    assert at_init.paths(net, cut, (3,)) == 0.0  # unit 1 of the hidden layer has no input: disconnected
    assert net[0].weight.abs().sum() > 0  # the network itself is untouched
    sigmoid = nn.Sequential(nn.Linear(3, 4), nn.Sigmoid(), nn.Linear(4, 2))  # sigmoid(0) = 0.5: treated as linear
    assert at_init.paths(sigmoid, cut, (3,)) == 0.0 and at_init.paths(sigmoid, masks, (3,)) == at_init.paths(net, masks, (3,))


def test_config_refuses_bad_combinations_before_any_work(synthetic):
    with pytest.raises(ValueError, match=r"control_methods \['snip/global'\] are not among the methods"):
        at_init.AtInitConfig(methods=("magnitude/global",), control_methods=("snip/global",))
    with pytest.raises(ValueError, match="the inverted control .* 'magnitude' has none"):
        at_init.AtInitConfig(methods=("magnitude/global",), control_methods=("magnitude/global",))
    with pytest.raises(ValueError, match="unknown control .shuffle.; valid choices: shuffled, reinit, inverted"):
        at_init.AtInitConfig(controls=("shuffle",))
    with pytest.raises(ValueError, match="bad method 'snip'"):
        at_init.AtInitConfig(methods=("snip",))
    with pytest.raises(ValueError, match="rate"):
        at_init.AtInitConfig(rate=1.5)
    net = ol.build("mlp", synthetic, widths=[2])  # 48 prunable weights
    for rate, levels, shown in [(0.8, 3, "[0.791667, 0.958333, 1.0]"), (0.0, 2, "[0.0, 0.0]"), (0.5, 0, "[]")]:
        with pytest.raises(ValueError, match=rf"rate={rate!r} over levels={levels} gives the sparsities "
                                             rf"{re.escape(shown)} on this network \(48 prunable weights\)"):
            at_init.AtInitConfig(rate=rate, levels=levels).check(net, synthetic)
    with pytest.raises(ValueError, match="score_options names 'obs', which is not among the methods"):
        at_init.AtInitConfig(score_options={"obs": {}})
    with pytest.raises(ValueError, match="score_options sets invert=True for 'snip'"):
        at_init.AtInitConfig(score_options={"snip": {"invert": True}})


@pytest.fixture(scope="module")
def study_result(synthetic):
    config = at_init.AtInitConfig(methods=("magnitude/global", "random/global"), control_methods=("magnitude/global",),
                                  controls=("shuffled", "reinit"), rate=0.5, levels=2, train=RECIPE,
                                  finetune=RECIPE.replace(iterations=2), collapse_sparsities=(0.5, 0.9, 0.99),
                                  seed_offsets=(0, 1))
    return config, at_init.run(config, "mlp", synthetic, {"widths": [8]}, progress=False, workers=0)


def test_every_arm_keeps_exactly_the_weights_imp_keeps(study_result, synthetic):
    config, result = study_result
    metrics = result.metrics
    assert set(metrics.arm) == {"dense", "magnitude/global", "magnitude/global shuffled", "magnitude/global reinit",
                                "random/global", at_init.IMP_ARM, at_init.ONE_SHOT_ARM, at_init.FINETUNED_ARM}
    pruned = metrics[metrics.level > 0]
    assert (pruned.groupby(["seed", "level"]).density.nunique() == 1).all()
    total = Masks.ones(ol.build("mlp", synthetic, widths=[8])).count()[1]
    for level, sparsity in enumerate(config.sparsities(ol.build("mlp", synthetic, widths=[8])), start=1):
        kept = pruned[pruned.level == level].density * total
        assert (kept.round() == total - round(sparsity * total)).all()
    assert len(metrics) == 2 * (1 + 2 * (4 + 3))  # seeds x (dense + levels x (mask, 2 controls, random, 3 trained))


def test_shuffled_masks_keep_each_layers_count_and_reinit_keeps_the_mask(study_result):
    _, result = study_result
    layers = result.layers.set_index(["seed", "level", "layer", "arm"]).kept.unstack("arm")
    assert (layers["magnitude/global shuffled"] == layers["magnitude/global"]).all()
    assert (layers["magnitude/global reinit"] == layers["magnitude/global"]).all()


def test_collapse_points_by_hand():
    rows = []
    for method, empty_at in (("a", 0.9), ("b", None)):
        for sparsity in (0.5, 0.9, 0.99):
            for layer in ("l1", "l2"):
                empty = layer == "l2" and empty_at is not None and sparsity >= empty_at
                rows.append({"method": method, "seed": 0, "sparsity": sparsity, "layer": layer, "density": 0.0 if empty
                             else 1 - sparsity, "collapsed": empty, "connected": not empty})
    table = analysis.collapse_points(pd.DataFrame(rows)).set_index(["method", "layer"])
    assert table.loc[("a", "l2"), "collapses_at"] == 0.9 and pd.isna(table.loc[("a", "l1"), "collapses_at"])
    assert table.loc[("a", "l1"), "max_intact_sparsity"] == 0.5 and table.loc[("b", "l1"), "max_intact_sparsity"] == 0.99
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['connected'\]"):
        analysis.collapse_points(pd.DataFrame(rows).drop(columns="connected"))
    empty = analysis.collapse_points(pd.DataFrame(rows).iloc[:0])
    assert empty.empty and list(empty.columns) == analysis.POINTS
    with pytest.raises(ValueError, match="the study scanned no sparsity"):
        analysis.collapse_plot(pd.DataFrame(rows).iloc[:0])


def test_claims_and_published_directions(study_result):
    config, result = study_result
    found = claims.at_initialisation(result.metrics, config)
    assert [(c.a, c.b) for c in found] == [
        ("magnitude/global", "magnitude/global shuffled"), ("magnitude/global", "magnitude/global reinit"),
        ("magnitude/global", "random/global"), (at_init.IMP_ARM, "magnitude/global"),
        (at_init.ONE_SHOT_ARM, "magnitude/global"), (at_init.FINETUNED_ARM, "magnitude/global")]
    findings = pd.DataFrame([
        {"claim": "s", "a": "snip/global", "b": "snip/global shuffled", "verdict": v} for v in ("supported", "inconclusive")
    ] + [{"claim": "g", "a": "grasp/global", "b": "grasp/global inverted", "verdict": "contradicted"},
         {"claim": "n", "a": "snip/global", "b": "synflow/global", "verdict": "supported"},
         {"claim": "t", "a": at_init.IMP_ARM, "b": "snip/global", "verdict": "supported"}])
    table = published.at_init_agreement(findings).set_index("claim")
    assert list(table.index) == ["s", "g", "t"]  # snip vs synflow: not a comparison the paper made
    # shuffling "preserves or improves": the inconclusive setting is consistent, neither confirms it
    assert table.loc["s", ["supported", "inconclusive", "consistent", "confirmed"]].tolist() == [1, 1, 1, 0]
    # inverted GraSP "does as well or better": contradicted (the inverted mask better) confirms it
    assert table.loc["g", ["contradicted", "consistent", "confirmed"]].tolist() == [1, 1, 1]
    assert table.loc["t", ["supported", "consistent", "confirmed"]].tolist() == [1, 1, 1]
