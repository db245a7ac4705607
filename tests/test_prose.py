"""Hand-written prose states no measured number: every measured number lives in a generated block or a table.

What is read: README.md and docs/*.md outside their generated blocks (`readme.BLOCK`), and the markdown cells of
notebooks/*.ipynb (not the executed copies in results/). Fenced code, `inline code`, $LaTeX$, HTML comments and
link targets are not prose and are skipped.

The rule. A number in prose is a *measured* number, and fails the test, when it is
  - a timing: a number followed by s, ms, sec, seconds, min, minutes or hours ("12 s", "11.9 min");
  - a ratio: a number with x or × attached ("2.3x"), except 1x and the multiples a parameter whose name contains
    `budget` declares (notebook 03's "3x" budget is a setting);
  - a percentage ("93.1%", "61 percent"), except a fraction a parameter declares (a sparsity, a rate, a
    fraction: "90 %" of `sparsities`, "25 %" of `output_rate`) and the 95 % confidence level of every interval;
  - a difference in points ("1.5 points", "2 percentage points"), except the value of a parameter named `points`;
  - a signed decimal ("+0.034", "−0.006", "± 0.015"): a paired difference or an interval half-width;
  - any other decimal ("0.93", "4.02"), except a float a parameter declares (0.9 of `sparsities`, 1e-2 of `lr`),
    the version of a program ("Python 3.11", "YAML 1.2") and an IP address (127.0.0.1);
  - a count of outcomes: "N/M" of integers ("3/31", seeds agreeing "5/5"), "N of M [up to two words] verdicts /
    claims / settings / findings / rows / seeds" ("14 of 22 non-inconclusive verdicts", "4 of 5 seeds"),
    "N [a word] verdicts / findings", "N supported / contradicted / inconclusive / equivalent / sign flips",
    "N tests" or "N passed".
Everything else is a setting and allowed: integers that are inputs (seeds, steps, examples, layers, widths,
levels), architecture names (784-40-20-10, LeNet-300-100), years, section numbers and equation constants. A
measured number that happens to equal a declared setting (an accuracy of 0.9 beside the 0.9 sparsity) is missed:
the rule errs towards letting settings through.
"A parameter declares" means: a numeric literal in the parameters cell of any notebook or in a sweep spec
(sweeps/*.yaml), read by the package's own parsers. Constants of the code that the reference pages document
(an interval, a cap) are in `CONSTANTS`, each with its reason; keep that list short.

A published reference value is allowed when it is quoted with its source: the clause around it (up to a `;` or
the end of the sentence) names a citation (an author and a year: "Greydanus 2020", "Singh & Alistarh, 2020",
"Yu et al. 2022"), says it is published or reported, and does not speak of our own run (ours, our, we, here,
this run, measured). "published 90.3 % (Singh & Alistarh 2020)" passes; "ours 88.1 %, published 90.3 %
(Singh & Alistarh 2020)" does not.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from oneshot_lab.bench import readme
from oneshot_lab.runner.notebooks import declared_parameters
from oneshot_lab.util.strict_yaml import loads

ROOT = readme.ROOT
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
PAGES = ["README.md", *sorted(f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md"))]
CONFIDENCE_PERCENT = 95.0  # the confidence level of every interval the lab reports: a setting, not a result
CONSTANTS = {  # phrase of docs/reference.md -> why its number is a constant of the code, not a result
    "otherwise printed every 30 s": "the interval of `oneshot-lab demo`'s progress line when not on a terminal",
    "checks its parent every 0.2 s": "the interval at which a worker's thread checks that its parent is alive",
    "resource tracker gone within 5 s": "the deadline tests/test_faults.py gives the killed processes",
    "whenever it has written 1% of the cap": "when the fit cache evicts: after each 1% of its size cap written",
    "whose loading peaks at 1/8 of the": "the IDX decompression cap: a payload whose loading peaks at 1/8 of memory",
}

SKIPPED = re.compile(r"```.*?```|<!--.*?-->|\$\$.*?\$\$|\$[^$\n]+\$|`[^`\n]*`|\]\([^)\s]*\)"
                     r"|\b\d+(?:\.\d+){3}\b", re.S)  # code, comments, LaTeX, link targets, IP addresses
NUMBER = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-−+]?\d+)?"
TOKEN = re.compile(
    rf"(?<![\w.,/^\-−+±])(?P<sign>(?:[+−±]|-(?=\d))\s?)?(?P<num>{NUMBER})(?:\s?–\s?(?P<num2>{NUMBER}))?"
    r"(?P<unit>x(?![\w-])|×|\s?(?:%|-?percent\b|percentage points?\b|points?\b|pp\b|s\b|ms\b|sec(?:onds?)?\b"
    r"|min(?:utes?)?\b|hours?\b|tests\b|passed\b))?"
    rf"(?P<tail>/\d+(?![\w/.])|\s+(?:of\s+{NUMBER}\s+(?:[\w-]+\s+){{0,2}}"
    r"(?:verdicts?|claims?|settings?|findings?|rows?|seeds?)\b|(?:[\w-]+\s+)?(?:verdicts|findings)\b"
    r"|supported\b|contradicted\b|inconclusive\b|equivalent\b|sign flips?\b))?")
CITATION = re.compile(r"[A-Z][\w'’-]+(?: et al\.?| (?:&|and) [A-Z][\w'’-]+)?,? \(?"  # Yu et al. (ICML 2022)
                      r"(?:[A-Z][A-Za-z]+ )?(?:19|20)\d\d")
PUBLISHED = re.compile(r"\b(?:published|report(?:s|ed)?)\b", re.I)
OURS = re.compile(r"\b(?:ours|our|we|here|this run|measured)\b", re.I)
VERSION = re.compile(r"(?:Python|YAML)\s+$")
TIMES = {"s", "ms", "sec", "second", "seconds", "min", "minute", "minutes", "hour", "hours"}


def numbers(value, kinds: tuple[type, ...] = (int, float)) -> list[float]:
    """Every number of one of `kinds` (never a bool) inside a literal, lists and mappings flattened."""
    if isinstance(value, bool):
        return []
    if isinstance(value, kinds):
        return [float(value)]
    if isinstance(value, dict):
        return [n for v in value.values() for n in numbers(v, kinds)]
    if isinstance(value, (list, tuple)):
        return [n for v in value for n in numbers(v, kinds)]
    return []


def declared_settings(kinds: tuple[type, ...] = (int, float)) -> dict[str, set[float]]:
    """Parameter name -> the numbers of `kinds` every notebook's parameters cell and every sweep spec declare."""
    found: dict[str, set[float]] = {}
    for notebook in NOTEBOOKS:
        for name, entry in declared_parameters(notebook).items():
            found.setdefault(name, set()).update(numbers(ast.literal_eval(entry["default"]), kinds))
    for spec in sorted((ROOT / "sweeps").glob("*.yaml")):
        for section in ("params", "grid"):
            for name, value in (loads(spec.read_text()).get(section) or {}).items():
                found.setdefault(name, set()).update(numbers(value, kinds))
    return found


SETTINGS, FLOATS = declared_settings(), declared_settings((float,))


def among(value: float, names: str = "", settings: dict[str, set[float]] = SETTINGS) -> bool:
    """Whether `value` is declared by a parameter whose name matches the regex `names` (any parameter if empty)."""
    return any(abs(value - v) <= 1e-12 * max(1.0, abs(v)) for name, values in settings.items()
               if re.search(names, name) for v in values)


def measured(match: re.Match, before: str) -> str | None:
    """Why the number `match` is a measured number, or None when it is a setting (the rule in the docstring)."""
    text, unit, sign = match.group("num"), (match.group("unit") or "").strip(), (match.group("sign") or "").strip()
    values = [float(t.replace(",", "")) for t in (text, match.group("num2")) if t]
    if match.group("tail"):
        return "a count of outcomes"
    if unit.lstrip("-") in TIMES:
        return "a timing"
    if unit in ("x", "×"):
        ok = all(v == 1 or among(v, "budget") for v in values)
        return None if ok else "a ratio"
    if unit in ("tests", "passed"):
        return "a count of tests"
    if unit.startswith("point") and all(among(v, "^points$") for v in values):
        return None
    if unit.startswith(("percentage", "point")) or unit == "pp":
        return "a difference in points"
    if unit.lstrip("-") in ("%", "percent"):
        ok = all(v == CONFIDENCE_PERCENT or among(v / 100, "sparsit|rate|fraction") for v in values)
        return None if ok else "a percentage"
    if sign:
        return "a signed difference" if "." in text or sign == "±" else None
    if "." in text or "e" in text.lower():
        if VERSION.search(before) or all(among(v, settings=FLOATS) for v in values):
            return None
        return "a decimal"
    return None


def clauses(text: str) -> list[str]:
    """`text` cut into clauses: at blank lines, sentence ends and semicolons (newlines inside a paragraph kept)."""
    return [c for c in re.split(r"\n\s*\n|(?<=[.!?])\s+(?=[A-Z*(\[])|;", text) if c.strip()]


def cited(clause: str) -> bool:
    """Whether `clause` quotes a published figure with its source and says nothing of our own run."""
    return bool(CITATION.search(clause) and PUBLISHED.search(clause) and not OURS.search(clause))


def offending(text: str) -> list[str]:
    """'reason: «number» in «clause»' for every measured number stated in the prose `text`."""
    prose = SKIPPED.sub(" ", text)
    found = []
    for clause in clauses(prose):
        flat = " ".join(clause.split())
        for phrase in CONSTANTS:
            flat = flat.replace(phrase, " ")
        for match in TOKEN.finditer(flat):
            why = measured(match, flat[:match.start()])
            if why and not cited(flat):
                found.append(f"{why}: {match.group(0).strip()!r} in {flat[:160]!r}")
    return found


def page_prose(name: str) -> str:
    """The hand-written text of a markdown page: everything outside its generated blocks."""
    return readme.BLOCK.sub(" ", (ROOT / name).read_text())


def notebook_prose(path: Path) -> str:
    """The markdown cells of a notebook, one paragraph each."""
    cells = json.loads(path.read_text())["cells"]
    return "\n\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")


@pytest.mark.parametrize("sentence", [
    "Global magnitude reaches 0.93 at 90% sparsity.",
    "It keeps 93.1% of the dense accuracy.",
    "OBC is 2.3x slower than SparseGPT.",
    "One call takes 12 s on two threads.",
    "The demo took 11.9 min.",
    "OBD beats magnitude by 1.5 points at 95 %.",
    "The gap is 2 percentage points.",
    "The difference is −0.006 [−0.011, −0.002].",
    "The dense network reaches 0.680 ± 0.019 on validation.",
    "64 of 434 verdicts changed; Holm keeps 14 of 22 non-inconclusive verdicts.",
    "About 519 binary verdicts; the level changed for 4 of 5 seeds.",
    "The default run has 0 supported and 2 contradicted settings.",
    "All 3/31 verdicts held.",
    "The suite has 815 tests.",
    "The dense model reaches about 61% on MNIST-1D.",
    "Ours is 88.1%, beside the published 90.3% (Singh & Alistarh 2020).",
    "OBC (Frantar et al. 2022) takes 3.9 s here.",
    "The dense model fits the training split with accuracy 1.0.",
])
def test_the_detector_flags_a_measured_number(sentence):
    assert offending(sentence), sentence


@pytest.mark.parametrize("sentence", [
    "Prune 90% of the weights, or 90 percent sparsity, and report the 95-percent interval.",
    "The MLP 784-40-20-10 and LeNet-300-100 on 3,600 train / 400 val / 1,000 test examples, seeds 0–4.",
    "Adam 1e-2, batch 100, cosine schedule, weight decay 1e-4, fine-tune at 1e-3.",
    "The output layer is pruned at 25 % and the controls get a 3x budget (1x is the normal one).",
    "Sparsities 0.5 and 0.95; 5 levels of 50 % of the remaining weights; k = 100.",
    "OBD (LeCun, Denker & Solla 1989), section 2, a rank correlation of 1 means the same ranking.",
    "The published MLP figure is 68 percent (Greydanus 2020).",
    "Yu et al. (ICML 2022) report 93.1% for WoodFisher at 90 percent sparsity.",
    "On a fresh machine with Python 3.11 and `make`; specs are YAML 1.2, the cluster listens on 127.0.0.1.",
    "Run `oneshot-lab run 01 -p seed 1 -p lr 0.5` or $s = 0.5\\, h w^2$.",
    "<!-- 0.93 --> 11 interpolation points, about 2,600 weights, the conv1d-64 at 28,224 prunable weights.",
    "Weights remaining: 100 is the dense network, levels 1–5.",
])
def test_the_detector_allows_settings_and_cited_published_figures(sentence):
    assert offending(sentence) == [], offending(sentence)


def test_the_detector_reads_the_declared_parameters():
    assert among(0.98, "sparsit") and among(0.0012) and among(3, "budget") and among(11, "^points$")
    assert not among(0.93) and not among(0.61, "sparsit|rate|fraction") and not among(1.0, settings=FLOATS)


@pytest.mark.parametrize("page", PAGES)
def test_hand_written_pages_state_no_measured_number(page):
    found = offending(page_prose(page))
    assert found == [], f"{page}: move these into a generated block or point at the table:\n" + "\n".join(found)


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_markdown_states_no_measured_number(notebook):
    found = offending(notebook_prose(notebook))
    assert found == [], f"{notebook.name}: point at the table or figure instead:\n" + "\n".join(found)
