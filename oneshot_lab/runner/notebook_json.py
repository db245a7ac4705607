"""A notebook file's JSON checked before anything reads or runs it: the structure this package reads, then before a
run nbformat 4's schema (what papermill needs); each failure is one line naming the file and what is wrong.

The first check imports nothing beyond `json`, so parameters are still refused in milliseconds.
"""

from __future__ import annotations

import copy
import functools
import json
import warnings
from pathlib import Path
from typing import Any

from ..util import checks

CELL_TYPES = ("code", "markdown", "raw")


def _cells_error(cells: Any) -> str | None:
    """What keeps `cells` from being the cells of an nbformat 4 notebook as this package reads them, or None."""
    if not isinstance(cells, list):
        return f"'cells' is {type(cells).__name__}, not a list"
    for i, cell in enumerate(cells):
        if not isinstance(cell, dict):
            return f"cell {i} is {type(cell).__name__}, not a mapping"
        if cell.get("cell_type") not in CELL_TYPES:
            return f"cell {i} has cell_type {checks.shown(cell.get('cell_type'))[:40]}, not one of {', '.join(CELL_TYPES)}"
        source, metadata = cell.get("source"), cell.get("metadata")
        if not (isinstance(source, str) or isinstance(source, list) and all(isinstance(s, str) for s in source)):
            return f"cell {i} has source {checks.shown(source)[:40]}, not text or a list of lines"
        if not isinstance(metadata, dict):
            return f"cell {i} has metadata {type(metadata).__name__}, not a mapping"
        tags = metadata.get("tags", [])
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            return f"cell {i} has tags {checks.shown(tags)[:40]}, not a list of names"
    return None


def read_notebook(path: Path) -> dict:
    """The JSON of the notebook at `path` with the structure of nbformat 4 (cells with a type, source and
    metadata; metadata; version 4.x); a one-line ValueError naming the file and the first thing wrong otherwise."""
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not a notebook (not JSON: {' '.join(str(err).split())[:120]})") from None
    except RecursionError:
        raise ValueError(f"{path}: not a notebook (its JSON nests too deeply)") from None
    if not isinstance(data, dict):
        why = f"the document is {type(data).__name__}, not a mapping"
    elif _cells_error(data.get("cells")):
        why = _cells_error(data.get("cells"))
    elif not isinstance(data.get("metadata"), dict):
        why = f"'metadata' is {type(data.get('metadata')).__name__}, not a mapping"
    elif data.get("nbformat") != 4 or type(data.get("nbformat_minor")) is not int:
        why = (f"version {checks.shown(data.get('nbformat'))[:20]}.{checks.shown(data.get('nbformat_minor'))[:20]}: "
               f"nbformat 4 notebooks only")
    else:
        why = None
    if why:
        raise ValueError(f"{path}: not a notebook ({why})")
    return data


def check_schema(path: Path) -> None:
    """Raise a one-line ValueError unless the notebook at `path` is valid by nbformat 4's schema, as papermill will
    read it (outputs, attachments, execution counts, kernelspec ...); checked once per version of the file."""
    stat = path.stat()
    why = _schema_error(str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    if why:
        raise ValueError(f"{path}: not a notebook ({why})")


@functools.lru_cache(maxsize=64)
def _schema_error(path: str, mtime_ns: int, size: int) -> str | None:
    """What nbformat's validator finds wrong with the notebook at `path` (of that mtime and size), or None."""
    data = read_notebook(Path(path))
    from nbformat.validator import ValidationError, validate  # a second to import: only before a run

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. cells without ids, which papermill accepts
        try:
            validate(copy.deepcopy(data))
        except ValidationError as err:
            where = "/".join(map(str, getattr(err, "path", []) or []))
            return f"{where + ': ' if where else ''}{' '.join(str(getattr(err, 'message', err)).split())[:160]}"
        except RecursionError:
            return "its JSON nests too deeply"
    return None
