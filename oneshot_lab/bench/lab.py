"""Wall time of the lab itself: every notebook with `smoke`, `make demo` (every notebook with defaults), the tests.

Slow (tens of minutes): not part of the default sections; run it with `make bench-lab`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import measure

DEMO_TARGET = 600.0  # seconds, on 2 cores
TEST_TARGET = 300.0


def timed(command: list[str], cwd: Path, env: dict | None = None) -> tuple[float, str, int]:
    """(seconds, combined output, exit status) of a command, with `env` added to the environment."""
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False,
                          env={**os.environ, **(env or {})})
    return time.perf_counter() - start, done.stdout + done.stderr, done.returncode


def demo_times(summary: Path) -> dict[str, float]:
    """Per-notebook wall seconds of the notebooks a demo ran, from the table it writes (`runs/demo/summary.csv`)."""
    import csv

    with summary.open(newline="") as fh:
        return {row["notebook"]: float(row["wall_s"]) for row in csv.DictReader(fh)
                if row["notebook"] != "all" and row["wall_s"]}


def run(quick: bool = False, repeats: int = 1, root: str | Path = ".") -> dict[str, Any]:
    """Smoke runs of every notebook, `make demo` (or its quick stand-in), and the test suite."""
    from oneshot_lab.runner import notebooks

    root = Path(root).resolve()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for path in notebooks.notebooks(root / "notebooks")[:1 if quick else None]:
            start = time.perf_counter()
            notebooks.run_notebook(path, {"smoke": True, "out_dir": f"{tmp}/{path.stem}"})
            rows.append({"what": f"{path.stem} (smoke)", "seconds": round(time.perf_counter() - start, 1),
                         "status": "ok"})
        if not quick:
            # from scratch: an empty fit cache (a sweep's complete records in runs/ are still resumed)
            seconds, output, status = timed(["make", "demo", "FORCE=1"], root, {"ONESHOT_LAB_CACHE": f"{tmp}/fits"})
            rows += [{"what": f"{name} (defaults, in make demo)", "seconds": s, "status": ""}
                     for name, s in demo_times(root / "runs" / "demo" / "summary.csv").items()]
            rows.append({"what": "make demo", "seconds": round(seconds, 1), "status": "ok" if status == 0 else
                         f"exit {status}", "target_s": DEMO_TARGET})
            seconds, output, status = timed([sys.executable, "-m", "pytest", "-n", "2", "-q"], root)
            rows.append({"what": "test suite (pytest -n 2)", "seconds": round(seconds, 1),
                         "status": output.strip().splitlines()[-1] if output.strip() else f"exit {status}",
                         "target_s": TEST_TARGET})
    markdown = "### Wall time of the lab\n\n" + measure.markdown_table(rows, ["what", "seconds", "status"])
    return {"rows": rows, "markdown": markdown}
