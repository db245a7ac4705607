"""Offline HTML reports: no script or style sheet from the network, widget state dropped with a static note in
its place, figures and tables kept, markdown images embedded, outputs and markdown sanitised (planted script, event
handlers and remote references made inert); `run --html` and `report --html`.
(The page opened in a real browser with the network off, planted script included: tests/test_browser.py.)"""

import base64
import io
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from matplotlib.figure import Figure

from oneshot_lab import cli, commands
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


def test_external_resources_finds_scripts_styles_images_media_objects_and_css():
    page = ('<script src="https://cdn.example/x.js"></script><link rel=stylesheet href=//cdn.example/s.css>'
            '<img src="data:image/png;base64,AA"><img src="http://example.org/a.png"><a href="https://keep.me">'
            '<img src="local.png" srcset="https://e.example/1.png 1x, local2.png 2x"><video src="https://e.example/v.mp4" '
            'poster="https://e.example/p.png"></video><object data="https://e.example/o.swf"></object>'
            '<div style="background: url(&quot;https://e.example/bg.png&quot;)"></div>'
            '<style>@import "https://e.example/i.css"; p { cursor: url(//e.example/c.cur), auto }</style>'
            '<img src="file:///tmp/local.png">')
    assert offline_html.external_resources(page) == [
        "https://cdn.example/x.js", "//cdn.example/s.css", "http://example.org/a.png", "https://e.example/1.png",
        "https://e.example/v.mp4", "https://e.example/p.png", "https://e.example/o.swf", "https://e.example/bg.png",
        "https://e.example/i.css", "//e.example/c.cur"]


def test_a_remote_image_in_the_notebooks_own_markdown_is_removed_and_named(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell('<img src="https://example.org/a.png">')])
    nbformat.write(nb, tmp_path / "remote.ipynb")
    with pytest.warns(UserWarning, match="remote.ipynb: 1 remote reference.* removed .*: https://example.org/a.png$"):
        offline_html.export(tmp_path / "remote.ipynb", tmp_path / "out" / "page.html")
    page = (tmp_path / "out" / "page.html").read_text()
    assert "example.org" not in page and "<img" in page


# What a user's string shown through Markdown() or HTML() can plant; `pwned` is set only if a script runs.
PLANTED = ('<script>window.pwned = 1</script><img src="x.png" onerror="window.pwned = 2">'
           '<img src="data:image/png;base64,AA" srcset="https://evil.example/s.png 2x">'
           '<video src="https://evil.example/v.mp4"></video><audio><source src="//evil.example/a.ogg"></audio>'
           '<div style="color: red; background-image: url(https://evil.example/bg.png)">styled</div>'
           '<object data="https://evil.example/o.swf"></object><iframe src="https://evil.example/f"></iframe>'
           '<a href="javascript:window.pwned = 3">a script link</a><a href="data:text/html,x">a data link</a>'
           '<svg onload="window.pwned = 4"><image href="https://evil.example/i.svg"/></svg>'
           '<style>@import url(https://evil.example/s.css); body { display: none }</style>'
           '<form action="https://evil.example/post"><input type="image" src="https://evil.example/b.png"></form>'
           '<details open ontoggle="window.pwned = 5"><summary>more</summary>kept</details>')
PLANTED_REMOTE = {"https://evil.example/s.png", "https://evil.example/v.mp4", "//evil.example/a.ogg",
                  "https://evil.example/bg.png", "https://evil.example/o.swf", "https://evil.example/f",
                  "https://evil.example/i.svg", "https://evil.example/s.css", "https://evil.example/post",
                  "https://evil.example/b.png"}


def planted_notebook(directory) -> Path:
    """A notebook as a run that displayed a user's string would leave: `PLANTED` in a markdown cell, in HTML and
    Markdown outputs, a raw HTML cell, Mermaid and JavaScript outputs; beside a figure, a table and TeX text."""
    table = pd.DataFrame({"sparsity": [0.5, 0.9], "test_accuracy": [0.81, 0.42]})
    cell = nbformat.v4.new_code_cell("show(user_text)", execution_count=1)
    cell.outputs = [
        nbformat.v4.new_output("display_data", {"text/html": PLANTED, "text/plain": "HTML"}),
        nbformat.v4.new_output("display_data", {"text/markdown": f"**the user's text:** {PLANTED}", "text/plain": "M"}),
        nbformat.v4.new_output("display_data", {"text/vnd.mermaid": "</pre><script>window.pwned = 6</script>",
                                                "text/plain": "Mermaid"}),
        nbformat.v4.new_output("display_data", {"application/javascript": "window.pwned = 7", "text/plain": "JS"}),
        nbformat.v4.new_output("display_data", {"image/png": base64.b64encode(figure_png()).decode(),
                                                "text/plain": "<Figure>"},
                               metadata={"filenames": {"image/png": "https://evil.example/figure.png"}}),
        nbformat.v4.new_output("execute_result", {"text/html": table._repr_html_(), "text/plain": "table"},
                               execution_count=1)]
    raw = nbformat.v4.new_raw_cell(PLANTED, metadata={"raw_mimetype": "text/html"})
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(f"# Report\n\n$x^2 < y$\n\n{PLANTED}"),
                                         cell, raw])
    nbformat.write(nb, directory / "planted.ipynb")
    return directory / "planted.ipynb"


class _Markup(HTMLParser):
    """Every element and attribute of a page, and the text outside style elements."""

    def __init__(self) -> None:
        super().__init__()
        self.tags, self.attributes, self.text, self.in_style = [], [], [], False

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attributes += [(tag, name, value or "") for name, value in attrs]
        self.in_style = tag == "style"

    def handle_endtag(self, tag):
        self.in_style = False

    def handle_data(self, data):
        if not self.in_style:
            self.text.append(data)


def test_planted_script_handlers_and_remote_references_are_inert_and_named(tmp_path):
    with pytest.warns(UserWarning, match="remote reference") as caught:
        page = offline_html.export(planted_notebook(tmp_path)).read_text()
    assert len(caught) == 1
    named = set(re.search(r"removed .*?: (.*)$", str(caught[0].message)).group(1).split(", "))
    assert named == PLANTED_REMOTE, named ^ PLANTED_REMOTE
    markup = _Markup()
    markup.feed(page)
    body_tags = set(markup.tags[markup.tags.index("body"):])
    assert not body_tags & {"script", "style", "iframe", "object", "embed", "video", "audio", "source", "svg",
                            "image", "form", "link", "base", "meta"}, body_tags
    assert not [a for a in markup.attributes if a[1].startswith("on")], "an event handler survived"
    assert not [a for a in markup.attributes if a[1] in ("href", "src") and
                re.match(r"\s*(javascript|data:text)", a[2], re.I)], "a script or data link survived"
    assert offline_html.external_resources(page) == [] and "evil.example/figure.png" not in page
    text = "".join(markup.text)
    assert "<script>window.pwned = 1</script>" in text, "planted markup is shown as text"
    assert "$x^2 < y$" in text and "kept" in text and "styled" in text  # TeX source and plain text stay
    assert ("div", "style", "color: red;") in markup.attributes  # an inline colour stays, its url() goes
    assert page.count('src="data:image/png;base64,') >= 2 and "<table" in page and "0.42" in page
    assert "vertical-align" not in text, "pandas' style element is shown as text"


def test_sanitise_keeps_what_the_lab_and_markdown_produce():
    kept = ('<h2 id="A">A<a class="anchor-link" href="#A">¶</a></h2><table border="1" class="dataframe"><thead>'
            '<tr style="text-align: right;"><th>a</th></tr></thead><tbody><tr><td>1</td></tr></tbody></table><ul>'
            '<li class="task-list-item"><input class="task-list-item-checkbox" type="checkbox" disabled>t</li></ul>'
            '<div class="highlight"><pre><span class="n">x</span></pre></div><a href="https://keep.me">l</a>'
            '<img src="data:image/png;base64,AA" alt="fig" width="10"><img src="figures/local.png">'
            '<details><summary>s</summary><b>level 1</b><span class="ol-weights" style="color: red;">0.9</span></details>')
    assert offline_html.sanitise(kept) == kept


@pytest.mark.parametrize("address", ["&#104;ttps://evil.example/a.png", "https&#58;//evil.example/b.png",
                                     "https&colon;//evil.example/c.png", " ht&#09;tps://evil.example/d.png",
                                     "h&#10;ttps://evil.example/e.png", "&#47;&#47;evil.example/f.png"])
def test_character_references_do_not_smuggle_a_remote_image_or_a_data_link(address):
    assert offline_html.sanitise(f'<img src="{address}" alt="x">') == '<img alt="x">'
    assert offline_html.sanitise('<a href="&#100;ata:text/html;base64,PHNjcmlwdD4=">d</a>') == "<a>d</a>"
    assert offline_html.sanitise('<a href="&#106;avascript:alert(1)">j</a>') == "<a>j</a>"


def test_an_invalid_notebook_is_refused_before_anything_is_written(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x", execution_count=1)])
    nb.cells[0].execution_count = "<img src=x onerror=alert(1)>"  # the template prints it unescaped
    (tmp_path / "bad.ipynb").write_text(json.dumps(nb))
    with pytest.raises(ValueError, match="bad.ipynb is not a valid notebook, not exported: .*"):
        offline_html.export(tmp_path / "bad.ipynb")
    assert not (tmp_path / "bad.html").exists()


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
    monkeypatch.setattr(commands, "execute", execute)
    assert cli.main(["report", str(tmp_path / "runs"), "--out", str(tmp_path / "report"), "--html"]) == 0
    page = tmp_path / "report" / "04_sweep_report.html"
    assert f"offline HTML: {page}" in capsys.readouterr().out
    assert "data:image/png;base64," in page.read_text()


def test_exporting_a_missing_notebook_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no notebook '.*nope.ipynb' to export"):
        offline_html.export(tmp_path / "nope.ipynb")
