"""The oneshot-lab command: parameters, validation before a kernel starts, one headless run."""

import subprocess
import sys

import pytest

from oneshot_lab import cli, sweep


def test_params_lists_types_defaults_and_help(capsys):
    assert cli.main(["params", "01"]) == 0
    out = capsys.readouterr().out
    assert "sparsities: list = [0.5, 0.7, 0.8, 0.9, 0.95, 0.98]" in out and "# " in out and "smoke: bool" in out


@pytest.mark.parametrize("args,match", [
    (["run", "01", "-p", "sparsity_typo", "0.5"], "unknown parameter(s) 'sparsity_typo'"),
    (["run", "01", "-p", "epochs", "many"], "parameter 'epochs' of 01_magnitude_pruning.ipynb must be int"),
    (["run", "01", "-p", "smoke", "1"], "must be bool"),
    (["run", "99"], "no notebook '99'; known notebooks: 01_magnitude_pruning.ipynb"),
    (["params", "nope.ipynb"], "no notebook 'nope.ipynb'"),
])
def test_bad_input_is_rejected_before_any_kernel(args, match, capsys, monkeypatch):
    monkeypatch.setattr("papermill.execute_notebook", lambda *a, **k: pytest.fail("a kernel was started"))
    assert cli.main(args) == 2
    assert match in capsys.readouterr().err


def test_values_are_read_as_yaml():
    assert cli.parse_value("0.9") == 0.9 and cli.parse_value("[0.5, 0.9]") == [0.5, 0.9]
    assert cli.parse_value("true") is True and cli.parse_value("mnist1d") == "mnist1d"


def test_python_dash_m_help():
    out = subprocess.run([sys.executable, "-m", "oneshot_lab", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "demo" in out.stdout and "params" in out.stdout


def test_resolve_notebook_by_number_stem_and_path():
    first = sweep.notebooks()[0]
    assert sweep.resolve_notebook("01") == sweep.resolve_notebook(first.stem) == sweep.resolve_notebook(first)
