"""Checking the files of a run record: the shape of a manifest, the integrity of a CSV table."""

from __future__ import annotations

import csv
import io
import json
import os
import stat
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

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


class NotRegularFile(ValueError):
    """A FIFO, device, socket or directory where a record's file is expected; it is never opened for reading."""

    def __init__(self, path: Path, kind: str):
        self.reason = f"not a regular file ({kind}), left unopened"
        super().__init__(f"{path}: {self.reason}")


KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFDIR: "a directory", stat.S_IFSOCK: "a socket",
         stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device"}


def _refuse_special(path: Path, mode: int) -> None:
    """Raise NotRegularFile unless `mode` is a regular file's."""
    if not stat.S_ISREG(mode):
        raise NotRegularFile(path, KINDS.get(stat.S_IFMT(mode), "an unknown kind"))


def read_regular(path: str | os.PathLike) -> bytes:
    """The bytes of the regular file `path` (symbolic links followed); NotRegularFile for anything else, which
    is refused before it is opened (a FIFO would block a reader forever), and OSError if it cannot be read."""
    path = Path(path)
    _refuse_special(path, os.stat(path).st_mode)
    # O_NONBLOCK: should a FIFO replace the file after the check, opening it still returns at once
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    with os.fdopen(fd, "rb") as fh:
        _refuse_special(path, os.fstat(fd).st_mode)
        return fh.read()


def read_json(path: Path) -> tuple[Any, str | None]:
    """(parsed JSON of `path`, None) or (None, the reason it cannot be read)."""
    try:
        return json.loads(read_regular(path).decode("utf-8")), None
    except OSError as err:
        return None, f"cannot read it ({err.strerror or err})"
    except NotRegularFile as err:
        return None, err.reason
    except (UnicodeDecodeError, ValueError) as err:
        return None, f"not valid JSON ({type(err).__name__}: {' '.join(str(err).split())[:120]})"
    except RecursionError:
        return None, "not valid JSON (it nests too deeply)"


def read_table(path: Path) -> tuple[Any, str | None]:
    """(the CSV at `path` as a DataFrame, None), or (None, why it is not a whole CSV table)."""
    import pandas as pd

    reason, text = table_problem(path)
    if reason is None:
        try:
            return pd.read_csv(io.StringIO(text)), None
        except (ValueError, pd.errors.ParserError) as err:
            reason = f"not CSV ({' '.join(str(err).split())[:120]})"
    return None, reason


def table_problem(path: Path) -> tuple[str | None, str]:
    """(why the CSV at `path` is not a whole table, or None; its text)."""
    try:
        raw = read_regular(path)
    except OSError as err:
        return f"cannot read it ({err.strerror or err})", ""
    except NotRegularFile as err:
        return err.reason, ""
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
    header = next(rows)
    repeated = sorted({name for name in header if header.count(name) > 1}, key=header.index)
    if repeated:
        return f"the header repeats column {repeated[0]!r}", ""
    width = len(header)
    for number, row in enumerate(rows, start=2):
        if len(row) != width:
            return f"ragged: line {number} has {len(row)} fields, the header has {width}", ""
    return None, text


@contextmanager
def warnings_once() -> Iterator[None]:
    """Within the block, each distinct warning is shown once, at its end (several passes over the same records
    would otherwise warn about one bad file several times)."""
    caught: list = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
    finally:
        for category, message in dict.fromkeys((w.category, str(w.message)) for w in caught):
            warnings.warn(message, category, stacklevel=3)
