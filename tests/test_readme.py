"""The README's result tables are generated from the committed results files and must agree with them."""


import pandas as pd
import pytest

from oneshot_lab.bench import readme


@pytest.mark.parametrize("document", readme.DOCUMENTS)
def test_generated_blocks_match_the_committed_results_and_the_code(document):
    text = (readme.ROOT / document).read_text()
    assert document != "README.md" or [m.group("name") for m in readme.BLOCK.finditer(text)]
    assert readme.render(text) == text, f"{document} is stale: run `python -m oneshot_lab.bench.readme`"


def test_the_package_table_lists_every_module_with_its_docstring():
    table = readme.package()
    for path in (readme.ROOT / "oneshot_lab" / "pruning").glob("[a-z]*.py"):
        assert f"| `{path.stem}` | {readme.summary(path)} |" in table
    assert table.index("**`util/`**") < table.index("**`core/`**") < table.index("**`bench/`**")


def test_render_rewrites_blocks_from_files_and_names_missing_ones(tmp_path):
    (tmp_path / readme.NB01).mkdir()
    pd.DataFrame([{"claim": "a beats b", "supported": 2, "inconclusive": 1}]).to_csv(
        tmp_path / readme.NB01 / "tally.csv", index=False)
    text = "intro\n<!-- generated:01-tally -->\nold\n<!-- /generated:01-tally -->\nend\n"
    out = readme.render(text, tmp_path)
    assert "| claim | supported | inconclusive |\n|---|---|---|\n| a beats b | 2 | 1 |\n" in out
    assert out.startswith("intro\n") and out.endswith("<!-- /generated:01-tally -->\nend\n") and "old" not in out
    with pytest.raises(FileNotFoundError, match="needs .*dense.csv"):
        readme.render("<!-- generated:01-dense -->\n<!-- /generated:01-dense -->", tmp_path)
    with pytest.raises(ValueError, match="block 'nosuch' is not generated here"):
        readme.render("<!-- generated:nosuch -->\n<!-- /generated:nosuch -->", tmp_path)


def test_headline_figure_is_generated_from_the_committed_results():
    assert readme.HEADLINE.read_bytes() == readme.headline_figure(), \
        "docs/figures/headline.svg is stale: run `python -m oneshot_lab.bench.readme`"


def test_readme_is_a_five_minute_read_with_what_a_newcomer_looks_for():
    text = (readme.ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 250
    for heading in ("## Quick start: two commands", "## Prune your own model", "## Your own method",
                    "## Exploring in JupyterLab", "## Sweeps", "## Where everything else lives"):
        assert heading in text


def test_collecting_a_replication_lands_beside_the_discovery_never_over_it(tmp_path):
    import json

    from oneshot_lab.bench import readme

    run = tmp_path / "runs" / "01_magnitude_pruning"
    run.mkdir(parents=True)
    (run / "manifest.json").write_text(json.dumps({"status": "complete"}))
    (run / "01_magnitude_pruning.ipynb").write_text("{}")
    for name in ("replication.csv", "findings.csv", "findings_seeds.csv", "metrics.csv"):
        (run / name).write_text(f"fresh {name}\n")
    results = tmp_path / "results"
    (results / "01_magnitude_pruning").mkdir(parents=True)
    (results / "01_magnitude_pruning" / "findings.csv").write_text("discovery\n")
    assert readme.collect(run, results) == results / "01_magnitude_pruning" / "replication.csv"
    target = results / "01_magnitude_pruning"
    assert (target / "findings.csv").read_text() == "discovery\n" and not (target / "metrics.csv").exists()
    assert (target / "replication.csv").read_text() == "fresh replication.csv\n"
    assert sorted(p.name for p in (target / "replication").iterdir()) == ["findings.csv", "findings_seeds.csv",
                                                                        "manifest.json"]


def test_the_conclusions_name_only_replicated_findings_and_count_the_rest_open(tmp_path):
    from oneshot_lab.bench import conclusions

    rows = [("a beats b", "sparsity=0.5", "supported", "yes", 0.01), ("a beats b", "sparsity=0.9", "supported", "no", 0.01),
            ("a beats b", "sparsity=0.95", "inconclusive", "", 0.2), ("c beats b", "sparsity=0.5", "equivalent", "yes", 0.3)]
    table = pd.DataFrame([{"claim": c, "setting": s, "verdict": v, "replicated": r, "p_value": p / 2, "p_adjusted": p,
                           "confidence": 0.95, "mean_difference": 0.1, "ci_low": 0.05, "ci_high": 0.15}
                          for c, s, v, r, p in rows])
    table["a"], table["b"], table["value"] = "a", "b", "test_accuracy"
    (tmp_path / "01_magnitude_pruning" / "replication").mkdir(parents=True)
    table.to_csv(tmp_path / "01_magnitude_pruning" / "replication.csv", index=False)
    own = table.assign(verdict=["supported", "inconclusive", "inconclusive", "equivalent"])  # the fresh run's family
    own.to_csv(tmp_path / "01_magnitude_pruning" / "replication" / "findings.csv", index=False)
    held, open_counts = conclusions.conclusions(tmp_path)
    assert list(held["replicated conclusions"]) == [
        "a beats b (supported) at sparsity=0.5: +0.100 [+0.050, +0.150]; c beats b (equivalent) at sparsity=0.5: "
        "+0.100 [+0.050, +0.150]"]
    assert list(held["open"]) == ["2 of 4"]
    assert open_counts == ["01: 2 of 4"]
    assert conclusions.funnel(conclusions.replications(tmp_path)["01_magnitude_pruning"]) == {
        "findings": 4, "raw p < 0.05": 2, "adjusted p < 0.05": 2, "beyond the floor": 2, "equivalent": 1,
        "replicated": 2, "also in the fresh run's family": 2}
    own.assign(verdict="inconclusive").to_csv(tmp_path / "01_magnitude_pruning" / "replication" / "findings.csv",
                                              index=False)  # replicated among the re-tested only: not a conclusion
    assert list(conclusions.conclusions(tmp_path)[0]["replicated conclusions"]) == ["none"]
