"""Shared fixtures: a tiny model and a tiny synthetic dataset that train in seconds."""

import pytest
import torch

from course_utils.measure import num_threads
from course_utils.models import RNNClassifier
from course_utils.text import (
    TextClassificationDataset,
    basic_tokenize,
    build_vocab_from_iterator,
    make_loader,
)
from course_utils.train import train_model


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="module")
def one_thread():
    """Torch on one thread for a whole test module: tiny models run fastest that way, above
    all on a shared machine. A module asks for it with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    with num_threads(1):
        yield


@pytest.fixture
def tiny_model():
    return RNNClassifier(40, 3, embed_dim=6, hidden_size=5, num_layers=2, bidirectional=True)


def synthetic_examples(n: int = 120, seed: int = 0) -> list[tuple[str, int]]:
    """Three classes told apart by a keyword hidden among filler words."""
    g = torch.Generator().manual_seed(seed)
    keywords = ["alpha", "beta", "gamma"]
    filler = ["the", "of", "and", "to", "in", "a", "is", "that", "for", "it"]
    examples = []
    for i in range(n):
        label = i % 3
        length = int(torch.randint(4, 12, (1,), generator=g))
        words = [filler[int(j)] for j in torch.randint(0, len(filler), (length,), generator=g)]
        words.insert(int(torch.randint(0, length, (1,), generator=g)), keywords[label])
        examples.append((" ".join(words), label))
    return examples


@pytest.fixture
def synthetic_data():
    train, valid = synthetic_examples(120, 0), synthetic_examples(60, 1)
    vocab = build_vocab_from_iterator(basic_tokenize(t) for t, _ in train)
    return (
        vocab,
        TextClassificationDataset(train, vocab, num_classes=3),
        TextClassificationDataset(valid, vocab, num_classes=3),
    )


@pytest.fixture
def task(synthetic_data):
    """A small LSTM classifier for the synthetic task, with (train, valid) loaders."""
    vocab, train, valid = synthetic_data
    torch.manual_seed(0)
    model = RNNClassifier(len(vocab), 3, embed_dim=8, hidden_size=8)
    loaders = (make_loader(train, 16, shuffle=True), make_loader(valid, 64))
    return model, loaders


def trained_synthetic_classifier() -> tuple:
    """A tiny LSTM classifier trained to high accuracy on the synthetic keyword task.

    Returns ``(model, train_loader, valid_loader)``; the widget tests use it.
    """
    train = synthetic_examples(120, 0)
    vocab = build_vocab_from_iterator(basic_tokenize(t) for t, _ in train)
    train_set = TextClassificationDataset(train, vocab, num_classes=3)
    valid_set = TextClassificationDataset(synthetic_examples(60, 1), vocab, num_classes=3)
    torch.manual_seed(0)
    model = RNNClassifier(len(vocab), 3, embed_dim=8, hidden_size=8)
    train_loader = make_loader(train_set, 16, shuffle=True)
    valid = make_loader(valid_set, 16)
    train_model(model, train_loader, valid, epochs=6, lr=0.02, progress=False)
    return model, train_loader, valid
