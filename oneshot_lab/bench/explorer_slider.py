"""Time of one sparsity-slider move in the pruning explorer: compute (masks + test and validation evaluation)
plus redraw (status table, density bars, mask heatmap rendered to PNG), on the lab's default model.

Usage: OMP_NUM_THREADS=1 .venv/bin/python benchmarks/explorer_slider.py [--epochs 60] [--moves 20]

Wall times depend on what else the machine runs; the CPU time of the process (also printed) much less so.

The model is the lab's default network (notebook 01's conv1d on MNIST-1D, seed 0), trained here with Adam
lr 0.003, batch 64, cosine schedule, `--epochs` epochs (the weights do not change what a move costs). Moves go to
`--moves` distinct sparsities (each computed for the first time: the uncached case), then back over the same
positions (cached: only the redraw). The handler is the one a browser drag triggers, called as the tests do.
"""

from __future__ import annotations

import argparse
import statistics

import torch

import oneshot_lab as ol


def main() -> None:
    """Train the default model, move the slider, print the median times."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=60, help="dense training epochs")
    parser.add_argument("--moves", type=int, default=20, help="distinct slider positions")
    args = parser.parse_args()
    data = ol.load("mnist1d", seed=0)
    net = ol.build("conv1d", data, seed=0)
    ol.fit(net, data, ol.TrainConfig(optimizer="adam", lr=0.003, epochs=args.epochs, schedule="cosine"),
           progress=False)
    explorer = ol.interactive.widgets.explore(net, data, sparsity=0.5)
    positions = [round(0.5 + 0.45 * i / (args.moves - 1), 2) for i in range(args.moves)][1:] + [0.5]
    for label, moves in (("first visit", positions), ("cached", positions[:-1])):
        start = len(explorer.timings)
        for sparsity in moves:
            explorer.sparsity.value = sparsity
        timings = explorer.timings[start:]
        median = {key: statistics.median(t[key] for t in timings) for key in timings[0]}
        print(f"{label:12} {len(timings):3d} moves: median wall time: compute {1000 * median['compute_s']:6.1f} ms, "
              f"redraw {1000 * median['draw_s']:6.1f} ms, total {1000 * median['total_s']:6.1f} ms; "
              f"CPU time {1000 * median['cpu_s']:6.1f} ms")
    print(f"torch threads: {torch.get_num_threads()}; scores computed {explorer.state.computed['scores']} time(s)")


if __name__ == "__main__":
    main()
