"""Chapter 5's GAN-guided pruning: soft masks, FISTA, the discriminator's view, train_gal."""

import itertools
import math
import warnings

import pytest
import torch
from helpers import architectures, padded_batch, rnn_model, same_weights
from hypothesis import given, settings
from hypothesis import strategies as st

from course_utils.models import RNNClassifier
from course_utils.pruning.gan import (
    CachedTeacher,
    Discriminator,
    FistaMasks,
    GALConfig,
    MaskedStudent,
    discriminator_input,
    discriminator_loss,
    discriminator_step,
    fold_masks,
    gal_parts,
    instance_noise,
    kept_units,
    logit_gap,
    logits_and_features,
    mask_iterates,
    mask_prox_step,
    mask_slots,
    mask_step,
    remove_masked_units,
    soft_threshold,
    student_step,
    train_gal,
    validate_masks,
)
from course_utils.pruning.soft_masks import frozen_copy
from course_utils.pruning.structured import mask_hidden_units, remove_hidden_units
from course_utils.text import make_loader
from course_utils.train import train_model

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models run fastest on one thread


def batch(seed=0):
    return padded_batch((6, 4, 3, 1), seed=seed)


def tiny(cell="lstm", layers=1, bidirectional=False, pooling="max", hidden=4, seed=0):
    arch = {"cell": cell, "layers": layers, "bidirectional": bidirectional, "pooling": pooling}
    return rnn_model(30, 3, hidden=hidden, embed=5, seed=seed, **arch)


@settings(max_examples=30, deadline=None)
@given(arch=architectures(max_layers=3), seed=st.integers(0, 20))
def test_all_ones_masks_reproduce_the_teacher(arch, seed):
    teacher = tiny(**arch, seed=seed)
    student = MaskedStudent(teacher).eval()
    tokens, lengths = batch(seed)
    assert len(student.masks) == arch["layers"] * (2 if arch["bidirectional"] else 1)
    assert list(student.mask_values()) == mask_slots(teacher)
    with torch.no_grad():
        assert torch.allclose(student(tokens, lengths), teacher(tokens, lengths), atol=1e-6)
        assert torch.allclose(
            fold_masks(student)(tokens, lengths), teacher(tokens, lengths), atol=1e-6
        )


@settings(max_examples=30, deadline=None)
@given(arch=architectures(max_layers=3), seed=st.integers(0, 20))
def test_removing_zero_masks_is_exact(arch, seed):
    """The physically smaller model equals the masked student at its masks."""
    teacher = tiny(**arch, hidden=5, seed=seed)
    student = MaskedStudent(teacher).eval()
    g = torch.Generator().manual_seed(seed)
    masks = {}
    for slot in mask_slots(teacher):
        m = torch.rand(5, generator=g) * 2  # values in [0, 2): some grow, some shrink
        m[torch.rand(5, generator=g) < 0.5] = 0.0  # about half the units are dead
        masks[slot] = m
    masks[mask_slots(teacher)[0]] = torch.zeros(5)  # a slot with every unit dead
    small = remove_masked_units(student, masks)
    alive = {slot: max(1, int((m > 0).sum())) for slot, m in masks.items()}
    assert small.rnn.hidden_size == max(alive.values())
    tokens, lengths = batch(seed)
    with torch.no_grad():
        gap = (small(tokens, lengths) - student(tokens, lengths, masks=masks)).abs().max()
    assert gap <= 1e-5
    # chapter 4's keep spec, straight from the masks
    keep = kept_units(masks)
    assert keep[mask_slots(teacher)[0]].numel() == 1
    with torch.no_grad():
        folded = fold_masks(student, masks)
        assert torch.allclose(
            remove_hidden_units(folded, keep)(tokens, lengths),
            mask_hidden_units(folded, keep, reads_only=True)(tokens, lengths),
            atol=1e-5,
        )


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_a_zero_mask_cuts_the_unit_off(cell):
    teacher = tiny(cell, layers=2, bidirectional=True)
    student = MaskedStudent(teacher).eval()
    tokens, lengths = batch()
    masks = student.mask_values()
    masks[(0, 1)][2] = 0.0
    masks[(1, 0)][1] = 0.0
    student.set_masks(masks)
    with torch.no_grad():
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
    assert torch.allclose(mask_prox_step(m0, grad1, lr, lam), m1)
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


def test_fista_restarts_its_momentum_when_it_points_uphill():
    start = torch.tensor([1.0, 1.0])
    masks = torch.nn.ParameterDict({"l0": torch.nn.Parameter(start.clone())})
    fista = FistaMasks(masks, lr=0.1, lam=0.0, restart=True)
    for _ in range(3):  # the gradient pushes the masks down: momentum builds up
        fista.step({"l0": torch.ones(2)})
    assert fista.restarts == 0 and fista.a > 2
    ahead, before = masks["l0"].detach().clone(), fista.current["l0"].clone()
    assert (ahead < before).all()  # y runs ahead of m
    # now the gradient pulls them up a little: from y, the step still ends below m_k,
    # so the move m_k -> m_{k+1} goes uphill and the momentum restarts
    fista.step({"l0": -0.2 * torch.ones(2)})
    m = fista.current["l0"]
    assert torch.allclose(m, ahead + 0.02) and (m < before).all()
    assert fista.restarts == 1 and fista.a == pytest.approx((1 + math.sqrt(5)) / 2)
    assert torch.equal(masks["l0"].detach(), m)  # after a restart y = m: no momentum


def test_per_key_lambdas_and_freeze_follow_the_formula():
    m0 = {"a": torch.tensor([1.0, 0.02, 0.6]), "b": torch.tensor([0.5, 0.03, 0.9])}
    masks = torch.nn.ParameterDict({k: torch.nn.Parameter(v.clone()) for k, v in m0.items()})
    fista = FistaMasks(masks, lr=0.1, lam=0.4)
    fista.lams["b"] = 2.0  # each key thresholds with its own λ
    grads = {"a": torch.tensor([0.1, 0.0, -0.2]), "b": torch.tensor([0.0, 0.0, 0.1])}
    fista.step(grads)
    for k, lam in (("a", 0.4), ("b", 2.0)):
        expected = torch.clamp(soft_threshold(m0[k] - 0.1 * grads[k], 0.1 * lam), min=0)
        assert torch.allclose(fista.current[k], expected)
    assert fista.alive("a") == 2 and fista.alive("b") == 2 and fista.alive() == 4
    # freeze "a": its dead mask stays dead under any gradient, its λ is 0 from now on
    fista.freeze("a")
    assert fista.lams == {"a": 0.0, "b": 2.0}
    for _ in range(5):
        y = masks["a"].detach().clone()
        pull_up = {"a": -torch.ones(3), "b": torch.zeros(3)}
        fista.step(pull_up)
        assert fista.current["a"][1] == 0 and masks["a"][1] == 0
        alive = torch.tensor([1.0, 0.0, 1.0])
        assert torch.allclose(fista.current["a"], torch.clamp(y + 0.1, min=0) * alive)
    with pytest.raises(KeyError, match="no mask named 'c'"):
        fista.freeze("c")


@settings(max_examples=10, deadline=None)
@given(
    st.sampled_from(["lstm", "gru", "rnn"]),
    st.integers(1, 2),
    st.booleans(),
    st.integers(1, 5),
    st.integers(0, 10_000),
)
def test_a_unit_budget_ends_within_budget_and_removal_stays_exact(
    cell, layers, bidirectional, target, seed
):
    teacher = tiny(cell, layers, bidirectional, hidden=6, seed=seed).eval()
    tokens, lengths = batch(seed)
    loader = [(tokens, lengths, torch.zeros(len(lengths), dtype=torch.long))] * 6
    config = GALConfig(
        lam=0.5, lam_growth=1.5, target_units=target, epochs=2, mask_lr=0.1, mask_every=1, seed=seed
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = train_gal(teacher, loader, loader, config, progress=False)
    met = result.history["budget_met_step"]
    all_dead = [slot for slot, n in result.units_alive().items() if n == 0]
    said = [str(w.message) for w in caught if "every mask of layer" in str(w.message)]
    assert len(said) == len(all_dead)  # a slot that lost every unit is reported
    slots = mask_slots(teacher)
    assert set(met) == set(slots), "λ grows by 1.5x per step: every slot meets its budget"
    assert all(n <= target for n in result.units_alive().values())
    lam = result.history["lam"]
    first = min(met.values())
    assert all(b > a for a, b in itertools.pairwise(lam[: first - 1]))  # λ grows until then
    assert lam[-1] == 0.0 and result.best_epoch >= 1
    assert math.isfinite(result.history["valid_objective"][result.best_epoch - 1])
    small = result.pruned_model()
    assert small.rnn.hidden_size == max(1, *result.units_alive().values())
    with torch.no_grad():
        gap = (small(tokens, lengths) - result.student(tokens, lengths)).abs().max()
    assert gap <= 1e-5


def test_soft_threshold_and_kept_units():
    x = torch.tensor([-2.0, -0.5, 0.0, 0.3, 1.5])
    assert soft_threshold(x, 0.5).tolist() == [-1.5, 0.0, 0.0, 0.0, 1.0]
    masks = {(0, 0): torch.tensor([0.0, 0.7, 0.0, 0.2]), (0, 1): torch.zeros(4)}
    kept = kept_units(masks)
    assert kept[(0, 0)].tolist() == [1, 3] and kept[(0, 1)].numel() == 1
    assert kept_units(masks, threshold=0.5)[(0, 0)].tolist() == [1]
    assert kept_units(masks, keep=1)[(0, 0)].tolist() == [1]
    assert kept_units(masks, keep=2)[(0, 0)].tolist() == [1, 3]
    with pytest.raises(ValueError, match=r"keep count for \(0, 0\) must be an int in \[1, 4\]"):
        kept_units(masks, keep=5)
    with pytest.raises(ValueError, match="threshold must be >= 0"):
        kept_units(masks, threshold=-0.1)


def test_discriminator_loss_uses_one_sided_label_smoothing():
    d_real, d_fake = torch.tensor([2.0, -1.0]), torch.tensor([0.5, -3.0])

    def bce(logit, target):  # by hand, per example
        p = torch.sigmoid(logit)
        return -(target * torch.log(p) + (1 - target) * torch.log(1 - p)).mean()

    want = bce(d_real, torch.full((2,), 0.9)) + bce(d_fake, torch.zeros(2))
    assert torch.allclose(discriminator_loss(d_real, d_fake, 0.1), want)
    assert discriminator_loss(d_real, d_fake, 0.1) > discriminator_loss(d_real, d_fake, 0.0)


class FixedDiscriminator(torch.nn.Module):
    """D(x) = sign·(x_0 - x_1): a discriminator that does not need to learn."""

    def __init__(self, sign: float):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(sign))  # Adam needs a parameter

    def forward(self, x):
        return self.scale * (x[:, 0] - x[:, 1])


def softplus(v: float) -> float:
    """log(1 + e^v) = -log sigmoid(-v): BCE of logit v against target 0."""
    return math.log1p(math.exp(v))


def constant_classifier(bias, seed=0):
    """A classifier whose logits are ``bias`` for every input (zero output weights)."""
    model = tiny(seed=seed)
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(torch.tensor(bias))
    return model


@pytest.mark.parametrize(("sign", "accuracy"), [(1.0, 1.0), (-1.0, 0.0)])
def test_discriminator_accuracies_on_a_case_it_separates_perfectly(monkeypatch, sign, accuracy):
    # the teacher says (5, -5, 0) everywhere, the student (-5, 5, 0): D = x_0 - x_1 gives
    # +10 on every teacher logit and -10 on every student logit, so D is right on every
    # example (accuracy 1); the mirrored D is wrong on every example (accuracy 0)
    import course_utils.pruning.gan as gan

    monkeypatch.setattr(gan, "Discriminator", lambda *args: FixedDiscriminator(sign))
    teacher = constant_classifier([5.0, -5.0, 0.0])
    student = constant_classifier([-5.0, 5.0, 0.0], seed=1)
    tokens, lengths = batch()
    loader = [(tokens, lengths, torch.zeros(len(lengths), dtype=torch.long))] * 3
    config = GALConfig(lam=0.0, epochs=1, lr=1e-9, d_lr=1e-9, d_noise=0.0, d_weight_decay=0.0)
    history = train_gal(teacher, loader, loader, config, student=student, progress=False).history
    assert history["d_real_acc"] == [accuracy] * 3
    assert history["d_fake_acc"] == [accuracy] * 3
    # the losses D saw, by hand: BCE(±10, 0.9) for the teacher, BCE(∓10, 0) for the student
    d = 10.0 * sign
    real = 0.9 * softplus(-d) + 0.1 * softplus(d)
    assert history["d_real_loss"] == pytest.approx([real] * 3, rel=1e-4)
    assert history["d_fake_loss"] == pytest.approx([softplus(-d)] * 3, abs=1e-6)


def test_cached_teacher_runs_each_sequence_once():
    teacher = tiny()
    calls = []
    teacher.register_forward_hook(lambda module, args, out: calls.append(len(args[0])))
    cache = CachedTeacher(teacher)
    tokens, lengths = batch()
    with torch.no_grad():
        want = teacher(tokens, lengths)
    calls.clear()
    assert torch.allclose(cache(tokens, lengths), want, atol=1e-6)
    assert torch.allclose(cache(tokens[[2, 0]], lengths[[2, 0]]), want[[2, 0]], atol=1e-6)
    assert calls == [4]  # the second call was served from the cache
    teacher.train()
    cache(*batch(seed=1))
    assert teacher.training and calls == [4, 4]  # new sequences; the mode is restored


def trained_teacher(vocab, train_loader, valid_loader, hidden=8, dropout=0.0):
    torch.manual_seed(0)
    teacher = RNNClassifier(len(vocab), 3, embed_dim=8, hidden_size=hidden, dropout=dropout)
    train_model(teacher, train_loader, valid_loader, epochs=8, lr=1e-2, progress=False)
    return teacher.eval()


def test_short_training_shrinks_masks_and_the_logit_gap(synthetic_data):
    vocab, train, valid = synthetic_data
    train_loader, valid_loader = make_loader(train, 16, shuffle=True), make_loader(valid, 64)
    teacher = trained_teacher(vocab, train_loader, valid_loader)
    # the student starts from a damaged copy, so there is a gap to close
    damaged = RNNClassifier(len(vocab), 3, embed_dim=8, hidden_size=8)
    damaged.load_state_dict(teacher.state_dict())
    with torch.no_grad():
        for p in damaged.rnn.parameters():
            p.add_(0.3 * torch.randn_like(p))
    start_gap = logit_gap(teacher, damaged, valid_loader)["logit_mse"]
    config = GALConfig(lam=0.05, epochs=4, lr=5e-3, mask_lr=0.05, mask_every=1, seed=0)
    result = train_gal(teacher, train_loader, valid_loader, config, student=damaged, progress=False)
    assert not result.diverged and result.best_epoch >= 1
    assert result.history["mask_l1"][-1] < 0.95 * 8  # the L1 penalty shrank the masks
    assert result.history["valid_logit_mse"][-1] < 0.5 * start_gap
    assert all(math.isfinite(v) for v in result.history["d_loss"])
    # with smoothing 0.1 the real loss BCE(d, 0.9) never drops below the entropy H(0.9)
    floor = -(0.9 * math.log(0.9) + 0.1 * math.log(0.1))  # 0.32508
    assert min(result.history["d_real_loss"]) >= floor - 1e-5
    assert len(result.history["d_real_acc"]) == len(result.history["step"])
    assert len(result.history["mask_snapshots"]) == len(result.history["snapshot_step"]) > 0
    ablation = train_gal(
        teacher,
        train_loader,
        valid_loader,
        GALConfig(lam=0.05, epochs=1, adv_weight=0.0),
        progress=False,
    )
    assert all(math.isnan(v) for v in ablation.history["d_loss"])  # no discriminator at all


def test_a_trained_student_shrinks_exactly_and_keeps_its_best_epoch(synthetic_data):
    vocab, train, valid = synthetic_data
    train_loader, valid_loader = make_loader(train, 16, shuffle=True), make_loader(valid, 64)
    teacher = trained_teacher(vocab, train_loader, valid_loader, hidden=10, dropout=0.3)
    config = GALConfig(lam=0.5, epochs=3, lr=3e-3, mask_lr=0.05, mask_every=1, seed=1)
    result = train_gal(teacher, train_loader, valid_loader, config, progress=False)
    history = result.history
    best = min(range(len(history["epoch"])), key=lambda i: history["valid_objective"][i])
    assert result.best_epoch == history["epoch"][best]
    alive = result.units_alive()[(0, 0)]
    assert 1 <= alive < 10, "lam = 0.5 should kill some units but not all"
    # the student runs at the kept masks: its validation numbers are those of that epoch
    gap = logit_gap(teacher, result.student, valid_loader)
    assert gap["logit_mse"] == pytest.approx(history["valid_logit_mse"][best], rel=1e-5)
    small = result.pruned_model()
    assert small.rnn.hidden_size == alive
    assert not result.student.training and not small.training  # ready to evaluate (no dropout)
    tokens, lengths, _ = next(iter(valid_loader))
    with torch.no_grad():
        gap = (small(tokens, lengths) - result.student(tokens, lengths)).abs().max()
    assert gap <= 1e-5


def test_divergence_stops_with_a_message_and_keeps_the_best_state(synthetic_data, monkeypatch):
    vocab, train, valid = synthetic_data
    teacher = RNNClassifier(len(vocab), 3, embed_dim=8, hidden_size=8)
    loader, valid_loader = make_loader(train, 16), make_loader(valid, 64)
    calls = {"n": 0}
    original = torch.nn.functional.mse_loss

    def poisoned(a, b, *args, **kwargs):
        calls["n"] += 1
        return original(a, b) * (float("nan") if calls["n"] > limit else 1.0)

    monkeypatch.setattr(torch.nn.functional, "mse_loss", poisoned)
    limit = 2 * len(loader) + 3  # NaN in the third epoch
    with pytest.warns(RuntimeWarning, match="diverged at epoch 3"):
        result = train_gal(teacher, loader, valid_loader, GALConfig(epochs=4), progress=False)
    assert result.diverged and "best state so far" in result.message
    assert result.history["epoch"] == [1, 2]
    objectives = result.history["valid_objective"]
    assert result.best_epoch == 1 + objectives.index(min(objectives))
    assert all(torch.isfinite(p).all() for p in result.student.parameters())
    monkeypatch.setattr(torch.nn.functional, "mse_loss", original)
    gap = logit_gap(teacher, result.student, valid_loader)["logit_mse"]
    assert gap == pytest.approx(result.history["valid_logit_mse"][result.best_epoch - 1], rel=1e-5)
    # NaN before any epoch is complete: the start is the best state so far
    monkeypatch.setattr(torch.nn.functional, "mse_loss", poisoned)
    calls["n"], limit = 0, 2
    with pytest.warns(RuntimeWarning, match="diverged at epoch 1"):
        result = train_gal(teacher, loader, valid_loader, GALConfig(epochs=2), progress=False)
    assert result.best_epoch == 0 and result.history["epoch"] == []
    assert all(torch.equal(m, torch.ones(8)) for m in result.masks.values())
    assert all(
        torch.equal(a, b)
        for a, b in zip(result.student.model.parameters(), teacher.parameters(), strict=True)
    )


def test_bad_input_gets_clear_errors():
    teacher = RNNClassifier(30, 3, embed_dim=5, hidden_size=4)
    loader = [batch() + (torch.zeros(4, dtype=torch.long),)]
    with pytest.raises(ValueError, match="lam must be >= 0"):
        GALConfig(lam=-0.1).check()
    with pytest.raises(ValueError, match="lam must be >= 0"):
        train_gal(teacher, loader, loader, GALConfig(lam=-1.0))
    with pytest.raises(ValueError, match="lam must be >= 0"):
        GALConfig(lam=float("nan")).check()
    with pytest.raises(ValueError, match="epochs must be an int >= 1"):
        GALConfig(epochs=0).check()
    for bad in (0, True, 2.5):
        with pytest.raises(ValueError, match="target_units must be an int >= 1"):
            GALConfig(target_units=bad).check()
    with pytest.raises(ValueError, match="lam_growth must be >= 1"):
        GALConfig(lam_growth=0.9).check()
    with pytest.raises(ValueError, match="lam must be > 0 when target_units is set"):
        GALConfig(lam=0.0, target_units=2).check()
    with pytest.raises(ValueError, match="target_units must be below the teacher's 4 hidden"):
        train_gal(teacher, loader, loader, GALConfig(target_units=4))
    with pytest.raises(ValueError, match="nothing to learn"):
        GALConfig(adv_weight=0, data_weight=0).check()
    with pytest.raises(TypeError, match="config must be a GALConfig"):
        train_gal(teacher, loader, loader, {"lam": 0.1})
    with pytest.raises(ValueError, match="train_loader yields no batches"):
        train_gal(teacher, [], loader)
    with pytest.raises(TypeError, match="teacher must be a course_utils RNNClassifier"):
        MaskedStudent(torch.nn.Linear(3, 3))
    with pytest.raises(TypeError, match="teacher must be a course_utils RNNClassifier"):
        train_gal(torch.nn.Module(), loader, loader)  # an empty model
    empty = RNNClassifier(30, 3, embed_dim=5, hidden_size=4)
    empty.rnn = torch.nn.LSTM(5, 4, bias=False)
    for name in list(empty.rnn._parameters):
        empty.rnn._parameters[name] = torch.nn.Parameter(torch.empty(0))
    with pytest.raises(ValueError, match="teacher has an empty RNN"):
        MaskedStudent(empty)
    with pytest.raises(TypeError, match="student must be a course_utils RNNClassifier"):
        MaskedStudent(teacher, torch.nn.Linear(3, 3))
    mismatches = {
        "hidden_size": RNNClassifier(30, 3, embed_dim=5, hidden_size=6),
        "cell": RNNClassifier(30, 3, embed_dim=5, hidden_size=4, cell="gru"),
        "num_layers": RNNClassifier(30, 3, embed_dim=5, hidden_size=4, num_layers=2),
        "bidirectional": RNNClassifier(30, 3, embed_dim=5, hidden_size=4, bidirectional=True),
        "vocab_size": RNNClassifier(31, 3, embed_dim=5, hidden_size=4),
    }
    for what, other in mismatches.items():
        with pytest.raises(ValueError, match=f"architecture mismatch.*{what}"):
            MaskedStudent(teacher, other)
        with pytest.raises(ValueError, match=f"architecture mismatch.*{what}"):
            train_gal(teacher, loader, loader, student=other)
    with pytest.raises(ValueError, match="teacher_cache must be a CachedTeacher of this"):
        train_gal(teacher, loader, loader, teacher_cache=CachedTeacher(tiny()))
    with pytest.raises(ValueError, match="in_features"):
        Discriminator(0)
    student = MaskedStudent(teacher)
    with pytest.raises(ValueError, match=r"masks must have exactly the slots \[\(0, 0\)\]"):
        fold_masks(student, {"l0": torch.ones(4)})
    with pytest.raises(ValueError, match=r"masks\[\(0, 0\)\] must be a tensor of shape \(4,\)"):
        student.set_masks({(0, 0): torch.ones(5)})
    assert mask_slots(
        RNNClassifier(30, 3, embed_dim=5, hidden_size=4, num_layers=2, bidirectional=True)
    ) == [(0, 0), (0, 1), (1, 0), (1, 1)]


# --- the steps of one GAL iteration ---------------------------------------------------------


def test_a_discriminator_step_lowers_its_loss_on_the_same_logits():
    torch.manual_seed(0)
    config = GALConfig(d_noise=0.0, d_lr=1e-2)
    disc = Discriminator(3, config.d_hidden)
    optimizer = torch.optim.Adam(disc.parameters(), lr=config.d_lr)
    teacher_logits = torch.randn(16, 3) + 2.0
    student_logits = torch.randn(16, 3, requires_grad=True)
    record = discriminator_step(disc, optimizer, teacher_logits, student_logits, config)
    with torch.no_grad():
        after = discriminator_loss(
            disc(teacher_logits), disc(student_logits), config.label_smoothing
        )
    assert float(after) < record["loss"]
    assert student_logits.grad is None, "the student's logits are detached: it does not move"
    assert set(record) == {"loss", "real_loss", "fake_loss", "real_acc", "fake_acc"}


def test_mask_step_takes_a_fista_step_on_the_averaged_gradient_and_resets_the_sums():
    start = torch.tensor([1.0, 0.5, 0.05, 0.8])
    ours = FistaMasks(
        torch.nn.ParameterDict({"l0": torch.nn.Parameter(start.clone())}), lr=0.1, lam=0.4
    )
    twin = FistaMasks(
        torch.nn.ParameterDict({"l0": torch.nn.Parameter(start.clone())}), lr=0.1, lam=0.4
    )
    sums = {"l0": torch.tensor([0.6, -3.0, 0.9, 0.0])}
    mask_step(ours, sums, 3)
    twin.step({"l0": torch.tensor([0.2, -1.0, 0.3, 0.0])})
    assert torch.allclose(ours.current["l0"], twin.current["l0"])
    assert torch.equal(sums["l0"], torch.zeros(4))


def test_the_steps_run_by_hand_make_exactly_train_gals_update():
    teacher = tiny(hidden=4)
    tokens, lengths = batch()
    labels = torch.tensor([0, 1, 2, 1])
    data = [(tokens, lengths, labels)]
    config = GALConfig(epochs=1, mask_every=1, lam=0.3, mask_lr=0.1, ce_weight=0.5, seed=3)
    result = train_gal(teacher, data, data, config, progress=False)

    torch.manual_seed(config.seed)  # what train_gal does first
    frozen = frozen_copy(teacher)
    net, disc, opt_w, opt_d, fista = gal_parts(frozen, config)
    net.train()
    with torch.no_grad():
        t_logits = frozen(tokens, lengths)  # 1. the teacher
    s_logits = net(tokens, lengths)  # 2. the student
    discriminator_step(disc, opt_d, t_logits, s_logits, config)  # 3.
    mask_grads = {k: torch.zeros_like(m) for k, m in net.masks.items()}
    terms = student_step(net, disc, opt_w, t_logits, s_logits, labels, config, mask_grads)  # 4.
    mask_step(fista, mask_grads, 1)  # 5.

    assert same_weights(result.student.model, net.model)
    iterates = mask_iterates(net, fista)
    assert all(torch.equal(result.masks[slot], m) for slot, m in iterates.items())
    assert result.history["g_ce"] == [float(terms["g_ce"].detach())] > [0.0]
    scores = validate_masks(frozen, net, fista, data, config, {})
    assert result.history["valid_objective"] == [scores["objective"]]
    l1 = sum(float(m.sum()) for m in iterates.values())
    assert scores["objective"] == config.data_weight * scores["logit_mse"] + config.lam * l1


# --- the variant whose discriminator sees the pooled features too ----------------------------


@pytest.mark.parametrize("bidirectional", [False, True])
def test_the_discriminator_sees_the_logits_or_the_logits_and_the_features(bidirectional):
    teacher = frozen_copy(tiny(layers=2, bidirectional=bidirectional, hidden=4))
    features = 4 * (2 if bidirectional else 1)  # what the classifier reads
    assert GALConfig().d_input == "logits"  # Lin et al.: D sees the final layer's outputs
    parts = gal_parts(teacher, GALConfig())
    assert parts.discriminator.net[0].in_features == 3  # the classes
    parts = gal_parts(teacher, GALConfig(d_input="logits+features"))
    assert parts.discriminator.net[0].in_features == 3 + features


def test_logits_and_features_come_from_one_pass_and_the_students_are_masked():
    teacher = tiny(layers=2, bidirectional=True, hidden=4)
    tokens, lengths = batch()
    with torch.no_grad():
        want_logits, want_features = teacher(tokens, lengths), teacher.features(tokens, lengths)
    logits, features = logits_and_features(teacher, tokens, lengths)
    assert torch.equal(logits, want_logits) and torch.equal(features, want_features)
    net = MaskedStudent(teacher).eval()
    masks = net.mask_values()
    masks[(1, 0)][1], masks[(1, 1)][3] = 0.0, 0.0  # last layer: forward unit 1, backward unit 3
    masks[(1, 0)][2] = 0.5
    net.set_masks(masks)
    logits, features = logits_and_features(net, tokens, lengths)
    with torch.no_grad():
        assert torch.equal(logits, net(tokens, lengths))  # the student's very logits
        raw = fold_masks(net).features(tokens, lengths)  # the features before the masks
    scale = torch.cat([masks[(1, 0)], masks[(1, 1)]])
    assert torch.allclose(features, raw * scale, atol=1e-6)
    assert (features[:, [1, 4 + 3]] == 0).all()  # a removed unit reads 0
    assert (features[:, [0, 2]] != 0).all()
    assert features.requires_grad  # the student's adversarial loss reaches its masks


def test_cached_teacher_gives_features_computed_once_and_the_same_logits():
    teacher = tiny(bidirectional=True)
    calls = []
    teacher.register_forward_hook(lambda module, args, out: calls.append(len(args[0])))
    teacher.rnn.register_forward_hook(lambda module, args, out: calls.append("rnn"))
    cache = CachedTeacher(teacher)
    tokens, lengths = batch()
    logits = cache(tokens, lengths)
    with_features = cache.logits_and_features(tokens, lengths)
    again = cache.logits_and_features(tokens[[3, 1]], lengths[[3, 1]])
    # the RNN ran twice: in forward (which ends after it) and for the features; the
    # third call was served from the store
    assert calls == ["rnn", 4, "rnn"]
    assert torch.equal(with_features[0], logits) and torch.equal(again[0], logits[[3, 1]])
    with torch.no_grad():
        assert torch.equal(with_features[1], teacher.features(tokens, lengths))
    assert torch.equal(again[1], with_features[1][[3, 1]])
    fresh = CachedTeacher(teacher)  # features first: the logits are remembered as well
    fresh.logits_and_features(tokens, lengths)
    calls.clear()
    assert torch.equal(fresh(tokens, lengths), logits) and calls == []


def test_with_logits_and_features_the_discriminator_receives_the_features():
    teacher = tiny(bidirectional=True, hidden=4)
    tokens, lengths = batch()
    labels = torch.zeros(4, dtype=torch.long)
    config = GALConfig(epochs=1, d_input="logits+features", d_noise=0.0, seed=2)
    seen = []

    def spy(*args, **kwargs):
        disc = Discriminator(*args, **kwargs)
        disc.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach()))
        return disc

    import course_utils.pruning.gan as gan

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(gan, "Discriminator", spy)
        train_gal(teacher, [(tokens, lengths, labels)], [(tokens, lengths, labels)], config)
    real, fake, student = seen  # D's step (teacher, student), then the student's step
    with torch.no_grad():
        want = torch.cat([teacher(tokens, lengths), teacher.features(tokens, lengths)], dim=1)
    assert real.shape == (4, 3 + 8) and torch.equal(real, want)
    # the student starts as the teacher with every mask 1: D sees the same thing for it
    assert torch.allclose(fake, want, atol=1e-6) and torch.allclose(student, want, atol=1e-6)


def test_the_steps_by_hand_with_features_make_exactly_train_gals_update():
    teacher = tiny(hidden=4, bidirectional=True)
    tokens, lengths = batch()
    labels = torch.tensor([0, 1, 2, 1])
    data = [(tokens, lengths, labels)]
    config = GALConfig(epochs=1, mask_every=1, lam=0.3, mask_lr=0.1, seed=3)
    config.d_input = "logits+features"
    result = train_gal(teacher, data, data, config, progress=False)

    torch.manual_seed(config.seed)
    frozen = frozen_copy(teacher)
    net, disc, opt_w, opt_d, fista = gal_parts(frozen, config)
    net.train()
    with torch.no_grad():
        t_logits, t_features = frozen(tokens, lengths), frozen.features(tokens, lengths)
    s_logits, s_features = logits_and_features(net, tokens, lengths)
    discriminator_step(disc, opt_d, t_logits, s_logits, config, t_features, s_features)
    mask_grads = {k: torch.zeros_like(m) for k, m in net.masks.items()}
    student_step(net, disc, opt_w, t_logits, s_logits, labels, config, mask_grads, s_features)
    mask_step(fista, mask_grads, 1)
    assert same_weights(result.student.model, net.model)
    assert all(torch.equal(result.masks[s], m) for s, m in mask_iterates(net, fista).items())


def test_gal_with_features_trains_to_the_unit_budget(synthetic_data):
    vocab, train, valid = synthetic_data
    train_loader, valid_loader = make_loader(train, 16, shuffle=True), make_loader(valid, 64)
    teacher = trained_teacher(vocab, train_loader, valid_loader)
    batches = list(itertools.islice(train_loader, 4))
    budget = {"target_units": 3, "lam": 0.2, "lam_growth": 1.1}  # λ grows from 0.2 until 3 left
    config = GALConfig(d_input="logits+features", epochs=3, mask_lr=0.2, mask_every=1, **budget)
    result = train_gal(teacher, batches, valid_loader, config, progress=False)
    assert not result.diverged and result.best_epoch >= 1
    assert set(result.history["budget_met_step"]) == {(0, 0)}
    assert 1 <= result.units_alive()[(0, 0)] <= 3
    assert all(math.isfinite(v) for v in result.history["d_loss"])
    small = result.pruned_model()
    tokens, lengths, _ = next(iter(valid_loader))
    with torch.no_grad():
        gap = (small(tokens, lengths) - result.student(tokens, lengths)).abs().max()
    assert small.rnn.hidden_size == result.units_alive()[(0, 0)] and gap <= 1e-5


def test_a_bad_d_input_gets_an_error_naming_it():
    teacher = tiny()
    loader = [batch() + (torch.zeros(4, dtype=torch.long),)]
    for bad in ("features", "Logits", None, ["logits"]):
        with pytest.raises(ValueError, match=r"d_input must be one of \['logits', 'logits\+feat"):
            GALConfig(d_input=bad).check()
    with pytest.raises(ValueError, match="d_input must be one of"):
        train_gal(teacher, loader, loader, GALConfig(d_input="hidden"))
    logits, features = torch.zeros(2, 3), torch.zeros(2, 4)
    with pytest.raises(ValueError, match="pass the features too"):
        discriminator_input(logits, None, GALConfig(d_input="logits+features"))
    with pytest.raises(ValueError, match='features were given but config.d_input is "logits"'):
        discriminator_input(logits, features, GALConfig())
    assert discriminator_input(logits, features, GALConfig(d_input="logits+features")).shape == (
        2,
        7,
    )


def test_feature_noise_has_its_own_scale_and_logits_keep_theirs():
    config = GALConfig(d_input="logits+features", d_noise=2.0, d_feature_noise=0.2)
    seen = torch.zeros(20_000, 3 + 4)
    torch.manual_seed(0)
    noisy = instance_noise(seen, config, classes=3)
    assert noisy[:, :3].std().item() == pytest.approx(2.0, rel=0.03)
    assert noisy[:, 3:].std().item() == pytest.approx(0.2, rel=0.03)
    # without d_feature_noise every column gets d_noise, drawn exactly as before
    same = GALConfig(d_input="logits+features", d_noise=2.0)
    torch.manual_seed(1)
    a = instance_noise(seen, same, classes=3)
    torch.manual_seed(1)
    assert torch.equal(a, seen + 2.0 * torch.randn_like(seen))
    with pytest.raises(ValueError, match="d_feature_noise"):
        GALConfig(d_input="logits+features", d_feature_noise=-1.0).check()
