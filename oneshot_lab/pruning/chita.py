"""The registry's CHITA methods (Benbaki et al., ICML 2023): one-shot pruning as L0-constrained least squares on
the empirical-Fisher quadratic, 'chita' in one stage and 'chita_pp' (CHITA++) over a rising sparsity schedule.

The quadratic model of the loss around the weights w0 of the working copy is 1/2 (w - w0)^T (F + lam I) (w - w0)
with the empirical Fisher F = G^T G / n of the per-example gradients G (n x p, `fisher.per_example_gradients`)
and lam = damp * mean(diag F), the damping of 'obs' and 'woodfisher'. CHITA keeps F as its factor A = G / sqrt(n)
and minimises ||A w - b||^2 + lam ||w - w0||^2 with b = A w0 (twice the model) under the sparsity constraint,
by iterative hard thresholding with a line search and an exact refit on the support (`chita_solver`); no p x p
matrix is formed. scope="global" keeps the round((1 - s) n) largest entries over all layers at every
thresholding, scope="layer" (and a layer of `layer_sparsities`) its own count per layer; entries already pruned
(`masks=`) are left out of the problem, stay 0 and count toward the targets. `Pruned.predicted_increase` is the
model's value 1/2 (w - w0)^T (F + lam I) (w - w0) at the result (CHITA++: summed over its stages).

'chita_pp' prunes in `stages` steps along the reference implementation's schedules (github mazumder-lab/CHITA,
`utils/main_utils.py::generate_schedule`), from `BASE` sparsity to the target: each stage recomputes the
per-example gradients at the current pruned weights (on the same calibration examples), so the quadratic model
is re-linearised, and solves again on the survivors only.
"""

from __future__ import annotations

import torch
from torch import nn

from ..core.data import sample
from ..core.masks import Masks, parameter, prunable
from ..util.rules import Rule
from . import chita_solver, fisher, obs_core
from .prune import Groups, Outcome, Request
from .registry import Method, Option

BASE = 0.1  # sparsity of CHITA++'s first stage (the reference's `base_level` default)
SCHEDULES = ("exp", "poly", "linear")
MAX_ENTRIES = 2**28  # entries of A (samples x weights, float64: 2 GiB) a call may hold

OPTIONS = (Option("samples", 1000, "calibration examples of the training split (rows of A)"),
           Option("damp", 0.01, "ridge lambda relative to the mean empirical-Fisher diagonal"),
           Option("iterations", 100, "most iterative-hard-thresholding steps per solve", Rule("int", 1, 10**6)))


def too_big(model: nn.Module, options: dict) -> str | None:
    """Why CHITA will not hold A (samples x prunable weights, float64) for `model`, or None."""
    size = sum(parameter(model, n).numel() for n in prunable(model))
    if options["samples"] * size <= MAX_ENTRIES:
        return None
    return (f"its factor A of {options['samples']} samples x {size} weights would take "
            f"{options['samples'] * size * 8 / 2**30:.1f} GiB, above {MAX_ENTRIES * 8 / 2**30:.0f} GiB; "
            f"use fewer samples")


def schedule(stages: int, target: float, kind: str, base: float = BASE) -> list[float]:
    """The sparsity of every stage, rising from `base` to `target` (the reference's 'exp', 'poly' and 'linear')."""
    if stages == 1 or target <= base:
        return [target]
    if kind == "exp":
        scale = (target - base) * 2 ** (stages - 1) / (2 ** (stages - 1) - 1)
        levels = [base + scale * (1 - 0.5**i) for i in range(stages)]
    elif kind == "poly":
        levels = [target + (base - target) * (1 - i / (stages - 1)) ** 3 for i in range(stages)]
    else:
        levels = [base + i * (target - base) / (stages - 1) for i in range(stages)]
    return levels[:-1] + [target]


def flat(model: nn.Module, names: list[str]) -> torch.Tensor:
    """The prunable weights of `model`, concatenated, float64."""
    return torch.cat([model.get_parameter(n).detach().reshape(-1) for n in names]).to(torch.float64)


def write(model: nn.Module, names: list[str], weights: torch.Tensor) -> None:
    """Copy the flat `weights` into the prunable parameters `names` of `model`."""
    with torch.no_grad():
        for name, value in zip(names, split(weights, model, names)):
            model.get_parameter(name).copy_(value)


def stage(model: nn.Module, names: list[str], x: torch.Tensor, y: torch.Tensor, groups: Groups, alive: torch.Tensor,
          damp: float, iterations: int) -> tuple[torch.Tensor, torch.Tensor, float] | None:
    """One CHITA solve at the weights of `model`: (new flat weights, flat keep mask, predicted increase), or None
    when no group has anything left to prune. Entries not `alive` are out of the problem (columns dropped)."""
    sizes = [model.get_parameter(n).numel() for n in names]
    group, remaining = obs_core.budgets(groups, names, sizes, alive)
    remaining = remaining.clamp_min(0)  # a stage below what is already pruned prunes nothing more
    if int(remaining.sum()) == 0:
        return None
    live = alive.nonzero()[:, 0]
    grads = fisher.per_example_gradients(model, names, x, y)[:, live]
    lam = damp * float(grads.square().mean())
    members = torch.bincount(group[live], minlength=len(groups))
    w0 = flat(model, names)
    solution = chita_solver.solve(grads / len(grads) ** 0.5, w0[live], lam, group[live], members - remaining,
                                  iterations)
    new, keep = torch.zeros_like(w0), torch.zeros_like(alive)
    new[live], keep[live] = solution.weights, solution.support
    return new, keep, solution.objective / 2


def run_chita(request: Request) -> Outcome:
    """'chita': one solve on the working copy's empirical-Fisher quadratic."""
    return run_stages(request, [request.groups])


def run_chita_pp(request: Request) -> Outcome:
    """'chita_pp': one solve per stage of the schedule, each at the weights the stage before left."""
    stages, kind = request.options["stages"], request.options["schedule"]
    plans: list[Groups] = [[] for _ in range(stages)]
    for (layers, target), (_, count) in zip(request.targets, request.groups):
        levels = schedule(stages, target, kind)
        levels = [levels[0]] * (stages - len(levels)) + levels
        entries = sum(request.keep[n].numel() for n in layers)
        for plan, level in zip(plans[:-1], levels):
            plan.append((layers, round(level * entries)))
        plans[-1].append((layers, count))
    return run_stages(request, plans)


def run_stages(request: Request, plans: list[Groups]) -> Outcome:
    """Solve `plans` in order on the working copy (what a stage prunes stays pruned); the masks and the increase."""
    model, options = request.model, request.options
    names = prunable(model)
    x, y = sample(request.data, options["samples"], request.seed)
    alive = torch.cat([request.keep[n].reshape(-1) for n in names])
    predicted = 0.0
    for plan in plans:
        result = stage(model, names, x, y, plan, alive, options["damp"], options["iterations"])
        if result is not None:
            new, alive, increase = result
            write(model, names, new)
            predicted += increase
    return Outcome(Masks({n: m.clone() for n, m in zip(names, split(alive, model, names))}),
                   predicted_increase=predicted)


def split(values: torch.Tensor, model: nn.Module, names: list[str]) -> list[torch.Tensor]:
    """The flat `values` cut into tensors shaped like the parameters `names`."""
    shapes = [model.get_parameter(n).shape for n in names]
    return [v.reshape(s) for v, s in zip(torch.split(values, [s.numel() for s in shapes]), shapes)]


METHODS = (
    Method("chita", "CHITA: L0-constrained least squares on the low-rank empirical-Fisher quadratic (IHT, refits)",
           run=run_chita, updates_weights=True, needs=("data", "trained"), source=__name__, options=OPTIONS,
           supports=too_big),
    Method("chita_pp", "CHITA++: CHITA over a rising sparsity schedule, re-linearised at every stage",
           run=run_chita_pp, updates_weights=True, needs=("data", "trained"), source=__name__, supports=too_big,
           options=(*OPTIONS, Option("stages", 5, "pruning stages from 10% sparsity to the target",
                                     Rule("int", 1, 100)),
                    Option("schedule", "exp", "how the stages' sparsities rise (the reference's schedules)",
                           Rule("str", choices=SCHEDULES)))),
)
