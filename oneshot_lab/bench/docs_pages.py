"""The documentation site's generated pages: the command-line and API references, and links re-pointed.

Written at build time, so they never go stale: the command-line reference from an argument parser's `--help`, the
API reference from the package's docstrings, and markdown links rewritten from the repository's layout to the site's."""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import posixpath
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Mapping

import oneshot_lab

HELP_COLUMNS = "88"  # the width `--help` is formatted to on the page, whatever the terminal building it
API_LAYERS = ("util", "core", "training", "pruning", "studies", "analysis", "records", "runner", "interactive")
LINK = re.compile(r"(?P<bang>!?)\[(?P<label>[^\]\n]*)\]\((?P<target>[^)\s]+)\)")
FENCE = re.compile(r"^\s*(```|~~~)")
CODE_SPAN = re.compile(r"(`[^`]+`)")
PLAIN_MARKUP = re.compile(r"([\\|*_])")  # characters reStructuredText would read as markup in plain prose
REMOTE = re.compile(r"^([a-z][a-z0-9+.\-]*:|//|#)", re.I)  # an address with a scheme, or an anchor on the same page


def write_if_changed(path: Path, text: str) -> None:
    """Write `text` to `path` unless it holds exactly that (so Sphinx re-reads only what changed)."""
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


@contextmanager
def help_width() -> Iterator[None]:
    """Format argparse help at `HELP_COLUMNS` columns inside the block."""
    before = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = HELP_COLUMNS
    try:
        yield
    finally:
        os.environ.pop("COLUMNS") if before is None else os.environ.__setitem__("COLUMNS", before)


def fenced(text: str) -> str:
    """`text` as a literal block of MyST markdown."""
    return f"````text\n{text.rstrip()}\n````\n"


def subcommands(top: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser, str]]:
    """(name, parser, one-line help) of every subcommand of `top`, in the order `--help` lists them."""
    out = []
    for action in top._actions:  # argparse has no public way to list subcommands; sphinx-argparse reads these too
        if isinstance(action.choices, dict):
            summaries = {choice.dest: choice.help or "" for choice in getattr(action, "_choices_actions", [])}
            out += [(name, sub, summaries.get(name, "")) for name, sub in action.choices.items()]
    return out


def cli_reference(top: argparse.ArgumentParser, delegated: Mapping[str, argparse.ArgumentParser] = {}) -> str:
    """The command-line reference (MyST markdown): the command's `--help`, then every subcommand's, as printed;
    `delegated` names subcommands whose options another parser reads."""
    with help_width():
        lines = [f"# Command line: `{top.prog}`", "",
                 f"Generated when the site is built from the argument parser of `{top.prog}` "
                 "(`oneshot_lab/cli.py`): what `--help` prints.", "", fenced(top.format_help())]
        for name, sub, summary in subcommands(top):
            lines += [f"## `{top.prog} {name}`", "", summary, "", fenced(delegated.get(name, sub).format_help())]
    return "\n".join(lines)


def layer_modules(layer: str) -> list[str]:
    """The public modules of subpackage `layer` (its package first), in name order."""
    package = importlib.import_module(f"oneshot_lab.{layer}")
    names = [info.name for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}.")]
    return [package.__name__] + sorted(n for n in names if not any(p.startswith("_") for p in n.split(".")))


def plain_docstring(lines: list[str]) -> None:
    """Escape, in place, what reStructuredText would misread in the lab's plain-text docstrings (`|w|` as a
    substitution, `**options` as emphasis, `name_` as a link), leaving `code` spans as they are."""
    for i, line in enumerate(lines):
        parts = CODE_SPAN.split(line)
        lines[i] = "".join(p if k % 2 else PLAIN_MARKUP.sub(r"\\\1", p) for k, p in enumerate(parts))


def rst(directive: str, *options: str) -> str:
    """An autodoc `directive` with `options` in MyST markdown (in eval-rst: autodoc writes reStructuredText)."""
    return "\n".join(["```{eval-rst}", directive, *(f"   {o}" for o in options), "```", ""])


def automodule(name: str) -> str:
    """A section documenting module `name` and its public members from their docstrings."""
    return f"## `{name}`\n\n{rst(f'.. automodule:: {name}', ':members:')}"


def top_level_entry(name: str) -> str:
    """The autodoc directive of `oneshot_lab.<name>` (a class, a function or a value), or a line for a module alias."""
    obj = getattr(oneshot_lab, name)
    if isinstance(obj, type(oneshot_lab)):
        return f"- `ol.{name}` is the module `{obj.__name__}`\n"
    kind = "autoclass" if isinstance(obj, type) else "autofunction" if callable(obj) else "autodata"
    # no-index: cross-references (type hints, say) go to the one entry in the defining module's page
    return rst(f".. {kind}:: oneshot_lab.{name}", ":no-index:", *([":no-value:"] if kind == "autodata" else []))


def api_pages(layers: tuple[str, ...] = API_LAYERS) -> dict[str, str]:
    """The API reference as {page name: MyST markdown}: `api/index` (the names `import oneshot_lab as ol` exports and
    the layers) and one page per layer of `layers` with each public module's docstrings."""
    exported = [n for n in oneshot_lab.__all__
                if n not in oneshot_lab.LAYERS and n not in ("cli", "commands", "verdict_commands")]
    aliases = [n for n in exported if isinstance(getattr(oneshot_lab, n), type(oneshot_lab))]
    index = ["# API reference", "", oneshot_lab.__doc__.split("\n\n")[0], "",
             "Generated from the docstrings when the site is built. The names `import oneshot_lab as ol` exports:", "",
             *(top_level_entry(n) for n in exported if n not in aliases), "",
             "Modules under short names:", "", *(top_level_entry(n) for n in aliases), "",
             "```{toctree}\n:caption: Layers, each importing only those before it\n:maxdepth: 1\n",
             *layers, "```\n"]
    pages = {"api/index.md": "\n".join(index)}
    for layer in layers:
        modules = layer_modules(layer)
        first, *rest = modules
        pages[f"api/{layer}.md"] = "\n".join([f"# `{first}`", "", rst(f".. automodule:: {first}"),
                                           *(automodule(m) for m in rest)])
    return pages


def rewrite_links(text: str, origin: str, target_of: Callable[[str], str | None]) -> tuple[str, list[str]]:
    """Markdown `text` of repository file `origin` with every relative link and image pointed at its place on the site:
    `target_of(repository path)` is the site path of that file, or None when the site has no place for it (the link
    is then kept as its label alone). Code blocks are left as they are; also returns the links dropped."""
    here = posixpath.dirname(target_of(origin) or origin) or "."
    dropped: list[str] = []

    def replace(match: re.Match) -> str:
        """One link or image, re-pointed or reduced to its label."""
        address = match["target"]
        if REMOTE.match(address):
            return match[0]
        path, _, anchor = address.partition("#")
        site = target_of(posixpath.normpath(posixpath.join(posixpath.dirname(origin), path)))
        if site is None:
            dropped.append(address)
            return match["label"]
        return f"{match['bang']}[{match['label']}]({posixpath.relpath(site, here)}{'#' + anchor if anchor else ''})"

    out, in_code = [], False
    for line in text.splitlines(keepends=True):
        if FENCE.match(line):
            in_code = not in_code
        out.append(line if in_code or FENCE.match(line) else LINK.sub(replace, line))
    return "".join(out), dropped
