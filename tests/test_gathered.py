"""Sweep reports: records gathered per setting, findings paired on the seed against the baselines."""

import math

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
    table = ol.records.gathered.gather(tmp_path, "01_magnitude_pruning").findings().findings
    assert list(table.claim) == ["obd_ggn/global beats magnitude/global", "magnitude/global beats random/layer",
                                 "obd_ggn/global beats random/layer"]
    data = ol.load("synthetic")  # the runs' dataset sets the floor (its test split, the dense accuracy 0.9)
    floor = ol.findings.effect_floor(0.9, len(data.test.y))
    assert table.n.tolist() == [4, 4, 4] and table.floor.tolist() == pytest.approx([floor] * 3) and floor > 0.025
    assert table.verdict.tolist() == ["inconclusive", "supported", "supported"]
    assert (table.chance == 1 / data.num_classes).all()
    assert table.mean_difference.iloc[0] == pytest.approx(0.025)
    with pytest.raises(ValueError, match="none of the baselines"):
        ol.records.gathered.gather(tmp_path, "01_magnitude_pruning").findings(baselines=("taylor/global",))


def rewrite(path, edit):
    """Rewrite the CSV at `path`: `edit(lines)` returns its new lines."""
    path.write_text("\n".join(edit(path.read_text().splitlines())) + "\n")


def header_repeats(lines):
    """The header with 'sparsity' renamed to the name of another column ('seed'): a repeated column."""
    return [lines[0].replace("sparsity", "seed"), *lines[1:]]


def drop_sparsity(lines):
    """The table without its sparsity column."""
    i = lines[0].split(",").index("sparsity")
    return [",".join(c for j, c in enumerate(line.split(",")) if j != i) for line in lines]


def infinite_accuracy(lines):
    """The last row's test accuracy as inf."""
    return [*lines[:-1], ",".join(lines[-1].split(",")[:-1] + ["inf"])]


def text_density(lines):
    """The last row's density as text."""
    i = lines[0].split(",").index("density")
    cells = lines[-1].split(",")
    return [*lines[:-1], ",".join(cells[:i] + ["dense-ish"] + cells[i + 1:])]


@pytest.mark.parametrize("edit, reason", [
    (header_repeats, "the header repeats column 'seed'"),
    (drop_sparsity, "no column 'sparsity'"),
    (infinite_accuracy, "'test_accuracy' is not a finite number in line 5 (inf)"),
    (text_density, "'density' is not a finite number in line 5 ('dense-ish')"),
])
def test_a_record_the_report_cannot_use_is_skipped_with_one_warning_naming_it(tmp_path, edit, reason):
    write_runs(tmp_path, [0.02, 0.03, 0.01, 0.04])
    for seed in (1, 2):
        rewrite(tmp_path / f"seed{seed}" / "metrics.csv", edit)
    with pytest.warns(ol.records.integrity.RecordWarning) as caught:
        found = ol.records.gathered.gather(tmp_path, "01_magnitude_pruning")
    assert sorted(str(w.message) for w in caught) == [f"skipping run record {tmp_path / f'seed{s}' / 'metrics.csv'}: "
                                                      f"{reason}" for s in (1, 2)]
    assert sorted(found.metrics.seed.unique()) == [0, 3] and found.findings().findings.n.tolist() == [2, 2, 2]
    assert found.summary()["mean"].map(math.isfinite).all()


def test_a_bad_layer_table_skips_that_table_only(tmp_path):
    write_runs(tmp_path, [0.02, 0.03, 0.01, 0.04])
    rewrite(tmp_path / "seed0" / "layers.csv", drop_sparsity)
    with pytest.warns(ol.records.integrity.RecordWarning, match="seed0.layers.csv: no column 'sparsity'"):
        found = ol.records.gathered.gather(tmp_path, "01_magnitude_pruning")
    assert sorted(found.layers.seed) == [1, 2, 3] and found.metrics.seed.nunique() == 4


def test_an_integer_too_large_for_a_float_or_a_deeply_nested_manifest_skips_the_record(tmp_path):
    """Battery: a 400-digit seed cell (OverflowError) and a manifest nested 100,000 deep (RecursionError) were
    internal errors; now each record is skipped with one warning naming its file."""
    write_runs(tmp_path, [0.02, 0.03, 0.01, 0.04])
    rewrite(tmp_path / "seed1" / "metrics.csv", lambda lines: [lines[0], *[line.replace(",1,", "," + "9" * 400 + ",")
                                                                          for line in lines[1:]]])
    (tmp_path / "seed2" / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.warns(ol.records.integrity.RecordWarning) as caught:
        found = ol.records.gathered.gather(tmp_path, "01_magnitude_pruning")
    reasons = sorted(str(w.message) for w in caught)
    assert any("seed1" in r and "'seed' is not a finite number" in r for r in reasons)
    assert any("seed2" in r and "nests too deeply" in r for r in reasons)
    assert sorted(found.metrics.seed.unique()) == [0, 3]


def test_no_usable_layers_table_is_refused_before_the_report_runs(tmp_path):
    """Battery: with the only record's layers.csv empty, the warning said 'skipping' and notebook 04 then failed at
    its per-layer figure (KeyError); now gathering says why, and `report` exits 2 before a kernel starts."""
    write_runs(tmp_path, [0.02])
    (tmp_path / "seed0" / "layers.csv").write_text("\n")
    with pytest.warns(ol.records.integrity.RecordWarning, match="layers.csv"):
        with pytest.raises(ValueError, match="no usable layers table of 01_magnitude_pruning"):
            ol.records.gathered.gather(tmp_path, "01_magnitude_pruning")


def test_a_header_only_table_is_skipped_and_a_bad_manifest_is_named_once(tmp_path):
    """Battery: a metrics.csv with only its header was dropped silently (and failed notebook 04 beside a good
    record); a FIFO manifest was named three times by one gather."""
    import os

    write_runs(tmp_path, [0.02, 0.03, 0.01])
    rewrite(tmp_path / "seed1" / "metrics.csv", lambda lines: lines[:1])
    (tmp_path / "seed2" / "manifest.json").unlink()
    os.mkfifo(tmp_path / "seed2" / "manifest.json")
    with pytest.warns(ol.records.integrity.RecordWarning) as caught:
        found = ol.records.gathered.gather(tmp_path, "01_magnitude_pruning")
    messages = [str(w.message) for w in caught]
    assert sum("seed1" in m and "the table has no rows" in m for m in messages) == 1
    assert sum("seed2" in m and "manifest.json" in m for m in messages) == 1, messages
    assert sorted(found.metrics.seed.unique()) == [0]
