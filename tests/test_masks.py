"""Masks: exact counts, torch.nn.utils.prune agreement, already-pruned entries, reports, interop."""

import copy

import pytest
import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

import oneshot_lab as ol
from oneshot_lab.pruning import criteria
from oneshot_lab.core.masks import Masks, masks_from_scores, prunable


def random_model(seed: int) -> nn.Sequential:
    """A model mixing Linear and Conv layers of awkward sizes, random init from `seed`."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv1d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 6, 7), nn.ReLU(),
                         nn.Linear(7, 5), nn.ReLU(), nn.Linear(5, 2))


def test_seed_example_matches_l1_unstructured():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 5), nn.ReLU(), nn.Linear(5, 1))
    ours = masks_from_scores(criteria.magnitude(model), 0.2, scope="layer")
    torch_prune.l1_unstructured(model[0], name="weight", amount=0.2)
    assert torch.equal(ours["0.weight"], model[0].weight_mask.bool())
    assert int((~ours["0.weight"]).sum()) == 10  # round(0.2 * 50)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("amount", [0.0, 0.05, 0.25, 0.5, 0.73, 0.9, 0.99, 1.0])
def test_layer_scope_equals_l1_unstructured_on_random_models(seed, amount):
    model = random_model(seed)
    ours = masks_from_scores(criteria.magnitude(model), amount, scope="layer")
    reference = copy.deepcopy(model)
    for name in prunable(reference):
        torch_prune.l1_unstructured(reference.get_submodule(name.rsplit(".", 1)[0]), "weight", amount=amount)
    assert ours.equal(Masks.from_torch_prune(reference))


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("amount", [0.1, 0.5, 0.77, 0.95])
def test_global_scope_equals_global_unstructured_on_random_models(seed, amount):
    model = random_model(seed)
    ours = masks_from_scores(criteria.magnitude(model), amount, scope="global")
    reference = copy.deepcopy(model)
    params = [(reference.get_submodule(n.rsplit(".", 1)[0]), "weight") for n in prunable(reference)]
    torch_prune.global_unstructured(params, pruning_method=torch_prune.L1Unstructured, amount=amount)
    assert ours.equal(Masks.from_torch_prune(reference))


@pytest.mark.parametrize("shape", [(1,), (3,), (7, 3), (4, 5, 3), (2, 3, 3, 3), (10, 1)])
@pytest.mark.parametrize("sparsity", [0.0, 0.1, 1 / 3, 0.5, 0.625, 0.95, 1.0])
def test_exact_prune_counts(shape, sparsity):
    gen = torch.Generator().manual_seed(1)
    scores = {"a": torch.rand(shape, generator=gen), "b": torch.rand(5, 2, generator=gen)}
    layer = masks_from_scores(scores, sparsity, scope="layer")
    for name, s in scores.items():
        assert int((~layer[name]).sum()) == round(sparsity * s.numel())
    total = sum(s.numel() for s in scores.values())
    glob = masks_from_scores(scores, sparsity, scope="global")
    assert glob.count() == (total - round(sparsity * total), total)


def test_lowest_scores_are_the_ones_pruned():
    scores = {"w": torch.tensor([[0.3, -5.0, 2.0], [0.1, 4.0, 0.2]])}
    mask = masks_from_scores(scores, 0.5)["w"]
    assert mask.tolist() == [[True, False, True], [False, True, False]]


def test_already_pruned_entries_stay_pruned_and_count():
    scores = {"w": torch.arange(10.0)}
    previous = {"w": torch.tensor([True] * 9 + [False])}  # the highest score was pruned before
    mask = masks_from_scores(scores, 0.3, masks=previous)["w"]
    assert not mask[9] and int((~mask).sum()) == 3 and mask[2:9].all()
    # a target below what is already pruned keeps everything pruned (never revives)
    many = {"w": torch.tensor([False] * 5 + [True] * 5)}
    assert int((~masks_from_scores(scores, 0.2, masks=many)["w"]).sum()) == 5


def test_bad_sparsity_and_scope():
    scores = {"w": torch.rand(4)}
    for bad in (-0.1, 1.5, "half", None):
        with pytest.raises(ValueError, match="sparsity must"):
            masks_from_scores(scores, bad)
    with pytest.raises(ValueError, match="unknown scope 'local'; valid choices: global, layer"):
        masks_from_scores(scores, 0.5, scope="local")
    with pytest.raises(ValueError, match="NaN"):
        masks_from_scores({"w": torch.tensor([1.0, float("nan")])}, 0.5)


def test_model_without_prunable_layers():
    with pytest.raises(ValueError, match="no prunable layers.*ReLU"):
        prunable(nn.Sequential(nn.ReLU(), nn.Flatten()))


def test_prunable_is_weights_of_linear_and_conv_not_biases():
    assert prunable(random_model(0)) == ["0.weight", "3.weight", "5.weight", "7.weight"]


def test_apply_report_and_collapse():
    model = random_model(0)
    masks = masks_from_scores(criteria.magnitude(model), 0.6, scope="global")
    masks.apply(model)
    for name, mask in masks.items():
        assert (model.get_parameter(name)[~mask] == 0).all()
    report = masks.report()
    assert list(report.layer) == prunable(model) + ["total"]
    assert report.iloc[-1].sparsity == pytest.approx(masks.sparsity())
    collapsed = Masks({**masks, "7.weight": torch.zeros(2, 5, dtype=torch.bool)})
    assert collapsed.collapsed_layers() == ["7.weight"] and collapsed.report().iloc[-1].collapsed


def test_masks_are_explicit_not_inferred_from_zeros():
    model = random_model(0)
    with torch.no_grad():
        model[3].weight[0, 0] = 0.0  # an exactly-zero weight that nobody pruned
    masks = Masks.ones(model)
    assert masks["3.weight"][0, 0] and masks.density() == 1.0
    with pytest.raises(TypeError, match="bool"):
        Masks({"w": torch.ones(3)})
    with pytest.raises(ValueError, match="shape"):
        Masks({"3.weight": torch.ones(2, 2, dtype=torch.bool)}).apply(model)
    with pytest.raises(ValueError, match="names no parameter.*prunable parameters: 0.weight"):
        Masks({"1.weight": torch.ones(2, dtype=torch.bool)}).apply(model)


def test_torch_prune_round_trip():
    model = random_model(2)
    masks = masks_from_scores(criteria.random(model, seed=1), 0.7)
    exported = masks.to_torch_prune(copy.deepcopy(model))
    assert Masks.from_torch_prune(exported).equal(masks)
    for name, mask in masks.items():
        assert (exported.get_submodule(name.rsplit(".", 1)[0]).weight[~mask] == 0).all()
    # scores of a torch-pruned module are those of the weight it computes with: pruned entries score 0
    assert torch.equal(criteria.magnitude(exported)["3.weight"], (model[3].weight * masks["3.weight"]).abs())
    assert masks.apply(exported) is exported and torch.equal(exported[3].weight_orig[~masks["3.weight"]],
                                                                     torch.zeros(int((~masks["3.weight"]).sum())))
    with pytest.raises(ValueError, match="no torch.nn.utils.prune masks"):
        Masks.from_torch_prune(model)


def test_intersection():
    a = Masks({"w": torch.tensor([True, True, False])})
    b = Masks({"w": torch.tensor([True, False, True])})
    assert (a & b)["w"].tolist() == [True, False, False]


def test_saliency_scores(tiny_mlp):
    mags = criteria.magnitude(tiny_mlp)
    assert set(mags) == set(prunable(tiny_mlp))
    assert torch.equal(mags["1.weight"], tiny_mlp[1].weight.abs())
    torch.manual_seed(0)
    expected = torch.rand(1)
    torch.manual_seed(0)
    r1, r2, r3 = (criteria.random(tiny_mlp, seed=s) for s in (5, 5, 6))
    assert torch.equal(torch.rand(1), expected)  # global RNG untouched
    assert all(torch.equal(r1[n], r2[n]) for n in r1) and not torch.equal(r1["1.weight"], r3["1.weight"])
    with pytest.raises(ValueError, match="unknown method 'nosuch'"):
        ol.prune(tiny_mlp, None, 0.5, "nosuch")


def test_macs_count_weight_applications_by_hand():
    model = random_model(0)  # Conv1d(1, 3, 3) on length 8 -> 6 positions; then Linear 18x7, 7x5, 5x2
    dense = ol.core.masks.macs(model, (1, 8))
    assert dense.dense_macs.tolist() == [9 * 6, 18 * 7, 7 * 5, 5 * 2]
    assert dense.kept_macs.tolist() == dense.dense_macs.tolist()
    masks = masks_from_scores(criteria.magnitude(model), 0.5, scope="layer")
    kept = ol.core.masks.macs(model, (1, 8), masks)
    assert kept.kept_macs.tolist() == [int(masks[n].sum()) * p for n, p in zip(prunable(model), (6, 1, 1, 1))]
    lenet = ol.build("lenet5", ol.load("digits"))  # 2-D convolutions: 8x8 -> 8x8 -> pool 4x4 -> 4x4
    assert ol.core.masks.macs(lenet, (1, 8, 8)).dense_macs.tolist()[:2] == [6 * 25 * 64, 16 * 6 * 25 * 16]


def test_sparsity_is_the_target_whatever_the_scores():
    scores = {"w": torch.tensor([float("-inf"), 1.0, 2.0, 3.0])}
    assert ol.masks_from_scores(scores, 0.0)["w"].all()  # -inf is a low score, not "already pruned"
    assert ol.masks_from_scores(scores, 0.25)["w"].tolist() == [False, True, True, True]
    earlier = {"w": torch.tensor([True, True, True, False])}
    kept = ol.masks_from_scores(scores, 0.0, masks=earlier)["w"]  # pruned earlier: only what masks= says
    assert kept.tolist() == [True, True, True, False]
    assert ol.masks_from_scores(scores, 0.5, masks=earlier)["w"].tolist() == [False, True, True, False]
