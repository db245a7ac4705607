"""Published one-shot pruning results, kept as data with their source, and a table that puts ours beside them."""

from __future__ import annotations

import pandas as pd

from ..util import checks
from . import stats

CBS = ("Yu et al., 'The Combinatorial Brain Surgeon: Pruning Weights That Cancel One Another in Neural "
       "Networks', ICML 2022 (table of one-shot pruning without retraining, MLPNet on MNIST); quoted in "
       "REFERENCES.md")
MNIST_MLP_DATA = ("full MNIST: 60,000 training images (the Fisher / calibration samples drawn from them), "
                  "10,000 test images")
MNIST_MLP_NETWORK = "MLP 784-40-20-10 (ReLU), one shot, no retraining"

# test accuracy in percent: {method: {sparsity: accuracy}}
MNIST_MLP = {
    "magnitude": {0.8: 92.9, 0.9: 90.3, 0.95: 83.6, 0.98: 32.3},
    "woodfisher": {0.8: 93.6, 0.9: 91.7, 0.95: 85.5, 0.98: 38.3},
    "cbs": {0.8: 93.9, 0.9: 93.1, 0.95: 88.9, 0.98: 55.5},
}
# the lab's method that computes what each published method computes (None: not in the lab)
LAB_METHOD = {"magnitude": "magnitude/global", "woodfisher": "woodfisher/global", "cbs": None}


def mnist_mlp() -> pd.DataFrame:
    """The published MNIST MLP 784-40-20-10 one-shot table: source, network, data, method, sparsity, accuracy (%)."""
    rows = [{"source": CBS, "network": MNIST_MLP_NETWORK, "data": MNIST_MLP_DATA, "method": method,
             "sparsity": sparsity, "published_accuracy": accuracy}
            for method, levels in MNIST_MLP.items() for sparsity, accuracy in levels.items()]
    return pd.DataFrame(rows)


def beside(metrics: pd.DataFrame, match: dict[str, str | None] | None = None, stage: str = "one_shot",
           value: str = "test_accuracy", confidence: float = 0.95) -> pd.DataFrame:
    """The published MNIST MLP table with our mean and Student-t interval (in percent) beside each figure.

    `metrics`: one-shot records over seeds (columns method, sparsity, stage, seed, `value` as a fraction).
    `match` maps each published method to the lab's method that computes it (default `LAB_METHOD`);
    published rows whose method has no match, or whose sparsity the run lacks, get NaN. Columns:
    sparsity, method, published_accuracy, lab_method, n, our_accuracy, ci_low, ci_high, difference
    (ours minus published, percentage points).
    """
    match = LAB_METHOD if match is None else dict(checks.mapping("match", match))
    unknown = sorted(set(match) - set(MNIST_MLP))
    if unknown:
        raise ValueError(f"match names unknown published method(s) {unknown}; published: {', '.join(MNIST_MLP)}")
    rows = metrics[metrics["stage"] == stage] if "stage" in metrics.columns else metrics
    ours = stats.summarize(rows, ["method", "sparsity"], value, confidence) if len(rows) else None
    out = []
    for row in mnist_mlp().itertuples():
        lab = match.get(row.method)
        hit = pd.DataFrame()
        if lab is not None and ours is not None:
            hit = ours[(ours["method"] == lab) & checks.same_fraction(ours["sparsity"], row.sparsity)]
        found = hit.iloc[0] if len(hit) else None
        mean = 100 * found["mean"] if found is not None else float("nan")
        out.append({"sparsity": row.sparsity, "method": row.method, "published_accuracy": row.published_accuracy,
                    "lab_method": lab, "n": int(found["n"]) if found is not None else 0, "our_accuracy": mean,
                    "ci_low": 100 * found["ci_low"] if found is not None else float("nan"),
                    "ci_high": 100 * found["ci_high"] if found is not None else float("nan"),
                    "difference": mean - row.published_accuracy})
    return pd.DataFrame(out).sort_values(["sparsity", "method"], ignore_index=True)
