"""Text noise and raw-text prediction: seeded, faithful to the pipeline, bad inputs reported."""

import pytest
import torch
from conftest import synthetic_examples
from hypothesis import given, settings
from hypothesis import strategies as st

from course_utils.deploy import robustness
from course_utils.models import RNNClassifier
from course_utils.text import TextClassificationDataset, make_loader, numericalize
from course_utils.train import evaluate

WORDS = st.lists(st.text("abcdefghij", min_size=1, max_size=9), min_size=1, max_size=15)


@settings(max_examples=60, deadline=None)
@given(words=WORDS, rate=st.floats(0, 1), seed=st.integers(0, 1000))
def test_typos_change_words_by_one_swap_or_deletion(words, rate, seed):
    text = " ".join(words)
    noisy = robustness.add_typos(text, rate, seed)
    assert noisy == robustness.add_typos(text, rate, seed)  # seeded
    after = noisy.split(" ")
    assert len(after) == len(words)
    for before, now in zip(words, after, strict=True):
        if len(before) < 3:
            assert now == before  # short words are left alone
        elif now != before:
            swapped = len(now) == len(before) and sorted(now) == sorted(before)
            deleted = len(now) == len(before) - 1
            assert swapped or deleted, (before, now)


def test_typo_rates_zero_and_one():
    text = "Profits jumped sharply, said the company's chief executive."
    assert robustness.add_typos(text, 0.0) == text
    noisy = robustness.add_typos(text, 1.0, seed=4)
    changed = sum(a != b for a, b in zip(text.split(), noisy.split(), strict=True))
    assert changed >= 6  # every 3+ letter word gets one typo (a swap of equal letters is invisible)
    assert robustness.add_typos(text, 1.0, seed=5) != noisy


@settings(max_examples=60, deadline=None)
@given(words=WORDS, rate=st.floats(0, 1), seed=st.integers(0, 1000))
def test_dropped_words_keep_order_and_at_least_one_word(words, rate, seed):
    kept = robustness.drop_words(" ".join(words), rate, seed).split(" ")
    assert 1 <= len(kept) <= len(words)
    position = 0
    for word in kept:  # a subsequence of the original words
        position = words.index(word, position) + 1
    if rate == 0:
        assert kept == words


def test_noise_arguments_are_checked():
    with pytest.raises(ValueError, match="rate"):
        robustness.add_typos("text", 1.5)
    with pytest.raises(TypeError, match="str"):
        robustness.drop_words(3, 0.1)
    with pytest.raises(ValueError, match="kind='shout'"):
        robustness.noisy_texts(["a"], "shout", 0.1)
    texts = ["alpha beta gamma delta"] * 3
    noisy = robustness.noisy_texts(texts, "drop_words", 0.5, seed=1)
    assert len(set(noisy)) > 1  # each text has its own seed


@pytest.fixture
def model_and_vocab(synthetic_data):
    vocab, train, _ = synthetic_data
    torch.manual_seed(0)
    model = RNNClassifier(len(vocab), 3, embed_dim=6, hidden_size=5, max_len=8).eval()
    return model, vocab


def test_predict_texts_reports_bad_inputs_and_truncates(model_and_vocab):
    model, vocab = model_and_vocab
    texts = ["the alpha of it", "", "?!", "zzz qqq", None, "alpha " * 30, "ＡＬＰＨＡ the"]
    rows = robustness.predict_texts(model, vocab, texts, class_names=["a", "b", "c"])
    status = [r["status"] for r in rows]
    assert status == [
        "ok", "empty", "empty", "only unknown words", "not text", "truncated", "ok"
    ]  # fmt: skip
    assert [r["label"] is None for r in rows] == [False, True, True, True, True, False, False]
    assert rows[5]["tokens"] == 8 and rows[5]["truncated"] == 22
    for i in (0, 5, 6):
        ids = numericalize(texts[i], vocab, max_len=8)
        with torch.no_grad():
            probs = torch.softmax(model(ids[None], torch.tensor([len(ids)])), dim=1)[0]
        assert rows[i]["label"] == int(probs.argmax())
        assert rows[i]["class"] == "abc"[rows[i]["label"]]
        assert rows[i]["confidence"] == pytest.approx(float(probs.max()), abs=1e-6)
    with pytest.raises(TypeError, match="wrap it in a list"):
        robustness.predict_texts(model, vocab, "alpha")


def test_unicode_forms_and_casing_read_the_same(model_and_vocab):
    _, vocab = model_and_vocab
    forms = ["Alpha the", "ALPHA THE", "ａｌｐｈａ the", "alpha\u00a0the"]
    ids = [robustness.read_text(t, vocab, None)["ids"] for t in forms]
    assert all(i == ids[0] for i in ids)
    assert robustness.read_text("alpha the", vocab, None)["unknown"] == []


def test_accuracy_under_noise_at_rate_zero_equals_evaluate(model_and_vocab):
    model, vocab = model_and_vocab
    torch.manual_seed(1)
    other = RNNClassifier(len(vocab), 3, embed_dim=6, hidden_size=5, max_len=8).eval()
    examples = synthetic_examples(60, 7)
    models = {"a": model, "b": other}
    table = robustness.accuracy_under_noise(
        models, vocab, examples, kind="typos", rates=[0.0, 0.5], seed=3
    )
    assert [(r["model"], r["rate"]) for r in table] == [
        ("a", 0.0), ("b", 0.0), ("a", 0.5), ("b", 0.5)
    ]  # fmt: skip
    dataset = TextClassificationDataset(examples, vocab, num_classes=3, max_len=8)
    for row, m in zip(table[:2], (model, other), strict=True):
        assert row["accuracy"] == pytest.approx(evaluate(m, make_loader(dataset, 16))["accuracy"])
    assert table[2]["unknown"] > table[0]["unknown"]
    again = robustness.accuracy_under_noise(
        {"a": model}, vocab, examples, kind="typos", rates=[0.5], seed=3
    )
    assert again[0] == table[2]
    with pytest.raises(ValueError, match="empty"):
        robustness.accuracy_under_noise(models, vocab, [], kind="typos", rates=[0.1])
    with pytest.raises(TypeError, match="dict"):
        robustness.accuracy_under_noise(model, vocab, examples, kind="typos", rates=[0.1])
