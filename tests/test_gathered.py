"""Sweep reports: records gathered per setting, findings paired on the seed against the baselines."""

import pandas as pd
import pytest

import oneshot_lab as ol


def write_runs(root, diffs):
    """One record per seed: methods magnitude/global, random/layer, obd_ggn/global at one sparsity."""
    for seed, d in enumerate(diffs):
        run = ol.records.start(root / f"seed{seed}", {"seed": seed, "dataset": "synthetic"})
        rows = [{"stage": "dense", "method": "dense", "sparsity": 0.0, "density": 1.0, "seed": seed, "test_accuracy": 0.9}]
        for method, acc in [("magnitude/global", 0.6), ("random/layer", 0.3), ("obd_ggn/global", 0.6 + d)]:
            rows.append({"stage": "one_shot", "method": method, "sparsity": 0.9, "density": 0.1, "seed": seed,
                         "test_accuracy": acc + 0.01 * seed})
        run.record("metrics", pd.DataFrame(rows))
        run.record("layers", pd.DataFrame([{"method": "magnitude/global", "sparsity": 0.9, "layer": "0.weight",
                                            "density": 0.1, "collapsed": False, "seed": seed}]))
        run.finish()


def test_findings_compare_every_method_with_each_baseline(tmp_path):
    write_runs(tmp_path, [0.02, 0.03, 0.01, 0.04])
    table = ol.records.gathered.gather(tmp_path, "01_magnitude_pruning").findings()
    assert list(table.claim) == ["obd_ggn/global beats magnitude/global", "magnitude/global beats random/layer",
                                 "obd_ggn/global beats random/layer"]
    assert table.n.tolist() == [4, 4, 4] and table.verdict.tolist() == ["supported"] * 3
    assert table.mean_difference.iloc[0] == pytest.approx(0.025)
    with pytest.raises(ValueError, match="none of the baselines"):
        ol.records.gathered.gather(tmp_path, "01_magnitude_pruning").findings(baselines=("taylor/global",))
