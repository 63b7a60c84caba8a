"""Chapter 5's widget, headless: the λ grid, the compute function, the cache and the view."""

import pytest
import torch

from course_utils.models import RNNClassifier
from course_utils.pruning.gan import GALConfig, logit_gap
from course_utils.text import make_loader
from course_utils.train import train_model
from course_utils.widgets import GALThresholdExplorer, gal_threshold_stats, train_lambda_grid


@pytest.fixture(scope="module")
def grid():
    from conftest import synthetic_examples

    from course_utils.text import TextClassificationDataset, basic_tokenize
    from course_utils.text import build_vocab_from_iterator as build

    train, valid = synthetic_examples(120, 0), synthetic_examples(60, 1)
    vocab = build(basic_tokenize(t) for t, _ in train)
    train_set = TextClassificationDataset(train, vocab, num_classes=3)
    valid_set = TextClassificationDataset(valid, vocab, num_classes=3)
    train_loader, valid_loader = (
        make_loader(train_set, 16, shuffle=True),
        make_loader(valid_set, 64),
    )
    torch.manual_seed(0)
    teacher = RNNClassifier(len(vocab), 3, embed_dim=8, hidden_size=10, bidirectional=True)
    train_model(teacher, train_loader, valid_loader, epochs=6, lr=1e-2, progress=False)
    config = GALConfig(epochs=2, lr=3e-3, mask_every=1, seed=0)
    runs = train_lambda_grid(
        teacher.eval(), train_loader, valid_loader, [0.1, 0.4], config, progress=False
    )
    return teacher, runs, valid_loader


def test_the_grid_trains_one_run_per_lambda(grid):
    _, runs, _ = grid
    assert list(runs) == [0.1, 0.4]
    l1 = {lam: sum(float(m.sum()) for m in r.masks.values()) for lam, r in runs.items()}
    assert l1[0.4] < l1[0.1], "a larger λ must leave smaller masks"
    with pytest.raises(ValueError, match="lams is empty"):
        train_lambda_grid(grid[0], [], [], [])


def test_threshold_stats_count_units_and_measure_the_smaller_model(grid):
    teacher, runs, loader = grid
    result = runs[0.1]
    at_zero = gal_threshold_stats(result, 0.0, loader)
    assert at_zero["units_kept"] == {
        slot: max(1, int((m > 0).sum())) for slot, m in result.masks.items()
    }
    assert at_zero["hidden_size"] == max(at_zero["units_kept"].values())
    # removing only dead units changes nothing: the accuracy is the masked student's
    assert at_zero["accuracy"] == pytest.approx(
        logit_gap(teacher, result.student, loader)["accuracy"]
    )
    middle = float(torch.cat(list(result.masks.values())).median())
    higher = gal_threshold_stats(result, middle, loader)
    assert sum(higher["units_kept"].values()) < sum(at_zero["units_kept"].values())
    assert higher["params_without_embedding"] < at_zero["params_without_embedding"]
    everything = gal_threshold_stats(result, 1e6, loader)
    assert everything["units_kept"] == {slot: 1 for slot in result.masks}
    with pytest.raises(ValueError, match="threshold must be a number >= 0"):
        gal_threshold_stats(result, -1.0, loader)
    with pytest.raises(TypeError, match="result must be a GALResult"):
        gal_threshold_stats(teacher, 0.0, loader)


def test_explorer_caches_results_and_builds_its_view_headless(grid):
    _, runs, loader = grid
    explorer = GALThresholdExplorer(runs, loader)
    first = explorer.stats(0.1, 0.1)
    assert explorer.stats(0.1, 0.1) is first, "the same slider position is served from the cache"
    html = explorer.report(0.4, 0.05)
    assert "validation accuracy" in html and "units kept" in html
    with pytest.raises(ValueError, match="was not trained"):
        explorer.stats(0.5, 0.0)
    view = explorer.view()
    lam_slider, threshold_slider, report, error = view.children
    assert not lam_slider.continuous_update and not threshold_slider.continuous_update
    assert lam_slider.value == 0.4 and threshold_slider.max >= explorer.max_mask() - 1e-3
    threshold_slider.value = 0.2  # moving a slider recomputes through the observer
    lam_slider.value = 0.1
    assert (0.1, 0.2) in explorer.cache and (0.4, 0.2) in explorer.cache
    assert report.value == explorer.report(0.1, 0.2) and error.value == ""
    explorer.runs[0.1] = "broken"  # a failing update shows its error instead of raising
    explorer.cache.clear()
    threshold_slider.value = 0.3
    assert "TypeError" in error.value
    with pytest.raises(ValueError, match="runs is empty"):
        GALThresholdExplorer({}, loader)
