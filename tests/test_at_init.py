"""Pruning at initialisation (SNIP, GraSP, SynFlow) against oracles: autograd and torch.func's Hessian, SynFlow's
closed form on two-layer networks, exact counts, inversion, the iterative schedule and bad options."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.func import functional_call, grad, hessian

import oneshot_lab as ol
from oneshot_lab.core.masks import working_copy
from oneshot_lab import cli
from oneshot_lab.core.data import sample
from oneshot_lab.interactive import explorer, widgets
from oneshot_lab.pruning import at_init
from oneshot_lab.pruning.prune import Request, targets

AT_INIT = ("snip", "grasp", "synflow")


def bits(model: nn.Module) -> list[torch.Tensor]:
    """Every parameter's values, to show a model was not modified."""
    return [p.detach().clone() for p in model.parameters()]


def untouched(model: nn.Module, before: list[torch.Tensor]) -> bool:
    """Whether `model`'s parameters still equal `before` bit for bit."""
    return all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def two_layers(relu: bool = False, seed: int = 0) -> nn.Sequential:
    """A 5-4-3 network of two Linear layers (signed weights, large biases), optionally a ReLU between them."""
    gen = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Linear(5, 4), *([nn.ReLU()] if relu else []), nn.Linear(4, 3))
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.randn(p.shape, generator=gen) + (5.0 if name.endswith("bias") else 0.0))
    return model


def closed_form(model: nn.Sequential) -> dict[str, torch.Tensor]:
    """SynFlow's scores of a two-layer network by hand: |W1_ij| sum_k |W2_ki| and |W2_ki| sum_j |W1_ij|."""
    (n1, w1), (n2, w2) = [(n, p.detach().double().abs()) for n, p in model.named_parameters() if n.endswith("weight")]
    return {n1: w1 * w2.sum(0)[:, None], n2: w2 * w1.sum(1)[None, :]}


@pytest.mark.parametrize("temperature", [1.0, 200.0])
def test_grasp_is_w_times_the_hessian_gradient_product_of_torch_func(float64_data, float64_mlp, temperature):
    data, model = float64_data, float64_mlp("tanh")
    before = bits(model)
    x, y = data.train
    names = ol.prunable(model)
    fixed = {n: p.detach() for n, p in model.named_parameters() if n not in names}
    shapes = [model.get_parameter(n).shape for n in names]
    flat = torch.cat([model.get_parameter(n).detach().flatten() for n in names])

    def loss(theta: torch.Tensor) -> torch.Tensor:
        pieces = dict(zip(names, (p.view(s) for p, s in zip(theta.split([s.numel() for s in shapes]), shapes))))
        logits = functional_call(model, {**fixed, **pieces}, (x,)) / temperature
        return nn.functional.cross_entropy(logits, y)

    hg = hessian(loss)(flat) @ grad(loss)(flat)
    expected = dict(zip(names, (flat * hg).split([s.numel() for s in shapes])))
    scores = at_init.grasp_scores(model, data, samples=len(y), batch_size=24, temperature=temperature)
    assert untouched(model, before) and set(scores) == set(names)
    for name, shape in zip(names, shapes):
        assert torch.allclose(scores[name], expected[name].view(shape), rtol=1e-10, atol=1e-10 * hg.abs().max())
    # GraSP removes the weights of HIGHEST S = -w Hg: the registry's masks prune exactly those.
    pruned = ol.prune(model, data, 0.4, "grasp", samples=len(y), batch_size=24, temperature=temperature)
    s = -torch.cat([expected[n] for n in names])
    kept = torch.cat([pruned.masks[n].flatten() for n in names])
    assert int((~kept).sum()) == round(0.4 * len(s)) and s[~kept].min() > s[kept].max()


@pytest.mark.parametrize("relu", [False, True])
def test_synflow_is_the_closed_form_of_a_two_layer_network_biases_ignored(relu):
    model = two_layers(relu)
    before = bits(model)
    scores = at_init.synflow_scores(model, (5,))
    expected = closed_form(model)
    assert untouched(model, before) and set(scores) == set(expected)
    for name, value in expected.items():
        assert scores[name].dtype == torch.float64 and torch.allclose(scores[name], value, rtol=1e-12, atol=0)
    for scope in ("global", "layer"):
        one_shot = ol.prune(model, None, 0.5, "synflow", scope, rounds=1)
        assert one_shot.masks.equal(ol.masks_from_scores(expected, 0.5, scope))


def test_synflow_runs_without_data_and_refuses_a_conv_model_it_cannot_feed(synthetic):
    net = ol.build("mlp", synthetic, seed=0, widths=(16, 8))
    pruned = ol.prune(net, None, 0.9, "synflow")
    n = sum(m.numel() for m in pruned.masks.values())
    assert ol.METHODS["synflow"].needs == () and "data-free" in ol.METHODS["synflow"].help
    assert n - pruned.masks.count()[0] == round(0.9 * n)
    assert pruned.masks.equal(ol.prune(net, synthetic, 0.9, "synflow").masks)  # the input width is the data's
    conv = nn.Sequential(nn.Conv1d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(12, 3))
    with pytest.raises(ValueError, match=r"^method 'synflow' cannot tell the input shape .* Conv1d: pass data= a "
                                         r"Dataset or input_shape=\[...\][^\n]*$"):
        ol.prune(conv, None, 0.9, "synflow")
    assert ol.prune(conv, None, 0.9, "synflow", input_shape=[1, 8], rounds=3).masks.count() == (42 - 38, 42)
    with pytest.raises(ValueError, match=r"^method 'synflow': the model cannot take an input of shape \(1, 9\)"):
        ol.prune(conv, None, 0.9, "synflow", input_shape=[1, 9])


def test_snip_is_abs_gradient_times_weight_on_its_minibatch(float64_data, float64_mlp):
    data, model = float64_data, float64_mlp("relu")
    before = bits(model)
    x, y = sample(data, 20, seed=3)
    loss = nn.functional.cross_entropy(model(x), y)
    names = ol.prunable(model)
    grads = torch.autograd.grad(loss, [model.get_parameter(n) for n in names])
    expected = {n: (g * model.get_parameter(n)).detach().abs() for n, g in zip(names, grads)}
    scores = at_init.snip_scores(model, data, samples=20, batch_size=7, seed=3)
    assert untouched(model, before)
    assert all(torch.allclose(scores[n], expected[n], rtol=1e-12, atol=1e-15) for n in names)
    pruned = ol.prune(model, data, 0.6, "snip", "layer", seed=3, samples=20)
    assert pruned.masks.equal(ol.masks_from_scores(expected, 0.6, "layer"))


@pytest.mark.parametrize("method", AT_INIT)
@pytest.mark.parametrize("scope", ["global", "layer"])
@pytest.mark.parametrize("rounds", [1, 4])
@pytest.mark.parametrize("prior", [False, True])
def test_counts_are_exact_and_earlier_pruning_stays(synthetic, tiny_mlp, method, scope, rounds, prior):
    keep = ol.prune(tiny_mlp, None, 0.2, "random", "layer", seed=5).masks if prior else None
    before = bits(tiny_mlp)
    for sparsity in (0.3, 0.9, 0.99):
        pruned = ol.prune(tiny_mlp, synthetic, sparsity, method, scope, masks=keep, rounds=rounds)
        groups = [[n] for n in pruned.masks] if scope == "layer" else [list(pruned.masks)]
        for layers in groups:
            n = sum(pruned.masks[name].numel() for name in layers)
            assert sum(int((~pruned.masks[name]).sum()) for name in layers) == round(sparsity * n)
        if keep is not None:
            assert all(not bool((pruned.masks[n] & ~keep[n]).any()) for n in keep)
        assert all(bool((pruned.model.get_parameter(n)[~m] == 0).all()) for n, m in pruned.masks.items())
    assert untouched(tiny_mlp, before)


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_invert_keeps_exactly_the_lowest_scores(synthetic, tiny_mlp, scope):
    scores = {"snip": at_init.snip_scores(tiny_mlp, synthetic),
              "grasp": at_init.grasp_scores(tiny_mlp, synthetic),
              "synflow": at_init.synflow_scores(tiny_mlp, synthetic.input_shape)}
    for method, score in scores.items():
        inverted = ol.prune(tiny_mlp, synthetic, 0.7, method, scope, rounds=1, invert=True).masks
        assert inverted.equal(ol.masks_from_scores({n: -s for n, s in score.items()}, 0.7, scope)), method
        plain = ol.prune(tiny_mlp, synthetic, 0.7, method, scope, rounds=1).masks
        assert plain.equal(ol.masks_from_scores(score, 0.7, scope)), method


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_each_round_prunes_to_the_exponential_schedule(tiny_mlp, scope):
    sparsity, rounds = 0.95, 5
    keep = ol.Masks.ones(tiny_mlp)
    request = Request(tiny_mlp, None, targets(keep, sparsity, scope, {}), keep, scope, 0, {})
    groups = [[n] for n in keep] if scope == "layer" else [list(keep)]
    seen = []

    def spy(masks: ol.Masks) -> dict[str, torch.Tensor]:
        """Magnitude scores under `masks`, recording the weights each group keeps in the network scored."""
        net = masks.apply(working_copy(tiny_mlp))
        seen.append([sum(int((net.get_parameter(n) != 0).sum()) for n in layers) for layers in groups])
        return {n: net.get_parameter(n).detach().abs() for n in keep}

    before = bits(tiny_mlp)
    masks = at_init.iterate(request, spy, rounds, invert=False)
    sizes = [sum(keep[n].numel() for n in layers) for layers in groups]
    expected = [[n - round((1 - (1 - sparsity) ** (k / rounds)) * n) for n in sizes] for k in range(rounds)]
    assert seen == expected and untouched(tiny_mlp, before)
    assert [sum(int(masks[n].sum()) for n in layers) for layers in groups] == [n - round(sparsity * n) for n in sizes]


@pytest.mark.parametrize("method, options, message", [
    ("snip", {"rounds": 0}, r"rounds must be an integer in \[1, 10000\], got 0"),
    ("grasp", {"temperature": -1}, r"temperature must be a number > 0.0, got -1.0"),
    ("snip", {"invert": "yes"}, r"invert must be True or False, got 'yes'"),
    ("synflow", {"input_shape": [0]}, r"input_shape\[0\] must be an integer in \[1, 100000\], got 0"),
    ("grasp", {"rounds": 10_001}, r"rounds must be an integer in \[1, 10000\], got 10001"),
])
def test_bad_options_are_one_line_errors_before_any_work(synthetic, tiny_mlp, monkeypatch, method, options, message):
    monkeypatch.setattr(at_init, "iterate", lambda *a, **k: pytest.fail("pruned despite a bad option"))
    with pytest.raises(ValueError, match=rf"^{message}$"):
        ol.prune(tiny_mlp, synthetic, 0.5, method, **options)


def test_registry_entries_have_the_agreed_names_options_and_needs():
    defaults = {"snip": {"samples": 100, "batch_size": 256, "rounds": 1, "invert": False},
                "grasp": {"samples": 256, "batch_size": 256, "temperature": 200.0, "rounds": 1, "invert": False},
                "synflow": {"rounds": 100, "invert": False, "input_shape": None}}
    for name, options in defaults.items():
        entry = ol.METHODS[name]
        assert entry.check_options({}) == options and not entry.updates_weights and entry.run is not None
        assert entry.needs == (() if name == "synflow" else ("data",))
    assert ol.METHODS["synflow"].check_options({"input_shape": [1, 40]})["input_shape"] == [1, 40]


def test_the_explorer_and_params_offer_them_on_an_untrained_network(synthetic, capsys):
    net = ol.build("mlp", synthetic, seed=0, widths=(16, 8))
    assert set(AT_INIT) <= set(explorer.supported_methods(net))
    pruner = widgets.explore(net, synthetic, criterion="synflow", finetune=None)
    assert set(AT_INIT) <= set(pruner.criterion.options)
    assert pruner.view.masks.equal(ol.prune(net, synthetic, 0.9, "synflow").masks)
    state = explorer.PruningState(net, synthetic)
    for name in ("snip", "grasp"):
        assert state.masks(state.setting(name, 0.8, "layer")).equal(ol.prune(net, synthetic, 0.8, name, "layer").masks)
    assert cli.main(["params", "01"]) == 0
    listing = capsys.readouterr().out
    assert all(f"\n  {name}: " in listing for name in AT_INIT) and "data-free" in listing


def test_synflow_refuses_a_network_whose_activations_are_not_relu_like(synthetic):
    tanh = ol.build("mlp", synthetic, widths=(8,), activation="tanh")
    with pytest.raises(ValueError, match="method 'synflow' cannot prune this model: .* layer '2' is Tanh"):
        ol.prune(tanh, synthetic, 0.5, "synflow")
    assert ol.METHODS["synflow"].unsupported(ol.build("mlp", synthetic, widths=(8,))) is None
    assert ol.METHODS["snip"].unsupported(tanh) is None  # SNIP and GraSP take any differentiable network


def test_with_earlier_pruning_the_schedule_starts_from_what_is_kept(tiny_mlp):
    keep = ol.Masks({n: torch.rand(m.shape, generator=torch.Generator().manual_seed(1)) < 0.5
                     for n, m in ol.Masks.ones(tiny_mlp).items()})
    sparsity, rounds = 0.95, 4
    request = Request(keep.apply(working_copy(tiny_mlp)), None, targets(keep, sparsity, "global", {}), keep, "global",
                      0, {})
    n, kept = keep.count()[1], keep.count()[0]
    d0, d = kept / n, 1 - sparsity
    plans = at_init.schedule(request, rounds)
    assert [round(p[0][1], 12) for p in plans] == [round(1 - d0 * (d / d0) ** (k / rounds), 12) for k in range(1, 5)]
    assert plans[0][0][1] > 1 - d0  # the first round already prunes beyond what was pruned before
