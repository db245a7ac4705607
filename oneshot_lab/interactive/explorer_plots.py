"""The explorers' figures (per-layer density, a layer's mask, the ticket curve with the current level), drawn on
a reusable matplotlib Figure and rendered to PNG bytes, so a widget and a headless run show the same picture."""

from __future__ import annotations

import io

import pandas as pd
import torch
from matplotlib.figure import Figure

from ..analysis import plots
from .explorer import PruningView, TicketView

DPI = 72


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


def mask_heatmap(mask: torch.Tensor, name: str, ax) -> None:
    """One layer's mask as an image: output units down, inputs (times kernel positions) across; kept entries dark."""
    matrix = mask.reshape(mask.shape[0], -1).to(torch.float32).numpy() if mask.dim() > 1 else mask[None].float().numpy()
    ax.imshow(matrix, cmap="Greys", vmin=0, vmax=1, aspect="auto", interpolation="nearest")
    kept = int(mask.sum())
    ax.set_title(f"mask of {name}: {kept} of {mask.numel()} kept" + (" (collapsed)" if kept == 0 else ""),
                 fontsize="medium", color="red" if kept == 0 else "black")
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
    figure.suptitle(f"{view.setting.method} at sparsity {view.setting.sparsity:g}: "
                    f"test accuracy {view.metrics['test_accuracy']:.4f}")
    return figure


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
