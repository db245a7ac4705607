"""The generated blocks of the README and docs/: result tables from the committed results files
(`results/<notebook>/*.csv`), the Performance section, and the package table from the module docstrings.

A block in a document of `DOCUMENTS` is written between `<!-- generated:NAME -->` and `<!-- /generated:NAME -->`; NAME is a
key of `BLOCKS`. `python -m oneshot_lab.bench.readme` rewrites the blocks, `--check` fails when they are stale,
`--collect RUN_DIR` first copies a run's small tables into `results/<notebook>/`.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from functools import partial
from pathlib import Path
from typing import Callable

import pandas as pd

from ..analysis import findings as findings_module
from ..analysis import published, stats
from . import conclusions

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "results"
COLLECTED = ("metrics.csv", "dense.csv", "dense_over_seeds.csv", "summary.csv", "findings.csv", "findings_seeds.csv",
             "tally.csv", "costs.csv",
             "matching.csv", "published.csv", "plan.csv", "collapse_points.csv", "manifest.json")
BLOCK = re.compile(r"(<!-- generated:(?P<name>[\w.-]+) -->\n)(?P<body>.*?)(<!-- /generated:(?P=name) -->)", re.S)


def markdown(frame: pd.DataFrame) -> str:
    """A GitHub pipe table of `frame` (index dropped), every cell as text."""
    def cell(value) -> str:
        if isinstance(value, float):
            return "—" if pd.isna(value) else f"{value:.3f}"
        return str(value).replace("|", "\\|")
    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    rows = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows]) + "\n"


def dense(frame: pd.DataFrame) -> pd.DataFrame:
    """Dense accuracy per split: seeds, mean ± interval half-width, the Student-t interval and the published figure."""
    return pd.DataFrame({"split": frame["split"], "seeds": frame["n"], "mean ± half-width": frame["text"],
                         "95% interval": [f"[{lo:.3f}, {hi:.3f}]" for lo, hi in zip(frame["ci_low"], frame["ci_high"])],
                         "published (test)": frame["published_test"].map(lambda v: "—" if pd.isna(v) else f"{v:.2f}"),
                         "source": frame["source"]})


def wide(frame: pd.DataFrame, stages: tuple[str, ...], index: list[str], columns: str,
         methods: tuple[str, ...] | None = None, sparsities: tuple[float, ...] | None = None) -> pd.DataFrame:
    """`stats.table` of a summary: 'mean ± half-width' per index row and `columns` value."""
    rows = frame[frame["stage"].isin(stages)]
    if methods is not None:
        rows = rows[rows["method"].isin(methods)]
    if sparsities is not None:
        rows = rows[rows["sparsity"].isin(sparsities)]
    return stats.table(rows, index, columns).reset_index()


def verdicts(frame: pd.DataFrame, keep: tuple[str, ...] = ("supported", "contradicted", "equivalent")) -> pd.DataFrame:
    """The findings whose verdict is in `keep`, as `findings.show` prints them."""
    return findings_module.show(frame[frame["verdict"].isin(keep)])


def recipe_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Notebook 02's claims about its second recipe (weight decay), every verdict."""
    return findings_module.show(frame[frame["claim"].str.contains("weight decay")])


def tally_of(frame: pd.DataFrame) -> pd.DataFrame:
    """The tally of a findings table."""
    return findings_module.tally(frame)


def select(frame: pd.DataFrame, columns: list[str], where: dict | None = None) -> pd.DataFrame:
    """`columns` of the rows matching `where` ({column: list of values})."""
    for column, values in (where or {}).items():
        frame = frame[frame[column].isin(values)]
    return frame[columns]


def pivot(frame: pd.DataFrame, index: list[str], columns: str, values: str, where: dict | None = None) -> pd.DataFrame:
    """A wide text table: one row per `index`, one column per `columns` value, cells from `values`."""
    for column, wanted in (where or {}).items():
        frame = frame[frame[column].isin(wanted)]
    wide = frame.pivot_table(index=index, columns=columns, values=values, aggfunc="first", sort=False)
    return wide.rename_axis(columns=None).astype(object).fillna("").reset_index()


def exact(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """`columns` written with every significant digit ('0.9999', not a rounded '1.000'); empty where missing."""
    return frame.assign(**{c: frame[c].map(lambda v: "—" if pd.isna(v) else f"{v:g}") for c in columns})


Formatter = Callable[[pd.DataFrame], pd.DataFrame] | None  # None: the table as recorded
NB01, NB02, NB04, NB05 = "01_magnitude_pruning", "02_obd_saliency", "04_sweep_report", "05_beyond_the_diagonal"
NB03, NB07 = "03_lottery_ticket_rewinding", "07_pruning_at_init"
BLOCKS: dict[str, tuple[str, str, Formatter]] = {
    "01-dense": (NB01, "dense.csv", dense),
    "01-accuracy": (NB01, "summary.csv", partial(wide, stages=("one_shot", "finetuned"),
                                                 index=["stage", "sparsity"], columns="method")),
    "01-budget": (NB01, "summary.csv", partial(wide, stages=("finetuned", "finetuned_20ep", "from_init"),
                                               index=["method", "sparsity"], columns="stage",
                                               methods=("magnitude/global", "random/layer"), sparsities=(0.9,))),
    "01-tally": (NB01, "tally.csv", None),
    "01-findings": (NB01, "findings.csv", verdicts),
    "02-dense": (NB02, "dense_over_seeds.csv", dense),
    "02-accuracy": (NB02, "summary.csv", partial(wide, stages=("one_shot",), index=["method"], columns="sparsity",
                                                 methods=("magnitude/global", "magnitude/layer", "random/layer",
                                                          "taylor/global", "obd_ggn/global", "obd_fisher/global",
                                                          "obd_hutchinson/global", "obd_ggn/layer"))),
    "02-tally": (NB02, "tally.csv", None),
    "02-findings": (NB02, "findings.csv", verdicts),
    "02-recipe": (NB02, "findings.csv", recipe_rows),
    "03-published": (NB03, "published.csv", partial(select, columns=[
        "quantity", "published", "source", "ours_mean", "ours_ci_low", "ours_ci_high", "seeds"])),
    "03-matching": (NB03, "matching.csv", partial(pivot, index=["seed"], columns="condition", values="weights_remaining")),
    "03-tally": (NB03, "tally.csv", None),
    "03-findings": (NB03, "findings.csv", verdicts),
    "04-finetuned": (NB04, "metrics.csv", partial(wide, stages=("finetuned",), index=["sparsity"], columns="method")),
    "04-tally": (NB04, "tally.csv", None),
    "04-findings": (NB04, "findings.csv", verdicts),
    "05-dense": (NB05, "dense.csv", partial(select, columns=["setting", "n", "text"])),
    "05-oneshot": (NB05, "summary.csv", partial(pivot, index=["setting", "method"], columns="sparsity", values="text",
                                                 where={"stage": ["one_shot"], "sparsity": [0.9, 0.95]})),
    "05-published": (NB05, "published.csv", published.reproduction_wide),
    "05-costs": (NB05, "cost_summary.csv", partial(pivot, index=["method"], columns="setting",
                                                    values="seconds (interval)")),
    "05-tally": (NB05, "findings.csv", tally_of),
    "05-findings": (NB05, "findings.csv", verdicts),
    "published-mlp": ("published_mlp", "published.csv", published.reproduction_wide),
    "07-accuracy": (NB07, "summary.csv", partial(pivot, index=["arm"], columns="weights_remaining", values="text")),
    "07-collapse": (NB07, "collapse_points.csv", partial(exact, columns=["collapses_at", "max_intact_sparsity"])),
    "07-published": (NB07, "published.csv", partial(select, columns=[
        "claim", "published", "settings", "supported", "equivalent", "inconclusive", "contradicted", "consistent",
        "confirmed"])),
    "07-tally": (NB07, "tally.csv", None),
    "07-findings": (NB07, "findings.csv", verdicts),
    **{f"{nb[:2]}-replication": (nb, conclusions.REPLICATION, conclusions.replication_table)
       for nb in conclusions.NOTEBOOKS},
}


def performance() -> str:
    """The Performance section, from the committed benchmark results (`make bench` writes them)."""
    from .performance import section

    return section(ROOT / "benchmarks" / "results")


def demo_time(results: Path = RESULTS) -> str:
    """The demo's wall time per notebook and in all, from the closing table of the demo behind `results/`."""
    frame = pd.read_csv(results / DEMO_SUMMARY)
    every = frame[frame["notebook"] != "all"]
    total = float(frame.loc[frame["notebook"] == "all", "wall_s"].iloc[0])
    parts = ", ".join(f"{r.notebook[:2]} {r.wall_s:.0f} s" for r in every.itertuples() if r.status == "ran")
    return (f"The demo behind the committed results took **{total / 60:.1f} min** from an empty fit cache on the "
            f"project's 2-core machine, two notebooks at a time ({parts}). <sub>Generated from "
            f"`results/{DEMO_SUMMARY}`.</sub>\n")


def targets() -> str:
    """The performance targets, measured against the limits (the README's short Performance section)."""
    from .measure import markdown_table
    from .performance import load, targets as measured

    rows = measured(load(ROOT / "benchmarks" / "results"))
    return markdown_table(rows, ["target", "measured", "limit", "met"]) + \
        "\n<sub>Generated from `benchmarks/results/*.json` (`make bench`); details in docs/performance.md.</sub>\n"


def summary(path: Path) -> str:
    """The first sentence of a module's docstring, read without importing it."""
    import ast

    doc = " ".join((ast.get_docstring(ast.parse(path.read_text())) or "").split("\n\n")[0].split())
    end = re.search(r"[.;](\s|$)", doc)
    return (doc[:end.start()] if end else doc).replace("|", "\\|")


def package() -> str:
    """The package table: every layer (in import order) and its modules, each with its docstring's first sentence."""
    from .. import LAYERS

    source = ROOT / "oneshot_lab"
    rows = []
    for layer in LAYERS:
        rows.append(f"| **`{layer}/`** | {summary(source / layer / '__init__.py')} |")
        for path in sorted((source / layer).rglob("*.py")):
            if not path.name.startswith("_"):
                rows.append(f"| `{path.relative_to(source / layer).with_suffix('').as_posix()}` | {summary(path)} |")
    rows += [f"| **`{name}`** | {summary(source / f'{name}.py')} |" for name in ("commands", "verdict_commands", "cli")]
    return "| module | what it holds |\n|---|---|\n" + "\n".join(rows) + "\n"


def conclusions_text(results: Path = RESULTS) -> str:
    """The README's conclusions (`conclusions.conclusions`) as a table and the count of open findings."""
    rows, open_counts = conclusions.conclusions(results)
    if rows.empty:
        return "No committed finding has replicated yet (`oneshot-lab replicate NN`).\n"
    return (markdown(rows) + "\n<sub>Generated from `results/*/replication.csv`: claims whose findings are "
            "significant after Holm's adjustment within their notebook, beyond its floor, and gave the same verdict "
            "on fresh seeds, both among the re-tested findings and in the fresh run's own family; the discovery's "
            "mean differences a - b. Open: inconclusive, within the floor, both arms "
            "at chance, or not replicated. Every finding with its interval: [docs/results.md](docs/results.md)."
            "</sub>\n")


def funnel_text(results: Path = RESULTS) -> str:
    """Per notebook, the findings left after each step (`conclusions.funnel_table`)."""
    return markdown(conclusions.funnel_table(results)) + "\n<sub>Generated from `results/*/replication.csv`.</sub>\n"


HEADLINE = ROOT / "docs" / "figures" / "headline.svg"
DEMO_SUMMARY = "demo_summary.csv"  # the closing table of the demo that made results/ (`--collect runs/demo`)


def headline_figure(results: Path = RESULTS) -> bytes:
    """Notebook 01's test accuracy against sparsity, one shot and fine-tuned (mean and 95% t-interval over seeds),
    as SVG bytes that depend only on the results file (no date, fixed ids)."""
    import io

    import matplotlib.pyplot as plt

    from ..analysis import plots

    metrics = pd.read_csv(results / NB01 / "metrics.csv")
    with plt.rc_context({"svg.hashsalt": "oneshot_lab", "svg.fonttype": "path"}):
        grid = plots.accuracy_vs_sparsity(metrics, col="stage", stage=["one_shot", "finetuned"],
                                          log_compression=True, height=3.2, aspect=1.25)
        buffer = io.BytesIO()
        grid.figure.savefig(buffer, format="svg", metadata={"Date": None})
        plt.close(grid.figure)
    return buffer.getvalue()


def headline(results: Path = RESULTS) -> str:
    """The README's headline: the figure and a caption read from notebook 01's committed manifest."""
    import json

    params = json.loads((results / NB01 / "manifest.json").read_text())["params"]
    return (f"![Test accuracy against sparsity, notebook 01](docs/figures/headline.svg)\n\n"
            f"<sub>Notebook 01: {params['model']} on {params['dataset']}, {len(params['seeds'])} paired seeds, test "
            f"accuracy one shot and after a {params['finetune_epochs']}-epoch fine-tune under the mask; bands are 95% "
            f"t-intervals over seeds, the dashed line the dense network. Generated from "
            f"`results/{NB01}/metrics.csv`.</sub>\n")


SECTIONS: dict[str, Callable[[], str]] = {"performance": performance, "package": package, "headline": headline,
                                          "targets": targets, "demo-time": demo_time,
                                          "conclusions": lambda: conclusions_text(RESULTS),
                                          "funnel": lambda: funnel_text(RESULTS),
                                          "recipes": lambda: markdown(conclusions.recipes_table(RESULTS)) +
                                          "\n<sub>Generated from `results/recipes/*/`.</sub>\n"}
DOCUMENTS = ("README.md", "docs/results.md", "docs/sweeps.md", "docs/performance.md", "docs/reference.md",
             "docs/architecture.md")


def block(name: str, results: Path = RESULTS) -> str:
    """The markdown of block `name`, with a line naming the file it came from."""
    if name in SECTIONS:
        return SECTIONS[name]()
    if name not in BLOCKS:
        raise ValueError(f"README block {name!r} is not generated here; known blocks: {', '.join([*BLOCKS, *SECTIONS])}")
    notebook, file, formatter = BLOCKS[name]
    path = results / notebook / file
    if not path.is_file():
        raise FileNotFoundError(f"README block {name!r} needs {path}: run the notebook with its defaults and "
                                f"`python -m oneshot_lab.bench.readme --collect RUN_DIR`")
    frame = pd.read_csv(path)
    return markdown(frame if formatter is None else formatter(frame)) + f"\n<sub>Generated from `results/{notebook}/{file}`.</sub>\n"


def render(text: str, results: Path = RESULTS) -> str:
    """`text` with every generated block rewritten from the results files."""
    return BLOCK.sub(lambda m: m.group(1) + block(m.group("name"), results) + m.group(4), text)


def collect(run_dir: Path, results: Path = RESULTS) -> Path:
    """Copy the small tables of a complete run (its manifest names the notebook) into results/<notebook>/:
    the COLLECTED ones, the executed notebook (what the documentation site shows before a user's own demo, and
    the demo's estimates of time left) and every file already there, so no file is left from an older run. A
    replication record (`oneshot-lab replicate`) goes to results/<notebook>/replication.csv and replication/."""
    import json

    if (run_dir / "summary.csv").is_file() and not (run_dir / "manifest.json").exists():  # a demo's directory
        results.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(run_dir / "summary.csv", results / DEMO_SUMMARY)
        return results / DEMO_SUMMARY
    manifest = json.loads((run_dir / "manifest.json").read_text())
    if manifest.get("status") != "complete":
        raise ValueError(f"{run_dir} is not a complete record (status {manifest.get('status')!r})")
    notebook = next(p.stem for p in run_dir.glob("*.ipynb"))
    target = results / notebook
    target.mkdir(parents=True, exist_ok=True)
    if (run_dir / conclusions.REPLICATION).is_file():  # `oneshot-lab replicate`: beside the discovery, never over it
        (target / "replication").mkdir(exist_ok=True)
        shutil.copyfile(run_dir / conclusions.REPLICATION, target / conclusions.REPLICATION)
        for name in ("findings.csv", "findings_seeds.csv", "manifest.json"):
            shutil.copyfile(run_dir / name, target / "replication" / name)
        return target / conclusions.REPLICATION
    for name in sorted(set(COLLECTED) | {f"{notebook}.ipynb"} | {p.name for p in target.iterdir()}):
        if (run_dir / name).is_file():
            shutil.copyfile(run_dir / name, target / name)
    return target


def main(argv: list[str] | None = None) -> int:
    """Rewrite the generated blocks of every document (or, with --check, fail when one is stale)."""
    parser = argparse.ArgumentParser(prog="python -m oneshot_lab.bench.readme", description=main.__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if README.md differs from the results files")
    parser.add_argument("--collect", nargs="*", default=[], type=Path, help="complete run directories to copy first")
    args = parser.parse_args(argv)
    for run_dir in args.collect:
        print(f"collected {run_dir} -> {collect(run_dir)}")
    stale = []
    for name in DOCUMENTS:
        document = ROOT / name
        text = document.read_text()
        fresh = render(text)
        if fresh != text:
            stale.append(name)
            if not args.check:
                document.write_text(fresh)
    figure = headline_figure()
    if not HEADLINE.is_file() or HEADLINE.read_bytes() != figure:
        stale.append(HEADLINE.relative_to(ROOT).as_posix())
        if not args.check:
            HEADLINE.parent.mkdir(parents=True, exist_ok=True)
            HEADLINE.write_bytes(figure)
    if args.check and stale:
        print(f"{', '.join(stale)} stale: run `python -m oneshot_lab.bench.readme`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
