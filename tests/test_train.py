import pickle

import pytest
import torch
from helpers import same_weights

from course_utils.checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from course_utils.models import RNNClassifier
from course_utils.seeding import set_seed
from course_utils.text import make_loader
from course_utils.train import confusion_matrix, evaluate, predict, train_model


def fit(synthetic_data, seed=0, epochs=6, **kwargs):
    vocab, train, valid = synthetic_data
    set_seed(seed)
    model = RNNClassifier(len(vocab), 3, embed_dim=8, hidden_size=8)
    history = train_model(
        model,
        make_loader(train, 16, shuffle=True, seed=seed),
        make_loader(valid, 64),
        epochs=epochs,
        lr=1e-2,
        progress=False,
        **kwargs,
    )
    return model, history, make_loader(valid, 64)


def test_training_learns_the_keyword_task(synthetic_data):
    model, history, valid = fit(synthetic_data)
    assert history.train_loss[-1] < history.train_loss[0]
    assert evaluate(model, valid)["accuracy"] > 0.9
    preds, labels = predict(model, valid)
    cm = confusion_matrix(preds, labels, 3)
    assert cm.sum() == len(labels) and cm.trace() == (preds == labels).sum()


def test_training_is_deterministic_on_cpu(synthetic_data):
    a, ha, _ = fit(synthetic_data, epochs=2)
    b, hb, _ = fit(synthetic_data, epochs=2)
    assert ha.train_loss == hb.train_loss
    assert same_weights(a, b)


def test_early_stopping_restores_the_best_epoch(synthetic_data):
    model, history, valid = fit(synthetic_data, epochs=30, patience=2)
    assert history.stopped_early and len(history.epoch) < 30
    best = history.valid_accuracy[history.best_epoch - 1]
    assert evaluate(model, valid)["accuracy"] == pytest.approx(best)


def test_hooks_run_around_every_step(synthetic_data):
    calls = []
    fit(
        synthetic_data,
        epochs=1,
        before_step=lambda m, s: calls.append(("before", s)),
        after_step=lambda m, s: calls.append(("after", s)),
    )
    assert calls[:4] == [("before", 0), ("after", 1), ("before", 1), ("after", 2)]


def test_labels_out_of_range_are_rejected(synthetic_data):
    vocab, _, _ = synthetic_data
    model = RNNClassifier(len(vocab), 2, embed_dim=4, hidden_size=4)  # 2 classes, data has 3
    _, train, valid = synthetic_data
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\)"):
        train_model(
            model,
            make_loader(train, 8),
            make_loader(valid, 8),
            epochs=1,
            progress=False,
        )
    with pytest.raises(ValueError, match="epochs"):
        train_model(model, make_loader(train, 8), make_loader(valid, 8), epochs=0)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_checkpoint_roundtrip_and_bad_files(tmp_path):
    model = RNNClassifier(20, 3, embed_dim=4, hidden_size=5, cell="gru")
    path = tmp_path / "model.pt"
    save_checkpoint(path, model, note="hello", accuracy=0.5)
    loaded, extra = load_checkpoint(path)
    assert extra == {"note": "hello", "accuracy": 0.5}
    assert same_weights(model, loaded)
    assert not list(tmp_path.glob("*.tmp"))  # nothing half-written left behind

    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="not a readable course checkpoint"):
        load_checkpoint(truncated)

    class Evil:  # unpickling this would run code; weights_only refuses it
        def __reduce__(self):
            return (print, ("pwned",))

    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(CheckpointError):
        load_checkpoint(evil)

    plain = tmp_path / "plain.pt"
    torch.save({"weights": torch.zeros(2)}, plain)
    with pytest.raises(CheckpointError, match="format marker"):
        load_checkpoint(plain)

    other = RNNClassifier(20, 3, embed_dim=4, hidden_size=6, cell="gru")
    with pytest.raises(CheckpointError, match="hidden_size"):
        load_checkpoint(path, other)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")


def test_set_seed_rejects_non_ints():
    with pytest.raises(TypeError, match="seed"):
        set_seed(1.5)
