"""Plots the chapters share: training curves and confusion matrices.

Introduced in chapter 1. Each function draws on a given Matplotlib axis (or a new
figure) and returns the axis, so notebooks can combine them.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import torch
from matplotlib.ticker import MaxNLocator

__all__ = ["plot_confusion_matrix", "plot_history"]


def _axis(ax, size=(5, 3.5)):
    if ax is None:
        _, ax = plt.subplots(figsize=size)
    return ax


def plot_history(history: dict, ax=None, label: str = ""):
    """Training loss and validation accuracy per epoch (accuracy on a twin axis)."""
    ax = _axis(ax)
    epochs = history["epoch"]
    ax.plot(epochs, history["train_loss"], "o-", label=f"{label} train loss".strip())
    ax.plot(epochs, history["valid_loss"], "s--", label=f"{label} valid loss".strip())
    ax.set_xlabel("epoch")
    ax.set_ylabel("cross-entropy")
    twin = ax.twinx()
    twin.plot(
        epochs,
        [100 * a for a in history["valid_accuracy"]],
        "^-",
        color="tab:green",
        label=f"{label} valid accuracy".strip(),
    )
    twin.set_ylabel("validation accuracy (%)")
    if history.get("best_epoch"):
        ax.axvline(history["best_epoch"], color="grey", lw=0.8, ls=":", label="epoch kept")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    lines = ax.get_lines() + twin.get_lines()
    ax.legend(lines, [line.get_label() for line in lines], fontsize=8, loc="center right")
    ax.set_title("Training curves")
    return ax


def plot_confusion_matrix(cm: torch.Tensor, class_names: Sequence[str], ax=None):
    """Counts with true classes on rows and predictions on columns."""
    ax = _axis(ax, (4.5, 4))
    cm = torch.as_tensor(cm)
    ax.imshow(cm.numpy(), cmap="Blues")
    ticks = range(len(class_names))
    ax.set_xticks(ticks, class_names, rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticks(ticks, class_names)
    for i in ticks:
        for j in ticks:
            value = int(cm[i, j])
            color = "white" if value > cm.max() / 2 else "black"
            ax.text(j, i, value, ha="center", va="center", color=color, fontsize=9)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Confusion matrix (test set)")
    return ax
