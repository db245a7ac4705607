"""Writing run records: a manifest (parameters, seed, versions, git revision, machine, status) plus tidy CSV tables."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Mapping

import pandas as pd

from .atomic import atomic_write_text
from .integrity import MANIFEST, manifest_problem, read_regular
from ..util import machine, project

TRACKED_PACKAGES = ("oneshot-lab", "torch", "numpy", "pandas", "scikit-learn", "mnist1d",
                    "backpack-for-pytorch", "papermill")


def versions() -> dict[str, str]:
    """Python, platform and installed versions of the libraries a result depends on."""
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for package in TRACKED_PACKAGES:
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return out


def git_revision(path: str | os.PathLike | None = None) -> str | None:
    """The git commit of the checkout holding `path` (this package by default), if any."""
    where = Path(path) if path else Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _jsonable(value: Any) -> Any:
    """`value` as plain JSON data (tuples become lists, paths and unknown objects strings)."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def utc_now() -> str:
    """The current UTC time as ISO 8601 text, to the second (the manifests' time format)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class Run:
    """One run's record directory: a manifest plus any number of named CSV tables."""

    out_dir: Path
    manifest: dict = field(default_factory=dict)
    _t0: float = field(default_factory=time.monotonic)

    def _save(self) -> None:
        atomic_write_text(self.out_dir / MANIFEST, json.dumps(self.manifest, indent=2, sort_keys=True))

    def record(self, table: str, rows: pd.DataFrame | Iterable[Mapping]) -> Path:
        """Write `rows` (tidy: one row per observation) as `<table>.csv`, atomically."""
        if not table.isidentifier():
            raise ValueError(f"table name must be an identifier, got {table!r}")
        frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
        path = atomic_write_text(self.out_dir / f"{table}.csv", frame.to_csv(index=False))
        self.manifest.setdefault("tables", [])
        if table not in self.manifest["tables"]:
            self.manifest["tables"].append(table)
        self._save()
        return path

    def finish(self, status: str = "complete", error: str | None = None) -> None:
        """Mark the run finished (complete or failed) with its end time and duration."""
        self.manifest.update(status=status, finished=utc_now(), duration_s=round(time.monotonic() - self._t0, 3))
        if error is not None:
            self.manifest["error"] = error
        self._save()


def start(out_dir: str | os.PathLike, params: Mapping[str, Any]) -> Run:
    """Open a run record in `out_dir` with its parameters, seed, library versions, git revision and machine
    (`util.machine.machine`: CPU model and instruction sets, torch's build and threads).

    A relative `out_dir` is taken from the project root inside the lab's clone (`util.project.path`): a
    notebook opened in JupyterLab, whose kernel runs in notebooks/, writes to the project's runs/ too."""
    run = Run(project.path(out_dir))
    run.manifest = {
        "params": _jsonable(dict(params)),
        "seed": _jsonable(params.get("seed")),
        "status": "running",
        "started": utc_now(),
        "versions": versions(),
        "git_revision": git_revision(),
        "machine": machine.machine(),
        "tables": [],
    }
    run._save()
    return run


def read_manifest(run_dir: str | os.PathLike) -> dict:
    """The manifest of one run directory; ValueError naming the file if it is malformed or not a regular file."""
    path = Path(run_dir) / MANIFEST
    manifest = json.loads(read_regular(path).decode("utf-8"))
    problem = manifest_problem(manifest)
    if problem:
        raise ValueError(f"{path}: {problem}")
    return manifest


def update_manifest(run_dir: str | os.PathLike, **fields: Any) -> dict:
    """Merge `fields` into the manifest of `run_dir` (atomically) and return the new manifest."""
    manifest = {**read_manifest(run_dir), **_jsonable(fields)}
    atomic_write_text(Path(run_dir) / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True))
    return manifest


def is_complete(run_dir: str | os.PathLike) -> bool:
    """Whether `run_dir` holds a record whose manifest says the run completed."""
    try:
        return read_manifest(run_dir).get("status") == "complete"
    except (OSError, ValueError):
        return False
