"""The method registry: options and their rules, labels, what a model supports, and plug-ins that fail to load."""

from __future__ import annotations

import warnings

import pytest
from torch import nn

import oneshot_lab as ol
from oneshot_lab.pruning import registry


def test_every_builtin_method_is_registered_once_with_help_and_options():
    names = list(ol.METHODS)
    assert names[:3] == ["magnitude", "random", "taylor"] and len(names) == len(set(names))
    assert {"obd", "obd_ggn", "obs", "woodfisher", "obc", "sparsegpt", "wanda"} <= set(names)
    updating = {n for n, m in ol.METHODS.items() if m.updates_weights}
    assert updating == {"obs", "woodfisher", "obc", "sparsegpt", "chita", "chita_pp"}
    scoring = {n for n, m in ol.METHODS.items() if m.score is not None}
    assert "wanda" not in scoring | updating and "magnitude" in scoring
    for method in ol.METHODS.values():
        assert method.help and all(o.help for o in method.options) and method.source.startswith("oneshot_lab.")
        assert method.check_options({}) == {o.name: o.default for o in method.options}


@pytest.mark.parametrize("option, value, expected", [
    (ol.Option("k", 3, "x", ol.Rule("int", 1)), 2.0, 2),
    (ol.Option("k", None, "x", ol.Rule("int", 1)), None, None),
    (ol.Option("f", 0.5, "x", ol.Rule("float", 0.0, open_minimum=True)), 1, 1.0),
    (ol.Option("c", "a", "x", ol.Rule("str", choices=("a", "b"))), "b", "b"),
    (ol.Option("b", False, "x", ol.Rule("bool")), True, True),
    (ol.Option("samples", 64, "x"), 3, 3),
])
def test_an_option_accepts_and_normalises_its_values(option, value, expected):
    assert option.check(value) == expected and type(option.check(value)) is type(expected)


@pytest.mark.parametrize("option, value, message", [
    (ol.Option("k", 3, "x", ol.Rule("int", 1)), 0, "k must be an integer >= 1, got 0"),
    (ol.Option("k", 3, "x", ol.Rule("int", 1)), True, "k must be an integer >= 1, got True"),
    (ol.Option("f", 0.5, "x", ol.Rule("float", 0.0, open_minimum=True)), 0, "f must be a number > 0.0, got 0"),
    (ol.Option("c", "a", "x", ol.Rule("str", choices=("a", "b"))), "z", "unknown c 'z'; valid choices: a, b"),
    (ol.Option("b", False, "x", ol.Rule("bool")), 1, "b must be True or False, got 1"),
    (ol.Option("samples", 64, "x"), 0, r"samples must be an integer in \[1, 10000000\], got 0"),
])
def test_an_option_refuses_what_it_does_not_accept(option, value, message):
    with pytest.raises(ValueError, match=message):
        option.check(value)


def test_an_option_checks_like_the_notebook_parameter_of_its_name():
    from oneshot_lab.util import rules

    for name in ("samples", "damp", "batch_size", "probes", "block_size", "max_weights"):
        assert ol.Option(name, 1, "x").rule is rules.for_name(name)
    with pytest.raises(ValueError, match="option 'floor' has no rule: pass rule=ol.Rule"):
        ol.Option("floor", 0.0, "x")


def test_accepted_values_in_words():
    assert ol.Option("k", None, "x", ol.Rule("int", 1)).accepted() == "an integer >= 1 or None"
    assert ol.Option("f", 0.5, "x", ol.Rule("float", 0.0, open_minimum=True)).accepted() == "a number > 0.0"
    assert ol.Option("c", "a", "x", ol.Rule("str", choices=("a", "b"))).accepted() == "one of a, b"
    assert "max_weights=12000: largest number of prunable weights 'obs' accepts [an integer in [1, 1000000000]]" in \
        ol.METHODS["obs"].describe()


def test_labels_name_a_method_and_a_scope():
    assert registry.split_label("obc/layer") == ("obc", "layer")
    assert registry.labels(["magnitude", "obc"], ("global",)) == ["magnitude/global", "obc/global"]
    for bad in ("obc", "obc/row", None):
        with pytest.raises(ValueError, match="write 'method/scope'"):
            registry.split_label(bad)
    with pytest.raises(ValueError, match="unknown method 'lamp' in 'lamp/global'; a method of your own must be "
                                         "registered in this process .* entry point in the group 'oneshot_lab.methods'"):
        registry.split_label("lamp/global")


def test_supports_explains_a_refusal(synthetic):
    grouped = nn.Sequential(nn.Unflatten(1, (2, 10)), nn.Conv1d(2, 4, 3, groups=2), nn.Flatten(), nn.Linear(32, 4))
    assert "groups=2" in ol.METHODS["obc"].unsupported(grouped)
    assert ol.METHODS["magnitude"].unsupported(grouped) is None
    big = ol.build("mlp", synthetic, widths=[600])  # 14,400 prunable weights
    assert "above max_weights=12000" in ol.METHODS["obs"].unsupported(big)
    assert ol.METHODS["obs"].unsupported(big, {"max_weights": 10**6}) is None
    inplace = nn.Sequential(nn.Linear(20, 8), nn.ReLU(inplace=True), nn.Linear(8, 4))
    assert "BackPACK cannot compute the 'ggn'" in ol.METHODS["obd"].unsupported(inplace)
    assert ol.METHODS["obd"].unsupported(inplace, {"curvature": "hutchinson"}) is None


def test_a_broken_plugin_warns_and_the_lab_goes_on(monkeypatch):
    class Broken:
        name, value = "broken", "nowhere:METHOD"

        def load(self):
            raise ImportError("no module named nowhere")

    fresh = registry.Registry()
    monkeypatch.setattr(registry.metadata, "entry_points", lambda group: [Broken()] if group == registry.GROUP else [])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert "magnitude" in fresh and "broken" not in fresh
    assert any("plug-in method 'broken' (nowhere:METHOD) not loaded" in str(w.message) for w in caught)


def test_a_configuration_names_every_option_with_the_value_it_runs_with():
    assert ol.METHODS["sparsegpt"].configuration({"samples": 64}) == "samples=64, damp=0.01, block_size=128"
    assert ol.METHODS["magnitude"].configuration() == "no options"
    with pytest.raises(ValueError, match="has no option 'bogus'"):
        ol.METHODS["obc"].configuration({"bogus": 1})
