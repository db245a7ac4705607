"""SIGINT and SIGTERM in the `oneshot-lab` commands: the kernels of this process killed first, then the signal's
exception raised in the main thread, and never lost inside papermill."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from pathlib import Path
from typing import Any, Iterator

# waiting: the main thread waits in papermill (`waiting_on_kernel`); pending: the signal's exception it will raise
SIGNALLED: dict[str, Any] = {"waiting": False, "pending": None, "logging": None}


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C's KeyboardInterrupt so that the same clean-up runs."""


@contextlib.contextmanager
def ending_on_signals() -> Iterator[None]:
    """Within the block, SIGINT raises KeyboardInterrupt and SIGTERM `Terminated`, each after killing the kernels
    of this process (`kill_kernels`), so that none prints a traceback or runs on; a signal the caller ignores stays
    ignored, and the earlier handlers are back after the block.

    While the main thread waits in papermill (`waiting_on_kernel`), the exception is also kept and raised again
    when papermill ends: raised inside papermill's event loop it can be swallowed there, and the dead kernel then
    read as one to retry. When the signal killed the kernel, the first exception waits for papermill to end on it
    (about a second) instead of being raised inside the loop at all; a second signal is raised at once."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return

    def end(signum: int, frame: Any) -> None:
        """Kill this process's kernels, then raise the signal's exception in the main thread (or defer it)."""
        error = Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()
        killed = kill_kernels()
        if SIGNALLED["waiting"]:
            first = SIGNALLED["pending"] is None
            if first:
                SIGNALLED.update(pending=error, logging=logging.root.manager.disable)
                logging.disable(logging.CRITICAL)  # papermill's client would log the death of the kernel we killed
            if killed and first:
                return
        raise error

    saved = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    for number, handler in saved.items():
        if handler is not signal.SIG_IGN:
            signal.signal(number, end)
    try:
        yield
    finally:
        for number, handler in saved.items():
            signal.signal(number, signal.SIG_DFL if handler is None else handler)


@contextlib.contextmanager
def waiting_on_kernel() -> Iterator[None]:
    """The main thread waits in papermill within the block: a signal received meanwhile is raised at its end."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    SIGNALLED.update(waiting=True, pending=None)
    try:
        yield
    finally:
        pending = SIGNALLED["pending"]
        SIGNALLED.update(waiting=False, pending=None)
        if pending is not None:
            logging.disable(SIGNALLED["logging"])
            raise pending from None


def kill_kernels() -> int:
    """SIGKILL the process group of every child of this process that leads a session of its own: the kernels
    papermill starts, with the seed workers and resource tracker they started (Linux; elsewhere nothing); how many."""
    me, killed = os.getpid(), 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):  # a process that ended meanwhile
            fields = stat.read_text().rpartition(")")[2].split()  # state, ppid, process group, session, ...
            pid = int(stat.parent.name)
            if int(fields[1]) == me and int(fields[3]) == pid:
                os.killpg(pid, signal.SIGKILL)
                killed += 1
    return killed
