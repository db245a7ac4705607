"""Pruning at initialisation: SNIP, GraSP and SynFlow, one-shot or iterative, as registry methods.

Each score function leaves its model untouched and returns `{prunable parameter name: scores}` shaped like the
weights, low scores pruned first (the registry's convention). The methods score the weights they are given, so on
a freshly built network they prune at initialisation:

- "snip" (Lee et al. 2019): |g ⊙ w|, g the mean-loss gradient over one seeded minibatch (`criteria.taylor`);
  rounds > 1 is iterative SNIP (de Jorge et al. 2021).
- "grasp" (Wang et al. 2020): w ⊙ Hg, the Hessian-gradient product of the temperature-scaled loss by double
  backward; GraSP removes the highest −w ⊙ Hg, i.e. the lowest registry score.
- "synflow" (Tanaka et al. 2020): |∂R/∂w ⊙ w| of the path norm R of the absolute network on an all-ones input;
  no data needed; 100 rounds by default.

All three share `iterate`: rounds k = 1..R, after round k each group keeps the density d^(k/R) (d = 1 − its target
sparsity; from what earlier masks keep when there are some; the last round exactly the registry's count), each round
re-scoring the network under the current masks;
invert=True keeps the lowest scores instead (the inversion sanity check of Frankle et al. 2021).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from ..core.data import Dataset, sample
from ..core.masks import Masks, prunable, working_copy
from ..util.rules import MAX_UNITS, Rule
from .criteria import BATCH, taylor
from .prune import Request, select
from .registry import Method, Option

Scores = dict[str, torch.Tensor]
Scorer = Callable[[Masks], Scores]  # the scores of the network under the masks given
MAX_ROUNDS = 10_000


def snip_scores(model: nn.Module, data: Dataset, samples: int = 100, batch_size: int = 256, seed: int = 0) -> Scores:
    """SNIP's connection sensitivity |g ⊙ w|, g the mean cross-entropy gradient over `samples` seeded examples."""
    return taylor(model, data, samples=samples, batch_size=batch_size, seed=seed)


def grasp_scores(model: nn.Module, data: Dataset, samples: int = 256, batch_size: int = 256, seed: int = 0,
                 temperature: float = 200.0) -> Scores:
    """GraSP's scores in the registry's sign: w ⊙ Hg, low pruned first.

    L is the mean cross-entropy of logits / `temperature` over `samples` seeded training examples, g = ∇L and H
    its Hessian, both with respect to the prunable weights only (biases held fixed), Hg by double backward as the
    reference code does it. GraSP's own score is S = −w ⊙ Hg and it removes the weights of HIGHEST S, which are
    the weights of lowest w ⊙ Hg = −S: the same masks.
    """
    clone = working_copy(model)
    names = prunable(clone)
    for param in clone.parameters():
        param.requires_grad_(False)
    weights = [clone.get_parameter(n).requires_grad_(True) for n in names]
    x, y = sample(data, samples, seed)

    def batch_losses() -> Iterator[torch.Tensor]:
        """The batches' shares of the mean loss (they sum to L)."""
        for start in range(0, len(y), int(batch_size)):
            logits = clone(x[start:start + batch_size]) / temperature
            yield nn.functional.cross_entropy(logits, y[start:start + batch_size], reduction="sum") / len(y)

    g = [torch.zeros_like(w) for w in weights]
    for loss in batch_losses():
        for total, part in zip(g, torch.autograd.grad(loss, weights)):
            total.add_(part)
    hg = [torch.zeros_like(w) for w in weights]
    for loss in batch_losses():
        grads = torch.autograd.grad(loss, weights, create_graph=True)
        z = sum((fixed * part).sum() for fixed, part in zip(g, grads))
        for total, part in zip(hg, torch.autograd.grad(z, weights)):
            total.add_(part)
    return {n: (w.detach() * h).detach() for n, w, h in zip(names, weights, hg)}


def synflow_network(model: nn.Module) -> tuple[nn.Module, Scores]:
    """SynFlow's network: a float64 copy in eval mode, every parameter |.|, every bias 0; and its prunable weights."""
    clone = working_copy(model).double()
    with torch.no_grad():
        for name, param in clone.named_parameters():
            if name.rpartition(".")[2] == "bias":
                param.zero_()
            else:
                param.abs_()
    return clone, {n: clone.get_parameter(n).detach().clone() for n in prunable(clone)}


def path_scores(clone: nn.Module, weights: Scores, input_shape: tuple[int, ...], masks: Masks | None = None) -> Scores:
    """|∂R/∂w ⊙ w| on `synflow_network`'s `clone` with its absolute `weights` times `masks` (one forward and backward)."""
    with torch.no_grad():
        for name, weight in weights.items():
            clone.get_parameter(name).copy_(weight if masks is None else weight * masks[name])
    clone.zero_grad(set_to_none=True)
    try:
        output = clone(torch.ones(1, *input_shape, dtype=torch.float64))
    except RuntimeError as error:
        raise ValueError(f"method 'synflow': the model cannot take an input of shape {tuple(input_shape)} "
                         f"({str(error).splitlines()[0]}); pass input_shape= one example's shape") from None
    output.sum().backward()
    out = {}
    for name in weights:
        weight = clone.get_parameter(name)
        grad = weight.grad if weight.grad is not None else torch.zeros_like(weight)
        out[name] = (grad * weight).detach().abs()
    return out


def synflow_scores(model: nn.Module, input_shape: tuple[int, ...] | list[int]) -> Scores:
    """SynFlow's scores |∂R/∂w ⊙ w| in float64 (whatever the model's dtype), R the path norm 1ᵀ(∏|W|)1.

    On a float64 copy in eval mode every parameter is replaced by its absolute value and every bias set to zero
    (the paper's R; the reference code keeps |b|), and R is the sum of the output on an all-ones input of shape
    (1, *input_shape). Float64 throughout, so deep products neither overflow nor tie by rounding.
    """
    return path_scores(*synflow_network(model), tuple(input_shape))


PASS_POSITIVE = (nn.ReLU, nn.LeakyReLU, nn.Identity, nn.Flatten, nn.Dropout, nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d,
                 nn.AvgPool2d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d)  # f(c x) = c f(x) for c, x >= 0


def path_norm_model(model: nn.Module, options: dict | None = None) -> str | None:
    """Why SynFlow's score is not the path norm of `model` (a parameter-free layer that is not ReLU-like), or None."""
    for name, module in model.named_modules():
        if name and not list(module.children()) and not list(module.parameters()) and \
                not isinstance(module, PASS_POSITIVE):
            return (f"SynFlow scores the path norm of a network whose activations pass non-negative inputs scaled "
                    f"(ReLU-like); layer {name!r} is {type(module).__name__}")
    return None


def synflow_input_shape(model: nn.Module, data: Dataset | None, given: Any = None) -> tuple[int, ...]:
    """SynFlow's input shape: `given`, else that of `data`, else the first prunable layer's inputs if a Linear."""
    if given is not None:
        return tuple(int(n) for n in given)
    if isinstance(data, Dataset):
        return tuple(data.input_shape)
    first = model.get_submodule(prunable(model)[0].rpartition(".")[0])
    if isinstance(first, nn.Linear):
        return (first.in_features,)
    raise ValueError(f"method 'synflow' cannot tell the input shape of a model whose first prunable layer is a "
                     f"{type(first).__name__}: pass data= a Dataset or input_shape=[...] (one example's shape)")


def schedule(request: Request, rounds: int) -> list[list[tuple[tuple[str, ...], float]]]:
    """Each round's targets: after round k of R a group keeps the density d0 (d / d0)^(k/R), d0 what `request.keep`
    keeps of it and d = 1 − its target (d^(k/R) without earlier pruning); the last round exactly `request.targets`."""
    start = {layers: kept_fraction(request.keep, layers) for layers, _ in request.targets}
    plans = [[(layers, 1.0 - start[layers] * ((1.0 - s) / start[layers]) ** (k / rounds) if start[layers] else s)
              for layers, s in request.targets] for k in range(1, rounds)]
    return plans + [list(request.targets)]


def kept_fraction(masks: Masks, layers: tuple[str, ...]) -> float:
    """The fraction of the entries of `layers` that `masks` keeps."""
    return sum(int(masks[n].sum()) for n in layers) / sum(masks[n].numel() for n in layers)


def iterate(request: Request, scorer: Scorer, rounds: int, invert: bool) -> Masks:
    """The masks after `rounds` of `scorer` on the network under the masks so far, pruning to `schedule`."""
    masks = request.keep
    for plan in schedule(request, rounds):
        scores = scorer(masks)
        if invert:
            scores = {n: -s for n, s in scores.items()}
        masks = select(scores, masks, plan)
    return masks


def run_snip(request: Request) -> Masks:
    """SNIP, one-shot or iterative, on the working copy."""
    o = request.options
    return iterate(request, lambda masks: snip_scores(masks.apply(working_copy(request.model)), request.data,
                                                      o["samples"], o["batch_size"], request.seed),
                   o["rounds"], o["invert"])


def run_grasp(request: Request) -> Masks:
    """GraSP, one-shot or iterative, on the working copy."""
    o = request.options
    return iterate(request, lambda masks: grasp_scores(masks.apply(working_copy(request.model)), request.data,
                                                       o["samples"], o["batch_size"], request.seed, o["temperature"]),
                   o["rounds"], o["invert"])


def run_synflow(request: Request) -> Masks:
    """SynFlow over its rounds on the working copy (the input shape resolved before any scoring)."""
    o = request.options
    shape = synflow_input_shape(request.model, request.data, o["input_shape"])
    clone, weights = synflow_network(request.model)  # made once; each round only masks its weights
    return iterate(request, lambda masks: path_scores(clone, weights, shape, masks), o["rounds"], o["invert"])


def rounds_option(default: int, help: str) -> Option:
    """The `rounds` option with `default`."""
    return Option("rounds", default, help, Rule("int", 1, MAX_ROUNDS))


INVERT = Option("invert", False, "keep the lowest scores instead (the inversion check of Frankle et al. 2021)",
                Rule("bool"))
ROUNDS = rounds_option(1, "rounds of re-scoring with the exponential sparsity schedule (1: one shot)")

METHODS = (
    Method("snip", "SNIP |g w| on one minibatch at the weights given (Lee et al. 2019); rounds > 1: iterative SNIP",
           run=run_snip, needs=("data",), source=__name__,
           options=(Option("samples", 100, "training examples of the minibatch the gradient is taken on"), BATCH,
                    ROUNDS, INVERT)),
    Method("grasp", "GraSP (Wang et al. 2020) at the weights given: scores w Hg, low pruned (GraSP's -w Hg, high)",
           run=run_grasp, needs=("data",), source=__name__,
           options=(Option("samples", 256, "training examples the gradient and Hessian-gradient product are taken on"),
                    BATCH, Option("temperature", 200.0, "logits are divided by it before the cross-entropy",
                                  Rule("float", 0.0, open_minimum=True)), ROUNDS, INVERT)),
    Method("synflow", "SynFlow |dR/dw w| of the absolute network's path norm (Tanaka et al. 2020), data-free",
           run=run_synflow, source=__name__, supports=path_norm_model,
           options=(rounds_option(100, "rounds of re-scoring with the exponential sparsity schedule"), INVERT,
                    Option("input_shape", None, "one example's shape (None: the data's, or an MLP's input width)",
                           Rule("list", item=Rule("int", 1, MAX_UNITS))))),
)
