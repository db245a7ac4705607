"""The claims notebooks 01, 02, 05 and 07 test, built from their study and records: each kept only where both of
its sides appear in the records (notebook 03's claims: `ticket_findings`)."""

from __future__ import annotations

from typing import Sequence

import pandas as pd

from .findings import Claim
from ..pruning import curvature
from ..studies import at_init
from ..studies.oneshot import OneShotConfig

STAGES = ("one_shot", "finetuned")  # the stages every one-shot claim is read at

# (a, b, what a adds over b): notebook 05 claims "a beats b" at each scope where both ran, never across scopes
SECOND_ORDER = (
    ("obc", "magnitude", "layer-wise exact OBS with updates"),
    ("sparsegpt", "magnitude", "layer-wise approximate OBS with updates"),
    ("wanda", "magnitude", "input norms, no update"),
    ("obc", "wanda", "exact OBS updates against no update"),
    ("obc", "sparsegpt", "exact against approximate updates"),
    ("obs", "obd", "the full Fisher with updates against its diagonal without"),
    ("obs", "magnitude", "the full Fisher with updates"),
    ("woodfisher", "obd", "a block Fisher with updates against the diagonal without"),
    ("woodfisher", "magnitude", "a block Fisher with updates"),
    ("obd", "magnitude", "the curvature diagonal"),
    ("chita", "magnitude", "L0-constrained least squares on the Fisher"),
    ("chita", "woodfisher", "IHT with an active set against greedy OBS on the Fisher"),
    ("chita", "obc", "a network-wide Fisher model against layer-wise reconstruction"),
)
SCOPE_TEXT = {"layer": "layer scope: the same count in every layer",
              "global": "global scope: one count over all layers, each arm's per-layer densities its own"}


def present(claims: list[Claim], metrics: pd.DataFrame) -> list[Claim]:
    """The `claims` whose a and b both occur in their column of `metrics`, in order."""
    if not isinstance(metrics, pd.DataFrame):
        raise ValueError(f"metrics must be a pandas DataFrame of records, got {type(metrics).__name__}")
    missing = sorted({c.column for c in claims} - set(metrics.columns))
    if missing:
        raise ValueError(f"metrics lacks column(s) {missing}; it has {', '.join(map(str, metrics.columns))}")
    return [c for c in claims if {c.a, c.b} <= set(metrics[c.column])]


def magnitude_pruning(metrics: pd.DataFrame, study: OneShotConfig) -> list[Claim]:
    """Notebook 01's claims: magnitude vs random and global vs layer-wise at each stage and sparsity, what the
    fine-tune recovers, and the budget controls (magnitude vs random at every longer budget, from-init vs the
    short fine-tune) where `study` runs them."""
    if not isinstance(study, OneShotConfig):
        raise ValueError(f"study must be a OneShotConfig, got {type(study).__name__}")
    if "stage" not in getattr(metrics, "columns", ()):
        raise ValueError("metrics lacks column 'stage': pass the study's metrics table")
    stages = list(STAGES)
    by = ("stage", "sparsity")
    out = [Claim(claim="magnitude (global) beats a random mask", a="magnitude/global", b="random/layer", by=by,
                 where={"stage": stages}),
           Claim(claim="global beats layer-wise magnitude", a="magnitude/global", b="magnitude/layer", by=by,
                 where={"stage": stages}),
           Claim(claim="fine-tuning recovers accuracy (global magnitude)", a="finetuned", b="one_shot",
                 column="stage", where={"method": "magnitude/global"})]
    if {"magnitude/global", "random/layer"} <= set(study.control_methods or study.methods):
        out += [Claim(claim=f"magnitude beats random at the {stage} budget", a="magnitude/global", b="random/layer",
                      by=("sparsity",), where={"stage": stage})
                for stage in sorted(set(metrics.stage) - {"dense", *stages})]
    if study.from_init is not None:
        out += [Claim(claim=f"{method}: training from the initialisation beats the short fine-tune", a="from_init",
                      b="finetuned", column="stage",
                      where={"method": method, "sparsity": list(study.control_sparsities)})
                for method in study.control_methods]
    return present(out, metrics)


def obd_saliency(metrics: pd.DataFrame, curvatures: Sequence[str]) -> list[Claim]:
    """Notebook 02's claims: the main OBD criterion (`curvature.preferred`) vs magnitude in both scopes, every
    other curvature's OBD vs it, Taylor vs magnitude, magnitude vs random, and iterative OBD vs iterative
    magnitude; layer-wise pairs only where the records have them."""
    main = f"obd_{curvature.preferred(curvatures)}"
    stages = {"stage": list(STAGES)}
    by = ("stage", "sparsity")
    out = [Claim(claim=f"OBD ({main}) beats magnitude, {scope}", a=f"{main}/{scope}", b=f"magnitude/{scope}",
                 by=by, where=stages) for scope in ("global", "layer")]
    out += [Claim(claim=f"{other} beats {main}, global", a=f"{other}/global", b=f"{main}/global", by=by,
                  where=stages) for other in [f"obd_{c}" for c in curvatures if f"obd_{c}" != main]]
    out += [Claim(claim="first-order Taylor beats magnitude, global", a="taylor/global", b="magnitude/global", by=by,
                  where=stages),
            Claim(claim="magnitude beats a random mask, global", a="magnitude/global", b="random/layer", by=by,
                  where=stages),
            Claim(claim=f"iterative {main} beats iterative magnitude", a=f"iterative {main}/global",
                  b="iterative magnitude/global", where={"stage": "iterative"})]
    return present(out, metrics)


def recipe_interaction(metrics: pd.DataFrame, other: pd.DataFrame, a: str, b: str,
                       recipes: tuple[str, str]) -> list[tuple[pd.DataFrame, list[Claim]]]:
    """Notebook 02's recipe as a factor: `a` against `b` on the `other` recipe's records, and the interaction:
    how much more a beats b under the first recipe than under the second, per stage and sparsity, paired on the
    seed (a difference of paired differences). [(frame, claims), ...] for `findings.combined`."""
    by, stages = ("stage", "sparsity"), list(STAGES)
    frames = []
    for recipe, records in zip(recipes, (metrics, other)):
        rows = records[records["stage"].isin(stages) & records["method"].isin([a, b])]
        wide = rows.pivot_table(index=["stage", "sparsity", "seed"], columns="method", values="test_accuracy")
        frames.append((wide[a] - wide[b]).rename("advantage").reset_index().assign(recipe=recipe))
    advantage = pd.concat(frames, ignore_index=True)
    other_claim = Claim(claim=f"{a} beats {b}, {recipes[1]}", a=a, b=b, by=by, where={"stage": stages})
    interaction = Claim(claim=f"{a}'s advantage over {b} is larger with {recipes[0]} than with {recipes[1]}",
                        a=recipes[0], b=recipes[1], column="recipe", by=by, value="advantage")
    return [(other, present([other_claim], other)), (advantage, [interaction])]


def second_order(metrics: pd.DataFrame, stages: Sequence[str] = STAGES) -> list[Claim]:
    """Notebook 05's claims (`SECOND_ORDER`) at each scope where both methods ran, per setting, stage and sparsity:
    a claim never compares methods across scopes."""
    out = [Claim(claim=f"{a} beats {b} ({what}; {SCOPE_TEXT[scope]})", a=f"{a}/{scope}", b=f"{b}/{scope}",
                 by=("setting", "stage", "sparsity"), where={"stage": list(stages)})
           for scope in SCOPE_TEXT for a, b, what in SECOND_ORDER]
    return present(out, metrics)


def at_initialisation(metrics: pd.DataFrame, study: at_init.AtInitConfig) -> list[Claim]:
    """Notebook 07's claims, per method pruning at initialisation and weights remaining: it beats each of its sanity
    checks (Frankle et al. 2021), a random mask and magnitude at initialisation; IMP tickets and magnitude pruning
    after training (one shot, and fine-tuned) beat it. All arms keep the same number of weights."""
    if not isinstance(study, at_init.AtInitConfig):
        raise ValueError(f"study must be an AtInitConfig, got {type(study).__name__}")
    by = ("weights_remaining",)
    out = []
    for method in study.control_methods or study.methods:
        controls = {"shuffled": "its mask shuffled within each layer", "reinit": "its mask on re-drawn initial weights",
                    "inverted": "its inverted scores (the weights it ranks lowest)"}
        out += [Claim(claim=f"{method} beats {text}", a=method, b=at_init.arm(method, control), column="arm", by=by)
                for control, text in controls.items() if control in study.controls]
        out += [Claim(claim=f"{method} beats {other}", a=method, b=other, column="arm", by=by)
                for other in ("random/global", "magnitude/global") if other != method]
        out += [Claim(claim=f"{other} beats {method}", a=other, b=method, column="arm", by=by)
                for other in (at_init.IMP_ARM, at_init.ONE_SHOT_ARM, at_init.FINETUNED_ARM)]
    return present(out, metrics)
