"""Chapter 3's widget, headless: two criteria side by side, pure function and view."""

import copy

import pytest
import torch
from conftest import trained_synthetic_classifier
from helpers import same_weights

from course_utils.pruning import prune
from course_utils.pruning.criteria import jaccard
from course_utils.pruning.gradient import taylor_scores
from course_utils.train import evaluate
from course_utils.widgets import compare_two_criteria, criteria_cache, criteria_widget

NAMES = ["rnn.weight_ih_l0", "rnn.weight_hh_l0", "classifier.weight"]


@pytest.fixture(scope="module")
def trained():
    return trained_synthetic_classifier()


@pytest.fixture
def setup(trained):
    model, train_loader, valid = trained
    model = copy.deepcopy(model)
    return model, valid, {"taylor": taylor_scores(model, train_loader, num_batches=4)}


def test_side_by_side_matches_pruning_each_criterion_by_hand(setup):
    model, valid, scores = setup
    original = copy.deepcopy(model)
    cache = criteria_cache(model, valid, scores=scores)
    assert cache.criteria == ["magnitude", "random", "taylor"]
    for sparsity, scope in [(0.6, "layerwise"), (0.9, "global")]:
        view = compare_two_criteria(model, valid, "magnitude", "taylor", sparsity, scope, cache)
        masks = {}
        for criterion in ("magnitude", "taylor"):
            pruned = copy.deepcopy(model)
            masks[criterion] = prune(
                pruned,
                sparsity,
                scope=scope,
                names=NAMES,
                scores=scores.get(criterion),
            )
            want = evaluate(pruned, valid)["accuracy"]
            assert view.accuracy[criterion] == pytest.approx(want)
            for name in NAMES:
                want_sparsity = 1 - masks[criterion][name].float().mean().item()
                assert view.per_tensor[criterion][name] == pytest.approx(want_sparsity)
        assert view.overall_jaccard == pytest.approx(jaccard(masks["magnitude"], masks["taylor"]))
        for name in NAMES:
            assert view.jaccard[name] == pytest.approx(
                jaccard(masks["magnitude"][name], masks["taylor"][name])
            )
        assert view.chance_jaccard == pytest.approx((1 - sparsity) / (1 + sparsity))
        assert view.dense_accuracy == pytest.approx(evaluate(original, valid)["accuracy"])
    assert same_weights(model, original)  # the learner's model is never changed


def test_same_criterion_overlaps_fully_and_results_are_memoized(setup):
    model, valid, scores = setup
    cache = criteria_cache(model, valid, scores=scores)
    view = compare_two_criteria(model, valid, "taylor", "taylor", 0.8, cache=cache)
    assert view.overall_jaccard == 1.0 and set(view.jaccard.values()) == {1.0}
    assert len(cache.pruned) == 1
    compare_two_criteria(model, valid, "taylor", "random", 0.8, cache=cache)
    assert len(cache.pruned) == 2


def test_bad_input_is_refused_clearly(setup):
    model, valid, scores = setup
    cache = criteria_cache(model, valid, scores=scores)
    with pytest.raises(ValueError, match="unknown criterion_b='movement'"):
        compare_two_criteria(model, valid, "magnitude", "movement", 0.8, cache=cache)
    with pytest.raises(ValueError, match="sparsity must be in"):
        compare_two_criteria(model, valid, "magnitude", "taylor", 1.2, cache=cache)
    with pytest.raises(ValueError, match="unknown scope"):
        compare_two_criteria(model, valid, "magnitude", "taylor", 0.8, "rows", cache=cache)
    with pytest.raises(ValueError, match="another model"):
        compare_two_criteria(copy.deepcopy(model), valid, "magnitude", "taylor", 0.8, cache=cache)
    with pytest.raises(ValueError, match="lacks tensors"):
        criteria_cache(model, valid, scores={"taylor": {"rnn.weight_hh_l0": torch.zeros(1)}})
    with pytest.raises(TypeError, match="must be an nn.Module"):
        criteria_cache("model", valid)


def test_view_follows_its_controls_and_shows_errors(setup):
    model, valid, scores = setup
    view = criteria_widget(model, valid, scores=scores, criteria=("magnitude", "taylor"))
    assert view.view.criteria == ("magnitude", "taylor") and view.error.value == ""
    assert "Jaccard" in view.overlap.value and "rnn.weight_hh_l0" in view.table.value
    view.sparsity.value = 0.95
    view.criterion_b.value = "random"
    assert view.view.sparsity == pytest.approx(0.95) and view.view.criteria == (
        "magnitude",
        "random",
    )
    want = compare_two_criteria(model, None, "magnitude", "random", 0.95, cache=view.cache)
    assert view.view == want
    assert f"{100 * want.accuracy['random']:.1f} %" in view.accuracy.value
    view.scope.value = "global"
    assert view.view.scope == "global"
    view.cache.scores["random"] = {"rnn.weight_hh_l0": torch.zeros(1)}  # break it on purpose
    view.cache.pruned.clear()
    view.criterion_a.value = "random"
    assert "Error" in view.error.value  # shown in the widget, not raised in a callback
    assert "criteria-widget" in view.widget._dom_classes


def test_view_reuses_a_cache_built_before(setup):
    model, valid, scores = setup
    cache = criteria_cache(model, valid, scores=scores)
    compare_two_criteria(model, valid, "magnitude", "taylor", 0.9, cache=cache)
    view = criteria_widget(model, valid, cache=cache, criteria=("magnitude", "taylor"))
    assert view.cache is cache and len(cache.pruned) == 2  # nothing recomputed
    with pytest.raises(ValueError, match="another model"):
        criteria_widget(copy.deepcopy(model), valid, cache=cache)
