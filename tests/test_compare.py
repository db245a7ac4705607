"""Comparing two runs' findings (agree, differ, sign flip, only in one), their machines, and `oneshot-lab compare`."""

import os

import pandas as pd
import pytest

from oneshot_lab import cli
from oneshot_lab.analysis import compare as cmp
from oneshot_lab.analysis import findings
from oneshot_lab.records import compared, writing
from oneshot_lab.util import machine

OLD = ["claim", "setting", "a", "b", "value", "n", "mean_difference", "ci_low", "ci_high", "agree", "verdict",
       "confidence"]  # the findings columns of the committed results/ before issue 20


def old_table(rows: list[tuple]) -> pd.DataFrame:
    """A findings table in the old column set from (claim, setting, mean, low, high, verdict)."""
    return pd.DataFrame([{"claim": c, "setting": s, "a": "x", "b": "y", "value": "test_accuracy", "n": 5,
                          "mean_difference": m, "ci_low": lo, "ci_high": hi, "agree": 3, "verdict": v,
                          "confidence": 0.95} for c, s, m, lo, hi, v in rows], columns=OLD)


A = old_table([("same", "s=1", 0.02, 0.01, 0.03, "supported"),
               ("weaker", "s=1", 0.02, 0.01, 0.03, "supported"),
               ("flip", "s=1", -0.006, -0.011, -0.002, "contradicted"),
               ("gone", "s=1", 0.0, -0.1, 0.1, "inconclusive")])
B = old_table([("new", "s=2", 0.1, 0.05, 0.15, "supported"),
               ("flip", "s=1", 0.034, 0.020, 0.049, "supported"),
               ("weaker", "s=1", 0.01, -0.01, 0.03, "inconclusive"),
               ("same", "s=1", 0.021, 0.011, 0.031, "supported")])


def test_every_status_and_a_flipped_sign():
    table = cmp.compare(A, B)
    assert list(table.columns) == cmp.COLUMNS
    assert list(zip(table.claim, table.status)) == [("same", "agree"), ("weaker", "differ"), ("flip", "sign flip"),
                                                    ("gone", "only in a"), ("new", "only in b")]
    flip = table.set_index("claim").loc["flip"]
    assert (flip.verdict_a, flip.verdict_b) == ("contradicted", "supported")
    assert (flip.mean_difference_a, flip.ci_low_b, flip.ci_high_b) == (-0.006, 0.020, 0.049)
    gone, new = table.set_index("claim").loc["gone"], table.set_index("claim").loc["new"]
    assert pd.isna(gone.verdict_b) and pd.isna(gone.mean_difference_b)
    assert pd.isna(new.verdict_a) and pd.isna(new.ci_high_a) and new.mean_difference_b == 0.1
    assert cmp.summary(table).set_index("status")["count"].to_dict() == {
        "agree": 1, "differ": 1, "sign flip": 1, "only in a": 1, "only in b": 1}
    assert cmp.summary(cmp.compare(B, A)).set_index("status")["count"].to_dict()["only in a"] == 1


def test_the_same_finding_needs_the_same_setting_and_arms():
    b = A.copy()
    b.loc[0, "setting"], b.loc[1, "a"] = "s=9", "z"
    assert cmp.summary(cmp.compare(A, b)).set_index("status")["count"].to_dict() == {
        "agree": 2, "differ": 0, "sign flip": 0, "only in a": 2, "only in b": 2}


def test_old_columns_against_new_columns():
    frame = pd.DataFrame([{"method": m, "sparsity": 0.5, "seed": s, "test_accuracy": 0.5 + 0.01 * s + (m == "x") * d}
                          for s, d in enumerate([0.02, 0.03, 0.025, 0.04, 0.01]) for m in ("x", "y")])
    new = findings.evaluate(frame, [findings.Claim(claim="same", a="x", b="y")])
    assert "p_adjusted" in new.columns and new.verdict.iloc[0] == "supported"
    old = old_table([("same", "sparsity=0.5", 0.025, 0.01, 0.04, "supported")])
    table = cmp.compare(old, new)
    assert list(table.status) == ["agree"] and table.mean_difference_b.iloc[0] == pytest.approx(0.025)
    assert list(cmp.compare(new, old).status) == ["agree"]


def test_bad_tables_are_refused():
    with pytest.raises(ValueError, match="findings_b has no column.*'verdict'"):
        cmp.compare(A, A.drop(columns="verdict"))
    with pytest.raises(ValueError, match="findings_a must be a findings table"):
        cmp.compare([], A)
    with pytest.raises(ValueError, match="holds the finding 'same' at 's=1'.*twice"):
        cmp.compare(pd.concat([A, A.iloc[:1]]), A)
    with pytest.raises(ValueError, match="summary needs"):
        cmp.summary(A)


def record(path, notebook: str | None, table: pd.DataFrame | None, **manifest) -> str:
    """A complete run record at `path` of `notebook` with `table` as its findings."""
    run = writing.start(path, {"seed": 0, "lr": 0.01})
    if table is not None:
        run.record("findings", table)
    run.finish()
    writing.update_manifest(path, **({"notebook": notebook} if notebook else {}), **manifest)
    return str(path)


def test_compare_runs_lines_up_two_records_and_their_machines(tmp_path):
    a = record(tmp_path / "a", "01_x", A)
    b = record(tmp_path / "b", "01_x", B, machine={**machine.machine(), "cpu_model": "Other CPU",
                                                   "cpu_flags": []})
    result = compared.compare_runs(a, b)
    assert result.notebook == "01_x" and list(result.table.status) == list(cmp.compare(A, B).status)
    assert result.machines[1]["cpu_model"] == "Other CPU" and result.machines[0] == machine.machine()
    differences = {what: (x, y) for what, x, y in result.differences()}
    assert differences["cpu_model"] == (machine.machine()["cpu_model"], "Other CPU")
    mine = machine.machine()["cpu_flags"]
    assert differences.get("cpu_flags") == (("only " + " ".join(mine), "only -") if mine else None)


@pytest.mark.parametrize("make,match", [
    (lambda t: (record(t / "a", "01_x", A), record(t / "b", "02_y", A)), "a record of 01_x, .* of 02_y: compare two runs of the same"),
    (lambda t: (record(t / "a", "01_x", A), record(t / "b", "01_x", None)), "has no findings.csv"),
    (lambda t: (record(t / "a", None, A), record(t / "b", "01_x", A)), "names no notebook"),
    (lambda t: (record(t / "a", "01_x", A), str(t)), "is not a run record"),
    (lambda t: (record(t / "a", "01_x", A), record(t / "b", "01_x", A, status="failed")), "not a complete record"),
])
def test_compare_runs_refuses_what_is_not_two_runs_of_one_notebook(tmp_path, make, match):
    with pytest.raises(ValueError, match=match):
        compared.compare_runs(*make(tmp_path))


def test_a_linked_findings_table_is_refused(tmp_path):
    a, b = record(tmp_path / "a", "01_x", A), record(tmp_path / "b", "01_x", None)
    os.symlink(tmp_path / "a" / "findings.csv", tmp_path / "b" / "findings.csv")
    with pytest.raises(ValueError, match="findings.csv is a symbolic link"):
        compared.compare_runs(a, b)


def test_the_command_prints_counts_rows_that_differ_and_machines(tmp_path, capsys):
    a = record(tmp_path / "a", "01_x", A)
    b = record(tmp_path / "b", "01_x", B, machine={**machine.machine(), "cpu_model": "Other CPU"})
    assert cli.main(["compare", a, b, "--csv", str(tmp_path / "out" / "table.csv")]) == 0
    out = capsys.readouterr().out
    assert "01_x: A" in out and "agree 1, differ 1, sign flip 1, only in a 1, only in b 1" in out
    assert "-0.006 [-0.011, -0.002] contradicted" in out and "+0.034 [+0.020, +0.049] supported" in out
    assert "gone" not in out and "same" not in out  # only rows that differ or flip without --all
    assert "cpu_model: A " in out and "| B Other CPU" in out
    written = pd.read_csv(tmp_path / "out" / "table.csv")
    pd.testing.assert_frame_equal(written, pd.read_csv(__import__("io").StringIO(
        cmp.compare(A, B).to_csv(index=False))))
    assert not list((tmp_path / "out").glob(".*tmp"))
    assert cli.main(["compare", a, a, "--all"]) == 0
    out = capsys.readouterr().out
    assert "agree 4, differ 0" in out and "gone" in out and "same machine" in out


@pytest.mark.parametrize("which,match", [("nofindings", "has no findings.csv"), ("other", "compare two runs"),
                                         ("missing", "no run record"), ("csvdir", "is a directory")])
def test_the_command_exits_2_on_bad_input(tmp_path, capsys, which, match):
    a = record(tmp_path / "a", "01_x", A)
    b = {"nofindings": lambda: record(tmp_path / "b", "01_x", None), "other": lambda: record(tmp_path / "b", "02", A),
         "missing": lambda: str(tmp_path / "nothing"), "csvdir": lambda: a}[which]()
    extra = ["--csv", str(tmp_path)] if which == "csvdir" else []
    assert cli.main(["compare", a, b, *extra]) == 2
    err = capsys.readouterr().err
    assert match in err and len(err.strip().splitlines()) == 1
