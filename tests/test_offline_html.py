"""Offline HTML reports: no script or style sheet from the network, widget state dropped with a static note in
its place, figures and tables kept, markdown images embedded; `run --html` and `report --html`.
(The page opened in a real browser with the network off: tests/test_browser.py.)"""

import base64
import io
import json
import re
import shutil
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from matplotlib.figure import Figure

from oneshot_lab import cli
from oneshot_lab.interactive import offline_html

WIDGET_STATE = {"application/vnd.jupyter.widget-state+json": {"version_major": 2, "version_minor": 0, "state": {
    "abc": {"model_name": "IntSliderModel", "model_module": "@jupyter-widgets/controls", "model_module_version": "2.0.0",
            "state": {"value": 3}}}}}


def figure_png() -> bytes:
    """A small matplotlib figure as PNG bytes."""
    figure = Figure(figsize=(2, 2))
    figure.subplots().plot([0, 1], [1, 0])
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def executed_notebook(directory):
    """A notebook as a headless run saves it: a figure, a table, a widget-only output, a widget with a fallback."""
    png = base64.b64encode(figure_png()).decode()
    (directory / "local.png").write_bytes(figure_png())
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["widgets"] = WIDGET_STATE
    cell = nbformat.v4.new_code_cell("explorer", execution_count=1)
    table = pd.DataFrame({"sparsity": [0.5, 0.9], "test_accuracy": [0.81, 0.42]})
    view = {"version_major": 2, "version_minor": 0, "model_id": "abc"}
    cell.outputs = [
        nbformat.v4.new_output("display_data", {"image/png": png, "text/plain": "<Figure>"}),
        nbformat.v4.new_output("execute_result", {"text/html": table.to_html(), "text/plain": table.to_string()},
                               execution_count=1),
        nbformat.v4.new_output("display_data", {offline_html.WIDGET_MIME: view, "text/plain": "IntSlider(value=3)"}),
        nbformat.v4.new_output("display_data", {offline_html.WIDGET_MIME: view, "image/png": png,
                                                "text/plain": "Image(...)"}),
    ]
    nb.cells = [nbformat.v4.new_markdown_cell("# A report\n\n![a local figure](local.png)\n\n$x^2$"), cell]
    path = directory / "executed.ipynb"
    nbformat.write(nb, path)
    return path


def test_the_page_loads_nothing_from_the_network_and_keeps_figures_and_tables(tmp_path):
    source = executed_notebook(tmp_path)
    page = offline_html.export(source).read_text()
    assert offline_html.external_resources(page) == []
    assert not re.search(r"<script[^>]*\bsrc=", page), "a script is loaded from a file or the network"
    for cdn in ("require.js", "mathjax", "mermaid", "html-manager", "unpkg", "jsdelivr", "cdnjs"):
        assert cdn not in page.lower(), cdn
    assert page.count('src="data:image/png;base64,') == 3  # the figure, the widget's own fallback, the markdown image
    assert "<table" in page and "0.42" in page
    assert offline_html.WIDGET_NOTE in page and "IntSlider(value=3)" not in page
    assert "widget-state" not in page and "widget-view" not in page
    assert json.loads(source.read_text())["metadata"]["widgets"] == WIDGET_STATE, "the notebook itself was changed"


def test_external_resources_finds_scripts_styles_images_and_frames():
    page = ('<script src="https://cdn.example/x.js"></script><link rel=stylesheet href=//cdn.example/s.css>'
            '<img src="data:image/png;base64,AA"><img src="http://example.org/a.png"><a href="https://keep.me">')
    assert offline_html.external_resources(page) == ["https://cdn.example/x.js", "//cdn.example/s.css",
                                                     "http://example.org/a.png"]


def test_a_remote_image_in_the_notebooks_own_markdown_is_warned_about(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell('<img src="https://example.org/a.png">')])
    nbformat.write(nb, tmp_path / "remote.ipynb")
    with pytest.warns(UserWarning, match="remote.ipynb: the page still refers to the network.*example.org/a.png"):
        offline_html.export(tmp_path / "remote.ipynb", tmp_path / "out" / "page.html")
    assert (tmp_path / "out" / "page.html").is_file()


def test_run_html_writes_the_page_beside_the_executed_notebook(notebook_factory, tmp_path, capsys):
    source = notebook_factory(
        "plotting.ipynb", 'out_dir: str = "out"  # where the executed notebook goes',
        "import pandas as pd\nfrom IPython.display import Image, display\nfrom matplotlib.figure import Figure\n"
        "import io\nfig = Figure(figsize=(2, 2)); fig.subplots().bar(['a', 'b'], [1, 2])\n"
        "buf = io.BytesIO(); fig.savefig(buf, format='png'); display(Image(buf.getvalue()))",
        "pd.DataFrame({'kept': [3, 4]})")
    out = tmp_path / "run"
    assert cli.main(["run", str(source), "--out", str(out), "--html"]) == 0
    page = (out / "plotting.html").read_text()
    assert f"offline HTML: {out / 'plotting.html'}" in capsys.readouterr().out
    assert "data:image/png;base64," in page and "<table" in page and offline_html.external_resources(page) == []


def test_report_html_exports_the_report_notebook(tmp_path, monkeypatch, capsys):
    from test_gathered import write_runs

    executed = executed_notebook(tmp_path)
    write_runs(tmp_path / "runs", [0.02, 0.03])

    def execute(task, out, force, refresh):  # what a run of notebook 04 leaves: the executed notebook in its record
        assert refresh and not force  # its own earlier report is replaced, another run's record is not
        out.mkdir(parents=True)
        shutil.copy(executed, out / Path(task.notebook).name)
        return {"status": "done", "out_dir": str(out), "wall_s": 0.0}
    monkeypatch.setattr(cli, "_execute", execute)
    assert cli.main(["report", str(tmp_path / "runs"), "--out", str(tmp_path / "report"), "--html"]) == 0
    page = tmp_path / "report" / "04_sweep_report.html"
    assert f"offline HTML: {page}" in capsys.readouterr().out
    assert "data:image/png;base64," in page.read_text()


def test_exporting_a_missing_notebook_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no notebook '.*nope.ipynb' to export"):
        offline_html.export(tmp_path / "nope.ipynb")
