import math
import warnings

import pytest
import torch
from conftest import trained_synthetic_classifier
from helpers import same_weights
from hypothesis import given, settings
from hypothesis import strategies as st

from course_utils.models import RNNClassifier
from course_utils.pruning.data_free import (
    DAFLConfig,
    SequenceGenerator,
    dafl_losses,
    distill_data_free,
    embedded_forward,
    embedding_stats,
    nearest_words,
)
from course_utils.pruning.structured import remove_hidden_units, select_units, unit_norms
from course_utils.train import evaluate

SMALL = {"steps": 30, "batch_size": 16, "seq_len": 12, "channels": 16, "eval_every": 10}


@settings(max_examples=25, deadline=None)
@given(
    cell=st.sampled_from(["lstm", "gru", "rnn"]),
    layers=st.integers(1, 2),
    bidirectional=st.booleans(),
    pooling=st.sampled_from(["max", "mean", "last"]),
    steps=st.integers(1, 9),
    seed=st.integers(0, 1000),
)
def test_embedded_forward_is_the_model_on_full_length_inputs(
    cell, layers, bidirectional, pooling, steps, seed
):
    torch.manual_seed(seed)
    model = RNNClassifier(
        25,
        4,
        embed_dim=5,
        hidden_size=6,
        num_layers=layers,
        cell=cell,
        bidirectional=bidirectional,
        pooling=pooling,
        dropout=0.2,
    ).eval()
    tokens = torch.randint(1, 25, (3, steps))
    lengths = torch.full((3,), steps)
    logits, features = embedded_forward(model, model.embedding(tokens))
    torch.testing.assert_close(logits, model(tokens, lengths))
    torch.testing.assert_close(features, model.features(tokens, lengths))


def test_dafl_losses_follow_the_paper_formulas():
    g = torch.Generator().manual_seed(0)
    logits, features = 3 * torch.randn(8, 5, generator=g), torch.randn(8, 7, generator=g)
    out = dafl_losses(logits, features, alpha=0.1, beta=5.0)
    p = torch.softmax(logits, dim=1)
    one_hot = -torch.log(p[torch.arange(8), logits.argmax(dim=1)]).mean()
    activation = -features.abs().sum(dim=1).mean()
    mean_p = p.mean(dim=0)
    entropy = (mean_p * mean_p.log()).sum()
    torch.testing.assert_close(out["one_hot"], one_hot)
    torch.testing.assert_close(out["activation"], activation)
    torch.testing.assert_close(out["entropy"], entropy)
    torch.testing.assert_close(out["total"], one_hot + 0.1 * activation + 5.0 * entropy)
    # balanced predictions reach the entropy's minimum, -log C; one class everywhere gives 0
    balanced = 10 * torch.eye(5)
    entropy_balanced = float(dafl_losses(balanced, features[:5])["entropy"])
    assert entropy_balanced == pytest.approx(-math.log(5), 1e-3)
    one_class = torch.zeros(4, 5)
    one_class[:, 2] = 30.0
    assert float(dafl_losses(one_class, features[:4])["entropy"]) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="logits and features"):
        dafl_losses(logits, features[:3])


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


def pruned_pair():
    teacher, _, valid = trained_synthetic_classifier()
    teacher.eval()
    student = remove_hidden_units(teacher, select_units(unit_norms(teacher), 3))
    return teacher, student, valid


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
    assert all(math.isclose(sum(s), 1.0) for s in h["class_share"])
    # the student learns the teacher on the generated sequences
    assert sum(h["kd"][-5:]) < sum(h["kd"][:5])
    # the teacher's embedding rows reach the student unchanged: only the RNN and classifier learn
    assert torch.equal(a.student.embedding.weight, student.embedding.weight)


def test_the_generator_learns_its_objective():
    teacher, student, _ = pruned_pair()
    config = DAFLConfig(**(SMALL | {"steps": 60, "g_lr": 3e-3}))
    h = distill_data_free(teacher, student, config).history
    assert sum(h["generator"][-10:]) < sum(h["generator"][:10])


def test_random_words_control_has_no_generator_and_uses_real_word_vectors():
    teacher, student, valid = pruned_pair()
    config = DAFLConfig(**(SMALL | {"source": "random_words"}))
    result = distill_data_free(teacher, student, config, valid_loader=valid)
    assert result.generator is None and len(result.history["kd"]) == 30
    assert sum(result.history["kd"][-5:]) < sum(result.history["kd"][:5])
    assert 0 <= evaluate(result.student, valid)["accuracy"] <= 1


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


def test_nearest_words_reads_generated_sequences_back_as_vocabulary_words():
    teacher, student, _ = pruned_pair()
    result = distill_data_free(teacher, student, DAFLConfig(**(SMALL | {"steps": 3})))

    class Vocab:
        def lookup_tokens(self, ids):
            return [f"w{i}" for i in ids]

    rows = nearest_words(result.generator, teacher.embedding, Vocab(), num=2)
    assert len(rows) == 2 and all(len(r) == 12 and all(w.startswith("w") for w in r) for r in rows)
    with pytest.raises(ValueError, match="num"):
        nearest_words(result.generator, teacher.embedding, Vocab(), num=1)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"steps": 0}, "steps"),
        ({"batch_size": 1}, "batch_size"),
        ({"seq_len": 10}, "multiple of 4"),
        ({"alpha": -0.1}, "alpha"),
        ({"beta": float("nan")}, "beta"),
        ({"lr": 0}, "lr"),
        ({"temperature": -1.0}, "temperature"),
        ({"clip": 0.0}, "clip"),
        ({"source": "wikipedia"}, "source"),
    ],
)
def test_bad_configs_are_clear_errors(change, message):
    teacher, student, _ = pruned_pair()
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
