"""A local sweep worker: `python -m oneshot_lab.runner.worker LOG_DIR` runs the tasks it reads, one at a time.

Protocol: one JSON line per request on stdin, {"task": <Task fields>, "runs_dir": ...}; one JSON line per
outcome on the process's original stdout. The worker's (and its kernels') own output goes to
`LOG_DIR/worker-<pid>.log`, so nothing a kernel prints can garble the answers.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TextIO

from ..util.parallel import die_with_parent
from .staged_run import error_outcome, execute
from .spec import Task


def serve(log_dir: str | os.PathLike, requests: TextIO | None = None) -> None:
    """Run tasks read as JSON lines from `requests` (stdin) and answer each on a private copy of stdout."""
    channel = os.fdopen(os.dup(1), "w")  # dup'ed descriptors are not inherited by kernels
    Path(log_dir).mkdir(parents=True, exist_ok=True)
    log = os.open(Path(log_dir) / f"worker-{os.getpid()}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    for line in requests or sys.stdin:
        request = json.loads(line)
        task = Task(**request["task"])
        try:
            outcome = execute(task, request["runs_dir"], wait=bool(request.get("wait")))
        except Exception as err:  # a bug or an I/O error: report it, keep serving
            outcome = error_outcome(task, "error", f"{type(err).__name__}: {err}", 1)
        channel.write(json.dumps(outcome) + "\n")
        channel.flush()


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m oneshot_lab.runner.worker LOG_DIR`."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m oneshot_lab.runner.worker LOG_DIR  (tasks as JSON lines on stdin)", file=sys.stderr)
        return 2
    die_with_parent(os.getppid())  # the sweep: no orphan holds a run's lock
    serve(argv[0])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
