"""Run records: tidy metric tables plus a manifest, written atomically; loading many into one DataFrame."""

from __future__ import annotations

import io
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Mapping

import pandas as pd

from .integrity import RecordWarning, manifest_problem, read_json, table_problem

MANIFEST = "manifest.json"
TRACKED_PACKAGES = ("oneshot-lab", "torch", "numpy", "pandas", "scikit-learn", "mnist1d",
                    "backpack-for-pytorch", "papermill")


def _umask() -> int:
    """The process umask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write `text` to `path` so that readers see the old file or the whole new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600: records in a shared runs dir must be readable
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
    """Open a run record in `out_dir` with its parameters, seed, library versions and git revision."""
    run = Run(Path(out_dir))
    run.manifest = {
        "params": _jsonable(dict(params)),
        "seed": _jsonable(params.get("seed")),
        "status": "running",
        "started": utc_now(),
        "versions": versions(),
        "git_revision": git_revision(),
        "tables": [],
    }
    run._save()
    return run


def read_manifest(run_dir: str | os.PathLike) -> dict:
    """The manifest of one run directory; ValueError naming the file if it is malformed."""
    path = Path(run_dir) / MANIFEST
    manifest = json.loads(path.read_bytes().decode("utf-8"))
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


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        at_fdcwd, rename_exchange = -100, 2
        return libc.renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0
    except (OSError, AttributeError):
        return False


def publish(staging: str | os.PathLike, final: str | os.PathLike) -> Path:
    """Move a finished run directory to `final` by rename, replacing an older record of the same run.

    Readers see the old record or the new one, never a mix or neither (an atomic exchange where the file
    system supports it); `staging` must be on the same file system.
    """
    staging, final = Path(staging), Path(final)
    if not final.exists():
        os.replace(staging, final)
        return final
    if _exchange(staging, final):
        shutil.rmtree(staging, ignore_errors=True)  # now the old record
        return final
    old = staging.with_name(staging.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    os.replace(final, old)
    os.replace(staging, final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def _skip(skipped: list[dict], path: Path, runs_dir: Path, reason: str, warn: bool) -> None:
    """Note a skipped record (and warn once about it, naming the file and the reason)."""
    skipped.append({"run": _run_name(path.parent, runs_dir), "path": str(path), "reason": reason})
    if warn:
        warnings.warn(f"skipping run record {path}: {reason}", RecordWarning, stacklevel=3)


def _records(runs_dir: Path, skipped: list[dict] | None = None, warn: bool = True) -> Iterable[tuple[Path, dict]]:
    """(run directory, manifest) of every readable record under `runs_dir`, skipping hidden (staging)
    directories; an unreadable or malformed manifest is noted in `skipped` (with a RecordWarning)."""
    skipped = [] if skipped is None else skipped
    for manifest_path in sorted(runs_dir.rglob(MANIFEST)):
        if any(part.startswith(".") for part in manifest_path.relative_to(runs_dir).parts[:-1]):
            continue
        manifest, reason = read_json(manifest_path)
        reason = reason or manifest_problem(manifest)
        if reason:
            _skip(skipped, manifest_path, runs_dir, reason, warn)
            continue
        yield manifest_path.parent, manifest


def _table(run_dir: Path, manifest: dict, table: str, runs_dir: Path, skipped: list[dict]) -> pd.DataFrame | None:
    """The `table` of one record, or None (noted in `skipped` with a warning if the record claims it)."""
    path = run_dir / f"{table}.csv"
    if not path.is_file():
        if table in manifest.get("tables", []):
            _skip(skipped, path, runs_dir, "the manifest lists this table but the file is missing", True)
        return None
    reason, text = table_problem(path)
    if reason is None:
        try:
            return pd.read_csv(io.StringIO(text))
        except (ValueError, pd.errors.ParserError) as err:
            reason = f"not CSV ({' '.join(str(err).split())[:120]})"
    _skip(skipped, path, runs_dir, reason, True)
    return None


def _run_name(run_dir: Path, runs_dir: Path) -> str:
    """The run's directory relative to `runs_dir` ('.' for the directory itself)."""
    return str(run_dir.relative_to(runs_dir)) if run_dir != runs_dir else "."


def _param_value(value: Any) -> Any:
    """A parameter as a DataFrame cell: scalars as they are, lists and dicts as JSON text."""
    return json.dumps(value) if isinstance(value, (list, dict)) else value


def _runs_dir(runs_dir: str | os.PathLike) -> Path:
    """`runs_dir` as a Path, or FileNotFoundError if it is not a directory."""
    path = Path(runs_dir)
    if not path.is_dir():
        raise FileNotFoundError(f"runs directory {path} does not exist")
    return path


def load(runs_dir: str | os.PathLike, table: str = "metrics", complete_only: bool = True) -> pd.DataFrame:
    """All rows of `<table>.csv` from every run under `runs_dir`, with each run's parameters as columns.

    Columns added per run: its parameters (a metric column of the same name wins), `run` (the run's
    directory relative to `runs_dir`) and, for sweep records, `notebook`. A record with a malformed
    manifest or an empty, binary, cut or ragged table is skipped with one RecordWarning naming the file
    and the reason; the skipped records are listed in `frame.attrs["skipped"]` (run, path, reason).
    """
    runs_dir = _runs_dir(runs_dir)
    frames, skipped = [], []
    for run_dir, manifest in _records(runs_dir, skipped):
        if complete_only and manifest.get("status") != "complete":
            continue
        frame = _table(run_dir, manifest, table, runs_dir, skipped)
        if frame is None:
            continue
        for name, value in manifest.get("params", {}).items():
            if name not in frame.columns:
                frame[name] = _param_value(value)
        if "notebook" in manifest and "notebook" not in frame.columns:
            frame["notebook"] = manifest["notebook"]
        frame["run"] = _run_name(run_dir, runs_dir)
        frames.append(frame)
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    out.attrs["skipped"] = skipped
    return out


MANIFEST_COLUMNS = ("notebook", "status", "seed", "started", "finished", "duration_s", "attempts",
                    "error", "error_cell", "git_revision")


def manifests(runs_dir: str | os.PathLike) -> pd.DataFrame:
    """One row per record under `runs_dir` (complete or not): run, notebook, status, timings, error and cell.

    A record whose manifest cannot be read has status 'unreadable' and the reason as its error (one
    RecordWarning each); they are also listed in `frame.attrs["skipped"]`.
    """
    runs_dir = _runs_dir(runs_dir)
    skipped: list[dict] = []
    rows = [{"run": _run_name(run_dir, runs_dir), **{k: manifest.get(k) for k in MANIFEST_COLUMNS}}
            for run_dir, manifest in _records(runs_dir, skipped)]
    rows += [{"run": s["run"], "status": "unreadable", "error": s["reason"]} for s in skipped]
    frame = pd.DataFrame(rows, columns=["run", *MANIFEST_COLUMNS])
    frame.attrs["skipped"] = skipped
    return frame


BOOKKEEPING = ("run", "notebook", "out_dir", "smoke")


def run_parameters(runs_dir: str | os.PathLike, complete_only: bool = True) -> pd.DataFrame:
    """One row per run under `runs_dir`: `run`, `notebook` (sweep records) and every parameter, as `load` gives them."""
    runs_dir = _runs_dir(runs_dir)
    rows = []
    for run_dir, manifest in _records(runs_dir, warn=False):
        if complete_only and manifest.get("status") != "complete":
            continue
        row = {"run": _run_name(run_dir, runs_dir), "notebook": manifest.get("notebook")}
        row.update({name: _param_value(value) for name, value in manifest.get("params", {}).items()
                    if name not in row})
        rows.append(row)
    return pd.DataFrame(rows)


def varying_parameters(frame: pd.DataFrame, exclude: Iterable[str] = ("seed",),
                       names: Iterable[str] | None = None) -> list[str]:
    """The columns of `frame` that take more than one value (a missing value counts as one), in column order.

    `frame` is one row per run (`run_parameters`), or any table with the run parameters as columns (`load`)
    with `names` naming them. Left out: `exclude` (the replicate axis, 'seed' by default) and the
    bookkeeping columns `BOOKKEEPING` (run, notebook, out_dir, smoke). Grouping by the result keeps runs
    with different settings apart, so that a spread over the remaining runs is a spread over seeds.
    """
    skip = {*exclude, *BOOKKEEPING}
    candidates = list(frame.columns) if names is None else list(names)
    missing = [n for n in candidates if n not in frame.columns]
    if missing:
        raise ValueError(f"no column(s) {', '.join(map(repr, missing))}; available: {', '.join(map(str, frame.columns))}")
    return [n for n in candidates if n not in skip and frame[n].nunique(dropna=False) > 1]


def setting_labels(frame: pd.DataFrame, names: Iterable[str]) -> pd.Series:
    """Per row, 'name=value, ...' over `names` (the setting a row belongs to); 'all runs' when `names` is empty."""
    names = list(names)
    if not names:
        return pd.Series("all runs", index=frame.index)
    return pd.Series([", ".join(f"{n}={v}" for n, v in zip(names, values))
                      for values in frame[names].itertuples(index=False, name=None)], index=frame.index)
