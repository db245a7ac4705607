"""The oneshot-lab command: parameters, validation before a kernel starts, one headless run."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from oneshot_lab import cli, commands

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "pandas", "seaborn", "papermill")


def test_params_lists_types_defaults_and_help(capsys):
    assert cli.main(["params", "01"]) == 0
    out = capsys.readouterr().out
    assert "sparsities: list = [0.5, 0.7, 0.8, 0.9, 0.95, 0.98]" in out and "# " in out and "smoke: bool" in out


@pytest.mark.parametrize("args,match", [
    (["run", "01", "-p", "sparsity_typo", "0.5"], "unknown parameter(s) 'sparsity_typo'"),
    (["run", "01", "-p", "iterations", "many"], "parameter 'iterations' of 01_magnitude_pruning.ipynb must be int"),
    (["run", "01", "-p", "smoke", "1"], "must be bool"),
    (["run", "99"], "no notebook '99'; known notebooks: 01_magnitude_pruning.ipynb"),
    (["params", "nope.ipynb"], "no notebook 'nope.ipynb'"),
])
def test_bad_input_is_rejected_before_any_kernel(args, match, capsys, monkeypatch):
    monkeypatch.setattr("papermill.execute_notebook", lambda *a, **k: pytest.fail("a kernel was started"))
    assert cli.main(args) == 2
    assert match in capsys.readouterr().err


def test_values_are_read_as_yaml_1_2_json_like_data():
    assert commands.parse_value("0.9") == 0.9 and commands.parse_value("[0.5, 0.9]") == [0.5, 0.9]
    assert commands.parse_value("true") is True and commands.parse_value("mnist1d") == "mnist1d"
    assert commands.parse_value("1e-3") == 0.001 and commands.parse_value("10") == 10 and commands.parse_value("null") is None
    for text in ("010", "0o17", "0x1F", "yes", "off", "2024-01-01", ".inf", ".nan", "[0.5, 0.9"):
        assert commands.parse_value(text) == text  # text, not octal, booleans, dates or infinities
    with pytest.raises(ValueError, match="duplicate key 'a'"):
        commands.parse_value("{a: 1, a: 2}")


def test_debug_shows_the_traceback_and_internal_errors_are_one_line(capsys, monkeypatch):
    assert cli.main(["--debug", "run", "99"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("oneshot-lab: error: no notebook '99'")

    def bug(*_a, **_k):
        raise KeyError("oops")
    monkeypatch.setattr(commands.notebooks, "declared_parameters", bug)
    assert cli.main(["params", "01"]) == 70
    err = capsys.readouterr().err
    assert err.strip() == "oneshot-lab: internal error: KeyError: 'oops' (run again with --debug for the traceback)"


def test_exit_codes_are_documented():
    text = cli.parser().format_help()
    assert "exit status: 0" in text and "2 bad input" in text and "--debug" in text


def test_python_dash_m_help():
    out = subprocess.run([sys.executable, "-m", "oneshot_lab", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "demo" in out.stdout and "params" in out.stdout


def test_sweep_and_report_bad_input_is_one_line_before_any_kernel(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("papermill.execute_notebook", lambda *a, **k: pytest.fail("a kernel was started"))
    (tmp_path / "s.yaml").write_text("notebook: 01\ngrid: {seed: [0, 1], epochz: [1]}\n")
    assert cli.main(["sweep", str(tmp_path / "s.yaml"), "--runs", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown parameter(s) 'epochz'" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "runs").exists()
    assert cli.main(["sweep", str(tmp_path / "nope.yaml")]) == 2
    assert "no sweep spec" in capsys.readouterr().err
    assert cli.main(["report", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_sweep_dry_run_lists_runs(capsys, tmp_path):
    assert cli.main(["sweep", "sweeps/compare_criteria.yaml", "--runs", str(tmp_path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.count("01_magnitude_pruning-") == 5 and "to run" in out and "5 runs in" in out
    assert cli.main(["sweep", "sweeps/compare_criteria.yaml", "--dry-run", "--max-runs", "2"]) == 2
    assert "more than the limit of 2" in capsys.readouterr().err


def test_help_explains_sweep_and_report():
    out = subprocess.run([sys.executable, "-m", "oneshot_lab", "sweep", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "grid:" in out.stdout and "--executor" in out.stdout and "skipped" in out.stdout
    assert "report" in cli.parser().format_help()


def test_unknown_parameter_is_one_line_and_exit_2_without_heavy_imports():
    """`oneshot-lab run 01 -p no_such_param 1`: exit 2, the bad name and the valid ones, no torch/pandas/papermill."""
    t0 = time.monotonic()
    out = subprocess.run([str(Path(sys.executable).parent / "oneshot-lab"), "run", "01", "-p", "no_such_param", "1"],
                         capture_output=True, text=True, cwd=ROOT)
    print(f"oneshot-lab run 01 -p no_such_param 1: rejected in {time.monotonic() - t0:.2f}s")
    err = out.stderr.strip()
    assert out.returncode == 2 and len(err.splitlines()) == 1 and out.stdout == ""
    assert "unknown parameter(s) 'no_such_param'" in err and "valid parameters: dataset, " in err and "smoke" in err
    code = ("import json, sys; from oneshot_lab import cli; rc = cli.main(sys.argv[1:]); "
            f"print(json.dumps([rc, [m for m in {HEAVY!r} if m in sys.modules]]))")
    for args in (["run", "01", "-p", "no_such_param", "1"], ["params", "04"], ["sweep", "nope.yaml"]):
        probe = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT)
        rc, heavy = json.loads(probe.stdout.strip().splitlines()[-1])
        assert heavy == [], f"oneshot-lab {' '.join(args)} imported {heavy}"
        assert rc == (0 if args[0] == "params" else 2)


def test_an_unknown_method_is_refused_before_a_kernel_starts(tmp_path):
    for args, message in (([ "01", "-p", "methods", '["lamp/global", "magnitude/global"]'], "unknown method 'lamp' in"),
                          (["03", "-p", "criterion", "lamp"], "parameter 'criterion' of 03_lottery_ticket_rewinding")):
        out = subprocess.run([str(Path(sys.executable).parent / "oneshot-lab"), "run", *args, "--out",
                              str(tmp_path / "x")], capture_output=True, text=True, cwd=ROOT)
        assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1 and message in out.stderr
        assert "ol.register" in out.stderr and not (tmp_path / "x").exists()


def test_cache_info_and_clear(tmp_path, monkeypatch, capsys):
    """Issue 24: `cache info` shows the directory, entries, size and cap; `cache clear` deletes the entries and
    temporary files of the cache, nothing else in its directory."""
    from oneshot_lab.training import fit_store

    monkeypatch.setenv(fit_store.ENV, str(tmp_path))
    monkeypatch.setenv(fit_store.ENV_MAX, "500MB")
    (tmp_path / f"{'a' * 64}.pt").write_bytes(b"x" * 1500)
    (tmp_path / f".{'a' * 64}.{'b' * 16}.partial").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("mine")
    assert cli.main(["cache", "info"]) == 0
    out = capsys.readouterr().out
    assert f"directory: {tmp_path}\nentries: 1\nsize: 1.5 kB\ncap: 500.0 MB (ONESHOT_LAB_CACHE_MAX)" in out
    assert cli.main(["cache", "clear"]) == 0
    assert f"deleted 1 entries (1.5 kB) from {tmp_path}" in capsys.readouterr().out
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
    monkeypatch.setenv(fit_store.ENV, "off")
    assert cli.main(["cache", "clear"]) == 0 and "the fit cache is off" in capsys.readouterr().out


@pytest.mark.parametrize("name,value,args,match", [
    ("ONESHOT_LAB_CACHE", "yes", ["run", "01"], "ONESHOT_LAB_CACHE='yes' looks like a switch"),
    ("ONESHOT_LAB_CACHE", "on", ["cache", "info"], "one of off, no, false, 0, none, disable, disabled"),
    ("ONESHOT_LAB_CACHE_MAX", "lots", ["sweep", "sweeps/compare_criteria.yaml"], "ONESHOT_LAB_CACHE_MAX='lots'"),
])
def test_bad_cache_settings_are_exit_2_before_any_kernel(name, value, args, match, monkeypatch, capsys):
    """Issue 24: ONESHOT_LAB_CACHE=no made a directory called 'no'; switch-like words that do not mean off, and a
    bad size cap, are one line and exit 2 before any kernel."""
    monkeypatch.setenv(name, value)
    monkeypatch.setattr("papermill.execute_notebook", lambda *a, **k: pytest.fail("a kernel was started"))
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert match in err and err.count("\n") == 1
