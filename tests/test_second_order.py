"""Second-order comparison: settings run and pair on the seed, obs skipped above its limit with a reason,
claims filtered to present methods, cost and collapse tables; the published table holds the exact figures."""

import math

import pandas as pd
import pytest

from oneshot_lab.analysis import claims, findings, published
from oneshot_lab.analysis import second_order as tables
from oneshot_lab.studies import oneshot, second_order
from oneshot_lab.training.train import TrainConfig

RECIPE = TrainConfig(iterations=4, batch_size=32)


def _settings():
    return [second_order.Setting(name="small", dataset="synthetic", model="mlp", model_options={"widths": [8]},
                                 train=RECIPE),
            second_order.Setting(name="wide", dataset="synthetic", model="mlp", model_options={"widths": [16]},
                                 train=RECIPE, sparsities=(0.3, 0.5))]


def test_run_pairs_on_the_seed_and_skips_obs_above_its_limit():
    study = oneshot.OneShotConfig(methods=["magnitude/layer", "obs/global", "obc/layer"], sparsities=[0.5],
                                  score_options={"obs": {"max_weights": 300, "samples": 64},
                                                 "obc": {"samples": 64}})
    # small: 20*8 + 8*4 = 192 weights (obs runs); wide: 20*16 + 16*4 = 384 > 300 (obs skipped)
    result = second_order.run(_settings(), study, [0, 1], progress=False)
    one_shot = result.metrics[result.metrics.stage == "one_shot"]
    assert set(one_shot[one_shot.setting == "small"].method) == {"magnitude/layer", "obs/global", "obc/layer"}
    assert set(one_shot[one_shot.setting == "wide"].method) == {"magnitude/layer", "obc/layer"}
    assert set(one_shot[one_shot.setting == "small"].sparsity) == {0.5}
    assert set(one_shot[one_shot.setting == "wide"].sparsity) == {0.3, 0.5}  # the setting's own sparsities
    skipped = result.plan[~result.plan.runs]
    assert skipped[["setting", "method"]].values.tolist() == [["wide", "obs/global"]]
    assert "this model has 384 prunable weights, above max_weights=300" in skipped.reason.iloc[0]
    assert len(result.plan) == 2 * 3 and (result.plan[result.plan.runs].reason == "").all()
    # the same seed run alone gives the same records: methods are paired on the seed
    again = second_order.run(_settings()[:1], study, [1], progress=False)
    pd.testing.assert_frame_equal(
        result.metrics[(result.metrics.setting == "small") & (result.metrics.seed == 1)].reset_index(drop=True),
        again.metrics.reset_index(drop=True))
    reference = result.costs[result.costs.method == second_order.REFERENCE]
    assert len(reference) == 2 * 2 and (reference.prune_seconds > 0).all()
    costs = tables.cost_table(result.costs)
    assert set(costs.method) == {second_order.REFERENCE, "magnitude/layer", "obs/global", "obc/layer"}
    assert costs[(costs.setting == "small") & (costs.method == "obc/layer")].n.item() == 2
    layers = result.layers[result.layers.method == "obc/layer"]
    assert layers.reconstruction_error.notna().all()
    errors = tables.reconstruction(result.layers)
    assert set(errors.method) == {"obc/layer"} and (errors.n == 2).all()
    first = layers[(layers.setting == "small") & (layers.layer == "1.weight")].reconstruction_error.astype(float)
    row = errors[(errors.setting == "small") & (errors.layer == "1.weight")].iloc[0]
    assert row["mean"] == pytest.approx(first.mean())


def test_bad_settings_fail_before_work():
    study = oneshot.OneShotConfig(methods=["magnitude/layer"], sparsities=[0.5])
    with pytest.raises(ValueError, match="unknown model .resnet."):
        second_order.Setting(model="resnet")
    with pytest.raises(ValueError, match="names must be distinct"):
        second_order.run([_settings()[0], _settings()[0]], study, [0])
    with pytest.raises(ValueError, match="seeds"):
        second_order.run(_settings(), study, [0, 0])
    with pytest.raises(ValueError, match="none of the methods"):
        second_order.run(_settings()[1:], oneshot.OneShotConfig(
            methods=["obs/global"], sparsities=[0.5], score_options={"obs": {"max_weights": 10}}), [0])


def test_claims_keep_only_present_methods_and_evaluate_per_setting():
    chosen = claims.second_order(pd.DataFrame({"method": ["obc/layer", "magnitude/layer", "wanda/layer"]}))
    assert [(c.a, c.b) for c in chosen] == [("obc/layer", "magnitude/layer"), ("wanda/layer", "magnitude/layer"),
                                           ("obc/layer", "wanda/layer")]
    rows = [{"setting": s, "stage": "one_shot", "sparsity": 0.9, "seed": seed, "method": m, "test_accuracy": acc}
            for s in ("x", "y") for seed in range(3)
            for m, acc in (("obc/layer", 0.8 + 0.01 * seed), ("magnitude/layer", 0.5), ("wanda/layer", 0.6))]
    table = findings.evaluate(pd.DataFrame(rows), chosen)
    assert len(table) == 3 * 2 and set(table.verdict) == {"supported"}
    assert table.mean_difference.iloc[0] == pytest.approx(0.31)


def test_collapsed_counts_whole_layer_masks():
    layers = pd.DataFrame([
        {"setting": "s", "method": "obc/global", "sparsity": 0.9, "seed": seed, "layer": layer,
         "collapsed": seed == 1 and layer == "3.weight"} for seed in (0, 1) for layer in ("1.weight", "3.weight")])
    table = tables.collapsed(layers)
    assert table.to_dict("records") == [{"setting": "s", "method": "obc/global", "sparsity": 0.9, "seeds": 2,
                                         "seeds_with_collapse": 1, "collapsed_masks": 1, "layers": "3.weight"}]


def test_published_table_holds_the_cbs_figures():
    table = published.mnist_mlp()
    wide = table.pivot(index="sparsity", columns="method", values="published_accuracy")
    assert wide.loc[0.9].to_dict() == {"cbs": 93.1, "magnitude": 90.3, "woodfisher": 91.7}
    assert wide.loc[0.98].to_dict() == {"cbs": 55.5, "magnitude": 32.3, "woodfisher": 38.3}
    assert wide.loc[0.8].to_dict() == {"cbs": 93.9, "magnitude": 92.9, "woodfisher": 93.6}
    assert wide.loc[0.95].to_dict() == {"cbs": 88.9, "magnitude": 83.6, "woodfisher": 85.5}
    assert table.source.str.contains("Combinatorial Brain Surgeon").all()


def test_beside_puts_our_interval_next_to_the_published_figure():
    rows = [{"method": "magnitude/global", "sparsity": 0.9, "stage": "one_shot", "seed": s, "test_accuracy": acc}
            for s, acc in enumerate([0.80, 0.82, 0.84])]
    table = published.beside(pd.DataFrame(rows)).set_index(["sparsity", "method"])
    mine = table.loc[(0.9, "magnitude")]
    assert mine.our_accuracy == pytest.approx(82.0) and mine.n == 3
    assert mine.difference == pytest.approx(82.0 - 90.3)
    half = 4.302652729911275 * 2.0 / math.sqrt(3)  # t(0.975, 2) * s / sqrt(n), s = 2 points
    assert (mine.ci_low, mine.ci_high) == pytest.approx((82.0 - half, 82.0 + half))
    assert math.isnan(table.loc[(0.9, "cbs")].our_accuracy) and table.loc[(0.9, "cbs")].n == 0
    assert math.isnan(table.loc[(0.98, "magnitude")].our_accuracy)
    with pytest.raises(ValueError, match="unknown published method"):
        published.beside(pd.DataFrame(rows), match={"snip": "snip/global"})


def test_standard_settings_are_the_named_networks():
    chosen = second_order.standard(["mnist_mlp", "mnist1d_mlp"], RECIPE, mnist1d_sparsities=[0.9],
                                   mnist_sparsities=[0.8, 0.98], mlp_widths=[8])
    assert [(s.name, s.dataset, s.model, s.model_options, s.sparsities) for s in chosen] == [
        ("mnist_mlp", "mnist_subset", "mlp", {"widths": [40, 20]}, (0.8, 0.98)),
        ("mnist1d_mlp", "mnist1d", "mlp", {"widths": [8]}, (0.9,))]
    assert second_order.standard(["mnist_mlp"], RECIPE, mnist_dataset="mnist")[0].dataset == "mnist"
    with pytest.raises(ValueError, match="mnist_dataset"):
        second_order.standard(["mnist_mlp"], RECIPE, mnist_dataset="digits")
    with pytest.raises(ValueError, match="mnist_cnn"):
        second_order.standard(["mnist_cnn"], RECIPE)


def test_each_arm_of_a_claim_states_its_per_layer_densities():
    layers = pd.DataFrame({"setting": "s", "method": ["a/global"] * 4 + ["b/global"] * 4, "sparsity": 0.9,
                           "layer": ["1.weight", "3.weight"] * 4, "seed": [0, 0, 1, 1] * 2,
                           "density": [0.1, 0.5, 0.2, 0.5, 0.1, 0.1, 0.1, 0.1]})
    table = pd.DataFrame({"setting": ["setting=s, stage=one_shot, sparsity=0.9"], "a": ["a/global"], "b": ["b/global"]})
    out = tables.with_densities(table, layers)
    assert out.density_a[0] == "1.weight 15% · 3.weight 50%" and out.density_b[0] == "1.weight 10% · 3.weight 10%"
    with pytest.raises(ValueError, match="layers lacks column"):
        tables.arm_densities(layers.drop(columns="density"))


def test_the_reproduction_table_puts_every_method_with_its_config_beside_the_published_figure():
    from scipy import stats as sps

    values = [0.89, 0.905, 0.91]
    metrics = pd.DataFrame({"method": ["magnitude/global"] * 3 + ["obc/global"] * 3, "sparsity": 0.9,
                            "stage": "one_shot", "seed": [0, 1, 2] * 2, "test_accuracy": values + [0.92] * 3})
    plan = pd.DataFrame({"method": ["magnitude/global", "obc/global"], "config": ["no options", "samples=1024"]})
    out = published.reproduction(metrics, plan)
    mag = out[out.method == "magnitude/global"].iloc[0]
    low, high = sps.t.interval(0.95, 2, loc=100 * sum(values) / 3, scale=sps.sem([100 * v for v in values]))
    assert math.isclose(mag.ci_low, low) and math.isclose(mag.ci_high, high)
    assert mag.published_accuracy == 90.3 and mag.inside == (low <= 90.3 <= high) and mag.config == "no options"
    obc = out[out.method == "obc/global"].iloc[0]
    assert obc.config == "samples=1024" and math.isnan(obc.published_accuracy) and obc.published_method == ""
    assert set(out[out.method == ""].published_method) == {"woodfisher", "cbs"}  # published, not run here
    with pytest.raises(ValueError, match="reproduction needs"):
        published.reproduction(metrics, plan.drop(columns="config"))


def test_the_published_setting_runs_every_method_in_its_preset_and_says_so():
    from oneshot_lab.studies import published_mlp

    config = published_mlp.PublishedConfig(
        methods=("magnitude/global", "sparsegpt/global"), dataset="mnist_subset", seeds=(0,), sparsities=(0.9,),
        train=published_mlp.RECIPE.replace(iterations=5), score_options={"sparsegpt": {"samples": 32}})
    assert config.options() == {"magnitude": {}, "sparsegpt": {"samples": 32}}  # the preset's 1024, overridden
    comparison = published_mlp.run(config)
    assert set(comparison.metrics.stage) == {"dense", "one_shot"}  # one shot, no retraining
    assert set(comparison.plan.config) == {"no options", "samples=32, damp=0.01, block_size=128"}
    with pytest.raises(ValueError, match="dataset"):
        published_mlp.PublishedConfig(dataset="digits")
    with pytest.raises(ValueError, match="has no option 'bogus'"):
        published_mlp.PublishedConfig(methods=("magnitude/global",), score_options={"obc": {"bogus": 1}})


def test_the_wide_reproduction_table_puts_ours_first_with_interval_published_figure_and_config():
    metrics = pd.DataFrame({"method": ["magnitude/global"] * 3, "sparsity": 0.9, "stage": "one_shot",
                            "seed": [0, 1, 2], "test_accuracy": [0.89, 0.905, 0.91]})
    plan = pd.DataFrame({"method": ["magnitude/global"], "config": ["no options"]})
    wide = published.reproduction_wide(published.reproduction(metrics, plan))
    assert list(wide.method) == ["magnitude/global", "(cbs, published only)", "(woodfisher, published only)"]
    assert wide["90%"][0] == "90.2 [87.6, 92.8] / 90.3" and wide["90%"][1] == "— / 93.1"
    assert list(wide.config) == ["no options", "", ""]


def test_a_run_without_the_mnist_mlp_gets_the_published_figures_alone():
    empty = pd.DataFrame(columns=["method", "sparsity", "stage", "test_accuracy"])
    out = published.reproduction(empty, pd.DataFrame(columns=["method", "config"]))
    assert len(out) == 12 and out.method.eq("").all() and out.our_accuracy.isna().all()
    assert set(out.published_method) == {"magnitude", "woodfisher", "cbs"}
