"""The claim builders of notebooks 01, 02 and 05 return, in order, the claims the notebooks built by hand (the
expected lists are written out from the notebooks' former cells), filtered to what the records hold."""

import pandas as pd
import pytest

import oneshot_lab as ol

from oneshot_lab.analysis import claims
from oneshot_lab.analysis.findings import Claim
from oneshot_lab.studies.oneshot import OneShotConfig
from oneshot_lab.training.train import TrainConfig

STAGES = ["one_shot", "finetuned"]
BY = ("stage", "sparsity")


def _metrics(methods, stages):
    """A records table with one row per (method, stage): only the values matter to the builders."""
    return pd.DataFrame([{"method": m, "stage": s} for m in methods for s in stages])


def _study(control_methods=("magnitude/global",), from_init=True):
    return OneShotConfig(methods=["magnitude/global", "magnitude/layer", "random/layer"], sparsities=[0.5, 0.9],
                         finetune=TrainConfig(epochs=1), budgets=[2, 20], control_sparsities=[0.9],
                         from_init=TrainConfig() if from_init else None, control_methods=control_methods)


ONE_SHOT_01 = [
    Claim(claim="magnitude (global) beats a random mask", a="magnitude/global", b="random/layer", by=BY,
          where={"stage": STAGES}),
    Claim(claim="global beats layer-wise magnitude", a="magnitude/global", b="magnitude/layer", by=BY,
          where={"stage": STAGES}),
    Claim(claim="fine-tuning recovers accuracy (global magnitude)", a="finetuned", b="one_shot", column="stage",
          where={"method": "magnitude/global"}),
]


def test_magnitude_pruning_claims_with_the_default_controls():
    metrics = _metrics(["magnitude/global", "magnitude/layer", "random/layer"],
                       ["dense", *STAGES, "finetuned_2ep", "finetuned_20ep", "from_init"])
    # random/layer is not a control method: no budget claims; from_init for the one control method
    assert claims.magnitude_pruning(metrics, _study()) == ONE_SHOT_01 + [
        Claim(claim="magnitude/global: training from the initialisation beats the short fine-tune", a="from_init",
              b="finetuned", column="stage", where={"method": "magnitude/global", "sparsity": [0.9]})]


def test_magnitude_pruning_budget_claims_sorted_and_filtered_to_the_records():
    metrics = _metrics(["magnitude/global", "random/layer"], ["dense", *STAGES, "finetuned_2ep", "finetuned_20ep"])
    # control_methods empty: every method is controlled, so magnitude vs random at each longer budget (stages in
    # sorted order); the from-init claims loop over control_methods, so there are none; no magnitude/layer records
    expected = [ONE_SHOT_01[0], ONE_SHOT_01[2]] + [
        Claim(claim=f"magnitude beats random at the {stage} budget", a="magnitude/global", b="random/layer",
              by=("sparsity",), where={"stage": stage}) for stage in ("finetuned_20ep", "finetuned_2ep")]
    assert claims.magnitude_pruning(metrics, _study(control_methods=())) == expected
    assert claims.magnitude_pruning(metrics[metrics.stage != "finetuned"], _study(from_init=False)) == \
        [ONE_SHOT_01[0]]  # no finetuned rows: neither the recovery nor a budget claim is testable


def test_obd_saliency_claims_feature_ggn_and_keep_layer_pairs_only_where_recorded():
    methods = ["obd_ggn/global", "obd_ggn/layer", "magnitude/global", "magnitude/layer", "obd_hessian/global",
               "obd_fisher/global", "taylor/global", "random/layer", "random/global",
               "iterative obd_ggn/global", "iterative magnitude/global"]
    where = {"stage": STAGES}
    expected = [
        Claim(claim="OBD (obd_ggn) beats magnitude, global", a="obd_ggn/global", b="magnitude/global", by=BY,
              where=where),
        Claim(claim="OBD (obd_ggn) beats magnitude, layer", a="obd_ggn/layer", b="magnitude/layer", by=BY,
              where=where),
        Claim(claim="obd_hessian beats obd_ggn, global", a="obd_hessian/global", b="obd_ggn/global", by=BY,
              where=where),
        Claim(claim="obd_fisher beats obd_ggn, global", a="obd_fisher/global", b="obd_ggn/global", by=BY,
              where=where),
        Claim(claim="first-order Taylor beats magnitude, global", a="taylor/global", b="magnitude/global", by=BY,
              where=where),
        Claim(claim="magnitude beats a random mask, global", a="magnitude/global", b="random/layer", by=BY,
              where=where),
        Claim(claim="iterative obd_ggn beats iterative magnitude", a="iterative obd_ggn/global",
              b="iterative magnitude/global", where={"stage": "iterative"}),
    ]
    assert claims.obd_saliency(_metrics(methods, ["one_shot"]), ["hessian", "ggn", "fisher"]) == expected
    without_layer = _metrics([m for m in methods if m != "obd_ggn/layer"], ["one_shot"])
    assert claims.obd_saliency(without_layer, ["hessian", "ggn", "fisher"]) == expected[:1] + expected[2:]


def test_obd_saliency_without_ggn_features_the_first_curvature_but_hutchinson():
    methods = ["obd_fisher/global", "obd_hutchinson/global", "magnitude/global"]
    assert claims.obd_saliency(_metrics(methods, ["one_shot"]), ["hutchinson", "fisher"]) == [
        Claim(claim="OBD (obd_fisher) beats magnitude, global", a="obd_fisher/global", b="magnitude/global", by=BY,
              where={"stage": STAGES}),
        Claim(claim="obd_hutchinson beats obd_fisher, global", a="obd_hutchinson/global", b="obd_fisher/global",
              by=BY, where={"stage": STAGES})]
    with pytest.raises(ValueError, match="unknown or no curvatures"):
        claims.obd_saliency(_metrics(methods, ["one_shot"]), ["lbfgs"])


def test_second_order_claims_in_table_order_for_the_methods_that_ran_never_across_scopes():
    methods = ["obs/global", "obd/global", "magnitude/global", "wanda/layer", "obc/layer", "obc/global"]
    chosen = claims.second_order(_metrics(methods, ["dense"]))
    by = ("setting", "stage", "sparsity")
    assert [(c.a, c.b) for c in chosen] == [("obc/layer", "wanda/layer"), ("obc/global", "magnitude/global"),
                                            ("obs/global", "obd/global"), ("obs/global", "magnitude/global"),
                                            ("obd/global", "magnitude/global")]
    assert all(c.a.split("/")[1] == c.b.split("/")[1] for c in chosen)  # wanda/layer is never set against obc/global
    assert chosen[2] == Claim(claim="obs beats obd (the full Fisher with updates against its diagonal without; global "
                                    "scope: one count over all layers, each arm's per-layer densities its own)",
                              a="obs/global", b="obd/global", by=by, where={"stage": STAGES})
    assert "layer scope: the same count in every layer" in chosen[0].claim
    assert claims.second_order(_metrics(["obs/global", "obd/global"], ["dense"]), stages=["one_shot"])[0].where == \
        {"stage": ["one_shot"]}


def test_bad_records_and_studies_are_value_errors():
    with pytest.raises(ValueError, match="metrics lacks column.*'method'"):
        claims.second_order(pd.DataFrame({"stage": ["one_shot"]}))
    with pytest.raises(ValueError, match="metrics must be a pandas DataFrame"):
        claims.second_order([{"method": "obs/global"}])
    with pytest.raises(ValueError, match="study must be a OneShotConfig"):
        claims.magnitude_pruning(_metrics(["magnitude/global"], STAGES), {"methods": ["magnitude/global"]})
    with pytest.raises(ValueError, match="metrics lacks column 'stage'"):
        claims.magnitude_pruning(pd.DataFrame({"method": ["magnitude/global"]}), _study())


def test_recipe_interaction_is_the_difference_of_paired_differences():
    import numpy as np

    rng = np.random.default_rng(0)
    def records(edge):
        return pd.DataFrame([{"stage": stage, "sparsity": 0.9, "seed": seed, "method": method,
                              "test_accuracy": 0.5 + rng.normal(0, 0.01) + (edge if method == "obd/global" else 0)}
                             for stage in ("one_shot", "finetuned") for seed in range(4)
                             for method in ("obd/global", "magnitude/global")])
    first, second = records(0.05), records(0.0)
    parts = ol.analysis.claims.recipe_interaction(first, second, "obd/global", "magnitude/global", ("wd", "no wd"))
    family = ol.findings.combined(parts, floor=0.01)
    seeds = family.seeds[family.seeds.value == "advantage"]
    for stage in ("one_shot", "finetuned"):
        def edge(frame):
            rows = frame[frame.stage == stage].pivot_table(index="seed", columns="method", values="test_accuracy")
            return (rows["obd/global"] - rows["magnitude/global"]).to_numpy()
        got = seeds[seeds.setting == f"stage={stage}, sparsity=0.9"]["difference"].to_numpy()
        assert got == pytest.approx(edge(first) - edge(second), abs=1e-12)
    assert set(family.findings.claim) == {"obd/global beats magnitude/global, no wd",
                                          "obd/global's advantage over magnitude/global is larger with wd than with no wd"}
    assert (family.findings.verdict[family.findings.claim.str.contains("advantage")] == "supported").all()
