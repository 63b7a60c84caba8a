import copy
import functools
import warnings

import pytest
import torch
from conftest import trained_synthetic_classifier
from helpers import architectures, rnn_model, same_weights
from hypothesis import given, settings
from hypothesis import strategies as st

from course_utils import exercises
from course_utils.masking import keep_masks
from course_utils.models import RNNClassifier
from course_utils.pruning.data_free import (
    DAFLConfig,
    SequenceGenerator,
    dafl_losses,
    distill_data_free,
    embedded_forward,
    embedding_stats,
    generator_step,
    nearest_words,
    sample_inputs,
    student_loss,
    student_step,
    teacher_losses,
)
from course_utils.pruning.soft_masks import frozen_copy
from course_utils.pruning.structured import remove_hidden_units, select_units, unit_norms
from course_utils.train import evaluate

SMALL = {"steps": 30, "batch_size": 16, "seq_len": 12, "channels": 16, "eval_every": 10}


@settings(max_examples=25, deadline=None)
@given(arch=architectures(max_layers=2), steps=st.integers(1, 9), seed=st.integers(0, 1000))
def test_embedded_forward_is_the_model_on_full_length_inputs(arch, steps, seed):
    model = rnn_model(25, 4, hidden=6, embed=5, dropout=0.2, seed=seed, **arch)
    tokens = torch.randint(1, 25, (3, steps))
    lengths = torch.full((3,), steps)
    logits, features = embedded_forward(model, model.embedding(tokens))
    torch.testing.assert_close(logits, model(tokens, lengths))
    torch.testing.assert_close(features, model.features(tokens, lengths))


def test_dafl_losses_follow_the_reference_code_with_numbers_worked_by_hand():
    # two examples, two features; the logits give every example the distribution (0.5, 0.5)
    features = torch.tensor([[1.0, -3.0], [2.0, 0.0]])
    logits = torch.zeros(2, 2)
    out = dafl_losses(logits, features, alpha=0.1, beta=5.0)
    # activation: minus the mean of |f| over examples AND features, -(1 + 3 + 2 + 0) / 4
    # (each vector's L1 norm averaged over examples, -(4 + 2) / 2 = -3, is twice as strong)
    assert float(out["activation"]) == pytest.approx(-1.5, abs=1e-6)
    # entropy: sum_c p_c log10 p_c of the mean distribution, 2 * 0.5 * log10(0.5); the
    # natural log would give -0.69315
    assert float(out["entropy"]) == pytest.approx(-0.30103, abs=1e-5)
    # one-hot: cross-entropy against the argmax, -ln 0.5 (PyTorch's cross-entropy, natural log)
    assert float(out["one_hot"]) == pytest.approx(0.69315, abs=1e-5)
    # total: 0.69315 + 0.1 * (-1.5) + 5 * (-0.30103)
    assert float(out["total"]) == pytest.approx(-0.96200, abs=1e-5)
    # a mean over examples of distributions (0.9, 0.1) and (0.3, 0.7) is (0.6, 0.4):
    # 0.6 log10 0.6 + 0.4 log10 0.4 = -0.29228
    uneven = torch.log(torch.tensor([[0.9, 0.1], [0.3, 0.7]]))
    uneven_out = dafl_losses(uneven, features)
    assert float(uneven_out["entropy"]) == pytest.approx(-0.29228, abs=1e-5)
    # their argmax classes are 0 and 1: one-hot loss -(ln 0.9 + ln 0.7) / 2
    assert float(uneven_out["one_hot"]) == pytest.approx(0.23102, abs=1e-5)


def test_dafl_entropy_is_minus_log10_of_the_classes_when_balanced_and_zero_for_one_class():
    g = torch.Generator().manual_seed(0)
    features = torch.randn(5, 7, generator=g)
    # balanced predictions reach the minimum, -log10 C = -0.69897 for C = 5
    balanced = float(dafl_losses(40 * torch.eye(5), features)["entropy"])
    assert balanced == pytest.approx(-0.69897, abs=1e-5)
    one_class = torch.zeros(4, 5)
    one_class[:, 2] = 40.0
    assert float(dafl_losses(one_class, features[:4])["entropy"]) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="logits and features"):
        dafl_losses(one_class, features[:3])


def test_the_entropy_exercise_check_wants_log_base_10():
    def answer(logits, log):
        mean_p = torch.softmax(logits, dim=1).mean(dim=0)
        return (mean_p * log(mean_p)).sum()

    assert exercises.check_information_entropy_loss(lambda y: answer(y, torch.log10))
    natural = exercises.check_information_entropy_loss(lambda y: answer(y, torch.log))
    assert not natural and "use log base 10" in natural.message


def test_generator_output_matches_the_embedding_statistics():
    torch.manual_seed(1)
    model = RNNClassifier(50, 3, embed_dim=4, hidden_size=3)
    mean, std = embedding_stats(model)
    real = model.embedding.weight.detach()[1:]  # row 0 is padding
    torch.testing.assert_close(mean, real.mean(dim=0))
    torch.testing.assert_close(std, real.std(dim=0))
    gen = SequenceGenerator(8, 12, mean, std, channels=16).train()
    x = gen(torch.randn(32, 8))
    assert x.shape == (32, 12, 4)
    # the last batch norm standardizes each dimension over batch and time, then the
    # teacher's statistics are put back: exact mean, std up to the biased estimator
    flat = x.detach().reshape(-1, 4)
    torch.testing.assert_close(flat.mean(dim=0), mean, atol=1e-4, rtol=0)
    torch.testing.assert_close(flat.std(dim=0, unbiased=False), std, atol=1e-3, rtol=1e-2)


@functools.cache
def _trained_pair():
    teacher, _, valid = trained_synthetic_classifier()
    teacher.eval()
    student = remove_hidden_units(teacher, select_units(unit_norms(teacher), 3))
    return teacher, student, valid


def pruned_pair():
    """A trained teacher and its pruned student (fresh copies: trained once per session)."""
    teacher, student, valid = _trained_pair()
    return copy.deepcopy(teacher), copy.deepcopy(student), valid


def test_data_free_distillation_is_reproducible_and_changes_only_a_copy():
    teacher, student, valid = pruned_pair()
    before_t, before_s = [m.state_dict() for m in (teacher, student)]
    before_t = {k: v.clone() for k, v in before_t.items()}
    before_s = {k: v.clone() for k, v in before_s.items()}
    a = distill_data_free(teacher, student, DAFLConfig(**SMALL), valid_loader=valid)
    b = distill_data_free(teacher, student, DAFLConfig(**SMALL), valid_loader=valid)
    assert same_weights(a.student, b.student) and same_weights(a.generator, b.generator)
    assert a.history == b.history and not a.diverged
    assert all(torch.equal(v, teacher.state_dict()[k]) for k, v in before_t.items())
    assert all(torch.equal(v, student.state_dict()[k]) for k, v in before_s.items())
    assert not a.student.training and not a.generator.training
    h = a.history
    assert all(len(h[k]) == 30 for k in ("one_hot", "activation", "entropy", "generator", "kd"))
    assert h["valid_step"] == [10, 20, 30] and len(h["valid_accuracy"]) == 3
    # the student learns the teacher on the generated sequences
    assert sum(h["kd"][-5:]) < sum(h["kd"][:5])
    # the teacher's embedding rows reach the student unchanged: only the RNN and classifier learn
    assert torch.equal(a.student.embedding.weight, student.embedding.weight)


@pytest.mark.parametrize("source", ["generator", "random_words"])
def test_class_share_is_the_teachers_prediction_over_the_batch(source):
    # a teacher that predicts class 1 for every input: its share is (0, 1, 0) at every step
    torch.manual_seed(0)
    teacher = RNNClassifier(30, 3, embed_dim=6, hidden_size=8)
    with torch.no_grad():
        teacher.classifier.weight.zero_()
        teacher.classifier.bias.copy_(torch.tensor([0.0, 3.0, 0.0]))
    student = RNNClassifier(30, 3, embed_dim=6, hidden_size=4)
    config = DAFLConfig(**(SMALL | {"steps": 4, "source": source}))
    h = distill_data_free(teacher, student, config, progress=False).history
    assert h["class_share"] == [[0.0, 1.0, 0.0]] * 4


def held_out_generator_loss(generator, teacher, seed=123):
    """DAFL's L_G of ``generator`` on a fixed batch of noise it never trained on."""
    z = torch.randn(64, generator.noise_dim, generator=torch.Generator().manual_seed(seed))
    generator.train()  # batch statistics, as in training
    with torch.no_grad():
        logits, features = embedded_forward(teacher, generator(z))
        return {k: float(v) for k, v in dafl_losses(logits, features).items()}


def test_the_generator_learns_its_objective():
    # the same generator (same seed) before and after 60 steps, on the same held-out noise
    teacher, student, _ = pruned_pair()
    untrained = DAFLConfig(**(SMALL | {"steps": 1, "g_lr": 1e-12}))
    start = distill_data_free(teacher, student, untrained, progress=False).generator
    trained = DAFLConfig(**(SMALL | {"steps": 60, "g_lr": 3e-3}))
    end = distill_data_free(teacher, student, trained, progress=False).generator
    before = held_out_generator_loss(start, teacher)
    after = held_out_generator_loss(end, teacher)
    # observed on CPU: L_G -2.01 -> -2.20, the one-hot loss 0.35 -> 0.23
    assert after["total"] < before["total"] - 0.1
    assert after["one_hot"] < before["one_hot"]


def test_random_words_control_has_no_generator_and_uses_real_word_vectors():
    teacher, student, valid = pruned_pair()
    config = DAFLConfig(**(SMALL | {"source": "random_words"}))
    result = distill_data_free(teacher, student, config, valid_loader=valid)
    assert result.generator is None and len(result.history["kd"]) == 30
    assert sum(result.history["kd"][-5:]) < sum(result.history["kd"][:5])
    # the validation curve follows the student: with an untrained student (about a third
    # of the articles right, unlike the teacher) its last point is the returned student's
    torch.manual_seed(0)
    fresh = RNNClassifier(teacher.embedding.num_embeddings, 3, embed_dim=8, hidden_size=3)
    config = DAFLConfig(**(SMALL | {"source": "random_words", "steps": 4, "eval_every": 2}))
    result = distill_data_free(teacher, fresh, config, valid_loader=valid, progress=False)
    assert result.history["valid_step"] == [2, 4]
    last = result.history["valid_accuracy"][-1]
    assert last == evaluate(result.student, valid)["accuracy"]
    assert last != evaluate(teacher, valid)["accuracy"]


def test_a_diverging_run_stops_with_a_warning_and_keeps_the_last_finite_state():
    teacher, student, _ = pruned_pair()
    with torch.no_grad():
        teacher.classifier.bias[0] = float("nan")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = distill_data_free(teacher, student, DAFLConfig(**SMALL))
    assert result.diverged and any("DAFL diverged at step 1" in str(w.message) for w in caught)
    assert same_weights(result.student, student)
    assert result.history["kd"] == []


class FixedGenerator(torch.nn.Module):
    """Stands in for a generator: returns the same embedding sequences for any noise."""

    noise_dim = 3

    def __init__(self, sequences: torch.Tensor):
        super().__init__()
        self.sequences, self.noise_shapes = sequences, []

    def forward(self, z):
        self.noise_shapes.append(tuple(z.shape))
        return self.sequences[: len(z)]


class Words:
    names = ["<pad>", "east", "north", "west", "northeast"]

    def lookup_tokens(self, ids):
        return [self.names[i] for i in ids]


def test_nearest_words_reads_generated_sequences_back_as_vocabulary_words():
    # a hand-made 2-D embedding: "east" is long (10, 0), the padding row is zero
    embedding = torch.nn.Embedding(5, 2, padding_idx=0)
    with torch.no_grad():
        embedding.weight.copy_(torch.tensor([[0.0, 0], [10, 0], [0, 1], [-1, 0], [1, 1]]))
    generated = torch.tensor(
        [
            # (1, 0.9): cosine picks northeast (0.999), a dot product would pick east;
            # (0.2, 0.2): cosine 1 with northeast, though the zero padding row is closer
            [[1.0, 0.9], [0.2, 0.2], [-3.0, 0.5]],
            [[0.1, 5.0], [4.0, -0.5], [-1.0, -1.0]],
        ]
    )
    generator = FixedGenerator(generated)
    rows = nearest_words(generator, embedding, Words(), num=2)
    assert rows == [["northeast", "northeast", "west"], ["north", "east", "west"]]
    assert generator.noise_shapes == [(2, 3)]  # one batch of num noise vectors
    with pytest.raises(ValueError, match=r"num must be .*>= 2.*, got 1"):
        nearest_words(generator, embedding, Words(), num=1)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        # each message names the argument, what is allowed and the value given
        ({"steps": 0}, r"steps must be .*>= 1.*, got 0"),
        ({"batch_size": 1}, r"batch_size must be .*>= 2.*, got 1"),
        ({"seq_len": 10}, r"seq_len must be a multiple of 4.*, got 10"),
        ({"alpha": -0.1}, r"alpha must be .*>= 0.*, got -0.1"),
        ({"beta": float("nan")}, r"beta must be .*>= 0.*, got nan"),
        ({"lr": 0}, r"lr must be .*> 0.*, got 0"),
        ({"temperature": -1.0}, r"temperature must be .*> 0.*, got -1.0"),
        ({"clip": 0.0}, r"clip must be .*> 0.*, got 0.0"),
        ({"source": "wikipedia"}, r"unknown source='wikipedia'; choose from .*'random_words'"),
    ],
)
def test_bad_configs_are_clear_errors(change, message):
    # errors come before any training: an untrained pair is enough
    teacher = RNNClassifier(30, 3, embed_dim=6, hidden_size=8)
    student = RNNClassifier(30, 3, embed_dim=6, hidden_size=4)
    with pytest.raises(ValueError, match=message):
        distill_data_free(teacher, student, DAFLConfig(**(SMALL | change)))


def test_architecture_mismatch_and_bad_inputs_are_clear_errors():
    teacher = RNNClassifier(30, 3, embed_dim=6, hidden_size=8)
    for student, key in (
        (RNNClassifier(30, 3, embed_dim=5, hidden_size=4), "embed_dim"),
        (RNNClassifier(30, 4, embed_dim=6, hidden_size=4), "num_classes"),
        (RNNClassifier(31, 3, embed_dim=6, hidden_size=4), "vocab_size"),
    ):
        with pytest.raises(ValueError, match=f"mismatch: {key}"):
            distill_data_free(teacher, student, DAFLConfig(**SMALL))
    with pytest.raises(TypeError, match="student must be a course_utils RNNClassifier"):
        distill_data_free(teacher, torch.nn.Linear(2, 2), DAFLConfig(**SMALL))
    with pytest.raises(TypeError, match="config must be a DAFLConfig"):
        distill_data_free(teacher, teacher, {"steps": 3})
    with pytest.raises(ValueError, match=r"embedded must have shape \(batch, time, 6\)"):
        embedded_forward(teacher, torch.zeros(2, 3, 5))
    with pytest.raises(ValueError, match="seq_len must be a multiple of 4"):
        SequenceGenerator(4, 6, torch.zeros(3), torch.ones(3))
    with pytest.raises(ValueError, match="z must have shape"):
        SequenceGenerator(4, 8, torch.zeros(3), torch.ones(3))(torch.zeros(2, 5))


# --- the steps of one DAFL iteration --------------------------------------------------------


def test_the_steps_run_by_hand_make_exactly_distill_data_frees_student_and_generator():
    teacher, student, _ = pruned_pair()
    config = DAFLConfig(**(SMALL | {"steps": 3, "seed": 4}))
    result = distill_data_free(teacher, student, config, progress=False)

    torch.manual_seed(config.seed)  # what distill_data_free does first
    noise = torch.Generator().manual_seed(config.seed)
    teacher, student = frozen_copy(teacher), copy.deepcopy(student).train()
    mean, std = embedding_stats(teacher)
    generator = SequenceGenerator(
        config.noise_dim, config.seq_len, mean, std, channels=config.channels
    )
    opt_g = torch.optim.Adam(generator.parameters(), lr=config.g_lr)
    opt_s = torch.optim.Adam(student.parameters(), lr=config.lr)
    keep_masks(opt_s, student)
    words = torch.arange(1, teacher.embedding.num_embeddings)  # every word but padding (0)
    kd_values = []
    for _ in range(config.steps):
        inputs = sample_inputs(teacher, generator, words, config, noise)  # 1.
        losses, t_logits = teacher_losses(teacher, inputs, config, learn=True)  # 2.
        kd = student_loss(student, inputs, t_logits, config.temperature)  # 3.
        generator_step(opt_g, losses["total"])  # 4.
        student_step(student, opt_s, kd, config.clip)  # 5.
        kd_values.append(float(kd.detach()))
    assert same_weights(result.student, student) and same_weights(result.generator, generator)
    assert result.history["kd"] == kd_values


def test_the_students_loss_does_not_reach_the_generator():
    teacher, student, _ = pruned_pair()
    config = DAFLConfig(**SMALL)
    mean, std = embedding_stats(teacher)
    generator = SequenceGenerator(config.noise_dim, config.seq_len, mean, std, channels=16)
    inputs = generator(torch.randn(4, config.noise_dim))
    _, t_logits = teacher_losses(teacher, inputs, config, learn=True)
    student_loss(student, inputs, t_logits, config.temperature).backward()
    assert all(p.grad is None for p in generator.parameters())
    assert any(p.grad is not None for p in student.parameters())


def test_sample_inputs_draws_only_from_its_own_generator():
    teacher, _, _ = pruned_pair()
    config = DAFLConfig(**(SMALL | {"source": "random_words", "batch_size": 5}))
    words = torch.tensor([3, 4, 5])
    before = torch.get_rng_state()
    a = sample_inputs(teacher, None, words, config, torch.Generator().manual_seed(1))
    b = sample_inputs(teacher, None, words, config, torch.Generator().manual_seed(1))
    assert torch.equal(torch.get_rng_state(), before) and torch.equal(a, b)
    assert a.shape == (5, config.seq_len, teacher.embedding.embedding_dim)
    table = teacher.embedding.weight.detach()[words]
    assert all(any(torch.equal(v, row) for row in table) for v in a.reshape(-1, a.shape[2]))
