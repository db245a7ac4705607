"""Training throughput: `train.fit` against a bare PyTorch loop, and the masked step against dense and torch.prune."""

from __future__ import annotations

import copy
from typing import Any, Callable

import torch
from torch import nn

from ..training import train
from . import measure

# The lottery MLP of notebook 03 (its defaults) and the MNIST-1D convnet, each under a 90% random mask.
FIT_CASES = {
    "lottery MLP": dict(model="mlp", options={"widths": [100, 100]}, iterations=1500, eval_every=100),
    "conv1d": dict(model="conv1d", options={}, iterations=500, eval_every=100),
}
QUICK_FIT = {"iterations": 20, "eval_every": 10}
STEP_OPTIMIZERS = {"sgd momentum": dict(optimizer="sgd", lr=0.05, momentum=0.9), "adam": dict(optimizer="adam", lr=1e-3)}


def bare_loop(model: nn.Module, dataset, config, masks) -> None:
    """The same steps as `train.fit` (batch order, schedule, masking, evaluations), written plainly."""
    x, y = dataset.train
    n = len(y)
    per_epoch = config.steps_per_epoch(n)
    total = config.total_iterations(n)
    params = [model.get_parameter(name) for name in masks]
    factors = [mask.float() for mask in masks.values()]
    with torch.no_grad():
        torch._foreach_mul_(params, factors)
    optimizer = train.optimizer(model, config)  # the same optimizer (fused) as fit: the loop is what is compared

    def evaluate() -> None:
        model.eval()
        with torch.no_grad():
            for split in ("val", "test"):
                xs, ys = dataset.split(split)
                logits = model(xs)
                nn.functional.cross_entropy(logits, ys).item(), (logits.argmax(1) == ys).float().mean().item()
        model.train()

    model.train()
    evaluate()
    for step in range(total):
        if step % per_epoch == 0:
            order = torch.randperm(n, generator=torch.Generator().manual_seed(config.seed * 1_000_003 + step // per_epoch))
        idx = order[(step % per_epoch) * config.batch_size:(step % per_epoch + 1) * config.batch_size]
        loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            torch._foreach_mul_(params, factors)
        if (step + 1) % config.eval_every == 0 or step + 1 == total:
            evaluate()


def fit_vs_bare(quick: bool, repeats: int) -> list[dict[str, Any]]:
    """Median seconds of `fit` and of the bare loop per case; checks both end at bit-identical weights."""
    import oneshot_lab as ol

    data = measure.dataset("mnist1d")
    rows = []
    for label, case in FIT_CASES.items():
        steps = {**case, **(QUICK_FIT if quick else {})}
        config = ol.TrainConfig(optimizer="adam", lr=0.002, batch_size=64, iterations=steps["iterations"],
                                eval_every=steps["eval_every"], seed=0)
        start = ol.build(case["model"], data, seed=0, **case["options"])
        masks = ol.masks_from_scores(ol.pruning.criteria.random(start, seed=1), 0.9)
        models = {"fit": copy.deepcopy(start), "bare": copy.deepcopy(start)}
        ol.fit(models["fit"], data, config, masks=masks, progress=False)
        bare_loop(models["bare"], data, config, masks)
        same = all(torch.equal(a, b) for a, b in zip(models["fit"].state_dict().values(),
                                                      models["bare"].state_dict().values()))
        times = measure.medians(measure.interleaved({
            "fit": lambda: ol.fit(copy.deepcopy(start), data, config, masks=masks, progress=False),
            "bare": lambda: bare_loop(copy.deepcopy(start), data, config, masks)}, repeats))
        rows.append({"case": label, "steps": config.iterations, "eval_every": config.eval_every,
                     "fit_s": round(times["fit"], 4), "bare_s": round(times["bare"], 4),
                     "ratio": measure.ratio(times["fit"], times["bare"]), "identical_weights": same})
    return rows


def step_runner(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
                after: Callable[[], None], steps: int) -> Callable[[], None]:
    """A callable doing `steps` training steps on (x, y), calling `after` after every optimizer step."""
    def run() -> None:
        for _ in range(steps):
            loss = nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            after()
    return run


def masked_step(quick: bool, repeats: int) -> list[dict[str, Any]]:
    """Seconds per step of LeNet-300-100 at batch 60: dense, lab masks (re-zeroing), torch.prune's hook; 90%."""
    import oneshot_lab as ol

    data = measure.dataset("mnist1d")
    gen = torch.Generator().manual_seed(0)
    idx = torch.randint(len(data.train.y), (60,), generator=gen)
    x, y = data.train.x[idx], data.train.y[idx]
    steps = 20 if quick else 50  # short blocks, many interleaved repeats: load changes hit every variant alike
    rows = []
    for label, opt in STEP_OPTIMIZERS.items():
        base = ol.build("lenet_300_100", data, seed=0)
        masks = ol.masks_from_scores(ol.pruning.criteria.magnitude(base), 0.9)
        runners = {}
        for kind in ("dense", "lab", "torch.prune"):
            model = copy.deepcopy(base)
            after: Callable[[], None] = lambda: None
            if kind == "lab":
                after = masks.binder(model)
                after()
            elif kind == "torch.prune":
                masks.to_torch_prune(model)
            optimizer = train.optimizer(model, train.TrainConfig(**opt))  # the lab's optimizer for all three
            runners[kind] = step_runner(model, optimizer, x, y, after, steps)
            runners[kind]()  # warm-up
        times = measure.medians(measure.interleaved(runners, repeats))
        per = {k: v / steps for k, v in times.items()}
        rows.append({"optimizer": label, "dense_ms": round(per["dense"] * 1e3, 4),
                     "lab_ms": round(per["lab"] * 1e3, 4), "torch_prune_ms": round(per["torch.prune"] * 1e3, 4),
                     "lab_vs_dense": measure.ratio(per["lab"], per["dense"]),
                     "torch_prune_vs_dense": measure.ratio(per["torch.prune"], per["dense"])})
    return rows


def run(quick: bool = False, repeats: int = 5) -> dict[str, Any]:
    """Both training benchmarks, with their markdown."""
    fit_rows = fit_vs_bare(quick, 2 if quick else repeats)
    step_rows = masked_step(quick, 3 if quick else 10 * repeats + 1)
    markdown = ("### train.fit against a bare PyTorch loop (same steps, masks, evaluations)\n\n"
                + measure.markdown_table(fit_rows)
                + "\n### Masked training step (LeNet-300-100, batch 60, 90% magnitude masks)\n\n"
                + measure.markdown_table(step_rows))
    return {"fit_vs_bare": fit_rows, "masked_step": step_rows, "markdown": markdown}
