"""`oneshot-lab replicate NN`: a notebook on fresh seeds against its discovery record (the run is faked: no kernel)."""

import json
from pathlib import Path

import pandas as pd
import pytest

from oneshot_lab import cli, commands
from oneshot_lab.analysis import findings
from oneshot_lab.records import writing
from oneshot_lab.runner import notebooks, replication, spec

CLAIMS = [findings.Claim(claim="x beats y", a="x", b="y")]
GAPS = {0.5: 0.05, 0.7: 0.04, 0.9: 0.0}  # a - b per sparsity on the discovery seeds


def frame(seeds: list[int], gaps: dict[float, float]) -> pd.DataFrame:
    """Metrics rows of methods x and y per sparsity and seed, x ahead of y by the gap (+ a little per seed)."""
    return pd.DataFrame([{"method": m, "sparsity": s, "seed": seed, "test_accuracy": 0.6 + 0.01 * (seed % 3) +
                          (m == "x") * (gap + 0.003 * ((seed * 7) % 5 - 2))}
                         for s, gap in gaps.items() for seed in seeds for m in ("x", "y")])


def write_record(out: Path, notebook: str, params: dict, seeds: list[int], gaps: dict, run_id: str = "r") -> None:
    """A complete record of `notebook` at `out` with findings and findings_seeds over `seeds`."""
    run = writing.start(out, {**params, "out_dir": str(out)})
    for name, table in findings.family(frame(seeds, gaps), CLAIMS).tables().items():
        run.record(name, table)
    run.finish()
    writing.update_manifest(out, notebook=notebook, run_id=run_id)


@pytest.fixture
def discovery(tmp_path) -> Path:
    """A discovery record of notebook 01 with its default parameters on seeds 0-4."""
    out = tmp_path / "discovery"
    write_record(out, "01_magnitude_pruning", notebooks.defaults("01"), [0, 1, 2, 3, 4], GAPS)
    return out


@pytest.fixture
def fake_run(monkeypatch):
    """Replace the notebook run: the record gets findings over the task's seeds with the sign of 0.5 flipped."""
    tasks = []

    def run(task, out, force, refresh=False):
        tasks.append(task)
        params = {**notebooks.defaults(task.notebook), **task.params}
        write_record(Path(out), Path(task.notebook).stem, params, params.get("seeds", [5, 6]),
                     {0.5: -0.05, 0.7: 0.04, 0.9: 0.0}, task.run_id)
        return {"status": "done", "out_dir": str(out), "wall_s": 0.0, "run_id": task.run_id}

    monkeypatch.setattr(commands, "execute", run)
    return tasks


def test_replicate_runs_fresh_seeds_and_writes_the_replication(tmp_path, discovery, fake_run, capsys):
    assert cli.main(["replicate", "01", "--against", str(discovery), "--out", str(tmp_path / "rep")]) == 0
    (task,) = fake_run
    assert task.params == {"seeds": [5, 6, 7, 8, 9]} and task.run_id == spec.run_id("01", {"seeds": [5, 6, 7, 8, 9]})
    table = pd.read_csv(tmp_path / "rep" / "01_magnitude_pruning" / "replication.csv", keep_default_na=False)
    assert list(table.verdict) == ["supported", "supported", "inconclusive"]
    assert list(table.replication_verdict) == ["contradicted", "supported", ""]
    assert list(table.replicated) == ["no", "yes", ""]
    out = capsys.readouterr().out
    assert "1 of 2 discovered findings replicated on seeds 5, 6, 7, 8, 9 (1 did not" in out


@pytest.mark.parametrize("args,match", [
    (["-p", "lr", "0.02"], "was made with other parameters (lr: 0.01 in the discovery, 0.02 here)"),
    (["--seeds", "4", "5"], "seed(s) 4 were used by the discovery run"),
    (["--seeds", "5", "5"], "repeats a seed"),
    (["-p", "seeds", "[5]"], "do not give -p seeds"),
    (["--smoke"], "smoke: false in the discovery, true here"),
])
def test_what_is_not_a_replication_is_refused_before_any_run(tmp_path, discovery, fake_run, capsys, args, match):
    assert cli.main(["replicate", "01", "--against", str(discovery), "--out", str(tmp_path / "rep"), *args]) == 2
    assert match in capsys.readouterr().err and fake_run == [] and not (tmp_path / "rep").exists()


def test_a_notebook_without_findings_or_a_discovery_of_old_findings_is_refused(tmp_path, discovery, fake_run, capsys):
    assert cli.main(["replicate", "06", "--against", str(discovery)]) == 2
    assert "06_explorer computes no findings over seeds" in capsys.readouterr().err
    old = pd.read_csv(discovery / "findings.csv").drop(columns=["floor", "chance"])
    old.to_csv(discovery / "findings.csv", index=False)
    assert cli.main(["replicate", "01", "--against", str(discovery), "--out", str(tmp_path / "rep")]) == 2
    assert "findings.csv cannot be replicated" in capsys.readouterr().err and fake_run == []


def test_the_discovery_is_the_demo_record_if_complete_else_the_committed_one(tmp_path, monkeypatch):
    monkeypatch.setitem(replication.DISCOVERY, False, (str(tmp_path / "demo"), str(tmp_path / "results")))
    assert replication.discovery_dir("01_x", None, False) == tmp_path / "results" / "01_x"
    writing.start(tmp_path / "demo" / "01_x", {})
    assert replication.discovery_dir("01_x", None, False) == tmp_path / "results" / "01_x"  # not complete
    writing.start(tmp_path / "demo" / "01_x", {}).finish()
    assert replication.discovery_dir("01_x", None, False) == tmp_path / "demo" / "01_x"
    assert replication.discovery_dir("01_x", "elsewhere", False) == Path("elsewhere")


def test_the_sweep_report_runs_its_spec_with_the_grid_seeds_replaced(tmp_path, fake_run):
    discovery = tmp_path / "discovery"
    write_record(discovery, "04_sweep_report", {**notebooks.defaults("04"), "runs_dir": "/elsewhere/runs"},
                 [0, 1, 2, 3, 4], GAPS)
    plan = replication.plan("04", [5, 6, 7, 8, 9], {}, discovery, tmp_path / "rep", False)
    assert plan.discovery_seeds == [0, 1, 2, 3, 4] and plan.out == tmp_path / "rep" / "04_sweep_report"
    assert cli.main(["replicate", "04", "--against", str(discovery), "--out", str(tmp_path / "rep")]) == 0
    (task,) = fake_run
    derived = Path(task.params["spec"])
    assert task.params == {"spec": str(derived)} and derived == plan.spec_path and derived.parent == tmp_path / "rep"
    tasks = spec.expand(derived)  # the oracle: the spec reader itself
    original = spec.expand("sweeps/compare_criteria.yaml")
    assert [t.params["seed"] for t in tasks] == [5, 6, 7, 8, 9]
    assert [{**t.params, "seed": 0} for t in tasks] == [{**t.params, "seed": 0} for t in original]
    assert spec.spec_runs_dir(derived) == tmp_path / "rep" / "04_sweep_report_runs"
    assert json.loads(derived.read_text())["grid"] == {"seed": [5, 6, 7, 8, 9]}
    with pytest.raises(ValueError, match=r"seed\(s\) 4 were used"):
        replication.plan("04", [4, 5], {}, discovery, tmp_path / "rep", False)
    with pytest.raises(ValueError, match="seed"):
        replication.plan("04", [-1, 5], {}, discovery, tmp_path / "rep", False)  # refused here, not in the kernel
