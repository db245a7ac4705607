"""ipywidgets explorers: `explore(net, data)` prunes a model interactively (trained, or freshly built to prune at
initialisation), `tickets(result)` walks an IMP result's levels. Their handlers are plain methods (tests set a
control's value and read what it produced); in a headless run they show their starting numbers and figure as
ordinary outputs instead of widgets."""

from __future__ import annotations

import html
import time
from collections.abc import Mapping
from typing import Any

import pandas as pd
from torch import nn

from . import explorer_plots
from ..util import progress
from ..core.data import Dataset
from .explorer import PruningState, TicketState
from ..studies.lottery.rewinding import IMPResult
from ..core.masks import SCOPES
from ..training.train import TrainConfig

FINETUNE = TrainConfig(optimizer="adam", lr=1e-3, epochs=2, schedule="constant")


def _metric_cells(metrics: Mapping[str, Any], label: str, css: str) -> str:
    """One HTML table row of accuracy / loss values, each cell classed for the browser test."""
    cells = "".join(f"<td class='{css}-{key.replace('_', '-')}'>{metrics[key]:.4f}</td>"
                    for key in ("test_accuracy", "val_accuracy", "test_loss", "val_loss"))
    return f"<tr><th style='text-align:left'>{html.escape(label)}</th>{cells}</tr>"


def _table(rows: str, note: str) -> str:
    """An HTML table of metric rows under a header, with a note below."""
    head = "".join(f"<th>{h}</th>" for h in ("", "test accuracy", "val accuracy", "test loss", "val loss"))
    return f"<table class='ol-metrics'><tr>{head}</tr>{rows}</table><div>{note}</div>"


class Explorer:
    """Common behaviour: a widget box in a live front end, the numbers and figure as plain outputs when headless."""

    def __init__(self) -> None:
        self.timings: list[dict] = []  # one entry per update: wall seconds computing, drawing, in all; CPU seconds
        self.widget: Any = None
        self.status: Any = None
        self.image: Any = None
        self.figure: Any = None

    def summary(self) -> pd.DataFrame:
        """The numbers currently shown, as a table."""
        raise NotImplementedError

    def _timed(self, compute, draw) -> None:
        """Run `compute` then `draw`, recording how long each took."""
        t0, cpu = time.perf_counter(), time.process_time()
        computed = compute()
        t1 = time.perf_counter()
        draw(computed)
        t2 = time.perf_counter()
        self.timings.append({"compute_s": t1 - t0, "draw_s": t2 - t1, "total_s": t2 - t0,
                             "cpu_s": time.process_time() - cpu})

    def _ipython_display_(self) -> None:
        """Show the widget, or, headless, the summary table and the figure (no widget in saved output)."""
        from IPython.display import Image, display

        if progress.headless():
            display(self.summary())
            display(Image(data=bytes(self.image.value), format="png"))
        else:
            display(self.widget)


class PruningExplorer(Explorer):
    """Sparsity slider, criterion dropdown, scope toggle, layer choice and fine-tune button over a `PruningState`."""

    def __init__(self, state: PruningState, sparsity: float = 0.9, criterion: str = "magnitude",
                 scope: str = "global", layer: str | None = None):
        import ipywidgets as w

        super().__init__()
        self.state = state
        self.setting = state.setting(criterion, sparsity, scope)
        layer = layer or state.layer_names[0]
        if layer not in state.layer_names:
            raise ValueError(f"unknown layer {layer!r}; prunable layers: {', '.join(state.layer_names)}")
        self.sparsity = w.FloatSlider(value=self.setting.sparsity, min=0.0, max=0.99, step=0.01,
                                      description="sparsity", continuous_update=False, readout_format=".2f")
        self.criterion = w.Dropdown(options=state.criteria, value=criterion, description="method")
        self.scope = w.ToggleButtons(options=list(SCOPES), value=scope, description="scope")
        self.layer = w.Dropdown(options=state.layer_names, value=layer, description="mask of")
        self.finetune_button = w.Button(description="fine-tune", disabled=state.finetune_config is None,
                                        tooltip="train the pruned model under its mask, then evaluate")
        self.status, self.image = w.HTML(), w.Image(format="png")
        self.plot = explorer_plots.PruningFigure()
        self.figure = self.plot.figure
        for control in (self.sparsity, self.criterion, self.scope, self.layer):
            control.observe(self.update, names="value")
        self.finetune_button.on_click(self.finetune)
        self.widget = w.VBox([w.HBox([self.sparsity, self.criterion, self.layer]),
                              w.HBox([self.scope, self.finetune_button]), self.status, self.image])
        self.update()

    def update(self, change: Any = None) -> None:
        """Read the controls, compute the masks and metrics of that setting (cached), redraw the numbers and figure."""
        def compute():
            self.setting = self.state.setting(self.criterion.value, self.sparsity.value, self.scope.value)
            self.view = self.state.view(self.setting)

        self._timed(compute, lambda _: self._draw())

    def finetune(self, button: Any = None) -> None:
        """Fine-tune the current setting's pruned model under its mask and show the result beside it."""
        self.finetune_button.disabled, self.finetune_button.description = True, "fine-tuning..."
        try:
            self.state.finetune(self.setting)
            self.update()
        finally:
            self.finetune_button.disabled = self.state.finetune_config is None
            self.finetune_button.description = "fine-tune"

    def summary(self) -> pd.DataFrame:
        """Dense, pruned (and fine-tuned, once run) metrics of the current setting."""
        rows = [{"model": "dense", **self.state.dense},
                {"model": f"{self.setting.method} at {self.setting.sparsity:g}", **self.view.metrics}]
        if self.view.finetuned is not None:
            rows.append({"model": "  after fine-tuning", **self.view.finetuned})
        return pd.DataFrame(rows).set_index("model")

    def _draw(self) -> None:
        """The status table and figure of the current view."""
        view, metrics = self.view, self.view.metrics
        rows = _metric_cells(self.state.dense, "dense", "ol-dense")
        rows += _metric_cells(metrics, f"pruned ({view.setting.method})", "ol")
        if view.finetuned is not None:
            rows += _metric_cells(view.finetuned, "pruned, then fine-tuned", "ol-finetuned")
        collapsed = view.layers.loc[view.layers["collapsed"], "layer"].tolist()
        note = (f"density <span class='ol-density'>{metrics['density']:.4f}</span> of the prunable weights kept; "
                f"collapsed layers: <span class='ol-collapsed' style='color:{'red' if collapsed else 'inherit'}'>"
                f"{html.escape(', '.join(collapsed)) if collapsed else 'none'}</span>")
        self.image.value = self.plot.png(view, self.layer.value)
        self.status.value = _table(rows, note)


class TicketExplorer(Explorer):
    """Level slider, condition selector and layer choice over a `TicketState`."""

    def __init__(self, state: TicketState, level: int | None = None, condition: str = "ticket",
                 layer: str | None = None):
        import ipywidgets as w

        super().__init__()
        self.state = state
        layers = list(state.masks(0, state.conditions[0]))
        layer = layer or layers[0]
        if layer not in layers:
            raise ValueError(f"unknown layer {layer!r}; prunable layers: {', '.join(layers)}")
        level = state.levels[-1] if level is None else level
        self.view = state.view(level, condition)
        self.level = w.IntSlider(value=level, min=state.levels[0], max=state.levels[-1], description="level",
                                 continuous_update=False)
        self.condition = w.ToggleButtons(options=state.conditions, value=condition, description="condition")
        self.layer = w.Dropdown(options=layers, value=layer, description="mask of")
        self.status, self.image = w.HTML(), w.Image(format="png")
        self.figure = explorer_plots.new_figure(3)
        for control in (self.level, self.condition, self.layer):
            control.observe(self.update, names="value")
        self.widget = w.VBox([w.HBox([self.level, self.layer]), self.condition, self.status, self.image])
        self.update()

    def update(self, change: Any = None) -> None:
        """Show the current (level, condition): its metrics row, the curve with it ringed, its masks."""
        def compute():
            self.view = self.state.view(self.level.value, self.condition.value)

        self._timed(compute, lambda _: self._draw())

    def summary(self) -> pd.DataFrame:
        """The metrics row of the current (level, condition)."""
        keep = ["level", "condition", "weights_remaining", "early_stop_val_accuracy", "early_stop_test_accuracy",
                "final_test_accuracy", "collapsed_layers"]
        return pd.DataFrame([{k: self.view.row[k] for k in keep}]).set_index(["level", "condition"])

    def _draw(self) -> None:
        """The status line and figure of the current view."""
        row = self.view.row
        explorer_plots.ticket_figure(self.state.metrics, self.view, self.layer.value, self.figure)
        self.image.value = explorer_plots.png(self.figure)
        self.status.value = (
            f"<b>level {self.view.level}, {html.escape(self.view.condition)}</b>: "
            f"<span class='ol-weights'>{row['weights_remaining']:.2f}</span>% of prunable weights remaining; "
            f"early-stop val accuracy <span class='ol-val-accuracy'>{row['early_stop_val_accuracy']:.4f}</span>, "
            f"test accuracy <span class='ol-test-accuracy'>{row['early_stop_test_accuracy']:.4f}</span>; "
            f"collapsed layers: {int(row['collapsed_layers'])}")


def explore(net: nn.Module, data: Dataset, sparsity: float = 0.9, criterion: str = "magnitude",
            scope: str = "global", layer: str | None = None, finetune: TrainConfig | None = FINETUNE,
            seed: int = 0, score_options: Mapping[str, Mapping] | None = None) -> PruningExplorer:
    """The pruning explorer of `net` (trained, or at initialisation) on `data` (finetune=None hides the fine-tune button)."""
    state = PruningState(net, data, seed=seed, finetune=finetune, score_options=score_options)
    return PruningExplorer(state, sparsity=sparsity, criterion=criterion, scope=scope, layer=layer)


def tickets(result: IMPResult | Mapping[int, IMPResult], level: int | None = None, condition: str = "ticket",
            layer: str | None = None) -> TicketExplorer:
    """The ticket explorer of an IMP result (a {seed: result} mapping, as notebook 03 keeps: its first seed)."""
    if isinstance(result, Mapping):
        if not result:
            raise ValueError("tickets got an empty mapping of results")
        result = next(iter(result.values()))
    return TicketExplorer(TicketState(result), level=level, condition=condition, layer=layer)
