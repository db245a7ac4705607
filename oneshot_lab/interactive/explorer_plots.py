"""The explorers' figures (per-layer density, a layer's mask, the ticket curve with the current level), drawn on
a reusable matplotlib Figure and rendered to PNG bytes, so a widget and a headless run show the same picture.

The pruning explorer's figure (`PruningFigure`) is kept between slider moves: a new sparsity changes its artists in
place (bar heights, the uniform line, the mask image's data, the titles) and redraws only its two panels and the
title over a cached image of what stays (the layer names under the bars, the heatmap's axes), then encodes the
pixels with Pillow at a low compression level. A new method, scope or layer rebuilds the figure."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator

import numpy as np
import pandas as pd
import torch
from matplotlib.artist import Artist
from matplotlib.axis import Axis
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from PIL import Image

from ..analysis import plots
from .explorer import PruningView, TicketView

DPI = 72
PNG_COMPRESSION = 1  # zlib level: about half the time of matplotlib's (6) for a PNG about a third larger


def new_figure(panels: int) -> Figure:
    """A figure of `panels` side-by-side axes, not registered with pyplot (nothing is shown by accident)."""
    figure = Figure(figsize=(4.8 * panels, 3.8), dpi=DPI)
    figure.subplots(1, panels)
    # Fixed margins: a layout engine would draw every frame twice, and a slider move redraws the figure.
    figure.subplots_adjust(left=0.3 / panels, right=0.98, bottom=0.2, top=0.82, wspace=0.3)
    return figure


def png(figure: Figure) -> bytes:
    """`figure` rendered as PNG bytes."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def mask_matrix(mask: torch.Tensor) -> np.ndarray:
    """A mask as the matrix its heatmap shows: output units down, inputs (times kernel positions) across."""
    return mask.reshape(mask.shape[0], -1).to(torch.float32).numpy() if mask.dim() > 1 else mask[None].float().numpy()


def mask_title(mask: torch.Tensor, name: str, ax, y: float | None = None) -> None:
    """The heatmap's title: how many entries the mask keeps, in red when none (at height `y`: placed no more)."""
    kept = int(mask.sum())
    ax.set_title(f"mask of {name}: {kept} of {mask.numel()} kept" + (" (collapsed)" if kept == 0 else ""),
                 fontsize="medium", color="red" if kept == 0 else "black", y=y)


def mask_heatmap(mask: torch.Tensor, name: str, ax) -> None:
    """One layer's mask as an image: output units down, inputs (times kernel positions) across; kept entries dark."""
    ax.imshow(mask_matrix(mask), cmap="Greys", vmin=0, vmax=1, aspect="auto", interpolation="nearest")
    mask_title(mask, name, ax)
    ax.set_xlabel("input" + (" x kernel position" if mask.dim() > 2 else ""))
    ax.set_ylabel("output unit")


def _clear(figure: Figure) -> list:
    """The figure's axes, emptied (colours, legends and titles reset)."""
    for ax in figure.axes:
        ax.clear()
    return list(figure.axes)


def pruning_figure(view: PruningView, layer: str, figure: Figure | None = None) -> Figure:
    """Per-layer density bars (collapsed layers flagged) and the mask of `layer`, for one explorer setting."""
    figure = figure or new_figure(2)
    bars, heat = _clear(figure)
    plots.layer_density(view.layers, view.setting.sparsity, hue="method", ax=bars)
    mask_heatmap(view.masks[layer], layer, heat)
    figure.suptitle(pruning_title(view))
    return figure


def pruning_title(view: PruningView) -> str:
    """The pruning figure's title: the setting and its test accuracy."""
    setting = view.setting
    return f"{setting.method} at sparsity {setting.sparsity:g}: test accuracy {view.metrics['test_accuracy']:.4f}"


def ticket_figure(metrics: pd.DataFrame, view: TicketView, layer: str, figure: Figure | None = None) -> Figure:
    """Accuracy against weights remaining with the current (level, condition) ringed, its layer densities and a mask."""
    figure = figure or new_figure(3)
    curve, bars, heat = _clear(figure)
    y = "early_stop_test_accuracy"
    plots.ticket_curves(metrics, y=y, ax=curve, title="accuracy against weights remaining")
    curve.scatter([view.row["weights_remaining"]], [view.row[y]], s=220, facecolors="none", edgecolors="red",
                  linewidths=2, zorder=5)
    plots.layer_density(view.layers, float(view.layers["sparsity"].iloc[0]), hue="condition", ax=bars)
    mask_heatmap(view.masks[layer], layer, heat)
    figure.suptitle(f"level {view.level}, {view.condition}: {view.row['weights_remaining']:.1f}% of weights, "
                    f"test accuracy {view.row[y]:.4f}")
    return figure


def encode(canvas: FigureCanvasAgg) -> bytes:
    """The pixels `canvas` last drew, as PNG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(canvas.buffer_rgba())).save(buffer, format="png", compress_level=PNG_COMPRESSION)
    return buffer.getvalue()


@contextlib.contextmanager
def skipped(artists: list[Artist]) -> Iterator[None]:
    """Leave `artists` out of the draws made inside (matplotlib skips animated artists); the figure stays whole."""
    for artist in artists:
        artist.set_animated(True)
    try:
        yield
    finally:
        for artist in artists:
            artist.set_animated(False)


def outside(axis: Axis) -> bool:
    """Whether `axis` draws nothing inside its panel (no grid lines, ticks pointing out): then it can stay behind."""
    return all(tick.get_tickdir() == "out" and not tick.gridline.get_visible()
               for tick in (*axis.get_major_ticks(), *axis.get_minor_ticks()))


class PruningFigure:
    """The pruning explorer's figure, changed in place and partly redrawn while only the sparsity moves."""

    def __init__(self) -> None:
        self.figure = new_figure(2)
        self.canvas = FigureCanvasAgg(self.figure)
        self.shown: tuple[str, str] | None = None  # (method label, layer) of the cached background
        self.background: object = None  # the pixels of what stays, to draw the panels over
        self.uniform: Line2D | None = None  # the bars' dotted line at the uniform density
        self.static: list[Axis] = []  # the axes drawn in the background (the rest is drawn at every update)

    def png(self, view: PruningView, layer: str) -> bytes:
        """The figure of `view` with the mask of `layer`, as PNG bytes."""
        if (view.setting.method, layer) == self.shown:
            self._update(view, layer)
        else:
            self._rebuild(view, layer)
        self.canvas.restore_region(self.background)
        with skipped(self.static):  # in the background already
            for artist in (*self.figure.axes, self.figure.suptitle(pruning_title(view))):
                self.figure.draw_artist(artist)
        return encode(self.canvas)

    def _rebuild(self, view: PruningView, layer: str) -> None:
        """Draw the figure anew; cache as background the axes that stay while only the sparsity moves."""
        pruning_figure(view, layer, self.figure)
        bars, heat = self.figure.axes
        self.uniform = bars.lines[-1]
        self.static = [axis for axis in (bars.xaxis, heat.xaxis, heat.yaxis) if outside(axis)]
        with skipped([bars, heat, self.figure.suptitle(pruning_title(view))]):  # drawn over it each time
            self.canvas.draw()
        for axis in self.static:
            self.figure.draw_artist(axis)
        self.background = self.canvas.copy_from_bbox(self.figure.bbox)
        self.shown = (view.setting.method, layer)

    def _update(self, view: PruningView, layer: str) -> None:
        """Show `view` with the artists already there, as `pruning_figure` would draw it from scratch."""
        # What plots.layer_density and mask_heatmap draw that depends on the sparsity (tests compare the pixels).
        bars, heat = self.figure.axes
        sparsity, layers = view.setting.sparsity, view.layers
        (container,) = bars.containers  # one method: one bar per layer, in the table's order
        for bar, density in zip(container, layers["density"], strict=True):
            bar.set_height(density)
        self.uniform.set_ydata([1 - sparsity] * 2)
        self.uniform.set_label(f"uniform {1 - sparsity:.2f}")
        for text in list(bars.texts):
            text.remove()
        names = list(layers["layer"].unique())
        for row in layers[layers["collapsed"]].itertuples():
            bars.annotate("collapsed", (names.index(row.layer), 0), ha="center", va="bottom", color="red",
                          fontsize="small")
        bars.set_title(f"per-layer density at sparsity {sparsity:g}")
        bars.legend(fontsize="small")
        bars.relim()
        bars.autoscale_view(scalex=False)
        heat.get_images()[0].set_data(mask_matrix(view.masks[layer]))
        # The heatmap's axes do not change: its title stays where the last draw placed it (placing it again would
        # measure every tick label).
        mask_title(view.masks[layer], layer, heat, y=heat.title.get_position()[1])
