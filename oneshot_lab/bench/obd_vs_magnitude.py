"""One-shot test accuracy (no retraining) per criterion and sparsity, several seeds: does OBD beat magnitude?

Usage: OMP_NUM_THREADS=1 python -m oneshot_lab.bench.obd_vs_magnitude [--out runs/obd_vs_magnitude] [--epochs 100]

Its own recipe (not notebook 02's): LeNet-300-100, Adam 1e-3, batch 64, --epochs epochs with a cosine
schedule, curvature over the whole training split, 100 Hutchinson probes.
Writes metrics.csv / layers.csv (one row per dataset, activation, seed, method, sparsity) and prints
mean and 95% Student-t interval over seeds.
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

import oneshot_lab as ol

CRITERIA = ["magnitude", "random", "taylor", "obd_hessian", "obd_ggn", "obd_ggn_mc", "obd_fisher", "obd_hutchinson"]
SPARSITIES = [0.5, 0.7, 0.8, 0.9, 0.95]
TRAIN = ol.TrainConfig(optimizer="adam", lr=1e-3, batch_size=64, epochs=100, schedule="cosine")


def one_run(dataset: str, activation: str, seed: int, model: str, epochs: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train one dense model and prune it one-shot by every criterion and scope."""
    data = ol.load(dataset, seed=seed)
    net = ol.build(model, data, seed=seed, activation=activation)
    ol.fit(net, data, TRAIN.replace(seed=seed, epochs=epochs), progress=False)
    options = {c: {"samples": None} for c in CRITERIA if c.startswith("obd") or c == "taylor"}
    study = ol.studies.oneshot.OneShotConfig(methods=ol.pruning.registry.labels(CRITERIA), sparsities=SPARSITIES, seed=seed,
                                     score_options=options)
    metrics, layers = ol.studies.oneshot.one_shot(net, data, study, progress=False)
    keys = {"dataset": dataset, "model": model, "activation": activation, "seed": seed}
    return metrics.assign(**keys), layers.assign(**keys)


def table(metrics: pd.DataFrame) -> pd.DataFrame:
    """'mean ± half-width of the 95% t-interval' of test accuracy over seeds, per dataset, activation and method."""
    rows = metrics[metrics.stage.isin(["one_shot", "dense"])]
    summary = ol.analysis.stats.summarize(rows, ["dataset", "activation", "method", "sparsity"], "test_accuracy")
    return ol.analysis.stats.table(summary, ["dataset", "activation", "method"], "sparsity").sort_index()


def main(argv: list[str] | None = None) -> int:
    """Train, prune by every criterion, write the records and print the table."""
    parser = argparse.ArgumentParser(prog="python -m oneshot_lab.bench.obd_vs_magnitude",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/obd_vs_magnitude")
    parser.add_argument("--datasets", nargs="+", default=["mnist1d", "digits"])
    parser.add_argument("--activations", nargs="+", default=["relu", "tanh"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--model", default="lenet_300_100")
    parser.add_argument("--epochs", type=int, default=TRAIN.epochs, help="dense training epochs")
    args = parser.parse_args(argv)
    run = ol.results.start(args.out, vars(args))
    all_metrics, all_layers = [], []
    for dataset in args.datasets:
        for activation in args.activations:
            for seed in args.seeds:
                start = time.perf_counter()
                metrics, layers = one_run(dataset, activation, seed, args.model, args.epochs)
                all_metrics.append(metrics)
                all_layers.append(layers)
                print(f"{dataset} {activation} seed {seed}: {time.perf_counter() - start:.1f}s", flush=True)
                run.record("metrics", pd.concat(all_metrics, ignore_index=True))
                run.record("layers", pd.concat(all_layers, ignore_index=True))
    summary = table(pd.concat(all_metrics, ignore_index=True))
    run.record("summary", summary.reset_index())
    run.finish()
    with pd.option_context("display.width", 200, "display.max_rows", 200):
        print(summary.to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
