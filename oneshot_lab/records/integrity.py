"""Checking the files of a run record: the shape of a manifest, the integrity of a CSV table."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"  # the file that makes a directory a run record


class RecordWarning(UserWarning):
    """A run record that cannot be read and is skipped; the message names the file and the reason."""


def manifest_problem(manifest: Any) -> str | None:
    """Why `manifest` (parsed JSON) is not a usable manifest, or None if it is."""
    if not isinstance(manifest, dict):
        return f"the manifest is {type(manifest).__name__ if manifest is not None else 'null'}, not a mapping"
    if not isinstance(manifest.get("params", {}), dict):
        return f"'params' is {type(manifest['params']).__name__}, not a mapping"
    if not isinstance(manifest.get("status"), str):
        return f"'status' is {manifest.get('status')!r}, not text"
    tables = manifest.get("tables", [])
    if not isinstance(tables, list) or not all(isinstance(t, str) for t in tables):
        return f"'tables' is {tables!r}, not a list of names"
    return None


def read_json(path: Path) -> tuple[Any, str | None]:
    """(parsed JSON of `path`, None) or (None, the reason it cannot be read)."""
    try:
        return json.loads(path.read_bytes().decode("utf-8")), None
    except OSError as err:
        return None, f"cannot read it ({err.strerror or err})"
    except (UnicodeDecodeError, ValueError) as err:
        return None, f"not valid JSON ({type(err).__name__}: {' '.join(str(err).split())[:120]})"


def table_problem(path: Path) -> tuple[str | None, str]:
    """(why the CSV at `path` is not a whole table, or None; its text)."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        return f"cannot read it ({err.strerror or err})", ""
    if not raw.strip():
        return "the file is empty", ""
    if b"\0" in raw:
        return "binary data (NUL bytes), not CSV text", ""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        return f"not UTF-8 text (byte {err.start})", ""
    if not text.endswith("\n"):
        return "cut short (the last line has no line end)", ""
    rows = csv.reader(io.StringIO(text))
    width = len(next(rows))
    for number, row in enumerate(rows, start=2):
        if len(row) != width:
            return f"ragged: line {number} has {len(row)} fields, the header has {width}", ""
    return None, text
