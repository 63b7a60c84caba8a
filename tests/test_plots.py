"""The shared plots: legends name every line, epoch axes have whole-number ticks."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from course_utils import plots  # noqa: E402

HISTORY = {
    "epoch": [1, 2, 3],
    "train_loss": [1.0, 0.6, 0.4],
    "valid_loss": [0.9, 0.7, 0.75],
    "valid_accuracy": [0.7, 0.85, 0.84],
    "best_epoch": 2,
}


def test_history_legend_names_every_line_including_the_epoch_kept():
    ax = plots.plot_history(HISTORY)
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    plt.close("all")
    assert labels == ["train loss", "valid loss", "epoch kept", "valid accuracy"]
    assert not any(label.startswith("_") for label in labels)


def test_history_epoch_ticks_are_whole_numbers():
    ax = plots.plot_history(HISTORY)
    ax.figure.canvas.draw()
    ticks = [t for t in ax.get_xticks() if 1 <= t <= 3]
    plt.close("all")
    assert ticks and all(float(t).is_integer() for t in ticks)


def test_confusion_matrix_writes_each_count_in_its_cell():
    cm = torch.tensor([[5, 1], [0, 7]])
    ax = plots.plot_confusion_matrix(cm, ["business", "politics"])
    texts = sorted(t.get_text() for t in ax.texts)
    plt.close("all")
    assert texts == ["0", "1", "5", "7"]
