"""Training: binding masks under every optimizer, determinism, snapshots, replay, validation-only selection."""

import pytest
import torch

import oneshot_lab as ol
from oneshot_lab.pruning import criteria
from oneshot_lab.core.masks import masks_from_scores
from oneshot_lab.training.train import History, TrainConfig, fit

FAST = dict(batch_size=32)


def _masks(model, sparsity=0.7):
    return masks_from_scores(criteria.random(model, seed=3), sparsity)


@pytest.mark.parametrize("config", [
    TrainConfig(optimizer="sgd", lr=0.1, momentum=0.9, iterations=40, **FAST),
    TrainConfig(optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=0.1, iterations=40, **FAST),
    TrainConfig(optimizer="adam", lr=0.01, iterations=40, **FAST),
    TrainConfig(optimizer="adam", lr=0.01, weight_decay=0.5, schedule="cosine", iterations=40, **FAST),
], ids=["sgd-momentum", "sgd-weight-decay", "adam", "adam-weight-decay-cosine"])
def test_pruned_weights_are_exactly_zero_after_every_step(synthetic, tiny_mlp, config):
    masks = _masks(tiny_mlp)
    history = fit(tiny_mlp, synthetic, config, masks=masks, snapshot_at=range(41))
    assert sorted(history.snapshots) == list(range(41))
    for step, state in history.snapshots.items():
        for name, mask in masks.items():
            assert (state[name][~mask] == 0.0).all(), f"pruned entries of {name} revived at step {step}"
            if step == 40:
                assert (state[name][mask] != 0).any()  # the kept ones did train


def test_without_binding_momentum_revives_pruned_weights(synthetic, tiny_mlp):
    """The failure the binding prevents: masking once, then training, revives pruned entries."""
    masks = _masks(tiny_mlp)
    masks.apply(tiny_mlp)
    fit(tiny_mlp, synthetic, TrainConfig(optimizer="sgd", lr=0.1, momentum=0.9, iterations=10, **FAST))
    assert any((tiny_mlp.get_parameter(n)[~m] != 0).any() for n, m in masks.items())


def test_same_seed_bit_identical_other_seed_differs(synthetic):
    runs = []
    for data_seed in (0, 0, 1):
        model = ol.build("mlp", synthetic, seed=0, widths=(16,))
        history = fit(model, synthetic, TrainConfig(epochs=2, seed=data_seed, **FAST), masks=_masks(model))
        runs.append((model.state_dict(), history.frame()))
    (a, ha), (b, hb), (c, _) = runs
    assert all(torch.equal(a[k], b[k]) for k in a) and ha.equals(hb)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_snapshots_are_clones_not_views(synthetic, tiny_mlp):
    history = fit(tiny_mlp, synthetic, TrainConfig(iterations=5, **FAST), snapshot_at=[0, 5])
    at_end = history.snapshots[5]["1.weight"].clone()
    assert not torch.equal(history.snapshots[0]["1.weight"], at_end)
    with torch.no_grad():
        tiny_mlp[1].weight.add_(1.0)
    assert torch.equal(history.snapshots[5]["1.weight"], at_end)


def test_start_iteration_replays_data_order_and_schedule(synthetic):
    """Training 0 -> T equals 0 -> k then k -> T (plain SGD has no optimizer state to lose)."""
    config = TrainConfig(optimizer="sgd", lr=0.05, momentum=0.0, iterations=50, schedule="cosine", **FAST)
    whole = ol.build("mlp", synthetic, seed=1, widths=(8,))
    fit(whole, synthetic, config)
    split = ol.build("mlp", synthetic, seed=1, widths=(8,))
    first = fit(split, synthetic, config.replace(iterations=50), snapshot_at=[17])
    resumed = ol.build("mlp", synthetic, seed=1, widths=(8,))
    resumed.load_state_dict(first.snapshots[17])
    fit(resumed, synthetic, config, start_iteration=17)
    for k, v in whole.state_dict().items():
        assert torch.equal(v, resumed.state_dict()[k])


def test_history_is_tidy_and_selection_uses_validation():
    history = History(rows=[
        {"iteration": 0, "epoch": 0, "split": "val", "loss": 2.0, "accuracy": 0.1},
        {"iteration": 0, "epoch": 0, "split": "test", "loss": 0.1, "accuracy": 0.99},
        {"iteration": 10, "epoch": 1, "split": "val", "loss": 1.0, "accuracy": 0.5},
        {"iteration": 10, "epoch": 1, "split": "test", "loss": 3.0, "accuracy": 0.2},
    ])
    assert list(history.frame().columns) == ["iteration", "epoch", "split", "loss", "accuracy"]
    best = history.best()
    assert best["iteration"] == 10 and best["test_accuracy"] == 0.2


def test_fit_learns_and_logs_every_epoch(synthetic, tiny_mlp):
    config = TrainConfig(epochs=3, lr=0.01, **FAST)
    history = fit(tiny_mlp, synthetic, config)
    frame = history.frame()
    steps = config.steps_per_epoch(len(synthetic.train.y))
    assert sorted(frame[frame.split == "val"].iteration) == [0, steps, 2 * steps, 3 * steps]
    first_val = frame[(frame.split == "val") & (frame.iteration == 0)].accuracy.item()
    assert history.final()["val_accuracy"] > max(0.6, first_val + 0.2)


def test_lr_schedules():
    c = TrainConfig(lr=1.0, schedule="cosine")
    assert c.lr_at(0, 100) == 1.0 and c.lr_at(50, 100) == pytest.approx(0.5) and c.lr_at(100, 100) == pytest.approx(0)
    s = TrainConfig(lr=1.0, schedule="step")
    assert [s.lr_at(i, 100) for i in (0, 49, 50, 75)] == pytest.approx([1, 1, 0.1, 0.01])


@pytest.mark.parametrize("bad,match", [
    (dict(optimizer="rmsprop"), "unknown optimizer 'rmsprop'; valid choices: sgd, adam"),
    (dict(schedule="exp"), "unknown schedule 'exp'"),
    (dict(lr=-1), "lr must be a number > 0.0"),
    (dict(lr=0), "lr must be a number > 0.0, got 0.0"),
    (dict(batch_size=0), r"batch_size must be an integer in \[1, 1048576\]"),
    (dict(iterations=-5), r"iterations must be an integer in \[0, 100000000\]"),
    (dict(lr=float("inf")), "lr must be a finite number"),
    (dict(epochs=2.5), "epochs must be an integer"),
    (dict(epochs="3"), "epochs must be an integer"),
    (dict(batch_size=True), "batch_size must be an integer"),
    (dict(seed=10**20), "seed must be an integer in"),
    (dict(optimizer="lbfgs"), "unknown optimizer 'lbfgs'; valid choices: sgd, adam"),
])
def test_bad_config(bad, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**bad)


def test_bad_snapshot_and_start(synthetic, tiny_mlp):
    config = TrainConfig(iterations=10, **FAST)
    with pytest.raises(ValueError, match="snapshot_at"):
        fit(tiny_mlp, synthetic, config, snapshot_at=[11])
    with pytest.raises(ValueError, match="start_iteration"):
        fit(tiny_mlp, synthetic, config, start_iteration=12)


def test_evaluate_restores_mode(synthetic, tiny_mlp):
    tiny_mlp.train()
    out = ol.evaluate(tiny_mlp, synthetic, "val")
    assert tiny_mlp.training and set(out) == {"loss", "accuracy"} and 0 <= out["accuracy"] <= 1


def test_empty_training_split_is_a_clear_error(synthetic, tiny_mlp):
    from oneshot_lab.core.data import Dataset, Split

    empty = Dataset("empty", Split(synthetic.train.x[:0], synthetic.train.y[:0]), synthetic.val, synthetic.test, 4)
    with pytest.raises(ValueError, match="empty training split"):
        ol.fit(tiny_mlp, empty, TrainConfig(iterations=1))


def test_the_largest_seed_trains_and_every_lottery_seed_fits_torch(synthetic, tiny_mlp):
    import copy

    from oneshot_lab.util import checks
    from oneshot_lab.studies.lottery import rewinding

    start = {k: v.clone() for k, v in tiny_mlp.state_dict().items()}
    trained = {}
    for seed in (checks.SEED_MAX, checks.SEED_MAX, 0):
        net = copy.deepcopy(tiny_mlp)
        history = ol.fit(net, synthetic, TrainConfig(iterations=2, seed=seed), progress=False)
        assert history.frame().iteration.max() == 2  # both steps taken
        trained.setdefault(seed, []).append(net.state_dict())
    largest, zero = trained[checks.SEED_MAX], trained[0][0]
    assert all(torch.equal(largest[0][k], largest[1][k]) for k in start)  # the seed replays bit for bit
    assert not all(torch.equal(largest[0][k], start[k]) for k in start)  # and training moved the weights
    assert not all(torch.equal(largest[0][k], zero[k]) for k in start)  # a different data order than seed 0

    config = rewinding.IMPConfig(train=TrainConfig(iterations=4, eval_every=2), levels=1, controls=["random_mask"])
    runs = [rewinding.imp(tiny_mlp, synthetic, config.with_seed(checks.SEED_MAX), progress=False) for _ in range(2)]
    assert list(runs[0].metrics.condition) == ["dense", "ticket", "random_mask"]
    ticket, control = runs[0].masks[-1], runs[0].control_masks["random_mask"][-1]
    assert {n: int(m.sum()) for n, m in control.items()} == {n: int(m.sum()) for n, m in ticket.items()}
    assert any(not torch.equal(control[n], ticket[n]) for n in ticket)  # a random mask, not the ticket's
    assert all(torch.equal(control[n], runs[1].control_masks["random_mask"][-1][n]) for n in ticket)


def test_nested_config_defaults_are_not_shared():
    from oneshot_lab.studies.lottery import ticket_study

    first = ticket_study.TicketStudy()
    first.imp.layer_rates["1.weight"] = 0.5
    assert ticket_study.TicketStudy().imp.layer_rates == {}


def test_config_help_and_replace():
    assert "peak learning rate" in TrainConfig.describe()["lr"]
    assert TrainConfig().replace(lr=0.5).lr == 0.5
    with pytest.raises(ValueError, match="has no field"):
        TrainConfig().replace(progress=False)


def test_sparse_embedding_gradients_train_without_the_fused_kernel():
    model = torch.nn.Sequential(torch.nn.Embedding(10, 4, sparse=True), torch.nn.Flatten(), torch.nn.Linear(8, 2))
    optimizer = ol.training.train.optimizer(model, TrainConfig(optimizer="sgd", lr=0.1))
    loss = model(torch.tensor([[1, 2]])).sum()
    loss.backward()
    optimizer.step()
    assert not optimizer.defaults.get("fused")
