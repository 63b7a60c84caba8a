"""Chapter 5's widget: GAL's sparsity strength λ and the mask threshold -> units kept, accuracy.

Training GAL takes seconds per epoch, far too slow for a slider. So the λ slider moves
over a small grid of runs trained beforehand (:func:`train_lambda_grid`); for the chosen
run, the threshold slider removes every unit whose mask is at most the threshold
(:func:`~course_utils.pruning.gan.remove_masked_units`) and measures the smaller model.
:func:`gal_threshold_stats` is the pure compute function (tested headless);
:class:`GALThresholdExplorer` caches every result and :meth:`GALThresholdExplorer.view`
is the thin ipywidgets view.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence

from ..checks import number
from ..measure import count_parameters
from ..pruning.gan import GALConfig, GALResult, remove_masked_units, train_gal
from ..seeding import keeps_global_rng
from ..train import evaluate
from .common import report_view

__all__ = ["GALThresholdExplorer", "gal_threshold_stats", "train_lambda_grid"]


@keeps_global_rng
def train_lambda_grid(
    teacher,
    train_loader: Iterable,
    valid_loader: Iterable,
    lams: Sequence[float],
    config: GALConfig | None = None,
    *,
    progress: bool | None = None,
) -> dict[float, GALResult]:
    """One GAL run per fixed λ in ``lams`` (the rest of ``config`` as given, without a
    unit budget: ``target_units=None``): ``{λ: GALResult}``."""
    if not lams:
        raise ValueError("lams is empty: give at least one λ")
    config = config or GALConfig()
    return {
        float(lam): train_gal(
            teacher,
            train_loader,
            valid_loader,
            dataclasses.replace(config, lam=float(lam), target_units=None),
            progress=progress,
        )
        for lam in lams
    }


def gal_threshold_stats(result: GALResult, threshold: float, eval_loader: Iterable) -> dict:
    """Remove the units whose mask is at most ``threshold``, then measure the model.

    Returns ``{"threshold", "units_kept": {slot: n}, "hidden_size", "accuracy",
    "params_without_embedding"}``. At ``threshold=0`` only dead units go, and the
    accuracy is that of the masked student itself.
    """
    if not isinstance(result, GALResult):
        raise TypeError(f"result must be a GALResult, got {type(result).__name__}")
    threshold = number("threshold", threshold, minimum=0, what="a number")
    small = remove_masked_units(result.student, result.masks, threshold=float(threshold))
    kept = {slot: max(1, int((m > threshold).sum())) for slot, m in result.masks.items()}
    return {
        "threshold": float(threshold),
        "units_kept": kept,
        "hidden_size": small.rnn.hidden_size,
        "accuracy": evaluate(small, eval_loader)["accuracy"],
        "params_without_embedding": count_parameters(small)["total_without_embedding"],
    }


class GALThresholdExplorer:
    """λ (over trained runs) and threshold -> units kept and accuracy, every result cached."""

    def __init__(self, runs: Mapping[float, GALResult], eval_loader: Iterable):
        if not runs:
            raise ValueError("runs is empty: train at least one λ (train_lambda_grid)")
        for lam, result in runs.items():
            if not isinstance(result, GALResult):
                raise TypeError(f"runs[{lam}] must be a GALResult, got {type(result).__name__}")
        self.runs = dict(sorted(runs.items()))
        self.eval_loader = eval_loader
        self.cache: dict[tuple[float, float], dict] = {}

    def stats(self, lam: float, threshold: float) -> dict:
        if lam not in self.runs:
            raise ValueError(f"lam={lam} was not trained; choose from {list(self.runs)}")
        key = (lam, round(float(threshold), 6))
        if key not in self.cache:
            self.cache[key] = gal_threshold_stats(self.runs[lam], key[1], self.eval_loader)
        return self.cache[key]

    def max_mask(self) -> float:
        return max(float(m.max()) for r in self.runs.values() for m in r.masks.values())

    def report(self, lam: float, threshold: float) -> str:
        """One HTML table: units kept per slot, hidden size, parameters and accuracy."""
        now, dead = self.stats(lam, threshold), self.stats(lam, 0.0)
        kept = ", ".join(f"{slot}: {n}" for slot, n in now["units_kept"].items())
        rows = [
            ("λ (L1 strength on the masks)", f"{lam:g}", ""),
            ("units kept (layer, direction)", kept, f"mask > {threshold:.3f}"),
            ("hidden size of the smaller LSTM", now["hidden_size"], ""),
            ("parameters without embedding", f"{now['params_without_embedding']:,}", ""),
            ("validation accuracy", f"{100 * now['accuracy']:.1f} %", ""),
            (
                "… removing only the dead units (mask 0)",
                f"{100 * dead['accuracy']:.1f} %",
                f"{dead['hidden_size']} units",
            ),
        ]
        body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
        return f"<table>{body}</table>"

    def view(self, lam: float | None = None, threshold: float = 0.0):
        """Two sliders (``continuous_update=False``) above the report; a failed update shows
        its error in a red label instead of the report. CSS classes for browser tests:
        ``gal-explorer`` (the VBox), ``gal-lambda``, ``gal-threshold``, ``gal-report``,
        ``gal-error``."""
        import ipywidgets as widgets

        lams = list(self.runs)
        lam_slider = widgets.SelectionSlider(
            options=[(f"{v:g}", v) for v in lams],
            value=lams[len(lams) // 2] if lam is None else lam,
            description="λ",
            continuous_update=False,
        )
        top = round(self.max_mask(), 3)
        threshold_slider = widgets.FloatSlider(
            value=threshold,
            min=0.0,
            max=top,
            step=round(top / 50, 4) or 0.01,
            description="threshold",
            readout_format=".3f",
            continuous_update=False,
        )
        return report_view(
            "gal",
            {"gal-lambda": lam_slider, "gal-threshold": threshold_slider},
            lambda: self.report(lam_slider.value, threshold_slider.value),
        )
