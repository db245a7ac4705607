"""The demo: every notebook with its defaults, side by side up to one per core, each started only after the
notebooks whose trainings it reuses from the fit cache, with its progress shown and a summary at the end.

A notebook declares what it reuses in its metadata, `"oneshot_lab": {"after": ["01_magnitude_pruning"]}`
(notebook 04's sweep and notebook 05's conv1d setting train exactly notebook 01's networks): started together,
both would train them. Every seed runs on one torch thread wherever it runs (in the kernel or a worker), so what
a run computes does not depend on what runs beside it.
"""

from __future__ import annotations

import contextlib
import logging
import os
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Callable, Iterator

from . import demo_progress, staged_run
from .notebook_json import read_notebook
from .notebooks import kernel_environment
from .signals import kill_kernels
from .spec import Task

Report = Callable[[dict], int]
WORKERS_ENV = "ONESHOT_LAB_WORKERS"  # read by util.parallel.default_workers in every kernel


def after(notebook: Path) -> list[str]:
    """The notebooks (file stems) `notebook` must start after: its metadata's oneshot_lab.after."""
    names = read_notebook(notebook).get("metadata", {}).get("oneshot_lab", {}).get("after", [])
    if not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
        raise ValueError(f"{notebook.name}: metadata oneshot_lab.after must be a list of notebook names, got {names!r}")
    return names


def default_jobs() -> int:
    """Notebooks run at once: one per core."""
    return max(1, os.cpu_count() or 1)


def cost(notebook: Path) -> float:
    """The wall seconds of the committed run of `notebook` (0 without one): what the schedule orders by."""
    manifest = demo_progress.read_executed(demo_progress.REFERENCE_DIR / notebook.stem / "manifest.json") or {}
    seconds = manifest.get("wall_s", 0.0)
    return float(seconds) if isinstance(seconds, (int, float)) else 0.0


def check_order(waits: dict[str, set[str]]) -> None:
    """ValueError naming the notebooks if some wait, through `after`, on themselves (none of them could start)."""
    left = dict(waits)
    while left:
        ready = [name for name, before in left.items() if not before & set(left)]
        if not ready:
            raise ValueError(f"the notebooks {', '.join(sorted(left))} wait on each other (metadata oneshot_lab.after): "
                             "none of them could start")
        for name in ready:
            del left[name]


def priorities(notebooks: list[Path], waits: dict[str, set[str]]) -> dict[str, float]:
    """Each notebook's cost plus the longest chain of notebooks waiting on it: the longest chains start first."""
    check_order(waits)
    own = {p.stem: cost(p) for p in notebooks}
    chain: dict[str, float] = {}

    def longest(name: str) -> float:
        """`name`'s cost plus its most costly chain of dependents."""
        if name not in chain:
            chain[name] = own[name] + max((longest(d) for d, before in waits.items() if name in before), default=0.0)
        return chain[name]

    return {name: longest(name) for name in own}


@contextlib.contextmanager
def seed_workers(count: int | None) -> Iterator[None]:
    """Within the block, kernels run their seeds on `count` processes (ONESHOT_LAB_WORKERS; 1: in the kernel),
    unless the user chose a number; None changes nothing.

    Notebooks side by side, one per core, keep every core busy; each spreading its seeds over every core as
    well would put several processes on each core, which costs more CPU time for the same work."""
    if count is None or os.environ.get(WORKERS_ENV):
        yield
        return
    os.environ[WORKERS_ENV] = str(count)
    try:
        yield
    finally:
        os.environ.pop(WORKERS_ENV, None)


def execute(task: Task, out: Path, force: bool) -> dict:
    """Run `task` into the record `out` (waiting for another process that holds its lock)."""
    with kernel_environment():  # `run` has set the seeds' worker count for the kernels
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
    order = priorities([path for path, _, _ in runs], waits)
    pending = sorted(runs, key=lambda r: -order[r[0].stem])  # stable: reading order among equals
    running: dict[Future, str] = {}
    finished: set[str] = set()
    code = 0
    pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="demo")
    try:
        with board, seed_workers(1 if jobs > 1 else None):
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
        logging.disable(logging.CRITICAL)  # the killed kernels' clients would log errors no one can act on
        while not all(future.done() for future in running):
            kill_kernels()
            wait(list(running), timeout=0.2)
        pool.shutdown(cancel_futures=True)
        raise
    pool.shutdown()
    return code, [e for e in entries.values() if e.outcome is not None]
