"""Instability: error barriers between copies trained from iteration k, bad arguments rejected before work."""

import pandas as pd
import pytest
import torch

import oneshot_lab as ol
from oneshot_lab.studies.lottery import rewinding, stability

CONFIG = ol.TrainConfig(lr=1e-2, batch_size=64, iterations=60, eval_every=20, schedule="cosine")


@pytest.fixture()
def fits(monkeypatch):
    """Count the train.fit calls made."""
    seen, real_fit = [], ol.training.train.fit

    def counting_fit(*args, **kwargs):
        seen.append(1)
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(ol.training.train, "fit", counting_fit)
    return seen


def instability(model, data, masks=None, **options):
    """`stability.instability` with an InstabilityConfig of CONFIG and `options`."""
    return stability.instability(model, data, stability.InstabilityConfig(train=CONFIG, **options), masks=masks,
                                 progress=False)


def test_instability_barrier_and_sparse_copies(mlp, synthetic):
    masks = rewinding.imp(mlp, synthetic, rewinding.IMPConfig(train=CONFIG, levels=1, rate=0.8), progress=False).masks[1]
    result = instability(mlp, synthetic, masks=masks, rewind_iterations=[0, 20], points=5)
    assert set(result.path.rewind_iteration) == {0, 20} and len(result.path) == 2 * 5 * 2
    assert (result.barriers.barrier >= 0).all() and set(result.barriers.split) == {"val", "test"}
    assert (result.barriers.density == masks.density()).all()
    again = instability(mlp, synthetic, masks=masks, rewind_iterations=[0, 20], points=5)
    pd.testing.assert_frame_equal(result.path, again.path, check_exact=True)
    a, b = ol.training.train.snapshot(mlp), rewinding.reinitialize(mlp, 1).state_dict()
    assert all(torch.equal(v, a[n]) for n, v in stability.interpolate(a, b, 0.0).items())
    assert all(torch.equal(v, b[n]) for n, v in stability.interpolate(a, b, 1.0).items())


def test_error_barrier_by_hand():
    path = pd.DataFrame({"alpha": [0.0, 0.5, 1.0], "split": ["val"] * 3, "error": [0.1, 0.4, 0.2]})
    row = stability.error_barrier(path).iloc[0]
    assert row.barrier == pytest.approx(0.4 - 0.15) and row.end_error == pytest.approx(0.15)


@pytest.mark.parametrize("kwargs, message", [
    (dict(rewind_iterations=[60]), r"\[0, 60\)"),
    (dict(rewind_iterations=5), "rewind_iterations must be a list"),
    (dict(rewind_iterations=[]), "must not be empty"),
    (dict(rewind_iterations=[0], data_seeds=(1, 1)), "must not repeat"),
    (dict(rewind_iterations=[0], data_seeds=(1, 2, 3)), "two distinct seeds"),
    (dict(rewind_iterations=[0], points=1), "points"),
])
def test_instability_bad_arguments(mlp, synthetic, fits, kwargs, message):
    with pytest.raises(ValueError, match=message):
        instability(mlp, synthetic, **kwargs)
    assert fits == []


@pytest.mark.parametrize("masks, message", [
    (lambda m: ol.Masks({"9.weight": torch.ones(4, 4, dtype=torch.bool)}), "names no parameter"),
    (lambda m: ol.Masks({"1.weight": torch.ones(3, 3, dtype=torch.bool)}), "has shape"),
    (lambda m: {"1.weight": torch.ones_like(m[1].weight)}, "bool"),
    (lambda m: "1.weight", "must be a Masks"),
])
def test_instability_bad_masks_fail_before_the_parent_run(mlp, synthetic, fits, masks, message):
    with pytest.raises(ValueError, match=message):
        instability(mlp, synthetic, masks=masks(mlp), rewind_iterations=[0])
    assert fits == []


def test_a_shared_parent_run_gives_the_same_barriers(mlp, synthetic):
    from oneshot_lab.studies.lottery import rewinding

    train = ol.TrainConfig(lr=1e-2, batch_size=64, iterations=60, eval_every=20, schedule="cosine")
    config = stability.InstabilityConfig(train=train, rewind_iterations=[0, 20], points=3)
    alone = stability.instability(mlp, synthetic, config, progress=False)
    _, parent = rewinding.dense_run(mlp, synthetic, train, (0, 20), progress=False)
    shared = stability.instability(mlp, synthetic, config, progress=False, parent=parent)
    pd.testing.assert_frame_equal(alone.barriers, shared.barriers, check_exact=True)
    _, short = rewinding.dense_run(mlp, synthetic, train, (0,), progress=False)
    with pytest.raises(ValueError, match=r"no snapshot at k = \[20\]"):
        stability.instability(mlp, synthetic, config, progress=False, parent=short)
