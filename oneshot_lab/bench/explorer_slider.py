"""Time of one sparsity-slider move in the pruning explorer: compute (masks + test and validation evaluation)
plus redraw (status table, density bars, mask heatmap rendered to PNG), on the lab's default model.

A section of `python -m oneshot_lab.bench explorer_slider`, or on its own:
`python -m oneshot_lab.bench.explorer_slider [--epochs 60] [--moves 20] [--quick]`.

Wall times depend on what else the machine runs; the CPU time of the process (also given) much less so.

The model is the lab's default network (notebook 01's conv1d on MNIST-1D, seed 0), trained here with Adam
lr 0.003, batch 64, cosine schedule, `epochs` epochs (the weights do not change what a move costs). Moves go to
`moves` distinct sparsities (each computed for the first time: the uncached case), then back over the same
positions (cached: only the redraw). The handler is the one a browser drag triggers, called as the tests do.

The redraw is done in place (`interactive.explorer_plots.PruningFigure`): the figure and its artists are kept, the
move changes bar heights, the uniform line, the mask image's data and the titles, draws the two panels and the
title over a cached image of what stays (the layer names, the heatmap's axes) and encodes the pixels as a PNG;
its time covers all of that, the status table, and handing both to the widgets.
"""

from __future__ import annotations

import argparse
import statistics
from typing import Any

import torch

from . import measure


def slider_times(epochs: int, moves: int) -> list[dict[str, Any]]:
    """Median milliseconds of a move, first visits and cached returns, on the trained default model."""
    import oneshot_lab as ol

    data = ol.load("mnist1d", seed=0)
    net = ol.build("conv1d", data, seed=0)
    ol.fit(net, data, ol.TrainConfig(optimizer="adam", lr=0.003, epochs=epochs, schedule="cosine"),
           progress=False)
    explorer = ol.interactive.widgets.explore(net, data, sparsity=0.5)
    positions = [round(0.5 + 0.45 * i / (moves - 1), 2) for i in range(moves)][1:] + [0.5]
    rows = []
    for label, visits in (("first visit", positions), ("cached", positions[:-1])):
        start = len(explorer.timings)
        for sparsity in visits:
            explorer.sparsity.value = sparsity
        timings = explorer.timings[start:]
        median = {key: statistics.median(t[key] for t in timings) for key in timings[0]}
        rows.append({"moves": label, "n": len(timings), "compute_ms": round(1000 * median["compute_s"], 1),
                     "redraw_ms": round(1000 * median["draw_s"], 1), "total_ms": round(1000 * median["total_s"], 1),
                     "cpu_ms": round(1000 * median["cpu_s"], 1), "scores_computed": explorer.state.computed["scores"]})
    return rows


def run(quick: bool = False, repeats: int = 1, epochs: int = 60, moves: int = 20) -> dict[str, Any]:
    """The slider table (quick: one epoch, three positions); `repeats` is unused: every move is one measurement."""
    if quick:
        epochs, moves = 1, 3
    if moves < 2:
        raise ValueError(f"moves must be at least 2, got {moves}")
    rows = slider_times(epochs, moves)
    markdown = (f"### One explorer slider move on notebook 01's model ({epochs} training epochs): median wall "
                "milliseconds (compute, redraw, total) and CPU milliseconds\n\n" + measure.markdown_table(rows))
    return {"rows": rows, "markdown": markdown}


def main(argv: list[str] | None = None) -> int:
    """Train the default model, move the slider, print the median times."""
    parser = argparse.ArgumentParser(prog="python -m oneshot_lab.bench.explorer_slider",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=60, help="dense training epochs")
    parser.add_argument("--moves", type=int, default=20, help="distinct slider positions")
    parser.add_argument("--quick", action="store_true", help="one epoch, three positions")
    args = parser.parse_args(argv)
    print(run(args.quick, epochs=args.epochs, moves=args.moves)["markdown"])
    print(f"torch threads: {torch.get_num_threads()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
