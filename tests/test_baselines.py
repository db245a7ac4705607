"""Published figures: one table with sources; the dense accuracy over seeds beside the published figure."""

import pandas as pd
import pytest
from scipy import stats as sps

import oneshot_lab as ol


def test_dense_table_interval_and_published_figure():
    accs = [0.93, 0.95, 0.94, 0.96, 0.945]
    metrics = pd.DataFrame([{"stage": "dense", "seed": s, "val_accuracy": a - 0.01, "test_accuracy": a}
                            for s, a in enumerate(accs)] + [{"stage": "one_shot", "seed": 0, "val_accuracy": 0.1,
                                                            "test_accuracy": 0.1}])
    table = ol.analysis.published.dense_table(metrics, "mnist1d", "conv1d").set_index("split")
    low, high = sps.t.interval(0.95, 4, loc=sum(accs) / 5, scale=sps.sem(accs))
    assert table.loc["test", "n"] == 5 and table.loc["test", "ci_low"] == pytest.approx(low)
    assert table.loc["test", "ci_high"] == pytest.approx(high)
    assert table.loc["test", "published_test"] == 0.94 and "Greydanus" in table.loc["test", "source"]
    none = ol.analysis.published.dense_table(metrics, "synthetic", "mlp")
    assert none["published_test"].isna().all() and ol.analysis.published.dense_accuracy("synthetic", "mlp") is None
    with pytest.raises(ValueError, match="no dense rows"):
        ol.analysis.published.dense_table(metrics[metrics.stage != "dense"], "mnist1d", "conv1d")


def test_every_published_figure_is_one_row_of_one_table_with_its_source():
    table = ol.analysis.published.table()
    assert list(table.columns) == ["source", "dataset", "model", "condition", "sparsity", "metric", "value",
                                   "network", "data"]
    assert table.source.str.len().gt(0).all() and table.value.between(0, 100).all()
    assert set(table.metric) == {ol.analysis.published.ACCURACY, ol.analysis.published.MATCHES}
    assert not table.duplicated(["dataset", "model", "condition", "sparsity", "metric"]).any()
    # as REFERENCES.md quotes them: MNIST-1D MLP about 68 %, CNN about 94 % (Greydanus 2020)
    assert ol.analysis.published.dense_accuracy("mnist1d", "mlp") == (0.68, table.source[0])
    assert ol.analysis.published.dense_accuracy("mnist1d", "conv1d")[0] == 0.94
