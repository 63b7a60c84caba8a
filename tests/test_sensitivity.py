"""Sensitivity scans: each row is the model with one tensor pruned, checked by hand."""

import copy
import math

import pytest
import torch
from helpers import padded_batch, same_weights
from matplotlib.figure import Figure
from torch import nn

from course_utils.models import RNNClassifier
from course_utils.pruning import get_masks, plot_sensitivity, sensitivity_scan

NAMES = ["embedding.weight", "rnn.weight_ih_l0", "rnn.weight_hh_l0", "classifier.weight"]
GROUPS = ["embedding", "recurrent", "recurrent", "classifier"]


def tiny_model():
    torch.manual_seed(0)
    return RNNClassifier(12, 3, embed_dim=4, hidden_size=5)


def batches():
    """Two fixed batches of 4 articles: labels (0, 1, 2, 1) and (2, 0, 0, 1)."""
    first = padded_batch((6, 4, 3, 1), vocab=12, seed=0)
    second = padded_batch((5, 5, 2, 4), vocab=12, seed=1)
    return [
        (*first, torch.tensor([0, 1, 2, 1])),
        (*second, torch.tensor([2, 0, 0, 1])),
    ]


@torch.no_grad()
def metrics_by_hand(model, loader):
    """Mean cross-entropy and accuracy over ``loader`` in eval mode."""
    model.eval()
    loss, correct, count = 0.0, 0, 0
    for tokens, lengths, labels in loader:
        logits = model(tokens, lengths)
        loss += float(nn.functional.cross_entropy(logits, labels, reduction="sum"))
        correct += int((logits.argmax(dim=1) == labels).sum())
        count += len(labels)
    return loss / count, correct / count


@torch.no_grad()
def with_smallest_zeroed(model, name, sparsity):
    """A copy of ``model`` whose tensor ``name`` lost its round(sparsity * n) smallest |w|."""
    model = copy.deepcopy(model)
    weight = dict(model.named_parameters())[name]
    k = round(sparsity * weight.numel())
    weight.view(-1)[weight.detach().abs().reshape(-1).argsort()[:k]] = 0.0
    return model


def test_each_row_is_the_model_with_that_one_tensor_pruned():
    model, loader = tiny_model(), batches()
    table = sensitivity_scan(model, loader, (0.5, 0.9))
    assert [(r["tensor"], r["sparsity"]) for r in table] == [("(dense)", 0.0)] + [
        (n, s) for n in NAMES for s in (0.5, 0.9)
    ]
    assert [r["group"] for r in table] == [""] + [g for g in GROUPS for _ in (0.5, 0.9)]
    loss, accuracy = metrics_by_hand(model, loader)
    assert table[0]["accuracy"] == accuracy and table[0]["loss"] == pytest.approx(loss)
    for row in table[1:]:
        loss, accuracy = metrics_by_hand(
            with_smallest_zeroed(model, row["tensor"], row["sparsity"]), loader
        )
        assert row["accuracy"] == accuracy, (row["tensor"], row["sparsity"])
        assert row["loss"] == pytest.approx(loss, rel=1e-6), (row["tensor"], row["sparsity"])


def test_the_model_is_not_modified():
    model = tiny_model()
    before = copy.deepcopy(model)
    sensitivity_scan(model, batches(), (0.5, 0.98), criterion="random")
    assert same_weights(model, before) and get_masks(model) == {}


def test_a_tensor_that_is_already_zero_does_not_care():
    model = tiny_model()
    with torch.no_grad():
        model.rnn.weight_hh_l0.zero_()
    table = sensitivity_scan(model, batches(), (0.5, 0.9))
    dense = (table[0]["accuracy"], table[0]["loss"])
    rows = {(r["tensor"], r["sparsity"]): (r["accuracy"], r["loss"]) for r in table[1:]}
    assert rows["rnn.weight_hh_l0", 0.5] == rows["rnn.weight_hh_l0", 0.9] == dense
    # while pruning 90 % of any other tensor does change the loss
    assert all(rows[name, 0.9][1] != dense[1] for name in NAMES if name != "rnn.weight_hh_l0")


def test_a_fully_pruned_classifier_predicts_its_bias():
    # 0.98 of the 15 classifier weights is round(14.7) = 15: the logits are the bias alone,
    # so every article gets class 1, and 3 of the 8 labels are 1
    model = tiny_model()
    bias = [0.5, 2.0, -1.0]
    with torch.no_grad():
        model.classifier.bias.copy_(torch.tensor(bias))
    table = sensitivity_scan(model, batches(), (0.98,), names=["classifier.weight"])
    row = table[1]
    assert row["accuracy"] == 3 / 8
    log_norm = math.log(sum(math.exp(b) for b in bias))
    labels = [0, 1, 2, 1, 2, 0, 0, 1]
    assert row["loss"] == pytest.approx(sum(log_norm - bias[y] for y in labels) / 8, rel=1e-6)


def test_random_scans_are_seeded_and_differ_from_magnitude():
    model, loader = tiny_model(), batches()
    options = {"sparsities": (0.5, 0.9), "names": NAMES[2:]}
    runs = [
        sensitivity_scan(model, loader, criterion="random", seed=seed, **options)
        for seed in (3, 3, 4)
    ]
    magnitude = sensitivity_scan(model, loader, **options)
    losses = [[r["loss"] for r in table] for table in (*runs, magnitude)]
    assert losses[0] == losses[1]
    assert losses[0] != losses[2] and losses[0] != losses[3]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"criterion": "taylor"}, ValueError, r"unknown criterion='taylor'; choose from"),
        ({"sparsities": []}, ValueError, r"sparsities must be a non-empty list of numbers"),
        ({"sparsities": 0.5}, ValueError, r"sparsities must be a non-empty list.*got 0.5"),
        ({"sparsities": (0.5, 1.0)}, ValueError, r"sparsities must be .*\[0, 1\)"),
        ({"names": []}, ValueError, r"names is empty"),
        ({"names": ["rnn.nope"]}, ValueError, r"names has tensor name 'rnn.nope'"),
        ({"names": ["rnn.bias_hh_l0"]}, ValueError, r"'rnn.bias_hh_l0'.*not a prunable"),
    ],
)
def test_bad_input_is_a_clear_error(kwargs, error, message):
    kwargs = {"sparsities": (0.5,)} | kwargs
    with pytest.raises(error, match=message):
        sensitivity_scan(tiny_model(), batches(), **kwargs)


def test_the_plot_draws_one_curve_per_tensor_and_the_dense_line():
    model, loader = tiny_model(), batches()
    table = sensitivity_scan(model, loader, (0.9, 0.5), names=NAMES[1:3])
    ax = plot_sensitivity(table, Figure().subplots())
    lines = ax.get_lines()
    assert [line.get_label() for line in lines] == [*NAMES[1:3], "dense"]
    for line, name in zip(lines[:2], NAMES[1:3], strict=True):
        rows = sorted((r for r in table if r["tensor"] == name), key=lambda r: r["sparsity"])
        assert list(line.get_xdata()) == [50.0, 90.0]
        assert list(line.get_ydata()) == [100 * r["accuracy"] for r in rows]
    assert list(lines[-1].get_ydata()) == [100 * table[0]["accuracy"]] * 2
    assert ax.get_xlabel() == "sparsity of that tensor alone (%)"
