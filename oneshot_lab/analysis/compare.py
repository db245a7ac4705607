"""Two findings tables of one notebook side by side: which verdicts agree, differ or flip sign between two runs.

Both the findings columns of today and the older set (claim, setting, a, b, value, n, mean_difference, ci_low,
ci_high, agree, verdict, confidence) that earlier records carry are read: only the columns both share are used.
"""

from __future__ import annotations

import pandas as pd

KEY = ["claim", "setting", "a", "b", "value"]  # what makes two rows the same finding
SIDE = ["verdict", "mean_difference", "ci_low", "ci_high"]  # what each run says about it
NUMBERS = SIDE[1:]
STATUSES = ("agree", "differ", "sign flip", "only in a", "only in b")
COLUMNS = [*KEY, "verdict_a", "verdict_b", *(f"{c}_a" for c in NUMBERS), *(f"{c}_b" for c in NUMBERS), "status"]
OPPOSITE = {"supported", "contradicted"}


def _side(findings: pd.DataFrame, name: str) -> pd.DataFrame:
    """The key and verdict columns of one findings table, keys and verdicts as text; ValueError if it has none."""
    if not isinstance(findings, pd.DataFrame):
        raise ValueError(f"findings_{name} must be a findings table (a pandas DataFrame), got {type(findings).__name__}")
    missing = [c for c in (*KEY, *SIDE) if c not in findings.columns]
    if missing:
        raise ValueError(f"findings_{name} has no column(s) {', '.join(map(repr, missing))}; a findings table "
                         f"has {', '.join(KEY + SIDE)}")
    frame = findings[KEY + SIDE].copy()
    for column in (*KEY, "verdict"):
        frame[column] = [("" if pd.isna(v) else str(v)) for v in frame[column]]
    for column in NUMBERS:
        try:
            frame[column] = pd.to_numeric(frame[column]).astype(float)
        except (ValueError, TypeError):
            raise ValueError(f"findings_{name}: column {column!r} must hold numbers") from None
    repeated = frame[frame.duplicated(KEY)]
    if not repeated.empty:
        row = repeated.iloc[0]
        raise ValueError(f"findings_{name} holds the finding {row['claim']!r} at {row['setting']!r} ({row['a']} vs "
                         f"{row['b']}, {row['value']}) twice; each (claim, setting, a, b, value) must appear once")
    return frame


def status(verdict_a: object, verdict_b: object) -> str:
    """'only in a' / 'only in b' when one side is missing (not text), 'agree' for the same verdict, 'sign flip'
    for supported against contradicted, else 'differ'."""
    if not isinstance(verdict_a, str):
        return "only in b"
    if not isinstance(verdict_b, str):
        return "only in a"
    if verdict_a == verdict_b:
        return "agree"
    return "sign flip" if {verdict_a, verdict_b} == OPPOSITE else "differ"


def compare(findings_a: pd.DataFrame, findings_b: pd.DataFrame) -> pd.DataFrame:
    """One row per finding (claim, setting, a, b, value) of either table: both verdicts, both mean differences and
    intervals, and the `status` (one of `STATUSES`); a's rows in a's order, then those only in b in b's order."""
    a, b = _side(findings_a, "a"), _side(findings_b, "b")
    both = a.merge(b, on=KEY, how="left", suffixes=("_a", "_b"))
    only_b = b.merge(a[KEY], on=KEY, how="left", indicator=True)
    only_b = only_b[only_b["_merge"] == "left_only"].drop(columns="_merge")
    only_b = only_b.rename(columns={c: f"{c}_b" for c in SIDE}).reindex(columns=both.columns)
    table = pd.concat([part for part in (both, only_b) if not part.empty] or [both], ignore_index=True)
    table["status"] = [status(x, y) for x, y in zip(table["verdict_a"], table["verdict_b"])]
    return table[COLUMNS]


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """How many findings of a `compare` table have each status: columns status and count, every status listed."""
    if not isinstance(table, pd.DataFrame) or "status" not in table.columns:
        raise ValueError("summary needs the table compare() returns (a DataFrame with a 'status' column)")
    unknown = sorted(set(table["status"]) - set(STATUSES))
    if unknown:
        raise ValueError(f"unknown status {unknown[0]!r}; statuses: {', '.join(STATUSES)}")
    counts = table["status"].value_counts()
    return pd.DataFrame({"status": list(STATUSES), "count": [int(counts.get(s, 0)) for s in STATUSES]})
