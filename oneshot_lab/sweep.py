"""Headless, parameterized notebook runs through papermill, and resumable sweeps of them over parameter grids.

A sweep spec (YAML) names notebooks and parameter settings; every setting becomes a task whose record lives
in `RUNS_DIR/<notebook stem>-<hash of the parameters>/`. A task runs in a staging directory under
`RUNS_DIR/.sweep/` while holding a lock there, and is moved into place by one rename when it ends, so a
killed sweep leaves complete records or none, and a re-run skips what is complete.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import itertools
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
from typing import Any, Callable, Iterable, Iterator, Mapping

from . import results
from .progress import HEADLESS_ENV, bar

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"

_TYPE_CHECKS = {
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "bool": lambda v: isinstance(v, bool),
    "str": lambda v: isinstance(v, str),
    "list": lambda v: isinstance(v, list),
    "dict": lambda v: isinstance(v, dict),
}


def notebooks(directory: str | os.PathLike = NOTEBOOK_DIR) -> list[Path]:
    """The lab's numbered notebooks in reading order."""
    return sorted(Path(directory).glob(NOTEBOOK_GLOB))


def resolve_notebook(name: str | os.PathLike) -> Path:
    """A notebook path from a path, a file name or a number/stem such as '01' or '01_magnitude_pruning'."""
    path = Path(name)
    if path.is_file():
        return path
    matches = [p for p in notebooks() if p.name == str(name) or p.stem == str(name) or p.stem.startswith(f"{name}_")]
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(p.name for p in notebooks()) or "(none)"
    raise FileNotFoundError(f"no notebook {str(name)!r}; known notebooks: {known}")


def parameters(notebook: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """The notebook's parameters (name -> type, default, help) read from its `parameters` cell."""
    import papermill

    path = resolve_notebook(notebook)
    found = papermill.inspect_notebook(str(path))
    if not found:
        raise ValueError(f"{path} has no cell tagged 'parameters'")
    return found


def _as_float(value: Any) -> Any:
    """An int, or a numeric string such as YAML's '1e-3', as a float; anything else unchanged."""
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def check_parameters(notebook: str | os.PathLike, params: Mapping[str, Any]) -> dict:
    """`params` with float parameters made floats (1 -> 1.0, '1e-3' -> 0.001); ValueError for unknown names or wrong types."""
    declared = parameters(notebook)
    unknown = sorted(set(params) - set(declared))
    if unknown:
        raise ValueError(f"unknown parameter(s) {', '.join(map(repr, unknown))} for {Path(notebook).name}; "
                         f"valid parameters: {', '.join(declared)}")
    params = {k: _as_float(v) if declared[k]["inferred_type_name"] == "float" else v for k, v in params.items()}
    for name, value in params.items():
        type_name = declared[name]["inferred_type_name"]
        check = _TYPE_CHECKS.get(type_name)
        if check is not None and not check(value):
            raise ValueError(f"parameter {name!r} of {Path(notebook).name} must be {type_name}, "
                             f"got {value!r} ({type(value).__name__})")
    return params


THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def _set_kernel_environment() -> None:
    """Set what a kernel started from this process inherits: no widget bars, one thread, no malloc trim."""
    os.environ[HEADLESS_ENV] = "1"
    for name in THREAD_ENV:
        os.environ[name] = "1"  # one thread per kernel: no oversubscription, the same numbers in every run
    # Dask's nanny sets this for its workers; inherited by a kernel it made torch training 2.3x slower here.
    os.environ.pop("MALLOC_TRIM_THRESHOLD_", None)


@contextlib.contextmanager
def kernel_environment() -> Iterator[None]:
    """Within the block, kernels start headless and single-threaded; the caller's environment is restored after."""
    saved = dict(os.environ)
    _set_kernel_environment()
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def run_notebook(notebook: str | os.PathLike, params: Mapping[str, Any] | None = None,
                 output: str | os.PathLike | None = None, timeout: int | None = None) -> Path:
    """Execute `notebook` headlessly with `params` and return the path of the executed copy.

    A failing cell raises papermill's PapermillExecutionError; the executed notebook is still written.
    """
    import papermill

    path = resolve_notebook(notebook)
    params = check_parameters(path, dict(params or {}))
    default_out = parameters(path).get("out_dir", {}).get("default", "'runs'").strip("\"'")
    out_dir = Path(params.get("out_dir", default_out)).resolve()
    if "out_dir" in parameters(path):
        params["out_dir"] = str(out_dir)  # the kernel may run elsewhere: hand it an absolute path
    output = Path(output) if output else out_dir / path.name
    output.parent.mkdir(parents=True, exist_ok=True)
    with kernel_environment():
        papermill.execute_notebook(str(path), str(output), parameters=params, kernel_name="python3",
                                   progress_bar=False, execution_timeout=timeout)
    return output


# ---------------------------------------------------------------- sweep specs

SPEC_KEYS = ("notebook", "params", "grid", "list", "timeout", "runs_dir", "sweeps")
BLOCK_KEYS = ("notebook", "params", "grid", "list", "timeout")
SWEEP_DIR = ".sweep"  # hidden, so results.load never reads staging copies


class SpecError(ValueError):
    """A sweep spec that cannot run; the message is one line naming the bad value and the valid ones."""


@dataclass(frozen=True)
class Task:
    """One notebook run of a sweep: the notebook, its parameters and the record directory name."""

    notebook: str
    params: dict
    run_id: str
    timeout: int | None = None


def run_id(notebook: str | os.PathLike, params: Mapping[str, Any]) -> str:
    """'<notebook stem>-<12 hex digits>': a stable name for (notebook, parameters), the same on every machine."""
    stem = Path(notebook).stem
    key = json.dumps({"notebook": stem, "params": params}, sort_keys=True, separators=(",", ":"))
    return f"{stem}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def resolve_spec(path: str | os.PathLike) -> Path:
    """A spec path as given, or relative to the repository root (so 'sweeps/x.yaml' works from anywhere)."""
    for candidate in (Path(path), NOTEBOOK_DIR.parent / path):
        if candidate.is_file():
            return candidate
    raise SpecError(f"no sweep spec {str(path)!r} (looked in {Path.cwd()} and {NOTEBOOK_DIR.parent})")


def load_spec(spec_or_path: Mapping | str | os.PathLike) -> tuple[dict, Path | None]:
    """The spec as a dict and the file it came from (None for a dict given directly)."""
    if isinstance(spec_or_path, Mapping):
        return dict(spec_or_path), None
    import yaml

    path = resolve_spec(spec_or_path)
    try:
        spec = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise SpecError(f"{path}: not valid YAML: {' '.join(str(err).split())}") from None
    if not isinstance(spec, dict):
        raise SpecError(f"{path}: a sweep spec is a mapping with keys {', '.join(SPEC_KEYS)}; got {type(spec).__name__}")
    return spec, path


def _check_keys(where: str, mapping: Mapping, valid: Iterable[str]) -> None:
    """Raise SpecError for keys of `mapping` outside `valid`."""
    unknown = sorted(set(map(str, mapping)) - set(valid))
    if unknown:
        raise SpecError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; valid keys: {', '.join(valid)}")


def _notebook_path(name: Any, base: Path | None) -> Path:
    """A notebook named in a spec: a path relative to the spec file, or anything `resolve_notebook` accepts."""
    if isinstance(name, int) and not isinstance(name, bool):
        name = f"{name:02d}"  # YAML reads `notebook: 01` as the integer 1
    if base is not None and (base / str(name)).is_file():
        return (base / str(name)).resolve()
    try:
        return resolve_notebook(str(name)).resolve()
    except FileNotFoundError as err:
        raise SpecError(str(err)) from None


def _settings(where: str, block: Mapping) -> list[dict]:
    """The parameter settings of one spec block: `params` merged under every grid point and list entry."""
    fixed, grid, listed = block.get("params") or {}, block.get("grid") or {}, block.get("list") or []
    if not isinstance(fixed, Mapping) or not isinstance(grid, Mapping) or not isinstance(listed, list):
        raise SpecError(f"{where}: 'params' and 'grid' must be mappings and 'list' a list of mappings")
    for name, values in grid.items():
        if not isinstance(values, list):
            raise SpecError(f"{where}: grid values of {name!r} must be a list of the values to sweep, got {values!r}"
                            f" (for a list-valued parameter write a list of lists)")
        if not values:
            raise SpecError(f"{where}: grid parameter {name!r} has no values")
    if not grid and not listed:
        raise SpecError(f"{where}: empty grid: give parameters with lists of values under 'grid' "
                        f"and/or settings under 'list'")
    points = [dict(zip(grid, combo)) for combo in itertools.product(*grid.values())] if grid else []
    for entry in listed:
        if not isinstance(entry, Mapping):
            raise SpecError(f"{where}: every 'list' entry must be a mapping of parameters, got {entry!r}")
    return [{**fixed, **point} for point in points + [dict(e) for e in listed]]


def _block_tasks(where: str, block: Mapping, base: Path | None, timeout: Any) -> list[Task]:
    """Validated tasks of one spec block (one or more notebooks)."""
    _check_keys(where, block, BLOCK_KEYS)
    if "notebook" not in block:
        raise SpecError(f"{where}: no 'notebook' (give a path, file name or number such as 01)")
    names = block["notebook"] if isinstance(block["notebook"], list) else [block["notebook"]]
    timeout = block.get("timeout", timeout)
    if timeout is not None and (not isinstance(timeout, int) or isinstance(timeout, bool) or timeout <= 0):
        raise SpecError(f"{where}: timeout must be a positive number of seconds per cell, got {timeout!r}")
    settings = _settings(where, block)
    tasks = []
    for name in names:
        path = _notebook_path(name, base)
        for params in settings:
            if "out_dir" in params:
                raise SpecError(f"{where}: do not set out_dir: the sweep gives every run its own record "
                                f"directory RUNS_DIR/<run id>")
            try:
                params = check_parameters(path, params)  # ints and numeric strings for floats: 1 and 1.0 name one run
            except ValueError as err:
                raise SpecError(f"{where}: {err}") from None
            tasks.append(Task(str(path), params, run_id(path, params), timeout))
    return tasks


def expand(spec_or_path: Mapping | str | os.PathLike) -> list[Task]:
    """Every task of a spec, validated (notebooks exist, parameters known and typed) and de-duplicated."""
    spec, path = load_spec(spec_or_path)
    where = f"spec {path}" if path else "spec"
    _check_keys(where, spec, SPEC_KEYS)
    base = path.parent if path else None
    if "sweeps" in spec:
        extra = sorted(set(spec) - {"sweeps", "runs_dir", "timeout"})
        if extra or not isinstance(spec["sweeps"], list) or not spec["sweeps"]:
            raise SpecError(f"{where}: 'sweeps' must be a non-empty list of blocks (each with notebook, params, "
                            f"grid, list) and then only runs_dir and timeout may sit beside it")
        blocks = [(f"{where}, sweeps[{i}]", b) for i, b in enumerate(spec["sweeps"])]
    else:
        blocks = [(where, {k: v for k, v in spec.items() if k != "runs_dir"})]
    tasks: dict[str, Task] = {}
    for label, block in blocks:
        if not isinstance(block, Mapping):
            raise SpecError(f"{label}: a block is a mapping with keys {', '.join(BLOCK_KEYS)}, got {block!r}")
        for task in _block_tasks(label, block, base, spec.get("timeout")):
            tasks.setdefault(task.run_id, task)
    return list(tasks.values())


def spec_runs_dir(spec_or_path: Mapping | str | os.PathLike) -> str | None:
    """The spec's own `runs_dir`, if it names one."""
    return load_spec(spec_or_path)[0].get("runs_dir")


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
    if "out_dir" in parameters(task.notebook):
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
    _set_kernel_environment()  # this is a worker process: keep it for every task it runs
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

    def frame(self):
        """The outcomes as a pandas DataFrame."""
        import pandas as pd

        return pd.DataFrame(self.outcomes)

    def __str__(self) -> str:
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


def _error_outcome(task: Task, status: str, error: str, attempts: int) -> dict:
    """The outcome of a task whose worker died or raised."""
    return {"run_id": task.run_id, "notebook": Path(task.notebook).stem, "status": status,
            "attempts": attempts, "wall_s": 0.0, "error": error}


def _serve(log_dir: str) -> None:
    """Body of a local worker process: run tasks read as JSON lines on stdin, answer each on a private pipe.

    The worker's (and its kernels') stdout and stderr go to a log file, so nothing a kernel prints can
    garble the answers, and a kernel never holds the answer pipe open.
    """
    channel = os.fdopen(os.dup(1), "w")  # dup'ed descriptors are not inherited by kernels
    Path(log_dir).mkdir(parents=True, exist_ok=True)
    log = os.open(Path(log_dir) / f"worker-{os.getpid()}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    for line in sys.stdin:
        request = json.loads(line)
        task = Task(**request["task"])
        try:
            outcome = execute(task, request["runs_dir"])
        except Exception as err:  # a bug or an I/O error: report it, keep serving
            outcome = _error_outcome(task, "error", f"{type(err).__name__}: {err}", 1)
        channel.write(json.dumps(outcome) + "\n")
        channel.flush()


# A worker needs sweep, results and papermill, not torch: register the package without running its
# __init__ (which imports every module) to save seconds per worker start.
_WORKER_MAIN = """
import sys, types
package = types.ModuleType("oneshot_lab")
package.__path__ = [{package!r}]
sys.modules["oneshot_lab"] = package
from oneshot_lab.sweep import _serve
_serve({log_dir!r})
"""


class _Worker:
    """A local worker process (a fresh interpreter, one thread per kernel) that runs one task at a time."""

    def __init__(self, log_dir: str) -> None:
        env = {**os.environ, HEADLESS_ENV: "1", **{name: "1" for name in THREAD_ENV}}
        self.proc = subprocess.Popen([sys.executable, "-c", _WORKER_MAIN.format(package=str(Path(__file__).parent),
                                                                               log_dir=log_dir)],
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
                worker = worker or _Worker(log_dir)
                outcome = worker.run(task, runs_dir)
                if outcome is not None:
                    break
                worker.close()
                worker = None
            report(outcome or _error_outcome(task, "died", "worker process died twice", 2))
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
                done(_error_outcome(futures[future], status, f"{type(err).__name__}: {err}", 1))
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


EXECUTORS = ("local", "dask")


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
