"""Dense accuracy over seeds beside the published figure."""

import pandas as pd
import pytest
from scipy import stats as sps

import oneshot_lab as ol


def test_dense_table_interval_and_published_figure():
    accs = [0.93, 0.95, 0.94, 0.96, 0.945]
    metrics = pd.DataFrame([{"stage": "dense", "seed": s, "val_accuracy": a - 0.01, "test_accuracy": a}
                            for s, a in enumerate(accs)] + [{"stage": "one_shot", "seed": 0, "val_accuracy": 0.1,
                                                            "test_accuracy": 0.1}])
    table = ol.analysis.baselines.dense_table(metrics, "mnist1d", "conv1d").set_index("split")
    low, high = sps.t.interval(0.95, 4, loc=sum(accs) / 5, scale=sps.sem(accs))
    assert table.loc["test", "n"] == 5 and table.loc["test", "ci_low"] == pytest.approx(low)
    assert table.loc["test", "ci_high"] == pytest.approx(high)
    assert table.loc["test", "published_test"] == 0.94 and "Greydanus" in table.loc["test", "source"]
    none = ol.analysis.baselines.dense_table(metrics, "synthetic", "mlp")
    assert none["published_test"].isna().all() and ol.analysis.baselines.published("synthetic", "mlp") is None
    with pytest.raises(ValueError, match="no dense rows"):
        ol.analysis.baselines.dense_table(metrics[metrics.stage != "dense"], "mnist1d", "conv1d")
