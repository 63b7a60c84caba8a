"""The learner's own functions drive one experiment per chapter (chapters 2-6).

Each hook takes the exercise's function in place of the course's code. Given the course's
own answer (``exercises.reference_*``), a run must be exactly the default run; given a
different function, the run must change (so the hook is really used); given a wrong one,
a clear error names what is wrong before anything is stored.
"""

import copy

import pytest
import torch
from helpers import padded_batch, same_weights

from course_utils import exercises
from course_utils.deploy import compress
from course_utils.models import RNNClassifier
from course_utils.pruning import (
    AGPPruner,
    agp_pruning,
    gan,
    get_masks,
    iterative_pruning,
    one_shot_pruning,
    prune,
    select,
    select_with,
    snip_pruning,
    snip_scores,
    taylor_scores,
)
from course_utils.text import make_loader

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models run fastest on one thread


def magnitude_mask(weight, sparsity):
    """A learner's answer to chapter 2's exercise 1 (argsort, not the course's topk)."""
    k = round(sparsity * weight.numel())
    keep = torch.ones(weight.numel(), dtype=torch.bool)
    keep[torch.argsort(weight.abs().flatten())[:k]] = False
    return keep.reshape(weight.shape)


def agp(step, initial, final, start_step, end_step, frequency):
    """A learner's answer to chapter 2's exercise 3."""
    if step < start_step:
        return initial
    if step >= end_step:
        return final
    last = start_step + (step - start_step) // frequency * frequency
    return final + (initial - final) * (1 - (last - start_step) / (end_step - start_step)) ** 3


def random_scores(seed=0, with_pruned=True):
    g = torch.Generator().manual_seed(seed)
    scores = {"a": torch.rand(6, 5, generator=g), "b": 3 * torch.rand(4, 7, generator=g)}
    if with_pruned:  # weights pruned before carry -inf, as prune() passes them
        scores["a"][0, :3] = float("-inf")
        scores["b"][1, 1] = float("-inf")
    return scores


# --- chapter 2: selection and schedules ---------------------------------------------


@pytest.mark.parametrize("scope", ["layerwise", "global", "global_normalized"])
@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.75, 0.95])
def test_select_with_the_learners_mask_equals_the_course_selection(scope, sparsity):
    for seed in range(3):
        scores = random_scores(seed)
        if sparsity < 0.3 and scope == "layerwise":
            scores = random_scores(seed, with_pruned=False)  # a target below what is pruned
        want = select(scores, sparsity, scope)
        for rule in (magnitude_mask, exercises.reference_magnitude_mask):
            got = select_with(rule, scores, sparsity, scope)
            assert all(torch.equal(got[n], want[n]) for n in want), (scope, sparsity, seed)


def test_select_with_per_tensor_targets():
    scores = random_scores(1)
    targets = {"a": 0.5, "b": 0.8}
    got = select_with(magnitude_mask, scores, targets)
    assert all(torch.equal(got[n], select(scores, targets)[n]) for n in scores)


def test_select_with_refuses_a_rule_that_prunes_the_wrong_count_or_shape():
    scores = random_scores(0, with_pruned=False)

    def one_too_many(weight, sparsity):
        mask = magnitude_mask(weight, sparsity).flatten()
        mask[mask.nonzero()[0]] = False
        return mask.reshape(weight.shape)

    with pytest.raises(ValueError, match=r"mask_fn pruned 11 entries of 'a', expected exactly"):
        select_with(one_too_many, scores, 1 / 3)
    with pytest.raises(ValueError, match="mask_fn pruned .* of all tensors together"):
        select_with(one_too_many, scores, 0.5, "global")
    with pytest.raises(ValueError, match=r"mask_fn returned shape \(30,\) for 'a'"):
        select_with(lambda w, s: magnitude_mask(w, s).flatten(), scores, 0.5)
    with pytest.raises(TypeError, match="mask_fn must return a tensor for 'a', got list"):
        select_with(lambda w, s: [True], scores, 0.5)
    with pytest.raises(TypeError, match="mask_fn must be callable"):
        select_with("magnitude", scores, 0.5)
    with pytest.raises(ValueError, match=r"scores\['a'\] has negative values"):
        select_with(magnitude_mask, {"a": torch.tensor([-1.0, 2.0])}, 0.5)


def test_prune_with_the_learners_mask_keeps_earlier_zeros(tiny_model):
    ours, theirs = copy.deepcopy(tiny_model), copy.deepcopy(tiny_model)
    for target in (0.4, 0.7, 0.9):  # an iterative schedule: pruned weights stay pruned
        for scope in ("global",):
            want = prune(ours, target, scope=scope)
            got = prune(theirs, target, scope=scope, mask_fn=magnitude_mask)
            assert all(torch.equal(got[n], want[n]) for n in want)
    assert same_weights(ours, theirs)


def test_prune_and_the_schedules_use_the_learners_mask(task):
    model, loaders = task

    def largest_first(weight, sparsity):  # a wrong answer that still prunes the right count
        return magnitude_mask(-1 / weight.abs().clamp_min(1e-12), sparsity)

    m = copy.deepcopy(model)
    got = prune(m, 0.5, mask_fn=largest_first)
    want = prune(copy.deepcopy(model), 0.5)
    assert not any(torch.equal(got[n], want[n]) for n in want)
    run = one_shot_pruning(copy.deepcopy(model), fixed(loaders), 0.5, epochs=1)
    wrong = one_shot_pruning(
        copy.deepcopy(model), fixed(loaders), 0.5, epochs=1, mask_fn=largest_first
    )
    assert run.events[0]["valid_acc_pruned"] != wrong.events[0]["valid_acc_pruned"] or (
        run.histories[0].train_loss != wrong.histories[0].train_loss
    )


def fixed(loaders):
    """Lists of batches: a shuffling loader moves on between runs, a list does not."""
    return tuple(list(loader) for loader in loaders)


def test_the_schedules_run_exactly_as_before_on_the_learners_functions(task):
    model, loaders = task
    loaders = fixed(loaders)
    runs = {}
    for label, extra in (
        ("course", {}),
        ("learner", {"mask_fn": magnitude_mask, "schedule_fn": agp}),
    ):
        m = copy.deepcopy(model)
        runs[label] = (
            m,
            agp_pruning(
                m, loaders, 0.8, epochs=2, prune_epochs=1, frequency=2, scope="global", **extra
            ),
        )
    (a, run_a), (b, run_b) = runs["course"], runs["learner"]
    assert same_weights(a, b) and run_a.events == run_b.events
    assert run_a.valid_accuracy == run_b.valid_accuracy
    for schedule in (one_shot_pruning, iterative_pruning):
        options = {"rounds": 2, "epochs_per_round": 1} if schedule is iterative_pruning else {}
        options.setdefault("epochs", 1) if schedule is one_shot_pruning else None
        a, b = copy.deepcopy(model), copy.deepcopy(model)
        schedule(a, loaders, 0.8, scope="global", **options)
        schedule(b, loaders, 0.8, scope="global", mask_fn=magnitude_mask, **options)
        assert same_weights(a, b), schedule.__name__


def test_a_different_schedule_changes_the_run_and_a_wrong_one_is_refused(task):
    model, loaders = task
    loaders = fixed(loaders)

    def linear(step, initial, final, start_step, end_step, frequency):
        last = start_step + (step - start_step) // frequency * frequency
        return min(
            final, initial + (final - initial) * (last - start_step) / (end_step - start_step)
        )

    options = {"epochs": 1, "prune_epochs": 1, "frequency": 2}
    cubic = agp_pruning(copy.deepcopy(model), loaders, 0.8, **options, schedule_fn=agp)
    straight = agp_pruning(copy.deepcopy(model), loaders, 0.8, **options, schedule_fn=linear)
    assert [e["target"] for e in cubic.events] != [e["target"] for e in straight.events]
    with pytest.raises(ValueError, match="schedule_fn's value at step 2 must be in"):
        agp_pruning(
            copy.deepcopy(model), loaders, 0.8, **options, schedule_fn=lambda *a: 1.5 * a[0]
        )
    with pytest.raises(ValueError, match="schedule_fn is the cubic schedule"):
        AGPPruner(model, 0.8, end_step=10, frequency=2, schedule_fn=agp, exponent=1.0)


# --- chapter 3: Taylor and SNIP scores ----------------------------------------------


def taylor_importance(weight, grads):
    return torch.stack([(g * weight).abs() for g in grads]).mean(dim=0)


def test_scores_from_the_learners_taylor_importance_equal_the_course_scores(task):
    model, (train, _) = task
    train = [batch for _, batch in zip(range(4), train, strict=False)]  # the same batches twice
    want = taylor_scores(model, train, num_batches=4)
    got = taylor_scores(model, train, num_batches=4, importance=taylor_importance)
    assert set(got) == set(want)
    assert all(torch.allclose(got[n], want[n], rtol=1e-5, atol=1e-9) for n in want)
    batch = next(iter(train))
    want, got = snip_scores(model, batch), snip_scores(model, batch, importance=taylor_importance)
    assert all(torch.allclose(got[n], want[n], rtol=1e-5, atol=1e-12) for n in want)


def test_the_learners_importance_is_what_ranks(task):
    model, (train, _) = task
    magnitude = taylor_scores(model, train, num_batches=2, importance=lambda w, gs: w.abs())
    assert all(
        torch.equal(magnitude[n], p.detach().abs())
        for n, p in model.named_parameters()
        if n in magnitude
    )
    pruned = copy.deepcopy(model)
    run = snip_pruning(
        pruned,
        (train, train),
        0.5,
        epochs=1,
        scope="layerwise",
        batch=next(iter(train)),
        importance=lambda w, gs: w.abs(),
    )
    like_magnitude = prune(copy.deepcopy(model), 0.5)
    assert run.schedule == "SNIP"
    assert all(torch.equal(get_masks(pruned)[n], like_magnitude[n]) for n in like_magnitude)


def test_a_wrong_importance_is_refused(task):
    model, (train, _) = task
    with pytest.raises(
        ValueError, match=r"importance returned shape \(15,\) for 'embedding.weight'"
    ):
        taylor_scores(model, train, num_batches=1, importance=lambda w, gs: w.sum(1))
    with pytest.raises(ValueError, match="negative or non-finite scores for 'embedding.weight'"):
        taylor_scores(model, train, num_batches=1, importance=lambda w, gs: gs[0] * w)
    with pytest.raises(ValueError, match="pass momentum=None with it"):
        taylor_scores(model, train, momentum=0.9, importance=taylor_importance)
    with pytest.raises(TypeError, match="importance must be callable"):
        snip_scores(model, next(iter(train)), importance="taylor")


# --- chapter 4: removing hidden units -----------------------------------------------


def test_wrong_unit_removals_fail_the_check():
    ref = exercises.reference_remove_units

    def classifier_untouched(state, keep):
        new = ref(state, keep)
        new["classifier.weight"] = state["classifier.weight"].clone()
        return new

    def first_gate_block_only(state, keep):
        new = ref(state, keep)
        for name in ("rnn.weight_ih_l0", "rnn.bias_ih_l0", "rnn.bias_hh_l0"):
            new[name] = (
                state[name][: len(state["rnn.weight_hh_l0"][0])][keep]
                .repeat(4, 1)[: 4 * len(keep)]
                .reshape(new[name].shape)
            )
        return new

    def recurrent_rows_only(state, keep):
        new = ref(state, keep)
        hidden = state["rnn.weight_hh_l0"].shape[1]
        rows = torch.cat([g * hidden + keep for g in range(4)])
        new["rnn.weight_hh_l0"] = state["rnn.weight_hh_l0"][rows][:, : len(keep)]
        return new

    def in_place(state, keep):
        new = ref(state, keep)
        state["classifier.bias"].add_(1.0)
        return new

    assert exercises.check_remove_units(ref)
    for wrong in (classifier_untouched, first_gate_block_only, recurrent_rows_only, in_place):
        assert not exercises.check_remove_units(wrong), wrong.__name__


def test_the_reference_removal_builds_a_model_equal_to_remove_hidden_units():
    from course_utils.models import build_model
    from course_utils.pruning import remove_hidden_units

    torch.manual_seed(3)
    model = RNNClassifier(20, 4, embed_dim=5, hidden_size=9, pooling="mean").eval()
    keep = torch.tensor([0, 2, 3, 7])
    small = build_model(dict(model.config(), hidden_size=4)).eval()
    small.load_state_dict(exercises.reference_remove_units(model.state_dict(), keep))
    tokens, lengths = padded_batch((6, 4, 2), vocab=20)
    with torch.no_grad():
        assert torch.equal(
            small(tokens, lengths), remove_hidden_units(model, {(0, 0): keep})(tokens, lengths)
        )
    with pytest.raises(ValueError, match=r"keep must hold between 1 and 9 unit indices"):
        exercises.reference_remove_units(model.state_dict(), torch.tensor([9]))


# --- chapter 5: the discriminator loss and the proximal step in GAL ------------------


def gal_run(synthetic_data, **hooks):
    vocab, train, valid = synthetic_data
    torch.manual_seed(0)
    teacher = RNNClassifier(len(vocab), 3, embed_dim=6, hidden_size=6).eval()
    train_loader, valid_loader = make_loader(train, 32, shuffle=True), make_loader(valid, 64)
    config = gan.GALConfig(lam=0.3, epochs=2, lr=5e-3, mask_lr=0.1, mask_every=1, seed=0)
    return gan.train_gal(teacher, train_loader, valid_loader, config, progress=False, **hooks)


def discriminator_loss(d_real, d_fake, smoothing):
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    return bce(d_real, torch.full_like(d_real, 1 - smoothing)) + bce(
        d_fake, torch.zeros_like(d_fake)
    )


def mask_prox_step(y, grad, lr, lam):
    v = y - lr * grad
    return torch.clamp(torch.sign(v) * torch.clamp(v.abs() - lr * lam, min=0.0), min=0.0)


def test_gal_on_the_learners_loss_and_prox_step_is_the_course_run(synthetic_data):
    course = gal_run(synthetic_data)
    learner = gal_run(synthetic_data, d_loss_fn=discriminator_loss, prox_fn=mask_prox_step)
    assert torch.allclose(course.masks[(0, 0)], learner.masks[(0, 0)], atol=1e-6)
    assert course.history["d_loss"] == pytest.approx(learner.history["d_loss"], abs=1e-6)


def test_gal_uses_the_learners_functions(synthetic_data):
    course = gal_run(synthetic_data)
    no_l1 = gal_run(synthetic_data, prox_fn=lambda y, g, lr, lam: torch.clamp(y - lr * g, min=0))
    assert not torch.allclose(course.masks[(0, 0)], no_l1.masks[(0, 0)])
    no_smoothing = gal_run(synthetic_data, d_loss_fn=lambda r, f, s: discriminator_loss(r, f, 0))
    assert course.history["d_loss"] != no_smoothing.history["d_loss"]
    with pytest.raises(ValueError, match="prox returned a negative mask"):
        gal_run(synthetic_data, prox_fn=lambda y, g, lr, lam: y - 10.0)
    with pytest.raises(ValueError, match="must return a scalar tensor"):
        gal_run(synthetic_data, d_loss_fn=lambda r, f, s: torch.stack([r.mean(), f.mean()]))
    with pytest.raises(TypeError, match="prox_fn must be a function, got str"):
        gal_run(synthetic_data, prox_fn="fista")


# --- chapter 6: the learner's CSR encoder writes the file ----------------------------


def csr(matrix):
    nonzero = matrix != 0
    row_ptr = torch.zeros(matrix.shape[0] + 1, dtype=torch.long)
    row_ptr[1:] = torch.cumsum(nonzero.sum(dim=1), 0)
    return matrix[nonzero], torch.nonzero(nonzero)[:, 1], row_ptr


def sparse_model():
    torch.manual_seed(2)
    model = RNNClassifier(30, 3, embed_dim=6, hidden_size=7)
    prune(model, 0.8, include_embedding=True)
    return model


@pytest.mark.parametrize("fmt", ["csr_int32", "csr_int16", "dense_fp32", "bitmask_fp16"])
def test_the_learners_csr_writes_the_same_bytes(fmt, tmp_path):
    model = sparse_model()
    want = compress.encode_model(model, fmt)
    assert compress.encode_model(model, fmt, csr=csr) == want
    assert compress.encode_model(model, fmt, csr=exercises.reference_csr) == want
    written = compress.save_compressed(tmp_path / "m.bin", model, fmt, csr=csr)
    assert written == (tmp_path / "m.bin").stat().st_size == len(want)
    table = compress.storage_table(model, [fmt], csr=csr)
    assert table[0]["bytes"] == len(want)


def test_a_wrong_csr_is_refused_before_anything_is_written(tmp_path):
    model = sparse_model()

    def shifted(matrix):
        values, cols, rows = csr(matrix)
        return values, (cols + 1) % matrix.shape[1], rows

    def values_out_of_order(matrix):
        values, cols, rows = csr(matrix)
        return values.flip(0), cols, rows

    def short_row_ptr(matrix):
        values, cols, rows = csr(matrix)
        return values, cols, rows[:-1]

    for wrong in (shifted, values_out_of_order, short_row_ptr):
        with pytest.raises(ValueError, match="csr returned a wrong encoding of 'embedding.weight'"):
            compress.save_compressed(tmp_path / "m.bin", model, "csr_int32", csr=wrong)
        assert not (tmp_path / "m.bin").exists()
    with pytest.raises(ValueError, match="csr must return"):
        compress.encode_model(model, "csr_int32", csr=lambda m: csr(m)[:2])
