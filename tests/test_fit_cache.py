"""The dense-run cache: a hit is the run itself (weights and history), anything that differs is a miss."""

import copy

import pytest
import torch

import oneshot_lab as ol
from oneshot_lab.training import fit_cache, train

CONFIG = ol.TrainConfig(iterations=30, batch_size=16, lr=1e-2, eval_every=10, seed=3)


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    """The cache turned on in a fresh directory; counts the real trainings."""
    monkeypatch.setenv(fit_cache.ENV, str(tmp_path))
    calls = []
    real = fit_cache.fit
    monkeypatch.setattr(fit_cache, "fit", lambda *a, **k: calls.append(1) or real(*a, **k))
    return tmp_path, calls


def test_hit_is_the_run_itself(cache, synthetic, tiny_mlp):
    """Second call loads: the same weights bit for bit and the same history, with no training."""
    root, calls = cache
    oracle = copy.deepcopy(tiny_mlp)
    expected = train.fit(oracle, synthetic, CONFIG, progress=False)
    first, second = copy.deepcopy(tiny_mlp), copy.deepcopy(tiny_mlp)
    fit_cache.cached_fit(first, synthetic, CONFIG)
    history = fit_cache.cached_fit(second, synthetic, CONFIG)
    assert len(calls) == 1
    for a, b in zip(oracle.state_dict().values(), second.state_dict().values()):
        assert torch.equal(a, b)
    assert history.frame().equals(expected.frame())
    assert [p.name for p in root.iterdir()] == [f"{fit_cache.key(tiny_mlp, synthetic, CONFIG)}.pt"]  # no partial file


@pytest.mark.parametrize("change", ["config", "seed_of_init", "data", "architecture", "masks"])
def test_anything_that_differs_is_a_miss(cache, synthetic, tiny_mlp, change):
    """A different config, initialisation, data split or architecture trains again."""
    _, calls = cache
    fit_cache.cached_fit(copy.deepcopy(tiny_mlp), synthetic, CONFIG)
    model, data, config, masks = copy.deepcopy(tiny_mlp), synthetic, CONFIG, None
    if change == "masks":
        masks = ol.masks_from_scores(ol.pruning.criteria.magnitude(model), 0.5, "global")
    elif change == "config":
        config = CONFIG.replace(lr=2e-2)
    elif change == "seed_of_init":
        model = ol.build("mlp", synthetic, seed=1, widths=(16, 8))
    elif change == "data":
        data = ol.load("synthetic", seed=1)
    else:
        model = ol.build("mlp", synthetic, seed=0, widths=(16, 8), activation="tanh")
    assert fit_cache.key(model, data, config, masks) != fit_cache.key(tiny_mlp, synthetic, CONFIG)
    fit_cache.cached_fit(model, data, config, masks)
    assert len(calls) == 2


def test_unreadable_entry_is_recomputed(cache, synthetic, tiny_mlp):
    """A truncated entry is trained again and replaced, never loaded."""
    root, calls = cache
    path = root / f"{fit_cache.key(tiny_mlp, synthetic, CONFIG)}.pt"
    path.write_bytes(b"not a torch file")
    fit_cache.cached_fit(copy.deepcopy(tiny_mlp), synthetic, CONFIG)
    assert len(calls) == 1 and fit_cache.load(path) is not None


def test_off_trains_every_time(monkeypatch, tmp_path, synthetic, tiny_mlp):
    """ONESHOT_LAB_CACHE=off: nothing is written, every call trains."""
    monkeypatch.setenv(fit_cache.ENV, "off")
    monkeypatch.chdir(tmp_path)
    assert fit_cache.directory() is None
    fit_cache.cached_fit(copy.deepcopy(tiny_mlp), synthetic, CONFIG)
    assert not any(tmp_path.iterdir())


def test_default_directory_is_the_user_cache(monkeypatch, tmp_path):
    """Unset: under $XDG_CACHE_HOME (or ~/.cache)."""
    monkeypatch.delenv(fit_cache.ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert fit_cache.directory() == tmp_path / "oneshot_lab" / "fits"


def test_replicate_reuses_dense_runs(cache, synthetic):
    """A second one-shot study over the same seeds trains no dense model and gives the same dense rows."""
    _, calls = cache
    study = ol.studies.oneshot.OneShotConfig(methods=("magnitude/global",), sparsities=(0.5,))
    first = ol.studies.oneshot.replicate("synthetic", "mlp", CONFIG, study, [0, 1], {"widths": (8,)}, workers=0, progress=False)
    again = ol.studies.oneshot.replicate("synthetic", "mlp", CONFIG, study.replace(sparsities=(0.9,)), [0, 1], {"widths": (8,)},
                                 workers=0, progress=False)
    assert len(calls) == 2
    dense = lambda r: r.metrics[r.metrics.stage == "dense"].reset_index(drop=True)
    assert dense(first).equals(dense(again))
    assert first.histories.equals(again.histories)


def test_masked_hit_keeps_the_mask_binding(cache, synthetic, tiny_mlp):
    """A masked run loaded from the cache equals the trained one, pruned entries exactly zero."""
    _, calls = cache
    masks = ol.masks_from_scores(ol.pruning.criteria.magnitude(tiny_mlp), 0.7, "global")
    oracle = masks.apply(copy.deepcopy(tiny_mlp))
    train.fit(oracle, synthetic, CONFIG, masks=masks, progress=False)
    for _ in range(2):
        net = masks.apply(copy.deepcopy(tiny_mlp))
        fit_cache.cached_fit(net, synthetic, CONFIG, masks)
    assert len(calls) == 1
    for name, value in oracle.state_dict().items():
        assert torch.equal(value, net.state_dict()[name])
    for name, mask in masks.items():
        assert not net.get_parameter(name)[~mask].any()


def test_a_repeated_study_trains_nothing(cache, synthetic):
    """The same one-shot study twice: the second run reuses every dense run and fine-tune, same metrics."""
    _, calls = cache
    study = ol.studies.oneshot.OneShotConfig(methods=("magnitude/global", "random/layer"), sparsities=(0.5, 0.8),
                                     finetune=CONFIG.replace(iterations=10, eval_every=5))
    run = lambda: ol.studies.oneshot.replicate("synthetic", "mlp", CONFIG, study, [0, 1], {"widths": (8,)}, workers=0,
                                       progress=False)
    first = run()
    trained = len(calls)
    assert trained == 2 + 2 * 2 * 2
    again = run()
    assert len(calls) == trained
    assert first.metrics.equals(again.metrics) and first.histories.equals(again.histories)


def test_custom_forward_is_part_of_the_key(synthetic):
    """Two user classes with the same layers but another forward() never share an entry."""
    from torch import nn

    class Relu(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(20, 4)

        def forward(self, x):
            return torch.relu(self.fc(x.flatten(1)))

    class Tanh(Relu):
        def forward(self, x):
            return torch.tanh(self.fc(x.flatten(1)))

    torch.manual_seed(0)
    a = Relu()
    b = Tanh()
    b.load_state_dict(a.state_dict())
    assert fit_cache.key(a, synthetic, CONFIG) != fit_cache.key(b, synthetic, CONFIG)


def test_unwritable_cache_only_warns(monkeypatch, tmp_path, synthetic, tiny_mlp):
    """A cache directory that cannot be written: the run still returns its history, with a warning."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv(fit_cache.ENV, str(blocker / "cache"))
    with pytest.warns(UserWarning, match="could not write"):
        history = fit_cache.cached_fit(copy.deepcopy(tiny_mlp), synthetic, CONFIG)
    assert not history.frame().empty
