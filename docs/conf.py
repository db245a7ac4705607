"""Sphinx configuration of the lab's documentation site. `make docs` (python -m oneshot_lab.bench.docs_site) stages
this folder with the README, the executed notebooks and the generated pages into build/docs-src and builds it there:
offline, notebooks never executed, math as MathML, nothing loaded from the network."""

from pathlib import Path

import oneshot_lab
from oneshot_lab import cli
from oneshot_lab.bench import __main__ as bench_cli
from oneshot_lab.bench import docs_math, docs_pages

project = "oneshot_lab"
author = "the oneshot_lab authors"
copyright = "the oneshot_lab authors, MIT licence"
version = release = oneshot_lab.__version__

extensions = ["myst_nb", "sphinx.ext.autodoc", "oneshot_lab.bench.docs_math"]
exclude_patterns = ["overview.md"]  # the README, included by index.md
root_doc = "index"

html_theme = "furo"
html_title = "oneshot_lab"
html_math_renderer = docs_math.NAME  # MathML: no MathJax from a CDN
html_static_path = ["_static"]
html_css_files = ["site.css"]
html_copy_source = False
html_show_sourcelink = False
html_show_search_summary = False  # a summary is fetched from the page, which file:// refuses (CORS)

myst_enable_extensions = ["dollarmath"]
myst_update_mathjax = False  # no MathJax (see html_math_renderer)
myst_heading_anchors = 4  # links such as reference.md#records reach their heading
suppress_warnings = ["myst.header"]  # pages that skip a heading level (H1 to H3) read fine

nb_execution_mode = "off"  # pages show the records of `make demo`; the docs build runs nothing
nb_ipywidgets_js = {}  # no widget manager from a CDN (widgets are replaced by a note when staged)

default_role = "code"  # `name` in a docstring reads as code, as it does in the markdown pages
autodoc_typehints = "description"
autodoc_member_order = "bysource"

docs_pages.write_if_changed(Path(__file__).parent / "cli.md",
                            docs_pages.cli_reference(cli.parser(), {"bench": bench_cli.parser()}))


def setup(app) -> None:
    """Read the lab's docstrings as the plain text they are (see `docs_pages.plain_docstring`); load the theme's
    options before the saved environment is compared with them, so that a second build is incremental."""
    app.setup_extension("furo")
    app.connect("autodoc-process-docstring",
                lambda app, what, name, obj, options, lines: docs_pages.plain_docstring(lines))
