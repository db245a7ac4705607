"""Published dense accuracies and a run's dense accuracy over seeds beside them."""

from __future__ import annotations

import pandas as pd

from . import stats

# (dataset, model) -> (published test accuracy, source); models the source names, not ours, where noted.
PUBLISHED: dict[tuple[str, str], tuple[float, str]] = {
    ("mnist1d", "mlp"): (0.68, "Greydanus 2020, MNIST-1D MLP baseline (4,000 train examples)"),
    ("mnist1d", "lenet_300_100"): (0.68, "Greydanus 2020, MNIST-1D MLP baseline (an MLP, not LeNet-300-100)"),
    ("mnist1d", "conv1d"): (0.94, "Greydanus 2020, MNIST-1D CNN baseline (4,000 train examples)"),
    ("digits", "mlp"): (0.97, "scikit-learn digits, small MLPs (about 97-98 percent)"),
}


def published(dataset: str, model: str) -> tuple[float, str] | None:
    """The published test accuracy for `model` on `dataset` with its source, or None when there is none."""
    return PUBLISHED.get((dataset, model))


def dense_table(metrics: pd.DataFrame, dataset: str, model: str, confidence: float = 0.95) -> pd.DataFrame:
    """The dense model's validation and test accuracy over seeds (n, mean, interval) beside the published figure."""
    if not isinstance(metrics, pd.DataFrame) or "stage" not in metrics.columns:
        raise ValueError("dense_table needs a metrics table with a 'stage' column (one_shot's or replicate's)")
    dense = metrics[metrics["stage"] == "dense"]
    if dense.empty:
        raise ValueError("the metrics table has no dense rows (stage 'dense')")
    rows = []
    for split in ("val", "test"):
        summary = stats.summarize(dense, [], f"{split}_accuracy", confidence).iloc[0]
        rows.append({"dataset": dataset, "model": model, "split": split, "n": summary["n"],
                     "mean": summary["mean"], "ci_low": summary["ci_low"], "ci_high": summary["ci_high"],
                     "text": summary["text"]})
    table = pd.DataFrame(rows)
    figure = published(dataset, model)
    table["published_test"] = figure[0] if figure else float("nan")
    table["source"] = figure[1] if figure else "no published figure for this dataset and model"
    return table
