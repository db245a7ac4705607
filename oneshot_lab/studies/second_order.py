"""Second-order pruners side by side: one one-shot study over several (dataset, model) settings and seeds,
the claims it tests, and the tables read from its records (cost, collapsed layers)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import pandas as pd
from torch import nn

from ..util import checks, rules
from ..analysis import findings, stats
from ..pruning import updating
from ..util.config import Config, option
from ..pruning.curvature import sample, working_copy
from ..core.data import load
from ..core.models import BUILDERS, build
from .oneshot import Method, OneShotConfig, replicate
from ..core.masks import prunable
from ..training.train import TrainConfig

REFERENCE = "backward pass (reference)"  # the method label of the reference cost row

# (claim, a, b): each kept only when both methods are in the study
CLAIMS = (
    ("obc (layer-wise OBS with updates) beats magnitude at the same per-layer counts", "obc/layer", "magnitude/layer"),
    ("sparsegpt beats magnitude at the same per-layer counts", "sparsegpt/layer", "magnitude/layer"),
    ("wanda beats magnitude at the same per-layer counts", "wanda/layer", "magnitude/layer"),
    ("obc (exact OBS updates) beats wanda (no update) at the same per-layer counts", "obc/layer", "wanda/layer"),
    ("obc (exact) beats sparsegpt (approximate update)", "obc/layer", "sparsegpt/layer"),
    ("obs (full Fisher, with update) beats obd (diagonal, no update)", "obs/global", "obd/global"),
    ("obs beats magnitude", "obs/global", "magnitude/global"),
    ("woodfisher (block Fisher, with update) beats obd (diagonal, no update)", "woodfisher/global", "obd/global"),
    ("woodfisher beats magnitude", "woodfisher/global", "magnitude/global"),
    ("obd beats magnitude", "obd/global", "magnitude/global"),
)


@dataclass(frozen=True)
class Setting(Config):
    """One (dataset, model, dense recipe) on which every method is compared."""

    name: str = option("mnist1d_mlp", "the setting's label in every table", rule="label")
    dataset: str = option("mnist1d", "a name `data.load` knows")
    model: str = option("mlp", "a name `models.build` knows")
    model_options: dict = option({}, "keyword options of the model, e.g. {'widths': [32, 32]}")
    train: TrainConfig = option(TrainConfig(), "the dense training recipe")
    sparsities: tuple = option((), "sparsities of this setting (empty: the study's)", rule=rules.FRACTIONS_OR_EMPTY)

    def __post_init__(self) -> None:
        """Validate every field and store it normalised (name, train and sparsities by their rules)."""
        super().__post_init__()
        checks.one_of("model", self.model, BUILDERS)
        self.store("model_options", dict(checks.mapping("model_options", self.model_options)))


# name -> (dataset, model, model options, which sparsity list of `standard` applies)
STANDARD = {
    "mnist1d_mlp": ("mnist1d", "mlp", {"widths": [32, 32]}, "mnist1d"),  # small enough for exact obs
    "mnist1d_conv1d": ("mnist1d", "conv1d", {}, "mnist1d"),
    "mnist_mlp": ("mnist_subset", "mlp", {"widths": [40, 20]}, "mnist"),  # the published MLP 784-40-20-10
}


def standard(names: list[str], train: TrainConfig, mnist1d_sparsities: tuple = (), mnist_sparsities: tuple = (),
             mlp_widths: tuple | None = None, mnist_dataset: str = "mnist_subset") -> list[Setting]:
    """The named `STANDARD` settings with one dense recipe.

    `mlp_widths` replaces the MNIST-1D MLP's widths; `mnist_dataset="mnist"` runs the MNIST MLP on the full
    MNIST IDX files (pass their directory as `root` to `run`).
    """
    checks.one_of("mnist_dataset", mnist_dataset, ("mnist_subset", "mnist"))
    names = checks.listing("settings", names, lambda n, v: checks.one_of(n, v, STANDARD), distinct=True)
    lists = {"mnist1d": tuple(mnist1d_sparsities), "mnist": tuple(mnist_sparsities)}
    out = []
    for name in names:
        dataset, model, options, which = STANDARD[name]
        if name == "mnist1d_mlp" and mlp_widths is not None:
            options = {"widths": list(mlp_widths)}
        if name == "mnist_mlp":
            dataset = mnist_dataset
        out.append(Setting(name=name, dataset=dataset, model=model, model_options=options, train=train,
                           sparsities=lists[which]))
    return out


@dataclass(frozen=True)
class Comparison:
    """Every setting's one-shot study over seeds: each table carries `setting` and `seed` columns.

    `plan` has one row per (setting, method): whether it ran and, if not, why (e.g. 'obs' above its max_weights).
    """

    metrics: pd.DataFrame
    layers: pd.DataFrame
    histories: pd.DataFrame
    costs: pd.DataFrame
    plan: pd.DataFrame


def weights(model: nn.Module) -> int:
    """Number of prunable weights of `model`."""
    return sum(model.get_parameter(n).numel() for n in prunable(model))


def applicable(methods: list[str], n_weights: int, score_options: dict) -> tuple[list[str], list[dict]]:
    """The methods a model with `n_weights` prunable weights can run, and one {method, runs, reason} per method."""
    limit = {**updating.METHODS["obs"].options, **score_options.get("obs", {})}["max_weights"]
    keep, plan = [], []
    for method in methods:
        if Method.parse(method).criterion == "obs" and n_weights > limit:
            plan.append({"method": method, "runs": False,
                         "reason": f"{n_weights} prunable weights > max_weights={limit}: the full Fisher inverse "
                                   "would not fit; woodfisher and obc run instead"})
        else:
            keep.append(method)
            plan.append({"method": method, "runs": True, "reason": ""})
    return keep, plan


def backward_seconds(model: nn.Module, dataset, samples: int | None = 1024, seed: int = 0) -> float:
    """Wall time of one forward and backward pass of the mean cross-entropy over `samples` training examples."""
    clone = working_copy(model)
    x, y = sample(dataset, samples, seed)
    started = time.perf_counter()
    nn.functional.cross_entropy(clone(x), y).backward()
    return time.perf_counter() - started


def run(settings: list[Setting], study: OneShotConfig, seeds: list[int], root: str | None = None,
        progress: bool = True) -> Comparison:
    """Per setting: `oneshot.replicate` of `study` over `seeds` with the methods the model can run
    (at the setting's own sparsities, if it has any).

    Methods are paired on the seed within a setting (same data split, dense model and calibration samples).
    `costs` gains, per setting and seed, the time of one plain forward + backward pass over obc's
    calibration samples (method `REFERENCE`), the yardstick for each method's `prune_seconds`.
    """
    settings = checks.listing("settings", settings)
    if any(not isinstance(s, Setting) for s in settings):
        raise ValueError(f"settings must be Setting objects, got {[type(s).__name__ for s in settings]}")
    names = [s.name for s in settings]
    if len(set(names)) != len(names):
        raise ValueError(f"setting names must be distinct, got {names}")
    OneShotConfig.checked("study", study)
    seeds = checks.listing("seeds", seeds, checks.seed, distinct=True)
    tables: dict[str, list[pd.DataFrame]] = {k: [] for k in ("metrics", "layers", "histories", "costs", "plan")}
    for setting in settings:
        data = load(setting.dataset, seed=seeds[0], root=root)
        net = build(setting.model, data, seed=seeds[0], **setting.model_options)
        methods, plan = applicable(list(study.methods), weights(net), study.score_options)
        if not methods:
            raise ValueError(f"setting {setting.name!r} can run none of the methods: {plan}")
        sparsities = setting.sparsities or study.sparsities
        controls = tuple(c for c in study.control_sparsities if checks.among(c, sparsities))
        if study.control_sparsities and not controls:
            raise ValueError(f"setting {setting.name!r}: none of the control_sparsities "
                             f"{list(study.control_sparsities)} is among its sparsities {list(sparsities)}")
        report = study.report_sparsity
        report = report if report is not None and checks.among(report, sparsities) else None
        local = study.replace(methods=tuple(methods), sparsities=sparsities, control_sparsities=controls,
                              report_sparsity=report)
        result = replicate(setting.dataset, setting.model, setting.train, local, seeds, setting.model_options,
                           root=root, progress=progress)
        samples = {**updating.METHODS["obc"].options, **study.score_options.get("obc", {})}["samples"]
        reference = [{"method": REFERENCE, "sparsity": float("nan"), "seed": seed,
                      "prune_seconds": backward_seconds(net, load(setting.dataset, seed=seed, root=root), samples,
                                                        seed)} for seed in seeds]
        costs = pd.concat([result.costs, pd.DataFrame(reference)], ignore_index=True)
        for key, frame in (("metrics", result.metrics), ("layers", result.layers), ("histories", result.histories),
                           ("costs", costs), ("plan", pd.DataFrame(plan))):
            tables[key].append(frame.assign(setting=setting.name))
    return Comparison(**{k: pd.concat(v, ignore_index=True) for k, v in tables.items()})


def claims(methods: list[str], stages: tuple[str, ...] = ("one_shot", "finetuned")) -> list[findings.Claim]:
    """The `CLAIMS` whose two methods are both in `methods`, per setting, stage and sparsity."""
    present = set(methods)
    return [findings.Claim(claim=text, a=a, b=b, by=("setting", "stage", "sparsity"), where={"stage": list(stages)})
            for text, a, b in CLAIMS if a in present and b in present]


def cost_table(costs: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Per (setting, method): seconds to score or prune one mask, mean over seeds and sparsities with interval.

    A criterion scores once for all sparsities, so its later sparsities cost only the masking; the
    `REFERENCE` row is one plain forward + backward pass over the calibration samples.
    """
    missing = {"setting", "method", "prune_seconds"} - set(getattr(costs, "columns", ()))
    if missing:
        raise ValueError(f"costs lacks column(s) {sorted(missing)}: pass Comparison.costs")
    table = stats.summarize(costs, ["setting", "method"], "prune_seconds", confidence)
    return table[["setting", "method", "n", "mean", "ci_low", "ci_high", "text"]].rename(
        columns={"mean": "seconds", "text": "seconds (interval)"})


def collapsed(layers: pd.DataFrame) -> pd.DataFrame:
    """Per (setting, method, sparsity): how many (seed, layer) masks pruned a whole layer, and which layers."""
    missing = {"setting", "method", "sparsity", "layer", "collapsed", "seed"} - set(getattr(layers, "columns", ()))
    if missing:
        raise ValueError(f"layers lacks column(s) {sorted(missing)}: pass Comparison.layers")
    rows = []
    for (setting, method, sparsity), group in layers.groupby(["setting", "method", "sparsity"], sort=False):
        hit = group[group["collapsed"].astype(bool)]
        rows.append({"setting": setting, "method": method, "sparsity": sparsity,
                     "seeds": group["seed"].nunique(), "seeds_with_collapse": hit["seed"].nunique(),
                     "collapsed_masks": len(hit), "layers": ", ".join(dict.fromkeys(hit["layer"]))})
    return pd.DataFrame(rows, columns=["setting", "method", "sparsity", "seeds", "seeds_with_collapse",
                                       "collapsed_masks", "layers"])


def reconstruction(layers: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Per (setting, sparsity, layer, method) of the layer-wise pruners: reconstruction error over seeds."""
    missing = {"setting", "method", "sparsity", "layer", "reconstruction_error"} - set(getattr(layers, "columns", ()))
    if missing:
        raise ValueError(f"layers lacks column(s) {sorted(missing)}: pass Comparison.layers")
    rows = layers.assign(reconstruction_error=pd.to_numeric(layers["reconstruction_error"]))
    rows = rows.dropna(subset=["reconstruction_error"])
    return stats.summarize(rows, ["setting", "sparsity", "layer", "method"], "reconstruction_error", confidence)
