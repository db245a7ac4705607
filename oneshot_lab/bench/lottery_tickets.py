"""Lottery tickets vs their controls: test accuracy against weights remaining, mean and 95% interval over seeds.

Runs IMP (rewinding to the initialisation) with the defaults of notebook 03 on MNIST-1D and digits, with the
random re-initialisation and random-mask controls on every level's ticket mask, and writes one tidy CSV
(`metrics.csv`, plus `summary.csv` and a manifest) under --out.

    OMP_NUM_THREADS=1 python -m oneshot_lab.bench.lottery_tickets            # about 6 min on one core
    OMP_NUM_THREADS=1 python -m oneshot_lab.bench.lottery_tickets --datasets digits --seeds 0 --levels 1
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

import oneshot_lab as ol

# The defaults of notebooks/03_lottery_ticket_rewinding.ipynb.
DEFAULTS = dict(widths=[100, 100], iterations=1500, batch_size=64, lr=0.002, schedule="step", eval_every=100,
                levels=8, rate=0.3, output_rate=0.15, scope="layer", criterion="magnitude")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m oneshot_lab.bench.lottery_tickets",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["mnist1d", "digits"], choices=["mnist1d", "digits"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--controls", nargs="+", default=["reinit", "random_mask"], choices=ol.studies.lottery.rewinding.CONTROLS)
    parser.add_argument("--levels", type=int, default=DEFAULTS["levels"])
    parser.add_argument("--out", default="runs/benchmarks/lottery_tickets")
    return parser.parse_args(argv)


def run_one(dataset: ol.Dataset, seed: int, levels: int, controls: list[str]) -> pd.DataFrame:
    """IMP with controls for one dataset and seed, with the notebook's defaults."""
    net = ol.build("mlp", dataset, seed=seed, widths=DEFAULTS["widths"])
    config = ol.TrainConfig(optimizer="adam", lr=DEFAULTS["lr"], batch_size=DEFAULTS["batch_size"],
                            iterations=DEFAULTS["iterations"], schedule=DEFAULTS["schedule"],
                            eval_every=DEFAULTS["eval_every"], seed=seed)
    imp = ol.studies.lottery.rewinding.IMPConfig(train=config, levels=levels, rate=DEFAULTS["rate"],
                               layer_rates={ol.prunable(net)[-1]: DEFAULTS["output_rate"]}, scope=DEFAULTS["scope"],
                               criterion=DEFAULTS["criterion"], controls=controls, seed=seed)
    result = ol.studies.lottery.rewinding.imp(net, dataset, imp, progress=False)
    return result.metrics.assign(dataset=dataset.name, seed=seed)


def main(argv: list[str] | None = None) -> int:
    """Run every (dataset, seed), print mean ± interval tables and the run time, write CSVs."""
    args = parse(argv)
    run = ol.results.start(args.out, {**DEFAULTS, **vars(args), "seed": args.seeds})
    start, frames, summaries = time.perf_counter(), [], []
    for name in args.datasets:
        data = ol.load(name, seed=0)
        t0 = time.perf_counter()
        frames += [run_one(data, seed, args.levels, args.controls) for seed in args.seeds]
        metrics = pd.concat(frames, ignore_index=True)
        run.record("metrics", metrics)
        summary = ol.analysis.stats.summarize(metrics[metrics.dataset == name], ["level", "weights_remaining", "condition"],
                                     "early_stop_test_accuracy").assign(dataset=name)
        summaries.append(summary)
        run.record("summary", pd.concat(summaries, ignore_index=True))
        print(f"\n{name}: early-stop test accuracy (min val loss), mean ± 95% t-interval over seeds {args.seeds}, "
              f"{time.perf_counter() - t0:.0f} s")
        print(ol.analysis.stats.table(summary, ["level", "weights_remaining"], "condition").to_string())
    run.finish()
    print(f"\ntotal run time {time.perf_counter() - start:.0f} s; tables in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
