"""The demo's progress: per running notebook its cells done, elapsed time and an estimate; a closing summary.

The monitor reads the executed copy papermill keeps saving in the run's staging directory (each cell's status
and start time), so it works for notebooks running in other processes. Estimates come from the committed run of
the same notebook with the same parameters (`results/<stem>/<stem>.ipynb`, its cells' durations), scaled by how
fast this machine ran the cells finished so far; without one there is no estimate, never an invented one.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Mapping, TextIO

from ..records.atomic import atomic_write_text
from ..records.integrity import read_regular
from ..util.project import PROJECT_DIR
from .staged_run import SWEEP_DIR

REFERENCE_DIR = PROJECT_DIR / "results"
INJECTED_TAG = "injected-parameters"


def code_cells(executed: Mapping[str, Any]) -> list[dict]:
    """The code cells of a notebook, without the cell papermill injects with the parameters."""
    return [c for c in executed.get("cells", []) if c.get("cell_type") == "code"
            and INJECTED_TAG not in c.get("metadata", {}).get("tags", [])]


def read_executed(path: Path) -> dict | None:
    """The notebook JSON at `path` (a regular file), or None while it is missing or half-written."""
    try:
        return json.loads(read_regular(path).decode("utf-8"))
    except (OSError, ValueError):
        return None


def reference_durations(notebook: Path, params: Mapping[str, Any], reference_dir: Path = REFERENCE_DIR
                        ) -> list[float] | None:
    """Seconds per code cell of the committed run of `notebook` with the same requested `params` and code."""
    source = read_executed(notebook)
    for record in sorted(reference_dir.glob(f"{notebook.stem}*")):
        manifest = read_executed(record / "manifest.json")
        executed = read_executed(record / notebook.name)
        if not manifest or not executed or manifest.get("requested_params", {}) != dict(params):
            continue
        cells = code_cells(executed)
        if source is None or [c["source"] for c in cells] != [c["source"] for c in code_cells(source)]:
            continue  # the notebook changed since: its old timings say little
        durations = [c.get("metadata", {}).get("papermill", {}).get("duration") for c in cells]
        if all(isinstance(d, (int, float)) for d in durations):
            return [float(d) for d in durations]
    return None


def staged_copy(final: Path, name: str) -> Path | None:
    """The executed copy papermill is writing for the record `final` (its newest staging attempt), if any."""
    partial = final.parent / SWEEP_DIR / "partial"
    found = [p / name for p in partial.glob(f"{final.name}.*") if (p / name).is_file() and not p.is_symlink()]
    return max(found, key=lambda p: p.stat().st_mtime, default=None)


def started_at(cell: Mapping[str, Any]) -> float | None:
    """The POSIX time a cell started, from papermill's metadata."""
    text = cell.get("metadata", {}).get("papermill", {}).get("start_time")
    try:
        return datetime.fromisoformat(text).timestamp() if text else None
    except ValueError:
        return None


def seconds_left(cells: list[dict], expected: list[float] | None, now: float) -> float | None:
    """The expected seconds until the last cell ends: the reference's remaining time, scaled by this run's pace."""
    if expected is None or len(expected) != len(cells):
        return None
    states = [c.get("metadata", {}).get("papermill", {}).get("status") for c in cells]
    done = [i for i, s in enumerate(states) if s == "completed"]
    taken = sum(c["metadata"]["papermill"].get("duration") or 0.0 for c in (cells[i] for i in done))
    reference_taken = sum(expected[i] for i in done)
    pace = taken / reference_taken if reference_taken > 5.0 else 1.0
    left = 0.0
    for i, state in enumerate(states):
        if state == "running":
            start = started_at(cells[i])
            left += max(expected[i] * pace - (now - start if start else 0.0), 0.0)
        elif state != "completed":
            left += expected[i] * pace
    return left


def clock(seconds: float) -> str:
    """Seconds as m:ss."""
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}:{secs:02d}"


@dataclass
class Entry:
    """One notebook of the demo: where its record goes, when it started, its reference timings, its outcome."""

    name: str
    final: Path
    expected: list[float] | None
    started: float = field(default_factory=time.time)
    outcome: dict | None = None

    def line(self, now: float) -> str:
        """'01_magnitude_pruning: cell 3/12, 1:05 elapsed, about 2:10 left'."""
        executed = staged_copy(self.final, f"{self.name}.ipynb")
        cells = code_cells(read_executed(executed) or {}) if executed else []
        elapsed = f"{clock(now - self.started)} elapsed"
        if not cells:
            return f"{self.name}: starting, {elapsed}"
        states = [c.get("metadata", {}).get("papermill", {}).get("status") for c in cells]
        current = next((i for i, s in enumerate(states) if s != "completed"), len(cells) - 1)
        left = seconds_left(cells, self.expected, now)
        estimate = f", about {clock(left)} left" if left is not None else ""
        return f"{self.name}: cell {current + 1}/{len(cells)}, {elapsed}{estimate}"


class Board:
    """Prints the running notebooks' progress every `interval` seconds (in place on a terminal) until closed."""

    def __init__(self, stream: TextIO = sys.stdout, interval: float | None = None) -> None:
        self.stream, self.tty = stream, stream.isatty()
        self.interval = interval if interval is not None else (1.0 if self.tty else 30.0)
        self.entries: list[Entry] = []
        self.lock, self.stop = threading.Lock(), threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.width = 0

    def __enter__(self) -> Board:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        self.thread.join()
        self.clear()

    def begin(self, entry: Entry) -> None:
        """Show `entry` among the running notebooks from now on."""
        with self.lock:
            entry.started = time.time()
            self.entries.append(entry)
            self.say(f"running {entry.name} ...")

    def end(self, entry: Entry, outcome: dict, report: Callable[[dict], int]) -> int:
        """Record `entry`'s outcome and let `report` print it (returning the exit status it gives)."""
        with self.lock:
            entry.outcome = outcome
            self.clear()
            return report(outcome)

    def say(self, text: str) -> None:
        """Print a line that stays (clearing the status line first on a terminal)."""
        self.clear()
        print(text, file=self.stream, flush=True)

    def clear(self) -> None:
        """Erase the in-place status line."""
        if self.tty and self.width:
            print("\r" + " " * self.width + "\r", end="", file=self.stream, flush=True)
            self.width = 0

    def loop(self) -> None:
        """Every interval, the status of every running notebook."""
        while not self.stop.wait(self.interval):
            with self.lock:
                now = time.time()
                lines = [e.line(now) for e in self.entries if e.outcome is None]
                if not lines:
                    continue
                if self.tty:
                    text = " | ".join(lines)
                    self.clear()
                    print(text, end="", file=self.stream, flush=True)
                    self.width = len(text)
                else:
                    print("\n".join(lines), file=self.stream, flush=True)


def rows(entries: list[Entry]) -> list[dict[str, Any]]:
    """Per notebook: its status, its wall seconds, the committed run's cell seconds and its record."""
    out = []
    for e in entries:
        outcome = e.outcome or {}
        status = {"done": "ran", "skipped": "kept (complete)"}.get(outcome.get("status"), outcome.get("status", "?"))
        out.append({"notebook": e.name, "status": status,
                    "wall_s": round(outcome.get("wall_s") or 0.0, 1) if status == "ran" else None,
                    "committed_s": round(sum(e.expected), 1) if e.expected else None,
                    "record": str(outcome.get("out_dir", e.final))})
    return out


def summary(entries: list[Entry], wall_s: float) -> str:
    """The closing table: `rows`, aligned, and the demo's wall time."""
    table = [("notebook", "status", "wall", "committed run", "record")] + [
        (r["notebook"], r["status"], "-" if r["wall_s"] is None else f"{r['wall_s']:.1f} s",
         "-" if r["committed_s"] is None else f"{r['committed_s']:.1f} s", r["record"]) for r in rows(entries)]
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in table]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:], f"all in {wall_s:.1f} s"])


def write_summary(entries: list[Entry], wall_s: float, path: Path) -> Path:
    """`rows` and the demo's wall time as a CSV table at `path`, written atomically."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, ["notebook", "status", "wall_s", "committed_s", "record"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows(entries))
    writer.writerow({"notebook": "all", "status": "", "wall_s": round(wall_s, 1), "committed_s": "", "record": ""})
    return atomic_write_text(path, buffer.getvalue())
