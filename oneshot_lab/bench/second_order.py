"""Cost of every curvature diagonal and second-order pruner against one plain backward pass, and their error;
OBC and SparseGPT on LeNet-300-100 (real MNIST digits) by scope and thread count."""

from __future__ import annotations

import functools
import statistics
import time
from typing import Any, Callable

import torch
from torch import nn
from torch.func import functional_call, hessian, jacrev

from . import measure

# model key -> (dataset, model, options, Adam steps of dense training before pruning)
MODELS = {"mlp 128-40": ("mnist1d", "mlp", {"widths": [128, 40]}, 0), "conv1d": ("mnist1d", "conv1d", {}, 0),
          "mlp 784-40-20-10 mnist": ("mnist_subset", "mlp", {"widths": [40, 20]}, 600),
          "lenet-300-100 mnist": ("mnist_subset", "mlp", {"widths": [300, 100]}, 600)}
QUICK_MODELS = {"mlp 16": ("mnist1d", "mlp", {"widths": [16]}, 0),
                "lenet 16 mnist": ("mnist_subset", "mlp", {"widths": [16]}, 10)}
CURVATURES = ("hessian", "ggn", "ggn_mc", "fisher", "hutchinson")
PRUNERS = ("wanda", "sparsegpt", "obc", "woodfisher", "obs", "chita", "chita_pp")  # methods that use calibration data
ONLY = {"lenet-300-100 mnist": ("backward", "sparsegpt", "obc"), "lenet 16 mnist": ("backward", "sparsegpt", "obc"),
        "mlp 784-40-20-10 mnist": ("backward", "wanda", "sparsegpt", "obc", "woodfisher", "chita", "chita_pp")}
LENET = {False: "lenet-300-100 mnist", True: "lenet 16 mnist"}  # the model of `by_scope`, by `quick`
SPARSITY = 0.9
SLOW = 5.0  # a computation taking longer than this many seconds is timed once


@functools.lru_cache(maxsize=None)
def network(model_key: str) -> nn.Module:
    """The model of `model_key`, seed 0, after its dense training (once per process)."""
    import oneshot_lab as ol

    dataset, name, options, steps = {**MODELS, **QUICK_MODELS}[model_key]
    net = ol.build(name, measure.dataset(dataset), seed=0, **options)
    if steps:
        ol.training.train.fit(net, measure.dataset(dataset), ol.training.train.TrainConfig(iterations=steps, batch_size=100),
                     progress=False)
    return net


def computation(model_key: str, what: str, samples: int, quick: bool) -> Callable[[], Any]:
    """The call measured: 'backward', a curvature name or a pruner name, on `samples` examples of the model's data."""
    import oneshot_lab as ol

    data = measure.dataset({**MODELS, **QUICK_MODELS}[model_key][0])
    net = network(model_key)
    if what == "backward":
        x, y = ol.core.data.sample(data, samples, seed=0)

        def backward() -> None:
            net.zero_grad(set_to_none=True)
            for start in range(0, len(y), 256):
                nn.functional.cross_entropy(net(x[start:start + 256]), y[start:start + 256],
                                            reduction="sum").backward()
        return backward
    probes = 10 if quick else 100
    if what in CURVATURES:
        return lambda: ol.pruning.curvature.diagonal(net, data, what, samples=samples, probes=probes)
    return lambda: ol.prune(net, data, SPARSITY, what, samples=samples)


def prepare(model_key: str, what: str, samples: int, quick: bool) -> Callable[[], Any]:
    """Set-up for a memory measurement: one call first (imports, first-call costs), then the measured call."""
    call = computation(model_key, what, samples, quick)
    call()
    return call


def median_seconds(call: Callable[[], Any], repeats: int) -> float:
    """Median seconds of `call` over `repeats` runs, or one run if it is slow."""
    times = []
    for _ in range(repeats):
        start = measure.CLOCK()
        call()
        times.append(measure.CLOCK() - start)
        if times[0] > SLOW:
            break
    return sorted(times)[len(times) // 2]


def costs(quick: bool, repeats: int, memory: bool) -> list[dict[str, Any]]:
    """Seconds and peak memory of every computation, and both relative to the plain backward pass."""
    samples = 64 if quick else 1024
    rows = []
    for model_key in (QUICK_MODELS if quick else MODELS):
        whats = ONLY.get(model_key, ["backward", *CURVATURES, *PRUNERS])
        base_time = base_mem = None
        for what in whats:
            call = computation(model_key, what, samples, quick)
            try:
                call()  # warm-up; also where 'obs' refuses models above max_weights
            except ValueError as err:
                rows.append({"model": model_key, "computation": what, "note": str(err).split(";")[0]})
                continue
            seconds = median_seconds(call, repeats)
            peak = measure.peak_growth(f"{__name__}:prepare", model_key=model_key, what=what, samples=samples,
                                       quick=quick) if memory else None
            if what == "backward":
                base_time, base_mem = seconds, peak
            rows.append({"model": model_key, "computation": what, "seconds": round(seconds, 4),
                         "x_backward": measure.ratio(seconds, base_time),
                         "peak_mib": None if peak is None else round(peak / 2**20, 1),
                         "mem_x_backward": None if peak is None or not base_mem  # no growth: no ratio
                         else measure.ratio(max(peak, 1), base_mem),
                         "note": ""})
    return rows


def by_scope(quick: bool, repeats: int) -> list[dict[str, Any]]:
    """OBC and SparseGPT on the trained LeNet-300-100 at 90%, both scopes, on one and two torch threads (quick: one).

    Medians over `repeats` calls (interleaved over scopes and methods) of the CPU seconds of this process
    and of the wall seconds; the torch thread count is restored afterwards.
    """
    import torch

    import oneshot_lab as ol

    model_key = LENET[quick]
    data = measure.dataset({**MODELS, **QUICK_MODELS}[model_key][0])
    net = network(model_key)
    samples = 64 if quick else 1024
    cases = [(method, scope) for method in ("obc", "sparsegpt") for scope in ("layer", "global")]
    before = torch.get_num_threads()
    rows = []
    try:
        for threads in (1,) if quick else (1, 2):
            torch.set_num_threads(threads)
            times: dict[tuple, list[tuple[float, float]]] = {case: [] for case in cases}
            pruned = {}
            for _ in range(repeats):
                for method, scope in cases:
                    cpu, wall = measure.CLOCK(), time.perf_counter()
                    result = ol.prune(net, data, SPARSITY, method, scope, samples=samples)
                    times[method, scope].append((measure.CLOCK() - cpu, time.perf_counter() - wall))
                    pruned[method, scope] = int(result.table()["pruned"].sum())
            for (method, scope), pairs in times.items():
                rows.append({"model": model_key, "method": method, "scope": scope, "threads": threads,
                             "cpu_s": round(statistics.median(p[0] for p in pairs), 3),
                             "wall_s": round(statistics.median(p[1] for p in pairs), 3),
                             "repeats": repeats, "pruned": pruned[method, scope]})
    finally:
        torch.set_num_threads(before)
    return rows


def exact_diagonals(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[dict, dict]:
    """Exact Hessian and GGN diagonals of the mean cross-entropy, from full matrices (tiny models only)."""
    params = {n: p.detach() for n, p in net.named_parameters()}
    shapes = {n: p.shape for n, p in params.items()}
    sizes = [p.numel() for p in params.values()]

    def unflat(flat: torch.Tensor) -> dict[str, torch.Tensor]:
        return {n: t.reshape(shapes[n]) for n, t in zip(params, flat.split(sizes))}

    flat = torch.cat([p.reshape(-1) for p in params.values()])
    loss = lambda f: nn.functional.cross_entropy(functional_call(net, unflat(f), (x,)), y)
    hess = hessian(loss)(flat).diagonal()
    jac = jacrev(lambda f: functional_call(net, unflat(f), (x,)))(flat)  # N x C x P
    probs = torch.softmax(net(x), 1).detach()
    out_hessian = torch.diag_embed(probs) - probs[:, :, None] * probs[:, None, :]  # N x C x C
    ggn = torch.einsum("ncp,ncd,ndp->p", jac, out_hessian, jac) / len(y)
    return unflat(hess), unflat(ggn)


def errors(quick: bool) -> list[dict[str, Any]]:
    """Relative L2 error of every curvature diagonal against the exact Hessian and GGN diagonals (tiny tanh MLP)."""
    import oneshot_lab as ol

    data = measure.dataset("mnist1d")
    net = ol.build("mlp", data, seed=0, widths=[8 if quick else 16], activation="tanh")
    samples = 64 if quick else 256
    x, y = ol.core.data.sample(data, samples, seed=0)
    exact = dict(zip(("hessian", "ggn"), exact_diagonals(net, x, y)))
    rows = []
    for kind in CURVATURES:
        estimate = ol.pruning.curvature.diagonal(net, data, kind, samples=samples, probes=100)
        row = {"curvature": kind, "parameters": sum(p.numel() for p in net.parameters()), "samples": samples}
        for name, reference in exact.items():
            num = sum(float((estimate[n] - reference[n]).pow(2).sum()) for n in reference) ** 0.5
            den = sum(float(reference[n].pow(2).sum()) for n in reference) ** 0.5
            row[f"error_vs_exact_{name}"] = round(num / den, 4)
        rows.append(row)
    return rows


def run(quick: bool = False, repeats: int = 3) -> dict[str, Any]:
    """Costs on the MLP, conv1d and LeNet-300-100, OBC / SparseGPT on LeNet by scope and threads, errors on a tiny
    model; with markdown."""
    cost_rows = costs(quick, 1 if quick else repeats, memory=not quick)
    scope_rows = by_scope(quick, 1 if quick else repeats)
    error_rows = errors(quick)
    markdown = (f"### Curvature diagonals and second-order pruners ({SPARSITY:.0%} global), cost against one "
                "plain backward pass over the same samples\n\n" + measure.markdown_table(cost_rows)
                + f"\n### OBC and SparseGPT on {LENET[quick]} ({SPARSITY:.0%}), by scope and torch threads (medians "
                "over repeats of the CPU seconds of the process and of the wall seconds)\n\n" + measure.markdown_table(scope_rows)
                + "\n### Error of each curvature diagonal (tiny tanh MLP; relative L2 against exact diagonals "
                "from full matrices)\n\n" + measure.markdown_table(error_rows))
    return {"costs": cost_rows, "by_scope": scope_rows, "errors": error_rows, "markdown": markdown}
