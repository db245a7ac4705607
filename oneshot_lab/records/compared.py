"""Comparing two run records of one notebook: their findings lined up (`analysis.compare`) and their machines.

A rerun on another machine changes floating-point kernels and, through training, some verdicts; the table says
which, and the machines, library versions and code revisions of both records say what differed.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..analysis import compare
from ..util import machine
from .integrity import MANIFEST, manifest_problem, read_json, read_table

def _no_link(path: Path) -> None:
    """ValueError if `path` is a symbolic link: a record's own files are compared, not what a link points at."""
    if path.is_symlink():
        raise ValueError(f"{path} is a symbolic link; compare a record's own files, not a link")


def read_record(run_dir: str | os.PathLike) -> dict:
    """The manifest of the complete run record `run_dir`; ValueError naming what is wrong (no record, a link,
    unreadable, not complete), FileNotFoundError if there is no such directory."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"no run record {run_dir} (not a directory)")
    path = run_dir / MANIFEST
    _no_link(path)
    if not path.exists():
        raise ValueError(f"{run_dir} is not a run record (no {MANIFEST})")
    manifest, reason = read_json(path)
    reason = reason or manifest_problem(manifest)
    if reason:
        raise ValueError(f"{path}: {reason}")
    if manifest["status"] != "complete":
        raise ValueError(f"{run_dir} is not a complete record (status {manifest['status']!r})")
    return manifest


def read_findings(run_dir: str | os.PathLike, table: str = "findings") -> pd.DataFrame:
    """The `table` (findings by default) of the run record `run_dir`, read as `records.loading` reads tables;
    ValueError naming the file and the reason when it is missing, a link or not a whole CSV table."""
    path = Path(run_dir) / f"{table}.csv"
    _no_link(path)
    if not path.exists():
        raise ValueError(f"{run_dir} has no {path.name} (only notebooks that compute findings write one)")
    frame, reason = read_table(path)
    if frame is None:
        raise ValueError(f"{path}: {reason}")
    return frame


def _changed(a: dict, b: dict, key: str) -> list[tuple[str, object, object]]:
    """(name, value in a, value in b) for the entries of the mapping `key` that differ between two manifests."""
    x, y = (m.get(key) if isinstance(m.get(key), dict) else {} for m in (a, b))
    return [(name, x.get(name), y.get(name)) for name in dict.fromkeys([*x, *y]) if x.get(name) != y.get(name)]


@dataclass
class Compared:
    """Two records' findings side by side (`analysis.compare.compare`) and what each record says it ran on."""

    table: pd.DataFrame
    notebook: str
    runs: tuple[Path, Path]
    manifests: tuple[dict, dict] = field(repr=False)

    @property
    def machines(self) -> tuple[dict, dict]:
        """The `machine` of each manifest ({} for a record made before manifests carried one)."""
        return tuple(m.get("machine") if isinstance(m.get("machine"), dict) else {} for m in self.manifests)

    def summary(self) -> pd.DataFrame:
        """How many findings agree, differ, flip sign or are in one run only."""
        return compare.summary(self.table)

    def differences(self) -> list[tuple[str, str, str]]:
        """(what, in a, in b) for the machine fields, library versions, code revision and parameters (out_dir aside)
        the two records differ in."""
        a, b = self.manifests
        params = [(f"parameter {name}", json.dumps(x), json.dumps(y)) for name, x, y in _changed(a, b, "params")
                  if name != "out_dir"]
        versions = [(f"version of {name}", x, y) for name, x, y in
                    machine.differences(a.get("versions") or {}, b.get("versions") or {})]
        revision = [("git revision", str(a.get("git_revision")), str(b.get("git_revision")))] \
            if a.get("git_revision") != b.get("git_revision") else []
        ma, mb = self.machines
        if ma and mb:
            machines = machine.differences(ma, mb)
        else:  # a record made before manifests carried the machine: say so once, not per field
            machines = [] if ma == mb else [("machine", ma.get("cpu_model", "not recorded"),
                                              mb.get("cpu_model", "not recorded"))]
        return machines + versions + revision + params


def compare_runs(dir_a: str | os.PathLike, dir_b: str | os.PathLike) -> Compared:
    """The findings of two complete records of the same notebook lined up, with both manifests; ValueError if
    either is no complete record with a findings table or they are records of different notebooks."""
    manifests = read_record(dir_a), read_record(dir_b)
    notebooks = [m.get("notebook") for m in manifests]
    for run_dir, name in zip((dir_a, dir_b), notebooks):
        if not isinstance(name, str) or not name:
            raise ValueError(f"the manifest of {run_dir} names no notebook; compare records made by oneshot-lab "
                             f"run, demo, report or a sweep")
    if notebooks[0] != notebooks[1]:
        raise ValueError(f"{dir_a} is a record of {notebooks[0]}, {dir_b} of {notebooks[1]}: compare two runs of "
                         f"the same notebook")
    table = compare.compare(read_findings(dir_a), read_findings(dir_b))
    return Compared(table, notebooks[0], (Path(dir_a), Path(dir_b)), manifests)
