"""Running a sweep: every task of a spec executed resumably on local worker processes or on Dask.

Each task runs through `staged_run.execute`: in a staging directory under `RUNS_DIR/.sweep/` while holding
a lock there, moved into place by one rename when it ends, so a killed sweep leaves complete records or none,
and a re-run skips what is complete. Workers die with the sweep (no orphan keeps a lock). `records` (and so
pandas) is imported where it is used, so that importing this module is quick.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from ..util import parallel, rules
from . import dask_cluster
from .notebooks import THREAD_ENV
from ..util.progress import HEADLESS_ENV, bar
from .staged_run import SWEEP_DIR, error_outcome, execute
from .spec import MAX_RUNS, SpecError, Task, expand, spec_runs_dir

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["EXECUTORS", "SWEEP_DIR", "SweepResult", "error_outcome", "execute", "run_grid"]
EXECUTORS = ("local", "dask")


# ---------------------------------------------------------------- executors and the sweep loop

@dataclass
class SweepResult:
    """What a sweep did: one outcome per task, the runs directory and the wall time."""

    runs_dir: Path
    outcomes: list[dict] = field(default_factory=list)
    wall_s: float = 0.0
    revision: str | None = None  # the code revision (git) of this sweep

    def other_revision(self) -> list[dict]:
        """Outcomes of complete records reused from another code revision (git commit) than this sweep's."""
        return [o for o in self.outcomes if o["status"] == "skipped" and self.revision
                and o.get("git_revision") and o["git_revision"] != self.revision]

    def counts(self) -> Counter:
        """Number of tasks per status (done, skipped, failed, died, locked, error)."""
        return Counter(o["status"] for o in self.outcomes)

    @property
    def ok(self) -> bool:
        """Whether every task is complete (done now or skipped as already complete)."""
        return all(o["status"] in ("done", "skipped") for o in self.outcomes)

    def frame(self) -> pd.DataFrame:
        """The outcomes as a pandas DataFrame."""
        import pandas as pd

        return pd.DataFrame(self.outcomes)

    def __str__(self) -> str:
        """A summary line with the counts, then one line per failed task."""
        counts = self.counts()
        head = (f"sweep of {len(self.outcomes)} runs in {self.wall_s:.1f}s -> {self.runs_dir}: "
                f"{counts['done']} done, {counts['skipped']} skipped (already complete), "
                f"{counts['failed'] + counts['died'] + counts['error'] + counts['conflict']} failed")
        if counts["locked"]:
            head += f", {counts['locked']} left to another sweep that holds their lock"
        lines = [head]
        stale = self.other_revision()
        if stale:
            revisions = sorted({o["git_revision"][:10] for o in stale})
            lines.append(f"  note: {len(stale)} complete record(s) reused were made by another code revision "
                         f"({', '.join(revisions)}; this is {self.revision[:10]}); delete them to recompute")
        for o in self.outcomes:
            if o["status"] in ("failed", "died", "error", "conflict"):
                cell = f" at cell {o['error_cell']}" if o.get("error_cell") is not None else ""
                lines.append(f"  {o['status']}: {o['run_id']}{cell} (attempts {o.get('attempts', 0)}): "
                             f"{o.get('error')}")
        return "\n".join(lines)


class LocalWorker:
    """A local worker process (a fresh interpreter, one thread per kernel) that runs one task at a time."""

    def __init__(self, log_dir: str) -> None:
        """Start `python -m oneshot_lab.runner.worker` writing its logs to `log_dir`."""
        root = str(Path(__file__).resolve().parents[2])  # the worker imports this very copy of the package
        path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
        env = {**os.environ, HEADLESS_ENV: "1", **{name: "1" for name in THREAD_ENV}, "PYTHONPATH": path}
        self.proc = subprocess.Popen([sys.executable, "-m", "oneshot_lab.runner.worker", log_dir],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)

    def run(self, task: Task, runs_dir: str, wait: bool = False) -> dict | None:
        """The task's outcome, or None if the process died before answering."""
        request = {"task": dataclasses.asdict(task), "runs_dir": runs_dir, "wait": wait}
        try:
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            return None
        line = self.proc.stdout.readline()
        return json.loads(line) if line else None

    def close(self) -> None:
        """Let the process exit (end of input), killing it if it has not within 30 s."""
        with contextlib.suppress(OSError):
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _feed(todo: queue.SimpleQueue, runs_dir: str, log_dir: str, report: Callable[[dict], None],
          stop: threading.Event, wait: bool) -> None:
    """Feed tasks from `todo` to one worker process until none are left; a task whose worker dies is retried once."""
    worker = None
    try:
        while not stop.is_set():
            try:
                task = todo.get_nowait()
            except queue.Empty:
                return
            outcome = None
            for _ in (1, 2):
                if stop.is_set():
                    return
                worker = worker or LocalWorker(log_dir)
                outcome = worker.run(task, runs_dir, wait)
                if outcome is not None:
                    break
                worker.close()
                worker = None
            report(outcome or error_outcome(task, "died", "worker process died twice", 2))
    finally:
        if worker is not None:
            worker.close()


def _run_local(tasks: list[Task], runs_dir: str, workers: int, done: Callable[[dict], None],
               wait: bool = False) -> None:
    """Run tasks on `workers` local worker processes, each fed by a thread of this process."""
    todo: queue.SimpleQueue = queue.SimpleQueue()
    for task in tasks:
        todo.put(task)
    lock, stop = threading.Lock(), threading.Event()

    def report(outcome: dict) -> None:
        """Hand `outcome` to `done`, one thread at a time."""
        with lock:
            done(outcome)

    log_dir = str(Path(runs_dir) / SWEEP_DIR / "logs")
    threads = [threading.Thread(target=_feed, args=(todo, runs_dir, log_dir, report, stop, wait), daemon=True)
               for _ in range(workers)]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            thread.join()
    except BaseException:
        stop.set()  # Ctrl-C reaches the workers too: replace or feed none of them
        raise


def _run_dask(tasks: list[Task], runs_dir: str, workers: int | None, scheduler: str | None,
              done: Callable[[dict], None], wait: bool = False, security: Any = None,
              dashboard: str | int | None = None) -> None:
    """Run tasks on Dask: the scheduler at `scheduler`, or a LocalCluster of `workers` processes (`dask_cluster`)."""
    from distributed import as_completed

    with dask_cluster.client(workers or os.cpu_count() or 1, scheduler, security, dashboard) as client:
        futures = {client.submit(execute, task, runs_dir, None, False, wait, pure=False): task for task in tasks}
        for future in as_completed(futures):
            try:
                done(future.result())
            except Exception as err:  # KilledWorker: the worker died more often than distributed allows
                status = "died" if type(err).__name__ == "KilledWorker" else "error"
                done(error_outcome(futures[future], status, f"{type(err).__name__}: {err}", 1))


def _check_options(executor: str, workers: int | None, scheduler: str | None, security: Any = None,
                   dashboard: str | int | None = None) -> None:
    """SpecError for an unknown executor, a bad number of workers, or Dask settings without Dask or unusable."""
    if executor not in EXECUTORS:
        raise SpecError(f"unknown executor {executor!r}; valid executors: {', '.join(EXECUTORS)}")
    try:
        rules.RULES["workers"].but(minimum=1, optional=True).check("workers", workers)
    except ValueError as err:
        raise SpecError(str(err)) from None
    for name, value in (("a scheduler address", scheduler), ("security", security), ("a dashboard", dashboard)):
        if value is not None and executor != "dask":
            raise SpecError(f"{name} ({value}) needs executor='dask', got {executor!r}")
    if executor == "dask":
        dask_cluster.check(scheduler, security, dashboard)


def run_grid(spec_or_path: Mapping | str | os.PathLike, runs_dir: str | os.PathLike | None = None,
             executor: str = "local", workers: int | None = None, scheduler: str | None = None,
             progress: bool = True, max_runs: int = MAX_RUNS, security: Any = None,
             dashboard: str | int | None = None) -> SweepResult:
    """Run every task of a sweep spec into `runs_dir`, skipping complete records; see the module docstring.

    Everything is validated before anything runs or is written (at most `max_runs` runs). `executor` is
    'local' (`workers` processes, default: `parallel.balanced` over the cores) or 'dask': the scheduler at
    address `scheduler` (with `security`, a `distributed.Security`, else Dask's configured settings), or a
    LocalCluster of `workers` processes on 127.0.0.1 that only this sweep can reach (TLS with credentials made for
    it; Dask's HTTP endpoints only with `dashboard`, an address such as 127.0.0.1:8787). A task locked by another
    sweep is waited for at the end, so a sweep whose runs all end complete is `ok`, whoever completed them.
    """
    _check_options(executor, workers, scheduler, security, dashboard)
    tasks = expand(spec_or_path, max_runs=max_runs)
    runs_dir = runs_dir or spec_runs_dir(spec_or_path)
    if not runs_dir:
        raise SpecError("no runs directory: pass runs_dir (--runs DIR) or set runs_dir in the spec")
    runs_dir = Path(runs_dir).resolve()
    from ..records import writing
    from .staged_run import record_state

    t0 = time.monotonic()
    result = SweepResult(runs_dir, revision=writing.git_revision())
    for sub in ("locks", "partial", "logs"):  # fails here, in one line, on a read-only or full file system
        (runs_dir / SWEEP_DIR / sub).mkdir(parents=True, exist_ok=True)
    todo = []
    for task in tasks:
        state, manifest = record_state(runs_dir / task.run_id, task.run_id)
        if state == "complete":
            result.outcomes.append({"run_id": task.run_id, "notebook": Path(task.notebook).stem, "status": "skipped",
                                    "attempts": 0, "wall_s": 0.0, "git_revision": manifest.get("git_revision")})
        else:
            todo.append(task)
    with bar(total=len(tasks), desc="sweep", disable=not progress, initial=len(tasks) - len(todo)) as meter:
        def done(outcome: dict) -> None:
            """Collect `outcome` (a locked one is retried later) and advance the bar."""
            if outcome["status"] == "locked":
                locked.append(by_id[outcome["run_id"]])
                return
            result.outcomes.append(outcome)
            meter.update(1)
            meter.set_postfix(dict(sorted(result.counts().items())), refresh=False)

        by_id, locked = {t.run_id: t for t in tasks}, []
        for wait in (False, True):  # then wait for the runs another sweep was running
            batch, locked = (todo, []) if not wait else (locked, [])
            if batch and executor == "local":
                _run_local(batch, str(runs_dir), min(workers, len(batch)) if workers else
                           parallel.default_workers(len(batch)), done, wait)
            elif batch:
                _run_dask(batch, str(runs_dir), workers, scheduler, done, wait, security, dashboard)
    order = {t.run_id: i for i, t in enumerate(tasks)}
    result.outcomes.sort(key=lambda o: order[o["run_id"]])
    result.wall_s = round(time.monotonic() - t0, 3)
    return result
