"""Run records: atomic writes, manifests, loading many runs into one table."""

import json

import pandas as pd
import pytest

from oneshot_lab.records import atomic, integrity, loading, writing


def test_run_record_and_manifest(tmp_path):
    run = writing.start(tmp_path / "r", {"seed": 3, "sparsities": (0.5, 0.9), "name": "x"})
    assert writing.read_manifest(tmp_path / "r")["status"] == "running"
    run.record("metrics", [{"sparsity": 0.5, "acc": 0.9}, {"sparsity": 0.9, "acc": 0.5}])
    run.finish()
    manifest = writing.read_manifest(tmp_path / "r")
    assert manifest["status"] == "complete" and manifest["seed"] == 3
    assert manifest["params"]["sparsities"] == [0.5, 0.9] and manifest["tables"] == ["metrics"]
    assert "torch" in manifest["versions"] and manifest["duration_s"] >= 0
    assert not list((tmp_path / "r").glob(".*tmp"))
    assert (tmp_path / "r" / "manifest.json").stat().st_mode & 0o044  # readable by others (not mkstemp's 0600)


def test_load_joins_parameters_and_skips_incomplete(tmp_path):
    for seed in (0, 1):
        run = writing.start(tmp_path / f"s{seed}", {"seed": seed, "model": "mlp", "acc": "param"})
        run.record("metrics", pd.DataFrame({"sparsity": [0.5], "acc": [0.8 + seed / 10]}))
        run.finish()
    writing.start(tmp_path / "broken", {"seed": 9}).record("metrics", [{"sparsity": 0.1, "acc": 0.0}])
    frame = loading.load(tmp_path)
    assert sorted(frame.seed) == [0, 1] and set(frame.model) == {"mlp"}
    assert list(frame.acc) == [0.8, 0.9]  # a metric column wins over a parameter of the same name
    assert len(loading.load(tmp_path, complete_only=False)) == 3
    assert loading.load(tmp_path, table="nothing").empty
    with pytest.raises(FileNotFoundError):
        loading.load(tmp_path / "missing")


def test_atomic_write_leaves_old_file_on_failure(tmp_path, monkeypatch):
    path = atomic.atomic_write_text(tmp_path / "a.json", json.dumps({"v": 1}))

    def boom(*_):
        raise OSError("disk full")
    monkeypatch.setattr(atomic.os, "replace", boom)
    with pytest.raises(OSError):
        atomic.atomic_write_text(path, "partial")
    assert json.loads(path.read_text()) == {"v": 1} and len(list(tmp_path.iterdir())) == 1


def test_bad_table_name(tmp_path):
    with pytest.raises(ValueError, match="identifier"):
        writing.start(tmp_path, {}).record("../evil", [])


def test_varying_parameters_keep_settings_apart(tmp_path):
    settings = [{"lr": 0.1, "methods": ["a"]}, {"lr": 0.01, "methods": ["a"]}]
    for i, (setting, seed) in enumerate([(s, seed) for s in settings for seed in (0, 1)]):
        params = {**setting, "seed": seed, "model": "mlp", "out_dir": f"/x/{i}", "smoke": i == 0}
        run = writing.start(tmp_path / f"r{i}", params)
        run.record("metrics", pd.DataFrame({"sparsity": [0.5, 0.9], "acc": [0.8 + seed / 10, 0.5 + i / 100]}))
        run.finish()
    writing.start(tmp_path / "broken", {"seed": 9, "lr": 5.0})  # incomplete: not a setting
    params = loading.run_parameters(tmp_path)
    assert len(params) == 4 and set(params.run) == {"r0", "r1", "r2", "r3"}
    assert loading.varying_parameters(params) == ["lr"]  # not seed, out_dir, smoke, run; not the constant ones
    assert loading.varying_parameters(params, exclude=()) == ["lr", "seed"]
    metrics = loading.load(tmp_path)
    assert loading.varying_parameters(metrics, names=["lr", "model", "methods", "seed"]) == ["lr"]
    assert loading.varying_parameters(metrics[metrics.lr == 0.1], names=["lr", "model", "seed"]) == []
    with pytest.raises(ValueError, match="no column"):
        loading.varying_parameters(metrics, names=["nope"])
    labels = loading.setting_labels(metrics, ["lr"])
    assert set(labels) == {"lr=0.1", "lr=0.01"} and (labels.index == metrics.index).all()
    assert set(loading.setting_labels(metrics, [])) == {"all runs"}
    # a parameter missing from some runs (an older notebook version) makes them a different setting
    missing = params.assign(model=[None, "mlp", "mlp", "mlp"])
    assert loading.varying_parameters(missing) == ["lr", "model"]


@pytest.mark.parametrize("table, reason", [
    ({"stage": ["a", "b"], "acc": [0.5, 1]}, None),
    ({"stage": ["a", "b"]}, "no column 'acc'"),
    ({"acc": [0.5, 1]}, "no column 'stage'"),
    ({"stage": ["a", 3], "acc": [0.5, 1]}, "'stage' is not text in line 3 (3)"),
    ({"stage": ["a", None], "acc": [0.5, 1]}, "'stage' is not text in line 3 (nan)"),
    ({"stage": ["a", "b"], "acc": [0.5, float("inf")]}, "'acc' is not a finite number in line 3 (inf)"),
    ({"stage": ["a", "b"], "acc": [float("nan"), 1]}, "'acc' is not a finite number in line 2 (nan)"),
    ({"stage": ["a", "b"], "acc": ["0.5", "high"]}, "'acc' is not a finite number in line 3 ('high')"),
    ({"stage": ["a", "b"], "acc": [True, False]}, None),  # a flag such as `collapsed` counts as a number
])
def test_columns_problem_names_the_column_line_and_value(table, reason):
    assert loading.columns_problem(pd.DataFrame(table), text=["stage"], numbers=["acc"]) == reason


def test_load_skips_a_record_its_check_refuses_with_one_warning(tmp_path):
    for seed, acc in ((0, 0.9), (1, float("inf")), (2, 0.7)):
        run = writing.start(tmp_path / f"s{seed}", {"seed": seed})
        run.record("metrics", pd.DataFrame({"sparsity": [0.5], "acc": [acc]}))
        run.finish()
    assert (tmp_path / "s1" / "metrics.csv").read_text() == "sparsity,acc\n0.5,inf\n"
    with pytest.warns(integrity.RecordWarning) as caught:
        frame = loading.load(tmp_path, check=lambda f: loading.columns_problem(f, numbers=["acc", "seed"]))
    assert [str(w.message) for w in caught] == [
        f"skipping run record {tmp_path / 's1' / 'metrics.csv'}: 'acc' is not a finite number in line 2 (inf)"]
    assert list(frame.seed) == [0, 2] and frame.attrs["skipped"][0]["run"] == "s1"
    assert len(loading.load(tmp_path)) == 3  # no check: every whole table, the infinity as it was written
