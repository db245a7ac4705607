"""Run records: tidy metric tables plus a manifest, written atomically; loading many into one DataFrame."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Mapping

import pandas as pd

MANIFEST = "manifest.json"
TRACKED_PACKAGES = ("oneshot-lab", "torch", "numpy", "pandas", "scikit-learn", "mnist1d",
                    "backpack-for-pytorch", "papermill")


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write `text` to `path` so that readers see the old file or the whole new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


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


def _now() -> str:
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
        self.manifest.update(status=status, finished=_now(), duration_s=round(time.monotonic() - self._t0, 3))
        if error is not None:
            self.manifest["error"] = error
        self._save()


def start(out_dir: str | os.PathLike, params: Mapping[str, Any]) -> Run:
    """Open a run record in `out_dir` with its parameters, seed, library versions and git revision."""
    run = Run(Path(out_dir))
    run.manifest = {
        "params": _jsonable(dict(params)),
        "seed": _jsonable(params.get("seed")),
        "status": "running",
        "started": _now(),
        "versions": versions(),
        "git_revision": git_revision(),
        "tables": [],
    }
    run._save()
    return run


def read_manifest(run_dir: str | os.PathLike) -> dict:
    """The manifest of one run directory."""
    return json.loads((Path(run_dir) / MANIFEST).read_text())


def _param_value(value: Any) -> Any:
    """A parameter as a DataFrame cell: scalars as they are, lists and dicts as JSON text."""
    return json.dumps(value) if isinstance(value, (list, dict)) else value


def load(runs_dir: str | os.PathLike, table: str = "metrics", complete_only: bool = True) -> pd.DataFrame:
    """All rows of `<table>.csv` from every run under `runs_dir`, with each run's parameters as columns."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise FileNotFoundError(f"runs directory {runs_dir} does not exist")
    frames = []
    for manifest_path in sorted(runs_dir.rglob(MANIFEST)):
        run_dir = manifest_path.parent
        manifest = json.loads(manifest_path.read_text())
        if complete_only and manifest.get("status") != "complete":
            continue
        if not (run_dir / f"{table}.csv").is_file():
            continue
        frame = pd.read_csv(run_dir / f"{table}.csv")
        for name, value in manifest.get("params", {}).items():
            if name not in frame.columns:
                frame[name] = _param_value(value)
        frame["run"] = str(run_dir.relative_to(runs_dir)) if run_dir != runs_dir else "."
        frames.append(frame)
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True)
