"""What the widgets of chapters 2 to 5 share.

Validation batches and accuracy, figures and labels; the set-up every view repeats (CSS
classes for the browser tests, controls that refresh the view, a red line for errors);
and, for the pruning widgets of chapters 2 and 3, the cache of what stays fixed between
slider moves. Nothing here is needed to read the pruning itself.
"""

from __future__ import annotations

import base64
import copy
import functools
import html
import io
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..checks import positive_int
from ..masking import check_sparsity
from ..pruning.magnitude import magnitude_scores, random_scores
from ..pruning.selection import SCOPES
from ..text import collate_batch
from ..train import TrainingData, check_batch, nonempty_batches


def validation_batches(
    data: TrainingData | Iterable, max_examples: int | None, batch_size: int = 32
) -> list[tuple]:
    """The validation examples re-batched by length (longest first), ``batch_size`` each.

    ``data`` is a :class:`~course_utils.train.TrainingData` such as a Baseline (its
    validation loader is used) or the validation loader itself. Sorting by length means
    little padding, which makes an evaluation pass faster.
    """
    if isinstance(data, TrainingData):
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
    """The share of examples in ``batches`` that ``model`` classifies right."""
    device = next(model.parameters()).device
    correct = total = 0
    for tokens, lengths, labels in batches:
        logits = model(tokens.to(device), lengths.to(device))
        correct += int((logits.argmax(1).cpu() == labels).sum())
        total += len(labels)
    return correct / total


def new_figure(size: tuple[float, float]):
    """A matplotlib Figure not managed by pyplot (a widget redraws it in place)."""
    from matplotlib.figure import Figure

    return Figure(figsize=size, dpi=80)


def figure_png(fig) -> bytes:
    """``fig`` as PNG bytes, for an ipywidgets Image."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def percent(x: float) -> str:
    """``0.953`` as ``"95.3 %"``."""
    return f"{100 * x:.1f} %"


def error_html(err: Exception) -> str:
    """An exception as the red line a widget shows instead of raising it in a callback.

    The message is HTML-escaped: an error that quotes ``<unk>`` or ``a < b`` shows as
    written instead of being read as markup.
    """
    return f"<span style='color:#b00'>{html.escape(f'{type(err).__name__}: {err}')}</span>"


# --- what the widget views share ----------------------------------------------------------


def add_classes(pairs: Iterable[tuple[object, str]]) -> None:
    """Give each widget of ``pairs`` its CSS class: ``[(slider, "units-slider"), ...]``.

    The classes never change: the browser tests (and anyone styling the notebook) find the
    widgets by them. Each widget module's docstring lists its own.
    """
    for widget, css in pairs:
        widget.add_class(css)


def html_labels(*classes: str) -> list:
    """One empty HTML label per CSS class given, carrying that class."""
    import ipywidgets as w

    labels = [w.HTML() for _ in classes]
    add_classes(zip(labels, classes, strict=True))
    return labels


def show_errors(refresh: Callable[[], object], error) -> None:
    """Run ``refresh()`` and clear the ``error`` label; if it raises, show the error there.

    Widgets refresh inside callbacks, where a raised exception would be lost in a log far
    from the slider the learner just moved: the red line shows it in the widget instead.
    """
    try:
        refresh()
    except Exception as err:  # shown in the widget, never lost in a callback
        error.value = error_html(err)
    else:
        error.value = ""


def live_box(children: Sequence, css: str, *, controls: Iterable, update: Callable):
    """``children`` stacked in a VBox with the CSS class ``css``, kept up to date.

    Every change of a value in ``controls`` calls ``update(change)``; ``update()`` also
    runs once now, so the labels are filled before the box is shown.
    """
    for control in controls:
        control.observe(update, names="value")
    box = _explorer_box()(list(children))
    box.add_class(css)
    update()
    return box


def static_view(box) -> dict[str, object]:
    """A picture of ``box`` as it is now, for viewers without a kernel.

    GitHub, nbviewer and HTML exports cannot run a widget; they show this instead: the
    controls' values, the labels' HTML and the figures, as ``text/html`` (and the first
    figure as ``image/png``). JupyterLab with a running kernel shows the live widget.
    """
    import ipywidgets as w

    controls, parts, images = [], [], []

    def walk(widget) -> None:
        if isinstance(widget, w.Box):
            for child in widget.children:
                walk(child)
        elif isinstance(widget, w.Image):
            if widget.value:
                images.append(base64.b64encode(bytes(widget.value)).decode("ascii"))
                parts.append(f'<img src="data:image/png;base64,{images[-1]}"/>')
        elif isinstance(widget, w.HTML | w.Label):
            if widget.value:
                parts.append(
                    widget.value if isinstance(widget, w.HTML) else html.escape(widget.value)
                )
        elif isinstance(widget, w.ValueWidget) and getattr(widget, "description", None):
            value = widget.value
            shown = f"{value:g}" if isinstance(value, float) else str(value)
            controls.append(f"{html.escape(widget.description)} = {html.escape(shown)}")

    walk(box)
    note = (
        "<p><em>A static view of the widget at "
        + (", ".join(controls) if controls else "its first setting")
        + ": run the notebook to move its controls.</em></p>"
    )
    bundle: dict[str, object] = {"text/html": note + "\n".join(parts)}
    if images:
        bundle["image/png"] = images[0]
    return bundle


@functools.cache
def _explorer_box():
    """The VBox class of every course widget: live in JupyterLab, a picture elsewhere."""
    import ipywidgets as w

    class ExplorerBox(w.VBox):
        """A VBox whose output also carries :func:`static_view`, for static viewers."""

        def _repr_mimebundle_(self, **kwargs):
            bundle = super()._repr_mimebundle_(**kwargs)
            return {**static_view(self), **bundle}

    return ExplorerBox


def report_view(prefix: str, controls: Mapping[str, object], report: Callable[[], str]):
    """Controls above an HTML report and a red error line, for the explorers of chapters 4-5.

    ``controls`` maps each control's CSS class to the control; ``report()`` returns the
    report's HTML and runs again whenever a control's value changes. CSS classes:
    ``{prefix}-explorer`` (the VBox), ``{prefix}-report``, ``{prefix}-error``.
    """
    shown, error = html_labels(f"{prefix}-report", f"{prefix}-error")
    add_classes((control, css) for css, control in controls.items())

    def refresh() -> None:
        shown.value = report()

    def update(change=None) -> None:
        show_errors(refresh, error)

    children = [*controls.values(), shown, error]
    return live_box(children, f"{prefix}-explorer", controls=controls.values(), update=update)


class WidgetView:
    """What the widget classes share: a notebook displays one as its box, ``self.widget``;
    :meth:`update` (called on every control change) runs the subclass's :meth:`refresh`
    and shows what goes wrong in the red line ``self.error``. A widget that shows errors
    elsewhere overrides :meth:`update` (the AGP widget writes them into its summary)."""

    widget: object
    error: object

    def update(self, change=None) -> None:
        """Recompute for the current control values (an error shows in the red line)."""
        show_errors(self.refresh, self.error)

    def refresh(self) -> None:
        """Recompute for the current control values and fill the labels; may raise."""
        raise NotImplementedError

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


# --- what the pruning widgets of chapters 2 and 3 share -------------------------------------


@dataclass
class PruningCache:
    """What a pruning widget keeps between slider moves.

    ``source`` is the learner's model (never changed); ``work`` a private copy that each
    move prunes; ``dense`` its weights before pruning; ``scores[criterion][name]`` the
    scores of each criterion; ``batches`` the validation batches and ``dense_accuracy``
    the unpruned copy's accuracy on them.
    """

    source: nn.Module
    work: nn.Module
    dense: dict[str, torch.Tensor]
    scores: dict[str, dict[str, torch.Tensor]]
    batches: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
    dense_accuracy: float


def private_copy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` in eval mode for a widget to prune: the learner's stays as it is."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    return copy.deepcopy(model).eval()


def basic_scores(work: nn.Module, names: list[str], seed: int) -> dict[str, dict]:
    """The two criteria every pruning widget offers: ``{"magnitude": ..., "random": ...}``."""
    return {
        "magnitude": magnitude_scores(work, names),
        "random": random_scores(work, names, seed=seed),
    }


def check_cache(cache, model: nn.Module, builder: str):
    """``cache`` itself when it was built for ``model``, else a ValueError naming ``builder``."""
    if cache.source is not model:
        raise ValueError(f"cache was built for another model: call {builder}(model, data)")
    return cache


def check_scope(scope: str) -> str:
    """``scope`` when it is one of the selection scopes, else a ValueError listing them."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope={scope!r}; choose from {list(SCOPES)}")
    return scope


def load_pruned(
    cache: PruningCache, masks: Mapping[str, torch.Tensor], unpruned: Collection[str] = ()
) -> None:
    """Write each dense weight times its mask into the working copy.

    The tensors named in ``unpruned`` are written back dense; every other one needs its
    mask (a KeyError names a missing one).
    """
    params = dict(cache.work.named_parameters())
    with torch.no_grad():
        for name, dense in cache.dense.items():
            if name in unpruned:
                params[name].copy_(dense)
            else:
                torch.mul(dense, masks[name].to(dense.device), out=params[name].data)


def sparsity_slider(value: float, minimum: float):
    """The sparsity slider of the pruning widgets: ``minimum`` to 0.99 in steps of 0.01,
    refreshing when released (``continuous_update=False``)."""
    import ipywidgets as w

    return w.FloatSlider(
        value=check_sparsity(value),
        min=minimum,
        max=0.99,
        step=0.01,
        description="sparsity",
        readout_format=".2f",
        continuous_update=False,
    )


__all__ = [
    "PruningCache",
    "WidgetView",
    "add_classes",
    "basic_scores",
    "batch_accuracy",
    "check_cache",
    "check_scope",
    "error_html",
    "figure_png",
    "html_labels",
    "live_box",
    "load_pruned",
    "new_figure",
    "percent",
    "private_copy",
    "report_view",
    "show_errors",
    "static_view",
    "sparsity_slider",
    "validation_batches",
]
