"""One-shot studies: rows per method/sparsity/stage, one metrics row shape, untouched input model, validation first."""

import math

import pandas as pd
import pytest
import torch

import oneshot_lab as ol
from oneshot_lab.studies import oneshot
from oneshot_lab.training.train import TrainConfig


def test_one_shot_rows_and_model_untouched(synthetic, tiny_mlp):
    before = {k: v.clone() for k, v in tiny_mlp.state_dict().items()}
    config = oneshot.OneShotConfig(methods=["magnitude/global", "random/layer"], sparsities=[0.5, 0.9],
                                   finetune=TrainConfig(iterations=5))
    metrics, layers = oneshot.one_shot(tiny_mlp, synthetic, config, progress=False)
    assert all(torch.equal(v, tiny_mlp.state_dict()[k]) for k, v in before.items())
    assert len(metrics) == 1 + 2 * 2 * 2 and set(metrics.stage) == {"dense", "one_shot", "finetuned"}
    pruned = metrics[metrics.stage == "one_shot"]
    assert pruned.density.round(2).tolist() == [0.5, 0.1, 0.5, 0.1]
    assert len(layers) == 2 * 2 * 3 and set(layers.layer) == {"1.weight", "3.weight", "5.weight"}
    dense = metrics[metrics.stage == "dense"].iloc[0]
    assert dense.macs > 0 and dense.speedup == 1.0 and dense.density == 1.0  # dense rows carry every column


def test_metrics_row_has_one_shape_for_dense_and_pruned(synthetic, tiny_mlp):
    from oneshot_lab.core.masks import masks_from_scores
    from oneshot_lab.pruning.criteria import magnitude

    total = oneshot.dense_macs(tiny_mlp, synthetic)
    dense = oneshot.metrics_row(tiny_mlp, synthetic, None, total, "dense")
    masks = masks_from_scores(magnitude(tiny_mlp), 0.5, "layer")
    pruned = oneshot.metrics_row(tiny_mlp, synthetic, masks, total, "one_shot", "magnitude/layer", "magnitude",
                                 "layer", 0.5)
    assert list(dense) == list(pruned)
    assert pruned["speedup"] == pytest.approx(total / pruned["macs"]) and pruned["density"] == masks.density()


@pytest.mark.parametrize("changes,match", [
    (dict(methods=["magnitude"]), "bad method 'magnitude'"),
    (dict(methods=["nosuch/global"]), "unknown method .nosuch. in"),
    (dict(methods=["magnitude/local"]), "scope in"),
    (dict(methods=[]), "methods must not be empty"),
    (dict(methods="magnitude/global"), "methods must be a list"),
    (dict(sparsities=[0.5, 1.2]), r"sparsities\[1\] must be a number in \[0.0, 1.0\]"),
    (dict(sparsities=[0.5, True]), r"sparsities\[1\] must be a finite number"),
    (dict(sparsities=[]), "sparsities must not be empty"),
    (dict(report_sparsity=0.8), r"report_sparsity 0.8 is not one of the sparsities \[0.5, 0.9\]"),
    (dict(score_options={"obd": {"probes": 0}}), r"probes must be an integer in \[1, 10000000\]"),
    (dict(finetune=5), "finetune must be a TrainConfig"),
    (dict(from_init="dense"), "from_init must be a TrainConfig"),
    (dict(budgets=[20]), r"budgets \[20\] need a finetune recipe"),
    (dict(finetune=TrainConfig(), budgets=[0]), r"budgets\[0\] must be an integer in \[1, 100000\]"),
    (dict(control_sparsities=[0.7]), r"control_sparsities \[0.7\] are not among the sparsities"),
    (dict(control_methods=["random/layer"]), r"control_methods \['random/layer'\] are not among the methods"),
    (dict(methods=["obc/layer"], score_options={"obc": {"damp": -1}}), "damp must be"),
    (dict(methods=["obc/layer"], score_options={"obc": {"block": 4}}), "method 'obc' has no option 'block'"),
])
def test_bad_config_fails_before_work(changes, match):
    with pytest.raises(ValueError, match=match):
        oneshot.OneShotConfig(**{"methods": ["magnitude/global"], "sparsities": [0.5, 0.9], **changes})


def test_best_on_validation_reads_validation_only():
    metrics = pd.DataFrame([
        {"stage": "dense", "method": "dense", "sparsity": 0.0, "val_accuracy": 0.9, "test_accuracy": 0.8},
        {"stage": "one_shot", "method": "a", "sparsity": 0.5, "val_accuracy": 0.7, "test_accuracy": 0.1},
        {"stage": "one_shot", "method": "b", "sparsity": 0.5, "val_accuracy": 0.6, "test_accuracy": 0.9},
        {"stage": "finetuned", "method": "b", "sparsity": 0.5, "val_accuracy": 0.95, "test_accuracy": 0.9},
    ])
    best = oneshot.best_on_validation(metrics)
    assert best.method.tolist() == ["dense", "a"] and best.test_accuracy.tolist() == [0.8, 0.1]
    with pytest.raises(ValueError, match="no rows of stage 'iterative'"):
        oneshot.best_on_validation(metrics, stage="iterative")


def test_curvature_names_are_checked():
    from oneshot_lab.pruning import curvature
    assert curvature.check_names(["ggn", "hessian"]) == ["ggn", "hessian"]
    with pytest.raises(ValueError, match="unknown or no curvatures \\['diag'\\]; valid curvatures: hessian"):
        curvature.check_names(["ggn", "diag"])


def test_agreement_spearman_and_jaccard_against_the_reference():
    magnitude = {"a": torch.arange(1.0, 9.0), "b": torch.full((4,), 0.01) * torch.arange(1.0, 5.0)}
    scores = {"magnitude": magnitude, "reversed": {n: -s for n, s in magnitude.items()}}
    table = oneshot.agreement(scores, "magnitude", 0.25, scope="global")
    assert list(table.columns) == ["criterion", "parameter", "spearman_vs_magnitude", "kept_jaccard"]
    by = table.set_index(["criterion", "parameter"])
    assert by.loc[("magnitude", "a"), "spearman_vs_magnitude"] == pytest.approx(1.0)
    assert by.loc[("reversed", "a"), "spearman_vs_magnitude"] == pytest.approx(-1.0)
    assert by.loc[("magnitude", "a"), "kept_jaccard"] == 1.0
    # 3 of 12 pruned globally: magnitude drops 3 of b, reversed drops the 3 largest of a
    assert by.loc[("reversed", "a"), "kept_jaccard"] == pytest.approx(5 / 8)
    assert by.loc[("reversed", "b"), "kept_jaccard"] == pytest.approx(1 / 4)
    emptied = oneshot.agreement({"magnitude": magnitude}, "magnitude", 4 / 12)
    assert math.isnan(emptied.set_index("parameter").loc["b", "kept_jaccard"])  # both masks empty b
    with pytest.raises(ValueError, match="reference 'taylor' is not among the scores"):
        oneshot.agreement(scores, "taylor", 0.5)
    with pytest.raises(ValueError):
        oneshot.agreement(scores, "magnitude", 1.5)



@pytest.mark.parametrize("call, match", [
    (lambda: oneshot.global_and_layer("magnitude", []), "criteria must be a list"),
    (lambda: oneshot.global_and_layer(["magnitude", "magnitude"], []), "must not repeat"),
    (lambda: oneshot.global_and_layer(["magnitude"], ["taylor"]), "unknown layer_criteria"),
    (lambda: oneshot.best_on_validation([1]), "metrics must be a DataFrame"),
])
def test_helpers_reject_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_timed_diagonals_check_everything_before_computing(synthetic, tiny_mlp, monkeypatch):
    from oneshot_lab.pruning import curvature

    calls = []
    monkeypatch.setattr(curvature, "diagonal", lambda *a, **k: calls.append(a))
    for bad, match in [(dict(curvatures="ggn"), "curvatures must be a list"),
                       (dict(curvatures=["ggn", "hutchinson"], probes=0), r"probes must be an integer in \[1, 10000000\]"),
                       (dict(curvatures=["ggn", "ggn"]), "must not repeat"),
                       (dict(curvatures=["ggn"], samples=0), r"samples must be an integer in \[1, 10000000\]")]:
        with pytest.raises(ValueError, match=match):
            curvature.timed_diagonals(tiny_mlp, synthetic, **bad)
    assert calls == []


def test_pruners_are_methods_with_the_masks_and_weights_of_obs_prune(synthetic, tiny_mlp):

    config = oneshot.OneShotConfig(methods=["obc/layer", "sparsegpt/global"], sparsities=[0.5, 0.8],
                                   score_options={"obc": {"samples": 64}}, seed=3)
    metrics, layers = oneshot.one_shot(tiny_mlp, synthetic, config, progress=False)
    expected = ol.prune(tiny_mlp, synthetic, 0.8, "obc", "layer", samples=64, seed=3)
    row = metrics[(metrics.method == "obc/layer") & (metrics.sparsity == 0.8)].iloc[0]
    assert row.test_accuracy == oneshot.split_metrics(expected.model, synthetic)["test_accuracy"]
    mine = layers[(layers.method == "obc/layer") & (layers.sparsity == 0.8)]
    assert mine.kept.tolist() == [int(m.sum()) for m in expected.masks.values()]
    assert mine.reconstruction_error.tolist() == pytest.approx(expected.table().error.tolist())
    assert layers[layers.method == "sparsegpt/global"].reconstruction_error.notna().all()


def test_budget_and_from_init_controls(synthetic, tiny_mlp):
    from oneshot_lab.core.models import build
    from oneshot_lab.core.masks import masks_from_scores
    from oneshot_lab.pruning.criteria import magnitude
    from oneshot_lab.training.train import fit

    initial = build("mlp", synthetic, seed=0, widths=(16, 8))
    recipe = TrainConfig(iterations=6, eval_every=3)
    config = oneshot.OneShotConfig(methods=["magnitude/layer", "random/layer"], sparsities=[0.5, 0.9],
                                   finetune=recipe, budgets=[2], from_init=recipe.replace(iterations=9),
                                   control_sparsities=[0.9], control_methods=["magnitude/layer"])
    with pytest.raises(ValueError, match="pass initial="):
        oneshot.one_shot(tiny_mlp, synthetic, config, progress=False)
    metrics, _ = oneshot.one_shot(tiny_mlp, synthetic, config, progress=False, initial=initial)
    stages = metrics[metrics.method != "dense"].groupby(["method", "sparsity"]).stage.apply(sorted).to_dict()
    assert stages[("magnitude/layer", 0.5)] == stages[("random/layer", 0.9)] == ["finetuned", "one_shot"]
    assert stages[("magnitude/layer", 0.9)] == ["finetuned", "finetuned_2ep", "from_init", "one_shot"]
    assert metrics.set_index("stage").loc["from_init", "budget_iterations"] == 9
    # the from-init control is the mask on the initial weights, trained by the given recipe
    masks = masks_from_scores(magnitude(tiny_mlp), 0.9, "layer")
    oracle = masks.apply(build("mlp", synthetic, seed=0, widths=(16, 8)))
    fit(oracle, synthetic, recipe.replace(iterations=9), masks=masks, progress=False)
    row = metrics[metrics.stage == "from_init"].iloc[0]
    assert row.test_accuracy == oneshot.split_metrics(oracle, synthetic)["test_accuracy"]


def test_replicate_pairs_every_method_on_the_seed():
    recipe = TrainConfig(iterations=4, batch_size=32)
    study = oneshot.OneShotConfig(methods=["magnitude/global", "random/layer"], sparsities=[0.5])
    first = oneshot.replicate("synthetic", "mlp", recipe, study, [0, 1], {"widths": [8]}, workers=0)
    again = oneshot.replicate("synthetic", "mlp", recipe, study, [1], {"widths": [8]}, workers=0)
    spawned = oneshot.replicate("synthetic", "mlp", recipe, study, [0, 1], {"widths": [8]}, workers=2)
    pd.testing.assert_frame_equal(first.metrics, spawned.metrics)  # bit-identical whatever the workers
    assert sorted(set(first.metrics.seed)) == [0, 1] and set(first.costs.method) == set(study.methods)
    pd.testing.assert_frame_equal(first.metrics[first.metrics.seed == 1].reset_index(drop=True),
                                  again.metrics.reset_index(drop=True))
    with pytest.raises(ValueError, match="seeds"):
        oneshot.replicate("synthetic", "mlp", recipe, study, [0, 0], progress=False)
    with pytest.raises(ValueError, match="unknown model 'nosuch'|model"):
        oneshot.replicate("synthetic", "nosuch", recipe, study, [0, 1], workers=2)


def test_a_bad_worker_count_is_named(monkeypatch):
    from oneshot_lab.util import parallel

    monkeypatch.setenv("ONESHOT_LAB_WORKERS", "two")
    with pytest.raises(ValueError, match=r"ONESHOT_LAB_WORKERS must be a whole number in \[1, 1024\].*'two'"):
        parallel.default_workers(5)
    monkeypatch.setenv("ONESHOT_LAB_WORKERS", "3")
    assert parallel.default_workers(5) == 3 and parallel.default_workers(2) == 2
    with pytest.raises(ValueError, match=r"workers must be an integer in \[0, 1024\]"):
        parallel.map_jobs(print, [(1,)], workers=-1)


def test_default_workers_balance_uneven_jobs_over_the_cores(monkeypatch):
    from oneshot_lab.util import parallel

    monkeypatch.delenv("ONESHOT_LAB_WORKERS", raising=False)
    monkeypatch.setattr(parallel.os, "cpu_count", lambda: 2)
    assert [parallel.default_workers(j) for j in (1, 2, 3, 4, 5, 8, 9, 10)] == [1, 2, 3, 2, 5, 2, 2, 2]


def test_the_worker_pool_is_kept_between_calls_and_rebuilt_after_close():
    from oneshot_lab.util import checks, parallel

    args = [("n", 1), ("n", 2), ("n", 3)]
    assert parallel.map_jobs(checks.integer, args, workers=2) == [1, 2, 3]
    first = parallel.POOL["pool"]
    assert parallel.map_jobs(checks.integer, args, workers=2) == [1, 2, 3]
    assert parallel.POOL["pool"] is first
    parallel.close()
    assert "pool" not in parallel.POOL
    assert parallel.map_jobs(checks.integer, args, workers=2) == [1, 2, 3]
    parallel.close()


def test_a_dead_worker_does_not_break_the_next_call():
    import os
    import signal

    from oneshot_lab.util import checks, parallel

    args = [("n", 1), ("n", 2), ("n", 3)]
    assert parallel.map_jobs(checks.integer, args, workers=2) == [1, 2, 3]
    for pid in list(parallel.POOL["pool"]._processes):  # idle workers ended, as by an interrupt
        os.kill(pid, signal.SIGINT)
    assert parallel.map_jobs(checks.integer, args, workers=2) == [1, 2, 3]
    parallel.close()


def test_replicate_fine_tunes_follow_the_replicate_seed():
    """The fine-tune's data order is the replicate seed's, whatever seed its recipe was written with: a sweep
    run with seed s and seeds [0] repeats exactly notebook 01's replicate s."""
    train = TrainConfig(iterations=20, batch_size=16, lr=1e-2, eval_every=10)
    tables = []
    for written in (0, 99):
        study = oneshot.OneShotConfig(methods=("magnitude/global",), sparsities=(0.5,),
                                         finetune=train.replace(iterations=12, seed=written),
                                         from_init=train.replace(seed=written), control_sparsities=(0.5,))
        result = oneshot.replicate("synthetic", "mlp", train.replace(seed=written), study, [5], {"widths": (8,)},
                                      workers=0, progress=False)
        tables.append(result.metrics)
    assert set(tables[0].stage) == {"dense", "one_shot", "finetuned", "from_init"}
    assert tables[0].equals(tables[1])


def test_global_and_layer_methods():
    """Every criterion globally, the chosen ones layer-wise too; a layer criterion outside the list is refused."""
    assert oneshot.global_and_layer(["magnitude", "taylor"], ["magnitude"]) == [
        "magnitude/global", "taylor/global", "magnitude/layer"]
    assert oneshot.global_and_layer(["magnitude"], []) == ["magnitude/global"]
    with pytest.raises(ValueError, match="random"):
        oneshot.global_and_layer(["magnitude"], ["random"])


def test_dense_layers_stay_dense_and_the_sparsity_applies_to_the_others(synthetic, tiny_mlp):
    last = ol.prunable(tiny_mlp)[-1]
    config = oneshot.OneShotConfig(methods=("magnitude/global", "obc/layer"), sparsities=(0.8,), dense_layers=(last,))
    _, layers = oneshot.one_shot(tiny_mlp, synthetic, config, progress=False)
    kept = layers[layers.layer == last]
    assert (kept.density == 1.0).all() and len(kept) == 2
    others = layers[layers.layer != last]
    for method, group in others.groupby("method"):
        assert round(0.8 * group.entries.sum()) == (group.entries - group.kept).sum(), method
    with pytest.raises(ValueError, match="'nope.weight', not a prunable parameter"):
        oneshot.one_shot(tiny_mlp, synthetic, config.replace(dense_layers=("nope.weight",)), progress=False)
