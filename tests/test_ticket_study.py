"""The lottery-ticket study config: every part validated together before training; replicates by seed."""

import pandas as pd
import pytest

import oneshot_lab as ol
from oneshot_lab.studies.lottery import rewinding, stability, ticket_study

CONFIG = ol.TrainConfig(lr=1e-2, batch_size=64, iterations=60, eval_every=20, schedule="cosine")
CONTROLS = ["reinit", "random_mask", "shuffled_mask"]


def study(**changes):
    """A small valid study with `changes` applied to its fields (imp_* and instability_* go to the parts)."""
    imp = {k[4:]: changes.pop(k) for k in list(changes) if k.startswith("imp_")}
    unstable = {k[12:]: changes.pop(k) for k in list(changes) if k.startswith("instability_") and k != "instability_level"}
    return ticket_study.TicketStudy(
        imp=rewinding.IMPConfig(**{"train": CONFIG, "levels": 2, "rate": 0.3, "controls": CONTROLS, **imp}),
        instability=stability.InstabilityConfig(**{"train": CONFIG, "rewind_iterations": [0, 20], "points": 3,
                                                    **unstable}),
        **{"late_rewind": 20, "retrain_modes": ["lr_rewind", "finetune"], "instability_level": 2,
           "seed_offsets": [0, 1], "match_tolerance": 0.02, **changes})


def test_a_good_study_passes_and_names_its_experiments(synthetic):
    good = study()
    good.check(ol.build("mlp", synthetic, widths=(8,)), synthetic)
    assert list(good.experiments()) == ["controls", "late_rewind", "retrain_lr_rewind", "retrain_finetune"]
    assert good.experiments()["late_rewind"].rewind_iteration == 20
    assert good.experiments()["late_rewind"].controls == ()
    assert study(seed=10).seeds == [10, 11]


@pytest.mark.parametrize("change, message", [
    (dict(retrain_modes=["weight_rewind", "bogus"]), "unknown retrain_modes\\[1\\] 'bogus'; valid choices: weight_rewind"),
    (dict(retrain_modes=["lr_rewind", "lr_rewind"]), "must not repeat"),
    (dict(retrain_modes='["lr_rewind"]'), "text, not a list"),
    (dict(imp_controls=["reinit", "nope"]), "unknown control 'nope'"),
    (dict(late_rewind=-1), "late_rewind"),
    (dict(instability_rewind_iterations=[]), "must not be empty"),
    (dict(instability_level=3), r"instability_level must be an integer in \[0, 2\]"),
    (dict(instability_points=1), "points must be"),
    (dict(imp_criterion="size"), "unknown method 'size'"),
    (dict(imp_rate=1.5), "rate must be"),
    (dict(seed_offsets=[0, 0]), "must not repeat"),
    (dict(seed_offsets=[]), "must not be empty"),
    (dict(seed="0"), "seed must be an integer"),
    (dict(seed=2**32), "seed must be an integer in"),
    (dict(match_tolerance=-0.1), "match_tolerance"),
])
def test_bad_parts_are_named(change, message):
    with pytest.raises(ValueError, match=message):
        study(**change)


@pytest.mark.parametrize("change, message", [
    (dict(late_rewind=60), r"late_rewind: rewind_iteration must be an int in \[0, 60\)"),
    (dict(instability_rewind_iterations=[0, 60]), r"rewind_iterations must lie in \[0, 60\)"),
    (dict(imp_layer_rates={"9.weight": 0.1}), "controls: layer_rates names unknown layers"),
])
def test_checks_against_the_model_and_data(synthetic, change, message):
    with pytest.raises(ValueError, match=message):
        study(**change).check(ol.build("mlp", synthetic, widths=(8,)), synthetic)


def test_replicates_equal_single_runs_and_tables_concatenate(synthetic):
    small = study(imp_levels=1, instability_level=1, retrain_modes=["lr_rewind"])
    results, metrics = ticket_study.run(small, "controls", "mlp", synthetic, {"widths": [8]}, progress=False)
    assert list(results) == [0, 1] and set(metrics.seed) == {0, 1} and set(metrics.experiment) == {"controls"}
    alone = rewinding.imp(ol.build("mlp", synthetic, seed=1, widths=[8]), synthetic,
                        small.imp.replace(train=CONFIG.replace(seed=1), seed=1), progress=False)
    pd.testing.assert_frame_equal(results[1].metrics, alone.metrics, check_exact=True)
    _, modes = ticket_study.run(small, "retrain_modes", "mlp", synthetic, {"widths": [8]}, progress=False)
    assert list(modes.retrain.unique()) == ["none", "lr_rewind"] and len(modes) == 2 * 2
    layers = ticket_study.combined(results, "layers")
    assert set(layers.seed) == {0, 1} and {"level", "condition", "layer", "kept", "collapsed"} <= set(layers.columns)
    table = rewinding.matching(results, ["ticket", "reinit"], tolerance=1.0)
    assert list(table.columns[:3]) == ["seed", "condition", "sparsest_matching_level"] and len(table) == 4
    assert (table.sparsest_matching_level == 1).all()


def test_seeds_on_worker_processes_give_the_same_tables(synthetic):
    small = study(imp_levels=1, instability_level=1, retrain_modes=[])
    _, here = ticket_study.run(small, "controls", "mlp", synthetic, {"widths": [8]}, progress=False, workers=0)
    _, spawned = ticket_study.run(small, "controls", "mlp", synthetic, {"widths": [8]}, progress=False, workers=2)
    pd.testing.assert_frame_equal(here, spawned, check_exact=True)


def test_every_retraining_mode_is_kept_and_no_modes_is_no_runs(synthetic):
    small = study(imp_levels=1, instability_level=1, seed_offsets=[0], retrain_modes=["lr_rewind", "finetune"])
    results, metrics = ticket_study.run(small, "retrain_modes", "mlp", synthetic, {"widths": [8]}, progress=False)
    assert sorted(results) == [(0, "finetune"), (0, "lr_rewind")]
    assert set(metrics.retrain) == {"none", "lr_rewind", "finetune"}
    none, empty = ticket_study.run(small.replace(retrain_modes=[]), "retrain_modes", "mlp", synthetic,
                                   {"widths": [8]}, progress=False)
    assert none == {} and empty.empty


def test_instability_finds_a_mask_per_rewind_point_and_seed(synthetic):
    small = study(imp_levels=1, instability_level=1, seed_offsets=[3, 4], instability_data_seeds=[101, 202])
    dense = ticket_study.dense_runs(small, "mlp", synthetic, {"widths": [8]}, progress=False)
    assert all(sorted(h.snapshots) == [0, 20] for _, h in dense.values())
    results, _ = ticket_study.run(small, "controls", "mlp", synthetic, {"widths": [8]}, progress=False, dense=dense)
    found = ticket_study.instability(small, {0: results}, "mlp", synthetic, {"widths": [8]}, progress=False,
                                     dense=dense)
    barriers = found.barriers
    assert set(barriers.seed) == {3, 4} and set(barriers.network) == {"dense", "ticket"}
    assert len(barriers) == 2 * 2 * 2 * 2  # seeds x networks x k x splits
    # the oracle: the ticket at k = 20 is the mask IMP finds rewinding to 20, run directly
    late = rewinding.imp(ol.build("mlp", synthetic, seed=4, widths=[8]), synthetic,
                       small.imp.replace(controls=(), rewind_iteration=20).with_seed(4), progress=False)
    config = small.instability.replace(train=CONFIG.replace(seed=4), data_seeds=(105, 206), rewind_iterations=(20,))
    direct = stability.instability(ol.build("mlp", synthetic, seed=4, widths=[8]), synthetic, config,
                                   masks=late.masks[1], progress=False)
    ours = barriers[(barriers.seed == 4) & (barriers.network == "ticket") & (barriers.rewind_iteration == 20)]
    pd.testing.assert_frame_equal(ours.drop(columns=["network", "seed"]).reset_index(drop=True),
                                  direct.barriers, check_exact=True)


def test_shared_dense_runs_and_budget_over_seeds(synthetic):
    small = study(imp_levels=2, instability_level=1, seed_offsets=[0, 1], budget_levels=[2], control_budget=2,
                  imp_controls=["reinit"])
    dense = ticket_study.dense_runs(small, "mlp", synthetic, {"widths": [8]}, progress=False)
    for experiment in ("late_rewind", "retrain_modes"):
        _, alone = ticket_study.run(small, experiment, "mlp", synthetic, {"widths": [8]}, progress=False)
        _, shared = ticket_study.run(small, experiment, "mlp", synthetic, {"widths": [8]}, progress=False, dense=dense)
        pd.testing.assert_frame_equal(alone, shared, check_exact=True)
    results, _ = ticket_study.run(small, "controls", "mlp", synthetic, {"widths": [8]}, progress=False, dense=dense)
    longer = ticket_study.budget(small, results, "mlp", synthetic, {"widths": [8]}, progress=False)
    assert sorted(zip(longer.seed, longer.condition, longer.level)) == [(0, "reinit_x2", 2), (1, "reinit_x2", 2)]
    assert set(longer.experiment) == {"budget"} and set(longer.budget) == {2}
    with pytest.raises(ValueError, match=r"budget_levels\[0\] must be an integer in \[1, 2\]"):
        study(imp_levels=2, budget_levels=[3])
