"""The local sweep worker: `python -m oneshot_lab.runner.worker LOG_DIR` answers one JSON line per task and keeps serving."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

from oneshot_lab.records import writing
from oneshot_lab.runner import spec

ROOT = Path(__file__).resolve().parent.parent


def test_worker_answers_each_task_on_stdout_and_logs_elsewhere(tiny_notebook, tmp_path):
    good = spec.Task(str(tiny_notebook), {"x": 3}, spec.run_id(tiny_notebook, {"x": 3}))
    missing = spec.Task(str(tmp_path / "missing.ipynb"), {}, "missing-000000000000")
    requests = "".join(json.dumps({"task": dataclasses.asdict(t), "runs_dir": str(tmp_path / "runs")}) + "\n"
                       for t in (missing, good))
    out = subprocess.run([sys.executable, "-m", "oneshot_lab.runner.worker", str(tmp_path / "logs")], input=requests,
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    first, second = [json.loads(line) for line in out.stdout.splitlines()]
    assert first["status"] == "error" and "FileNotFoundError" in first["error"]  # reported, and serving went on
    assert second["status"] == "done" and second["run_id"] == good.run_id and second["attempts"] == 1
    assert writing.read_manifest(tmp_path / "runs" / good.run_id)["status"] == "complete"
    assert len(list((tmp_path / "logs").glob("worker-*.log"))) == 1


def test_worker_usage():
    out = subprocess.run([sys.executable, "-m", "oneshot_lab.runner.worker"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 2 and "usage: python -m oneshot_lab.runner.worker LOG_DIR" in out.stderr
