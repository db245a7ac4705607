"""Independent per-seed work run in worker processes, one torch thread each, so results never depend on workers."""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from multiprocessing import get_context
from typing import Any, Callable, Iterator, Sequence

from . import checks
from .progress import bar


@contextmanager
def one_thread() -> Iterator[None]:
    """Run the block with one torch intra-op thread (the same arithmetic in-process and in any worker)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def call_on_one_thread(job: tuple[Callable, tuple]) -> Any:
    """`function(*args)` on one torch thread (what each worker runs)."""
    function, args = job
    with one_thread():
        return function(*args)


def default_workers(jobs: int) -> int:
    """One worker per core, no more than there are jobs (ONESHOT_LAB_WORKERS overrides the core count)."""
    text = os.environ.get("ONESHOT_LAB_WORKERS", "")
    if text and not (text.isdigit() and int(text) >= 1):
        raise ValueError(f"ONESHOT_LAB_WORKERS must be a whole number >= 1 (worker processes), got {text!r}")
    cores = int(text or 0) or os.cpu_count() or 1
    return max(1, min(jobs, cores))


def map_jobs(function: Callable, arguments: Sequence[tuple], workers: int | None = None, progress: bool = False,
             desc: str = "seeds") -> list:
    """`[function(*args) for args in arguments]`, in order, on `workers` processes (0 or 1: in this process).

    Every call runs on one torch thread wherever it runs, so the results are bit-identical for any
    `workers`. `function` must be importable (a module-level function of the package). `progress` shows
    one bar over the calls, advanced as each finishes.
    """
    workers = default_workers(len(arguments)) if workers is None else checks.integer("workers", workers, 0)
    jobs = [(function, tuple(args)) for args in arguments]
    with bar(total=len(jobs), desc=desc, disable=not progress) as meter:
        if workers <= 1 or len(jobs) <= 1:
            done = []
            for job in jobs:
                done.append(call_on_one_thread(job))
                meter.update(1)
            return done
        with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=get_context("spawn")) as pool:
            futures = [pool.submit(call_on_one_thread, job) for job in jobs]
            for _ in as_completed(futures):
                meter.update(1)
            return [future.result() for future in futures]
