"""oneshot_lab: one-shot pruning of neural networks (OBD, magnitude, lottery tickets) on a CPU."""

from . import (curvature, data, experiment, lottery, models, obd, plots, progress, prune, results, saliency,
               sweep, train)
from .data import Dataset, load
from .models import build
from .prune import Masks, masks_from_scores, prunable
from .train import History, TrainConfig, evaluate, fit

__version__ = "0.1.0"

__all__ = [
    "curvature", "data", "experiment", "lottery", "models", "obd", "plots", "progress", "prune", "results",
    "saliency", "sweep", "train",
    "Dataset", "load", "build", "Masks", "masks_from_scores", "prunable",
    "History", "TrainConfig", "evaluate", "fit",
]
