"""Progress bars: widgets only in a live Jupyter front end, none in a headless kernel, text elsewhere."""

import pytest
from tqdm import tqdm as text_tqdm
from tqdm.notebook import tqdm as notebook_tqdm

from oneshot_lab.util import progress


@pytest.fixture()
def in_kernel(monkeypatch):
    monkeypatch.setattr(progress, "_in_notebook_kernel", lambda: True)


def test_interactive_kernel_gets_a_widget(in_kernel, monkeypatch, capsys):
    from ipywidgets import FloatProgress

    monkeypatch.delenv(progress.HEADLESS_ENV, raising=False)
    with progress.bar(total=3, desc="levels") as bar:
        assert isinstance(bar, notebook_tqdm) and not bar.disable and not bar.leave  # no finished bar left behind
        gauge = [w for w in bar.container.children if isinstance(w, FloatProgress)]
        bar.update(2)
        bar.refresh()
        assert len(gauge) == 1 and (gauge[0].value, gauge[0].max) == (2, 3)  # a widget that follows the count
        assert "levels" in bar.container.children[0].value
    assert "2/3" not in capsys.readouterr().err  # nothing drawn as text on stderr


def test_headless_kernel_gets_no_bar(in_kernel, monkeypatch, capsys):
    monkeypatch.setenv(progress.HEADLESS_ENV, "1")
    with progress.bar(total=3) as bar:
        assert not isinstance(bar, notebook_tqdm) and bar.disable
        bar.update(3)
    assert capsys.readouterr() == ("", "")  # nothing saved into the notebook


def test_terminal_gets_a_text_bar(monkeypatch, capsys):
    monkeypatch.setattr(progress, "_in_notebook_kernel", lambda: False)
    monkeypatch.setenv(progress.HEADLESS_ENV, "1")
    with progress.bar(total=3, desc="levels") as bar:
        assert isinstance(bar, text_tqdm) and not isinstance(bar, notebook_tqdm) and not bar.disable
        bar.update(2)
        bar.refresh()
        out, err = capsys.readouterr()
    assert out == "" and "levels" in err and "2/3" in err  # drawn as text on stderr, never on stdout


def test_headless_flag_values(monkeypatch):
    for value, expected in (("", False), ("0", False), ("false", False), ("1", True), ("yes", True)):
        monkeypatch.setenv(progress.HEADLESS_ENV, value)
        assert progress.headless() is expected
