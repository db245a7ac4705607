"""Executing one run into its record directory: locked, staged, published by one rename, never mixed.

Every run (a sweep's task, `oneshot-lab run`, a report) goes through `execute`: it takes the record's lock
in `<parent>/.sweep/locks/`, executes the notebook in a fresh staging directory under
`<parent>/.sweep/partial/` and moves the finished record into place by one rename. A complete record of the
same run is never recomputed, a complete record of another run is never replaced unless `force` (and then
only by a complete one: a forced re-run that fails is set aside in `<parent>/.sweep/failed/`), and a
directory that is not a run record is never touched. `records` (and so pandas) is imported where it is used.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import socket
import time
from pathlib import Path
from typing import Iterable, Iterator

from .notebooks import declared_parameters, run_notebook, set_kernel_environment
from ..records.integrity import MANIFEST, manifest_problem, read_json
from .spec import Task

SWEEP_DIR = ".sweep"  # hidden, so loading.load never reads staging copies


@contextlib.contextmanager
def lock(parent: Path, name: str, wait: bool = False) -> Iterator[bool]:
    """Hold the lock of record `name` in `parent` (yield True), or yield False if another process holds it
    (with `wait`, block until it is free).

    An advisory flock on a lock file: the kernel releases it when its holder exits or is killed, so a
    killed run leaves no stale lock behind.
    """
    path = parent / SWEEP_DIR / "locks" / f"{name}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"host": socket.gethostname(), "pid": os.getpid()}).encode())
        yield True
    finally:
        os.close(fd)


def record_state(final: Path, run_id: str) -> tuple[str, dict | None]:
    """What `final` holds: absent, complete (this run), other (a complete record of another run),
    incomplete (a failed or unfinished record: of another run if its manifest names one, or unreadable in a
    directory named `run_id`), or foreign (files that are not a run record); and its manifest."""
    final = Path(os.path.abspath(final))
    if not final.exists():
        return "absent", None
    if not final.is_dir():
        return "foreign", None
    if not (final / MANIFEST).is_file():  # a FIFO of that name is left unopened
        return ("foreign", None) if any(final.iterdir()) else ("absent", None)
    manifest, reason = read_json(final / MANIFEST)
    if reason or manifest_problem(manifest):  # a run's own directory (sweeps) is resumed; anyone else's is kept
        return ("incomplete" if final.name == run_id else "foreign"), None
    if manifest.get("status") != "complete":
        return "incomplete", manifest
    return ("complete" if manifest.get("run_id") == run_id else "other"), manifest


def conflict(final: Path, run_id: str, force: bool) -> str | None:
    """Why a run `run_id` may not write its record to `final` (with or without `force`), or None: files that
    are not a run record never, another run's record (complete, failed or unfinished) only with `force`."""
    state, manifest = record_state(final, run_id)
    if state == "foreign":
        return (f"{final} exists and is not a run record (no readable manifest.json of a run); "
                f"choose another output directory")
    other = state == "other" or (state == "incomplete" and manifest is not None and manifest.get("run_id") != run_id)
    if other and not force:
        kind = "complete" if state == "other" else "failed or unfinished"
        return (f"{final} holds a {kind} record of another run ({manifest.get('run_id') or 'no run id'}, "
                f"notebook {manifest.get('notebook', '?')}); choose another output directory or pass --force")
    return None


def enclosing_record(path: Path, itself: bool = False) -> Path | None:
    """The run record (a directory holding a manifest) that `path` lies inside (or is, with `itself`), if any."""
    path = Path(os.path.abspath(path))
    return next((p for p in ([path] if itself else []) + list(path.parents) if (p / MANIFEST).is_file()), None)


def refuse_conflicts(runs: Iterable[tuple[Task, Path]], force: bool) -> None:
    """ValueError, before any work, naming the first (task, record directory) whose directory `conflict` refuses,
    or that lies inside another run record."""
    for task, final in runs:
        if (record := enclosing_record(final)) is not None:
            raise ValueError(f"{final} lies inside the run record {record}; choose a directory outside it")
        reason = conflict(final, task.run_id, force)
        if reason:
            raise ValueError(reason)


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
        return {"status": "failed", "error": f"cell timeout after {task.timeout} s: "
                                             f"{' '.join(str(err).split())[:200]}"}
    except DeadKernelError as err:
        return {"status": "died", "error": f"kernel died: {' '.join(str(err).split())[:300]}"}


def _finalize(task: Task, staging: Path, final: Path, outcome: dict, attempts: int, started: str,
              wall_s: float, dest: Path) -> None:
    """Complete the manifest in `staging` with the run's fields (its place: `final`) and publish it as `dest`."""
    from ..records import atomic, writing

    manifest = None
    if (staging / MANIFEST).is_file():
        with contextlib.suppress(OSError, ValueError):
            manifest = writing.read_manifest(staging)
    if manifest is None:  # the notebook failed before (or without) writing.start, or broke its manifest
        writing.start(staging, task.params)
        manifest = writing.update_manifest(staging, started=started)
    recorded = dict(manifest.get("params", {}))
    if "out_dir" in recorded:
        recorded["out_dir"] = str(final.resolve())
    status = "complete" if outcome["status"] == "complete" else "failed"
    fields = {"status": status, "params": recorded, "notebook": Path(task.notebook).stem, "run_id": task.run_id,
              "identity": task.identity, "requested_params": task.params, "attempts": attempts,
              "wall_s": round(wall_s, 3), "finished": manifest.get("finished") or writing.utc_now(),
              "host": socket.gethostname()}
    fields.update({k: outcome.get(k) for k in ("error", "error_cell", "error_execution_count") if k in outcome})
    writing.update_manifest(staging, **fields)
    dest.parent.mkdir(parents=True, exist_ok=True)
    atomic.publish(staging, dest)


def _leftovers(partial: Path, name: str) -> list[Path]:
    """Staging directories of killed attempts at record `name`."""
    pattern = re.compile(re.escape(name) + r"\.\d+\.\d+(\.old)?")
    return [p for p in partial.glob(f"{glob_escape(name)}.*") if pattern.fullmatch(p.name)]


def glob_escape(name: str) -> str:
    """`name` with glob's special characters escaped."""
    return re.sub(r"([*?\[])", r"[\1]", name)


def execute(task: Task, runs_dir: str | os.PathLike, final: str | os.PathLike | None = None,
            force: bool = False, wait: bool = False, refresh: bool = False) -> dict:
    """Run one task into `final` (default `runs_dir/<run id>`) unless complete, locked or in conflict;
    retried once if its kernel dies. `refresh` runs it again over its own complete record (a report whose
    runs may have changed); `force` also over another run's record.

    Returns the outcome: run_id, notebook, status (done | skipped | failed | died | locked | conflict),
    attempts, wall_s, out_dir, git_revision of a skipped record, and error / error_cell on failure.
    """
    from ..records import writing

    set_kernel_environment()  # a worker process keeps it for every task it runs
    final = Path(os.path.abspath(final if final is not None else Path(runs_dir) / task.run_id))  # `.` has a name
    if not final.name:
        raise ValueError(f"{final} cannot hold a run record; choose a directory below it")
    parent, partial = final.parent, final.parent / SWEEP_DIR / "partial"
    base = {"run_id": task.run_id, "notebook": Path(task.notebook).stem, "attempts": 0, "wall_s": 0.0,
            "out_dir": str(final)}
    with lock(parent, final.name, wait) as held:
        if not held:
            return {**base, "status": "locked", "error": f"another process is writing {final}"}
        state, manifest = record_state(final, task.run_id)
        if state == "complete" and not (force or refresh):
            return {**base, "status": "skipped", "git_revision": manifest.get("git_revision")}
        reason = conflict(final, task.run_id, force)
        if reason:
            return {**base, "status": "conflict", "error": reason}
        for leftover in _leftovers(partial, final.name):  # from killed attempts: we hold the lock now
            shutil.rmtree(leftover, ignore_errors=True)
        t0, started = time.monotonic(), writing.utc_now()
        for attempts in (1, 2):
            # a fresh directory per attempt: an orphaned kernel of a dead attempt cannot write into this one
            staging = partial / f"{final.name}.{os.getpid()}.{attempts}"
            outcome = _attempt(task, staging)
            if outcome["status"] != "died":
                break
            if attempts == 1:
                shutil.rmtree(staging, ignore_errors=True)
        wall_s = time.monotonic() - t0
        dest = final
        if outcome["status"] != "complete" and state in ("complete", "other"):  # a forced re-run failed:
            dest = parent / SWEEP_DIR / "failed" / staging.name  # keep the complete record, set this one aside
            base.update(out_dir=str(dest), kept=str(final))
        _finalize(task, staging, final, outcome, attempts, started, wall_s, dest)
    status = {"complete": "done"}.get(outcome["status"], outcome["status"])
    return {**base, **outcome, "status": status, "attempts": attempts, "wall_s": round(wall_s, 3)}


def error_outcome(task: Task, status: str, error: str, attempts: int) -> dict:
    """The outcome of a task whose worker died or raised."""
    return {"run_id": task.run_id, "notebook": Path(task.notebook).stem, "status": status,
            "attempts": attempts, "wall_s": 0.0, "error": error}
