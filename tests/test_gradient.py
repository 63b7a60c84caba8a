import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from course_utils.models import RNNClassifier
from course_utils.pruning import (
    get_masks,
    gradient,
    hidden_unit_groups,
    magnitude_scores,
    prune,
    random_scores,
)
from course_utils.pruning.structured import select_units


class Probe(nn.Module):
    """A linear classifier on given features: its gradient has a closed form."""

    def __init__(self):
        super().__init__()
        self.classifier = nn.Linear(3, 2)


def probe_loss(model, batch):
    features, _, labels = batch
    return nn.functional.cross_entropy(model.classifier(features), labels)


def hand_gradient(model, features, labels):
    """dL/dW of mean cross-entropy for a linear layer: (softmax - onehot)ᵀ x / B."""
    with torch.no_grad():
        probs = torch.softmax(model.classifier(features), dim=1)
        onehot = nn.functional.one_hot(labels, 2).float()
        return (probs - onehot).T @ features / len(labels)


@pytest.fixture
def probe_batches():
    g = torch.Generator().manual_seed(0)
    return [
        (torch.randn(4, 3, generator=g), None, torch.randint(0, 2, (4,), generator=g))
        for _ in range(3)
    ]


def test_taylor_equals_the_formula_averaged_over_batches(probe_batches):
    model = Probe()
    w = model.classifier.weight.detach()
    per_batch = [(hand_gradient(model, x, y) * w).abs() for x, _, y in probe_batches]
    scores = gradient.taylor_scores(model, probe_batches, loss_fn=probe_loss)
    assert torch.allclose(scores["classifier.weight"], sum(per_batch) / 3, atol=1e-6)
    two = gradient.taylor_scores(model, probe_batches, loss_fn=probe_loss, num_batches=2)
    assert torch.allclose(two["classifier.weight"], (per_batch[0] + per_batch[1]) / 2, atol=1e-6)
    ema = gradient.taylor_scores(model, probe_batches, loss_fn=probe_loss, momentum=0.9)
    want = per_batch[0]
    for value in per_batch[1:]:
        want = 0.9 * want + 0.1 * value
    assert torch.allclose(ema["classifier.weight"], want, atol=1e-6)


def test_structured_taylor_squares_the_group_sum(probe_batches):
    model = Probe()
    w = model.classifier.weight.detach()
    groups = {
        "row 0": [("classifier.weight", (0,))],
        "column 2": [("classifier.weight", (slice(None), 2))],
    }
    scores = gradient.taylor_group_scores(model, probe_batches, groups, loss_fn=probe_loss)
    products = [hand_gradient(model, x, y) * w for x, _, y in probe_batches]
    assert scores["row 0"] == pytest.approx(sum(float(p[0].sum()) ** 2 for p in products) / 3)
    assert scores["column 2"] == pytest.approx(sum(float(p[:, 2].sum()) ** 2 for p in products) / 3)


def test_snip_is_normalized_gw_on_one_batch(probe_batches):
    model = Probe()
    x, _, y = probe_batches[0]
    raw = (hand_gradient(model, x, y) * model.classifier.weight.detach()).abs()
    scores = gradient.snip_scores(model, probe_batches[0], loss_fn=probe_loss)["classifier.weight"]
    assert torch.allclose(scores, raw / raw.sum(), atol=1e-6)
    assert float(scores.sum()) == pytest.approx(1.0)


def test_snip_warns_on_a_trained_model(synthetic_batch):
    fresh = RNNClassifier(40, 3, embed_dim=6, hidden_size=5)
    assert not gradient.looks_trained(fresh)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gradient.snip_scores(fresh, synthetic_batch)
    with torch.no_grad():
        fresh.rnn.weight_hh_l0[0, 0] = 2.0  # outside U(±1/√5): as after training
    assert gradient.looks_trained(fresh)
    with pytest.warns(UserWarning, match="looks trained"):
        gradient.snip_scores(fresh, synthetic_batch)


def test_movement_accumulates_minus_gradient_times_weight():
    model = Probe()
    tracker = gradient.MovementScores(model, lr=0.5)
    w = model.classifier.weight
    grads = [torch.randn_like(w), torch.randn_like(w)]
    want = torch.zeros_like(w)
    for g in grads:
        w.grad = g.clone()
        tracker(model, 0)
        want -= 0.5 * g * w.detach()
    assert torch.allclose(tracker.scores()["classifier.weight"], want)
    # a weight moving away from zero (gradient opposite in sign to the weight) gains score
    w.grad = -torch.sign(w.detach())
    before = tracker.scores()["classifier.weight"]
    tracker(model, 0)
    assert (tracker.scores()["classifier.weight"] > before).all()


def test_gradient_criteria_without_data_give_clear_errors():
    model = RNNClassifier(40, 3, embed_dim=6, hidden_size=5)
    with pytest.raises(ValueError, match="taylor criterion needs gradients"):
        gradient.taylor_scores(model)
    with pytest.raises(ValueError, match="snip criterion needs gradients"):
        gradient.snip_scores(model)
    with pytest.raises(ValueError, match="no steps"):
        gradient.MovementScores(model).scores()
    with pytest.raises(ValueError, match="num_batches"):
        gradient.taylor_scores(model, [()], num_batches=0)
    with pytest.raises(ValueError, match="momentum"):
        gradient.taylor_scores(model, [()], momentum=1.0)
    with pytest.raises(ValueError, match="tensor name 'rnn.weight_xx'"):
        gradient.taylor_scores(model, [()], names=["rnn.weight_xx"])
    with pytest.raises(ValueError, match="has no gradient"):
        gradient.MovementScores(model)(model, 0)


@pytest.fixture
def synthetic_batch():
    g = torch.Generator().manual_seed(1)
    tokens = torch.randint(1, 40, (6, 7), generator=g)
    lengths = torch.tensor([7, 7, 5, 4, 3, 1])
    for i, n in enumerate(lengths):
        tokens[i, n:] = 0
    return tokens, lengths, torch.randint(0, 3, (6,), generator=g)


@settings(max_examples=25, deadline=None)
@given(
    cell=st.sampled_from(["lstm", "gru", "rnn"]),
    layers=st.integers(1, 2),
    bidirectional=st.booleans(),
    criterion=st.sampled_from(
        ["magnitude", "random", "taylor", "snip", "movement", "running_taylor"]
    ),
    sparsity=st.floats(0.0, 0.99),
    scope=st.sampled_from(["layerwise", "global", "global_normalized"]),
)
def test_every_criterion_hits_the_requested_sparsity_exactly(
    cell, layers, bidirectional, criterion, sparsity, scope
):
    g = torch.Generator().manual_seed(2)
    batch = (torch.randint(1, 40, (5, 6), generator=g), torch.full((5,), 6), torch.arange(5) % 3)
    model = RNNClassifier(
        40, 3, embed_dim=6, hidden_size=5, num_layers=layers, cell=cell, bidirectional=bidirectional
    )
    if criterion in ("movement", "running_taylor"):  # hooks: score after a backward pass
        tracker = (
            gradient.MovementScores(model)
            if criterion == "movement"
            else gradient.RunningTaylorScores(model)
        )
        nn.functional.cross_entropy(model(batch[0], batch[1]), batch[2]).backward()
        tracker(model, 0)
        scores = tracker.scores()
        assert all(torch.isfinite(s).all() for s in scores.values())
    elif criterion == "taylor":
        scores = gradient.taylor_scores(model, [batch])
    elif criterion == "snip":
        scores = gradient.snip_scores(model, batch)
    elif criterion == "random":
        scores = random_scores(model, seed=0)
    else:
        scores = magnitude_scores(model)
    names = list(scores)
    assert names[0] == "embedding.weight" and any("reverse" in n for n in names) == bidirectional
    prune(model, sparsity, scores=scores, scope=scope, include_embedding=True)
    masks = get_masks(model)
    assert list(masks) == names
    pruned = {n: int((~m).sum()) for n, m in masks.items()}
    if scope == "layerwise":
        assert pruned == {n: round(sparsity * m.numel()) for n, m in masks.items()}
    else:
        total = sum(m.numel() for m in masks.values())
        assert sum(pruned.values()) == round(sparsity * total)


# --- running Taylor scores (a before_step hook) -------------------------------------


def test_running_taylor_is_an_ema_of_abs_gradient_times_weight():
    model = Probe()
    tracker = gradient.RunningTaylorScores(model, momentum=0.8)
    w = model.classifier.weight
    grads = [torch.randn_like(w) for _ in range(3)]
    want = None
    for g in grads:
        w.grad = g.clone()
        tracker(model, 0)
        value = (g * w.detach()).abs()
        want = value if want is None else 0.8 * want + 0.2 * value
    assert torch.allclose(tracker.scores()["classifier.weight"], want)
    assert tracker.steps == 3
    with pytest.raises(ValueError, match="momentum must be in"):
        gradient.RunningTaylorScores(model, momentum=1.0)
    with pytest.raises(ValueError, match="no steps"):
        gradient.RunningTaylorScores(model).scores()


# --- structured Taylor over chapter 4's ISS groups ------------------------------------


def iss_entries(model, layer, direction, k):
    """The ISS group of unit k, listed from the definition: {(param, flat index)}."""
    rnn = model.rnn
    hidden, gates = rnn.hidden_size, {"LSTM": 4, "GRU": 3, "RNN": 1}[type(rnn).__name__]
    dirs = 2 if rnn.bidirectional else 1
    suffix = "_reverse" if direction else ""
    params = dict(model.named_parameters())
    entries = set()

    def add(name, rows=None, cols=None):
        p = params[name]
        if p.dim() == 1:
            entries.update((name, r) for r in rows)
            return
        n_rows, n_cols = p.shape
        for r in range(n_rows) if rows is None else rows:
            for c in range(n_cols) if cols is None else cols:
                entries.add((name, r * n_cols + c))

    rows = [g * hidden + k for g in range(gates)]
    for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        add(f"rnn.{kind}_l{layer}{suffix}", rows=rows)
    add(f"rnn.weight_hh_l{layer}{suffix}", cols=[k])
    column = [direction * hidden + k]
    if layer + 1 < rnn.num_layers:
        for d2 in range(dirs):
            add(f"rnn.weight_ih_l{layer + 1}{'_reverse' if d2 else ''}", cols=column)
    else:
        add("classifier.weight", cols=column)
    return entries


@pytest.mark.parametrize(
    ("cell", "layers", "bidirectional"),
    [("lstm", 1, False), ("gru", 2, True), ("rnn", 2, False), ("lstm", 2, True)],
)
def test_unit_taylor_squares_the_sum_over_exactly_the_iss_group(
    cell, layers, bidirectional, synthetic_batch
):
    torch.manual_seed(3)
    model = RNNClassifier(
        40,
        3,
        embed_dim=4,
        hidden_size=3,
        num_layers=layers,
        cell=cell,
        bidirectional=bidirectional,
    )
    batches = [synthetic_batch, tuple(x.flip(0) for x in synthetic_batch)]
    scores = gradient.taylor_unit_scores(model, batches)
    params = dict(model.named_parameters())
    products = []
    for batch in batches:
        model.zero_grad()
        model.eval()
        loss = nn.functional.cross_entropy(model(batch[0], batch[1]), batch[2])
        loss.backward()
        products.append({n: (p.grad * p.detach()).reshape(-1) for n, p in params.items()})
    dirs = 2 if bidirectional else 1
    assert list(scores) == [(layer, d) for layer in range(layers) for d in range(dirs)]
    for (layer, direction), values in scores.items():
        assert values.shape == (3,)
        for k in range(3):
            entries = iss_entries(model, layer, direction, k)
            want = sum(float(sum(p[n][i] for n, i in entries)) ** 2 for p in products) / 2
            assert float(values[k]) == pytest.approx(want, rel=1e-4, abs=1e-10)
    # the adapter gives gradient.taylor_group_scores the same groups, counted once per entry
    groups = hidden_unit_groups(model)
    by_key = gradient.taylor_group_scores(model, batches, groups)
    for (_, layer, direction, k), value in by_key.items():
        assert value == pytest.approx(float(scores[(layer, direction)][k]), rel=1e-4, abs=1e-10)


def test_group_slices_mark_each_entry_once():
    model = RNNClassifier(40, 3, embed_dim=4, hidden_size=3)
    slices = gradient.group_slices(hidden_unit_groups(model))
    entries = iss_entries(model, 0, 0, 1)
    marked = {
        (name, int(i))
        for name, mask in slices[("unit", 0, 0, 1)]
        for i in torch.nonzero(mask.reshape(-1)).flatten()
    }
    assert marked == entries
    with pytest.raises(TypeError, match="GroupSet"):
        gradient.group_slices({"unit": []})
    with pytest.raises(TypeError, match="GroupSet"):
        gradient.taylor_unit_scores(model, [()], groups={"unit": []})
    other = RNNClassifier(40, 3, embed_dim=4, hidden_size=4)
    with pytest.raises(ValueError, match="another model"):
        gradient.taylor_unit_scores(model, [()], groups=hidden_unit_groups(other))
    with pytest.raises(ValueError, match="taylor criterion needs gradients"):
        gradient.taylor_unit_scores(model)


def test_unit_taylor_plugs_into_structured_selection(synthetic_batch):
    model = RNNClassifier(40, 3, embed_dim=4, hidden_size=6, num_layers=2, cell="gru")
    scores = gradient.taylor_unit_scores(model, [synthetic_batch])
    keep = select_units(scores, 2)
    for slot, kept in keep.items():
        assert set(kept.tolist()) == set(torch.topk(scores[slot], 2).indices.tolist())


# --- chapter 3's exercise checks reject wrong answers -----------------------------------


def test_chapter_3_checks_accept_right_and_reject_wrong_answers():
    from course_utils import exercises

    def taylor(w, grads):
        return sum((g * w).abs() for g in grads) / len(grads)

    def kept_jaccard(a, b):
        union = (a | b).sum()
        return float((a & b).sum() / union) if union else 1.0

    assert exercises.check_taylor_importance(taylor)
    assert not exercises.check_taylor_importance(lambda w, gs: (sum(gs) / len(gs) * w).abs())
    assert not exercises.check_taylor_importance(lambda w, gs: w.abs())
    assert exercises.check_jaccard(kept_jaccard)
    assert not exercises.check_jaccard(lambda a, b: kept_jaccard(~a, ~b))  # pruned, not kept
    assert not exercises.check_jaccard(lambda a, b: float((a & b).sum() / a.numel()))
    assert exercises.check_movement_update(lambda s, w, g, lr: s - lr * g * w)
    assert not exercises.check_movement_update(lambda s, w, g, lr: s + lr * g * w)
    assert not exercises.check_movement_update(lambda s, w, g, lr: s + lr * (g * w).abs())
    assert "expected a function" in exercises.check_jaccard(42).message
    assert not exercises.check_jaccard(42)


class DropoutProbe(Probe):
    """The probe with dropout on its features: gradients differ between train and eval."""

    def __init__(self):
        super().__init__()
        self.drop = nn.Dropout(0.9)


def dropout_probe_loss(model, batch):
    features, _, labels = batch
    return nn.functional.cross_entropy(model.classifier(model.drop(features)), labels)


def test_batch_gradients_reads_the_first_batches_with_dropout_off(probe_batches):
    model = DropoutProbe().train()
    params = {"classifier.weight": model.classifier.weight}
    grads = list(
        gradient.batch_gradients(model, probe_batches, params, dropout_probe_loss, num_batches=2)
    )
    assert len(grads) == 2 and model.training, "two batches, and the model's mode is back"
    for (x, _, y), g in zip(probe_batches, grads, strict=False):
        assert torch.allclose(g["classifier.weight"], hand_gradient(model, x, y), atol=1e-6)
