"""Plug-in methods: `ol.register` in a session, and a method shipped in its own installed package (entry-point group
`oneshot_lab.methods`) that every fresh process finds: the registry, `oneshot-lab params`, the explorer, and a
notebook run through a two-run sweep -- with no edit to the lab."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import torch

import oneshot_lab as ol
from oneshot_lab.pruning import registry

ROOT = Path(__file__).resolve().parents[1]
CLI = str(Path(sys.executable).parent / "oneshot-lab")

PLUGIN = textwrap.dedent('''
    """A method from outside the lab: |w| divided by the largest |w| of its output row."""
    from oneshot_lab import Method, Option, Rule


    def row_scaled(model, data, seed, floor=0.0):
        """Each weight's magnitude relative to its row's largest, plus `floor`."""
        out = {}
        for name in [n for n, p in model.named_parameters() if n.endswith("weight")]:
            w = model.get_parameter(name).detach().abs()
            rows = w.reshape(w.shape[0], -1)
            out[name] = (rows / rows.amax(1, keepdim=True).clamp_min(1e-12) + floor).reshape(w.shape)
        return out


    METHOD = Method("row_scaled", "|w| / max |w| of its output row", score=row_scaled,
                    options=(Option("floor", 0.0, "added to every score", Rule("float", 0.0)),))
''')


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """A directory holding an 'installed' plug-in distribution: its module and its dist-info with entry points."""
    root = tmp_path_factory.mktemp("site")
    (root / "oneshot_plugin_demo.py").write_text(PLUGIN)
    info = root / "oneshot_plugin_demo-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: oneshot-plugin-demo\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[oneshot_lab.methods]\nrow_scaled = oneshot_plugin_demo:METHOD\n")
    return root


def fresh(site: Path, *args: str, cwd: Path = ROOT, timeout: int = 300) -> subprocess.CompletedProcess:
    """`args` run in a fresh process that has the plug-in on its path (as if pip-installed)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)]), "ONESHOT_LAB_CACHE": "off"}
    return subprocess.run(args, capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout)


def test_a_registered_method_prunes_like_any_other(synthetic, tiny_mlp):
    half = ol.Method("half_magnitude", "|w| / 2", score=lambda m, d, s: ol.pruning.criteria.magnitude(m))
    try:
        assert ol.register(half) == half and ol.METHODS["half_magnitude"].source == "test_plugins"
        mine = ol.prune(tiny_mlp, synthetic, 0.7, "half_magnitude", "layer")
        assert mine.masks.equal(ol.prune(tiny_mlp, synthetic, 0.7, "magnitude", "layer").masks)
        assert "half_magnitude/layer" in ol.studies.oneshot.OneShotConfig(methods=["half_magnitude/layer"]).methods
        again = ol.Method("half_magnitude", "re-run of the cell", score=half.score)
        assert ol.METHODS["half_magnitude"].help == "|w| / 2"
        assert ol.register(again).help == ol.METHODS["half_magnitude"].help == "re-run of the cell"  # a re-run cell
    finally:
        registry.METHODS._methods.pop("half_magnitude", None)


def test_a_method_that_updates_weights_returns_its_masks(synthetic, tiny_mlp):
    def halve_survivors(request):
        """Keep the largest weights of each group and halve them (an update the registry must keep)."""
        scores = {n: request.model.get_parameter(n).detach().abs() for n in request.keep}
        masks = ol.pruning.prune.select(scores, request.keep, request.targets)
        with torch.no_grad():
            for name in masks:
                request.model.get_parameter(name).mul_(0.5)
        return masks

    entry = ol.Method("halving", "magnitude, survivors halved", run=halve_survivors, updates_weights=True)
    try:
        ol.register(entry)
        result = ol.prune(tiny_mlp, synthetic, 0.5, "halving")
        plain = ol.prune(tiny_mlp, synthetic, 0.5, "magnitude")
        assert result.masks.equal(plain.masks)
        for name in result.masks:
            torch.testing.assert_close(result.model.get_parameter(name), 0.5 * plain.model.get_parameter(name))
        assert result.scores is None and tiny_mlp[1].weight.abs().min() > 0  # the caller's model is untouched
    finally:
        registry.METHODS._methods.pop("halving", None)


@pytest.mark.parametrize("make, message", [
    (lambda: ol.Method("bad name", "x", score=print), "must be an identifier"),
    (lambda: ol.Method("both", "x", score=print, run=print), "exactly one of score= .* and run="),
    (lambda: ol.Method("neither", "x"), "exactly one of score="),
    (lambda: ol.Method("needy", "x", score=print, needs=("gpu",)), "needs must be a tuple of data, trained"),
    (lambda: ol.Method("needy", "x", score=print, needs="data"), "needs must be a tuple of data, trained"),
    (lambda: ol.Method("seeded", "x", score=print, options=(ol.Option("seed", 0, "x"),)), "none of seed, model"),
    (lambda: ol.Method("scoped", "x", score=print, options=(ol.Option("scope", "a", "x", ol.Rule("str")),)),
     "none of seed, model"),
    (lambda: ol.Method("up", "x", score=print, updates_weights=True), "only a method with run= can update"),
    (lambda: ol.Method("num", "x", score=123), "score= must be a function, got 123"),
    (lambda: ol.Method("opts", "x", score=print, options=ol.Option("samples", 1, "x")), "options must be a tuple"),
    (lambda: ol.Method("sig", "x", score=lambda m, d, s: {}, options=(ol.Option("samples", 1, "x"),)),
     r"the registry calls score\(model, data, seed, \*\*options\), which this function cannot take"),
    (lambda: ol.Method("sig", "x", run=lambda: {}), r"the registry calls run\(request\)"),
    (lambda: ol.Option("k", -1, "x", ol.Rule("int", 0)), "k must be an integer >= 0, got -1"),
    (lambda: ol.register(ol.Method("magnitude", "mine", score=print)), "method 'magnitude' exists .* another name"),
    (lambda: ol.register(print), "register takes a oneshot_lab Method"),
    (lambda: ol.register(ol.Method("mine", "mine", score=print), replace="no"), "replace=True or False"),
])
def test_bad_method_definitions_are_refused_when_made(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_an_installed_plugin_is_in_every_fresh_process(site, tmp_path):
    code = ("import oneshot_lab as ol, torch; data = ol.load('synthetic'); net = ol.build('mlp', data, widths=[8]);"
            "print(ol.METHODS['row_scaled'].source);"
            "print(ol.widgets.explore(net, data, finetune=None).criterion.options)")
    probe = fresh(site, sys.executable, "-c", code)
    assert probe.returncode == 0, probe.stderr
    source, options = probe.stdout.strip().splitlines()[-2:]
    assert "oneshot_plugin_demo:METHOD" in source and "'row_scaled'" in options
    listing = fresh(site, CLI, "params", "01")
    assert listing.returncode == 0, listing.stderr
    assert "row_scaled: |w| / max |w| of its output row" in listing.stdout and "floor=0.0" in listing.stdout


def test_an_installed_plugin_runs_in_a_notebook_through_a_sweep(site, tmp_path):
    spec = {"notebook": "01", "runs_dir": str(tmp_path / "runs"),
            "params": {"smoke": True, "dataset": "synthetic", "model": "mlp", "model_options": {"widths": [16]},
                       "methods": ["row_scaled/global", "magnitude/global", "random/layer"],
                       "control_methods": ["row_scaled/global"]},
            "grid": {"seed": [3]}}
    (tmp_path / "plugin.json").write_text(json.dumps(spec))
    swept = fresh(site, CLI, "sweep", str(tmp_path / "plugin.json"), "--workers", "1", cwd=tmp_path, timeout=600)
    assert swept.returncode == 0, swept.stdout + swept.stderr
    records = sorted((tmp_path / "runs").glob("01_magnitude_pruning-*"))
    assert len(records) == 1
    for record in records:
        metrics = pd.read_csv(record / "metrics.csv")
        mine = metrics[metrics.method == "row_scaled/global"]
        assert set(mine.stage) >= {"one_shot", "finetuned", "from_init"} and mine.test_accuracy.notna().all()
        assert (record / "findings.csv").exists()


def test_a_runs_identity_names_the_installed_plugins_and_changes_when_one_is_edited(site, tmp_path):
    code = ("import json; from oneshot_lab.runner import notebooks, spec;"
            "print(json.dumps([notebooks.identity('01'), spec.run_id('01', {'smoke': True})]))")
    first = json.loads(fresh(site, sys.executable, "-c", code).stdout.strip().splitlines()[-1])
    assert first[0]["plugins"]["row_scaled"].startswith("oneshot-plugin-demo 0.1 ")
    alone = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                                      check=True).stdout.strip().splitlines()[-1])
    assert "plugins" not in alone[0] and alone[1] != first[1]  # without the plug-in: another run
    edited = tmp_path / "site"
    edited.mkdir()
    for path in site.rglob("*"):
        target = edited / path.relative_to(site)
        if path.is_dir():
            target.mkdir(exist_ok=True)
        else:
            target.write_text(path.read_text().replace("+ floor)", "+ 2 * floor)"))
    second = json.loads(fresh(edited, sys.executable, "-c", code).stdout.strip().splitlines()[-1])
    assert second[0]["plugins"]["row_scaled"] != first[0]["plugins"]["row_scaled"] and second[1] != first[1]
