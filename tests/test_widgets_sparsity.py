"""Chapter 2's widgets, headless: the pure functions and the views driven by their controls."""

import copy
import html
import math

import pytest
import torch
from conftest import trained_synthetic_classifier
from helpers import same_weights

from course_utils.pruning import agp_sparsity, prune
from course_utils.train import evaluate
from course_utils.widgets import (
    agp_curve,
    agp_schedule_widget,
    explore_sparsity,
    explorer_cache,
    sparsity_explorer,
)
from course_utils.widgets.sparsity import heatmap_png, render_view

pytestmark = pytest.mark.usefixtures("one_thread")

PNG = b"\x89PNG"


@pytest.fixture(scope="module")
def trained():
    model, _, valid = trained_synthetic_classifier()
    return model, valid


@pytest.fixture
def setup(trained):
    model, valid = trained
    return copy.deepcopy(model), valid


def test_explore_sparsity_prunes_a_copy_and_matches_prune(setup):
    model, loader = setup
    original = copy.deepcopy(model)
    cache = explorer_cache(model, loader)
    for sparsity, scope, embedding in [
        (0.5, "layerwise", False),
        (0.9, "global", True),
        (0.7, "global_normalized", True),
    ]:
        view = explore_sparsity(model, loader, sparsity, "magnitude", scope, embedding, cache)
        pruned = copy.deepcopy(model)
        masks = prune(pruned, sparsity, scope=scope, include_embedding=embedding)
        assert math.isclose(view.accuracy, evaluate(pruned, loader)["accuracy"])
        for name, value in view.per_tensor.items():
            pruned_share = float((~masks[name]).float().mean()) if name in masks else 0.0
            assert math.isclose(value, pruned_share, abs_tol=1e-6), name
        assert (view.embedding_sparsity > 0) == embedding
    assert same_weights(model, original)  # the learner's model is never touched
    assert view.dense_accuracy == evaluate(model, loader)["accuracy"]


def test_layerwise_view_reports_the_requested_sparsity(setup):
    model, loader = setup
    cache = explorer_cache(model, loader)
    for s in (0.0, 0.25, 0.8, 0.95):
        view = explore_sparsity(model, loader, s, cache=cache)
        assert view.overall_sparsity == pytest.approx(s, abs=0.01)
        assert view.embedding_sparsity == 0.0
        assert view.kept == sum(
            round((1 - v) * p.numel())
            for (n, v), p in zip(view.per_tensor.items(), cache.dense.values(), strict=True)
        )
    sizes = [explore_sparsity(model, loader, s, cache=cache).estimated_bytes for s in (0, 0.5, 0.9)]
    assert sizes[0] == explore_sparsity(model, loader, 0.0, cache=cache).dense_bytes
    assert sizes[0] > sizes[1] > sizes[2]


def test_results_are_memoized_and_random_differs(setup):
    model, loader = setup
    cache = explorer_cache(model, loader)
    first = explore_sparsity(model, loader, 0.6, cache=cache)
    assert explore_sparsity(model, loader, 0.6, cache=cache) is first
    rand = explore_sparsity(model, loader, 0.6, "random", cache=cache)
    assert not torch.equal(rand.heatmap.isnan(), first.heatmap.isnan())
    assert rand.heatmap.isnan().float().mean() == pytest.approx(0.6, abs=0.01)


def test_explore_sparsity_bad_input(setup):
    model, loader = setup
    cache = explorer_cache(model, loader)
    with pytest.raises(ValueError, match=r"sparsity must be in \[0, 1\)"):
        explore_sparsity(model, loader, 1.0, cache=cache)
    with pytest.raises(ValueError, match="unknown criterion='taylor'"):
        explore_sparsity(model, loader, 0.5, "taylor", cache=cache)
    with pytest.raises(ValueError, match="unknown scope='per-row'"):
        explore_sparsity(model, loader, 0.5, scope="per-row", cache=cache)
    with pytest.raises(ValueError, match="cache was built for another model"):
        explore_sparsity(copy.deepcopy(model), loader, 0.5, cache=cache)
    with pytest.raises(ValueError, match="heatmap='rnn.weight_hh_l5'"):
        explorer_cache(model, loader, heatmap="rnn.weight_hh_l5")
    with pytest.raises(TypeError, match="data must be a Baseline or a validation loader"):
        explorer_cache(model, 3)


def test_max_examples_limits_the_evaluation(setup):
    model, loader = setup
    cache = explorer_cache(model, loader, max_examples=20)
    assert cache.examples == 20
    lengths = torch.cat([b[1] for b in cache.batches])
    assert lengths.tolist() == sorted(lengths.tolist(), reverse=True)


def test_static_rendering(setup):
    model, loader = setup
    view = explore_sparsity(model, loader, 0.5)
    assert heatmap_png(view).startswith(PNG)
    bars, heat = render_view(view)
    assert len(bars.patches) == len(view.per_tensor)
    import matplotlib.pyplot as plt

    plt.close("all")


def test_explorer_view_updates_its_labels_when_the_controls_move(setup):
    model, loader = setup
    original = copy.deepcopy(model)
    explorer = sparsity_explorer(model, loader, sparsity=0.5)
    assert "50.0 %" in explorer.overall.value and explorer.error.value == ""
    assert bytes(explorer.heatmap.value).startswith(PNG)
    first_accuracy = explorer.accuracy.value
    explorer.slider.value = 0.95
    assert "95.0 %" in explorer.overall.value
    assert explorer.view.sparsity == 0.95
    assert explorer.accuracy.value == (
        f"validation accuracy: <b>{100 * explorer.view.accuracy:.1f} %</b> "
        f"(dense {100 * explorer.view.dense_accuracy:.1f} %)"
    )
    assert explorer.bars["rnn.weight_hh_l0"].value == pytest.approx(95.0, abs=0.5)
    assert explorer.bars["embedding.weight"].value == 0.0
    assert "embedding 0.0 %" in explorer.overall.value
    explorer.include_embedding.value = True
    assert "embedding 95.0 %" in explorer.overall.value
    assert explorer.bars["embedding.weight"].value == pytest.approx(95.0, abs=0.5)
    explorer.scope.value = "global"
    explorer.criterion.value = "random"
    assert explorer.view.scope == "global" and explorer.view.criterion == "random"
    explorer.slider.value = 0.0
    assert explorer.accuracy.value.startswith(
        f"validation accuracy: <b>{100 * explorer.view.dense_accuracy:.1f} %"
    )
    assert explorer.view.dense_accuracy > 0.9
    explorer.slider.value = 0.99
    assert explorer.view.accuracy < 0.6 and explorer.accuracy.value != first_accuracy
    assert "kept:" in explorer.kept.value and "MB" in explorer.size.value
    assert same_weights(model, original)


def test_explorer_widgets_carry_stable_css_classes(setup):
    model, loader = setup
    explorer = sparsity_explorer(model, loader)
    classes = {
        "sparsity-slider": explorer.slider,
        "sparsity-criterion": explorer.criterion,
        "sparsity-scope": explorer.scope,
        "sparsity-embedding": explorer.include_embedding,
        "sparsity-accuracy": explorer.accuracy,
        "sparsity-overall": explorer.overall,
        "sparsity-kept": explorer.kept,
        "sparsity-size": explorer.size,
        "sparsity-heatmap": explorer.heatmap,
        "sparsity-error": explorer.error,
        "sparsity-explorer": explorer.widget,
    }
    for css, widget in classes.items():
        assert css in widget._dom_classes, css
    assert all("sparsity-bar" in bar._dom_classes for bar in explorer.bars.values())
    assert explorer.slider.continuous_update is False
    assert "application/vnd.jupyter.widget-view+json" in explorer._repr_mimebundle_()


def test_explorer_shows_errors_instead_of_raising(setup):
    model, loader = setup
    explorer = sparsity_explorer(model, loader)
    explorer.cache.scores["magnitude"] = {}  # break it on purpose
    explorer.slider.value = 0.3
    assert "KeyError" in explorer.error.value


# --- AGP widget ----------------------------------------------------------------------


def test_agp_curve_follows_agp_sparsity():
    steps, values = agp_curve(initial=0.1, final=0.9, start_step=20, num_updates=4, frequency=10)
    assert steps[0] == 0 and steps[-1] == 60 + 10
    assert values[0] == 0.1 and values[-1] == 0.9
    for t in (0, 25, 30, 59, 60):
        assert values[t] == agp_sparsity(
            t, initial=0.1, final=0.9, start_step=20, end_step=60, frequency=10
        )
    with pytest.raises(ValueError, match="num_updates must be a positive int"):
        agp_curve(initial=0, final=0.9, start_step=0, num_updates=0, frequency=10)


def test_agp_widget_redraws_when_sliders_move():
    widget = agp_schedule_widget(final=0.9, num_updates=10, frequency=50)
    assert "step 500" in widget.summary.value and "90.0 %" in widget.summary.value
    assert bytes(widget.plot.value).startswith(PNG)
    widget.frequency.value = 20
    widget.final.value = 0.8
    assert "step 200" in widget.summary.value and "80.0 %" in widget.summary.value
    assert widget.curve[1][-1] == 0.8
    widget.initial.value = 0.85  # above s_f: explained, not raised
    assert "final sparsity must be >= initial" in html.unescape(widget.summary.value)
    for css in ("agp-initial", "agp-final", "agp-start", "agp-updates", "agp-frequency"):
        assert any(
            css in w._dom_classes
            for w in widget.widget.children[0].children + widget.widget.children[1].children
        ), css
