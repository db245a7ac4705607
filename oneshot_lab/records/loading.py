"""Loading run records: every complete run under a directory as one tidy DataFrame, its parameters as columns;
malformed records are skipped with a warning."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd

from .integrity import MANIFEST, RecordWarning, manifest_problem, read_json, read_table


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
    if not path.exists():  # a FIFO or directory of that name exists: table_problem refuses it unopened
        if table in manifest.get("tables", []):
            _skip(skipped, path, runs_dir, "the manifest lists this table but the file is missing", True)
        return None
    frame, reason = read_table(path)
    if frame is None:
        _skip(skipped, path, runs_dir, reason, True)
    return frame


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


def in_parameter_order(record: tuple[Path, dict]) -> tuple[str, str]:
    """A sort key of (run directory, manifest): the run's parameters, then its name, so that a table gathered from
    many runs (and every sum over it) does not depend on the hash that names their directories."""
    run_dir, manifest = record
    params = manifest.get("params") if isinstance(manifest.get("params"), dict) else {}
    return json.dumps(params, sort_keys=True, default=str), run_dir.name


def is_finite_number(value: Any) -> bool:
    """Whether a table cell is a finite number (an integer too large for a float is not)."""
    try:
        return bool(np.isfinite(float(value)))
    except (TypeError, ValueError, OverflowError):
        return False


def columns_problem(frame: pd.DataFrame, text: Iterable[str] = (), numbers: Iterable[str] = ()) -> str | None:
    """Why `frame` (one record's table) lacks a column of `text` or `numbers`, or holds in a row anything but
    text in the first or a finite number in the second; None if it holds them all."""
    text, numbers = list(text), list(numbers)
    missing = [name for name in (*text, *numbers) if name not in frame.columns]
    if missing:
        return f"no column {missing[0]!r}"
    for name in (*text, *numbers):
        if name in text:
            bad = ~frame[name].map(lambda v: isinstance(v, str) and v != "").to_numpy(dtype=bool)
        else:
            bad = ~frame[name].map(is_finite_number).to_numpy(dtype=bool)
        if bad.any():
            row = int(np.argmax(bad))
            value = frame[name].iloc[row]
            shown = repr(value) if isinstance(value, str) else str(value)
            return f"{name!r} is not {'text' if name in text else 'a finite number'} in line {row + 2} ({shown})"
    return None


def load(runs_dir: str | os.PathLike, table: str = "metrics", complete_only: bool = True,
         check: Callable[[pd.DataFrame], str | None] | None = None) -> pd.DataFrame:
    """All rows of `<table>.csv` from every run under `runs_dir`, with each run's parameters as columns.

    Columns added per run: its parameters (a metric column of the same name wins), `run` (the run's
    directory relative to `runs_dir`) and, for sweep records, `notebook`. A record with a malformed
    manifest, a manifest or table that is not a regular file (never opened), or an empty, binary, cut or
    ragged table or one whose header repeats a column, is skipped with one RecordWarning naming the file and
    the reason; so is a record whose table (with those columns) `check` finds a reason against (for example
    `columns_problem`). The skipped records are listed in `frame.attrs["skipped"]` (run, path, reason).
    """
    runs_dir = _runs_dir(runs_dir)
    frames, skipped = [], []
    for run_dir, manifest in sorted(_records(runs_dir, skipped), key=in_parameter_order):
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
        reason = check(frame) if check is not None else None
        if reason:
            _skip(skipped, run_dir / f"{table}.csv", runs_dir, reason, True)
            continue
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
