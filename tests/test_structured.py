"""Removing hidden units and embedding dimensions: equivalence, selection, bad input."""

import helpers
import pytest
import torch
from helpers import architectures, rnn_model, same_weights
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from course_utils.checkpoints import load_checkpoint, save_checkpoint
from course_utils.measure import count_parameters
from course_utils.pruning import set_masks, structured
from course_utils.pruning.regularization import hidden_unit_groups

VOCAB = 25


def model_for(cell, layers, bidirectional, pooling, hidden, embed, seed=0):
    arch = {"cell": cell, "layers": layers, "bidirectional": bidirectional, "pooling": pooling}
    return rnn_model(VOCAB, 3, hidden=hidden, embed=embed, dropout=0.2, seed=seed, **arch)


def padded_batch(lengths, seed):
    return helpers.padded_batch(lengths, vocab=VOCAB, seed=seed)


configs = st.builds(
    lambda arch, hidden, embed: {**arch, "hidden": hidden, "embed": embed},
    architectures(max_layers=3),
    st.integers(1, 8),
    st.integers(1, 6),
)


@st.composite
def keep_sets(draw, model):
    """Random unit subsets per slot (sometimes a single unit, sometimes slots left out)."""
    hidden = model.rnn.hidden_size
    keep = {}
    for slot in structured.unit_slots(model):
        if draw(st.booleans()) or hidden == 1:
            size = draw(st.integers(1, hidden))
            units = draw(st.permutations(range(hidden)))[:size]
            keep[slot] = units if draw(st.booleans()) else torch.tensor(units)
    return keep


@given(config=configs, data=st.data())
@settings(max_examples=120, deadline=None)
def test_shrunk_model_equals_the_masked_original(config, data):
    model = model_for(**config)
    keep = data.draw(keep_sets(model))
    lengths = data.draw(st.lists(st.integers(1, 9), min_size=1, max_size=5))
    tokens, lengths = padded_batch(lengths, seed=len(lengths))
    before = {k: v.clone() for k, v in model.state_dict().items()}

    shrunk = structured.remove_hidden_units(model, keep)
    counts = structured.units_kept(structured.check_keep(model, keep))
    assert shrunk.rnn.hidden_size == max(counts.values())
    assert type(shrunk.rnn) is type(model.rnn) and not shrunk.training
    for reads_only in (False, True):
        masked = structured.mask_hidden_units(model, keep, reads_only=reads_only)
        diff = (shrunk(tokens, lengths) - masked(tokens, lengths)).abs().max().item()
        assert diff <= 1e-5, f"max abs difference {diff:.2e} (reads_only={reads_only})"
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@given(config=configs, data=st.data())
@settings(max_examples=60, deadline=None)
def test_model_without_some_embedding_dims_equals_the_masked_original(config, data):
    model = model_for(**config)
    embed = config["embed"]
    size = data.draw(st.integers(1, embed))
    keep_dims = data.draw(st.permutations(range(embed)))[:size]
    tokens, lengths = padded_batch(data.draw(st.lists(st.integers(1, 9), min_size=1)), seed=1)
    shrunk = structured.remove_embedding_dims(model, keep_dims)
    assert shrunk.embedding.embedding_dim == size and shrunk.rnn.input_size == size
    masked = structured.mask_embedding_dims(model, keep_dims)
    assert (shrunk(tokens, lengths) - masked(tokens, lengths)).abs().max() <= 1e-5


def test_masking_a_unit_changes_the_output_so_the_equivalence_is_not_trivial():
    model = model_for("lstm", 2, True, "max", 5, 4)
    tokens, lengths = padded_batch([6, 3, 2], seed=0)
    keep = {(0, 0): [1, 3], (0, 1): [0, 2], (1, 0): [4], (1, 1): [0, 1, 2]}
    shrunk = structured.remove_hidden_units(model, keep)
    assert shrunk.rnn.hidden_size == 3
    assert (shrunk(tokens, lengths) - model(tokens, lengths)).abs().max() > 1e-3
    assert count_parameters(shrunk)["recurrent"] < count_parameters(model)["recurrent"]


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("module", [nn.LSTM, nn.GRU, nn.RNN])
def test_bare_rnn_modules_shrink_and_padding_units_stay_zero(module, batch_first):
    torch.manual_seed(0)
    rnn = module(3, 6, num_layers=2, bidirectional=True, batch_first=batch_first).eval()
    keep = {(0, 0): [1, 4], (0, 1): [0, 2, 5], (1, 0): [3], (1, 1): [0, 5]}
    shrunk = structured.remove_hidden_units(rnn, keep)
    assert shrunk.hidden_size == 3 and shrunk.batch_first == batch_first
    x = torch.randn(4, 7, 3) if batch_first else torch.randn(7, 4, 3)
    masked = structured.mask_hidden_units(rnn, keep)
    out, _ = shrunk(x)
    want, _ = masked(x)
    # last layer: forward keeps units [3] -> position 0, backward [0, 5] -> positions 0, 1
    assert torch.allclose(out[..., 0], want[..., 3], atol=1e-6)
    assert torch.allclose(out[..., 3:5], want[..., [6, 11]], atol=1e-6)
    assert torch.all(out[..., 1:3] == 0) and torch.all(out[..., 5] == 0), "padding units are dead"


def test_chapter2_masks_shrink_with_their_weights_and_checkpoints_round_trip(tmp_path):
    model = model_for("lstm", 1, False, "max", 6, 4)
    w = model.rnn.weight_hh_l0
    set_masks(model, {"rnn.weight_hh_l0": torch.rand(w.shape) > 0.5})
    keep = {(0, 0): [0, 3, 5]}
    shrunk = structured.remove_hidden_units(model, keep)
    mask = shrunk.rnn.weight_hh_l0_mask
    rows = torch.tensor([g * 6 + k for g in range(4) for k in (0, 3, 5)])
    assert torch.equal(mask, model.rnn.weight_hh_l0_mask[rows][:, [0, 3, 5]])
    remove = {(0, 0): [0, 3, 5]}
    plain = structured.remove_hidden_units(model_for("lstm", 1, False, "max", 6, 4), remove)
    save_checkpoint(tmp_path / "small.pt", plain)
    loaded, _ = load_checkpoint(tmp_path / "small.pt")
    assert loaded.config()["hidden_size"] == 3 and same_weights(loaded, plain)


def test_removal_composes_units_then_embedding_dims():
    model = model_for("gru", 2, True, "mean", 5, 4)
    tokens, lengths = padded_batch([5, 2], seed=3)
    keep, dims = {(0, 0): [1, 2], (0, 1): [0, 4], (1, 0): [0, 1], (1, 1): [2, 3]}, [0, 2]
    both = structured.remove_embedding_dims(structured.remove_hidden_units(model, keep), dims)
    masked = structured.mask_embedding_dims(structured.mask_hidden_units(model, keep), dims)
    assert (both(tokens, lengths) - masked(tokens, lengths)).abs().max() <= 1e-5
    assert both.rnn.hidden_size == 2 and both.embedding.embedding_dim == 2


# --- selection -------------------------------------------------------------------------


def test_select_units_keeps_the_top_scores_sorted():
    scores = {
        (0, 0): torch.tensor([0.1, 3.0, 2.0, 0.5]),
        (0, 1): torch.tensor([1.0, 1.0, 0.0, 2.0]),
    }
    keep = structured.select_units(scores, 2)
    assert keep[(0, 0)].tolist() == [1, 2] and keep[(0, 1)].tolist() == [0, 3]
    assert structured.select_units(scores, 0.25)[(0, 0)].tolist() == [1]
    partial = structured.select_units(scores, {(0, 1): 1})
    assert partial[(0, 0)].tolist() == [0, 1, 2, 3] and partial[(0, 1)].tolist() == [3]
    with pytest.raises(ValueError, match="keep count"):
        structured.select_units(scores, 5)
    with pytest.raises(ValueError, match="fraction"):
        structured.select_units(scores, 0.0)
    with pytest.raises(ValueError, match="no scores"):
        structured.select_units(scores, {(2, 0): 1})
    with pytest.raises(ValueError, match="NaN"):
        structured.select_units({(0, 0): torch.tensor([float("nan")])}, 1)


def test_select_units_by_norm_uses_the_iss_group_norms():
    model = model_for("lstm", 2, True, "max", 6, 4)
    groups = hidden_unit_groups(model)
    norms = groups.norms(model).reshape(4, 6)
    keep = structured.select_units_by_norm(model, 2)
    for i, slot in enumerate(structured.unit_slots(model)):
        assert keep[slot].tolist() == sorted(torch.topk(norms[i], 2).indices.tolist())
    assert torch.equal(structured.unit_norms(model)[(1, 1)], norms[3])


def test_nonzero_units_and_keep_from_masks():
    model = model_for("lstm", 1, True, "max", 5, 4)
    groups = hidden_unit_groups(model)
    dead = torch.zeros(len(groups), dtype=torch.bool)
    dead[[0, 2, 5, 6, 7, 8, 9]] = True  # slot (0, 1) loses every unit
    groups.zero_(model, dead)
    keep = structured.nonzero_units(model)
    assert keep[(0, 0)].tolist() == [1, 3, 4] and len(keep[(0, 1)]) == 1
    masks = {(0, 0): torch.tensor([True, False, True, False, False])}
    assert structured.keep_from_masks(masks)[(0, 0)].tolist() == [0, 2]
    with pytest.raises(ValueError, match="keeps no unit"):
        structured.keep_from_masks({(0, 0): torch.zeros(5, dtype=torch.bool)})


def test_layer_sensitivity_shrinks_one_slot_at_a_time():
    model = model_for("lstm", 2, False, "max", 6, 4)
    seen = []

    def evaluate_fn(m):
        seen.append(m.rnn.hidden_size)
        return float(sum(int(torch.count_nonzero(p)) for p in m.parameters()))

    curves = structured.layer_sensitivity(model, evaluate_fn, [1, 3])
    assert set(curves) == {(0, 0), (1, 0)} and list(curves[(0, 0)]) == [6, 3, 1]
    assert seen == [6, 6, 6, 6, 6], "one slot shrunk alone keeps the fused hidden size (padding)"
    for curve in curves.values():
        assert curve[6] > curve[3] > curve[1]


def test_allocate_units_takes_units_from_the_least_sensitive_slot():
    sensitivity = {
        (0, 0): {8: 0.95, 4: 0.94, 2: 0.93, 1: 0.90},  # robust
        (1, 0): {8: 0.95, 4: 0.80, 2: 0.50, 1: 0.30},  # sensitive
    }
    assert structured.allocate_units(sensitivity, 10) == {(0, 0): 2, (1, 0): 8}
    assert structured.allocate_units(sensitivity, 16) == {(0, 0): 8, (1, 0): 8}
    with pytest.raises(ValueError, match="budget"):
        structured.allocate_units(sensitivity, 1)


# --- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("keep", "error", "match"),
    [
        ({(0, 0): [0, 6]}, ValueError, r"outside \[0, 6\)"),
        ({(0, 0): [1, 1, 2]}, ValueError, "duplicated"),
        ({(0, 0): []}, ValueError, "empty"),
        ({(2, 0): [0]}, ValueError, r"does not have"),
        ({(0, 1): [0]}, ValueError, r"does not have"),
        ({(0, 0): [0.5]}, TypeError, "integer"),
        ({(0, 0): torch.tensor([0.0, 1.0])}, TypeError, "integer"),
        ([0, 1], TypeError, "keep must be a dict"),
    ],
)
def test_bad_keep_gives_a_clear_error(keep, error, match):
    model = model_for("lstm", 2, False, "max", 6, 4)
    with pytest.raises(error, match=match):
        structured.remove_hidden_units(model, keep)
    with pytest.raises(error, match=match):
        structured.mask_hidden_units(model, keep)


def test_unsupported_modules_and_bad_dims_give_clear_errors():
    model = model_for("lstm", 1, False, "max", 4, 4)
    with pytest.raises(TypeError, match="RNNClassifier"):
        structured.remove_hidden_units(nn.Linear(3, 3), {})
    odd = model_for("lstm", 1, False, "max", 4, 4)
    odd.rnn = nn.Sequential(nn.Linear(4, 4))
    with pytest.raises(TypeError, match="unsupported module type Sequential"):
        structured.remove_hidden_units(odd, {})
    with pytest.raises(ValueError, match="keep_dims"):
        structured.remove_embedding_dims(model, [4])
    with pytest.raises(ValueError, match="keep_dims is empty"):
        structured.remove_embedding_dims(model, [])


def test_lstm_with_projections_is_refused():
    with pytest.raises(ValueError, match="proj_size"):
        structured.remove_hidden_units(nn.LSTM(3, 4, proj_size=2), {})
