"""Chapter 4's widget, headless: the compute function, the cache and the view."""

import pytest
import torch

from course_utils.models import RNNClassifier
from course_utils.pruning.structured import unit_norms
from course_utils.text import make_loader
from course_utils.widgets import UnitsKeptExplorer, units_kept_stats


@pytest.fixture
def model_and_loader(synthetic_data):
    vocab, train, _ = synthetic_data
    torch.manual_seed(0)
    model = RNNClassifier(len(vocab), 3, embed_dim=8, hidden_size=12, bidirectional=True).eval()
    return model, make_loader(train, 64, shuffle=False)


def test_units_kept_stats_measures_the_shrunk_model(model_and_loader):
    model, loader = model_and_loader
    scores = unit_norms(model)
    full = units_kept_stats(model, scores, 12, eval_loader=loader, seq_len=8, repeats=2)
    small = units_kept_stats(model, scores, 3, eval_loader=loader, seq_len=8, repeats=2)
    assert set(full) == {"units", "accuracy", "latency_ms", "raw_bytes", "params_without_embedding"}
    assert set(small["latency_ms"]) == {1, 64} and all(v > 0 for v in small["latency_ms"].values())
    assert small["raw_bytes"] < full["raw_bytes"]
    assert small["params_without_embedding"] < full["params_without_embedding"]
    # 3 units per direction: 2 * (3 * 4 * (8 + 3 + 2)) LSTM weights + classifier 3 * 6 + 3
    assert small["params_without_embedding"] == 2 * 4 * 3 * (8 + 3 + 2) + 3 * 6 + 3
    assert 0 <= small["accuracy"] <= 1
    with pytest.raises(ValueError, match="units"):
        units_kept_stats(model, scores, 13, eval_loader=loader, seq_len=8)


def test_explorer_caches_results_and_builds_its_view_headless(model_and_loader):
    model, loader = model_and_loader
    explorer = UnitsKeptExplorer(model, loader, seq_len=8, batch_sizes=(1,), repeats=2)
    first = explorer.stats(4)
    assert explorer.stats(4) is first, "a second look at the same count is served from the cache"
    html = explorer.report(4)
    assert "accuracy" in html and "latency, batch 1" in html and "x</td>" in html
    view = explorer.view(value=6)
    slider, report, error = view.children
    assert slider.value == 6 and not slider.continuous_update and slider.max == 12
    assert "units-explorer" in view._dom_classes and "<table>" in report.value
    slider.value = 2  # moving the slider recomputes through the observer
    assert 2 in explorer.cache and 12 in explorer.cache
    assert report.value == explorer.report(2) and error.value == ""


def test_explorer_shows_a_failed_update_in_its_error_label(model_and_loader):
    model, loader = model_and_loader
    explorer = UnitsKeptExplorer(model, loader, seq_len=8, batch_sizes=(1,), repeats=2)
    view = explorer.view(value=3)
    slider, report, error = view.children
    explorer.report = lambda units: 1 / 0  # a broken update must not raise into the kernel
    slider.value = 4
    assert "ZeroDivisionError" in error.value
