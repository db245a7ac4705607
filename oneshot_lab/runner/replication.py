"""Replicating a notebook's findings on fresh seeds: the discovery record to replicate, the parameters of the
replication run (the discovery's, but for the seeds) and, for the sweep report (notebook 04), the sweep spec
with its seeds replaced.

A notebook with a `seeds` parameter (offsets added to `seed`) is run with the fresh offsets; a report with a
`spec` parameter runs that spec's sweep with the spec's grid `seed` replaced; any other notebook computes no
findings over seeds and cannot be replicated.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ..records import compared
from ..records.atomic import atomic_write_text
from ..records.writing import is_complete
from ..studies import smoke
from ..util import project
from .notebooks import check_parameters, declared_parameters, defaults, notebooks, resolve_notebook
from .spec import expand, load_spec

SEEDS = [5, 6, 7, 8, 9]  # replicate offsets the committed notebooks (seeds 0-4) never saw
OUT = "runs/replicate"
DISCOVERY = {False: ("runs/demo", "results"), True: ("runs/demo-smoke",)}  # where the discovery is looked for
TABLE = "replication.csv"
SEED_TABLE = "findings_seeds"  # the per-seed rows a replication re-tests the discovery on
IGNORED = {"seeds": ("seeds", "out_dir"), "sweep": ("out_dir", "runs_dir", "seed")}  # may differ from discovery


@dataclass(frozen=True)
class Plan:
    """One replication: the notebook, the run's parameters, its record directory, the discovery record, and the
    derived sweep spec to write first (sweep reports only)."""

    notebook: Path
    params: dict
    out: Path
    discovery: Path
    discovery_seeds: list
    seeds: list
    spec: dict | None = None
    spec_path: Path | None = None


def kind(notebook: Path) -> str:
    """'seeds' (the notebook takes replicate offsets) or 'sweep' (a report running a sweep spec); ValueError else."""
    declared = declared_parameters(notebook)
    if "seeds" in declared:
        return "seeds"
    if "spec" in declared and "runs_dir" in declared:
        return "sweep"
    able = [p.stem[:2] for p in notebooks() if {"seeds"} <= set(declared_parameters(p)) or
            {"spec", "runs_dir"} <= set(declared_parameters(p))]
    raise ValueError(f"{notebook.stem} computes no findings over seeds (it has no 'seeds' parameter): nothing to "
                     f"replicate; notebooks that can be replicated: {', '.join(able)}")


def discovery_dir(stem: str, against: str | os.PathLike | None, smoke: bool) -> Path:
    """The discovery record: `against`, else the demo's record of `stem` if complete, else the committed one."""
    if against is not None:
        return Path(against)
    places = [project.path(base) / stem for base in DISCOVERY[smoke]]
    return next((p for p in places if is_complete(p)), places[-1])


def mismatches(discovery: Mapping[str, Any], replication: Mapping[str, Any], ignored: tuple) -> list[str]:
    """'name: X in the discovery, Y here' for every parameter outside `ignored` whose values differ."""
    as_json = {k: json.loads(json.dumps(v)) for k, v in replication.items()}
    out = []
    for name in dict.fromkeys([*discovery, *as_json]):
        if name in ignored or discovery.get(name, ...) == as_json.get(name, ...):
            continue
        there, here = (json.dumps(v) if v is not ... else "not set" for v in (discovery.get(name, ...),
                                                                          as_json.get(name, ...)))
        out.append(f"{name}: {there} in the discovery, {here} here")
    return out


def fresh(seeds: list, seen: list) -> None:
    """ValueError unless `seeds` are some distinct seeds, none of them in `seen` (the discovery's)."""
    if not seeds:
        raise ValueError("no seeds to replicate on: give --seeds S [S ...] (default 5 6 7 8 9)")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds {' '.join(map(str, seeds))} repeats a seed; give distinct seeds")
    again = [s for s in seeds if s in seen]
    if again:
        raise ValueError(f"seed(s) {', '.join(map(str, again))} were used by the discovery run (seeds "
                         f"{', '.join(map(str, seen))}); a replication needs seeds it never saw")


def replicable(discovery: Path) -> None:
    """ValueError unless the findings of the record `discovery` are a table `findings.replicate` can re-test (a
    record made before findings carried their floors cannot be)."""
    import pandas as pd

    from ..analysis import findings

    try:
        findings.replicate(compared.read_findings(discovery), pd.DataFrame(columns=findings.SEED_COLUMNS))
    except ValueError as err:
        raise ValueError(f"{discovery}/findings.csv cannot be replicated: {err} (made by an older version? run "
                         f"the notebook again, or give --against a newer record)") from None


def smoke_seeds(notebook: Path, params: Mapping[str, Any], seeds: list) -> list:
    """The seeds a run with `params` and `seeds` uses: fewer in a smoke run of one of the lab's notebooks."""
    code = notebook.stem[:2]
    if not params.get("smoke") or code not in smoke.SHRINK:
        return list(seeds)
    return list(smoke.overrides(code, {**params, "seeds": list(seeds)}).get("seeds", seeds))


def derived_spec(source: Any, seeds: list, runs_dir: Path) -> tuple[dict, list]:
    """The sweep spec `source` with its grid seeds replaced by `seeds` and its runs in `runs_dir`, and the seeds it
    had; ValueError for a spec without one grid of seeds."""
    spec, path = load_spec(source)
    grid = spec.get("grid")
    if "sweeps" in spec or not isinstance(grid, dict) or not isinstance(grid.get("seed"), list):
        raise ValueError(f"the sweep spec {source} has no 'grid: seed: [...]' to replace with fresh seeds (and no "
                         f"'sweeps' list): replicate its runs with a spec of your own")
    notebook = spec.get("notebook")
    if path is not None and isinstance(notebook, str) and (path.parent / notebook).is_file():
        notebook = str((path.parent / notebook).resolve())  # the derived spec lives elsewhere
    return {**spec, "notebook": notebook, "runs_dir": str(runs_dir), "grid": {**grid, "seed": list(seeds)}}, grid["seed"]


def plan(notebook: str, seeds: list, given: Mapping[str, Any], against: str | os.PathLike | None,
         out: str | os.PathLike, smoke: bool) -> Plan:
    """Everything a replication needs, checked before any work: ValueError for a notebook without findings over
    seeds, a discovery record that is not complete, of another notebook, without findings or made with other
    parameters than these (the seeds aside), or seeds the discovery used."""
    path = resolve_notebook(notebook).resolve()
    how = kind(path)
    for name in ("seeds", "out_dir", *(("runs_dir",) if how == "sweep" else ())):
        if name in given:
            raise ValueError(f"do not give -p {name}: replicate sets it (--seeds for the seeds, --out for where)")
    discovery = discovery_dir(path.stem, against, smoke)
    manifest = compared.read_record(discovery)
    if manifest.get("notebook") not in (None, path.stem):
        raise ValueError(f"{discovery} is a record of {manifest['notebook']}, not of {path.stem}")
    params = {**dict(given), **({"smoke": True} if smoke else {})}
    effective = {**defaults(path), **check_parameters(path, params)}
    found = manifest.get("params", {})
    differ = mismatches(found, effective, IGNORED[how])
    if differ:
        raise ValueError(f"{discovery} was made with other parameters ({'; '.join(differ)}): a replication changes "
                         f"only the seeds; pass the discovery's values with -p or give --against another record")
    replicable(discovery)
    out = Path(os.path.abspath(project.path(out)))
    if how == "seeds":
        fresh(seeds, list(found.get("seeds", [])))
        return Plan(path, {**params, "seeds": list(seeds)}, out / path.stem, discovery,
                    smoke_seeds(path, found, found.get("seeds", [])), smoke_seeds(path, effective, seeds))
    if smoke:  # the smoke sweep runs seed and seed + 1, whatever the spec
        seen, mine = [found.get("seed", 0), found.get("seed", 0) + 1], [seeds[0], seeds[0] + 1]
        fresh(mine, seen)
        return Plan(path, {**params, "seed": seeds[0]}, out / path.stem, discovery, seen, mine)
    spec, seen = derived_spec(effective["spec"], seeds, out / f"{path.stem}_runs")
    fresh(seeds, seen)
    expand(spec)  # the sweep's runs checked now, not in the kernel
    text = json.dumps(spec, indent=2, sort_keys=True) + "\n"  # JSON is YAML 1.2: the spec reader takes it
    spec_path = out / f"{path.stem}_spec_{hashlib.sha256(text.encode()).hexdigest()[:12]}.yaml"
    return Plan(path, {**params, "spec": str(spec_path)}, out / path.stem, discovery, seen, list(seeds), spec,
                spec_path)


def write_spec(plan: Plan) -> Path | None:
    """Write the plan's derived sweep spec (atomically; its name carries a hash of its text, so a record of
    another spec is never taken for this one's)."""
    if plan.spec is None:
        return None
    return atomic_write_text(plan.spec_path, json.dumps(plan.spec, indent=2, sort_keys=True) + "\n")


def write_table(plan: Plan, table: Any) -> Path:
    """Write the replication table (a DataFrame) as `TABLE` beside the replication's record, atomically."""
    return atomic_write_text(plan.out / TABLE, table.to_csv(index=False))
