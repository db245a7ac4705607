"""A dense recipe search: every point of a small grid of training recipes, trained on every seed of every setting.

It records the final validation and test metrics of each dense model; `analysis.recipes` summarises them over seeds
and chooses the recipe on validation only (the test column is reported, never used to choose).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import pandas as pd

from ..core.data import load
from ..core.models import build
from ..training.fit_cache import cached_fit
from ..training.train import TrainConfig
from ..util import checks, parallel, rules
from ..util.config import Config, option
from ..util.progress import bar
from .oneshot import split_metrics

GRID_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig) if f.name != "seed") + ("model_options",)
SETTING_KEYS = ("dataset", "model", "model_options")
SPEC_KEYS = ("settings", "train", "grid", "seeds", "split_seed", "evaluations")


def check_point(index: int, point: Any) -> dict:
    """Grid point `index` as a dict of recipe fields; a one-line ValueError naming the accepted fields."""
    point = checks.mapping(f"grid point {index}", point)
    unknown = sorted(set(point) - set(GRID_FIELDS))
    if unknown:
        raise ValueError(f"grid point {index} has unknown field(s) {', '.join(unknown)}; "
                         f"grid fields: {', '.join(GRID_FIELDS)}")
    return dict(point)


def expand(grid: Any) -> list[dict]:
    """Grid points from a list of mappings (the points, in order) or one mapping field -> values (their product)."""
    if isinstance(grid, Mapping):
        check_point(0, grid)
        values = {k: checks.listing(f"grid field {k}", v) for k, v in grid.items()}
        return [dict(zip(values, combo)) for combo in itertools.product(*values.values())]
    return [check_point(i, p) for i, p in enumerate(checks.listing("grid", grid))]


@dataclass(frozen=True)
class RecipeSearchConfig(Config):
    """A grid of dense recipes over settings and seeds; `train` holds what every recipe shares."""

    settings: dict = option({"mnist1d_conv1d": {"dataset": "mnist1d", "model": "conv1d"}},
                            "setting name -> {dataset, model, model_options}: the networks every recipe trains")
    train: TrainConfig = option(TrainConfig(), "the recipe fields every grid point shares (a point overrides some)")
    grid: tuple = option(({},), "grid points (TrainConfig fields or model_options -> value), or one mapping "
                                "field -> values whose product is the grid; a tie goes to the earlier point")
    seeds: tuple = option((0, 1, 2), "seeds of every point: initialisation, data order and (unless split_seed) split")
    split_seed: int | None = option(None, "the seed of one validation split every seed shares (None: its own)")
    evaluations: int | None = option(10, "evaluations per run: eval_every = max(1, steps // evaluations) "
                                         "(None: the recipe's eval_every)")

    def __post_init__(self) -> None:
        """Validate every field and store it normalised."""
        super().__post_init__()  # train, seeds, split_seed
        settings = checks.mapping("settings", self.settings)
        if not settings:
            raise ValueError("settings must name at least one {dataset, model, model_options} setting")
        for name, setting in settings.items():
            setting = checks.mapping(f"setting {name}", setting)
            unknown = sorted(set(setting) - set(SETTING_KEYS))
            if unknown or not {"dataset", "model"} <= set(setting):
                raise ValueError(f"setting {name!r} has keys {sorted(setting)}; it needs dataset and model, "
                                 f"and accepts {', '.join(SETTING_KEYS)}")
            rules.RULES["dataset"].check("dataset", setting["dataset"])
            rules.model_options(setting["model"], setting.get("model_options", {}))
        self.store("settings", {str(k): dict(v) for k, v in settings.items()})
        if self.evaluations is not None:
            rules.Rule("int", 1, rules.MAX_STEPS).check("evaluations", self.evaluations)
        points = expand(self.grid)
        for index in range(len(points)):
            self.recipe(index, points)  # a bad value fails here, before any training
            for setting in settings.values():
                rules.model_options(setting["model"], points[index].get("model_options", setting.get(
                    "model_options", {})), f"model_options of grid point {index}")
        self.store("grid", tuple(points))

    @classmethod
    def from_spec(cls, spec: Any) -> RecipeSearchConfig:
        """The config of a spec mapping (its `train` a mapping of TrainConfig fields)."""
        spec = checks.mapping("recipe spec", spec)
        unknown = sorted(set(spec) - set(SPEC_KEYS))
        if unknown:
            raise ValueError(f"recipe spec has unknown key(s) {', '.join(unknown)}; keys: {', '.join(SPEC_KEYS)}")
        train = checks.mapping("train", spec.get("train", {}))
        return cls(**{**spec, "train": TrainConfig().replace(**train)})

    def recipe(self, index: int, points: list[dict] | None = None) -> TrainConfig:
        """The training recipe of grid point `index` (without its seed)."""
        point = (points or self.grid)[index]
        recipe = self.train.replace(**{k: v for k, v in point.items() if k != "model_options"})
        if self.evaluations is None or recipe.iterations is None:  # an epochs recipe evaluates once per epoch
            return recipe
        return recipe.replace(eval_every=max(1, recipe.iterations // self.evaluations))

    def model_options(self, setting: str, index: int) -> dict:
        """The model options of `setting` at grid point `index` (the point's own, else the setting's)."""
        return dict(self.grid[index].get("model_options", self.settings[setting].get("model_options", {})))

    def label(self, index: int) -> str:
        """Grid point `index` as text, e.g. 'lr=0.01 schedule=cosine' ('base recipe' when it changes nothing)."""
        point = self.grid[index]
        return " ".join(f"{k}={json.dumps(v, sort_keys=True)}" if not isinstance(v, str) else f"{k}={v}"
                        for k, v in point.items()) or "base recipe"


def train_point(dataset: str, model: str, model_options: dict, recipe: TrainConfig, seed: int,
                split_seed: int | None) -> dict:
    """Final validation and test metrics of the dense `model` trained on `dataset` with `recipe` from `seed`."""
    data = load(dataset, seed=seed if split_seed is None else split_seed)
    net = build(model, data, seed=seed, **model_options)
    cached_fit(net, data, recipe.replace(seed=seed), progress=False)
    return split_metrics(net, data)


def point_rows(config: RecipeSearchConfig, setting: str, index: int, workers: int | None = None) -> list[dict]:
    """The rows of one (setting, grid point): one per seed, its seeds trained on `workers` processes."""
    spec, options, recipe = config.settings[setting], config.model_options(setting, index), config.recipe(index)
    jobs = [(spec["dataset"], spec["model"], options, recipe, seed, config.split_seed) for seed in config.seeds]
    done = parallel.map_jobs(train_point, jobs, workers)
    return [{"setting": setting, "point": index, "recipe": config.label(index), "seed": seed,
             "dataset": spec["dataset"], "model": spec["model"], "model_options": json.dumps(options, sort_keys=True),
             **{k: v for k, v in recipe.as_dict().items() if k != "seed"}, **metrics}
            for seed, metrics in zip(config.seeds, done)]


def search(config: RecipeSearchConfig, done: pd.DataFrame | None = None, workers: int | None = None,
           on_point: Callable[[pd.DataFrame], None] | None = None, progress: bool = True) -> pd.DataFrame:
    """Per (setting, grid point, seed): the recipe and the final val / test loss and accuracy of the dense model.

    A (setting, point) whose every seed is in `done` (rows of an earlier search of the same config) is kept, not
    trained again; `on_point` gets every row so far after each point trained (to record them).
    """
    RecipeSearchConfig.checked("config", config)
    keys = [(s, i) for s in config.settings for i in range(len(config.grid))]
    found: dict[tuple, pd.DataFrame] = {}
    for setting, index in keys if done is not None and not done.empty else ():
        old = done[(done["setting"] == setting) & (done["point"] == index)]
        if set(config.seeds) <= set(old["seed"]):
            found[(setting, index)] = old[old["seed"].isin(config.seeds)]
    todo = [k for k in keys if k not in found]
    ordered = lambda: pd.concat([found[k] for k in keys if k in found], ignore_index=True)  # noqa: E731
    with bar(total=len(todo), desc="recipes", disable=not progress) as meter:
        for setting, index in todo:
            found[(setting, index)] = pd.DataFrame(point_rows(config, setting, index, workers))
            if on_point is not None:
                on_point(ordered())
            meter.update(1)
    return ordered()
