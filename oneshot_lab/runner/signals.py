"""SIGINT and SIGTERM in the `oneshot-lab` commands: the kernels of this process killed first, then the signal's
exception raised in the main thread."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from pathlib import Path
from typing import Any, Iterator


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C's KeyboardInterrupt so that the same clean-up runs."""


@contextlib.contextmanager
def ending_on_signals() -> Iterator[None]:
    """Within the block, SIGINT raises KeyboardInterrupt and SIGTERM `Terminated`, each after killing the kernels
    of this process (`kill_kernels`), so that none prints a traceback or runs on; a signal the caller ignores stays
    ignored, and the earlier handlers are back after the block."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return

    def end(signum: int, frame: Any) -> None:
        """Kill this process's kernels, then raise the signal's exception in the main thread."""
        kill_kernels()
        raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()

    saved = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    for number, handler in saved.items():
        if handler is not signal.SIG_IGN:
            signal.signal(number, end)
    try:
        yield
    finally:
        for number, handler in saved.items():
            signal.signal(number, signal.SIG_DFL if handler is None else handler)


def kill_kernels() -> None:
    """SIGKILL the process group of every child of this process that leads a session of its own: the kernels
    papermill starts, with the seed workers and resource tracker they started (Linux; elsewhere nothing)."""
    me = os.getpid()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):  # a process that ended meanwhile
            fields = stat.read_text().rpartition(")")[2].split()  # state, ppid, process group, session, ...
            pid = int(stat.parent.name)
            if int(fields[1]) == me and int(fields[3]) == pid:
                os.killpg(pid, signal.SIGKILL)
