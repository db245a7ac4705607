"""Linear-mode-connectivity instability: do two copies trained from iteration k end in one basin?"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Mapping, Sequence

import pandas as pd
import torch
from torch import nn

from ...training import train
from ...util.config import Config, option
from ...core.data import Dataset
from .rewinding import State, rewind
from ...core.masks import Masks, as_masks
from ...core.model_checks import check_model
from ...training.train import TrainConfig


@dataclass(frozen=True)
class InstabilityConfig(Config):
    """The rewind points, the two data orders and the interpolation of an instability analysis."""

    train: TrainConfig = option(TrainConfig(), "the recipe of the parent run and of both copies")
    rewind_iterations: tuple = option((0,), "rewind points k, each in [0, total iterations)")
    data_seeds: tuple = option((1, 2), "two distinct data-order seeds, one per copy")
    points: int = option(11, "interpolation points between the two copies (>= 2)")

    def __post_init__(self) -> None:
        """Validate every field (by their rules in `rules.RULES`) and store it normalised."""
        super().__post_init__()
        if len(self.data_seeds) != 2:
            raise ValueError(f"data_seeds must be two distinct seeds (one data order per copy), got {self.data_seeds!r}")

    def check(self, dataset: Dataset) -> None:
        """Raise a ValueError unless every rewind point lies within the run on `dataset`."""
        total = self.train.total_iterations(len(dataset.train.y))
        bad = [k for k in self.rewind_iterations if not k < total]
        if bad:
            raise ValueError(f"rewind_iterations must lie in [0, {total}) (the run has {total} iterations); bad: {bad}")


@dataclass
class Instability:
    """Linear-mode-connectivity results: errors along each path and the error barrier per rewind point."""

    path: pd.DataFrame
    barriers: pd.DataFrame


def interpolate(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor], alpha: float) -> State:
    """The state (1 - alpha) * a + alpha * b (non-float buffers taken from `a`)."""
    return {n: (1 - alpha) * a[n] + alpha * b[n] if a[n].is_floating_point() else a[n].clone() for n in a}


def error_path(model: nn.Module, dataset: Dataset, a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor],
               points: int = 11, splits: Sequence[str] = ("val", "test")) -> pd.DataFrame:
    """Loss, accuracy and error of `model`'s architecture at `points` evenly spaced states from `a` to `b`."""
    net, rows = copy.deepcopy(model), []
    for alpha in torch.linspace(0, 1, points).tolist():
        net.load_state_dict(interpolate(a, b, alpha))
        for split in splits:
            result = train.evaluate(net, dataset, split)
            rows.append({"alpha": alpha, "split": split, **result, "error": 1 - result["accuracy"]})
    return pd.DataFrame(rows)


def error_barrier(path: pd.DataFrame) -> pd.DataFrame:
    """Per split: max error along the path minus the mean error of its two ends (Frankle et al. 2020)."""
    rows = []
    for split, rows_split in path.groupby("split", sort=False):
        ends = rows_split.loc[[rows_split.alpha.idxmin(), rows_split.alpha.idxmax()], "error"]
        rows.append({"split": split, "barrier": rows_split.error.max() - ends.mean(),
                     "max_error": rows_split.error.max(), "end_error": ends.mean()})
    return pd.DataFrame(rows)


def instability(model: nn.Module, dataset: Dataset, config: InstabilityConfig, masks: Masks | None = None,
                progress: bool = True, parent: train.History | None = None) -> Instability:
    """Error barrier between two copies trained from iteration k with different data orders, for each k.

    A parent run trains `model` (left untouched) densely with `config.train` up to the end, snapshotting
    every k; each copy restarts from the iteration-k weights (times `masks`, if given: the sparse network
    rewound to k) and trains to the end with the data-order seed replaced by one of `config.data_seeds`
    (same schedule). The copies' final weights are interpolated linearly at `config.points` points.
    `parent` reuses a dense run of `model` with `config.train` that holds a snapshot at every k.
    """
    InstabilityConfig.checked("config", config).check(dataset)
    check_model(model, dataset)  # before the parent run trains
    masks = as_masks(model, masks)
    recipe = config.train
    if parent is None:
        parent = train.fit(copy.deepcopy(model), dataset, recipe, snapshot_at=config.rewind_iterations,
                           progress=progress)
    missing = [k for k in config.rewind_iterations if k not in parent.snapshots]
    if missing:
        raise ValueError(f"the parent run has no snapshot at k = {missing}; it has {sorted(parent.snapshots)}")
    paths, barriers = [], []
    for k in config.rewind_iterations:
        ends = []
        for data_seed in config.data_seeds:
            net = rewind(copy.deepcopy(model), parent.snapshots[k], masks)
            train.fit(net, dataset, recipe.replace(seed=data_seed), masks=masks, start_iteration=k, progress=progress)
            ends.append(train.snapshot(net))
        path = error_path(model, dataset, ends[0], ends[1], config.points).assign(rewind_iteration=k)
        paths.append(path)
        barriers.append(error_barrier(path).assign(rewind_iteration=k))
    density = masks.density() if masks is not None else 1.0
    return Instability(path=pd.concat(paths, ignore_index=True).assign(density=density),
                       barriers=pd.concat(barriers, ignore_index=True).assign(density=density))
