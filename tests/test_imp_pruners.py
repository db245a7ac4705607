"""IMP with a weight-updating pruner (obc, sparsegpt, woodfisher, obs) in place of a criterion.

Oracle: a hand-written loop of train -> prune(masks=previous level, per-layer targets worked out from the
rate by hand) -> rewind -> retrain. Also: only the pruner's mask is kept, the calibration sample follows the
run's seed, and bad names, options and models are refused before anything trains.
"""

import copy
import re

import pytest
import torch

import oneshot_lab as ol
from oneshot_lab.studies.lottery import rewinding, ticket_study
from oneshot_lab.pruning.prune import prune

CONFIG = ol.TrainConfig(lr=1e-2, batch_size=64, iterations=40, eval_every=20, schedule="cosine")


def imp_config(**changes):
    """An IMPConfig of two levels at rate 0.4, the output layer at 0.2, with `changes`."""
    return rewinding.IMPConfig(**{"train": CONFIG, "levels": 2, "rate": 0.4, **changes})


@pytest.fixture()
def no_training(monkeypatch):
    """Any call of train.fit fails the test: the error must come before training."""
    def refuse(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(ol.training.train, "fit", refuse)


@pytest.mark.parametrize("method, scope", [("obc", "layer"), ("sparsegpt", "global"), ("woodfisher", "global")])
def test_imp_with_a_pruner_equals_the_hand_written_loop(synthetic, tiny_mlp, method, scope):
    names = ol.prunable(tiny_mlp)
    rates = {n: 0.2 if n == names[-1] else 0.4 for n in names}
    options = {"samples": 64}
    result = rewinding.imp(tiny_mlp, synthetic, imp_config(scope=scope, criterion=method, layer_rates={names[-1]: 0.2},
                                                         score_options={method: options}), progress=False)
    trained = copy.deepcopy(tiny_mlp)
    dense = ol.fit(trained, synthetic, CONFIG, snapshot_at=[0], progress=False)
    masks = ol.Masks.ones(tiny_mlp)
    for level in (1, 2):
        kept = {n: int(m.sum()) for n, m in masks.items()}
        left = {n: kept[n] - round(rates[n] * kept[n]) for n in names}  # the rate applies to what is kept
        alone = names if scope == "layer" else names[-1:]
        own = {n: (masks[n].numel() - left[n]) / masks[n].numel() for n in alone}
        pool = [n for n in names if n not in alone]
        pool_kept = sum(kept[n] for n in pool)
        pool_size = sum(masks[n].numel() for n in pool)
        pooled = (pool_size - (pool_kept - round(0.4 * pool_kept))) / pool_size if pool else 0.0
        masks = prune(trained, synthetic, pooled, method, scope, masks=masks, layer_sparsities=own,
                      seed=rewinding.derived_seed(0, level, rewinding.PRUNE_TAG), **options).masks
        net = rewinding.rewind(copy.deepcopy(tiny_mlp), dense.snapshots[0], masks)
        history = ol.fit(net, synthetic, CONFIG, masks=masks, progress=False)
        trained = net
        assert result.masks[level].equal(masks), level
        if scope == "layer":
            assert {n: int(m.sum()) for n, m in masks.items()} == left
        row = result.metrics[(result.metrics.level == level) & (result.metrics.condition == "ticket")].iloc[0]
        assert row.final_val_accuracy == history.final()["val_accuracy"]
        assert row.criterion == method


def test_only_the_pruners_mask_is_kept(synthetic, tiny_mlp, monkeypatch):
    starts, real_fit = [], ol.training.train.fit

    def recording_fit(model, dataset, config, masks=None, **kwargs):
        starts.append(ol.training.train.snapshot(model))
        return real_fit(model, dataset, config, masks=masks, **kwargs)

    monkeypatch.setattr(ol.training.train, "fit", recording_fit)
    result = rewinding.imp(tiny_mlp, synthetic, imp_config(levels=1, criterion="obc", retrain="finetune",
                                                         score_options={"obc": {"samples": 64}}), progress=False)
    monkeypatch.setattr(ol.training.train, "fit", real_fit)
    trained = copy.deepcopy(tiny_mlp)
    ol.fit(trained, synthetic, CONFIG, progress=False)
    for name, mask in result.masks[1].items():  # fine-tuning starts from the trained weights x mask
        assert torch.equal(starts[1][name], trained.get_parameter(name).detach() * mask)


def test_the_calibration_sample_follows_the_run_seed(synthetic, tiny_mlp):
    def level_one(run_seed, **options):
        config = imp_config(levels=1, criterion="obc", seed=run_seed,
                            score_options={"obc": {"samples": 16, **options}})
        return rewinding.imp(tiny_mlp, synthetic, config, progress=False).masks[1]

    assert level_one(0).equal(level_one(0))
    assert not level_one(0).equal(level_one(1))  # the training run is the same; only the calibration sample moved


def test_an_unknown_criterion_lists_the_criteria_and_the_pruners():
    with pytest.raises(ValueError, match="unknown method 'obcx'; valid choices: magnitude, random, .*, obs, "
                                         "woodfisher, obc, sparsegpt, wanda, chita, chita_pp "
                                         "\\(a method of your own"):
        imp_config(criterion="obcx")


@pytest.mark.parametrize("options, message", [
    ({"obc": {"damp": -1}}, "damp must be a number >= 0"),
    ({"obc": {"batch": 4}}, "method 'obc' has no option 'batch'; its options: samples, damp"),
    ({"woodfisher": {"damp": 0}}, "damp must be a number > 0"),
    ({"sparsegpt": {"block_size": 0}}, "block_size must be an integer in [1, 100000]"),
])
def test_bad_pruner_options_are_refused_by_the_config(options, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        imp_config(criterion="obc", score_options=options)


def test_a_model_the_pruner_cannot_take_is_refused_before_training(synthetic, tiny_mlp, no_training):
    config = imp_config(criterion="obs", score_options={"obs": {"max_weights": 100}})
    with pytest.raises(ValueError, match="this model has 480 prunable weights, above max_weights=100"):
        rewinding.imp(tiny_mlp, synthetic, config, progress=False)
    study = ticket_study.TicketStudy(imp=config, late_rewind=5, instability_level=1,
                                     instability=ol.studies.lottery.stability.InstabilityConfig(train=CONFIG, rewind_iterations=[0]))
    with pytest.raises(ValueError, match="^controls: method 'obs' cannot prune this model: it inverts"):
        study.check(tiny_mlp, synthetic)
