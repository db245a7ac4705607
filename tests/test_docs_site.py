"""The documentation site (`make docs`), built once into a tmp folder from a run folder holding one executed notebook
(beside a record planted as a symbolic link), then checked as a reader meets it: every notebook is a page, executed
or marked as not executed; every internal link and anchor resolves; nothing is loaded from the network; and, in
Debian's chromium with every request off file:// aborted, every page loads without a console error, every image
renders and search finds pages. Plus the pieces: links re-pointed, docstrings read as plain text, math as MathML."""

import base64
import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
import pandas as pd
import pytest

from oneshot_lab import cli
from oneshot_lab.bench import docs_math, docs_pages, docs_site
from oneshot_lab.interactive import offline_html
from oneshot_lab.runner import notebooks
from test_browser import browser, offline_context  # noqa: F401  (browser: the module-scoped Chromium fixture)
from conftest import built_once
from test_offline_html import figure_png

PLANTED = '<script>window.pwned = 1</script><b onmouseover="window.pwned = 2">kept</b>' \
          '<link rel="stylesheet" href="https://evil.example/s.css">'
LINKED_MARK = "PLANTED-BEHIND-A-LINK"
NOT_EXECUTED = "Not executed."
EXECUTED = "Shown as executed in"
LINKING = {("a", "href"), ("link", "href"), ("img", "src"), ("script", "src")}
# Every image of the page, loaded now (not lazily) and decoded, as [src, natural width].
IMAGE_WIDTHS = """async () => Promise.all([...document.images].map(async i => {
    i.loading = 'eager'; await i.decode().catch(() => null); return [i.getAttribute('src'), i.naturalWidth]; }))"""


@dataclass
class Site:
    html: Path
    stderr: str
    seconds: float


def executed_record(runs: Path, source: Path) -> None:
    """A complete smoke record of notebook `source` in `runs/<stem>/`, as `make demo --smoke` leaves it: the notebook
    with outputs (a figure, a table, a widget, planted HTML) and its manifest."""
    nb = nbformat.read(source, as_version=4)
    cell = next(c for c in nb.cells if c.cell_type == "code")
    table = pd.DataFrame({"sparsity": [0.5, 0.9], "test_accuracy": [0.81, 0.42]})
    view = {"version_major": 2, "version_minor": 0, "model_id": "abc"}
    cell.outputs = [
        nbformat.v4.new_output("display_data", {"image/png": base64.b64encode(figure_png()).decode(),
                                                "text/plain": "<Figure>"}),
        nbformat.v4.new_output("execute_result", {"text/html": table.to_html(), "text/plain": "t"}, execution_count=1),
        nbformat.v4.new_output("display_data", {offline_html.WIDGET_MIME: view, "text/plain": "IntSlider(value=3)"}),
        nbformat.v4.new_output("display_data", {"text/html": PLANTED, "text/plain": "HTML"}),
        nbformat.v4.new_output("display_data", {"application/javascript": "window.pwned = 3", "text/plain": "JS"})]
    record = runs / source.stem
    record.mkdir(parents=True)
    nbformat.write(nb, record / source.name)
    (record / "manifest.json").write_text(json.dumps({
        "status": "complete", "params": {"smoke": True}, "tables": [], "identity": notebooks.identity(source),
        "duration_s": 1.5, "finished": "2026-01-01T00:00:00+00:00"}))


def linked_record(runs: Path, source: Path, elsewhere: Path) -> None:
    """`runs/<stem>` as a symbolic link to a complete record elsewhere, its notebook carrying `LINKED_MARK`."""
    record = elsewhere / source.stem
    record.mkdir(parents=True)
    nb = nbformat.read(source, as_version=4)
    nb.cells.insert(0, nbformat.v4.new_markdown_cell(LINKED_MARK))
    nbformat.write(nb, record / source.name)
    (record / "manifest.json").write_text(json.dumps({"status": "complete", "params": {}, "tables": []}))
    (runs / source.stem).symlink_to(record, target_is_directory=True)


def build_site(root: Path) -> dict:
    """Build the site as `make docs` does into `root`, from runs holding notebook 01 executed and notebook 02 behind
    a link: {html, stderr, seconds}."""
    first, second = notebooks.notebooks()[:2]
    executed_record(root / "runs", first)
    linked_record(root / "runs", second, root / "elsewhere")
    t0 = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "oneshot_lab.bench.docs_site", "--out", str(root / "html"),
                           "--staging", str(root / "src"), "--runs", str(root / "runs"),
                           "--results", str(root / "no-results"),  # the others: shown as not executed
                           "--api-layers", "core", "pruning"],  # the pages checked below (all: 3x the build)
                          capture_output=True, text=True, timeout=400)
    seconds = time.monotonic() - t0
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1].endswith(f"open {root / 'html' / 'index.html'}")
    print(f"docs site built in {seconds:.1f}s")
    return {"html": str(root / "html"), "stderr": done.stderr, "seconds": seconds}


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Site:
    """The site, built once per test run (both xdist workers read the same build)."""
    built = built_once(tmp_path_factory, "docs-site", build_site)
    return Site(Path(built["html"]), built["stderr"], built["seconds"])


class Links(HTMLParser):
    """The ids of a page and the addresses it links to or loads (tag, attribute, address)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.addresses: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        for name, value in attrs:
            if name in ("id", "name") and value:
                self.ids.add(value)
            if value is not None and (tag, name) in LINKING:
                self.addresses.append((tag, value))


def parsed(page: Path) -> Links:
    links = Links()
    links.feed(page.read_text(encoding="utf-8"))
    return links


def words(page: Path) -> str:
    """The text of HTML `page` without its tags."""
    return re.sub(r"<[^>]+>", "", page.read_text(encoding="utf-8"))


def test_every_notebook_is_a_page_executed_or_marked_not_executed(site):
    first, second, *_ = sources = notebooks.notebooks()
    for source in sources:
        text = words(site.html / "notebooks" / f"{source.stem}.html")
        assert (EXECUTED in text) != (NOT_EXECUTED in text), source.stem
        warned = f"notebook {source.stem} has no complete executed copy" in site.stderr
        assert warned == (NOT_EXECUTED in text) and (not warned or "make demo" in text), source.stem
    page = (site.html / "notebooks" / f"{first.stem}.html").read_text(encoding="utf-8")
    assert EXECUTED in page and "smoke" in page and "0.42" in page and offline_html.WIDGET_NOTE in page
    assert "&lt;script&gt;window.pwned = 1" in page and "onmouseover" not in page and "window.pwned = 3" not in page
    assert LINKED_MARK not in (site.html / "notebooks" / f"{second.stem}.html").read_text(encoding="utf-8")
    assert f"{second.stem}: a symbolic link in the record, not followed" in site.stderr


def test_the_build_warns_of_nothing_but_missing_executed_copies(site):
    noise = [line for line in site.stderr.splitlines() if re.search(r"WARNING|ERROR|Traceback", line)
             and "misc.highlighting_failure" not in line]  # a README snippet the highlighter cannot lex still shows
    assert noise == []


def test_internal_links_and_anchors_resolve_and_nothing_loads_from_the_network(site):
    pages = sorted(site.html.rglob("*.html"))
    assert len(pages) >= 20 and {"index.html", "search.html", "cli.html", "api/index.html"} <= \
        {p.relative_to(site.html).as_posix() for p in pages}
    ids = {page: parsed(page).ids for page in pages}
    broken, checked = [], 0
    for page in pages:
        for tag, address in parsed(page).addresses:
            parts = urlsplit(address)
            if parts.scheme or parts.netloc:
                continue  # a link out of the site (followed only when clicked; loads are checked below)
            target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
            checked += 1
            if not target.is_file():
                broken.append(f"{page.relative_to(site.html)}: {address}")
            elif parts.fragment and target.suffix == ".html" and parts.fragment not in ids[target]:
                broken.append(f"{page.relative_to(site.html)}: {address} (no such anchor)")
    assert broken == [] and checked > 500
    assert docs_site.offline_problems(site.html) == []
    assert "reference.html#records" in (site.html / "index.html").read_text(encoding="utf-8")  # README links re-pointed


def test_the_reference_pages_are_generated_from_the_parser_and_the_docstrings(site):
    page = (site.html / "cli.html").read_text(encoding="utf-8")
    for name, parser, _ in docs_pages.subcommands(cli.parser()):
        assert f"oneshot-lab {name}" in page and (name == "bench" or parser.format_usage().split()[1] in page)
    assert "--max-runs" in page and "--quick" in page  # the sweep's options; bench's, from its own parser
    api = (site.html / "api" / "core.html").read_text(encoding="utf-8")
    assert 'id="oneshot_lab.core.masks.Masks"' in api and "A mapping from parameter name to a bool tensor" in api
    assert "Undefined substitution" not in (site.html / "api" / "pruning.html").read_text(encoding="utf-8")
    assert "<math" in (site.html / "notebooks" / f"{notebooks.notebooks()[1].stem}.html").read_text(encoding="utf-8")


def test_pages_load_images_render_and_search_finds_pages_with_the_network_off(site, browser):
    context, requested = offline_context(browser)
    errors: list[str] = []
    page = context.new_page()
    page.on("console", lambda message: message.type == "error" and errors.append(f"{page.url}: {message.text}"))
    page.on("pageerror", lambda error: errors.append(f"{page.url}: {error}"))
    t0, images = time.monotonic(), {}
    for path in sorted(site.html.rglob("*.html")):
        page.goto(path.as_uri())
        assert page.title().strip(), path
        sizes = page.evaluate(IMAGE_WIDTHS)
        assert all(width > 0 for _, width in sizes), (path, sizes)
        images[path.relative_to(site.html).as_posix()] = len(sizes)
    assert page.evaluate("window.pwned") is None
    page.goto((site.html / "search.html").as_uri() + "?q=prune")
    page.wait_for_selector("#search-results li", timeout=15_000)
    hits = page.locator("#search-results li").count()
    assert hits > 0 and errors == [] and requested == [], (hits, errors, requested)
    assert images[f"notebooks/{notebooks.notebooks()[0].stem}.html"] >= 1  # the executed copy's figure
    print(f"browser: {len(images)} pages, {sum(images.values())} images, {hits} search hits, "
          f"{time.monotonic() - t0:.1f}s (build {site.seconds:.1f}s)")
    context.close()


def test_links_are_re_pointed_from_the_repository_to_the_site():
    where = {"README.md": "index.md", "docs/reference.md": "reference.md", "docs/fig.png": "fig.png",
             "results/x.png": "assets/results/x.png"}.get
    text = ("[semantics](docs/reference.md#records) ![f](docs/fig.png) ![g](results/x.png) [gone](constraints.txt)\n"
            "[web](https://example.org) [here](#top)\n```\n[code](docs/reference.md)\n```\n")
    out, dropped = docs_pages.rewrite_links(text, "README.md", where)
    assert out == ("[semantics](reference.md#records) ![f](fig.png) ![g](assets/results/x.png) gone\n"
                   "[web](https://example.org) [here](#top)\n```\n[code](docs/reference.md)\n```\n")
    assert dropped == ["constraints.txt"]
    back, _ = docs_pages.rewrite_links("[README](../README.md#tests)", "docs/reference.md", where)
    assert back == "[README](index.md#tests)"


def test_docstrings_are_read_as_plain_text_and_math_as_mathml():
    lines = ["|w| and **options of name_ or `a|b*c_`"]
    docs_pages.plain_docstring(lines)
    assert lines == [r"\|w\| and \*\*options of name\_ or `a|b*c_`"]
    half = docs_math.mathml(r"\tfrac12 h")
    assert re.search(r"<mfrac[^>]*>\s*<mn>1</mn>\s*<mn>2</mn>\s*</mfrac>", half), half


def test_a_staging_folder_that_the_build_did_not_make_is_refused_before_any_work(tmp_path):
    (tmp_path / "mine.txt").write_text("a user's file")
    with pytest.raises(ValueError, match=r"--staging .* is not an empty folder or one that `make docs` staged"):
        docs_site.check_staging(tmp_path)
    assert docs_site.main(["--staging", str(tmp_path), "--out", str(tmp_path / "html")]) == 2
    assert (tmp_path / "mine.txt").read_text() == "a user's file" and not (tmp_path / "html").exists()
