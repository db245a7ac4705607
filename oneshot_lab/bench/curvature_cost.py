"""Cost of an exact curvature diagonal: plain backward vs one BackPACK pass vs one HVP per parameter.

Usage: OMP_NUM_THREADS=1 .venv/bin/python benchmarks/curvature_cost.py [--samples 1024] [--hvps 64]

All timings come from this one run, on the same model and the same samples. The exact diagonal by
Hessian-vector products needs one HVP per parameter; only `--hvps` of them are timed and the cost is
extrapolated linearly to all parameters (every unit-vector HVP costs the same).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn
from torch.func import functional_call, grad, jvp

import oneshot_lab as ol
from oneshot_lab.pruning import curvature


def _median_time(fn, repeats: int) -> float:
    """Median wall time of `fn()` in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _plain_backward(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> None:
    """One gradient of the summed loss over all samples, in batches."""
    model.zero_grad(set_to_none=True)
    for s in range(0, len(y), batch_size):
        nn.functional.cross_entropy(model(x[s:s + batch_size]), y[s:s + batch_size], reduction="sum").backward()


def _hvp_seconds(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int, hvps: int) -> float:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist1d")
    parser.add_argument("--model", default="lenet_300_100")
    parser.add_argument("--samples", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--hvps", type=int, default=64, help="unit-vector HVPs actually timed")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = ol.load(args.dataset)
    x, y = curvature.sample(data, args.samples, seed=0)
    print(f"torch threads: {torch.get_num_threads()}; {args.dataset}, {args.samples} samples, batch {args.batch_size}")
    for activation in ("relu", "tanh"):
        model = ol.build(args.model, data, activation=activation)
        n_params = sum(p.numel() for p in model.parameters())
        plain = _median_time(lambda: _plain_backward(model, x, y, args.batch_size), args.repeats)
        timed = {"plain backward": plain}
        for kind in ("hessian", "ggn", "fisher"):
            timed[f"BackPACK {kind}"] = _median_time(
                lambda: curvature.diagonal(model, data, kind, samples=args.samples, batch_size=args.batch_size),
                args.repeats)
        timed["Hutchinson, 100 probes"] = _median_time(
            lambda: curvature.diagonal(model, data, "hutchinson", samples=args.samples,
                                       batch_size=args.batch_size, probes=100), 1)
        per_hvp = _hvp_seconds(model, x, y, args.batch_size, args.hvps) / args.hvps
        timed[f"one HVP per parameter (extrapolated from {args.hvps})"] = per_hvp * n_params
        print(f"\n{args.model} {activation}, {n_params} parameters; one HVP over the samples: {per_hvp * 1e3:.1f} ms")
        print(f"{'computation':<48}{'seconds':>10}{'x plain':>10}")
        for label, seconds in timed.items():
            print(f"{label:<48}{seconds:>10.3f}{seconds / plain:>10.1f}")
        exact = min(timed["BackPACK hessian"], timed["BackPACK ggn"])
        print(f"one-HVP-per-parameter / BackPACK exact diagonal: "
              f"{timed[f'one HVP per parameter (extrapolated from {args.hvps})'] / timed['BackPACK hessian']:.0f}x (hessian), "
              f"{timed[f'one HVP per parameter (extrapolated from {args.hvps})'] / exact:.0f}x (fastest exact)")


if __name__ == "__main__":
    main()
