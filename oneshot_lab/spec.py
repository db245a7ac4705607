"""Sweep specs: a YAML file (or a dict) naming notebooks and parameter settings, expanded into validated tasks.

Every setting becomes a `Task` whose record lives in `RUNS_DIR/<notebook stem>-<hash of the parameters>/`;
the hash (`run_id`) is stable across machines and releases, because existing records are found by it.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from .notebooks import NOTEBOOK_DIR, check_parameters, resolve_notebook

SPEC_KEYS = ("notebook", "params", "grid", "list", "timeout", "runs_dir", "sweeps")
BLOCK_KEYS = ("notebook", "params", "grid", "list", "timeout")


class SpecError(ValueError):
    """A sweep spec that cannot run; the message is one line naming the bad value and the valid ones."""


@dataclass(frozen=True)
class Task:
    """One notebook run of a sweep: the notebook, its parameters and the record directory name."""

    notebook: str
    params: dict
    run_id: str
    timeout: int | None = None


def run_id(notebook: str | os.PathLike, params: Mapping[str, Any]) -> str:
    """'<notebook stem>-<12 hex digits>': a stable name for (notebook, parameters), the same on every machine."""
    stem = Path(notebook).stem
    key = json.dumps({"notebook": stem, "params": params}, sort_keys=True, separators=(",", ":"))
    return f"{stem}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def resolve_spec(path: str | os.PathLike) -> Path:
    """A spec path as given, or relative to the repository root (so 'sweeps/x.yaml' works from anywhere)."""
    for candidate in (Path(path), NOTEBOOK_DIR.parent / path):
        if candidate.is_file():
            return candidate
    raise SpecError(f"no sweep spec {str(path)!r} (looked in {Path.cwd()} and {NOTEBOOK_DIR.parent})")


def load_spec(spec_or_path: Mapping | str | os.PathLike) -> tuple[dict, Path | None]:
    """The spec as a dict and the file it came from (None for a dict given directly)."""
    if isinstance(spec_or_path, Mapping):
        return dict(spec_or_path), None
    import yaml

    path = resolve_spec(spec_or_path)
    try:
        spec = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise SpecError(f"{path}: not valid YAML: {' '.join(str(err).split())}") from None
    if not isinstance(spec, dict):
        raise SpecError(f"{path}: a sweep spec is a mapping with keys {', '.join(SPEC_KEYS)}; got {type(spec).__name__}")
    return spec, path


def _check_keys(where: str, mapping: Mapping, valid: Iterable[str]) -> None:
    """Raise SpecError for keys of `mapping` outside `valid`."""
    unknown = sorted(set(map(str, mapping)) - set(valid))
    if unknown:
        raise SpecError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; valid keys: {', '.join(valid)}")


def _notebook_path(name: Any, base: Path | None) -> Path:
    """A notebook named in a spec: a path relative to the spec file, or anything `resolve_notebook` accepts."""
    if isinstance(name, int) and not isinstance(name, bool):
        name = f"{name:02d}"  # YAML reads `notebook: 01` as the integer 1
    if base is not None and (base / str(name)).is_file():
        return (base / str(name)).resolve()
    try:
        return resolve_notebook(str(name)).resolve()
    except FileNotFoundError as err:
        raise SpecError(str(err)) from None


def _settings(where: str, block: Mapping) -> list[dict]:
    """The parameter settings of one spec block: `params` merged under every grid point and list entry."""
    fixed, grid, listed = block.get("params") or {}, block.get("grid") or {}, block.get("list") or []
    if not isinstance(fixed, Mapping) or not isinstance(grid, Mapping) or not isinstance(listed, list):
        raise SpecError(f"{where}: 'params' and 'grid' must be mappings and 'list' a list of mappings")
    for name, values in grid.items():
        if not isinstance(values, list):
            raise SpecError(f"{where}: grid values of {name!r} must be a list of the values to sweep, got {values!r}"
                            f" (for a list-valued parameter write a list of lists)")
        if not values:
            raise SpecError(f"{where}: grid parameter {name!r} has no values")
    if not grid and not listed:
        raise SpecError(f"{where}: empty grid: give parameters with lists of values under 'grid' "
                        f"and/or settings under 'list'")
    points = [dict(zip(grid, combo)) for combo in itertools.product(*grid.values())] if grid else []
    for entry in listed:
        if not isinstance(entry, Mapping):
            raise SpecError(f"{where}: every 'list' entry must be a mapping of parameters, got {entry!r}")
    return [{**fixed, **point} for point in points + [dict(e) for e in listed]]


def _block_tasks(where: str, block: Mapping, base: Path | None, timeout: Any) -> list[Task]:
    """Validated tasks of one spec block (one or more notebooks)."""
    _check_keys(where, block, BLOCK_KEYS)
    if "notebook" not in block:
        raise SpecError(f"{where}: no 'notebook' (give a path, file name or number such as 01)")
    names = block["notebook"] if isinstance(block["notebook"], list) else [block["notebook"]]
    timeout = block.get("timeout", timeout)
    if timeout is not None and (not isinstance(timeout, int) or isinstance(timeout, bool) or timeout <= 0):
        raise SpecError(f"{where}: timeout must be a positive number of seconds per cell, got {timeout!r}")
    settings = _settings(where, block)
    tasks = []
    for name in names:
        path = _notebook_path(name, base)
        for params in settings:
            if "out_dir" in params:
                raise SpecError(f"{where}: do not set out_dir: the sweep gives every run its own record "
                                f"directory RUNS_DIR/<run id>")
            try:
                params = check_parameters(path, params)  # ints and numeric strings for floats: 1 and 1.0 name one run
            except ValueError as err:
                raise SpecError(f"{where}: {err}") from None
            tasks.append(Task(str(path), params, run_id(path, params), timeout))
    return tasks


def expand(spec_or_path: Mapping | str | os.PathLike) -> list[Task]:
    """Every task of a spec, validated (notebooks exist, parameters known and typed) and de-duplicated."""
    spec, path = load_spec(spec_or_path)
    where = f"spec {path}" if path else "spec"
    _check_keys(where, spec, SPEC_KEYS)
    base = path.parent if path else None
    if "sweeps" in spec:
        extra = sorted(set(spec) - {"sweeps", "runs_dir", "timeout"})
        if extra or not isinstance(spec["sweeps"], list) or not spec["sweeps"]:
            raise SpecError(f"{where}: 'sweeps' must be a non-empty list of blocks (each with notebook, params, "
                            f"grid, list) and then only runs_dir and timeout may sit beside it")
        blocks = [(f"{where}, sweeps[{i}]", b) for i, b in enumerate(spec["sweeps"])]
    else:
        blocks = [(where, {k: v for k, v in spec.items() if k != "runs_dir"})]
    tasks: dict[str, Task] = {}
    for label, block in blocks:
        if not isinstance(block, Mapping):
            raise SpecError(f"{label}: a block is a mapping with keys {', '.join(BLOCK_KEYS)}, got {block!r}")
        for task in _block_tasks(label, block, base, spec.get("timeout")):
            tasks.setdefault(task.run_id, task)
    return list(tasks.values())


def spec_runs_dir(spec_or_path: Mapping | str | os.PathLike) -> str | None:
    """The spec's own `runs_dir`, if it names one."""
    return load_spec(spec_or_path)[0].get("runs_dir")
