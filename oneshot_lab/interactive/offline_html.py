"""Executed notebooks as self-contained HTML pages that open with no network and run no script: no CDN scripts
(require.js, MathJax, Mermaid, the widget manager), outputs and markdown sanitised by bleach, remote references
removed and named in a warning, widget state dropped with a static note in each widget's place, images embedded."""

from __future__ import annotations

import copy
import html
import os
import re
import warnings
from html.parser import HTMLParser
from pathlib import Path
from typing import Iterable

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
WIDGET_NOTE = "[interactive widget: open the notebook in JupyterLab to use it]"
# The lab template with every block that loads a script from the network emptied; Mermaid source shown as text.
TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{% block jupyter_widgets %}{% endblock jupyter_widgets %}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{% block data_mermaid scoped -%}
<pre>{{ output.data['text/vnd.mermaid'] | escape_html }}</pre>
{%- endblock data_mermaid %}
"""
# What sanitised HTML may hold: text, tables, lists, headings, links, images and inline styles; nothing that runs,
# loads (frames, media, objects, forms, style sheets) or restyles the page. <style> is admitted only to be dropped
# whole by `DropStyleElements` (pandas puts one before every table), so its CSS never shows up as text.
TAGS = frozenset({
    "a", "abbr", "acronym", "b", "blockquote", "br", "caption", "center", "cite", "code", "col", "colgroup", "dd",
    "del", "details", "dfn", "div", "dl", "dt", "em", "figcaption", "figure", "h1", "h2", "h3", "h4", "h5", "h6",
    "hr", "i", "img", "input", "ins", "kbd", "li", "mark", "ol", "p", "pre", "q", "s", "samp", "small", "span",
    "strike", "strong", "style", "sub", "summary", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr",
    "tt", "u", "ul", "var"})
ATTRIBUTES = {
    "*": {"class", "id", "title", "lang", "dir", "style", "align", "valign"},
    "a": {"href", "name"}, "img": {"src", "alt", "width", "height"}, "input": {"type", "checked", "disabled"},
    "table": {"border", "cellpadding", "cellspacing"}, "th": {"colspan", "rowspan", "scope"},
    "td": {"colspan", "rowspan"}, "col": {"span"}, "colgroup": {"span"}, "ol": {"start", "type", "reversed"},
    "li": {"value"}, "details": {"open"}}
# Bleach's CSS properties less `cursor` (its value can be an image from the network); no SVG properties.
CSS_PROPERTIES = frozenset({
    "azimuth", "background-color", "border-bottom-color", "border-collapse", "border-color", "border-left-color",
    "border-right-color", "border-top-color", "clear", "color", "direction", "display", "elevation", "float",
    "font", "font-family", "font-size", "font-style", "font-variant", "font-weight", "height", "letter-spacing",
    "line-height", "overflow", "text-align", "text-decoration", "text-indent", "unicode-bidi", "vertical-align",
    "white-space", "width"})
# Attributes through which a page loads something (a link's href is followed only when clicked).
LOADING = frozenset({"src", "srcset", "imagesrcset", "data", "poster", "background", "href", "xlink:href",
                     "lowsrc", "dynsrc", "codebase", "archive", "action", "formaction", "manifest", "ping"})
URL_FUNCTIONS = frozenset({"url", "src", "image", "image-set", "-webkit-image-set", "cross-fade"})
SCHEME = re.compile(r"^[a-z][a-z0-9+.\-]*:")
LOCAL_SCHEMES = ("data:", "file:///", "about:", "blob:", "javascript:", "mailto:")  # nothing fetched from a host
UNSEEN = re.compile(r"[`\x00-\x20\x7f-\xa0\s]+")  # what browsers ignore inside a URL


def without_widgets(nb):
    """A copy of notebook `nb` with no widget state or views (an output that was only a widget becomes a note) and
    no output file names, so every image is shown from its embedded data."""
    nb = copy.deepcopy(nb)
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            output.get("metadata", {}).pop("filenames", None)
            data = output.get("data", {})
            if WIDGET_MIME in data:
                del data[WIDGET_MIME]
                if set(data) <= {"text/plain"}:
                    data["text/plain"] = WIDGET_NOTE
    return nb


def is_remote(address: str) -> bool:
    """Whether `address` is on a host: //host, or a scheme other than data:, file:///, about:, ... (https:, ftp:)."""
    address = UNSEEN.sub("", address).lower().replace("\\", "/")
    return address.startswith("//") or (bool(SCHEME.match(address)) and not address.startswith(LOCAL_SCHEMES))


def css_addresses(css: str) -> list[str]:
    """Every address CSS text (a style attribute or a style sheet) would load: url(), image-set(), @import."""
    import tinycss2

    return _css_addresses(tinycss2.parse_component_value_list(css, skip_comments=True))


def _css_addresses(tokens: Iterable, in_url: bool = False) -> list[str]:
    """The addresses in CSS `tokens`, depth first; `in_url`: inside url(), image-set() and the like."""
    found, after_import = [], False
    for token in tokens:
        if token.type == "url" or (token.type == "string" and (in_url or after_import)):
            found.append(token.value)
        inner = getattr(token, "arguments", None) or getattr(token, "content", None)
        if inner:
            found += _css_addresses(inner, in_url or (token.type == "function" and token.lower_name in URL_FUNCTIONS))
        if token.type != "whitespace":
            after_import = token.type == "at-keyword" and token.lower_value == "import"
    return found


class _Addresses(HTMLParser):
    """Collects the addresses an HTML text would load: loading attributes, style attributes and style sheets."""

    def __init__(self) -> None:
        """An empty collection."""
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self.in_style = False

    def handle_starttag(self, tag: str, attrs: list) -> None:
        """Note the addresses in the attributes of `tag`."""
        self.in_style = tag == "style"
        for name, value in attrs:
            if value and name == "style":
                self.found += css_addresses(value)
            elif value and name in LOADING and not (name == "href" and tag in ("a", "area")):
                srcset = name.endswith("srcset")
                self.found += [part.split()[0] for part in value.split(",") if part.strip()] if srcset else [value]

    def handle_endtag(self, tag: str) -> None:
        """Leave a style sheet."""
        self.in_style = False

    def handle_data(self, data: str) -> None:
        """Note the addresses in a style sheet."""
        if self.in_style:
            self.found += css_addresses(data)


def external_resources(page: str) -> list[str]:
    """Addresses on the network that HTML `page` would load (scripts, style sheets, images, media, frames, objects,
    CSS url() and @import), in order of appearance."""
    parser = _Addresses()
    parser.feed(str(page))
    parser.close()
    return [address.strip() for address in parser.found if is_remote(address)]


def _attribute_allowed(tag: str, name: str, value: str) -> bool:
    """Whether attribute `name` of `tag` may stay: listed; an image only as data: or beside the page (no other
    data: address); an input only as a checkbox (markdown task lists)."""
    if name not in ATTRIBUTES["*"] and name not in ATTRIBUTES.get(tag, ()):
        return False
    address = UNSEEN.sub("", html.unescape(value)).lower().replace("\\", "/")  # as the browser reads it: &#104;ttps
    if tag == "img" and name == "src":
        return address.startswith("data:image/") or not (SCHEME.match(address) or address.startswith("//"))
    if name == "href":
        return not address.startswith("data:")
    return not (tag == "input" and name == "type" and address != "checkbox")


def cleaner():
    """A new bleach Cleaner for `sanitise` (a Cleaner is not thread-safe; bleach is imported on first use)."""
    import bleach
    import tinycss2
    from bleach.css_sanitizer import CSSSanitizer
    from bleach.html5lib_shim import Filter

    class InlineCSS(CSSSanitizer):
        """Bleach's CSS sanitiser that also drops every declaration that would load an address."""

        def sanitize_css(self, style: str) -> str:
            """`style` with only listed properties and nothing loaded."""
            declarations = tinycss2.parse_declaration_list(style, skip_comments=True, skip_whitespace=True)
            kept = [d for d in declarations if d.type == "declaration" and not _css_addresses(d.value)]
            return super().sanitize_css("; ".join(d.serialize() for d in kept))

    class DropStyleElements(Filter):
        """Leaves out every <style> element with its contents."""

        def __iter__(self):
            """The tokens outside <style> elements."""
            inside = False
            for token in Filter.__iter__(self):
                if token.get("name") == "style" and token["type"] in ("StartTag", "EndTag", "EmptyTag"):
                    inside = token["type"] == "StartTag"
                elif not inside:
                    yield token

    return bleach.Cleaner(tags=TAGS, attributes=_attribute_allowed, protocols={"http", "https", "mailto", "data"},
                          strip=False, strip_comments=True, filters=[DropStyleElements],
                          css_sanitizer=InlineCSS(allowed_css_properties=CSS_PROPERTIES, allowed_svg_properties=()))


def sanitise(fragment: str, with_cleaner=None) -> str:
    """HTML `fragment` (an output, a rendered markdown cell) made inert: other tags shown as text, no event handler,
    script address, style sheet or address loaded from a host (images as data: or beside the page only)."""
    return (with_cleaner or cleaner()).clean(str(fragment))


def render(nb, title: str = "", directory: str | os.PathLike = ".", removed: list[str] | None = None) -> str:
    """The HTML page of notebook `nb` (an nbformat node), self-contained and sanitised; markdown images are read from
    `directory`; the remote addresses taken out of its outputs and markdown are appended to `removed`."""
    import jinja2
    from nbconvert import HTMLExporter

    removed, one_cleaner = [] if removed is None else removed, cleaner()

    def clean(fragment) -> str:
        """`fragment` sanitised, its remote addresses noted."""
        removed.extend(external_resources(str(fragment)))
        return sanitise(fragment, one_cleaner)

    # sanitize_html switches the template to clean_html on markdown, HTML and raw output, and drops JavaScript.
    exporter = HTMLExporter(template_name="lab", template_file="offline.html.j2", embed_images=True,
                            sanitize_html=True, filters={"clean_html": clean},
                            extra_loaders=[jinja2.DictLoader({"offline.html.j2": TEMPLATE})])
    page, _ = exporter.from_notebook_node(without_widgets(nb), resources={"metadata": {"name": title, "path": str(directory)}})
    return page


def export(notebook: str | os.PathLike, output: str | os.PathLike | None = None) -> Path:
    """Write executed `notebook` as a self-contained HTML page (default: beside it, `.html`) and return its path."""
    import nbformat

    notebook = Path(notebook)
    if not notebook.is_file():
        raise FileNotFoundError(f"no notebook {str(notebook)!r} to export")
    nb = nbformat.read(notebook, as_version=4)
    try:
        nbformat.validate(nb)
    except nbformat.ValidationError as err:
        raise ValueError(f"{notebook.name} is not a valid notebook, not exported: "
                         f"{str(getattr(err, 'message', err)).splitlines()[0][:200]}") from None
    removed: list[str] = []
    page = render(nb, title=notebook.stem, directory=notebook.parent, removed=removed)
    if removed:
        removed = list(dict.fromkeys(removed))
        warnings.warn(f"{notebook.name}: {len(removed)} remote reference(s) in the notebook's own content removed "
                      f"(the page loads nothing from the network): {', '.join(removed)}", stacklevel=2)
    remote = external_resources(page)
    if remote:
        warnings.warn(f"{notebook.name}: the page still refers to the network: {', '.join(remote)}", stacklevel=2)
    output = Path(output) if output else notebook.with_suffix(".html")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(page, encoding="utf-8")
    return output
