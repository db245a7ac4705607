"""Sweep specs: a YAML file (or a dict) naming notebooks and parameter settings, expanded into validated tasks.

Every setting becomes a `Task` whose record lives in `RUNS_DIR/<notebook stem>-<hash>/`, the hash (`run_id`)
covering the notebook's identity (its path in the project and a hash of its code cells) and every effective
parameter (the spec's values over the notebook's declared defaults), so that a record is reused only for
the same code and parameters. Specs are read as YAML 1.2 JSON-like data (`strict_yaml`) and the number of
runs is capped (`MAX_RUNS`), all before anything runs.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..util import project, rules, strict_yaml
from .notebook_json import check_schema
from .notebooks import NOTEBOOK_DIR, check_parameters, check_timeout, defaults, identity, resolve_notebook

FORMAT = """Run a notebook over a grid of parameters, one record directory per run.

spec format (YAML):
  notebook: 01                  # path, file name or number; or a list of notebooks
  runs_dir: runs/my_sweep       # optional; --runs overrides it
  timeout: 1800                 # optional per-cell timeout in seconds
  params: {dataset: mnist1d}    # fixed for every run
  grid:                         # cartesian product of these lists
    seed: [0, 1, 2]
    methods: [["magnitude/global"], ["random/layer"]]   # list-valued parameter: a list of lists
  list:                         # and/or explicit settings, each merged over params
    - {seed: 7, epochs: 5}
Several blocks: `sweeps: [{notebook: 01, grid: ...}, {notebook: 02, ...}]`.

Every run goes to RUNS_DIR/<notebook>-<hash>/ (executed notebook, CSV tables, manifest.json); the hash
covers the notebook's path in the project, its code cells and every effective parameter (the spec's
values over the notebook's defaults). Runs already complete are skipped (those made by another code
revision are reported); failed or missing ones run again; a run whose kernel dies is retried once.
The spec (YAML 1.2: 010 and yes are text) is checked in full before anything runs.
exit status: 0 all runs complete (whoever completed them), 1 some failed, 2 bad input (nothing ran), 3 a
file-system error. A spec may expand to at most --max-runs runs (default 1000).
"""

MAX_RUNS = 1000  # runs one spec may expand to unless raised (--max-runs)
MAX_SPEC_BYTES = 1_000_000
SPEC_KEYS = ("notebook", "params", "grid", "list", "timeout", "runs_dir", "sweeps")
BLOCK_KEYS = ("notebook", "params", "grid", "list", "timeout")


class SpecError(ValueError):
    """A sweep spec that cannot run; the message is one line naming the bad value and the valid ones."""


@dataclass(frozen=True)
class Task:
    """One notebook run of a sweep: the notebook, its parameters, the record's name and the notebook's identity."""

    notebook: str
    params: dict
    run_id: str
    timeout: int | None = None
    identity: dict = field(default_factory=dict)  # notebook path in the project, code hash


def _hash_id(stem: str, ident: Mapping[str, Any], effective: Mapping[str, Any]) -> str:
    """'<stem>-<12 hex digits>' of a notebook identity (plug-ins included) and its effective parameters (out_dir
    left out)."""
    plugins = {"plugins": ident["plugins"]} if ident.get("plugins") else {}
    key = json.dumps({"notebook": ident["path"], "code": ident["code_hash"], **plugins,
                      "params": {k: v for k, v in effective.items() if k != "out_dir"}},
                     sort_keys=True, separators=(",", ":"))
    return f"{stem}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def run_id(notebook: str | os.PathLike, params: Mapping[str, Any]) -> str:
    """'<notebook stem>-<12 hex digits>': the same for the same notebook code and effective parameters."""
    path = resolve_notebook(notebook)
    return _hash_id(path.stem, identity(path), {**defaults(path), **check_parameters(path, params)})


def task(notebook: str | os.PathLike, params: Mapping[str, Any], timeout: int | None = None) -> Task:
    """A validated task for one run of `notebook` with `params` (ValueError on a bad parameter)."""
    path = resolve_notebook(notebook).resolve()
    params = check_parameters(path, params)
    timeout = check_timeout(timeout)
    check_schema(path)
    ident = identity(path)
    return Task(str(path), params, _hash_id(path.stem, ident, {**defaults(path), **params}), timeout, ident)


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
    path = resolve_spec(spec_or_path)
    try:
        if path.stat().st_size > MAX_SPEC_BYTES:
            raise SpecError(f"{path}: a spec of {path.stat().st_size} bytes is larger than {MAX_SPEC_BYTES}")
        spec = strict_yaml.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as err:
        raise SpecError(f"{path}: not UTF-8 text (byte {err.start})") from None
    except strict_yaml.YAMLValueError as err:
        raise SpecError(f"{path}: {err}") from None
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


def _settings(where: str, block: Mapping, max_runs: int) -> list[dict]:
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
    size = math.prod(len(v) for v in grid.values()) if grid else 0
    if size + len(listed) > max_runs:
        raise SpecError(f"{where}: the grid expands to {size + len(listed)} runs, more than the limit of {max_runs}; "
                        f"check the grid, or raise the limit (--max-runs N, max_runs= in Python)")
    points = [dict(zip(grid, combo)) for combo in itertools.product(*grid.values())] if grid else []
    for entry in listed:
        if not isinstance(entry, Mapping):
            raise SpecError(f"{where}: every 'list' entry must be a mapping of parameters, got {entry!r}")
    return [{**fixed, **point} for point in points + [dict(e) for e in listed]]


def _block_tasks(where: str, block: Mapping, base: Path | None, timeout: Any, max_runs: int) -> list[Task]:
    """Validated tasks of one spec block (one or more notebooks)."""
    _check_keys(where, block, BLOCK_KEYS)
    if "notebook" not in block:
        raise SpecError(f"{where}: no 'notebook' (give a path, file name or number such as 01)")
    names = block["notebook"] if isinstance(block["notebook"], list) else [block["notebook"]]
    try:
        timeout = check_timeout(block.get("timeout", timeout))
    except ValueError as err:
        raise SpecError(f"{where}: {err}") from None
    settings = _settings(where, block, max_runs)
    if len(names) * len(settings) > max_runs:
        raise SpecError(f"{where}: {len(names)} notebooks x {len(settings)} settings is more than the limit of "
                        f"{max_runs} runs; raise it with --max-runs N (max_runs= in Python)")
    tasks = []
    for name in names:
        path = _notebook_path(name, base)
        try:
            ident, base_params = identity(path), defaults(path)
            check_schema(path)
        except ValueError as err:
            raise SpecError(f"{where}: {err}") from None
        for params in settings:
            if "out_dir" in params:
                raise SpecError(f"{where}: do not set out_dir: the sweep gives every run its own record "
                                f"directory RUNS_DIR/<run id>")
            try:
                params = check_parameters(path, params)  # ints and numeric strings for floats: 1 and 1.0 name one run
            except ValueError as err:
                raise SpecError(f"{where}: {err}") from None
            run = _hash_id(path.stem, ident, {**base_params, **params})
            tasks.append(Task(str(path), params, run, timeout, ident))
    return tasks


def expand(spec_or_path: Mapping | str | os.PathLike, max_runs: int = MAX_RUNS) -> list[Task]:
    """Every task of a spec, validated (notebooks exist, parameters known and typed) and de-duplicated;
    SpecError if the spec expands to more than `max_runs` runs."""
    try:
        max_runs = rules.RULES["max_runs"].check("max_runs", max_runs)
    except ValueError as err:
        raise SpecError(str(err)) from None
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
    if spec.get("runs_dir") is not None and not isinstance(spec["runs_dir"], str):
        raise SpecError(f"{where}: runs_dir must be a directory name (text), got {spec['runs_dir']!r}")
    tasks: dict[str, Task] = {}
    for label, block in blocks:
        if not isinstance(block, Mapping):
            raise SpecError(f"{label}: a block is a mapping with keys {', '.join(BLOCK_KEYS)}, got {block!r}")
        for task in _block_tasks(label, block, base, spec.get("timeout"), max_runs):
            tasks.setdefault(task.run_id, task)
        if len(tasks) > max_runs:
            raise SpecError(f"{where}: the spec expands to more than the limit of {max_runs} runs; "
                            f"raise it with --max-runs N (max_runs= in Python)")
    return list(tasks.values())


def spec_runs_dir(spec_or_path: Mapping | str | os.PathLike) -> Path | None:
    """The spec's own `runs_dir`, if it names one: a relative one from the project root inside the lab's clone."""
    named = load_spec(spec_or_path)[0].get("runs_dir")
    if named is not None and not isinstance(named, str):
        raise SpecError(f"runs_dir must be a directory name (text), got {named!r}")
    return None if named is None else project.path(named)
