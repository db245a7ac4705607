"""The demo: every notebook with its defaults, side by side up to one per core, each started only after the
notebooks whose trainings it reuses from the fit cache, with its progress shown and a summary at the end.

A notebook declares what it reuses in its metadata, `"oneshot_lab": {"after": ["01_magnitude_pruning"]}`
(notebook 04's sweep and notebook 05's conv1d setting train exactly notebook 01's networks): started together,
both would train them. Every notebook's seeds run in worker processes of one torch thread each, so what a run
computes does not depend on what runs beside it.
"""

from __future__ import annotations

import os
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Callable

from . import demo_progress, staged_run
from .notebook_json import read_notebook
from .notebooks import kernel_environment, kill_kernels
from .spec import Task

Report = Callable[[dict], int]


def after(notebook: Path) -> list[str]:
    """The notebooks (file stems) `notebook` must start after: its metadata's oneshot_lab.after."""
    names = read_notebook(notebook).get("metadata", {}).get("oneshot_lab", {}).get("after", [])
    if not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
        raise ValueError(f"{notebook.name}: metadata oneshot_lab.after must be a list of notebook names, got {names!r}")
    return names


def default_jobs() -> int:
    """Notebooks run at once: one per core (at most two: each already spreads its seeds over the cores)."""
    return max(1, min(2, os.cpu_count() or 1))


def execute(task: Task, out: Path, force: bool) -> dict:
    """Run `task` into the record `out` (waiting for another process that holds its lock)."""
    with kernel_environment():
        outcome = staged_run.execute(task, out.parent, out, force=force)
        if outcome["status"] == "locked":
            outcome = staged_run.execute(task, out.parent, out, force=force, wait=True)
    return outcome


def run(runs: list[tuple[Path, Task, Path]], force: bool, report: Report, jobs: int | None = None,
        board: demo_progress.Board | None = None) -> tuple[int, list[demo_progress.Entry]]:
    """Execute every (notebook, task, out) in order, `jobs` at a time, each after those it reuses; stop starting
    new ones after a failure. Returns the first non-zero status `report` gave (else 0) and the entries run."""
    jobs = jobs or default_jobs()
    board = board or demo_progress.Board()
    waits = {path.stem: set(after(path)) & {p.stem for p, _, _ in runs} for path, _, _ in runs}
    entries = {path.stem: demo_progress.Entry(path.stem, Path(os.path.abspath(out)),
                                              demo_progress.reference_durations(path, task.params))
               for path, task, out in runs}
    pending, running, finished, code = list(runs), {}, set(), 0
    pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="demo")
    try:
        with board:
            while pending or running:
                for item in [r for r in pending if not code and len(running) < jobs and waits[r[0].stem] <= finished]:
                    if len(running) < jobs:
                        pending.remove(item)
                        board.begin(entries[item[0].stem])
                        running[pool.submit(execute, item[1], item[2], force)] = item[0].stem
                if not running:
                    break
                done, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for future in done:
                    name = running.pop(future)
                    status = board.end(entries[name], future.result(), report)
                    finished.add(name)
                    code = code or status
    except BaseException:  # Ctrl-C, SIGTERM or an error: no kernel of ours runs on, not even a retried one
        while not all(future.done() for future in running):
            kill_kernels()
            wait(list(running), timeout=0.2)
        pool.shutdown(cancel_futures=True)
        raise
    pool.shutdown()
    return code, [e for e in entries.values() if e.outcome is not None]
