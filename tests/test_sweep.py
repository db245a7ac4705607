"""Running sweeps: nothing runs on bad input, resumable records, failures, dead kernels, kill-and-resume, Dask."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from oneshot_lab.records import atomic, loading, writing
from oneshot_lab.runner import dask_cluster, spec, sweep


@pytest.fixture()
def tiny(tiny_notebook) -> Path:
    """conftest's fast notebook (no torch): records x and x², can fail, sleep or kill its kernel."""
    return tiny_notebook


def _records(runs_dir: Path) -> dict[str, dict]:
    """Visible run directories -> {file name: bytes}."""
    return {d.name: {f.name: f.read_bytes() for f in d.iterdir()}
            for d in sorted(runs_dir.iterdir()) if d.is_dir() and not d.name.startswith(".")}


# ---------------------------------------------------------------- bad input: one line, nothing runs or is written

@pytest.mark.parametrize("bad,match", [
    ({"notebook": "99", "grid": {"seed": [0]}}, "no notebook '99'"),
    ({"notebook": "01", "grid": {"sparsity_typo": [0.5]}}, "unknown parameter(s) 'sparsity_typo'"),
    ({"sweeps": [{"notebook": "01", "grid": {"seed": [0]}}, {"notebook": "01", "list": [{"epoch": 1}]}]},
     "sweeps[1]: unknown parameter(s) 'epoch'"),
])
def test_bad_spec_fails_in_one_line_before_anything_runs(bad, match, tmp_path, monkeypatch):
    monkeypatch.setattr("papermill.execute_notebook", lambda *a, **k: pytest.fail("a kernel was started"))
    with pytest.raises(spec.SpecError) as err:
        sweep.run_grid(bad, tmp_path / "runs")
    assert match in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "runs").exists()


def test_bad_executor_workers_and_runs_dir(tmp_path):
    good = {"notebook": "01", "grid": {"seed": [0]}}
    with pytest.raises(spec.SpecError, match="unknown executor 'slurm'; valid executors: local, dask"):
        sweep.run_grid(good, tmp_path, executor="slurm")
    with pytest.raises(spec.SpecError, match=r"workers must be an integer in \[1, 1024\]"):
        sweep.run_grid(good, tmp_path, workers=0)
    with pytest.raises(spec.SpecError, match="needs executor='dask'"):
        sweep.run_grid(good, tmp_path, scheduler="tcp://localhost:8786")
    with pytest.raises(spec.SpecError, match="no runs directory"):
        sweep.run_grid(good)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("options,match", [
    ({"dashboard": "8787"}, r"a dashboard \(8787\) needs executor='dask'"),
    ({"executor": "dask", "dashboard": "abc"}, "dashboard must be a port or host:port such as 127.0.0.1:8787"),
    ({"executor": "dask", "scheduler": "tcp://127.0.0.1:1", "dashboard": "8787"},
     "dashboard applies to a LocalCluster"),
    ({"executor": "dask", "security": object()}, "security= is for a scheduler of your own"),
    ({"executor": "dask", "scheduler": "tcp://127.0.0.1:1", "security": "tls"},
     "security must be a distributed.Security"),
    ({"executor": "dask", "scheduler": "tls://127.0.0.1:1"}, "speaks TLS, but no client certificate is configured: "
                                                             "set distributed.comm.tls.ca-file"),
])
def test_dask_options_are_checked_before_anything_runs(options, match, tmp_path):
    with pytest.raises(spec.SpecError, match=match):
        sweep.run_grid({"notebook": "01", "grid": {"seed": [0]}}, tmp_path, **options)
    assert not any(tmp_path.iterdir())


def test_a_local_dask_cluster_without_a_way_to_make_tls_credentials_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(dask_cluster.importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(dask_cluster.shutil, "which", lambda name: None)
    with pytest.raises(spec.SpecError, match="neither is installed \\(pip install cryptography\\)"):
        sweep.run_grid({"notebook": "01", "grid": {"seed": [0]}}, tmp_path, executor="dask")
    assert not any(tmp_path.iterdir())


OUTSIDER = """
import os, sys
from distributed import Client
from oneshot_lab.runner import dask_cluster
for address, security in ((sys.argv[1].replace("tls://", "tcp://"), None),
                          (sys.argv[1], dask_cluster.temporary_security())):
    try:
        client = Client(address, security=security, timeout=5)
    except Exception as err:
        print("refused", type(err).__name__)
    else:
        print("ran code in", client.run(os.getpid))
"""


def _http_status(port: int, path: str) -> int:
    """The HTTP status of GET http://127.0.0.1:port/path."""
    import urllib.error
    import urllib.request

    try:
        return urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5).status
    except urllib.error.HTTPError as err:
        return err.code


def test_the_sweeps_dask_cluster_refuses_other_clients_and_serves_nothing_over_http(recwarn):
    """Before: a plain Client('tcp://127.0.0.1:PORT') from another process ran code in the sweep's worker, and the
    scheduler served /info, /json and metrics on port 8787. A user's scheduler gets their TLS settings."""
    import dask
    from distributed import LocalCluster

    with dask_cluster.client(1) as own:
        cluster = own.cluster
        outsider = subprocess.run([sys.executable, "-c", OUTSIDER, cluster.scheduler.address], capture_output=True,
                                  text=True, timeout=120)
        assert outsider.stdout.count("refused") == 2, outsider.stdout + outsider.stderr[-2000:]
        nodes = [cluster.scheduler.address, *own.scheduler_info()["workers"],
                 *(w["nanny"] for w in own.scheduler_info()["workers"].values())]
        assert all(n.startswith("tls://127.0.0.1:") for n in nodes), nodes
        http_ports = [cluster.scheduler.http_server.port,
                      *own.run(lambda dask_worker: dask_worker.http_server.port).values()]
        assert 8787 not in http_ports
        for port in http_ports:
            for path in ("/health", "/info/main/workers.html", "/json/identity.json", "/metrics", "/status"):
                assert _http_status(port, path) == 404, (port, path)
        # a scheduler of the user's own: their Security in Python, or the TLS settings of Dask's configuration
        security = own.security
        with dask_cluster.client(1, cluster.scheduler.address, security) as theirs:
            assert set(theirs.run(os.getpid).values()) == set(own.run(os.getpid).values())
        with dask.config.set({"distributed.comm.tls.ca-file": security.tls_ca_file,
                              "distributed.comm.tls.client.cert": security.tls_client_cert,
                              "distributed.comm.tls.client.key": security.tls_client_key}):
            with dask_cluster.client(1, cluster.scheduler.address) as theirs:
                assert theirs.run(os.getpid)
    assert not [w for w in recwarn if "unencrypted" in str(w.message)]
    with LocalCluster(n_workers=0, processes=False, protocol="tcp://", host="127.0.0.1", dashboard_address=None,
                      scheduler_kwargs={"dashboard_address": "127.0.0.1:0"}) as plain:
        with pytest.warns(UserWarning, match="at tcp://127.0.0.1:.* takes unencrypted connections from anyone"):
            with dask_cluster.client(1, plain.scheduler.address):
                pass


def test_dask_serves_its_http_pages_only_when_a_dashboard_is_asked_for():
    assert dask_cluster.dashboard_address(8787) == dask_cluster.dashboard_address(":8787") == "127.0.0.1:8787"
    with dask_cluster.client(1, dashboard="0") as own:
        server = own.cluster.scheduler.http_server
        assert server.address == "127.0.0.1" and _http_status(server.port, "/health") == 200


# ---------------------------------------------------------------- records, failures, resume

def test_publish_replaces_a_record_whole_and_load_ignores_staging(tmp_path):
    old = writing.start(tmp_path / "r", {"seed": 0})
    old.finish("failed", error="boom")
    staging = tmp_path / ".sweep" / "partial" / "r"
    new = writing.start(staging, {"seed": 0})
    new.record("metrics", [{"acc": 0.5}])
    new.finish()
    assert len(loading.load(tmp_path, complete_only=False)) == 0  # a staging copy is never read
    atomic.publish(staging, tmp_path / "r")
    assert writing.is_complete(tmp_path / "r") and not staging.exists()
    assert "error" not in writing.read_manifest(tmp_path / "r") and list(loading.load(tmp_path).acc) == [0.5]
    assert list(loading.manifests(tmp_path).status) == ["complete"]


def test_failures_are_recorded_the_sweep_goes_on_and_resume_skips_complete(tiny, tmp_path):
    spec = {"notebook": str(tiny), "grid": {"x": [1, 2], "fail": [False, True]}}
    first = sweep.run_grid(spec, tmp_path, workers=2, progress=False)
    assert first.counts() == {"done": 2, "failed": 2} and not first.ok
    for outcome in first.outcomes:
        manifest = writing.read_manifest(tmp_path / outcome["run_id"])
        assert manifest["notebook"] == "tiny" and manifest["run_id"] == outcome["run_id"]
        assert (tmp_path / outcome["run_id"] / "tiny.ipynb").is_file()
        if outcome["status"] == "failed":
            assert manifest["status"] == "failed" and manifest["error"] == f"ValueError: x is {manifest['params']['x']}"
            assert manifest["error_cell"] == 2 and outcome["error_cell"] == 2
    assert "failed: tiny-" in str(first) and "at cell 2" in str(first)
    table = loading.load(tmp_path)
    assert sorted(table.x) == [1, 2] and list(table.y) == list(table.x ** 2) and set(table.notebook) == {"tiny"}
    assert set(loading.manifests(tmp_path).status) == {"complete", "failed"}

    before = _records(tmp_path)
    second = sweep.run_grid(spec, tmp_path, workers=2, progress=False)
    assert second.counts() == {"skipped": 2, "failed": 2}  # complete skipped, failed ones run again
    after = _records(tmp_path)
    for name, files in before.items():
        if b'"status": "complete"' in files["manifest.json"]:
            assert after[name] == files, "a complete record was rewritten"
    assert not any((tmp_path / ".sweep" / "partial").iterdir())


def test_dead_kernel_or_worker_is_retried_once(tiny, tmp_path):
    spec = {"notebook": str(tiny), "list": [{"x": 1, "deaths": 1, "counter": str(tmp_path / "once")},
                                            {"x": 2, "deaths": 2, "counter": str(tmp_path / "twice")},
                                            {"x": 3, "deaths": 1, "counter": str(tmp_path / "w"), "victim": "worker"}]}
    outcome = sweep.run_grid(spec, tmp_path / "runs", workers=2, progress=False)
    once, twice, worker = outcome.outcomes
    assert once["status"] == "done" and once["attempts"] == 2
    assert twice["status"] == "died" and twice["attempts"] == 2 and "kernel died" in twice["error"]
    manifest = writing.read_manifest(tmp_path / "runs" / twice["run_id"])
    assert manifest["status"] == "failed" and manifest["attempts"] == 2
    assert worker["status"] == "done" and (tmp_path / "w").read_text() == "x"  # a fresh worker ran it again
    assert sorted(loading.load(tmp_path / "runs").x) == [1, 3]


def test_two_sweeps_on_one_runs_dir_run_each_task_once(tiny, tmp_path):
    spec = {"notebook": str(tiny), "params": {"sleep": 1.0}, "grid": {"x": [1, 2]}}
    outcomes = []
    threads = [threading.Thread(target=lambda: outcomes.append(sweep.run_grid(spec, tmp_path, workers=2,
                                                                              progress=False)))
               for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    statuses = [o["status"] for result in outcomes for o in result.outcomes]
    assert statuses.count("done") == 2 and set(statuses) <= {"done", "skipped", "locked"}
    assert len(loading.load(tmp_path)) == 2


def test_kill_and_resume_loses_nothing_and_recomputes_nothing(tiny, tmp_path):
    """Kill a sweep (and its workers and kernels) mid-way, check the records, resume, compare."""
    (tmp_path / "s.yaml").write_text(json.dumps({"notebook": str(tiny), "params": {"sleep": 1.0},
                                                 "grid": {"x": [1, 2, 3, 4]}}))
    runs = tmp_path / "runs"
    proc = subprocess.Popen([sys.executable, "-m", "oneshot_lab", "sweep", str(tmp_path / "s.yaml"), "--runs",
                             str(runs), "--workers", "1"], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not any(writing.is_complete(d) for d in runs.glob("tiny-*")):
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed = _records(runs)
    assert 1 <= len(killed) < 4, f"the sweep was not killed mid-way: {len(killed)} records"
    for name, files in killed.items():  # every visible record is complete and readable
        assert json.loads(files["manifest.json"])["status"] == "complete"
        assert pd.read_csv(runs / name / "metrics.csv").shape == (1, 2)
    resumed = sweep.run_grid(tmp_path / "s.yaml", runs, workers=1, progress=False)
    assert resumed.counts() == {"skipped": len(killed), "done": 4 - len(killed)}
    final = _records(runs)
    assert all(final[name] == files for name, files in killed.items()), "a finished run was recomputed"
    assert sorted(loading.load(runs).x) == [1, 2, 3, 4]


def test_resuming_reports_complete_records_of_another_code_revision(tiny, tmp_path, monkeypatch):
    monkeypatch.setattr("papermill.execute_notebook", lambda *a, **k: pytest.fail("a kernel was started"))
    task = spec.task(tiny, {"x": 1})
    old = writing.start(tmp_path / task.run_id, {"x": 1})
    old.record("metrics", [{"x": 1, "y": 1}])
    old.finish()
    writing.update_manifest(tmp_path / task.run_id, run_id=task.run_id, git_revision="0123456789abcdef")
    outcome = sweep.run_grid({"notebook": str(tiny), "list": [{"x": 1}]}, tmp_path, progress=False)
    assert outcome.ok and outcome.counts() == {"skipped": 1}
    if outcome.revision:  # a git checkout
        assert "made by another code revision (0123456789" in str(outcome)


# ---------------------------------------------------------------- Dask and loading.load over a real sweep

def test_dask_local_cluster_gives_the_same_records_as_local(tmp_path):
    spec = {"notebook": "01", "params": {"smoke": True, "dataset": "synthetic", "model": "mlp",
                                         "methods": ["magnitude/global", "random/layer"], "seeds": [0]},
            "grid": {"seed": [0]}}
    local = sweep.run_grid(spec, tmp_path / "local", workers=1, progress=False)
    dask = sweep.run_grid(spec, tmp_path / "dask", executor="dask", workers=2, progress=False)
    assert local.ok and dask.ok and [o["run_id"] for o in local.outcomes] == [o["run_id"] for o in dask.outcomes]
    run = local.outcomes[0]["run_id"]
    for table in ("metrics", "layers", "histories"):
        assert (tmp_path / "local" / run / f"{table}.csv").read_bytes() == \
            (tmp_path / "dask" / run / f"{table}.csv").read_bytes()
    frame = loading.load(tmp_path / "dask")
    assert set(frame.notebook) == {"01_magnitude_pruning"} and set(frame.dataset) == {"synthetic"}
    assert set(frame.seed) == {0} and set(frame.run) == {run} and "test_accuracy" in frame
