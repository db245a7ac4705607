"""Progress bars: widgets only in a live Jupyter front end, none in a headless kernel, text elsewhere."""

import pytest
from tqdm import tqdm as text_tqdm
from tqdm.notebook import tqdm as notebook_tqdm

from oneshot_lab.util import progress


@pytest.fixture()
def in_kernel(monkeypatch):
    monkeypatch.setattr(progress, "_in_notebook_kernel", lambda: True)


def test_interactive_kernel_gets_a_widget(in_kernel, monkeypatch):
    monkeypatch.delenv(progress.HEADLESS_ENV, raising=False)
    with progress.bar(total=3) as bar:
        assert isinstance(bar, notebook_tqdm)


def test_headless_kernel_gets_no_bar(in_kernel, monkeypatch):
    monkeypatch.setenv(progress.HEADLESS_ENV, "1")
    with progress.bar(total=3) as bar:
        assert not isinstance(bar, notebook_tqdm) and bar.disable


def test_terminal_gets_a_text_bar(monkeypatch):
    monkeypatch.setattr(progress, "_in_notebook_kernel", lambda: False)
    monkeypatch.setenv(progress.HEADLESS_ENV, "1")
    with progress.bar(total=3) as bar:
        assert isinstance(bar, text_tqdm) and not isinstance(bar, notebook_tqdm)


def test_headless_flag_values(monkeypatch):
    for value, expected in (("", False), ("0", False), ("false", False), ("1", True), ("yes", True)):
        monkeypatch.setenv(progress.HEADLESS_ENV, value)
        assert progress.headless() is expected
