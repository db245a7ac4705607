"""Cost of the one-shot pruners with weight updates beside one plain backward pass over the same samples.

Usage: .venv/bin/python benchmarks/second_order_cost.py [--samples 1024] [--sparsity 0.9] [--threads 2]

Models on MNIST-1D (40 input features): an MLP with hidden widths --widths (default 128 40: 10,640
prunable weights, small enough for exact OBS) and LeNet-300-100 (42,000 prunable weights; 'obs' is
refused above max_weights, so it is skipped there). Untrained, seed 0: the cost does not depend on
training. Peak memory is the growth of the process's peak resident set during the call (Linux
ru_maxrss), so a call that stays below an earlier peak shows 0; methods run from cheapest to dearest.
Seconds are the median of --repeats calls (one call when the first takes over 5 s).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import torch
from torch import nn

import oneshot_lab as ol
from oneshot_lab import obs
from oneshot_lab.curvature import sample


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _measure(fn, repeats: int) -> tuple[float, float]:
    """(median seconds, MiB of peak-RSS growth over the first call) of `fn`; one call only if it takes over 5 s."""
    before = _peak_mib()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
        if times[0] > 5:
            break
    return statistics.median(times), _peak_mib() - before


def _backward(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    model.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(model(x), y).backward()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1024)
    parser.add_argument("--sparsity", type=float, default=0.9)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--widths", type=int, nargs="+", default=[128, 40])
    parser.add_argument("--methods", nargs="+", default=["wanda", "sparsegpt", "obc", "woodfisher", "obs"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = ol.load("mnist1d")
    x, y = sample(data, args.samples, seed=0)
    obs.prune(ol.build("mlp", data, widths=[4]), data, 0.5, "obc", samples=8)  # first-call costs (imports)
    models = {f"mlp {args.widths}": ol.build("mlp", data, widths=args.widths),
              "lenet_300_100": ol.build("lenet_300_100", data)}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; MNIST-1D, {args.samples} samples, "
          f"sparsity {args.sparsity}, scope global, default options\n")
    print("| model | prunable weights | method | seconds | x backward | peak MiB |")
    print("|---|---:|---|---:|---:|---:|")
    for label, model in models.items():
        n = sum(model.get_parameter(p).numel() for p in ol.prunable(model))
        _backward(model, x, y)  # warm up
        base, mem = _measure(lambda: _backward(model, x, y), args.repeats)
        print(f"| {label} | {n} | plain backward | {base:.3f} | 1 | {mem:.0f} |")
        for method in args.methods:
            if method == "obs" and n > obs.METHODS["obs"].options["max_weights"]:
                print(f"| {label} | {n} | obs | refused (> max_weights) | | |")
                continue
            seconds, mem = _measure(lambda: obs.prune(model, data, args.sparsity, method, samples=args.samples),
                                    args.repeats)
            print(f"| {label} | {n} | {method} | {seconds:.2f} | {seconds / base:.0f} | {mem:.0f} |", flush=True)


if __name__ == "__main__":
    main()
