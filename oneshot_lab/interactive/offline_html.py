"""Executed notebooks as self-contained HTML pages that open with no network: no CDN scripts (require.js, MathJax,
Mermaid, the widget manager), widget state dropped with a static note in each widget's place, images embedded."""

from __future__ import annotations

import copy
import os
import re
import warnings
from pathlib import Path

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
WIDGET_NOTE = "[interactive widget: open the notebook in JupyterLab to use it]"
# The lab template with every block that loads a script from the network emptied.
TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{% block jupyter_widgets %}{% endblock jupyter_widgets %}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
"""
EXTERNAL = re.compile(r"""<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)\s*=\s*["']?((?:https?:)?//[^"'\s>]+)""",
                      re.IGNORECASE)


def without_widgets(nb):
    """A copy of notebook `nb` with no widget state or views; an output that was only a widget becomes a note."""
    nb = copy.deepcopy(nb)
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if WIDGET_MIME in data:
                del data[WIDGET_MIME]
                if set(data) <= {"text/plain"}:
                    data["text/plain"] = WIDGET_NOTE
    return nb


def render(nb, title: str = "", directory: str | os.PathLike = ".") -> str:
    """The HTML page of notebook `nb` (an nbformat node), self-contained; markdown images are read from `directory`."""
    import jinja2
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab", template_file="offline.html.j2", embed_images=True,
                            extra_loaders=[jinja2.DictLoader({"offline.html.j2": TEMPLATE})])
    page, _ = exporter.from_notebook_node(without_widgets(nb), resources={"metadata": {"name": title, "path": str(directory)}})
    return page


def external_resources(page: str) -> list[str]:
    """Addresses on the network that `page` would load (scripts, style sheets, images, frames)."""
    return EXTERNAL.findall(page)


def export(notebook: str | os.PathLike, output: str | os.PathLike | None = None) -> Path:
    """Write executed `notebook` as a self-contained HTML page (default: beside it, `.html`) and return its path."""
    import nbformat

    notebook = Path(notebook)
    if not notebook.is_file():
        raise FileNotFoundError(f"no notebook {str(notebook)!r} to export")
    page = render(nbformat.read(notebook, as_version=4), title=notebook.stem, directory=notebook.parent)
    remote = external_resources(page)
    if remote:
        warnings.warn(f"{notebook.name}: the page still refers to the network (from the notebook's own "
                      f"content): {', '.join(remote)}", stacklevel=2)
    output = Path(output) if output else notebook.with_suffix(".html")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(page, encoding="utf-8")
    return output
