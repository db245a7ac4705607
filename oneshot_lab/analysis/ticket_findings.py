"""What a lottery-ticket study found: its claims read off the run's records, and matching per seed with an interval
(`published.published_comparison` puts the published figures beside ours)."""

from __future__ import annotations

import pandas as pd

from . import findings, stats
from ..util import checks
from .findings import Claim
from ..studies.lottery.ticket_study import TicketStudy

ACCURACIES = ("final_val_accuracy", "early_stop_val_accuracy")


def claims(study: TicketStudy, value: str = "final_val_accuracy") -> list[Claim]:
    """The claims about accuracy a study can test: ticket vs controls (at 1x and, where run, the controls' longer
    budget), rewinding to k vs the initialisation, and the retraining modes at the same budget."""
    checks.one_of("value", value, ACCURACIES)
    levels, factor = ("level", "weights_remaining"), study.control_budget
    out = []
    for control in study.imp.controls:
        out.append(Claim(claim=f"ticket beats {control}, both at 1x budget", a="ticket", b=control,
                         column="condition", by=levels, where={"experiment": "controls"}, value=value))
    if study.budget_levels:
        at = {"experiment": ["controls", "budget"], "level": list(study.budget_levels)}
        for control in study.imp.controls:
            longer = f"{control}_x{factor}"
            out.append(Claim(claim=f"ticket at 1x beats {control} at {factor}x budget", a="ticket", b=longer,
                             column="condition", by=levels, where=at, value=value))
            out.append(Claim(claim=f"{control} gains from {factor}x budget (not converged at 1x)", a=longer,
                             b=control, column="condition", by=levels, where=at, value=value))
    out.append(Claim(claim=f"rewinding to k={study.late_rewind} beats rewinding to the init (1x budget)",
                     a=study.late_rewind, b=0, column="rewind_iteration", by=levels,
                     where={"condition": "ticket", "experiment": ["controls", "late_rewind"]}, value=value))
    modes = ["weight_rewind", *study.retrain_modes]
    where = {"condition": "ticket", "rewind_iteration": 0, "experiment": ["controls", "retrain_modes"]}
    for a, b in (("lr_rewind", "weight_rewind"), ("weight_rewind", "finetune"), ("lr_rewind", "finetune")):
        if a in modes and b in modes:
            out.append(Claim(claim=f"{a} beats {b} (same budget)", a=a, b=b, column="retrain", by=levels,
                             where=where, value=value))
    return out


def stability_claims(study: TicketStudy, split: str = "val") -> list[Claim]:
    """Claims about error barriers (lower is better): later rewinding is more stable, the dense network is more
    stable than the ticket."""
    checks.one_of("split", split, ("val", "test"))
    ks = sorted(study.instability.rewind_iterations)
    out = [Claim(claim=f"{network} is more stable rewound to k={k} than to k={ks[0]}", a=k, b=ks[0],
                 column="rewind_iteration", by=(), where={"network": network, "split": split}, value="barrier",
                 lower_is_better=True) for network in ("dense", "ticket") for k in ks[1:]]
    out.append(Claim(claim="dense is more stable than the ticket", a="dense", b="ticket", column="network",
                     by=("rewind_iteration",), where={"split": split}, value="barrier", lower_is_better=True))
    return out


def evaluate(study: TicketStudy, metrics: pd.DataFrame, barriers: pd.DataFrame | None = None,
             value: str = "final_val_accuracy", confidence: float = 0.95, floor: float = 0.0,
             chance: float | None = None, adjust: str = "holm") -> findings.Family:
    """The study's findings, one family: every claim per setting, barriers on `value`'s split, with their per-seed
    rows (`findings.family`; `floor` and `chance` apply to every claim, chance to accuracy claims only)."""
    parts = [(metrics, claims(study, value))]
    if barriers is not None and not barriers.empty:
        parts.append((barriers, stability_claims(study, "test" if "_test_" in value else "val")))
    return findings.combined(parts, confidence, floor, chance, adjust)


def matching_interval(matching: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Per condition and tolerance: the interval over seeds of the weights remaining at the sparsest matching level.

    A seed where no pruned level matched counts as 100 (percent: only the dense network matches).
    """
    needed = {"seed", "condition", "tolerance", "weights_remaining"}
    if not isinstance(matching, pd.DataFrame) or not needed <= set(matching.columns):
        raise ValueError(f"matching must be the table lottery.matching returns (columns {sorted(needed)})")
    filled = matching.assign(weights_remaining=matching.weights_remaining.astype(float).fillna(100.0))
    return stats.summarize(filled, ["condition", "tolerance"], "weights_remaining", confidence)

