"""L1/L2/group-lasso penalties, proximal steps, and the ISS groups of an RNN."""

import pytest
import torch
from helpers import architectures, rnn_model
from helpers import padded_batch as batch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from course_utils.models import RNNClassifier
from course_utils.pruning import regularization


def small_model(cell="lstm", layers=2, bidirectional=True, hidden=4, embed=3, pooling="max"):
    arch = {"cell": cell, "layers": layers, "bidirectional": bidirectional, "pooling": pooling}
    return rnn_model(30, 3, hidden=hidden, embed=embed, **arch)


# --- element-wise penalties ----------------------------------------------------------------


def test_l1_and_l2_penalties_sum_the_weight_matrices_but_not_embedding_or_biases():
    model = small_model()
    weights = [p for n, p in model.named_parameters() if "weight" in n and "embedding" not in n]
    assert torch.allclose(regularization.l1_penalty(model), sum(p.abs().sum() for p in weights))
    assert torch.allclose(regularization.l2_penalty(model), sum(p.pow(2).sum() for p in weights))
    only = ["classifier.weight"]
    assert torch.allclose(
        regularization.l1_penalty(model, only), model.classifier.weight.abs().sum()
    )
    with pytest.raises(ValueError, match="names"):
        regularization.l1_penalty(model, [])
    with pytest.raises(ValueError, match="does not exist"):
        regularization.l2_penalty(model, ["rnn.nope"])


@given(
    values=st.lists(st.floats(-3, 3, allow_nan=False), min_size=1, max_size=30),
    threshold=st.floats(0, 2),
)
@settings(max_examples=60, deadline=None)
def test_soft_threshold_is_the_l1_proximal_operator(values, threshold):
    v = torch.tensor(values, dtype=torch.float64)
    w = regularization.soft_threshold(v, threshold)
    # formula, and exact zeros inside the threshold
    want = torch.sign(v) * torch.clamp(v.abs() - threshold, min=0)
    assert torch.equal(w, want)
    assert torch.all(w[v.abs() <= threshold] == 0)

    # it minimises 0.5 (w - v)^2 + t |w| element-wise: no perturbation does better
    def objective(x):
        return 0.5 * (x - v) ** 2 + threshold * x.abs()

    for delta in (1e-3, -1e-3, 0.1, -0.1):
        assert torch.all(objective(w) <= objective(w + delta) + 1e-12)


def test_soft_threshold_rejects_a_negative_threshold():
    with pytest.raises(ValueError, match="threshold"):
        regularization.soft_threshold(torch.ones(3), -0.1)


def test_proximal_l1_hook_soft_thresholds_by_lr_times_lambda():
    model = small_model()
    before = model.classifier.weight.detach().clone()
    emb = model.embedding.weight.detach().clone()
    regularization.proximal_l1(0.5, 0.2)(model, 0)
    assert torch.equal(model.classifier.weight, regularization.soft_threshold(before, 0.1))
    assert torch.equal(model.embedding.weight, emb), "the embedding is not penalised by default"
    with pytest.raises(ValueError, match="lam"):
        regularization.proximal_l1(-1.0, 0.1)
    with pytest.raises(ValueError, match="lr"):
        regularization.proximal_l1(1.0, 0.0)


def test_regularized_loss_adds_lambda_times_penalty():
    model = small_model()
    tokens, lengths = batch()
    labels = torch.tensor([0, 1, 2, 0])
    groups = regularization.hidden_unit_groups(model)
    loss = regularization.regularized_loss(groups.penalty, 0.3)(model, (tokens, lengths, labels))
    ce = nn.functional.cross_entropy(model(tokens, lengths), labels)
    assert torch.allclose(loss, ce + 0.3 * groups.norms(model).sum())
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    with pytest.raises(ValueError, match="lam"):
        regularization.regularized_loss(regularization.l1_penalty, -0.01)
    with pytest.raises(TypeError, match="penalty"):
        regularization.regularized_loss(3.0, 0.1)


# --- group lasso ------------------------------------------------------------------------


def test_group_penalty_has_a_finite_zero_subgradient_at_a_zero_group():
    model = small_model()
    groups = regularization.hidden_unit_groups(model)
    groups.zero_(model, torch.arange(len(groups)) < 3)
    regularization.group_lasso_penalty(model, groups).backward()
    for p in model.parameters():
        assert p.grad is None or torch.isfinite(p.grad).all()
    assert torch.all(groups.norms(model)[:3] == 0)


def test_group_shrink_matches_the_closed_form_on_disjoint_groups():
    model = small_model(bidirectional=False, layers=1, embed=5)
    groups = regularization.embedding_dim_groups(model)  # columns of two matrices: disjoint groups
    params = {n: p.detach() for n, p in model.named_parameters()}
    norms = torch.stack(
        [
            torch.sqrt(sum(params[n][m].pow(2).sum() for n, m in groups.element_masks(j).items()))
            for j in range(len(groups))
        ]
    )
    assert torch.allclose(regularization.group_norms(model, groups), norms)
    threshold = float(norms.median())
    before = {n: p.detach().clone() for n, p in params.items()}
    regularization.proximal_group_lasso(groups, lam=threshold / 0.1, lr=0.1)(model, 0)
    params = dict(model.named_parameters())
    for j in range(len(groups)):
        factor = max(0.0, 1 - threshold / float(norms[j]))
        for name, mask in groups.element_masks(j).items():
            assert torch.allclose(params[name][mask], before[name][mask] * factor, atol=1e-6)
    shrunk = regularization.group_norms(model, groups)
    assert torch.all(shrunk[norms <= threshold] == 0) and torch.all(shrunk[norms > threshold] > 0)


def test_group_shrink_is_the_proximal_operator_of_one_group():
    # one group: w* = argmin 0.5||w - v||^2 + t ||w||; check against perturbations
    lin = nn.Linear(4, 3)
    groups = regularization.GroupSet(
        [regularization.Group(("all",), (regularization.Slice("weight", 0, (0, 1, 2)),))],
        3,
        {"weight": (3, 4)},
    )
    v = lin.weight.detach().clone()
    t = 0.3 * float(v.norm())
    groups.shrink_(lin, t)
    w = lin.weight.detach()

    def objective(x):
        return 0.5 * (x - v).pow(2).sum() + t * x.norm()

    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        assert objective(w) <= objective(w + 1e-3 * torch.randn(3, 4, generator=g)) + 1e-7


def test_overlapping_groups_zero_below_threshold_and_each_weight_takes_every_factor():
    model = small_model(layers=1, bidirectional=False)
    groups = regularization.hidden_unit_groups(model)
    H = model.rnn.hidden_size
    norms = groups.norms(model)
    threshold = float(torch.sort(norms).values[1])  # the two smallest groups die
    w_hh = model.rnn.weight_hh_l0.detach().clone()
    factors = groups.shrink_(model, threshold)
    assert int((groups.norms(model) == 0).sum()) == 2
    # entry (row of unit 1 in gate 2, column of unit 3) belongs to groups 1 and 3
    row, col = 2 * H + 1, 3
    assert torch.allclose(
        model.rnn.weight_hh_l0[row, col], w_hh[row, col] * factors[1] * factors[3]
    )


def test_zero_groups_below_and_bad_lambda():
    model = small_model()
    groups = regularization.hidden_unit_groups(model)
    norms = groups.norms(model)
    tol = float(torch.sort(norms).values[4])
    assert regularization.zero_groups_below(model, groups, tol) == 5
    with pytest.raises(ValueError, match="lam"):
        regularization.proximal_group_lasso(groups, -1e-3, 0.1)
    with pytest.raises(TypeError, match="groups"):
        regularization.proximal_group_lasso("units", 1e-3, 0.1)
    with pytest.raises(ValueError, match="does not match"):
        groups.norms(small_model(hidden=5))


# --- ISS groups: what they hold ------------------------------------------------------------


def test_iss_group_of_a_bidirectional_two_layer_lstm_unit_by_hand():
    H, k = 4, 1
    model = small_model("lstm", layers=2, bidirectional=True, hidden=H)
    groups = regularization.hidden_unit_groups(model)
    assert len(groups) == 2 * 2 * H and groups.slots() == [(0, 0), (0, 1), (1, 0), (1, 1)]
    group = groups.groups[groups.keys.index(("unit", 0, 1, k))]  # layer 0, backward
    rows = (k, H + k, 2 * H + k, 3 * H + k)
    want = {
        regularization.Slice("rnn.weight_ih_l0_reverse", 0, rows),
        regularization.Slice("rnn.weight_hh_l0_reverse", 0, rows),
        regularization.Slice("rnn.bias_ih_l0_reverse", 0, rows),
        regularization.Slice("rnn.bias_hh_l0_reverse", 0, rows),
        regularization.Slice("rnn.weight_hh_l0_reverse", 1, (k,), True),
        regularization.Slice("rnn.weight_ih_l1", 1, (H + k,), True),
        regularization.Slice("rnn.weight_ih_l1_reverse", 1, (H + k,), True),
    }
    assert set(group.slices) == want
    last = groups.groups[groups.keys.index(("unit", 1, 1, k))]
    assert regularization.Slice("classifier.weight", 1, (H + k,), True) in last.slices
    # a weight in two slices of a group counts once: 4 diagonal entries of weight_hh
    masks = groups.element_masks(groups.keys.index(("unit", 0, 0, k)))
    assert int(masks["rnn.weight_hh_l0"].sum()) == 4 * H + 4 * H - 4


@pytest.mark.parametrize(("cell", "blocks"), [("gru", 3), ("rnn", 1)])
def test_gru_and_rnn_groups_have_their_gate_blocks(cell, blocks):
    H = 3
    groups = regularization.hidden_unit_groups(
        small_model(cell, layers=1, bidirectional=False, hidden=H)
    )
    first = groups.groups[2].slices[0]
    assert first == regularization.Slice(
        "rnn.weight_ih_l0", 0, tuple(g * H + 2 for g in range(blocks))
    )


def _perturb(model, masks, seed):
    g = torch.Generator().manual_seed(seed)
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, mask in masks.items():
            params[name][mask] = torch.randn(int(mask.sum()), generator=g)


@given(arch=architectures(max_layers=3), hidden=st.integers(1, 5), data=st.data())
@settings(max_examples=40, deadline=None)
def test_iss_groups_hold_exactly_what_computes_and_reads_a_unit(arch, hidden, data):
    """Behavioural oracle: with the unit's reading weights zeroed, its computing weights
    no longer change the logits; with its computing weights zeroed, it outputs 0."""
    model, layers = small_model(**arch, hidden=hidden), arch["layers"]
    groups = regularization.hidden_unit_groups(model)
    gid = data.draw(st.integers(0, len(groups) - 1))
    layer, d, k = groups.keys[gid][1:]
    tokens, lengths = batch()
    which = torch.arange(len(groups)) == gid
    groups.zero_(model, which, reads_only=True)
    before = model(tokens, lengths)
    computing = {}
    for s in groups.groups[gid].slices:
        if not s.reads:
            m = computing.setdefault(
                s.param, torch.zeros_like(dict(model.named_parameters())[s.param], dtype=torch.bool)
            )
            m.index_fill_(s.dim, torch.tensor(s.index), True)
    _perturb(model, computing, seed=gid)
    assert torch.allclose(model(tokens, lengths), before, atol=1e-6)
    # zero the computing weights as well: the unit is dead at every step of every layer
    groups.zero_(model, which)
    out, _ = model.run_rnn(tokens, lengths) if layer == layers - 1 else (None, None)
    if out is not None:
        assert torch.all(out[..., d * hidden + k] == 0)


# --- chapter 4 exercise checks: reference answers pass, wrong ones fail ------------------


def test_exercise_checks_accept_right_and_reject_wrong_answers():
    from course_utils import exercises

    def iss_masks(e, h, c, k, offset=0, rows=None):
        rows = [g * h + k for g in range(4)] if rows is None else rows
        masks = {
            "rnn.weight_ih_l0": torch.zeros(4 * h, e, dtype=torch.bool),
            "rnn.weight_hh_l0": torch.zeros(4 * h, h, dtype=torch.bool),
            "rnn.bias_ih_l0": torch.zeros(4 * h, dtype=torch.bool),
            "rnn.bias_hh_l0": torch.zeros(4 * h, dtype=torch.bool),
            "classifier.weight": torch.zeros(c, h, dtype=torch.bool),
        }
        for name in ("rnn.weight_ih_l0", "rnn.weight_hh_l0", "rnn.bias_ih_l0", "rnn.bias_hh_l0"):
            masks[name][rows] = True
        masks["rnn.weight_hh_l0"][:, k] = True
        masks["classifier.weight"][:, (k + offset) % h] = True
        return masks

    def shrink(w, t):
        norms = w.norm(dim=1, keepdim=True)
        scale = torch.where(norms > t, 1 - t / norms.clamp_min(1e-12), torch.zeros_like(norms))
        return w * scale

    assert exercises.check_soft_threshold(regularization.soft_threshold)
    assert exercises.check_iss_group_masks(iss_masks)
    assert exercises.check_group_shrink(shrink)
    # wrong answers
    assert not exercises.check_soft_threshold(lambda w, t: torch.where(w.abs() > t, w, 0 * w))
    assert not exercises.check_iss_group_masks(lambda e, h, c, k: iss_masks(e, h, c, k, 1))
    # rows 4k..4k+3 instead of one row per gate block: the classic mistake
    contiguous = lambda e, h, c, k: iss_masks(e, h, c, k, rows=[4 * k + g for g in range(4)])
    assert not exercises.check_iss_group_masks(contiguous)
    assert not exercises.check_group_shrink(lambda w, t: w * (1 - t / w.norm(dim=1, keepdim=True)))
    assert not exercises.check_group_shrink(lambda w, t: regularization.soft_threshold(w, t))


# --- the chapter's training recipe -------------------------------------------------------


class TinyData:
    """The part of a Baseline that train_group_lasso uses: ``loader(split, seed=...)``."""

    def __init__(self, train, valid):
        self.datasets = {"train": train, "valid": valid}

    def loader(self, split, batch_size=None, *, shuffle=None, seed=0):
        from course_utils.text import make_loader

        return make_loader(self.datasets[split], 32, shuffle=split == "train", seed=seed)


def test_train_group_lasso_ends_in_the_last_state_with_zero_groups(synthetic_data):
    vocab, train, valid = synthetic_data
    data = TinyData(train, valid)
    model = RNNClassifier(len(vocab), 3, embed_dim=6, hidden_size=8)
    groups = regularization.hidden_unit_groups(model)
    record = regularization.train_group_lasso(
        model, groups, data, lam=2.0, epochs=2, lr=0.5, method="proximal", seed=0
    )
    assert len(record["zero_groups"]) == 2 and record["zero_groups"][-1] > 0
    assert record["zero_groups"][-1] == int((groups.norms(model) == 0).sum()), "the last state"
    assert record["penalty"][-1] == pytest.approx(float(groups.norms(model).sum()))
    model = RNNClassifier(len(vocab), 3, embed_dim=6, hidden_size=8)
    before = float(groups.norms(model).sum())
    record = regularization.train_group_lasso(
        model, groups, data, lam=5.0, epochs=1, method="penalty"
    )
    assert record["penalty"][-1] < before, "a strong penalty in the loss shrinks the groups"
    with pytest.raises(ValueError, match="method"):
        regularization.train_group_lasso(model, groups, data, lam=0.1, epochs=1, method="adamw")
    with pytest.raises(ValueError, match="lam"):
        regularization.train_group_lasso(model, groups, data, lam=-0.1, epochs=1)
    with pytest.raises(ValueError, match="epochs"):
        regularization.train_group_lasso(model, groups, data, lam=0.1, epochs=0)
