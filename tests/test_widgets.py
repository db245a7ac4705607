"""The explorers driven without a kernel: set a control's value, check what was computed and shown against
masks, scores and evaluations made independently; caching; untouched models; bad input; headless display."""

import contextlib
import copy
import io
import re

import matplotlib
import numpy as np
import pytest
import torch
from torch import nn

import oneshot_lab as ol
from oneshot_lab.interactive import explorer, explorer_plots, widgets


@pytest.fixture(scope="module")
def trained(synthetic):
    """A small MLP trained briefly on the synthetic data."""
    net = ol.build("mlp", synthetic, seed=0, widths=(16, 8))
    ol.fit(net, synthetic, ol.TrainConfig(epochs=2, seed=0), progress=False)
    return net


@pytest.fixture()
def pruner(trained, synthetic):
    """A fresh pruning explorer over the trained MLP (fine-tuning one epoch)."""
    return widgets.explore(trained, synthetic, sparsity=0.5, finetune=ol.TrainConfig(epochs=1, seed=3))


def shown(html: str, css: str) -> float:
    """The number in the element of class `css` of the status HTML."""
    return float(re.search(rf"class='{css}'[^>]*>([0-9.]+)<", html).group(1))


def oracle(model, data, criterion, sparsity, scope):
    """Masks and test / val metrics computed directly from the package's primitives."""
    masks = ol.masks_from_scores(ol.pruning.prune.score(model, data, criterion), sparsity, scope)
    pruned = masks.apply(copy.deepcopy(model))
    return masks, {split: ol.evaluate(pruned, data, split) for split in ("test", "val")}


@pytest.mark.parametrize("criterion,scope", [("magnitude", "global"), ("taylor", "layer"), ("random", "global")])
def test_moving_the_slider_shows_the_masks_and_metrics_of_that_setting(pruner, trained, synthetic, criterion, scope):
    pruner.criterion.value, pruner.scope.value = criterion, scope
    before = (pruner.status.value, pruner.image.value)
    pruner.sparsity.value = 0.8
    masks, metrics = oracle(trained, synthetic, criterion, 0.8, scope)
    assert pruner.view.masks.equal(masks)
    for split in ("test", "val"):
        assert pruner.view.metrics[f"{split}_accuracy"] == metrics[split]["accuracy"]
        assert pruner.view.metrics[f"{split}_loss"] == pytest.approx(metrics[split]["loss"], rel=1e-6)
    status = pruner.status.value
    assert shown(status, "ol-test-accuracy") == pytest.approx(metrics["test"]["accuracy"], abs=5e-5)
    assert shown(status, "ol-val-loss") == pytest.approx(metrics["val"]["loss"], abs=5e-5)
    assert shown(status, "ol-density") == pytest.approx(masks.density(), abs=5e-5)
    assert status != before[0] and pruner.image.value != before[1] and bytes(pruner.image.value).startswith(b"\x89PNG")


def test_scores_once_per_criterion_masks_and_evaluations_once_per_setting(pruner):
    computed = pruner.state.computed
    assert computed == {"scores": 1, "masks": 1, "evaluations": 1, "finetunes": 0}
    for sparsity in (0.6, 0.7, 0.5, 0.6, 0.7):
        pruner.sparsity.value = sparsity
    assert computed == {"scores": 1, "masks": 3, "evaluations": 3, "finetunes": 0}
    pruner.layer.value = pruner.layer.options[-1]  # a redraw only
    pruner.scope.value = "layer"
    pruner.criterion.value = "random"
    pruner.criterion.value = "magnitude"
    assert computed == {"scores": 2, "masks": 5, "evaluations": 5, "finetunes": 0}
    assert len(pruner.timings) == 10 and all(t["total_s"] >= t["compute_s"] for t in pruner.timings)


def test_layer_scope_gives_every_layer_the_same_density_and_the_layer_choice_the_heatmap(pruner):
    pruner.scope.value = "layer"
    pruner.sparsity.value = 0.75
    table = pruner.view.layers
    expected = [1 - round(0.75 * n) / n for n in table["entries"]]
    assert table["density"].tolist() == pytest.approx(expected)
    pruner.layer.value = pruner.layer.options[1]
    assert pruner.figure.axes[1].get_title().startswith(f"mask of {pruner.layer.options[1]}:")
    image = pruner.figure.axes[1].get_images()[0].get_array()
    assert image.shape == (8, 16) and image.sum() == int(pruner.view.masks[pruner.layer.options[1]].sum())


def test_a_collapsed_layer_is_flagged(synthetic):
    net = ol.build("mlp", synthetic, seed=0, widths=(16, 8))
    with torch.no_grad():
        net[-1].weight.mul_(1e-6)  # the smallest magnitudes: global pruning empties this layer first
    last = ol.prunable(net)[-1]
    view = widgets.explore(net, synthetic, sparsity=0.1, finetune=None)
    assert view.view.layers.set_index("layer").loc[last, "collapsed"]
    assert re.search(rf"class='ol-collapsed'[^>]*>{re.escape(last)}<", view.status.value)
    assert "collapsed" in [t.get_text() for t in view.figure.axes[0].texts]
    assert view.finetune_button.disabled


def test_fine_tuning_matches_a_direct_fit_under_the_mask_and_leaves_the_model_untouched(pruner, trained, synthetic):
    weights = {k: v.clone() for k, v in trained.state_dict().items()}
    pruner.sparsity.value = 0.7
    pruner.finetune()
    masks = ol.masks_from_scores(ol.pruning.criteria.magnitude(trained), 0.7, "global")
    copy_ = masks.apply(copy.deepcopy(trained))
    ol.fit(copy_, synthetic, ol.TrainConfig(epochs=1, seed=3), masks=masks, progress=False)
    assert pruner.view.finetuned["test_accuracy"] == ol.evaluate(copy_, synthetic, "test")["accuracy"]
    assert "ol-finetuned-test-accuracy" in pruner.status.value
    assert "after fine-tuning" in pruner.summary().index[-1]
    pruner.finetune()
    assert pruner.state.computed["finetunes"] == 1
    assert all(torch.equal(weights[k], v) for k, v in trained.state_dict().items())
    assert not pruner.finetune_button.disabled


def test_the_criterion_dropdown_lists_only_what_the_model_supports(synthetic):
    assert explorer.supported_methods(ol.build("mlp", synthetic, seed=0)) == list(ol.METHODS)
    inplace = nn.Sequential(nn.Linear(20, 8), nn.ReLU(inplace=True), nn.Linear(8, 4))
    listed = widgets.explore(inplace, synthetic, finetune=None).criterion.options
    for name in ol.METHODS:
        curvature = {"obd": "ggn"}.get(name, name[len("obd_"):])
        if name.startswith("obd"):
            with pytest.raises(ValueError) if name != "obd_hutchinson" else contextlib.nullcontext():
                ol.pruning.curvature.check(inplace, curvature)
            assert (name in listed) == (name == "obd_hutchinson")
        else:
            assert name in listed
    grouped = nn.Sequential(nn.Unflatten(1, (2, 10)), nn.Conv1d(2, 4, 3, groups=2), nn.Flatten(), nn.Linear(32, 4))
    assert "wanda" not in explorer.supported_methods(grouped)
    assert "groups=2" in explorer.unsupported(grouped, "wanda")


def test_bad_input_is_a_clear_error_before_any_work(trained, synthetic):
    with pytest.raises(ValueError, match="the explorer needs a torch model, got str"):
        widgets.explore("net", synthetic)
    with pytest.raises(ValueError, match="Dataset .*got dict"):
        widgets.explore(trained, {})
    with pytest.raises(ValueError, match="method 'nope'.*magnitude"):
        widgets.explore(trained, synthetic, criterion="nope")
    with pytest.raises(ValueError, match="sparsity"):
        widgets.explore(trained, synthetic, sparsity=1.5)
    with pytest.raises(ValueError, match="scope"):
        widgets.explore(trained, synthetic, scope="row")
    with pytest.raises(ValueError, match="unknown layer 'x'; prunable layers: 1.weight"):
        widgets.explore(trained, synthetic, layer="x")
    with pytest.raises(ValueError, match="finetune must be a TrainConfig"):
        widgets.explore(trained, synthetic, finetune=3)


def test_a_model_the_pruners_cannot_take_is_one_value_error_before_the_explorer_starts(synthetic, monkeypatch):
    from test_prune import SHAPES  # the same models as ol.prune and the studies refuse, with the same messages

    monkeypatch.setattr(explorer.PruningState, "_measure", lambda *a: pytest.fail("evaluation started"))
    for make, message in SHAPES.values():
        with pytest.raises(ValueError) as error:
            widgets.explore(make(), synthetic, finetune=None)
        assert message in str(error.value) and "\n" not in str(error.value)


def pixels(png: bytes):
    """The RGBA pixels of PNG bytes."""
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGBA")).astype(int)


@pytest.mark.parametrize("style", [{}, {"axes.grid": True, "xtick.direction": "in", "ytick.direction": "inout"}])
def test_a_slider_move_redraws_in_place_the_picture_a_full_redraw_draws(trained, synthetic, style):
    with matplotlib.rc_context(style):
        pruner = widgets.explore(trained, synthetic, sparsity=0.5, finetune=None)
        other_layer, collapsed = pruner.layer.options[1], set()
        for sparsity, layer in [(0.6, None), (0.99, None), (0.3, None), (0.3, other_layer), (0.8, None), (0.0, None)]:
            bars, heat = pruner.figure.axes
            artists = (bars, bars.containers[0], heat.get_images()[0])
            pruner.layer.value = layer or pruner.layer.value
            pruner.sparsity.value = sparsity
            if layer is None:  # only the sparsity moved: the same artists, changed
                assert (bars, bars.containers[0], heat.get_images()[0]) == artists
            collapsed |= {sparsity} if pruner.view.layers["collapsed"].any() else set()
            shown_now, layer = pixels(pruner.image.value), pruner.layer.value
            assert np.array_equal(shown_now, pixels(explorer_plots.PruningFigure().png(pruner.view, layer)))
            left_edge = round(heat.get_window_extent().x0)  # the heatmap now covers its y ticks' inner ends there
            for figure in (explorer_plots.pruning_figure(pruner.view, layer), pruner.figure):  # as a user may save it
                differ = np.argwhere((shown_now != pixels(explorer_plots.png(figure))).any(axis=-1))
                assert set(differ[:, 1]) <= {left_edge} and len(differ) <= len(heat.get_yticks())
        assert collapsed == {0.99} and pruner.state.computed["masks"] == 6  # the red "collapsed" note came and went


def test_headless_display_shows_the_numbers_and_the_figure_not_a_widget(pruner, monkeypatch):
    import IPython.display

    shown_objects = []
    monkeypatch.setattr(IPython.display, "display", lambda obj: shown_objects.append(obj))
    monkeypatch.setenv("ONESHOT_LAB_HEADLESS", "1")
    pruner._ipython_display_()
    table, image = shown_objects
    assert list(table.index) == ["dense", "magnitude/global at 0.5"]
    assert table.loc["dense", "test_accuracy"] == pruner.state.dense["test_accuracy"]
    assert image.data == pruner.image.value
    monkeypatch.setenv("ONESHOT_LAB_HEADLESS", "0")
    pruner._ipython_display_()
    assert shown_objects[-1] is pruner.widget


# ---------------------------------------------------------------- the ticket explorer

@pytest.fixture(scope="module")
def imp_result(synthetic):
    """Two IMP levels of a tiny MLP with two controls."""
    net = ol.build("mlp", synthetic, seed=0, widths=(16, 8))
    config = ol.studies.lottery.rewinding.IMPConfig(train=ol.TrainConfig(iterations=30, eval_every=10), levels=2, rate=0.5,
                                  controls=("random_mask", "reinit"))
    return ol.studies.lottery.rewinding.imp(net, synthetic, config, progress=False)


def test_the_level_slider_and_condition_show_that_rows_metrics_and_masks(imp_result):
    ticket = widgets.tickets(imp_result)
    assert ticket.condition.options == ("ticket", "random_mask", "reinit") and ticket.level.value == 2
    metrics = imp_result.metrics.set_index(["level", "condition"])
    for level, condition, masks in [(1, "ticket", imp_result.masks[1]), (2, "reinit", imp_result.masks[2]),
                                    (1, "random_mask", imp_result.control_masks["random_mask"][1]),
                                    (0, "ticket", imp_result.masks[0])]:
        ticket.level.value, ticket.condition.value = level, condition
        shown_as = "dense" if level == 0 else condition
        row = metrics.loc[(level, shown_as)]
        assert ticket.view.masks.equal(masks) and ticket.view.condition == shown_as
        assert shown(ticket.status.value, "ol-test-accuracy") == pytest.approx(row["early_stop_test_accuracy"], abs=5e-5)
        assert shown(ticket.status.value, "ol-weights") == pytest.approx(row["weights_remaining"], abs=5e-3)
        ring = ticket.figure.axes[0].collections[-1].get_offsets()[0]
        assert tuple(ring) == pytest.approx((row["weights_remaining"], row["early_stop_test_accuracy"]))
        assert ticket.view.layers["kept"].tolist() == [int(m.sum()) for m in masks.values()]
    assert ticket.summary().index[0] == (0, "dense")


def test_tickets_takes_notebook_03s_results_by_seed_and_rejects_bad_input(imp_result):
    assert widgets.tickets({5: imp_result}, level=1).view.level == 1
    with pytest.raises(ValueError, match="lottery.IMPResult .*got str"):
        widgets.tickets("result")
    with pytest.raises(ValueError, match="empty mapping"):
        widgets.tickets({})
    with pytest.raises(ValueError, match="level"):
        widgets.tickets(imp_result, level=3)
    with pytest.raises(ValueError, match="condition.*shuffled.*ticket, random_mask, reinit"):
        widgets.tickets(imp_result, condition="shuffled")
