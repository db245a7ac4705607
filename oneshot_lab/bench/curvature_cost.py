"""Cost of an exact curvature diagonal: plain backward vs one BackPACK pass vs one HVP per parameter.

A section of `python -m oneshot_lab.bench curvature_cost`, or on its own:
`python -m oneshot_lab.bench.curvature_cost [--samples 1024] [--hvps 64] [--quick]`.

All timings come from this one run, on the same model and the same samples. The exact diagonal by
Hessian-vector products needs one HVP per parameter; only `hvps` of them are timed and the cost is
extrapolated linearly to all parameters (every unit-vector HVP costs the same).
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any, Callable

import torch
from torch import nn
from torch.func import functional_call, grad, jvp

from . import measure

ACTIVATIONS = ("relu", "tanh")
EXACT = ("hessian", "ggn", "fisher")


def median_time(fn: Callable[[], Any], repeats: int) -> float:
    """Median wall time of `fn()` in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def plain_backward(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> None:
    """One gradient of the summed loss over all samples, in batches."""
    model.zero_grad(set_to_none=True)
    for s in range(0, len(y), batch_size):
        nn.functional.cross_entropy(model(x[s:s + batch_size]), y[s:s + batch_size], reduction="sum").backward()


def hvp_seconds(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int, hvps: int) -> float:
    """Seconds for `hvps` unit-vector HVPs over all samples (forward-over-reverse torch.func)."""
    params = {n: p.detach() for n, p in model.named_parameters()}

    def loss(p, xb, yb):
        return nn.functional.cross_entropy(functional_call(model, p, (xb,)), yb, reduction="sum")

    flat = [(n, i) for n, p in params.items() for i in range(p.numel())]
    step = max(1, len(flat) // hvps)
    start = time.perf_counter()
    for n, i in flat[::step][:hvps]:
        e = {k: torch.zeros_like(v) for k, v in params.items()}
        e[n].view(-1)[i] = 1.0
        for s in range(0, len(y), batch_size):
            jvp(lambda p: grad(loss)(p, x[s:s + batch_size], y[s:s + batch_size]), (params,), (e,))
    return time.perf_counter() - start


def costs(dataset: str, model: str, activation: str, samples: int, batch_size: int, hvps: int, probes: int,
          repeats: int) -> list[dict[str, Any]]:
    """Seconds of each way to the curvature diagonal of one model, and its ratio to a plain backward pass."""
    import oneshot_lab as ol

    curvature = ol.pruning.curvature
    data = measure.dataset(dataset)
    x, y = curvature.sample(data, samples, seed=0)
    net = ol.build(model, data, activation=activation)
    n_params = sum(p.numel() for p in net.parameters())
    timed = {"plain backward": median_time(lambda: plain_backward(net, x, y, batch_size), repeats)}
    for kind in EXACT:
        timed[f"BackPACK {kind}"] = median_time(
            lambda: curvature.diagonal(net, data, kind, samples=samples, batch_size=batch_size), repeats)
    timed[f"Hutchinson, {probes} probes"] = median_time(
        lambda: curvature.diagonal(net, data, "hutchinson", samples=samples, batch_size=batch_size,
                                   probes=probes), 1)
    per_hvp = hvp_seconds(net, x, y, batch_size, hvps) / hvps
    timed[f"one HVP per parameter (extrapolated from {hvps})"] = per_hvp * n_params
    plain = timed["plain backward"]
    return [{"model": f"{model} {activation}", "parameters": n_params, "computation": label,
             "seconds": round(seconds, 4), "x_plain": round(seconds / plain, 1)} for label, seconds in timed.items()]


def run(quick: bool = False, repeats: int = 3, dataset: str = "mnist1d", model: str = "lenet_300_100",
        samples: int = 1024, batch_size: int = 256, hvps: int = 64, probes: int = 100) -> dict[str, Any]:
    """The cost table for a ReLU and a tanh model (quick: 128 samples, 4 HVPs, 10 probes, one repeat)."""
    if quick:
        samples, hvps, probes, repeats = 128, 4, 10, 1
    rows = [row for activation in ACTIVATIONS
            for row in costs(dataset, model, activation, samples, batch_size, hvps, probes, repeats)]
    markdown = (f"### Cost of an exact curvature diagonal ({dataset}, {samples} samples, batch {batch_size}; "
                f"wall seconds, median of {repeats})\n\n" + measure.markdown_table(rows))
    return {"rows": rows, "markdown": markdown}


def main(argv: list[str] | None = None) -> int:
    """Run the table with the command line's options on one torch thread and print it."""
    parser = argparse.ArgumentParser(prog="python -m oneshot_lab.bench.curvature_cost",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist1d")
    parser.add_argument("--model", default="lenet_300_100")
    parser.add_argument("--samples", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--hvps", type=int, default=64, help="unit-vector HVPs actually timed")
    parser.add_argument("--probes", type=int, default=100, help="Hutchinson probes")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="128 samples, 4 HVPs, 10 probes, one repeat")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print(run(args.quick, args.repeats, args.dataset, args.model, args.samples, args.batch_size, args.hvps,
              args.probes)["markdown"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
