"""Running a sweep: every task of a spec executed resumably on local worker processes or on Dask.

A task runs in a staging directory under `RUNS_DIR/.sweep/` while holding a lock there, and is moved into
place by one rename when it ends, so a killed sweep leaves complete records or none, and a re-run skips what
is complete. `results` (and so pandas) is imported where it is used, so that importing this module is quick.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import queue
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Mapping

from .notebooks import THREAD_ENV, declared_parameters, run_notebook, set_kernel_environment
from .progress import HEADLESS_ENV, bar
from .spec import SpecError, Task, expand, spec_runs_dir

if TYPE_CHECKING:
    import pandas as pd

SWEEP_DIR = ".sweep"  # hidden, so results.load never reads staging copies
EXECUTORS = ("local", "dask")


# ---------------------------------------------------------------- one task, in a worker process

@contextlib.contextmanager
def _lock(runs_dir: Path, name: str) -> Iterator[bool]:
    """Hold the lock of run `name` for this process (yield True), or yield False if another process holds it.

    An advisory flock on a lock file: the kernel releases it when its holder exits or is killed, so a
    killed sweep leaves no stale lock behind.
    """
    path = runs_dir / SWEEP_DIR / "locks" / f"{name}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"host": socket.gethostname(), "pid": os.getpid()}).encode())
        yield True
    finally:
        os.close(fd)


def _attempt(task: Task, staging: Path) -> dict:
    """Execute the task's notebook once into `staging`: status complete, failed (with cell) or died."""
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    params = dict(task.params)
    if "out_dir" in declared_parameters(task.notebook):
        params["out_dir"] = str(staging)
    try:
        run_notebook(task.notebook, params, output=staging / Path(task.notebook).name, timeout=task.timeout)
        return {"status": "complete"}
    except PapermillExecutionError as err:
        return {"status": "failed", "error": f"{err.ename}: {err.evalue}", "error_cell": err.cell_index,
                "error_execution_count": err.exec_count}
    except CellTimeoutError as err:
        return {"status": "failed", "error": f"CellTimeoutError: {' '.join(str(err).split())[:300]}"}
    except DeadKernelError as err:
        return {"status": "died", "error": f"kernel died: {' '.join(str(err).split())[:300]}"}


def _finalize(task: Task, staging: Path, final: Path, outcome: dict, attempts: int, started: str,
              wall_s: float) -> None:
    """Complete the manifest in `staging` with the sweep's fields and publish it as `final`."""
    from . import results

    if not (staging / results.MANIFEST).is_file():  # the notebook failed before (or without) results.start
        results.start(staging, task.params)
        results.update_manifest(staging, started=started)
    manifest = results.read_manifest(staging)
    recorded = dict(manifest.get("params", {}))
    if "out_dir" in recorded:
        recorded["out_dir"] = str(final.resolve())
    status = "complete" if outcome["status"] == "complete" else "failed"
    fields = {"status": status, "params": recorded, "notebook": Path(task.notebook).stem, "run_id": task.run_id,
              "requested_params": task.params, "attempts": attempts, "wall_s": round(wall_s, 3),
              "finished": manifest.get("finished") or results.utc_now(), "host": socket.gethostname()}
    fields.update({k: outcome.get(k) for k in ("error", "error_cell", "error_execution_count") if k in outcome})
    results.update_manifest(staging, **fields)
    results.publish(staging, final)


def execute(task: Task, runs_dir: str | os.PathLike) -> dict:
    """Run one task into `runs_dir/<run id>` unless complete or locked; retried once if its kernel dies.

    Returns the outcome: run_id, notebook, status (done | skipped | failed | died | locked), attempts,
    wall_s, and error / error_cell on failure. Runs in a worker process (local or Dask).
    """
    from . import results

    set_kernel_environment()  # this is a worker process: keep it for every task it runs
    runs_dir = Path(runs_dir)
    final, partial = runs_dir / task.run_id, runs_dir / SWEEP_DIR / "partial"
    base = {"run_id": task.run_id, "notebook": Path(task.notebook).stem, "attempts": 0, "wall_s": 0.0}
    with _lock(runs_dir, task.run_id) as held:
        if not held:
            return {**base, "status": "locked", "error": "running in another sweep"}
        if results.is_complete(final):
            return {**base, "status": "skipped"}
        for leftover in partial.glob(f"{task.run_id}.*"):  # from killed attempts: we hold the lock now
            shutil.rmtree(leftover, ignore_errors=True)
        t0, started = time.monotonic(), results.utc_now()
        for attempts in (1, 2):
            # a fresh directory per attempt: an orphaned kernel of a dead attempt cannot write into this one
            staging = partial / f"{task.run_id}.{os.getpid()}.{attempts}"
            outcome = _attempt(task, staging)
            if outcome["status"] != "died":
                break
            if attempts == 1:
                shutil.rmtree(staging, ignore_errors=True)
        wall_s = time.monotonic() - t0
        _finalize(task, staging, final, outcome, attempts, started, wall_s)
    status = {"complete": "done"}.get(outcome["status"], outcome["status"])
    return {**base, **outcome, "status": status, "attempts": attempts, "wall_s": round(wall_s, 3)}


# ---------------------------------------------------------------- executors and the sweep loop

@dataclass
class SweepResult:
    """What a sweep did: one outcome per task, the runs directory and the wall time."""

    runs_dir: Path
    outcomes: list[dict] = field(default_factory=list)
    wall_s: float = 0.0

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
                f"{counts['failed'] + counts['died'] + counts['error']} failed")
        if counts["locked"]:
            head += f", {counts['locked']} left to another sweep that holds their lock"
        lines = [head]
        for o in self.outcomes:
            if o["status"] in ("failed", "died", "error"):
                cell = f" at cell {o['error_cell']}" if o.get("error_cell") is not None else ""
                lines.append(f"  {o['status']}: {o['run_id']}{cell} (attempts {o.get('attempts', 0)}): {o.get('error')}")
        return "\n".join(lines)


def error_outcome(task: Task, status: str, error: str, attempts: int) -> dict:
    """The outcome of a task whose worker died or raised."""
    return {"run_id": task.run_id, "notebook": Path(task.notebook).stem, "status": status,
            "attempts": attempts, "wall_s": 0.0, "error": error}


class LocalWorker:
    """A local worker process (a fresh interpreter, one thread per kernel) that runs one task at a time."""

    def __init__(self, log_dir: str) -> None:
        """Start `python -m oneshot_lab.worker` writing its logs to `log_dir`."""
        root = str(Path(__file__).resolve().parent.parent)  # the worker imports this very copy of the package
        path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
        env = {**os.environ, HEADLESS_ENV: "1", **{name: "1" for name in THREAD_ENV}, "PYTHONPATH": path}
        self.proc = subprocess.Popen([sys.executable, "-m", "oneshot_lab.worker", log_dir],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)

    def run(self, task: Task, runs_dir: str) -> dict | None:
        """The task's outcome, or None if the process died before answering."""
        try:
            self.proc.stdin.write(json.dumps({"task": dataclasses.asdict(task), "runs_dir": runs_dir}) + "\n")
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
          stop: threading.Event) -> None:
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
                outcome = worker.run(task, runs_dir)
                if outcome is not None:
                    break
                worker.close()
                worker = None
            report(outcome or error_outcome(task, "died", "worker process died twice", 2))
    finally:
        if worker is not None:
            worker.close()


def _run_local(tasks: list[Task], runs_dir: str, workers: int, done: Callable[[dict], None]) -> None:
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
    threads = [threading.Thread(target=_feed, args=(todo, runs_dir, log_dir, report, stop), daemon=True)
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
              done: Callable[[dict], None]) -> None:
    """Run tasks on a Dask cluster: the scheduler at `scheduler`, or a LocalCluster of `workers` processes."""
    from distributed import Client, LocalCluster, as_completed

    if scheduler:
        client, cluster = Client(scheduler), None
    else:
        cluster = LocalCluster(n_workers=workers or os.cpu_count() or 1, threads_per_worker=1, processes=True,
                               host="127.0.0.1", dashboard_address=None)
        client = Client(cluster)
    try:
        futures = {client.submit(execute, task, runs_dir, pure=False): task for task in tasks}
        for future in as_completed(futures):
            try:
                done(future.result())
            except Exception as err:  # KilledWorker: the worker died more often than distributed allows
                status = "died" if type(err).__name__ == "KilledWorker" else "error"
                done(error_outcome(futures[future], status, f"{type(err).__name__}: {err}", 1))
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def run_grid(spec_or_path: Mapping | str | os.PathLike, runs_dir: str | os.PathLike | None = None,
             executor: str = "local", workers: int | None = None, scheduler: str | None = None,
             progress: bool = True) -> SweepResult:
    """Run every task of a sweep spec into `runs_dir`, skipping complete records; see the module docstring.

    Everything is validated before anything runs or is written. `executor` is 'local' (`workers`
    processes, default: the number of cores) or 'dask' (the scheduler at address `scheduler`, or a
    LocalCluster of `workers` processes on 127.0.0.1).
    """
    if executor not in EXECUTORS:
        raise SpecError(f"unknown executor {executor!r}; valid executors: {', '.join(EXECUTORS)}")
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise SpecError(f"workers must be a positive integer, got {workers!r}")
    if scheduler and executor != "dask":
        raise SpecError(f"a scheduler address ({scheduler}) needs executor='dask', got {executor!r}")
    tasks = expand(spec_or_path)
    runs_dir = runs_dir or spec_runs_dir(spec_or_path)
    if not runs_dir:
        raise SpecError("no runs directory: pass runs_dir (--runs DIR) or set runs_dir in the spec")
    runs_dir = Path(runs_dir).resolve()
    from . import results

    t0 = time.monotonic()
    result = SweepResult(runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    todo = []
    for task in tasks:
        if results.is_complete(runs_dir / task.run_id):
            result.outcomes.append({"run_id": task.run_id, "notebook": Path(task.notebook).stem,
                                    "status": "skipped", "attempts": 0, "wall_s": 0.0})
        else:
            todo.append(task)
    with bar(total=len(tasks), desc="sweep", disable=not progress, initial=len(tasks) - len(todo)) as meter:
        def done(outcome: dict) -> None:
            """Collect `outcome` and advance the bar."""
            result.outcomes.append(outcome)
            meter.update(1)
            meter.set_postfix(dict(sorted(result.counts().items())), refresh=False)

        if todo and executor == "local":
            _run_local(todo, str(runs_dir), min(workers or os.cpu_count() or 1, len(todo)), done)
        elif todo:
            _run_dask(todo, str(runs_dir), workers, scheduler, done)
    order = {t.run_id: i for i, t in enumerate(tasks)}
    result.outcomes.sort(key=lambda o: order[o["run_id"]])
    result.wall_s = round(time.monotonic() - t0, 3)
    return result
