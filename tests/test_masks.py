"""Masks: kept exactly zero by every optimizer, saved and loaded, copied, reported."""

import copy
import io
import math
import warnings

import pytest
import torch
from helpers import same_weights
from torch import nn

from course_utils.checkpoints import load_checkpoint, save_checkpoint
from course_utils.models import RNNClassifier
from course_utils.pruning import (
    apply_masks,
    get_masks,
    keep_masks,
    overall_sparsity,
    prunable_parameters,
    prune,
    register_masks_from_state_dict,
    remove_masks,
    select,
    select_global,
    select_per_tensor,
    set_masks,
    sparsity_report,
)
from course_utils.text import make_loader
from course_utils.train import train_model

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models run fastest on one thread


CONTIGUOUS_WARNING = "contiguous chunk of memory"


def small_model(cell="lstm", bidirectional=True, num_layers=2):
    return RNNClassifier(
        40,
        3,
        embed_dim=6,
        hidden_size=5,
        num_layers=num_layers,
        cell=cell,
        bidirectional=bidirectional,
    )


def random_batch(vocab=40, batch=8, steps=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(1, vocab, (batch, steps), generator=g)
    lengths = torch.randint(1, steps + 1, (batch,), generator=g)
    lengths[0] = steps
    labels = torch.randint(0, 3, (batch,), generator=g)
    return tokens, lengths, labels


def pruned_weights(model):
    params = dict(model.named_parameters())
    return {name: params[name][~mask] for name, mask in get_masks(model).items()}


def zeros_and_target(model, sparsity):
    """Exact zeros over the prunable weights, and the layerwise count round(s * n) summed."""
    params = prunable_parameters(model).values()
    zeros = sum(int((p == 0).sum()) for p in params)
    return zeros, sum(round(sparsity * p.numel()) for p in params)


def all_zero(model):
    return all(bool((w == 0).all()) for w in pruned_weights(model).values())


def test_prunable_parameters_are_the_weight_matrices():
    model = small_model()
    names = list(prunable_parameters(model))
    assert names[0] == "embedding.weight" and names[-1] == "classifier.weight"
    assert "rnn.weight_hh_l1_reverse" in names and "rnn.weight_ih_l0" in names
    assert not any("bias" in n for n in names)
    assert "embedding.weight" not in prunable_parameters(model, include_embedding=False)


def test_a_model_without_prunable_weights_is_refused():
    with pytest.raises(ValueError, match="model has no prunable weights"):
        prunable_parameters(nn.Sequential(nn.ReLU()))
    with pytest.raises(ValueError, match="model has no prunable weights"):
        prune(nn.Sequential(nn.ReLU()), 0.5)


# --- optimizers cannot revive pruned weights ------------------------------------------

OPTIMIZERS = {
    "adam": lambda p: torch.optim.Adam(p, lr=0.05),
    "adamw": lambda p: torch.optim.AdamW(p, lr=0.05, weight_decay=0.5),
    "sgd_momentum": lambda p: torch.optim.SGD(p, lr=0.5, momentum=0.9, weight_decay=0.1),
}


def train_steps(model, optimizer, steps=25):
    for step in range(steps):
        tokens, lengths, labels = random_batch(seed=step)
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(tokens, lengths), labels).backward()
        optimizer.step()


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_keep_masks_keeps_pruned_weights_exactly_zero(name):
    model = small_model()
    prune(model, 0.7, include_embedding=True)
    before = copy.deepcopy(model)
    optimizer = OPTIMIZERS[name](model.parameters())
    keep_masks(optimizer, model)
    train_steps(model, optimizer)
    assert all_zero(model)
    survivors = model.rnn.weight_hh_l0[model.rnn.weight_hh_l0_mask]
    assert not torch.equal(survivors, before.rnn.weight_hh_l0[before.rnn.weight_hh_l0_mask])
    zeros, target = zeros_and_target(model, 0.7)
    assert zeros == target  # exactly round(0.7 * n) zeros in every tensor, even after training


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_without_keep_masks_the_optimizer_revives_pruned_weights(name):
    model = small_model()
    prune(model, 0.7)
    optimizer = OPTIMIZERS[name](model.parameters())
    train_steps(model, optimizer, steps=3)
    assert not all_zero(model)  # the hooks above are what keeps them at zero


def test_removing_the_hooks_stops_keeping_masks():
    model = small_model()
    prune(model, 0.7)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    for handle in keep_masks(optimizer, model):
        handle.remove()
    train_steps(model, optimizer, steps=3)
    assert not all_zero(model)


@pytest.mark.parametrize("name", ["adam", "sgd_momentum"])
def test_train_model_after_step_hook_keeps_pruned_weights_zero(name, synthetic_data):
    vocab, train, valid = synthetic_data
    model = RNNClassifier(len(vocab), 3, embed_dim=8, hidden_size=8)
    prune(model, 0.8, include_embedding=True)
    optimizer = OPTIMIZERS[name](model.parameters())
    train_model(
        model,
        make_loader(train, 16, shuffle=True),
        make_loader(valid, 64),
        epochs=3,
        optimizer=optimizer,
        after_step=lambda m, step: apply_masks(m),
        progress=False,
    )
    assert all_zero(model)
    zeros, target = zeros_and_target(model, 0.8)
    assert zeros == target


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_no_contiguous_memory_warning_when_pruning_training_copying(cell):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = small_model(cell)
        prune(model, 0.6)
        optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
        keep_masks(optimizer, model)
        train_steps(model, optimizer, steps=3)
        twin = copy.deepcopy(model)
        twin.load_state_dict(model.state_dict())
        twin(*random_batch()[:2]).sum().backward()
        remove_masks(twin)
        twin(*random_batch()[:2])
    messages = [str(w.message) for w in caught]
    assert not [m for m in messages if CONTIGUOUS_WARNING in m], messages
    # masking in place keeps the RNN's flat weights: same storage as before pruning
    assert model.rnn.weight_hh_l0.data_ptr() == model.rnn._flat_weights[1].data_ptr()


# --- copies, state_dict, checkpoints ----------------------------------------------------


def test_deepcopy_carries_independent_masks():
    model = small_model()
    prune(model, 0.5)
    twin = copy.deepcopy(model)
    assert same_weights(model, twin)
    assert set(get_masks(twin)) == set(get_masks(model))
    twin.rnn.weight_hh_l0_mask.fill_(False)
    assert model.rnn.weight_hh_l0_mask.any()
    model.eval(), twin.eval()
    tokens, lengths, _ = random_batch()
    other = copy.deepcopy(model)
    assert torch.equal(model(tokens, lengths), other(tokens, lengths))


def test_state_dict_round_trip_into_a_fresh_model():
    model = small_model()
    prune(model, 0.75, scope="global")
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    assert "rnn.weight_hh_l0_mask" in state and state["rnn.weight_hh_l0_mask"].dtype == torch.bool
    fresh = small_model()
    with pytest.raises(RuntimeError, match="Unexpected key"):
        fresh.load_state_dict(state)
    register_masks_from_state_dict(fresh, state)
    fresh.load_state_dict(state)
    assert same_weights(model, fresh)
    assert set(get_masks(fresh)) == set(get_masks(model))


def test_checkpoint_of_a_pruned_model_loads_with_its_masks(tmp_path):
    model = small_model()
    prune(model, 0.9)
    save_checkpoint(tmp_path / "pruned.pt", model)
    loaded, _ = load_checkpoint(tmp_path / "pruned.pt")
    assert same_weights(model, loaded) and set(get_masks(loaded)) == set(get_masks(model))


def test_remove_masks_makes_pruning_permanent():
    model = small_model()
    prune(model, 0.6)
    zeros = {n: (p == 0).sum() for n, p in model.named_parameters()}
    remove_masks(model)
    assert get_masks(model) == {}
    assert {n: (p == 0).sum() for n, p in model.named_parameters()} == zeros
    small_model().load_state_dict(model.state_dict())  # plain state_dict again


# --- set_masks: bad input --------------------------------------------------------------


def test_set_masks_rejects_a_mask_of_the_wrong_shape():
    model = small_model()
    with pytest.raises(ValueError, match=r"rnn.weight_hh_l0.*shape \(4, 4\).*\(20, 5\)"):
        set_masks(model, {"rnn.weight_hh_l0": torch.ones(4, 4, dtype=torch.bool)})


def test_set_masks_rejects_unknown_names_and_bad_values():
    model = small_model()
    with pytest.raises(ValueError, match="'rnn.nope'.*does not exist"):
        set_masks(model, {"rnn.nope": torch.ones(3)})
    with pytest.raises(ValueError, match="not a prunable weight"):
        set_masks(model, {"rnn.bias_hh_l0": torch.ones(20)})
    with pytest.raises(ValueError, match="only 0 and 1"):
        set_masks(model, {"classifier.weight": torch.full((3, 10), 0.5)})
    with pytest.raises(TypeError, match="must be a tensor"):
        set_masks(model, {"classifier.weight": [[1] * 10] * 3})
    with pytest.raises(TypeError, match="masks must be a dict"):
        set_masks(model, [torch.ones(3, 10)])


def test_set_masks_accepts_zero_one_floats_and_zeroes_in_place():
    model = small_model()
    mask = torch.zeros(3, 10)
    mask[0] = 1
    set_masks(model, {"classifier.weight": mask})
    assert get_masks(model)["classifier.weight"].dtype == torch.bool
    assert (model.classifier.weight[1:] == 0).all() and (model.classifier.weight[0] != 0).all()


# --- selection rules -------------------------------------------------------------------


def test_select_per_tensor_leaves_tensors_without_a_target_dense():
    scores = {"a": torch.arange(10.0), "b": torch.arange(4.0)}
    masks = select_per_tensor(scores, {"a": 0.3})
    assert masks["a"].tolist() == [False] * 3 + [True] * 7 and masks["b"].all()
    with pytest.raises(ValueError, match="targets names tensors that have no scores"):
        select_per_tensor(scores, {"c": 0.5})


def test_select_global_uses_one_threshold_and_normalization_evens_it_out():
    # "big": 10.000 .. 10.099, RMS 10.05, so |s| / RMS lies in [0.995, 1.005].
    # "small": 50 tiny scores (0.001 .. 0.05) and 50 large ones (1.01 .. 1.5), RMS 0.894,
    # so |s| / RMS is below 0.06 for the first half and above 1.13 for the second.
    step = torch.arange(1, 51, dtype=torch.float32)
    scores = {
        "big": 10 + 1e-3 * torch.arange(100, dtype=torch.float32),
        "small": torch.cat([1e-3 * step, 1 + 1e-2 * step]),
    }
    first_half = torch.arange(100) < 50
    # one threshold on the raw scores: every small score goes before any big one
    masks = select_global(scores, 0.5)
    assert not masks["small"].any() and masks["big"].all()
    # normalized: the 50 tiny small scores, then the 50 lowest big ones (all below 1.13)
    fair = select_global(scores, 0.5, normalize=True)
    assert torch.equal(fair["small"], ~first_half)
    assert torch.equal(fair["big"], ~first_half)


def test_select_rejects_an_unknown_scope_and_bad_scores():
    with pytest.raises(ValueError, match="unknown scope='everywhere'"):
        select({"a": torch.rand(4)}, 0.5, "everywhere")
    with pytest.raises(ValueError, match="scores is empty"):
        select({}, 0.5)
    with pytest.raises(ValueError, match="contains NaN"):
        select({"a": torch.tensor([1.0, float("nan")])}, 0.5)


# --- report ----------------------------------------------------------------------------


def test_sparsity_report_shows_the_embedding_apart_and_totals_add_up():
    model = small_model()
    prune(model, {"rnn.weight_hh_l0": 0.5, "classifier.weight": 0.9})
    report = sparsity_report(model)
    rows = {r["tensor"]: r for r in report}
    assert rows["embedding.weight"]["group"] == "embedding"
    assert rows["rnn.weight_hh_l0"]["sparsity"] == 0.5
    assert rows["classifier.weight"]["nonzero"] == 3
    without = rows["TOTAL without embedding"]
    with_embedding = rows["TOTAL with embedding"]
    assert with_embedding["params"] == without["params"] + rows["embedding.weight"]["params"]
    assert math.isclose(1 - without["nonzero"] / without["params"], without["sparsity"])
    assert math.isclose(without["sparsity"], overall_sparsity(model))
    assert "embedding.weight" in str(report) and "<table>" in report._repr_html_()
