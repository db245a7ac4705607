"""`ol.prune`, the one call for every method: against torch.nn.utils.prune, the score-then-mask rule by hand, prior
masks and per-layer targets, score reuse, what a weight-updating method is asked, and bad input before any work."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.nn.utils import prune as torch_prune

import oneshot_lab as ol
from oneshot_lab.pruning import registry
from oneshot_lab.pruning.prune import score


def bits(model):
    """Every parameter's bytes, to show a model was not modified."""
    return [p.detach().clone() for p in model.parameters()]


def same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("amount", [0.0, 0.3, 0.77, 1.0])
def test_magnitude_is_torch_prune_layer_by_layer_and_globally(tiny_mlp, amount):
    names = ol.prunable(tiny_mlp)
    layer = ol.prune(tiny_mlp, None, amount, "magnitude", "layer")
    glob = ol.prune(tiny_mlp, None, amount, "magnitude", "global")
    oracle = copy.deepcopy(tiny_mlp)
    for name in names:
        torch_prune.l1_unstructured(oracle.get_submodule(name[:-7]), "weight", amount=amount)
    assert all(torch.equal(layer.masks[n], oracle.get_submodule(n[:-7]).weight_mask.bool()) for n in names)
    oracle = copy.deepcopy(tiny_mlp)
    torch_prune.global_unstructured([(oracle.get_submodule(n[:-7]), "weight") for n in names],
                                    torch_prune.L1Unstructured, amount=amount)
    assert all(torch.equal(glob.masks[n], oracle.get_submodule(n[:-7]).weight_mask.bool()) for n in names)


def test_a_scoring_method_masks_the_lowest_scores_of_a_pruned_copy(synthetic, tiny_mlp):
    before = bits(tiny_mlp)
    result = ol.prune(tiny_mlp, synthetic, 0.6, "taylor", "global", seed=2, samples=64)
    scores = score(tiny_mlp, synthetic, "taylor", seed=2, samples=64)
    assert result.masks.equal(ol.masks_from_scores(scores, 0.6, "global"))
    assert all(torch.equal(result.scores[n], scores[n]) for n in scores)
    for name, mask in result.masks.items():
        assert torch.equal(result.model.get_parameter(name), tiny_mlp.get_parameter(name) * mask)
    assert same(bits(tiny_mlp), before) and result.method == "taylor" and result.sparsity == 0.6


def test_scores_given_back_are_used_instead_of_scoring_again(synthetic, tiny_mlp):
    calls = []
    counted = ol.Method("counted", "magnitude, counting its calls",
                        score=lambda m, d, s: calls.append(s) or ol.pruning.criteria.magnitude(m))
    try:
        ol.register(counted)
        first = ol.prune(tiny_mlp, synthetic, 0.5, "counted")
        again = ol.prune(tiny_mlp, synthetic, 0.9, "counted", "layer", scores=first.scores)
        assert calls == [0] and again.masks.equal(ol.prune(tiny_mlp, synthetic, 0.9, "magnitude", "layer").masks)
    finally:
        registry.METHODS._methods.pop("counted", None)


def test_prior_masks_stay_pruned_count_toward_the_target_and_are_zero_in_the_copy(synthetic, tiny_mlp):
    prior = ol.prune(tiny_mlp, None, 0.4, "random", "layer", seed=1).masks
    result = ol.prune(tiny_mlp, synthetic, 0.7, "magnitude", "layer", masks=prior)
    under = prior.apply(copy.deepcopy(tiny_mlp))
    assert result.masks.equal(ol.masks_from_scores(ol.pruning.criteria.magnitude(under), 0.7, "layer", masks=prior))
    for name, mask in result.masks.items():
        assert not bool((mask & ~prior[name]).any())
        assert int((~mask).sum()) == round(0.7 * mask.numel())
        assert bool((result.model.get_parameter(name)[~mask] == 0).all())


def test_layer_sparsities_give_a_layer_its_own_count_and_the_rest_share_theirs(tiny_mlp):
    names = ol.prunable(tiny_mlp)
    result = ol.prune(tiny_mlp, None, 0.8, "magnitude", "global", layer_sparsities={names[-1]: 0.25})
    mask = result.masks[names[-1]]
    assert int((~mask).sum()) == round(0.25 * mask.numel())
    rest = {n: tiny_mlp.get_parameter(n).detach().abs() for n in names[:-1]}
    assert all(torch.equal(result.masks[n], m) for n, m in ol.masks_from_scores(rest, 0.8, "global").items())


def test_a_weight_updating_method_is_asked_for_its_groups_and_keeps_its_updates(synthetic, tiny_mlp):
    seen = []

    def record(request):
        """Prune by magnitude, remember what was asked."""
        seen.append(request)
        scores = {n: request.model.get_parameter(n).detach().abs() for n in request.keep}
        return ol.pruning.prune.Outcome(ol.pruning.prune.select(scores, request.keep, request.targets),
                                        errors={n: 1.0 for n in request.keep}, predicted_increase=2.0)

    try:
        ol.register(ol.Method("recorder", "magnitude, recording its request", run=record, needs=("data",)))
        prior = ol.prune(tiny_mlp, None, 0.3, "random", "layer", seed=4).masks
        names = ol.prunable(tiny_mlp)
        result = ol.prune(tiny_mlp, synthetic, 0.6, "recorder", "global", masks=prior, seed=9,
                          layer_sparsities={names[0]: 0.5})
        request = seen[0]
        assert request.seed == 9 and request.scope == "global" and request.prior.equal(prior)
        pool = names[1:]
        assert request.groups == [((names[0],), round(0.5 * prior[names[0]].numel())),
                                  (tuple(pool), round(0.6 * sum(prior[n].numel() for n in pool)))]
        assert request.model is not tiny_mlp and result.predicted_increase == 2.0
        assert result.table().error.tolist() == [1.0] * len(names)
    finally:
        registry.METHODS._methods.pop("recorder", None)


@pytest.mark.parametrize("kwargs, message", [
    (dict(method="nosuch"), "unknown method 'nosuch'; valid choices: magnitude, random"),
    (dict(sparsity=1.5), "sparsity must be a number in [0.0, 1.0], got 1.5"),
    (dict(scope="row"), "unknown scope 'row'; valid choices: global, layer"),
    (dict(seed=-1), "seed must be an integer"),
    (dict(method="taylor", samples=0), "samples must be an integer in [1, 10000000]"),
    (dict(method="magnitude", samples=10), "method 'magnitude' has no option 'samples'; its options: none"),
    (dict(method="taylor", data=None), "method 'taylor' needs training data"),
    (dict(model="net"), "prunes a torch nn.Module, got str"),
    (dict(method="obc", scores={}), "method 'obc' computes no scores"),
    (dict(masks={"0.weight": torch.ones(2, dtype=torch.bool)}), "masks name '0.weight', not a prunable parameter"),
])
def test_bad_input_is_one_line_naming_the_value_before_any_work(synthetic, tiny_mlp, monkeypatch, kwargs, message):
    monkeypatch.setattr(ol.pruning.criteria, "taylor", lambda *a, **k: pytest.fail("work started"))
    args = dict(model=tiny_mlp, data=synthetic, sparsity=0.5, method="taylor")
    args.update(kwargs)
    with pytest.raises(ValueError) as error:
        ol.prune(**args)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_score_refuses_a_method_that_makes_its_own_masks(synthetic, tiny_mlp):
    with pytest.raises(ValueError, match="method 'obc' computes no scores .* scoring methods: magnitude, random"):
        score(tiny_mlp, synthetic, "obc")


@pytest.mark.parametrize("returned, message", [
    (lambda keep: {n: m.clone() for n, m in keep.items()}, "pruned 0 entries of"),
    (lambda keep: {n: torch.zeros_like(m) for n, m in keep.items()}, "pruned 480 entries of .* asked for 240"),
    (lambda keep: {}, "returned no mask of shape"),
])
def test_a_run_method_must_prune_exactly_what_it_was_asked(synthetic, tiny_mlp, returned, message):
    try:
        ol.register(ol.Method("sloppy", "returns whatever", run=lambda request: ol.Masks(returned(request.keep))))
        with pytest.raises(ValueError, match=f"method 'sloppy' {message}"):
            ol.prune(tiny_mlp, synthetic, 0.5, "sloppy")
    finally:
        registry.METHODS._methods.pop("sloppy", None)


def test_a_run_method_may_not_revive_entries_pruned_before(synthetic, tiny_mlp):
    prior = ol.prune(tiny_mlp, None, 0.5, "random", "layer", seed=2).masks

    def revive(request):
        """Prune the right number of entries, but not the ones pruned before."""
        flipped = {n: ~m for n, m in request.keep.items()}  # as many pruned as kept at 0.5 in every layer
        return ol.Masks(flipped)

    try:
        ol.register(ol.Method("reviver", "revives", run=revive))
        with pytest.raises(ValueError, match="method 'reviver' revived .* entries of '1.weight' that were pruned"):
            ol.prune(tiny_mlp, synthetic, 0.5, "reviver", "layer", masks=prior)
    finally:
        registry.METHODS._methods.pop("reviver", None)


@pytest.mark.parametrize("scores, message", [
    (lambda m: {"1.weight": m[1].weight.abs()}, "returned no scores for '3.weight'"),
    (lambda m: {n: p.detach().flatten() for n, p in m.named_parameters() if n.endswith("weight")},
     r"the scores of '1.weight' have shape \(320,\), the weight has \(16, 20\)"),
    (lambda m: [1, 2], "returned list, not"),
])
def test_a_scoring_method_must_score_every_weight_in_its_shape(tiny_mlp, scores, message):
    try:
        ol.register(ol.Method("bad_scores", "wrong scores", score=lambda m, d, s: scores(m)))
        with pytest.raises(ValueError, match=message):
            ol.prune(tiny_mlp, None, 0.5, "bad_scores")
    finally:
        registry.METHODS._methods.pop("bad_scores", None)


def test_a_scoring_method_never_sees_the_callers_model(synthetic):
    net = torch.nn.Sequential(torch.nn.Linear(20, 16), torch.nn.BatchNorm1d(16), torch.nn.ReLU(), torch.nn.Dropout(0.5),
                              torch.nn.Linear(16, 4)).train()
    before = copy.deepcopy(net.state_dict())

    def meddling(model, data, seed):
        """Runs the model in whatever mode it is in and scales its weights: harmless only on a copy."""
        model(data.train.x[:64])
        for name in ol.prunable(model):
            model.get_parameter(name).data.mul_(2)
        return {n: model.get_parameter(n).detach().abs() for n in ol.prunable(model)}

    try:
        ol.register(ol.Method("meddling", "touches its model", score=meddling, needs=("data",)))
        a = ol.prune(net, synthetic, 0.5, "meddling")
        b = ol.prune(net, synthetic, 0.5, "meddling")
        assert all(torch.equal(before[k], v) for k, v in net.state_dict().items()) and net.training
        assert a.masks.equal(b.masks) and not a.model.training  # eval-mode working copy: no dropout, same masks
    finally:
        registry.METHODS._methods.pop("meddling", None)


def test_a_model_pruned_with_torch_prune_is_pruned_by_every_kind_of_method(synthetic, tiny_mlp):
    torch_prune.l1_unstructured(tiny_mlp[1], "weight", amount=0.3)
    for method, options in (("magnitude", {}), ("obc", {"samples": 64}), ("obs", {"samples": 64})):
        result = ol.prune(tiny_mlp, synthetic, 0.6, method, **options)
        assert result.masks.sparsity() == pytest.approx(0.6, abs=1e-3) and not result.model.training
    assert ol.METHODS["obs"].unsupported(tiny_mlp) is None


def test_a_run_method_returning_float_masks_is_a_clear_error(synthetic, tiny_mlp):
    try:
        ol.register(ol.Method("floaty", "float masks", run=lambda r: {n: m.float() for n, m in r.keep.items()}))
        with pytest.raises(ValueError, match="method 'floaty' returned bad masks: mask '1.weight' must be a bool"):
            ol.prune(tiny_mlp, synthetic, 0.5, "floaty")
    finally:
        registry.METHODS._methods.pop("floaty", None)


def test_methods_registered_in_the_session_run_in_this_process_with_the_same_results(synthetic):
    half = ol.Method("session_magnitude", "|w|", score=lambda m, d, s: ol.pruning.criteria.magnitude(m))
    recipe = ol.TrainConfig(iterations=20, eval_every=10)
    try:
        ol.register(half)
        study = ol.studies.oneshot.OneShotConfig(methods=["session_magnitude/global"], sparsities=[0.5])
        with pytest.warns(UserWarning, match="session_magnitude registered with ol.register run in this process"):
            spread = ol.studies.oneshot.replicate("synthetic", "mlp", recipe, study, [0, 1], {"widths": [8]},
                                                  progress=False, workers=2)
        here = ol.studies.oneshot.replicate("synthetic", "mlp", recipe, study, [0, 1], {"widths": [8]},
                                            progress=False, workers=0)
        assert spread.metrics.equals(here.metrics)
    finally:
        registry.METHODS._methods.pop("session_magnitude", None)


class Twice(torch.nn.Module):
    """One Linear applied twice in forward (registered once)."""

    def __init__(self):
        super().__init__()
        self.lin, self.out = torch.nn.Linear(20, 20), torch.nn.Linear(20, 4)

    def forward(self, x):
        return self.out(torch.relu(self.lin(torch.relu(self.lin(x)))))


class Slicer(torch.nn.Module):
    """A model without parameters."""

    def forward(self, x):
        return x[:, :4]


def shared_module():
    lin = torch.nn.Linear(20, 20)
    return torch.nn.Sequential(lin, torch.nn.ReLU(), lin, torch.nn.ReLU(), torch.nn.Linear(20, 4))


def tied_weights():
    model = torch.nn.Sequential(torch.nn.Linear(20, 20), torch.nn.ReLU(), torch.nn.Linear(20, 20), torch.nn.ReLU(),
                                torch.nn.Linear(20, 4))
    model[2].weight = model[0].weight
    return model


def weight_not_a_parameter():
    model = torch.nn.Sequential(torch.nn.Linear(20, 4))
    weight = model[0].weight.detach().clone()
    del model[0].weight
    model[0].weight = weight
    return model


def mlp(inputs: int = 20, classes: int = 4, dtype=torch.float32):
    return torch.nn.Sequential(torch.nn.Linear(inputs, 8), torch.nn.ReLU(), torch.nn.Linear(8, classes)).to(dtype)


SHAPES = {  # model -> the one-line ValueError every entry point gives (issue 24: raw AttributeError, KeyError ...)
    "shared module": (shared_module, "layer '0' is also layer '2' (one module in two places)"),
    "module applied twice": (Twice, "layer 'lin' is applied 2 times in one forward pass (a shared module)"),
    "tied weights": (tied_weights, "parameters '0.weight' and '2.weight' are one tensor (tied weights)"),
    "no parameters": (Slicer, "model has no prunable layers"),
    "weight not a parameter": (weight_not_a_parameter, "prunable weight '0.weight' is a Tensor of torch.float32, not a "
                                                       "floating-point parameter"),
    "input shape": (lambda: mlp(inputs=30), "the model cannot take the data: one example of synthetic (shape (1, 20)) "
                                            "raised RuntimeError: mat1 and mat2 shapes cannot be multiplied"),
    "dtype": (lambda: mlp(dtype=torch.float64), "the model's parameters are torch.float64 but the data (synthetic) is "
                                                "torch.float32"),
    "too few outputs": (lambda: mlp(classes=3), "the model maps one example of synthetic to (1, 3); the pruners need "
                                                "logits of shape (1, 4)"),
}


def entry_points(data):
    """Every entry point that prunes a model the user gives, with the least work each."""
    from oneshot_lab.studies import iterative, obd_calibration, oneshot
    from oneshot_lab.studies.lottery import rewinding, stability

    study = oneshot.OneShotConfig(methods=("magnitude/global", "obs/global"), sparsities=(0.5,), finetune=None,
                                  from_init=None, budgets=(), control_sparsities=())
    return {
        "prune magnitude": lambda m: ol.prune(m, data, 0.5, "magnitude"),
        "prune obs": lambda m: ol.prune(m, data, 0.5, "obs"),
        "prune obc": lambda m: ol.prune(m, data, 0.5, "obc", "layer"),
        "score obd": lambda m: score(m, data, "obd"),
        "one_shot": lambda m: oneshot.one_shot(m, data, study, progress=False),
        "iterative": lambda m: iterative.prune(m, data, iterative.IterativeConfig(
            criterion="taylor", sparsities=(0.5,), retrain=ol.TrainConfig(epochs=0)), progress=False),
        "imp": lambda m: rewinding.imp(m, data, rewinding.IMPConfig(levels=1, train=ol.TrainConfig(iterations=2),
                                                                    criterion="taylor"), progress=False),
        "iterative replicate": lambda m: iterative.replicate({0: m}, "synthetic", iterative.IterativeConfig(
            sparsities=(0.5,), retrain=ol.TrainConfig(epochs=0)), ["magnitude"], workers=0),
        "obd calibration": lambda m: obd_calibration.calibration(m, data, "ggn", [0.5], samples=8),
        "instability": lambda m: stability.instability(m, data, stability.InstabilityConfig(
            train=ol.TrainConfig(iterations=2), points=2), progress=False),
    }


@pytest.mark.parametrize("shape", list(SHAPES))
def test_a_model_the_pruners_cannot_take_is_one_value_error_before_any_work_from_every_entry_point(synthetic, shape):
    make, message = SHAPES[shape]
    for entry, call in entry_points(synthetic).items():
        model = make()
        before = bits(model)
        with pytest.raises(ValueError) as error:
            call(model)
        assert message in str(error.value) and "\n" not in str(error.value), (entry, str(error.value))
        assert same(before, bits(model)), entry


def test_the_fit_check_is_one_forward_pass_on_a_copy_and_leaves_the_model_and_the_rng_alone(synthetic):
    from oneshot_lab.core.model_checks import check_model

    model = torch.nn.Sequential(torch.nn.Linear(20, 8), torch.nn.Dropout(0.5), torch.nn.Linear(8, 4)).train()
    before, state = bits(model), torch.random.get_rng_state()
    assert check_model(model, synthetic) == ["0.weight", "2.weight"]
    assert model.training and same(before, bits(model)) and torch.equal(state, torch.random.get_rng_state())
    assert not model._forward_hooks and not model[0]._forward_hooks


@pytest.mark.parametrize("labels,shown", [(torch.rand(32), "torch.float32"), (torch.full((32,), 9), "from 9 to 9"),
                                          (torch.full((32,), -1), "from -1 to -1")])
def test_labels_that_are_not_classes_of_the_data_are_one_value_error(labels, shown):
    """Battery: float labels (RuntimeError) and labels beyond num_classes (IndexError) reached the loss raw."""
    from oneshot_lab.core.data import Dataset, Split

    split = Split(torch.randn(32, 20), labels)
    with pytest.raises(ValueError, match=f"training labels of x are {shown}; the pruners need integer class labels "
                                         r"in \[0, 3\]"):
        ol.prune(mlp(), Dataset("x", split, split, split, 4), 0.5, "taylor")
