"""Cost of every curvature diagonal and second-order pruner against one plain backward pass, and their error."""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn
from torch.func import functional_call, hessian, jacrev

from . import measure

MODELS = {"mlp 128-40": ("mlp", {"widths": [128, 40]}), "conv1d": ("conv1d", {})}
QUICK_MODELS = {"mlp 16": ("mlp", {"widths": [16]})}
CURVATURES = ("hessian", "ggn", "ggn_mc", "fisher", "hutchinson")
PRUNERS = ("wanda", "sparsegpt", "obc", "woodfisher", "obs")
SPARSITY = 0.9
SLOW = 5.0  # a computation taking longer than this many seconds is timed once


def computation(model_key: str, what: str, samples: int, quick: bool) -> Callable[[], Any]:
    """The call measured: 'backward', a curvature name or a pruner name, on `samples` MNIST-1D examples."""
    import oneshot_lab as ol

    data = measure.dataset("mnist1d")
    name, options = {**MODELS, **QUICK_MODELS}[model_key]
    net = ol.build(name, data, seed=0, **options)
    if what == "backward":
        x, y = ol.curvature.sample(data, samples, seed=0)

        def backward() -> None:
            net.zero_grad(set_to_none=True)
            for start in range(0, len(y), 256):
                nn.functional.cross_entropy(net(x[start:start + 256]), y[start:start + 256],
                                            reduction="sum").backward()
        return backward
    probes = 10 if quick else 100
    if what in CURVATURES:
        return lambda: ol.curvature.diagonal(net, data, what, samples=samples, probes=probes)
    return lambda: ol.obs.prune(net, data, SPARSITY, what, samples=samples)


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
        whats = ["backward", *CURVATURES, *PRUNERS]
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
                         "mem_x_backward": None if peak is None else measure.ratio(max(peak, 1), max(base_mem, 1)),
                         "note": ""})
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
    x, y = ol.curvature.sample(data, samples, seed=0)
    exact = dict(zip(("hessian", "ggn"), exact_diagonals(net, x, y)))
    rows = []
    for kind in CURVATURES:
        estimate = ol.curvature.diagonal(net, data, kind, samples=samples, probes=100)
        row = {"curvature": kind, "parameters": sum(p.numel() for p in net.parameters()), "samples": samples}
        for name, reference in exact.items():
            num = sum(float((estimate[n] - reference[n]).pow(2).sum()) for n in reference) ** 0.5
            den = sum(float(reference[n].pow(2).sum()) for n in reference) ** 0.5
            row[f"error_vs_exact_{name}"] = round(num / den, 4)
        rows.append(row)
    return rows


def run(quick: bool = False, repeats: int = 3) -> dict[str, Any]:
    """Costs on the MLP and conv1d, errors on a tiny model; with markdown."""
    cost_rows = costs(quick, 1 if quick else repeats, memory=not quick)
    error_rows = errors(quick)
    markdown = (f"### Curvature diagonals and second-order pruners ({SPARSITY:.0%} global), cost against one "
                "plain backward pass over the same samples\n\n" + measure.markdown_table(cost_rows)
                + "\n### Error of each curvature diagonal (tiny tanh MLP; relative L2 against exact diagonals "
                "from full matrices)\n\n" + measure.markdown_table(error_rows))
    return {"costs": cost_rows, "errors": error_rows, "markdown": markdown}
