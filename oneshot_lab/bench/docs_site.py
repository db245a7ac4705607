"""The documentation site (`make docs`): the notebooks as executed, results, semantics, CLI and API, built offline.

`python -m oneshot_lab.bench.docs_site` stages docs/, the README, each notebook's executed copy from `make demo`
(never executed here) and the generated pages into build/docs-src, then builds them with Sphinx and MyST-NB into
build/docs/html, a site that opens from disk and loads nothing from the network."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from . import docs_pages
from ..interactive import offline_html
from ..records import integrity
from ..runner import notebooks

ROOT = Path(__file__).resolve().parents[2]
RUNS_ENV = "ONESHOT_LAB_DOCS_RUNS"  # where `make demo` wrote its records, if not runs/demo
RUNS, RESULTS, STAGING, OUT = "runs/demo", "results", "build/docs-src", "build/docs/html"
MARK = ".docs-staging"  # the file that marks a folder this build staged (and may clear)
IMAGES = frozenset({".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp"})
NOT_EXECUTED = """```{{warning}}
**Not executed.** This page shows the notebook's code without its outputs: no complete executed copy was found in
`{runs}` (what `make demo` writes) or in `results/{stem}/`. Run `make demo`, then `make docs`, to read it with its
figures and tables.
```"""
EXECUTED = "Shown as executed in {seconds} s, finished {finished}, by the run recorded in `{record}`."
SMOKE = """```{note}
A **smoke** run (`smoke=True`): every run shrunk to seconds, so its numbers are not the lab's results (those are
on the results page).
```"""
STALE = """```{{warning}}
Executed from an earlier version of this notebook's code (code hash {recorded}, now {current}): `make demo` runs it
again.
```"""


def warn(message: str) -> None:
    """Print one warning line of the docs build."""
    print(f"docs: warning: {' '.join(message.split())}", file=sys.stderr, flush=True)


def executed_copy(stem: str, places: list[Path]) -> tuple[Path | None, dict | None]:
    """The first complete executed copy of notebook `stem` in the run records `place/stem/` and its manifest
    (None, None if there is none); a symbolic link in a record is never followed, a copy passed over is named."""
    for place in places:
        record = place / stem
        path, manifest_path = record / f"{stem}.ipynb", record / integrity.MANIFEST
        if not (path.exists() or path.is_symlink() or record.is_symlink()):
            continue
        if any(p.is_symlink() for p in (record, path, manifest_path)):
            warn(f"{record}: a symbolic link in the record, not followed; passed over")
            continue
        manifest, reason = integrity.read_json(manifest_path)
        problem = reason or integrity.manifest_problem(manifest)
        if problem or manifest["status"] != "complete":
            warn(f"{record}: {problem or 'a ' + manifest['status'] + ' run, not complete'}; passed over")
            continue
        return path, manifest
    return None, None


def shown(path: Path) -> str:
    """`path` relative to the project when it lies inside it, else as it is."""
    try:
        return path.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return str(path)


def read_notebook(path: Path):
    """The notebook at `path` (read only if a regular file), or None with a warning when it cannot be read."""
    import nbformat

    try:
        nb = nbformat.reads(integrity.read_regular(path).decode("utf-8"), as_version=4)
        nbformat.validate(nb)
        return nb
    except (OSError, ValueError, UnicodeDecodeError, nbformat.ValidationError) as err:
        warn(f"{path}: not a readable notebook ({' '.join(str(err).split())[:160]}); passed over")
        return None


def run_notes(source: Path, path: Path, manifest: dict) -> list[str]:
    """What a reader is told about the run that executed `path`: where and when, a smoke run, an older code."""
    notes = [EXECUTED.format(seconds=manifest.get("duration_s", "?"), finished=manifest.get("finished", "?"),
                             record=shown(path.parent))]
    if manifest["params"].get("smoke"):
        notes.append(SMOKE)
    identity = manifest.get("identity")
    recorded = identity.get("code_hash") if isinstance(identity, dict) else None
    current = notebooks.identity(source)["code_hash"]
    if recorded != current:
        warn(f"{path} was executed from an earlier version of {source.name}; shown with a warning")
        notes.append(STALE.format(recorded=recorded, current=current))
    return notes


def made_inert(nb):
    """A copy of notebook `nb` that runs and loads nothing on a page: widgets become a note, HTML outputs and raw
    HTML cells are sanitised, JavaScript outputs dropped."""
    nb = offline_html.without_widgets(nb)
    cleaner = offline_html.cleaner()
    for cell in nb.cells:
        if cell.cell_type == "raw" and cell.get("metadata", {}).get("raw_mimetype") == "text/html":
            cell.source = offline_html.sanitise(cell.source, cleaner)
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            data.pop("application/javascript", None)
            if "text/html" in data:
                data["text/html"] = offline_html.sanitise("".join(data["text/html"]), cleaner)
    return nb


def notebook_page(source: Path, places: list[Path]):
    """The notebook shown for `source`: its first complete executed copy in `places` with notes on how it ran,
    else its code with a warning on the page and in the build's output; made inert either way."""
    import nbformat

    stem = source.stem
    path, manifest = executed_copy(stem, places)
    nb = read_notebook(path) if path is not None else None
    if nb is None:
        warn(f"notebook {stem} has no complete executed copy in {places[0]} or results/{stem}/: shown NOT EXECUTED, "
             "from its source (run `make demo`, then `make docs`)")
        nb = nbformat.reads(source.read_text(encoding="utf-8"), as_version=4)
        notes = [NOT_EXECUTED.format(runs=f"{places[0]}/{stem}/", stem=stem)]
    else:
        notes = run_notes(source, path, manifest)
    nb = made_inert(nb)
    first = nb.cells[0] if nb.cells else None
    at = 1 if first is not None and first.cell_type == "markdown" and first.source.lstrip().startswith("# ") else 0
    nb.cells.insert(at, nbformat.v4.new_markdown_cell("\n\n".join(notes)))
    return nb


def site_path(repo_path: str, staged: dict[str, Path]) -> str | None:
    """Where repository file `repo_path` is on the site (an image outside docs/ is copied to assets/), or None."""
    if repo_path == "README.md":
        return "index.md"  # the README is the landing page (docs/index.md includes it)
    full = ROOT / repo_path
    if repo_path.startswith(("../", "/")) or full.is_symlink() or not full.is_file():
        return None
    if repo_path.startswith("docs/"):
        return repo_path.removeprefix("docs/")
    if repo_path.startswith("notebooks/") and f"notebooks/{full.stem}.ipynb" in staged:
        return f"notebooks/{full.stem}.ipynb"
    if full.suffix.lower() in IMAGES:
        staged[f"assets/{repo_path}"] = full
        return f"assets/{repo_path}"
    return None


def check_staging(staging: Path) -> None:
    """Refuse a staging folder that holds files but is not one this build made (it would delete them)."""
    if staging.exists() and (not staging.is_dir() or staging.is_symlink()
                             or any(staging.iterdir()) and not (staging / MARK).is_file()):
        raise ValueError(f"--staging {staging} is not an empty folder or one that `make docs` staged (no {MARK}); "
                         "choose another")


def sync(staging: Path, files: dict[str, str | Path]) -> None:
    """Make `staging` hold exactly `files` ({relative path: text, or a file to copy}), touching only what changed."""
    files = {**files, MARK: "The sources of the documentation site, staged by python -m oneshot_lab.bench.docs_site\n"}
    for name, content in files.items():
        data = content.read_bytes() if isinstance(content, Path) else content.encode("utf-8")
        target = staging / name
        if not target.is_file() or target.read_bytes() != data:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
    for path in sorted(staging.rglob("*"), reverse=True):
        name = path.relative_to(staging).as_posix()
        if path.is_file() and name not in files and name != "cli.md":  # cli.md: written by docs/conf.py
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()


def stage(staging: Path, runs: Path, results: Path = ROOT / RESULTS,
          api_layers: tuple[str, ...] = docs_pages.API_LAYERS) -> dict[str, str | Path]:
    """Put the site's sources in `staging`: docs/ (its markdown links re-pointed), the README as overview.md, every
    notebook (executed copies from `runs`, else `results`), and the API pages; what was staged."""
    import nbformat

    docs = ROOT / "docs"
    staged: dict[str, str | Path] = {}
    for path in sorted(docs.rglob("*")):
        if path.is_file() and not path.is_symlink() and "__pycache__" not in path.parts:
            staged[path.relative_to(docs).as_posix()] = path
    for source in notebooks.notebooks():
        nb = notebook_page(source, [runs, results])
        staged[f"notebooks/{source.stem}.ipynb"] = nbformat.writes(nb)
    dropped = []
    for origin in ["README.md", *(f"docs/{n}" for n in list(staged) if n.endswith(".md"))]:
        text, lost = docs_pages.rewrite_links((ROOT / origin).read_text(encoding="utf-8"), origin,
                                              lambda p: site_path(p, staged))
        staged["overview.md" if origin == "README.md" else origin.removeprefix("docs/")] = text
        dropped += [f"{origin}: {address}" for address in lost]
    if dropped:
        print(f"docs: links to files the site does not hold, shown as text: {', '.join(dropped)}", flush=True)
    staged.update(docs_pages.api_pages(api_layers))
    sync(staging, staged)
    return staged


def offline_problems(out: Path) -> list[str]:
    """'page: address' for every address on the network that a built page would load."""
    return [f"{page.relative_to(out)}: {address}" for page in sorted(out.rglob("*.html"))
            for address in offline_html.external_resources(page.read_text(encoding="utf-8"))]


def build(out: Path, staging: Path, runs: Path, results: Path = ROOT / RESULTS,
          api_layers: tuple[str, ...] = docs_pages.API_LAYERS) -> int:
    """Stage the sources and build the site into `out` with Sphinx; the exit status (0 built, 1 Sphinx failed)."""
    from sphinx.cmd.build import build_main

    t0 = time.monotonic()
    check_staging(staging)
    stage(staging, runs, results, api_layers)
    code = build_main(["-b", "html", "-q", "-d", str(out.parent / "doctrees"), str(staging), str(out)])
    if code:
        print(f"docs: Sphinx failed (exit {code}); the staged sources are in {staging}", file=sys.stderr)
        return 1
    for problem in offline_problems(out):
        warn(f"the page would load from the network: {problem}")
    pages = len(list(out.rglob("*.html")))
    print(f"docs: {pages} pages in {time.monotonic() - t0:.1f}s; open {(out / 'index.html').resolve()}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Build the site (`make docs`); exit status 0 built, 1 the build failed, 2 bad input."""
    top = argparse.ArgumentParser(prog="python -m oneshot_lab.bench.docs_site", description=__doc__)
    top.add_argument("--out", default=str(ROOT / OUT),
                     help=f"where the HTML goes (default: {OUT}); the builders' working folders go beside it")
    top.add_argument("--staging", default=str(ROOT / STAGING),
                     help=f"where the sources are staged (default: {STAGING})")
    top.add_argument("--runs", default=os.environ.get(RUNS_ENV) or str(ROOT / RUNS),
                     help=f"the demo's records, searched before results/ (default: ${RUNS_ENV}, else {RUNS})")
    top.add_argument("--results", default=str(ROOT / RESULTS),
                     help=f"the committed records, searched after the demo's (default: {RESULTS})")
    top.add_argument("--api-layers", nargs="+", choices=docs_pages.API_LAYERS, default=list(docs_pages.API_LAYERS),
                     metavar="LAYER", help="the layers with an API page (default: all)")
    args = top.parse_args(argv)
    try:
        return build(Path(args.out), Path(args.staging), Path(args.runs).resolve(), Path(args.results).resolve(),
                     tuple(args.api_layers))
    except ValueError as err:
        print(f"docs: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
