"""Oracle cases from outside the course, with their expected values written out by hand.

Two sources, each case mapped to the course's API (``prune``, ``set_masks``,
``select_global``) and checked against the expected tensor the source states:

- PyTorch's own tests of ``torch.nn.utils.prune`` (``test/nn/test_pruning.py``):
  L1 unstructured pruning with and without importance scores, pruning twice, global
  pruning over two Linear layers, ties at one magnitude, and an LSTM that still runs on
  its pruned flat weights.
- MIT 6.5940 (EfficientML) lab 1, ``test_fine_grained_prune``: a 5x5 tensor pruned to
  75 % (and to 10 non-zeros) by magnitude.

Where the course's ``scores`` differ from PyTorch's ``importance_scores`` (PyTorch ranks
``|importance|``; the course keeps the highest score), the test passes ``|importance|``.
"""

import math

import pytest
import torch
from torch import nn

from course_utils.pruning import get_masks, prune, remove_masks, set_masks


def linear_with(weight: list[list[float]]) -> nn.Linear:
    """A Linear layer whose weight is the given matrix (the bias plays no part)."""
    w = torch.tensor(weight, dtype=torch.float32)
    layer = nn.Linear(w.shape[1], w.shape[0])
    with torch.no_grad():
        layer.weight.copy_(w)
    return layer


def sigmoid(v: float) -> float:
    return 1 / (1 + math.exp(-v))


def as_mask(rows: list[list[int]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.bool)


# --- PyTorch test_pruning.py: test_l1_unstructured_pruning ------------------------------


def test_l1_unstructured_removes_the_two_smallest_then_the_next_two():
    m = linear_with([[1, 2, 3, 4], [-4, -3, -2, -1]])
    prune(m, 2 / 8)  # PyTorch: amount=2 of 8 weights
    assert torch.equal(m.weight, torch.tensor([[0.0, 2, 3, 4], [-4, -3, -2, 0]]))
    # pruning again takes the next two smallest and keeps the first two pruned
    prune(m, 4 / 8)
    assert torch.equal(m.weight, torch.tensor([[0.0, 0, 3, 4], [-4, -3, 0, 0]]))
    assert torch.equal(get_masks(m)["weight"], as_mask([[0, 0, 1, 1], [1, 1, 0, 0]]))


# --- test_l1_unstructured_pruning_with_importance_scores --------------------------------


def test_l1_unstructured_with_importance_scores_ranks_the_scores_not_the_weights():
    m = linear_with([[1, 2, 3, 4], [-4, -3, -2, -1]])
    importance = torch.tensor([[4.0, 2, 1, 3], [-3, -1, -2, -4]])
    prune(m, 2 / 8, scores={"weight": importance.abs()})
    assert torch.equal(m.weight, torch.tensor([[1.0, 2, 0, 4], [-4, 0, -2, -1]]))
    prune(m, 4 / 8, scores={"weight": importance.abs()})
    assert torch.equal(m.weight, torch.tensor([[1.0, 0, 0, 4], [-4, 0, 0, -1]]))


# --- test_prune / test_prune_importance_scores: a prior mask is respected -----------------


def test_pruning_on_top_of_a_prior_mask_adds_the_smallest_live_weights():
    m = linear_with([[1, 2, 3, 4], [5, 6, 7, 8]])
    set_masks(m, {"weight": as_mask([[1, 1, 1, 0], [1, 1, 0, 1]])})
    prune(m, 4 / 8)  # PyTorch: amount=2 more on top of the 2 already pruned
    assert torch.equal(get_masks(m)["weight"], as_mask([[0, 0, 1, 0], [1, 1, 0, 1]]))
    assert torch.equal(m.weight, torch.tensor([[0.0, 0, 3, 0], [5, 6, 0, 8]]))


def test_prior_mask_with_importance_scores():
    m = linear_with([[1, 2, 3, 4], [5, 6, 7, 8]])
    set_masks(m, {"weight": as_mask([[1, 1, 1, 0], [1, 1, 0, 1]])})
    importance = torch.tensor([[1, 2, 3, 4], [1.5, 1.6, 1.7, 1.8]])
    prune(m, 4 / 8, scores={"weight": importance})
    assert torch.equal(get_masks(m)["weight"], as_mask([[0, 1, 1, 0], [0, 1, 0, 1]]))
    assert torch.equal(m.weight, torch.tensor([[0.0, 2, 3, 0], [0, 6, 0, 8]]))


# --- test_global_pruning and test_global_pruning_importance_scores ------------------------


def two_linears() -> nn.ModuleDict:
    return nn.ModuleDict(
        {"m": linear_with([[1, 2, 3, 4], [-4, -3, -2, -1]]), "n": linear_with([[0, 0.1, -2]])}
    )


def test_global_unstructured_over_two_linear_layers():
    model = two_linears()
    prune(model, 4 / 11, scope="global")  # PyTorch: amount=4 of the 11 weights
    assert torch.equal(model["m"].weight, torch.tensor([[0.0, 2, 3, 4], [-4, -3, -2, 0]]))
    assert torch.equal(model["n"].weight, torch.tensor([[0.0, 0, -2]]))


def test_global_unstructured_with_importance_scores():
    model = two_linears()
    scores = {
        "m.weight": torch.tensor([[4.0, 2, 1, 3], [-3, -1, -2, -4]]).abs(),
        "n.weight": torch.tensor([[0, 10.0, -0.2]]).abs(),
    }
    prune(model, 4 / 11, scope="global", scores=scores)
    assert torch.equal(model["m"].weight, torch.tensor([[1.0, 2, 0, 4], [-4, 0, -2, -1]]))
    assert torch.equal(model["n"].weight, torch.tensor([[0.0, 0.1, 0]]))


# --- test_unstructured_pruning_same_magnitude: ties ---------------------------------------


def test_ties_prune_exactly_the_requested_count_not_everything_at_the_threshold():
    # PyTorch: entries in {-2, 0, 2}, amount=0.2 of 70 -> exactly 14 pruned
    g = torch.Generator().manual_seed(0)
    weight = 2.0 * torch.randint(-1, 2, (10, 7), generator=g)
    m = nn.Linear(7, 10)
    with torch.no_grad():
        m.weight.copy_(weight)
    mask = prune(m, 0.2)["weight"]
    assert int((~mask).sum()) == 14
    # every pruned entry is among the smallest: none is larger than a kept one
    assert weight.abs()[~mask].max() <= weight.abs()[mask].min()
    # all entries equal: still exactly the count (a threshold rule would prune all 70)
    flat = nn.Linear(7, 10)
    with torch.no_grad():
        flat.weight.fill_(2.0)
    assert int((~prune(flat, 0.2)["weight"]).sum()) == 14


# --- test_rnn_pruning: an LSTM keeps running on its pruned flat weights --------------------


def test_a_pruned_lstm_runs_on_the_masked_weights():
    lstm = nn.LSTM(2, 1)  # 4 parameters, as in PyTorch's test; the biases are set to 0
    with torch.no_grad():
        lstm.bias_ih_l0.zero_()
        lstm.bias_hh_l0.zero_()
        # rows: input, forget, cell and output gates; column 1 holds the small weights
        lstm.weight_ih_l0.copy_(torch.tensor([[1.0, 0.1], [2.0, -0.2], [3.0, 0.3], [4.0, -0.4]]))
        lstm.weight_hh_l0.fill_(0.5)
    prune(lstm, 0.5, names=["weight_ih_l0"])
    # PyTorch's reparametrization leaves 3 Parameters in _flat_weights; masking in place
    # keeps all 4, sharing storage with the module's parameters
    assert sum(isinstance(p, nn.Parameter) for p in lstm._flat_weights) == 4
    assert lstm._flat_weights[0].data_ptr() == lstm.weight_ih_l0.data_ptr()
    assert torch.equal(lstm._flat_weights[0][:, 1], torch.zeros(4))
    # one step from h0 = c0 = 0 with x = (1, 1): the gate inputs are (1, 2, 3, 4), not
    # the unpruned (1.1, 1.8, 3.3, 3.6); c1 = i * g, h1 = o * tanh(c1)
    c1 = sigmoid(1.0) * math.tanh(3.0)
    h1 = sigmoid(4.0) * math.tanh(c1)
    with torch.no_grad():
        out, (_, c) = lstm(torch.ones(1, 1, 2))
        assert float(out) == pytest.approx(h1, abs=1e-6)
        assert float(c) == pytest.approx(c1, abs=1e-6)
        # the second step reads h1 through the (unpruned) recurrent weights of 0.5
        out, _ = lstm(torch.ones(2, 1, 2))
        pre = [z + 0.5 * h1 for z in (1.0, 2.0, 3.0, 4.0)]
        c2 = sigmoid(pre[1]) * c1 + sigmoid(pre[0]) * math.tanh(pre[2])
        assert float(out[1]) == pytest.approx(sigmoid(pre[3]) * math.tanh(c2), abs=1e-6)
    remove_masks(lstm)
    assert sum(isinstance(p, nn.Parameter) for p in lstm._flat_weights) == 4
    with torch.no_grad():
        assert float(lstm(torch.ones(1, 1, 2))[0]) == pytest.approx(h1, abs=1e-6)


# --- MIT 6.5940 lab 1: test_fine_grained_prune --------------------------------------------

LAB_TENSOR = [
    [-0.46, -0.40, 0.39, 0.19, 0.37],
    [0.00, 0.40, 0.17, -0.15, 0.16],
    [-0.20, -0.23, 0.36, 0.25, 0.03],
    [0.24, 0.41, 0.07, 0.13, -0.15],
    [0.48, -0.09, -0.36, 0.12, 0.45],
]


# the lab's expected masks, one row of the 5x5 mask per word (1 = kept)
LAB_AT_75_PERCENT = "11000 01000 00000 01000 10001"  # round(0.75 * 25) = 19 zeros, 6 kept
LAB_TEN_NONZEROS = "11101 01000 00100 01000 10101"  # the lab's second question: keep 10


@pytest.mark.parametrize(
    ("sparsity", "kept", "values"),
    [
        (0.75, LAB_AT_75_PERCENT, [-0.46, -0.40, 0.40, 0.41, 0.48, 0.45]),
        (0.6, LAB_TEN_NONZEROS, [-0.46, -0.40, 0.39, 0.37, 0.40, 0.36, 0.41, 0.48, -0.36, 0.45]),
    ],
    ids=["75_percent_keeps_the_labs_six_weights", "ten_nonzeros_is_sparsity_0_6"],
)
def test_fine_grained_prune_gives_the_labs_masks(sparsity, kept, values):
    m = linear_with(LAB_TENSOR)
    mask = prune(m, sparsity)["weight"]
    expected = torch.tensor([[bit == "1" for bit in row] for row in kept.split()])
    assert torch.equal(mask, expected)
    assert int((m.weight == 0).sum()) == 25 - len(values)
    assert int(torch.count_nonzero(m.weight)) == len(values)
    assert torch.equal(m.weight[mask], torch.tensor(values))
