"""Lottery tickets: rewinding, nested masks, density schedule, binding masks, controls, determinism, selection."""

import copy

import matplotlib

matplotlib.use("Agg")

import pandas as pd
import pytest
import torch

import oneshot_lab as ol
from oneshot_lab.studies.lottery import rewinding
from oneshot_lab.core.data import Dataset, Split

CONFIG = ol.TrainConfig(lr=1e-2, batch_size=64, iterations=60, eval_every=20, schedule="cosine")
CONTROLS = ["reinit", "random_mask", "shuffled_mask"]


@pytest.fixture()
def calls(monkeypatch):
    """Record every train.fit call lottery makes: the model state at entry, masks, config and start."""
    seen, real_fit = [], ol.training.train.fit

    def recording_fit(model, dataset, config, masks=None, snapshot_at=(), start_iteration=0, progress=True):
        seen.append({"state": ol.training.train.snapshot(model), "masks": masks, "config": config,
                     "start": start_iteration, "model": model})
        history = real_fit(model, dataset, config, masks=masks, snapshot_at=snapshot_at,
                           start_iteration=start_iteration, progress=False)
        seen[-1]["history"] = history
        return history

    monkeypatch.setattr(ol.training.train, "fit", recording_fit)
    return seen


def run_imp(model, dataset, train=CONFIG, **options):
    """`rewinding.imp` with an IMPConfig of `train` and `options`, no progress bar."""
    return rewinding.imp(model, dataset, rewinding.IMPConfig(train=train, **options), progress=False)


def bits(t: torch.Tensor) -> torch.Tensor:
    """The raw bit pattern of a float32 tensor (so -0.0 and 0.0 differ)."""
    return t.contiguous().view(torch.int32)


def kept_per_layer(masks) -> dict:
    """Kept entries of every layer of a mask."""
    return {n: int(m.sum()) for n, m in masks.items()}


@pytest.mark.parametrize("k", [0, 20])
def test_rewound_weights_are_snapshot_times_mask_bit_for_bit(mlp, synthetic, calls, k):
    init = ol.training.train.snapshot(mlp)
    reference = ol.fit(ol.build("mlp", synthetic, seed=0, widths=(32,)), synthetic, CONFIG, snapshot_at=[k])
    calls.clear()
    result = run_imp(mlp, synthetic, CONFIG, levels=3, rate=0.3, rewind_iteration=k)
    assert all(torch.equal(bits(init[n]), bits(v)) for n, v in mlp.state_dict().items())  # input untouched
    assert all(torch.equal(bits(reference.snapshots[k][n]), bits(v)) for n, v in result.rewind_state.items())
    tickets = calls[1:]
    assert [c["start"] for c in tickets] == [k] * 3
    for level, call in enumerate(tickets, start=1):
        for name, value in call["state"].items():
            mask = result.masks[level].get(name)
            expected = result.rewind_state[name] * mask if mask is not None else result.rewind_state[name]
            assert torch.equal(bits(value), bits(expected)), (level, name)


def test_rewind_clones_never_aliases(mlp):
    state = ol.training.train.snapshot(mlp)
    before = {n: v.clone() for n, v in state.items()}
    net = rewinding.rewind(ol.build("mlp", ol.load("synthetic"), seed=5, widths=(32,)), state)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    assert all(torch.equal(before[n], state[n]) for n in state)


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_masks_nested_and_density_follows_schedule_exactly(mlp, scope):
    rate, levels = 0.2, 12
    out_layer = ol.prunable(mlp)[-1]
    layer_rates = {out_layer: 0.1}
    masks = [ol.Masks.ones(mlp)]
    for level in range(levels):
        scores = ol.pruning.criteria.random(mlp, seed=level)
        masks.append(rewinding.level_masks(scores, masks[-1], rate, scope, layer_rates))
    for prev, cur in zip(masks, masks[1:]):
        assert all(not (cur[n] & ~prev[n]).any() for n in cur)  # nested: nothing pruned comes back
        before, after = kept_per_layer(prev), kept_per_layer(cur)
        assert after[out_layer] == before[out_layer] - round(0.1 * before[out_layer])
        pool = [n for n in cur if n != out_layer]
        if scope == "layer":
            assert all(after[n] == before[n] - round(rate * before[n]) for n in pool)
        else:
            kept = sum(before[n] for n in pool)
            assert sum(after[n] for n in pool) == kept - round(rate * kept)
    hidden = ol.prunable(mlp)[0]
    n = masks[0][hidden].numel()
    for level, m in enumerate(masks):
        assert abs(kept_per_layer(m)[hidden] / n - 0.8 ** level) <= level / n  # (1-p)^L up to rounding


def test_imp_density_schedule_and_nested_masks(mlp, synthetic):
    result = run_imp(mlp, synthetic, CONFIG, levels=4, rate=0.5, scope="global")
    tickets = result.metrics[result.metrics.condition != "reinit"]
    assert list(tickets.level) == [0, 1, 2, 3, 4]
    total = sum(m.numel() for m in result.masks[0].values())
    kept = total
    for level, masks in enumerate(result.masks):
        assert masks.count()[0] == kept
        assert tickets.density.iloc[level] == pytest.approx(kept / total, abs=0)
        kept -= round(0.5 * kept)
    assert all(not (b[n] & ~a[n]).any() for a, b in zip(result.masks, result.masks[1:]) for n in a)


def test_pruned_weights_are_zero_after_every_step_of_every_level(mlp, synthetic, monkeypatch):
    checks, real_fit = [], ol.training.train.fit

    def checking_fit(model, dataset, config, masks=None, **kwargs):
        handles = []
        if masks is not None:
            layers = {name.rpartition(".")[0]: (name, m) for name, m in masks.items()}

            def check(module, _inputs):
                name, m = layers[module_names[module]]
                assert not module.weight[~m].any(), f"pruned entries of {name} are not zero"
                checks.append(name)

            module_names = {model.get_submodule(n): n for n in layers}
            handles = [model.get_submodule(n).register_forward_pre_hook(check) for n in layers]
        try:
            return real_fit(model, dataset, config, masks=masks, **kwargs)
        finally:
            for handle in handles:
                handle.remove()

    monkeypatch.setattr(ol.training.train, "fit", checking_fit)
    for retrain, controls in [("weight_rewind", CONTROLS), ("lr_rewind", []), ("finetune", [])]:
        checks.clear()
        run_imp(mlp, synthetic, CONFIG.replace(optimizer="sgd", momentum=0.9, weight_decay=1e-3)
                if retrain == "finetune" else CONFIG, levels=2, rate=0.5, retrain=retrain, controls=controls)
        # one check per layer per forward: >= every training step (and every evaluation) of every masked run
        runs = 2 * (1 + len(controls))
        assert len(checks) >= runs * len(ol.prunable(mlp)) * CONFIG.iterations


def test_same_seed_replays_identical_run(mlp, synthetic):
    a = run_imp(mlp, synthetic, CONFIG, levels=2, rate=0.4, controls=CONTROLS, seed=3)
    b = run_imp(mlp, synthetic, CONFIG, levels=2, rate=0.4, controls=CONTROLS, seed=3)
    pd.testing.assert_frame_equal(a.metrics, b.metrics, check_exact=True)
    pd.testing.assert_frame_equal(a.curves, b.curves, check_exact=True)
    assert all(x.equal(y) for x, y in zip(a.masks, b.masks))
    assert all(x.equal(y) for c in a.control_masks for x, y in zip(a.control_masks[c], b.control_masks[c]))
    c = run_imp(mlp, synthetic, CONFIG, levels=2, rate=0.4, controls=CONTROLS, seed=4)
    assert all(x.equal(y) for x, y in zip(a.masks, c.masks))  # magnitude masks do not depend on `seed`
    assert not a.control_masks["random_mask"][2].equal(c.control_masks["random_mask"][2])


def test_controls_keep_per_layer_densities(mlp, synthetic, calls):
    result = run_imp(mlp, synthetic, CONFIG, levels=3, rate=0.4, controls=CONTROLS)
    layers = result.layers.pivot_table(index=["level", "layer"], columns="condition", values="kept")
    for control in CONTROLS:
        assert (layers[control].dropna() == layers["ticket"].dropna()).all()
    for level in range(1, 4):
        ticket = result.masks[level]
        for control in ("random_mask", "shuffled_mask"):
            mask = result.control_masks[control][level]
            assert kept_per_layer(mask) == kept_per_layer(ticket)
            assert not mask.equal(ticket)
        previous = result.control_masks["random_mask"][level - 1]
        current = result.control_masks["random_mask"][level]
        assert all(not (current[n] & ~previous[n]).any() for n in current)  # random masks are nested too
    reinit = [c for c in calls if c["masks"] is not None and c["masks"].equal(result.masks[1])][1]
    weight = ol.prunable(mlp)[0]
    assert not torch.equal(reinit["state"][weight], result.rewind_state[weight] * result.masks[1][weight])
    assert not reinit["state"][weight][~result.masks[1][weight]].any()


def test_selection_never_reads_the_test_split(mlp, synthetic):
    gen = torch.Generator().manual_seed(0)
    scrambled = Dataset(synthetic.name, synthetic.train, synthetic.val,
                        Split(torch.randn(synthetic.test.x.shape, generator=gen),
                              synthetic.test.y[torch.randperm(len(synthetic.test.y), generator=gen)]),
                        synthetic.num_classes)
    a = run_imp(mlp, synthetic, CONFIG, levels=2, rate=0.5, controls=["reinit"])
    b = run_imp(mlp, scrambled, CONFIG, levels=2, rate=0.5, controls=["reinit"])
    assert all(x.equal(y) for x, y in zip(a.masks, b.masks))
    same = ["level", "condition", "density", "early_stop_iteration", "early_stop_val_loss", "early_stop_val_accuracy"]
    pd.testing.assert_frame_equal(a.metrics[same], b.metrics[same], check_exact=True)
    assert not a.metrics.early_stop_test_accuracy.equals(b.metrics.early_stop_test_accuracy)
    assert a.sparsest_matching(tolerance=1.0)["level"] == b.sparsest_matching(tolerance=1.0)["level"] == 2


def test_retrain_modes_share_budget_and_data_order(mlp, synthetic, calls):
    k = 20
    for retrain in rewinding.RETRAIN_MODES:
        calls.clear()
        result = run_imp(mlp, synthetic, CONFIG, levels=2, rate=0.5, rewind_iteration=k, retrain=retrain)
        dense, level1, level2 = calls
        for call in (level1, level2):
            assert call["start"] == k and call["config"].seed == CONFIG.seed
            assert call["config"].total_iterations(1) == CONFIG.iterations
            assert call["history"].frame().iteration.max() == CONFIG.iterations
        if retrain == "weight_rewind":
            continue
        final = {n: v for n, v in level1["model"].state_dict().items()}
        weight = ol.prunable(mlp)[0]
        assert torch.equal(level2["state"][weight], final[weight] * result.masks[2][weight])
        if retrain == "finetune":
            assert level1["config"].schedule == "constant"
            assert level1["config"].lr == CONFIG.lr_at(CONFIG.iterations - 1, CONFIG.iterations)
        else:
            assert level1["config"] == CONFIG


@pytest.mark.parametrize("kwargs, message", [
    (dict(retrain="rewind"), "unknown retrain mode 'rewind'; valid choices: weight_rewind, lr_rewind, finetune"),
    (dict(controls=["reinit", "shuffle"]), "unknown control 'shuffle'; valid choices: reinit"),
    (dict(controls="reinit"), "controls must be a list"),
    (dict(controls=["reinit", "reinit"]), "must not repeat"),
    (dict(controls=["reinit"], retrain="lr_rewind"), "need retrain='weight_rewind'"),
    (dict(rewind_iteration=60), r"\[0, 60\)"),
    (dict(rewind_iteration=True), "rewind_iteration must be an integer"),
    (dict(rate=1.5), "rate must be"),
    (dict(levels=-1), "levels must be"),
    (dict(levels=2.5), "levels must be an integer"),
    (dict(scope="net"), "unknown scope 'net'; valid choices: global, layer"),
    (dict(criterion="size"), "unknown method 'size'; valid choices: magnitude"),
    (dict(layer_rates={"9.weight": 0.1}), "prunable layers"),
    (dict(layer_rates={"3.weight": 2}), "layer_rates"),
    (dict(score_options={"magnitude": {"bogus": 1}}), "method 'magnitude' has no option 'bogus'; its options: none"),
    (dict(score_options={"random": {"seed": 3}}), "has no option"),
    (dict(score_options={"obd_ggn": {"curvature": "hessian"}}), "has no option"),
    (dict(score_options={"obd": {"curvature": "exact"}}), "unknown curvature 'exact'; valid choices"),
    (dict(score_options={"taylor": {"negative": "clamp"}}), "has no option"),
    (dict(score_options={"obd": {"negative": "drop"}}), "valid choices: clamp"),
    (dict(score_options={"obd": {"samples": 0}}), r"samples must be an integer in \[1, 10000000\]"),
    (dict(score_options={"nosuch": {}}), "unknown method 'nosuch'"),
    (dict(score_options=["names"]), "must be a mapping"),
    (dict(finetune_lr=float("nan")), "finetune_lr must be a finite number"),
    (dict(seed=-1), "seed must be an integer"),
])
def test_bad_arguments_fail_before_any_training(mlp, synthetic, calls, kwargs, message):
    with pytest.raises(ValueError, match=message):
        run_imp(mlp, synthetic, CONFIG, **kwargs)
    assert calls == []


def test_reinitialize_is_seeded_and_leaves_model_alone(mlp):
    before = ol.training.train.snapshot(mlp)
    a, b, c = (rewinding.reinitialize(mlp, s) for s in (1, 1, 2))
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(a[1].weight, c[1].weight) and not torch.equal(a[1].weight, mlp[1].weight)
    assert all(torch.equal(before[n], v) for n, v in mlp.state_dict().items())


def test_good_score_options_pass_the_check_and_come_back_complete():
    # the criteria's documented defaults: curvature ggn, negative clamp, 2048 samples in batches of 256, 100 probes
    obd = {"curvature": "ggn", "negative": "clamp", "samples": 2048, "batch_size": 256, "probes": 100}
    fisher = {k: v for k, v in obd.items() if k != "curvature"}  # obd_fisher fixes its curvature
    cases = [({}, {}), ({"magnitude": {}}, {"magnitude": {}}),
             ({"obd": {"curvature": "ggn"}}, {"obd": obd}),
             ({"obd_fisher": {"negative": "abs", "samples": 64}},
              {"obd_fisher": {**fisher, "negative": "abs", "samples": 64}}),
             ({"taylor": {"batch_size": 8}}, {"taylor": {"samples": 2048, "batch_size": 8}}),
             ({"obd": {"samples": None}}, {"obd": {**obd, "samples": None}})]
    for given, expected in cases:
        before = copy.deepcopy(given)
        assert rewinding.IMPConfig(score_options=given).score_options == expected
        assert given == before  # the caller's dict is not filled in


def test_summary_tables_mean_and_std_over_seeds(mlp, synthetic):
    runs = [run_imp(ol.build("mlp", synthetic, seed=s, widths=(32,)), synthetic, CONFIG.replace(seed=s),
                    levels=1, rate=0.5, controls=["reinit"], seed=s).metrics.assign(seed=s) for s in (0, 1)]
    metrics = pd.concat(runs, ignore_index=True)
    summary = ol.analysis.stats.summarize(metrics, ["level", "weights_remaining", "condition"], "early_stop_test_accuracy")
    ticket = metrics[(metrics.condition == "ticket")].early_stop_test_accuracy
    row = summary[(summary.level == 1) & (summary.condition == "ticket")].iloc[0]
    assert row["mean"] == pytest.approx(ticket.mean()) and row["std"] == pytest.approx(ticket.std())
    assert row["n"] == 2 and row["weights_remaining"] == pytest.approx(50.0)
    with pytest.raises(ValueError, match="present"):
        rewinding.IMPResult(metrics, None, None, []).sparsest_matching("random_mask")


def test_matching_rejects_bad_input():
    with pytest.raises(ValueError, match="results must map seed"):
        rewinding.matching([], ["ticket"])
    with pytest.raises(ValueError, match="conditions must be a list"):
        rewinding.matching({}, "ticket")


def test_a_shared_dense_run_gives_the_same_run_bit_for_bit(mlp, synthetic):
    config = rewinding.IMPConfig(train=CONFIG, levels=2, rate=0.5, controls=["reinit", "random_mask"],
                               rewind_iteration=20)
    alone = rewinding.imp(mlp, synthetic, config, progress=False)
    dense = rewinding.dense_run(mlp, synthetic, CONFIG, (0, 20), progress=False)
    shared = rewinding.imp(mlp, synthetic, config, progress=False, dense=dense)
    pd.testing.assert_frame_equal(alone.metrics, shared.metrics, check_exact=True)
    assert all(a.equal(b) for a, b in zip(alone.masks, shared.masks))
    with pytest.raises(ValueError, match=r"snapshots at \[0\], not at k = 20"):
        rewinding.imp(mlp, synthetic, config, progress=False,
                    dense=rewinding.dense_run(mlp, synthetic, CONFIG, (0,), False))


def test_budget_controls_at_one_x_replay_the_controls_exactly(mlp, synthetic):
    config = rewinding.IMPConfig(train=CONFIG, levels=2, rate=0.5, controls=CONTROLS, seed=3)
    result = rewinding.imp(mlp, synthetic, config, progress=False)
    again = rewinding.budget_controls(mlp, synthetic, config, result, [1, 2], 1, progress=False)
    assert set(again.condition) == {f"{c}_x1" for c in CONTROLS} and set(again.budget) == {1}
    for control in CONTROLS:
        ours = again[again.condition == f"{control}_x1"].drop(columns=["condition", "budget"]).reset_index(drop=True)
        theirs = result.metrics[result.metrics.condition == control].drop(columns=["condition", "budget"])
        pd.testing.assert_frame_equal(ours, theirs.reset_index(drop=True), check_exact=True)


def test_budget_controls_train_longer_on_the_same_masks(mlp, synthetic, calls):
    config = rewinding.IMPConfig(train=CONFIG, levels=2, rate=0.5, controls=["random_mask"], seed=1)
    result = rewinding.imp(mlp, synthetic, config, progress=False)
    calls.clear()
    longer = rewinding.budget_controls(mlp, synthetic, config, result, [2], 3, progress=False)
    (call,) = calls
    assert call["config"].iterations == 3 * 60 and call["config"].eval_every == 3 * 20
    assert call["masks"] is result.control_masks["random_mask"][2]
    assert list(longer.condition) == ["random_mask_x3"] and list(longer.level) == [2]
    with pytest.raises(ValueError, match="budget levels"):
        rewinding.budget_controls(mlp, synthetic, config, result, [3], 3)
    with pytest.raises(ValueError, match="budget factor"):
        rewinding.budget_controls(mlp, synthetic, config, result, [1], 0)


def test_matching_reads_the_value_it_is_given():
    rows = [(0, "dense", 100.0, 0.80, 0.70), (1, "ticket", 50.0, 0.70, 0.80), (2, "ticket", 25.0, 0.79, 0.60),
            (3, "ticket", 12.5, 0.81, 0.50)]
    metrics = pd.DataFrame(rows, columns=["level", "condition", "density", "early_stop_val_accuracy",
                                          "final_val_accuracy"]).assign(weights_remaining=lambda f: f.density,
                                                                        final_test_accuracy=0.5,
                                                                        early_stop_test_accuracy=0.5)
    result = rewinding.IMPResult(metrics, None, None, [])
    assert result.sparsest_matching(value="early_stop_val_accuracy")["level"] == 3
    assert result.sparsest_matching(value="early_stop_val_accuracy", tolerance=0.1)["level"] == 3
    assert result.sparsest_matching(value="final_val_accuracy")["level"] == 1
    assert result.sparsest_matching(value="final_val_accuracy", tolerance=0.1)["level"] == 2
    table = rewinding.matching({7: result}, ["ticket"], value="final_val_accuracy")
    assert table.iloc[0].to_dict() == {"seed": 7, "condition": "ticket", "sparsest_matching_level": 1,
                                       "weights_remaining": 50.0, "tolerance": 0.0, "value": "final_val_accuracy",
                                       "val_accuracy": 0.8, "test_accuracy": 0.5}
    with pytest.raises(ValueError, match="unknown matching value 'test'"):
        result.sparsest_matching(value="test")
