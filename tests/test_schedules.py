"""Schedules: the AGP formula against the paper, fine-tuning with masks, whole schedules."""

import copy
import math

import pytest
import torch
from helpers import zeros_stay_zero
from hypothesis import given, settings
from hypothesis import strategies as st

from course_utils.experiments.baseline import BaselineConfig, get_baseline
from course_utils.models import RNNClassifier, build_model
from course_utils.pruning import (
    AGPPruner,
    agp_pruning,
    agp_sparsity,
    finetune,
    finetune_round,
    get_masks,
    iterative_pruning,
    iterative_sparsities,
    lottery_ticket,
    magnitude_scores,
    one_shot_pruning,
    prune,
    pruned_sparsity,
    random_initialization,
    rewind_weights,
    select_global,
    train_dense,
)
from course_utils.seeding import set_seed
from course_utils.text import make_loader
from course_utils.train import evaluate

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models run fastest on one thread


# --- agp_sparsity: the paper's formula ---------------------------------------------


def paper(t, s_i, s_f, t0, n, dt):
    """Zhu & Gupta (2017), eq. (1), at a pruning step t = t0 + k*dt."""
    return s_f + (s_i - s_f) * (1 - (t - t0) / (n * dt)) ** 3


def test_hand_computed_values():
    kw = {"initial": 0.0, "final": 0.8, "start_step": 0, "end_step": 100, "frequency": 10}
    assert agp_sparsity(0, **kw) == 0.0
    assert agp_sparsity(9, **kw) == 0.0  # held until the next pruning step
    assert math.isclose(agp_sparsity(10, **kw), 0.8 - 0.8 * 0.9**3)  # 0.2168
    assert math.isclose(agp_sparsity(10, **kw), 0.2168)
    assert math.isclose(agp_sparsity(55, **kw), 0.7)  # step 50: 0.8 - 0.8 * 0.5**3
    assert math.isclose(agp_sparsity(99, **kw), 0.7992)  # step 90
    assert agp_sparsity(100, **kw) == 0.8 == agp_sparsity(10_000, **kw)
    kw = {"initial": 0.2, "final": 0.9, "start_step": 100, "end_step": 400, "frequency": 100}
    assert agp_sparsity(0, **kw) == agp_sparsity(100, **kw) == 0.2
    assert math.isclose(agp_sparsity(250, **kw), 0.9 - 0.7 * (2 / 3) ** 3)  # 0.692593
    assert math.isclose(agp_sparsity(300, **kw), 0.9 - 0.7 / 27)
    assert agp_sparsity(400, **kw) == 0.9


def test_exponent_one_is_linear():
    kw = {"initial": 0.0, "final": 0.5, "start_step": 0, "end_step": 10, "frequency": 1}
    linear = [agp_sparsity(t, exponent=1, **kw) for t in (0, 2, 5, 10)]
    assert linear == pytest.approx([0.0, 0.1, 0.25, 0.5], abs=1e-12)


schedules = st.fixed_dictionaries(
    {
        "initial": st.floats(0, 0.5),
        "final": st.floats(0.5, 0.99),
        "start_step": st.integers(0, 50),
        "n": st.integers(1, 20),
        "frequency": st.integers(1, 30),
    }
)


@settings(max_examples=60, deadline=None)
@given(schedule=schedules)
def test_schedule_matches_the_paper_and_is_monotone(schedule):
    s_i, s_f, t0 = schedule["initial"], schedule["final"], schedule["start_step"]
    n, dt = schedule["n"], schedule["frequency"]
    kw = {"initial": s_i, "final": s_f, "start_step": t0, "end_step": t0 + n * dt, "frequency": dt}
    values = [agp_sparsity(t, **kw) for t in range(t0 + n * dt + 5)]
    assert all(a <= b + 1e-12 for a, b in zip(values, values[1:], strict=False))
    assert all(s_i - 1e-12 <= v <= s_f + 1e-12 for v in values)
    assert values[0] == s_i and values[-1] == s_f
    for k in range(n + 1):
        t = t0 + k * dt
        assert math.isclose(values[t], paper(t, s_i, s_f, t0, n, dt), abs_tol=1e-12)
        # held constant until the next pruning step
        assert all(values[u] == values[t] for u in range(t, min(t + dt, t0 + n * dt)))


@pytest.mark.parametrize(
    ("change", "pattern"),
    [
        ({"end_step": 0}, "end_step must be > start_step"),
        ({"end_step": -5}, "end_step must be > start_step"),
        ({"frequency": 0}, "frequency must be >= 1"),
        ({"initial": 0.9, "final": 0.5}, "final sparsity must be >= initial"),
        ({"final": 1.0}, r"final must be in \[0, 1\)"),
        ({"initial": -0.1}, r"initial must be in \[0, 1\)"),
        ({"final": float("nan")}, r"final must be in \[0, 1\)"),
        ({"exponent": 0}, "exponent must be > 0"),
    ],
)
def test_bad_schedules_are_refused(change, pattern):
    kw = {"initial": 0.0, "final": 0.9, "start_step": 0, "end_step": 100, "frequency": 10}
    with pytest.raises(ValueError, match=pattern):
        agp_sparsity(5, **{**kw, **change})


def test_steps_must_be_integers():
    kw = {"initial": 0.0, "final": 0.9, "start_step": 0, "end_step": 100, "frequency": 10}
    with pytest.raises(TypeError, match="step must be an int"):
        agp_sparsity(2.5, **kw)
    with pytest.raises(TypeError, match="frequency must be an int"):
        agp_sparsity(2, **{**kw, "frequency": 1.5})


# --- the AGP hook ------------------------------------------------------------------


def test_agp_pruner_follows_the_schedule_and_freezes(tiny_model):
    pruner = AGPPruner(tiny_model, 0.9, initial=0.1, start_step=2, end_step=12, frequency=4)
    names = pruner.names
    assert "embedding.weight" not in names
    masks_seen = []
    for step in range(20):
        pruner(tiny_model, step)
        target = agp_sparsity(step, **pruner.schedule) if step >= 2 else 0.0
        masks = get_masks(tiny_model)
        for name in names if step >= 2 else []:
            assert int((~masks[name]).sum()) == round(target * masks[name].numel()), (step, name)
        if masks:
            masks_seen.append({n: m.clone() for n, m in masks.items()})
    assert [s for s, _ in pruner.events] == [2, 6, 10, 12]
    for earlier, later in zip(masks_seen, masks_seen[1:], strict=False):
        assert all(not (later[n] & ~earlier[n]).any() for n in names)  # only more zeros
    assert all(torch.equal(masks_seen[-1][n], masks_seen[-8][n]) for n in names)  # frozen


def test_agp_pruner_takes_a_score_function(tiny_model):
    calls = []

    def smallest_first(model):
        calls.append(1)
        return {n: -s for n, s in magnitude_scores(model, ["classifier.weight"]).items()}

    pruner = AGPPruner(
        tiny_model,
        0.5,
        end_step=2,
        frequency=1,
        names=["classifier.weight"],
        scores_fn=smallest_first,
    )
    for step in range(3):
        pruner(tiny_model, step)
    assert len(calls) == 2  # steps 1 and 2 (the target at step 0 is 0)
    assert list(get_masks(tiny_model)) == ["classifier.weight"]


def test_agp_pruner_bad_input(tiny_model):
    with pytest.raises(ValueError, match="end_step must be > start_step"):
        AGPPruner(tiny_model, 0.9, start_step=10, end_step=10, frequency=1)
    with pytest.raises(ValueError, match="unknown scope"):
        AGPPruner(tiny_model, 0.9, end_step=10, frequency=1, scope="all")
    with pytest.raises(ValueError, match="unknown criterion"):
        AGPPruner(tiny_model, 0.9, end_step=10, frequency=1, criterion="taylor")


# --- fine-tuning and schedules on a tiny task --------------------------------------


def test_finetune_keeps_masks_and_counts_steps_over_epochs(task):
    model, loaders = task
    prune(model, 0.7, include_embedding=True)
    before, after = [], []
    history = finetune(
        model,
        loaders,
        epochs=3,
        lr=0.01,
        before_step=lambda m, s: before.append(s),
        after_step=lambda m, s: after.append(s),
        progress=False,
    )
    steps = 3 * len(loaders[0])
    assert before == list(range(steps)) and after == list(range(1, steps + 1))
    assert history.epoch == [1, 2, 3] and len(history.valid_accuracy) == 3
    assert zeros_stay_zero(model)


def test_finetune_picks_the_best_allowed_epoch(task):
    model, loaders = task
    history = finetune(model, loaders, epochs=3, lr=0.01, best_from_epoch=3, progress=False)
    assert history.best_epoch == 3
    with pytest.raises(ValueError, match="best_from_epoch must be in"):
        finetune(model, loaders, epochs=2, best_from_epoch=3)
    with pytest.raises(ValueError, match="epochs must be a positive int"):
        finetune(model, loaders, epochs=0)
    with pytest.raises(TypeError, match="data must be a Baseline"):
        finetune(model, loaders[0], epochs=1)


def test_epochs_before_best_from_epoch_do_not_count_towards_patience(task):
    model, loaders = task
    history = finetune(
        model, loaders, epochs=3, lr=0.01, best_from_epoch=3, patience=1, progress=False
    )
    assert history.epoch == [1, 2, 3] and history.best_epoch == 3 and not history.stopped_early


def test_finetune_accepts_a_loss_function(task):
    model, loaders = task
    calls = []

    def loss_fn(model, batch):
        calls.append(1)
        return torch.nn.functional.cross_entropy(model(batch[0], batch[1]), batch[2])

    finetune(model, loaders, epochs=1, loss_fn=loss_fn, progress=False)
    assert len(calls) == len(loaders[0])


def layerwise_sparsity(model, sparsity):
    """The sparsity that pruning each masked tensor to round(sparsity * n) zeros gives."""
    masks = get_masks(model).values()
    return sum(round(sparsity * m.numel()) for m in masks) / sum(m.numel() for m in masks)


def test_one_shot_reaches_the_target_exactly(task):
    model, loaders = task
    run = one_shot_pruning(model, loaders, 0.8, epochs=2, progress=False)
    assert run.sparsity == layerwise_sparsity(model, 0.8) and run.epochs == 2
    assert len(run.events) == 1 and zeros_stay_zero(model)
    assert run.events[0]["valid_acc_finetuned"] == run.valid_accuracy


def test_iterative_sparsities_remove_the_same_fraction_each_round():
    targets = iterative_sparsities(0.9, 3)
    assert targets[-1] == 0.9 and len(targets) == 3
    kept = [1.0] + [1 - t for t in targets]
    ratios = [b / a for a, b in zip(kept, kept[1:], strict=False)]
    assert all(math.isclose(r, 0.1 ** (1 / 3)) for r in ratios)
    with pytest.raises(ValueError, match="rounds must be a positive int"):
        iterative_sparsities(0.9, 0)


def test_iterative_pruning_rounds(task):
    model, loaders = task
    run = iterative_pruning(model, loaders, 0.9, rounds=3, epochs_per_round=1, progress=False)
    reached = [row["sparsity"] for row in run.events]
    assert reached == sorted(reached) and reached[-1] == layerwise_sparsity(model, 0.9)
    assert run.epochs == 3 and zeros_stay_zero(model)


def test_agp_pruning_ends_at_the_final_sparsity(task):
    model, loaders = task
    run = agp_pruning(model, loaders, 0.85, epochs=3, prune_epochs=2, frequency=2, progress=False)
    for name, mask in get_masks(model).items():
        assert int((~mask).sum()) == round(0.85 * mask.numel()), name
    assert run.events[-1]["target"] == 0.85 and run.events[-1]["step"] == 2 * len(loaders[0])
    assert run.histories[0].best_epoch >= 2 and zeros_stay_zero(model)
    with pytest.raises(ValueError, match="prune_epochs must be in"):
        agp_pruning(model, loaders, 0.9, epochs=2, prune_epochs=3, frequency=1)


# --- lottery tickets ---------------------------------------------------------------


def test_rewind_weights_restores_survivors_only(tiny_model):
    start = copy.deepcopy(tiny_model)
    with torch.no_grad():
        for p in tiny_model.parameters():
            p.add_(1.0)
    masks = prune(tiny_model, 0.5)
    rewind_weights(tiny_model, start)
    w, w0 = tiny_model.rnn.weight_hh_l0, start.rnn.weight_hh_l0
    m = masks["rnn.weight_hh_l0"]
    assert torch.equal(w[m], w0[m]) and (w[~m] == 0).all()
    with pytest.raises(ValueError, match="weights lacks parameters"):
        rewind_weights(tiny_model, {"classifier.weight": w0})


def test_lottery_ticket_prunes_trained_weights_and_resets_to_the_start(task):
    init, loaders = task
    trained = copy.deepcopy(init)
    finetune(trained, loaders, epochs=2, lr=0.01, progress=False)
    ticket = copy.deepcopy(init)
    run = lottery_ticket(ticket, loaders, 0.8, epochs=1, lr=1e-12, trained=trained, progress=False)
    expected = select_global(magnitude_scores(trained, list(get_masks(ticket))), 0.8)
    params = dict(ticket.named_parameters())
    for name, mask in get_masks(ticket).items():
        assert torch.equal(mask, expected[name]), name
        assert torch.allclose(params[name][mask], dict(init.named_parameters())[name][mask])
    total = sum(m.numel() for m in get_masks(ticket).values())
    assert run.sparsity == round(0.8 * total) / total  # one global count
    control = lottery_ticket(
        copy.deepcopy(init),
        loaders,
        0.8,
        epochs=1,
        lr=1e-12,
        trained=trained,
        reinit_seed=5,
        progress=False,
    )
    assert control.schedule == "random reinit"


def weights_after_dense_steps(model, loader, steps, *, lr, seed=0):
    """``model`` after its first ``steps`` training steps, written out by hand: what
    ``finetune(seed=seed)`` does (seed, Adam, mean cross-entropy, gradient norm clipped
    to 1), on a fresh loader with the same order of batches."""
    model = copy.deepcopy(model)
    set_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for step, (tokens, lengths, labels) in enumerate(loader):
        if step == steps:
            break
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(tokens, lengths), labels).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def test_lottery_ticket_rewinds_survivors_to_their_values_after_rewind_step(synthetic_data):
    vocab, train, valid = synthetic_data

    def loaders():  # a fresh pair: the same batch order as the first epoch of the task's
        return make_loader(train, 16, shuffle=True), make_loader(valid, 64)

    torch.manual_seed(0)
    init = RNNClassifier(len(vocab), 3, embed_dim=8, hidden_size=8)
    after_3 = weights_after_dense_steps(init, loaders()[0], 3, lr=0.01)
    assert not torch.equal(after_3["rnn.weight_hh_l0"], init.rnn.weight_hh_l0)
    starts = []  # (weights, masks) each phase starts from: before its first update

    def record_start(model, step):
        if step == 0:
            weights = {n: p.detach().clone() for n, p in model.named_parameters()}
            starts.append((weights, {n: m.clone() for n, m in get_masks(model).items()}))

    run = lottery_ticket(
        copy.deepcopy(init),
        loaders(),
        0.5,
        epochs=1,
        rounds=2,
        lr=0.01,
        rewind_step=3,
        before_step=record_start,
        progress=False,
    )
    assert [round(r["target"], 4) for r in run.events] == [round(1 - 0.5**0.5, 4), 0.5]
    assert len(run.histories) == len(starts) == 3  # dense training, then two rounds
    for weights, masks in starts[1:]:
        assert set(masks) == {"rnn.weight_ih_l0", "rnn.weight_hh_l0", "classifier.weight"}
        for name, value in weights.items():
            want = after_3[name] * masks[name] if name in masks else after_3[name]
            assert torch.equal(value, want), name


def test_train_dense_returns_theta_0_or_the_weights_after_rewind_step(synthetic_data):
    vocab, train, valid = synthetic_data

    def loaders():  # a fresh pair: the same batch order as weights_after_dense_steps reads
        return make_loader(train, 16, shuffle=True), make_loader(valid, 64)

    torch.manual_seed(0)
    init = RNNClassifier(len(vocab), 3, embed_dim=8, hidden_size=8)
    model = copy.deepcopy(init)
    history, theta_0 = train_dense(model, loaders(), epochs=1, lr=0.01, progress=False)
    assert history.epoch == [1]
    assert not torch.equal(model.rnn.weight_hh_l0, init.rnn.weight_hh_l0), "model trained"
    assert all(torch.equal(theta_0[n], p) for n, p in init.named_parameters())
    _, after_3 = train_dense(
        copy.deepcopy(init), loaders(), epochs=1, lr=0.01, rewind_step=3, progress=False
    )
    want = weights_after_dense_steps(init, loaders()[0], 3, lr=0.01)
    assert all(torch.equal(after_3[n], want[n]) for n in want)


def test_random_initialization_is_a_fresh_model_drawn_apart_from_the_callers_stream(
    tiny_model,
):
    before = torch.get_rng_state()
    weights = random_initialization(tiny_model, 5)
    assert torch.equal(torch.get_rng_state(), before)
    set_seed(5)
    fresh = build_model(tiny_model.config())
    assert all(torch.equal(weights[n], p) for n, p in fresh.named_parameters())
    assert not torch.equal(weights["rnn.weight_hh_l0"], tiny_model.rnn.weight_hh_l0)


def test_finetune_round_measures_after_pruning_and_after_fine_tuning(task):
    model, loaders = task
    finetune(model, loaders, epochs=2, lr=0.02, progress=False)
    prune(model, 0.7)
    names = list(get_masks(model))
    pruned = evaluate(model, loaders[1])["accuracy"]
    row, history = finetune_round(
        model,
        loaders,
        valid_loader=loaders[1],
        names=names,
        epochs=2,
        lr=0.02,
        seed=1,
        desc="round",
        labels=("cut", "healed"),
        progress=False,
    )
    assert list(row) == ["sparsity", "valid_acc_cut", "valid_acc_healed"]
    assert row["valid_acc_cut"] == pruned
    assert row["valid_acc_healed"] == max(history.valid_accuracy)
    assert row["valid_acc_healed"] == evaluate(model, loaders[1])["accuracy"]
    assert row["sparsity"] == pruned_sparsity(model, names) and zeros_stay_zero(model)


def test_lottery_ticket_with_rewinding_and_bad_input(task):
    init, loaders = task
    with pytest.raises(ValueError, match="rewind_step=3 needs the weights"):
        lottery_ticket(copy.deepcopy(init), loaders, 0.5, epochs=1, rewind_step=3, trained=init)
    with pytest.raises(ValueError, match="rewind_step=10000 is beyond"):
        lottery_ticket(
            copy.deepcopy(init), loaders, 0.5, epochs=1, rewind_step=10_000, progress=False
        )
    pruned = copy.deepcopy(init)
    prune(pruned, 0.3)
    with pytest.raises(ValueError, match="already has masks"):
        lottery_ticket(pruned, loaders, 0.5, epochs=1)


def test_initial_model_is_where_get_baseline_started(tmp_path):
    # with a vanishing learning rate the "trained" baseline is still its initialization
    tiny = BaselineConfig(
        max_len=16,
        hidden_size=4,
        embed_dim=4,
        epochs=1,
        max_vocab=300,
        batch_size=128,
        lr=1e-12,
        patience=None,
    )
    baseline = get_baseline(tiny, seed=3, cache_dir=tmp_path, progress=False)
    init = baseline.initial_model()
    for (name, p), q in zip(init.named_parameters(), baseline.model.parameters(), strict=True):
        assert torch.allclose(p, q, atol=1e-9), name
    other = get_baseline(tiny, seed=4, cache_dir=tmp_path, progress=False).initial_model()
    assert not torch.allclose(other.rnn.weight_hh_l0, init.rnn.weight_hh_l0)
