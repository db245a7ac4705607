"""Findings computed from a run's records: each claim a paired comparison over seeds with an interval and a verdict."""

from __future__ import annotations

import math
from dataclasses import dataclass
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from ..util import checks
from . import significance
from ..util.config import Config, option

VERDICTS = significance.VERDICTS
DISCOVERED = ("supported", "contradicted", "equivalent")  # the verdicts a replication re-tests
COLUMNS = ["claim", "setting", "a", "b", "value", "n", "a_mean", "b_mean", "mean_difference", "ci_low", "ci_high",
           "agree", "p_value", "p_adjusted", "p_equivalence", "p_equivalence_adjusted", "floor", "chance", "verdict",
           "confidence", "adjust"]
effect_floor = significance.effect_floor
SEED_COLUMNS = ["claim", "setting", "a", "b", "value", "seed", "a_value", "b_value", "difference", "floor", "chance"]
KEYS = ["claim", "setting", "a", "b", "value"]


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
        if self.on in by:
            raise ValueError(f"{self.on!r} is what pairs are matched on; it cannot also be in by={by!r}")
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


def setting_text(row: pd.Series, by: tuple, where: dict) -> str:
    """'stage=one_shot, sparsity=0.8': the filter and the setting of one finding."""
    parts = {**{k: v for k, v in where.items() if not isinstance(v, (list, tuple, set))},
             **{k: row[k] for k in by}}
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in parts.items())


def dense_floor(metrics: pd.DataFrame, examples: int, value: str = "test_accuracy", column: str = "stage",
                dense: str = "dense") -> float:
    """The default effect floor: `effect_floor` at the mean dense `value` of `metrics` (rows where column == dense)."""
    if not isinstance(metrics, pd.DataFrame) or not {value, column} <= set(metrics.columns):
        raise ValueError(f"metrics must be a records table with columns {column!r} and {value!r}")
    rows = metrics.loc[metrics[column] == dense, value].dropna()
    if rows.empty:
        raise ValueError(f"metrics has no {column} == {dense!r} rows with a {value}: no dense accuracy to set the floor")
    return effect_floor(float(rows.mean()), int(examples))


def checked_claims(frame: pd.DataFrame, claims: list[Claim]) -> list[Claim]:
    """`claims` as a list after checking `frame` is a table and every claim a Claim."""
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"frame must be a pandas DataFrame of records, got {type(frame).__name__}")
    claims = checks.listing("claims", claims)
    bad = [c for c in claims if not isinstance(c, Claim)]
    if bad:
        raise ValueError(f"claims must be Claim objects, got {bad[0]!r}")
    return claims


def floors_of(wide: pd.DataFrame, floor: float | Mapping, floor_by: str | None) -> np.ndarray:
    """The floor of each row of `wide`: `floor`, or `floor[row[floor_by]]` when floor is a mapping."""
    if floor_by is None:
        return np.full(len(wide), float(floor))
    if floor_by not in wide.columns:
        raise ValueError(f"floor_by {floor_by!r} must be one of the claim's `by` columns: {list(wide.columns)}")
    missing = sorted(set(wide[floor_by]) - set(floor), key=str)
    if missing:
        raise ValueError(f"no floor for {floor_by} {missing}; floors are given for {sorted(floor, key=str)}")
    return wide[floor_by].map(floor).to_numpy(dtype=float)


def claim_pairs(frame: pd.DataFrame, claim: Claim, floor: float | Mapping = 0.0, chance: float | None = None,
                floor_by: str | None = None) -> pd.DataFrame:
    """One claim's per-seed rows: both arms' values paired on `claim.on`, per setting, with the floor and chance."""
    rows = claim.rows(frame)
    for name in (claim.a, claim.b):
        if name not in set(rows[claim.column]):
            raise ValueError(f"claim {claim.claim!r}: {claim.column} {name!r} is not in the table; present: "
                             f"{', '.join(map(str, sorted(set(frame[claim.column]), key=str)))}")
    wide = rows.pivot_table(index=[*claim.by, claim.on], columns=claim.column, values=claim.value,
                            aggfunc="mean").reset_index().dropna(subset=[claim.a, claim.b])
    if wide.empty:
        raise ValueError(f"claim {claim.claim!r}: no {claim.on} has a {claim.value} for both {claim.a!r} and "
                         f"{claim.b!r}: nothing to pair")
    sign = -1.0 if claim.lower_is_better else 1.0
    return pd.DataFrame({"claim": claim.claim, "setting": [setting_text(r, claim.by, claim.where)
                                                           for _, r in wide.iterrows()],
                         "a": [claim.a] * len(wide), "b": [claim.b] * len(wide), "value": claim.value,
                         "seed": wide[claim.on].to_numpy(), "a_value": wide[claim.a].to_numpy(dtype=float),
                         "b_value": wide[claim.b].to_numpy(dtype=float),
                         "difference": sign * (wide[claim.a] - wide[claim.b]).to_numpy(dtype=float),
                         "floor": floors_of(wide, floor, floor_by),
                         "chance": chance if chance is not None and claim.value.endswith("accuracy") else math.nan},
                        columns=SEED_COLUMNS)


def seed_rows(frame: pd.DataFrame, claims: list[Claim], floor: float | Mapping = 0.0, chance: float | None = None,
              floor_by: str | None = None) -> pd.DataFrame:
    """The per-seed rows behind a findings table: claim, setting, arms, seed, both values, their difference, and
    the floor and chance the verdict uses.

    The difference is a - b (b - a for `lower_is_better` claims), so a positive difference always favours a.
    `floor` is one number, or {value of the column `floor_by`: floor} (e.g. one per dataset); `chance` applies to
    accuracy claims only.
    """
    if floor_by is None and checks.number("floor", floor) < 0:
        raise ValueError(f"floor must be >= 0 (accuracy units), got {floor!r}")
    if floor_by is not None and not (isinstance(floor, Mapping) and all(
            checks.number("floor", f) >= 0 for f in floor.values())):
        raise ValueError(f"with floor_by, floor must map each {floor_by} to a number >= 0, got {floor!r}")
    if chance is not None and not 0 <= checks.number("chance", chance) <= 1:
        raise ValueError(f"chance must be an accuracy in [0, 1] (1 / classes), got {chance!r}")
    tables = [claim_pairs(frame, claim, floor, chance, floor_by) for claim in checked_claims(frame, claims)]
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=SEED_COLUMNS)


def measure(seeds: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Per (claim, setting) of `seeds` (`seed_rows`): means, interval, agreeing seeds and raw p-values (the
    equivalence test against the seeds' floor). No adjustment and no verdict yet: `decide` takes the family."""
    missing = [c for c in SEED_COLUMNS if c not in getattr(seeds, "columns", ())]
    if missing:
        raise ValueError(f"seeds must be the table seed_rows returns; it lacks {missing}")
    if not 0 < checks.number("confidence", confidence) < 1:
        raise ValueError(f"confidence must be strictly between 0 and 1, got {confidence!r}")
    out = []
    for key, group in seeds.groupby(KEYS, sort=False):
        floor = float(group["floor"].iloc[0])
        out.append({**dict(zip(KEYS, key)), "a_mean": group["a_value"].mean(), "b_mean": group["b_value"].mean(),
                    **significance.paired_test(group["difference"], floor, confidence),
                    "agree": int((group["difference"] > 0).sum()), "floor": floor,
                    "chance": float(group["chance"].iloc[0]), "confidence": confidence})
    table = pd.DataFrame(out)
    return table.reindex(columns=[c for c in COLUMNS if c in table.columns or not out])


def decide(table: pd.DataFrame, adjust: str = "holm") -> pd.DataFrame:
    """The family `table` (from `measure`) with its p-values adjusted over the family and each row's verdict."""
    if not isinstance(table, pd.DataFrame) or not {"p_value", "p_equivalence", "floor"} <= set(table.columns):
        raise ValueError("decide needs the table measure() returns (columns p_value, p_equivalence, floor)")
    out = table.copy()
    out["p_adjusted"] = significance.adjusted(out["p_value"], adjust)
    out["p_equivalence_adjusted"] = significance.adjusted(out["p_equivalence"], adjust)
    alpha = 1 - (float(out["confidence"].iloc[0]) if len(out) else 0.95)
    out["verdict"] = [significance.verdict(row, alpha) for _, row in out.iterrows()]
    out["adjust"] = adjust
    return out.reindex(columns=COLUMNS)


def evaluate(frame: pd.DataFrame, claims: list[Claim], confidence: float = 0.95, floor: float | Mapping = 0.0,
             chance: float | None = None, adjust: str = "holm", floor_by: str | None = None) -> pd.DataFrame:
    """One row per (claim, setting), one family: the mean paired difference a - b over seeds, its Student-t
    interval, raw and `adjust`-adjusted p-values, the equivalence test against `floor` and a verdict.

    Supported: adjusted p < 1 - confidence and the interval above +floor; contradicted: below -floor; equivalent:
    the adjusted TOST p < 1 - confidence; both at chance: both arms' accuracies within floor of `chance`.
    `floor`, `chance` and `floor_by` as in `seed_rows`.
    """
    return family(frame, claims, confidence, floor, chance, adjust, floor_by).findings


@dataclass(frozen=True)
class Family:
    """A notebook's findings and the per-seed rows they are computed from (both recorded, so either recomputes)."""

    findings: pd.DataFrame
    seeds: pd.DataFrame

    def tables(self) -> dict[str, pd.DataFrame]:
        """The two tables under the names a record keeps them: findings and findings_seeds."""
        return {"findings": self.findings, "findings_seeds": self.seeds}


def family(frame: pd.DataFrame, claims: list[Claim], confidence: float = 0.95, floor: float | Mapping = 0.0,
           chance: float | None = None, adjust: str = "holm", floor_by: str | None = None) -> Family:
    """`evaluate`'s findings (one family) together with their per-seed rows."""
    return combined([(frame, claims)], confidence, floor, chance, adjust, floor_by)


def combined(parts: list[tuple[pd.DataFrame, list[Claim]]], confidence: float = 0.95, floor: float | Mapping = 0.0,
             chance: float | None = None, adjust: str = "holm", floor_by: str | None = None) -> Family:
    """One family from claims read off several tables: [(frame, claims), ...] (e.g. the records of two recipes)."""
    if adjust not in significance.ADJUSTMENTS:
        raise ValueError(f"unknown adjust {adjust!r}; accepted: {', '.join(significance.ADJUSTMENTS)}")
    if not 0 < checks.number("confidence", confidence) < 1:
        raise ValueError(f"confidence must be strictly between 0 and 1, got {confidence!r}")
    tables = [seed_rows(frame, claims, floor, chance, floor_by) for frame, claims in parts if claims]
    seeds = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=SEED_COLUMNS)
    return Family(decide(measure(seeds, confidence), adjust), seeds)


def replicate(discovery: pd.DataFrame, replication_seeds: pd.DataFrame, adjust: str = "holm") -> pd.DataFrame:
    """`discovery` (a findings table) with its discovered rows re-tested on fresh seeds (`replication_seeds`,
    their `seed_rows`), with the discovery's floors; the family is the discovered rows only.

    Adds replication_n, replication_mean_difference, replication_ci_low, replication_ci_high,
    replication_p_adjusted, replication_verdict and replicated: 'yes' (same verdict), 'no', 'not run' (no fresh
    pairs), or '' where the discovery verdict was not one of `DISCOVERED`.
    """
    needed = {*KEYS, "verdict", "floor", "chance", "confidence"}
    if not isinstance(discovery, pd.DataFrame) or not needed <= set(discovery.columns):
        raise ValueError(f"discovery must be a findings table (columns {sorted(needed)})")
    found = discovery[discovery["verdict"].isin(DISCOVERED)]
    fresh = replication_seeds.drop(columns=["floor", "chance"], errors="ignore").merge(
        found[[*KEYS, "floor", "chance"]], on=KEYS, how="inner")[SEED_COLUMNS]
    confidence = float(discovery["confidence"].iloc[0]) if len(discovery) else 0.95
    again = decide(measure(fresh, confidence=confidence), adjust) if len(fresh) else pd.DataFrame(columns=COLUMNS)
    names = {c: f"replication_{c}" for c in ("n", "mean_difference", "ci_low", "ci_high", "p_adjusted", "verdict")}
    out = discovery.merge(again[[*KEYS, *names]].rename(columns=names), on=KEYS, how="left")
    discovered = out["verdict"].isin(DISCOVERED)
    same = out["replication_verdict"] == out["verdict"]
    out["replicated"] = np.where(~discovered, "", np.where(out["replication_verdict"].isna(), "not run",
                                                           np.where(same, "yes", "no")))
    return out


def tally(findings: pd.DataFrame) -> pd.DataFrame:
    """Per claim: how many settings were supported, contradicted, inconclusive (the headline view)."""
    if not isinstance(findings, pd.DataFrame) or not {"claim", "verdict"} <= set(findings.columns):
        raise ValueError("tally needs the table evaluate() returns (columns claim and verdict)")
    counts = findings.groupby(["claim", "verdict"], sort=False).size().unstack(fill_value=0)
    return counts.reindex(columns=[v for v in VERDICTS if v in counts.columns]).reset_index()


def show(findings: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """The findings table for reading: the difference with its interval, seeds agreeing, the adjusted p-value, the
    floor and the verdict (and whether it replicated, when the table says)."""
    view = findings.copy()
    label = f"difference [{findings['confidence'].iloc[0]:.0%} interval]" if len(findings) else "difference"
    view[label] = [
        f"{m:+.{digits}f} [{lo:+.{digits}f}, {hi:+.{digits}f}]" for m, lo, hi in
        zip(view["mean_difference"], view["ci_low"], view["ci_high"])]
    view["seeds agreeing"] = [f"{a}/{n}" for a, n in zip(view["agree"], view["n"])]
    shown = ["claim", "setting", label, "seeds agreeing"]
    if "p_adjusted" in view:
        adjust = view["adjust"].iloc[0] if len(view) else "holm"
        view[f"p ({adjust})"] = [f"{p:.2g}" if np.isfinite(p) else "" for p in view["p_adjusted"]]
        view["floor"] = [f"±{f:.{digits}f}" for f in view["floor"]]
        shown += [f"p ({adjust})", "floor"]
    return view[shown + ["verdict"] + (["replicated"] if "replicated" in view else [])]
