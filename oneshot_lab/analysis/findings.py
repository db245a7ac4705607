"""Findings computed from a run's records: each claim a paired comparison over seeds with an interval and a verdict."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from ..util import checks
from . import stats
from ..util.config import Config, option

VERDICTS = ("supported", "contradicted", "inconclusive", "too few seeds")
COLUMNS = ["claim", "setting", "a", "b", "value", "n", "mean_difference", "ci_low", "ci_high", "agree",
           "verdict", "confidence"]


@dataclass(frozen=True)
class Claim(Config):
    """'`a` has a higher `value` than `b`', checked per setting of `by` on the rows matching `where`."""

    claim: str = option("", "what is claimed, in words (no numbers: the table carries them)", rule="label")
    a: Any = option(None, "the value of `column` claimed to be better")
    b: Any = option(None, "the value of `column` it is compared with")
    column: str = option("method", "the column whose values a and b are")
    by: tuple = option(("sparsity",), "columns that define a setting: one finding per setting")
    where: dict = option({}, "filter {column: value or list of values} applied before pairing")
    value: str = option("test_accuracy", "the measured column (higher is better)", rule="column")
    on: str = option("seed", "the column pairs are matched on", rule="column")
    lower_is_better: bool = option(False, "True for losses and errors: a claims a LOWER value than b")

    def __post_init__(self) -> None:
        """Validate every field and store it normalised (claim, the column names and lower_is_better by rules)."""
        super().__post_init__()
        if self.a == self.b:
            raise ValueError(f"a and b must differ, both are {self.a!r}")
        by = [self.by] if isinstance(self.by, str) else checks.listing("by", self.by, nonempty=False)
        self.store("by", tuple(by))
        self.store("where", dict(checks.mapping("where", self.where)))

    def rows(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The rows of `frame` this claim reads: those matching `where`, with a or b in `column`."""
        missing = [c for c in (self.column, self.value, self.on, *self.by, *self.where) if c not in frame.columns]
        if missing:
            raise ValueError(f"claim {self.claim!r} needs column(s) {missing}; the table has "
                             f"{', '.join(map(str, frame.columns))}")
        keep = frame[self.column].isin([self.a, self.b])
        for column, wanted in self.where.items():
            keep &= frame[column].isin(wanted if isinstance(wanted, (list, tuple, set)) else [wanted])
        return frame[keep]


def verdict(ci_low: float, ci_high: float, n: int) -> str:
    """'supported' when the interval lies above 0, 'contradicted' below 0, else 'inconclusive'."""
    if n < 2:
        return "too few seeds"
    if ci_low > 0:
        return "supported"
    if ci_high < 0:
        return "contradicted"
    return "inconclusive"


def setting_text(row: pd.Series, by: tuple, where: dict) -> str:
    """'stage=one_shot, sparsity=0.8': the filter and the setting of one finding."""
    parts = {**{k: v for k, v in where.items() if not isinstance(v, (list, tuple, set))},
             **{k: row[k] for k in by}}
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in parts.items())


def evaluate(frame: pd.DataFrame, claims: list[Claim], confidence: float = 0.95) -> pd.DataFrame:
    """One row per (claim, setting): the mean paired difference a - b, its Student-t interval and a verdict.

    For `lower_is_better` claims the difference is b - a, so a positive difference always favours a.
    'agree' counts the seeds whose difference has the claimed sign (strictly > 0). Claims whose a or b has no rows
    in `frame` raise a ValueError naming what is present.
    """
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"frame must be a pandas DataFrame of records, got {type(frame).__name__}")
    claims = checks.listing("claims", claims)
    bad = [c for c in claims if not isinstance(c, Claim)]
    if bad:
        raise ValueError(f"claims must be Claim objects, got {bad[0]!r}")
    out = []
    for claim in claims:
        rows = claim.rows(frame)
        first, second = (claim.b, claim.a) if claim.lower_is_better else (claim.a, claim.b)
        pairs = stats.paired(rows, first, second, by=list(claim.by), on=claim.on, value=claim.value,
                             column=claim.column, confidence=confidence)
        for _, row in pairs.iterrows():
            out.append({"claim": claim.claim, "setting": setting_text(row, claim.by, claim.where),
                        "a": claim.a, "b": claim.b, "value": claim.value, "n": int(row["n"]),
                        "mean_difference": row["mean_difference"], "ci_low": row["ci_low"],
                        "ci_high": row["ci_high"], "agree": int(row["positive"]), "confidence": confidence,
                        "verdict": verdict(row["ci_low"], row["ci_high"], int(row["n"]))})
    return pd.DataFrame(out, columns=COLUMNS)


def tally(findings: pd.DataFrame) -> pd.DataFrame:
    """Per claim: how many settings were supported, contradicted, inconclusive (the headline view)."""
    if not isinstance(findings, pd.DataFrame) or not {"claim", "verdict"} <= set(findings.columns):
        raise ValueError("tally needs the table evaluate() returns (columns claim and verdict)")
    counts = findings.groupby(["claim", "verdict"], sort=False).size().unstack(fill_value=0)
    return counts.reindex(columns=[v for v in VERDICTS if v in counts.columns]).reset_index()


def show(findings: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """The findings table for reading: differences and intervals rounded, one text interval column."""
    view = findings.copy()
    label = f"difference [{findings['confidence'].iloc[0]:.0%} interval]" if len(findings) else "difference"
    view[label] = [
        f"{m:+.{digits}f} [{lo:+.{digits}f}, {hi:+.{digits}f}]" for m, lo, hi in
        zip(view["mean_difference"], view["ci_low"], view["ci_high"])]
    view["seeds agreeing"] = [f"{a}/{n}" for a, n in zip(view["agree"], view["n"])]
    return view[["claim", "setting", label, "seeds agreeing", "verdict"]]
