"""Chapter 3's pipelines: gradual pruning by any criterion (movement), SNIP, Jaccard."""

import copy
import inspect
import warnings

import pytest
import torch
from helpers import zeros_stay_zero
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from course_utils.models import RNNClassifier
from course_utils.pruning import agp_sparsity, get_masks, select_layerwise
from course_utils.pruning import criteria as criteria_module
from course_utils.pruning.criteria import (
    ALL_CRITERIA,
    GRADUAL_CRITERIA,
    SNIP_SCOPES,
    agp_steps,
    gradual_pruning,
    jaccard,
    jaccard_per_tensor,
    snip_pruning,
)
from course_utils.pruning.gradient import MovementScores, RunningTaylorScores, snip_scores
from course_utils.pruning.magnitude import (
    CRITERIA,
    TRAINING_CRITERIA,
    WEIGHT_CRITERIA,
    check_criterion,
    magnitude_scores,
    prune,
    random_scores,
)

# --- the one registry of score criteria ---------------------------------------------------


def test_one_registry_names_every_criterion():
    assert CRITERIA == {
        "magnitude": magnitude_scores,
        "random": random_scores,
        "taylor": RunningTaylorScores,
        "movement": MovementScores,
        "snip": snip_scores,
    }
    # table order: the gradual criteria, SNIP as in the paper, then its layerwise variant
    assert ALL_CRITERIA == ("magnitude", "random", "taylor", "movement", "snip", "snip_layerwise")
    assert SNIP_SCOPES == {"snip": "global", "snip_layerwise": "layerwise"}
    assert GRADUAL_CRITERIA == WEIGHT_CRITERIA + TRAINING_CRITERIA
    assert GRADUAL_CRITERIA == ("magnitude", "random", "taylor", "movement")
    assert check_criterion("random") == "random"
    with pytest.raises(ValueError, match=r"unknown criterion='hessian'; choose from \['magnitude'"):
        check_criterion("hessian", ALL_CRITERIA)
    weights_only = r"criterion='taylor'; choose from \['magnitude', 'random'\]"
    with pytest.raises(ValueError, match=weights_only):
        check_criterion("taylor")  # without data, only |w| and random can score


def test_each_criterion_scores_every_prunable_weight(task):
    model, (train, _) = task
    batch = next(iter(train))
    names = ["rnn.weight_hh_l0", "classifier.weight"]
    for criterion, entry in CRITERIA.items():
        if criterion in WEIGHT_CRITERIA:
            scores = entry(model, names)
        elif criterion in TRAINING_CRITERIA:  # a before_step hook, after one backward pass
            tracker = entry(model, names)
            model.zero_grad()
            nn.functional.cross_entropy(model(batch[0], batch[1]), batch[2]).backward()
            tracker(model, 0)
            scores = tracker.scores()
        else:
            scores = entry(model, batch, names=names)
        assert list(scores) == names, criterion
        params = dict(model.named_parameters())
        assert all(s.shape == params[n].shape for n, s in scores.items()), criterion
    with pytest.raises(ValueError, match=r"unknown criterion='taylor'.*pass their scores"):
        prune(model, 0.5, criterion="taylor")


# --- Jaccard ----------------------------------------------------------------------------


def test_jaccard_by_hand():
    a = torch.tensor([True, True, False, False])
    b = torch.tensor([True, False, True, False])
    assert jaccard(a, b) == pytest.approx(1 / 3)
    assert jaccard(a, a) == 1.0
    assert jaccard(a, ~a) == 0.0
    none = torch.zeros(4, dtype=torch.bool)
    assert jaccard(none, none) == 1.0
    both = {"x": a, "y": torch.tensor([[True, True]])}
    other = {"x": b, "y": torch.tensor([[True, False]])}
    assert jaccard(both, other) == pytest.approx(2 / 5)  # kept together: 4 and 3, shared 2
    assert jaccard_per_tensor(both, other) == {"x": pytest.approx(1 / 3), "y": 0.5}


def test_jaccard_bad_input():
    a = torch.ones(3, dtype=torch.bool)
    with pytest.raises(ValueError, match="differ in size"):
        jaccard(a, torch.ones(4, dtype=torch.bool))
    with pytest.raises(TypeError, match="both be tensors or both be dicts"):
        jaccard(a, {"a": a})
    with pytest.raises(ValueError, match="same tensors"):
        jaccard({"a": a}, {"b": a})
    with pytest.raises(ValueError, match="share no tensor"):
        jaccard_per_tensor({"a": a}, {"b": a})
    with pytest.raises(TypeError, match="must be a tensor"):
        jaccard([1, 0], [1, 0])


@settings(max_examples=20, deadline=None)
@given(density=st.floats(0.1, 0.5), seed=st.integers(0, 1000))
def test_independent_random_masks_overlap_by_about_d_over_2_minus_d(density, seed):
    g = torch.Generator().manual_seed(seed)
    n = 200_000
    a = torch.rand(n, generator=g) < density
    b = torch.rand(n, generator=g) < density
    assert jaccard(a, b) == pytest.approx(density / (2 - density), rel=0.1)


# --- the AGP window inside a run ---------------------------------------------------------


def test_agp_steps():
    assert agp_steps(93, warmup=0.1, ramp_end=0.7, frequency=5) == (9, 65)
    assert agp_steps(10, warmup=0.0, ramp_end=0.01, frequency=1) == (0, 1)
    assert agp_steps(8, warmup=0.95, ramp_end=1.0, frequency=1) == (7, 8)
    with pytest.raises(ValueError, match="ramp_end must be > warmup"):
        agp_steps(93, warmup=0.5, ramp_end=0.5, frequency=5)
    with pytest.raises(ValueError, match="warmup must be a fraction"):
        agp_steps(93, warmup=-0.1, ramp_end=0.5, frequency=5)
    with pytest.raises(ValueError, match="frequency must be a positive int"):
        agp_steps(93, warmup=0.1, ramp_end=0.5, frequency=0)


# --- gradual pruning with each criterion ----------------------------------------------------


@pytest.mark.parametrize("criterion", ["magnitude", "random", "taylor", "movement"])
@pytest.mark.parametrize("scope", ["layerwise", "global"])
def test_gradual_pruning_reaches_the_target_exactly(task, criterion, scope):
    model, loaders = task
    run = gradual_pruning(
        model,
        loaders,
        0.9,
        criterion=criterion,
        epochs=2,
        frequency=2,
        scope=scope,
        progress=False,
    )
    masks = get_masks(model)
    assert list(masks) == ["rnn.weight_ih_l0", "rnn.weight_hh_l0", "classifier.weight"]
    pruned = {n: int((~m).sum()) for n, m in masks.items()}
    if scope == "layerwise":
        assert pruned == {n: round(0.9 * m.numel()) for n, m in masks.items()}
    else:
        assert sum(pruned.values()) == round(0.9 * sum(m.numel() for m in masks.values()))
    assert zeros_stay_zero(model)
    assert run.sparsity == pytest.approx(
        sum(pruned.values()) / sum(m.numel() for m in masks.values())
    )
    assert "embedding.weight" not in masks


def test_gradual_pruning_follows_the_cubic_schedule(task):
    model, loaders = task
    steps = 3 * len(loaders[0])
    start, end = agp_steps(steps, warmup=0.1, ramp_end=0.7, frequency=2)
    run = gradual_pruning(
        model, loaders, 0.8, criterion="taylor", epochs=3, frequency=2, progress=False
    )
    schedule = dict(initial=0.0, final=0.8, start_step=start, end_step=end, frequency=2)
    assert [r["step"] for r in run.events] == sorted(r["step"] for r in run.events)
    for row in run.events:
        assert start < row["step"] <= end
        assert row["target"] == pytest.approx(agp_sparsity(row["step"], **schedule))
    assert run.events[-1]["target"] == pytest.approx(0.8)


def test_movement_pruning_selects_by_movement_scores(task):
    # one pruning step at the very last step: the masks must be the top-k of the scores
    # accumulated until then (the tracker's final state)
    model, loaders = task
    tracker = MovementScores(model, ["rnn.weight_hh_l0", "classifier.weight"])
    gradual_pruning(
        model,
        loaders,
        0.75,
        criterion="movement",
        epochs=1,
        warmup=0.95,
        ramp_end=1.0,
        frequency=1000,
        names=tracker.names,
        tracker=tracker,
        progress=False,
    )
    want = select_layerwise(tracker.scores(), 0.75)
    masks = get_masks(model)
    for name in tracker.names:
        assert torch.equal(masks[name], want[name]), name
    # and movement differs from magnitude on the same run: a real gradient signal
    params = dict(model.named_parameters())
    assert tracker.steps == len(loaders[0])
    assert not torch.equal(tracker.scores()["rnn.weight_hh_l0"], params["rnn.weight_hh_l0"].abs())


def test_gradual_pruning_bad_input(task):
    model, loaders = task
    with pytest.raises(ValueError, match="unknown criterion='snip'"):
        gradual_pruning(model, loaders, 0.9, criterion="snip")
    with pytest.raises(ValueError, match="final must be in"):
        gradual_pruning(model, loaders, 1.0)
    with pytest.raises(TypeError, match="final must be a number"):
        gradual_pruning(model, loaders, "0.9")
    with pytest.raises(ValueError, match="unknown scope"):
        gradual_pruning(model, loaders, 0.9, scope="per_row")
    with pytest.raises(ValueError, match="tensor name 'rnn.weight_xx'"):
        gradual_pruning(model, loaders, 0.9, names=["rnn.weight_xx"])
    with pytest.raises(ValueError, match="epochs must be a positive int"):
        gradual_pruning(model, loaders, 0.9, epochs=0)
    with pytest.raises(TypeError, match="tracker must be"):
        gradual_pruning(model, loaders, 0.9, tracker=object())
    assert not get_masks(model)  # nothing happened before the errors


# --- SNIP --------------------------------------------------------------------------------


class TwoLayers(nn.Module):
    """x -> W1·x -> W2·h + b: the gradients of both weights have a closed form."""

    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(3, 4, bias=False)
        self.classifier = nn.Linear(4, 2)


def two_layer_loss(model, batch):
    x, _, y = batch
    return nn.functional.cross_entropy(model.classifier(model.hidden(x)), y)


def test_snip_scores_are_the_papers_normalized_connection_sensitivity():
    # Lee et al. 2019: s_j = |g_j·w_j| / Σ_k |g_k·w_k|, the sum over ALL scored weights
    torch.manual_seed(0)
    model = TwoLayers()
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(6, 3, generator=g), torch.randint(0, 2, (6,), generator=g)
    w1, w2 = model.hidden.weight.detach(), model.classifier.weight.detach()
    with torch.no_grad():
        h = x @ w1.T
        p = torch.softmax(h @ w2.T + model.classifier.bias, dim=1)
        d = (p - nn.functional.one_hot(y, 2)) / 6  # dL/dlogits of the mean cross-entropy
        raw = {
            "hidden.weight": ((d @ w2).T @ x * w1).abs(),  # dL/dW1 = (d·W2)ᵀ x
            "classifier.weight": (d.T @ h * w2).abs(),  # dL/dW2 = dᵀ h
        }
    total = sum(float(r.sum()) for r in raw.values())
    scores = snip_scores(model, (x, None, y), loss_fn=two_layer_loss)
    assert list(scores) == ["hidden.weight", "classifier.weight"]
    for name, r in raw.items():
        torch.testing.assert_close(scores[name], r / total, rtol=1e-5, atol=1e-8)
    # one normalization over both tensors, not one per tensor
    assert sum(float(s.sum()) for s in scores.values()) == pytest.approx(1.0)
    assert float(scores["classifier.weight"].sum()) < 0.99


def snip_by_hand(model, batch, names):
    """SNIP's scores from autograd: |dL/dw·w| over one batch, normalized to sum to 1."""
    model = copy.deepcopy(model).eval()
    params = dict(model.named_parameters())
    tokens, lengths, labels = batch
    loss = nn.functional.cross_entropy(model(tokens, lengths), labels)
    grads = torch.autograd.grad(loss, [params[n] for n in names])
    raw = {n: (g * params[n]).abs().detach() for n, g in zip(names, grads, strict=True)}
    total = sum(r.sum() for r in raw.values())
    return {n: r / total for n, r in raw.items()}


def without_lowest(scores, k):
    """A keep-mask of ``scores``' shape that drops its k lowest entries."""
    keep = torch.ones(scores.numel(), dtype=torch.bool)
    keep[scores.reshape(-1).argsort()[:k]] = False
    return keep.reshape(scores.shape)


def test_snip_pruning_prunes_at_init_by_one_batch_and_trains(task):
    model, loaders = task
    init = copy.deepcopy(model)
    batch = next(iter(loaders[0]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a fresh model: no warning
        run = snip_pruning(
            model, loaders, 0.8, epochs=2, batch=batch, scope="layerwise", progress=False
        )
    masks = get_masks(model)
    assert list(masks) == ["rnn.weight_ih_l0", "rnn.weight_hh_l0", "classifier.weight"]
    scores = snip_by_hand(init, batch, list(masks))
    want = {n: without_lowest(s, round(0.8 * s.numel())) for n, s in scores.items()}
    for name, mask in masks.items():
        assert torch.equal(mask, want[name]), name
    assert zeros_stay_zero(model)
    assert run.epochs == 2 and run.events[0]["target"] == 0.8
    params = dict(model.named_parameters())
    assert not torch.equal(
        params["rnn.weight_hh_l0"], init.rnn.weight_hh_l0 * want["rnn.weight_hh_l0"]
    )


def test_snip_ranks_all_tensors_together_by_default_as_in_the_paper(task):
    assert inspect.signature(snip_pruning).parameters["scope"].default == "global"
    model, loaders = task
    init = copy.deepcopy(model)
    batch = next(iter(loaders[0]))
    run = snip_pruning(model, loaders, 0.8, epochs=1, batch=batch, progress=False)
    masks = get_masks(model)
    names = list(masks)
    scores = snip_by_hand(init, batch, names)
    sizes = [scores[n].numel() for n in names]
    k = round(0.8 * sum(sizes))  # 429 of the 536 weights
    keep = without_lowest(torch.cat([scores[n].reshape(-1) for n in names]), k)
    for name, kept in zip(names, keep.split(sizes), strict=True):
        assert torch.equal(masks[name], kept.reshape(masks[name].shape)), name
    # one threshold: the tensors lose different fractions, unlike layerwise selection
    pruned = {n: int((~m).sum()) for n, m in masks.items()}
    assert sum(pruned.values()) == k and run.sparsity == pytest.approx(k / sum(sizes))
    assert pruned != {n: round(0.8 * m.numel()) for n, m in masks.items()}


def test_global_snip_keeps_the_top_scores_of_both_tensors_by_hand(task, monkeypatch):
    # Lee et al. 2019: one kappa for the whole network. Two tensors of 4 weights with known
    # scores (summing to 1, as SNIP's do); at 50 % the 4 lowest of all 8 go, whichever tensor
    # holds them: 0.01, 0.02, 0.05 and 0.07.
    _, loaders = task
    torch.manual_seed(0)
    model = RNNClassifier(task[0].embedding.num_embeddings, 3, embed_dim=1, hidden_size=1)
    names = ["rnn.weight_ih_l0", "rnn.weight_hh_l0"]  # both 4 x 1
    known = {
        "rnn.weight_ih_l0": torch.tensor([[0.30], [0.05], [0.20], [0.25]]),
        "rnn.weight_hh_l0": torch.tensor([[0.10], [0.02], [0.01], [0.07]]),
    }
    batch = next(iter(loaders[0]))
    seen = []

    def known_scores(scored, given, names, importance=None):
        assert importance is None  # the course's |g·w| unless a learner's function is given
        seen.append((given, names))
        return {n: known[n].clone() for n in names}

    monkeypatch.setattr(criteria_module, "snip_scores", known_scores)
    run = snip_pruning(model, loaders, 0.5, epochs=1, batch=batch, names=names, progress=False)
    assert seen == [(batch, names)]
    masks = get_masks(model)
    kept = {n: masks[n].reshape(-1).tolist() for n in names}
    assert kept == {
        "rnn.weight_ih_l0": [True, False, True, True],  # loses only 0.05: 25 % sparse
        "rnn.weight_hh_l0": [True, False, False, False],  # keeps only 0.10: 75 % sparse
    }
    assert run.sparsity == 0.5 and run.events[0]["sparsity"] == 0.5
    # the layerwise variant prunes 2 of each tensor: another mask for the same scores
    model = RNNClassifier(task[0].embedding.num_embeddings, 3, embed_dim=1, hidden_size=1)
    snip_pruning(
        model, loaders, 0.5, epochs=1, batch=batch, names=names, scope="layerwise", progress=False
    )
    layerwise = {n: m.reshape(-1).tolist() for n, m in get_masks(model).items()}
    assert layerwise == {
        "rnn.weight_ih_l0": [True, False, False, True],
        "rnn.weight_hh_l0": [True, False, False, True],
    }


def test_snip_pruning_warns_on_a_trained_model(task):
    model, loaders = task
    with torch.no_grad():
        model.rnn.weight_hh_l0[0, 0] = 3.0
    with pytest.warns(UserWarning, match="looks trained"):
        snip_pruning(model, loaders, 0.5, epochs=1, progress=False)
    with pytest.raises(ValueError, match="sparsity must be in"):
        snip_pruning(model, loaders, -0.1, epochs=1)
