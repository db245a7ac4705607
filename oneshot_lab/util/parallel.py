"""Independent per-seed work run in worker processes, one torch thread each, so results never depend on workers."""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from multiprocessing import get_context
from typing import Any, Callable, Iterator, Sequence

from . import rules
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
    """Worker processes for `jobs` equal jobs: ONESHOT_LAB_WORKERS if set, else one per core, or one per job
    when jobs do not split evenly over the cores (up to 4 per core): 5 seeds on 2 cores then share the
    cores and finish together after 2.5 job-times instead of 3 rounds."""
    text = os.environ.get("ONESHOT_LAB_WORKERS", "")
    if text and not (text.isdigit() and len(text) < 10 and 1 <= int(text) <= rules.MAX_WORKERS):
        raise ValueError(f"ONESHOT_LAB_WORKERS must be a whole number in [1, {rules.MAX_WORKERS}] (worker processes), "
                         f"got {text[:40]!r}")
    return max(1, min(jobs, int(text))) if text else balanced(jobs, os.cpu_count() or 1)


def balanced(jobs: int, cores: int) -> int:
    """Processes for `jobs` equal jobs on `cores`: one per job when they do not split evenly (up to 4 per core)."""
    if cores < jobs <= 4 * cores and jobs % cores:
        return jobs
    return max(1, min(jobs, cores))


POOL: dict[str, Any] = {}  # the live worker pool and its size, reused by every map_jobs call of this process
PR_SET_PDEATHSIG = 1  # prctl: the signal a process gets when the thread that started it ends


def pool(workers: int) -> ProcessPoolExecutor:
    """The process pool of `workers` spawned workers, started once and kept for later calls."""
    if POOL.get("workers") != workers:
        close()
        starter = (os.getpid(), threading.current_thread() is threading.main_thread())  # workers start here
        POOL.update(pool=ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"),
                                             initializer=start_worker, initargs=starter), workers=workers)
    return POOL["pool"]


def start_worker(parent: int, main_thread: bool) -> None:
    """In a worker: end quietly on SIGINT, and with `parent`, the process that started the pool (a parent-death
    signal where the pool was started from `parent`'s main thread, which lives as long as it)."""
    quiet_on_interrupt()
    die_with_parent(parent, death_signal=main_thread)


def quiet_on_interrupt() -> None:
    """In a worker: end at once and without a traceback on SIGINT (a notebook interrupt or kernel shutdown)."""
    signal.signal(signal.SIGINT, lambda *_: os._exit(130))


def die_with_parent(parent: int, death_signal: bool = True) -> None:
    """End this process when `parent` is no longer its parent (killed, or ended): at once if that is already so,
    by Linux's parent-death signal (SIGKILL when the thread that started us ends; `death_signal`), and by a
    thread that checks every 0.2 s, so no orphan keeps running, holding memory or a lock."""
    if death_signal:
        with contextlib.suppress(OSError, AttributeError):  # not Linux: the watching thread alone
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before we could ask
        os._exit(1)
    threading.Thread(target=watch_parent, args=(parent,), name="watch-parent", daemon=True).start()


def watch_parent(parent: int, every_s: float = 0.2) -> None:
    """End this process as soon as `parent` is no longer its parent."""
    while os.getppid() == parent:
        time.sleep(every_s)
    os._exit(1)


@atexit.register
def close() -> None:
    """Stop the worker pool, cancelling jobs not yet started (a running job ends with its worker)."""
    live = POOL.pop("pool", None)
    POOL.pop("workers", None)
    if live is not None:
        live.shutdown(wait=False, cancel_futures=True)


def map_jobs(function: Callable, arguments: Sequence[tuple], workers: int | None = None, progress: bool = False,
             desc: str = "seeds") -> list:
    """`[function(*args) for args in arguments]`, in order, on `workers` processes (0 or 1: in this process).

    Every call runs on one torch thread wherever it runs, so the results are bit-identical for any
    `workers`. `function` must be importable (a module-level function of the package). `progress` shows
    one bar over the calls, advanced as each finishes. The worker processes are kept for the next call
    (no second start-up); an interrupt or a dead worker stops them.
    """
    workers = default_workers(len(arguments)) if workers is None else rules.RULES["workers"].check("workers", workers)
    jobs = [(function, tuple(args)) for args in arguments]
    with bar(total=len(jobs), desc=desc, disable=not progress) as meter:
        if workers <= 1 or len(jobs) <= 1:
            done = []
            for job in jobs:
                done.append(call_on_one_thread(job))
                meter.update(1)
            return done
        for attempt in (1, 2):
            try:
                futures = [pool(min(workers, len(jobs))).submit(call_on_one_thread, job) for job in jobs]
                for _ in as_completed(futures):
                    meter.update(1)
                return [future.result() for future in futures]
            except BrokenProcessPool:  # a worker died (killed, or ended by an interrupt while idle): start afresh
                close()
                if attempt == 2:
                    raise
                meter.reset()
            except BaseException:  # Ctrl-C: no half-used pool is kept
                close()
                raise
