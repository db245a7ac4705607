"""The benchmark suite: the quick run works end to end, its pieces are right, the README section is current."""

import json
import os
from pathlib import Path

import torch

from oneshot_lab.bench import inference, lab, performance
from oneshot_lab.bench.__main__ import main

ROOT = Path(__file__).resolve().parents[1]


def test_quick_bench_runs_and_checks_itself(tmp_path):
    assert main(["--quick", "--out", str(tmp_path)]) == 0
    results = {p.stem: json.loads(p.read_text()) for p in tmp_path.glob("*.json")}
    assert set(results) == {"training", "global_prune", "second_order", "inference"}
    assert all(r["machine"]["torch_threads"] == 1 and r["quick"] for r in results.values())
    assert all(row["identical_weights"] for row in results["training"]["fit_vs_bare"])
    assert all(row["identical_masks"] for row in results["global_prune"]["rows"])
    assert results["global_prune"]["rows"][0]["torch_peak_mib"] > 0  # the memory probe sees torch's allocations
    exact = {row["curvature"]: row for row in results["second_order"]["errors"]}
    assert exact["hessian"]["error_vs_exact_hessian"] < 1e-3 and exact["ggn"]["error_vs_exact_ggn"] < 1e-3
    section = performance.section(tmp_path)
    assert section.startswith("# Performance") and "### Targets" in section


def test_fit_cache_bench_measures_a_hit_that_gives_the_weights_fit_gives(tmp_path, monkeypatch):
    monkeypatch.setenv("ONESHOT_LAB_CACHE", str(tmp_path / "users-cache"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "users-config"))  # the user's key file: left alone
    assert main(["fit_cache", "--quick", "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "fit_cache.json").read_text())["rows"]
    assert [row["case"] for row in rows] == ["lottery MLP", "conv1d"]
    assert all(row["hit_identical_weights"] and row["key_ms"] > 0 and row["entry_kB"] > 0 for row in rows)
    assert not (tmp_path / "users-cache").exists()  # the bench works in its own directory and restores the setting
    assert not (tmp_path / "users-config").exists() and os.environ["XDG_CONFIG_HOME"] == str(tmp_path / "users-config")
    assert os.environ["ONESHOT_LAB_CACHE"] == str(tmp_path / "users-cache")


def test_unknown_section_is_rejected_before_any_work(tmp_path, capsys):
    assert main(["nosuch", "--out", str(tmp_path)]) == 2
    assert "unknown section(s) nosuch; valid: training" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_csr_layers_compute_what_the_dense_ones_do():
    torch.manual_seed(0)
    conv = torch.nn.Sequential(torch.nn.Conv1d(2, 5, 3, stride=2, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                               torch.nn.Linear(5 * 9, 4))
    with torch.no_grad():
        for layer in (conv[0], conv[3]):
            layer.weight.mul_(torch.rand_like(layer.weight) < 0.3)
        x = torch.randn(7, 2, 17)
        assert torch.allclose(inference.to_csr(conv)(x), conv(x), atol=1e-6)


def test_demo_times_are_read_from_the_demo_summary(tmp_path):
    summary = tmp_path / "summary.csv"
    summary.write_text("notebook,status,wall_s,committed_s,record\n01_a,ran,12.5,,x\n02_b,kept (complete),,,y\n"
                       "all,,15.5,,\n")
    assert lab.demo_times(summary) == {"01_a": 12.5}


def test_every_section_follows_the_protocol_and_the_experiments_name_known_criteria():
    import importlib
    import inspect

    from oneshot_lab.bench import __main__ as suite, obd_vs_magnitude
    from oneshot_lab.pruning import registry

    for name in set(suite.ALL_SECTIONS) - {"readme"}:
        parameters = inspect.signature(importlib.import_module(f"oneshot_lab.bench.{name}").run).parameters
        assert {"quick", "repeats"} <= set(parameters), name
    registry.labels(obd_vs_magnitude.CRITERIA)  # a ValueError if the benchmark names a removed criterion (it named snip)
