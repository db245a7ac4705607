"""`oneshot-lab recipes SPEC.yaml`: a dense recipe search (`studies.recipe_search`) run from a YAML spec into one
run record: per-seed rows ('seeds'), the summary per grid point ('summary') and the recipe chosen on validation
('chosen'). Resumable: a grid point whose seeds are all in the record is not trained again."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from ..analysis import recipes
from ..records.integrity import MANIFEST
from ..records.writing import read_manifest, start
from ..studies.recipe_search import SPEC_KEYS, RecipeSearchConfig, search
from ..util import project, strict_yaml

OUT = "runs/recipes"  # the default record directory is OUT/<spec stem>


def load(path: str | os.PathLike) -> tuple[RecipeSearchConfig, dict, Path]:
    """The config of the recipe spec at `path` (or relative to the project root), its mapping and its file."""
    found = next((p for p in (Path(path), project.PROJECT_DIR / path) if p.is_file()), None)
    if found is None:
        raise FileNotFoundError(2, "no recipe spec", str(path))
    try:
        spec = strict_yaml.loads(found.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, strict_yaml.YAMLValueError) as error:
        raise ValueError(f"{found}: {error}") from None
    if not isinstance(spec, dict):
        raise ValueError(f"{found}: a recipe spec is a mapping with keys {', '.join(SPEC_KEYS)}")
    try:
        return RecipeSearchConfig.from_spec(spec), spec, found
    except ValueError as error:
        raise ValueError(f"{found}: {error}") from None


def earlier_rows(out_dir: Path, params: dict) -> pd.DataFrame | None:
    """The per-seed rows an earlier run of the same spec left in `out_dir` (None: none); ValueError if `out_dir`
    holds anything else, so that nothing computed is overwritten."""
    if not out_dir.exists() or (out_dir.is_dir() and not any(out_dir.iterdir())):
        return None
    if not (out_dir / MANIFEST).is_file():
        raise ValueError(f"{out_dir} is not empty and holds no run record: choose another --out")
    if read_manifest(out_dir).get("params") != json.loads(json.dumps(params)):
        raise ValueError(f"{out_dir} holds the record of another recipe spec: choose another --out or remove it")
    seeds = out_dir / "seeds.csv"
    return pd.read_csv(seeds) if seeds.is_file() else None


def run(path: str | os.PathLike, out: str | os.PathLike | None = None, workers: int | None = None,
        progress: bool = True) -> tuple[Path, pd.DataFrame]:
    """Run (or resume) the recipe search of the spec at `path` into `out` (default runs/recipes/<spec stem>);
    the record directory and the chosen recipes."""
    config, spec, found = load(path)
    out_dir = project.path(out if out is not None else Path(OUT) / found.stem)
    params = {"spec": found.name, **spec}
    done = earlier_rows(out_dir, params)
    record = start(out_dir, params)
    try:
        rows = search(config, done, workers, on_point=lambda so_far: record.record("seeds", so_far), progress=progress)
        record.record("seeds", rows)
        summary = recipes.summary(rows)
        record.record("summary", summary)
        chosen = recipes.choose(summary)
        record.record("chosen", chosen)
    except BaseException as error:
        record.finish("failed", error=f"{type(error).__name__}: {error}")
        raise
    record.finish()
    return out_dir, chosen
