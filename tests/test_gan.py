import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course_utils.models import RNNClassifier
from course_utils.pruning.gan import (
    Discriminator,
    FistaMasks,
    GALConfig,
    MaskedStudent,
    fold_masks,
    kept_units,
    logit_gap,
    mask_keys,
    soft_threshold,
    train_gal,
)
from course_utils.text import make_loader


def batch(seed=0, vocab=30, lengths=(6, 4, 3, 1)):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor(lengths)
    tokens = torch.randint(1, vocab, (len(lengths), int(lengths.max())), generator=g)
    for i, n in enumerate(lengths):
        tokens[i, n:] = 0
    return tokens, lengths


@settings(max_examples=30, deadline=None)
@given(
    cell=st.sampled_from(["lstm", "gru", "rnn"]),
    layers=st.integers(1, 3),
    bidirectional=st.booleans(),
    pooling=st.sampled_from(["max", "mean", "last"]),
    seed=st.integers(0, 20),
)
def test_all_ones_masks_reproduce_the_teacher(cell, layers, bidirectional, pooling, seed):
    torch.manual_seed(seed)
    teacher = RNNClassifier(
        30,
        3,
        embed_dim=5,
        hidden_size=4,
        num_layers=layers,
        cell=cell,
        bidirectional=bidirectional,
        pooling=pooling,
    ).eval()
    student = MaskedStudent(teacher).eval()
    tokens, lengths = batch(seed)
    assert len(student.masks) == layers * (2 if bidirectional else 1)
    with torch.no_grad():
        assert torch.allclose(student(tokens, lengths), teacher(tokens, lengths), atol=1e-6)
        assert torch.allclose(
            fold_masks(student)(tokens, lengths), teacher(tokens, lengths), atol=1e-6
        )


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_a_zero_mask_cuts_the_unit_off(cell):
    torch.manual_seed(0)
    teacher = RNNClassifier(
        30, 3, embed_dim=5, hidden_size=4, num_layers=2, cell=cell, bidirectional=True
    ).eval()
    student = MaskedStudent(teacher).eval()
    tokens, lengths = batch()
    with torch.no_grad():
        student.masks["l0_reverse"][2] = 0.0
        student.masks["l1"][1] = 0.0
        before = student(tokens, lengths)
        # whatever unit 2 (backward, layer 0) and unit 1 (forward, layer 1) compute, nobody reads it
        gates = {"lstm": 4, "gru": 3, "rnn": 1}[cell]
        for g in range(gates):
            student.model.rnn.weight_ih_l0_reverse[g * 4 + 2].normal_()
            student.model.rnn.weight_hh_l1[g * 4 + 1].normal_()
        after = student(tokens, lengths)
        assert torch.allclose(before, after, atol=1e-6)
        # and a unit that is not masked does matter
        student.model.rnn.weight_hh_l1[0].normal_()
        assert not torch.allclose(before, student(tokens, lengths), atol=1e-4)


def test_fista_step_matches_the_formula():
    masks = torch.nn.ParameterDict({"l0": torch.nn.Parameter(torch.tensor([1.0, 0.5, 0.05, 0.8]))})
    fista = FistaMasks(masks, lr=0.1, lam=0.4)
    lr, lam = 0.1, 0.4
    grad1 = torch.tensor([0.2, -1.0, 0.3, 0.0])
    m0 = torch.tensor([1.0, 0.5, 0.05, 0.8])
    # step 1: a_0 = 1, so y_0 = m_0
    m1 = torch.clamp(soft_threshold(m0 - lr * grad1, lr * lam), min=0)
    fista.step({"l0": grad1})
    assert torch.allclose(fista.current["l0"], m1)
    a0, a1 = 1.0, (1 + math.sqrt(5)) / 2
    assert fista.a == pytest.approx(a1)
    y1 = m1 + ((a0 - 1) / a1) * (m1 - m0)  # (a_0 - 1) = 0: no momentum yet
    assert torch.allclose(masks["l0"].detach(), y1)
    # step 2 uses the momentum (a_1 - 1) / a_2
    grad2 = torch.tensor([-0.1, 0.4, 0.0, 0.3])
    m2 = torch.clamp(soft_threshold(y1 - lr * grad2, lr * lam), min=0)
    fista.step({"l0": grad2})
    a2 = (1 + math.sqrt(1 + 4 * a1 * a1)) / 2
    assert torch.allclose(fista.current["l0"], m2)
    assert torch.allclose(masks["l0"].detach(), m2 + ((a1 - 1) / a2) * (m2 - m1))
    assert (fista.current["l0"] >= 0).all() and fista.alive() == int((m2 > 0).sum())


def test_soft_threshold_and_kept_units():
    x = torch.tensor([-2.0, -0.5, 0.0, 0.3, 1.5])
    assert soft_threshold(x, 0.5).tolist() == [-1.5, 0.0, 0.0, 0.0, 1.0]
    masks = {"l0": torch.tensor([0.0, 0.7, 0.0, 0.2]), "l0_reverse": torch.zeros(4)}
    kept = kept_units(masks)
    assert kept["l0"].tolist() == [1, 3] and kept["l0_reverse"].numel() == 1
    assert kept_units(masks, keep=1)["l0"].tolist() == [1]
    with pytest.raises(ValueError, match="keep must be in"):
        kept_units(masks, keep=5)


def test_short_training_shrinks_masks_and_the_logit_gap(synthetic_data):
    vocab, train, valid = synthetic_data
    torch.manual_seed(0)
    teacher = RNNClassifier(len(vocab), 3, embed_dim=8, hidden_size=8)
    from course_utils.train import train_model

    train_loader, valid_loader = make_loader(train, 16, shuffle=True), make_loader(valid, 64)
    train_model(teacher, train_loader, valid_loader, epochs=8, lr=1e-2, progress=False)
    # the student starts from a damaged copy, so there is a gap to close
    damaged = RNNClassifier(len(vocab), 3, embed_dim=8, hidden_size=8)
    damaged.load_state_dict(teacher.state_dict())
    with torch.no_grad():
        for p in damaged.rnn.parameters():
            p.add_(0.3 * torch.randn_like(p))
    start_gap = logit_gap(teacher, damaged, valid_loader)["logit_mse"]
    config = GALConfig(lam=0.05, epochs=4, lr=5e-3, mask_lr=0.05, mask_every=1, seed=0)
    result = train_gal(teacher, train_loader, valid_loader, config, student=damaged, progress=False)
    assert not result.diverged
    assert result.history["mask_l1"][-1] < 0.95 * 8  # the L1 penalty shrank the masks
    assert result.history["valid_logit_mse"][-1] < 0.5 * start_gap
    assert all(math.isfinite(v) for v in result.history["d_loss"])
    ablation = train_gal(
        teacher,
        train_loader,
        valid_loader,
        GALConfig(lam=0.05, epochs=1, adv_weight=0.0),
        progress=False,
    )
    assert all(math.isnan(v) for v in ablation.history["d_loss"])  # no discriminator at all


def test_divergence_stops_with_a_message_and_keeps_the_last_good_state(synthetic_data, monkeypatch):
    vocab, train, valid = synthetic_data
    teacher = RNNClassifier(len(vocab), 3, embed_dim=8, hidden_size=8)
    loader = make_loader(train, 16)
    calls = {"n": 0}
    original = torch.nn.functional.mse_loss

    def poisoned(a, b, *args, **kwargs):
        calls["n"] += 1
        return original(a, b) * (float("nan") if calls["n"] > len(loader) + 3 else 1.0)

    monkeypatch.setattr(torch.nn.functional, "mse_loss", poisoned)
    with pytest.warns(RuntimeWarning, match="diverged at epoch 2"):
        result = train_gal(
            teacher, loader, make_loader(valid, 64), GALConfig(epochs=3), progress=False
        )
    assert result.diverged and "last completed epoch" in result.message
    assert result.history["epoch"] == [1]
    assert all(torch.isfinite(p).all() for p in result.student.parameters())


def test_bad_input_gets_clear_errors():
    teacher = RNNClassifier(30, 3, embed_dim=5, hidden_size=4)
    with pytest.raises(ValueError, match="lam must be >= 0"):
        GALConfig(lam=-0.1).check()
    with pytest.raises(ValueError, match="lam must be >= 0"):
        train_gal(teacher, [], [], GALConfig(lam=-1.0))
    with pytest.raises(TypeError, match="teacher must be a course_utils RNNClassifier"):
        MaskedStudent(torch.nn.Linear(3, 3))
    other = RNNClassifier(30, 3, embed_dim=5, hidden_size=6)
    with pytest.raises(ValueError, match="architecture mismatch.*hidden_size"):
        MaskedStudent(teacher, other)
    with pytest.raises(ValueError, match="in_features"):
        Discriminator(0)
    assert mask_keys(
        RNNClassifier(30, 3, embed_dim=5, hidden_size=4, num_layers=2, bidirectional=True)
    ) == ["l0", "l0_reverse", "l1", "l1_reverse"]
