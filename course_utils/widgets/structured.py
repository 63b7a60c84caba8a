"""Chapter 4's widget: a hidden-units slider showing accuracy, measured latency and size.

:func:`units_kept_stats` is the pure compute function (tested headless); the class
:class:`UnitsKeptExplorer` caches the per-unit scores and every result, and
:meth:`UnitsKeptExplorer.view` is the thin ipywidgets view (a slider and HTML labels).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from ..checks import integer
from ..measure import count_parameters, measure_latency, size_on_disk
from ..pruning.structured import remove_hidden_units, select_units, unit_norms, unit_slots
from ..train import evaluate
from .common import report_view

__all__ = ["UnitsKeptExplorer", "units_kept_stats"]


def units_kept_stats(
    model: nn.Module,
    scores: Mapping[tuple[int, int], torch.Tensor],
    units: int,
    *,
    eval_loader,
    seq_len: int,
    batch_sizes: Sequence[int] = (1, 64),
    repeats: int = 10,
) -> dict:
    """Shrink ``model`` to its ``units`` best units per layer and direction, then measure.

    Returns ``{"units", "accuracy", "latency_ms": {batch_size: median ms},
    "raw_bytes", "params_without_embedding"}``; latency on one thread at ``seq_len``.
    """
    hidden = model.rnn.hidden_size
    units = integer("units", units, minimum=1, maximum=hidden)
    shrunk = remove_hidden_units(model, select_units(scores, units))
    return {
        "units": units,
        "accuracy": evaluate(shrunk, eval_loader)["accuracy"],
        "latency_ms": {
            bs: measure_latency(shrunk, batch_size=bs, seq_len=seq_len, repeats=repeats).median_ms
            for bs in batch_sizes
        },
        "raw_bytes": size_on_disk(shrunk)["raw_bytes"],
        "params_without_embedding": count_parameters(shrunk)["total_without_embedding"],
    }


class UnitsKeptExplorer:
    """Hidden units kept -> accuracy, latency, size; every result cached by unit count.

    ``scores`` defaults to the ISS group norms of ``model`` (computed once).
    """

    def __init__(
        self,
        model: nn.Module,
        eval_loader,
        *,
        seq_len: int,
        scores: Mapping[tuple[int, int], torch.Tensor] | None = None,
        batch_sizes: Sequence[int] = (1, 64),
        repeats: int = 10,
    ):
        unit_slots(model)  # TypeError for a model without a supported RNN
        self.model, self.eval_loader, self.seq_len = model, eval_loader, seq_len
        self.scores = unit_norms(model) if scores is None else scores
        self.batch_sizes, self.repeats = tuple(batch_sizes), repeats
        self.cache: dict[int, dict] = {}

    def stats(self, units: int) -> dict:
        if units not in self.cache:
            self.cache[units] = units_kept_stats(
                self.model,
                self.scores,
                units,
                eval_loader=self.eval_loader,
                seq_len=self.seq_len,
                batch_sizes=self.batch_sizes,
                repeats=self.repeats,
            )
        return self.cache[units]

    def report(self, units: int) -> str:
        """One HTML table comparing ``units`` kept with the full model."""
        full, now = self.stats(self.model.rnn.hidden_size), self.stats(units)
        rows = [("hidden units per layer", full["units"], now["units"], "")]
        rows.append(
            ("accuracy", f"{100 * full['accuracy']:.1f} %", f"{100 * now['accuracy']:.1f} %", "")
        )
        for bs in self.batch_sizes:
            a, b = full["latency_ms"][bs], now["latency_ms"][bs]
            rows.append((f"latency, batch {bs} (ms)", f"{a:.2f}", f"{b:.2f}", f"{a / b:.1f}x"))
        for key, label in (
            ("params_without_embedding", "parameters without embedding"),
            ("raw_bytes", "size on disk (bytes, fp32)"),
        ):
            a, b = full[key], now[key]
            rows.append((label, f"{a:,}", f"{b:,}", f"{a / b:.1f}x"))
        head = "<tr><th></th><th>full</th><th>kept</th><th>full / kept</th></tr>"
        body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
        return f"<table>{head}{body}</table>"

    def view(self, value: int | None = None):
        """A slider (``continuous_update=False``) above the report; a failed update shows its
        error in a red label instead of the report. CSS classes for browser tests:
        ``units-explorer`` (the VBox), ``units-slider``, ``units-report``, ``units-error``."""
        import ipywidgets as widgets

        hidden = self.model.rnn.hidden_size
        slider = widgets.IntSlider(
            value=value or max(1, hidden // 4),
            min=1,
            max=hidden,
            description="units kept",
            continuous_update=False,
        )
        return report_view("units", {"units-slider": slider}, lambda: self.report(slider.value))
