"""One-shot studies: rows per method/sparsity/stage, untouched input model, validation before work."""

import pytest
import torch

from oneshot_lab import experiment
from oneshot_lab.train import TrainConfig


def test_one_shot_rows_and_model_untouched(synthetic, tiny_mlp):
    before = {k: v.clone() for k, v in tiny_mlp.state_dict().items()}
    finetune = TrainConfig(iterations=5, progress=False)
    metrics, layers = experiment.one_shot(tiny_mlp, synthetic, ["magnitude/global", "random/layer"],
                                          [0.5, 0.9], finetune=finetune)
    assert all(torch.equal(v, tiny_mlp.state_dict()[k]) for k, v in before.items())
    assert len(metrics) == 1 + 2 * 2 * 2 and set(metrics.stage) == {"dense", "one_shot", "finetuned"}
    pruned = metrics[metrics.stage == "one_shot"]
    assert pruned.density.round(2).tolist() == [0.5, 0.1, 0.5, 0.1]
    assert len(layers) == 2 * 2 * 3 and set(layers.layer) == {"1.weight", "3.weight", "5.weight"}


@pytest.mark.parametrize("methods,sparsities,match", [
    (["magnitude"], [0.5], "bad method 'magnitude'"),
    (["taylor/global"], [0.5], "criterion in"),
    (["magnitude/local"], [0.5], "scope in"),
    (["magnitude/global"], [0.5, 1.2], "sparsity must be in"),
    (["magnitude/global"], [], "sparsities is empty"),
])
def test_bad_input_fails_before_work(synthetic, tiny_mlp, methods, sparsities, match):
    with pytest.raises(ValueError, match=match):
        experiment.one_shot(tiny_mlp, synthetic, methods, sparsities)


def test_check_study_fails_fast_on_what_notebooks_use_late():
    assert [str(m) for m in experiment.check_study(["magnitude/global"], [0.5, 0.9], report_sparsity=0.9)] \
        == ["magnitude/global"]
    with pytest.raises(ValueError, match=r"report sparsity 0.8 is not one of the sparsities \[0.5, 0.9\]"):
        experiment.check_study(["magnitude/global"], [0.5, 0.9], report_sparsity=0.8)
    with pytest.raises(ValueError, match="methods is empty"):
        experiment.check_study([], [0.5])


def test_curvature_names_are_checked():
    from oneshot_lab import curvature
    assert curvature.check_names(["ggn", "hessian"]) == ["ggn", "hessian"]
    with pytest.raises(ValueError, match="unknown or no curvatures \\['diag'\\]; valid curvatures: hessian"):
        curvature.check_names(["ggn", "diag"])
