"""Small helpers the widgets share: validation batches, accuracy, figures, labels, errors."""

from __future__ import annotations

import html
import io
from collections.abc import Iterable

import torch
from torch import nn

from ..checks import positive_int
from ..text import collate_batch
from ..train import check_batch, nonempty_batches


def validation_batches(data, max_examples: int | None, batch_size: int = 32) -> list[tuple]:
    """The validation examples re-batched by length (longest first), ``batch_size`` each.

    Sorting by length means little padding, which makes an evaluation pass faster.
    """
    if hasattr(data, "loader") and hasattr(data, "datasets"):
        data = data.loader("valid")
    if not isinstance(data, Iterable):
        raise TypeError(
            f"data must be a Baseline or a validation loader, got {type(data).__name__}"
        )
    if max_examples is not None:
        max_examples = positive_int("max_examples", max_examples)
    batch_size = positive_int("batch_size", batch_size)
    examples = []
    for batch in nonempty_batches(data, "data"):
        tokens, lengths, labels = check_batch(batch, None, "each batch of data")
        for row, length, label in zip(tokens, lengths.tolist(), labels.tolist(), strict=True):
            examples.append((row[:length].cpu(), label))
        if max_examples is not None and len(examples) >= max_examples:
            break
    if not examples:
        raise ValueError("data yields no examples: every batch was empty")
    examples = examples[:max_examples]
    examples.sort(key=lambda item: -len(item[0]))
    return [
        collate_batch(examples[i : i + batch_size]) for i in range(0, len(examples), batch_size)
    ]


@torch.inference_mode()
def batch_accuracy(model: nn.Module, batches: list[tuple]) -> float:
    device = next(model.parameters()).device
    correct = total = 0
    for tokens, lengths, labels in batches:
        logits = model(tokens.to(device), lengths.to(device))
        correct += int((logits.argmax(1).cpu() == labels).sum())
        total += len(labels)
    return correct / total


def new_figure(size: tuple[float, float]):
    from matplotlib.figure import Figure

    return Figure(figsize=size, dpi=80)


def figure_png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def percent(x: float) -> str:
    return f"{100 * x:.1f} %"


def error_html(err: Exception) -> str:
    """An exception as the red line a widget shows instead of raising it in a callback.

    The message is HTML-escaped: an error that quotes ``<unk>`` or ``a < b`` shows as
    written instead of being read as markup.
    """
    return f"<span style='color:#b00'>{html.escape(f'{type(err).__name__}: {err}')}</span>"
