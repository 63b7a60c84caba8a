"""Chapter 3's widget: two pruning criteria side by side at one sparsity.

A pure compute function (:func:`compare_two_criteria`, tested headless) and a thin
ipywidgets view (:func:`criteria_widget`). Both criteria prune a private COPY of the
model once (no fine-tuning): the widget shows what each criterion's ranking alone does
to validation accuracy, how far the two masks keep the same weights (Jaccard index of
the kept weights, per tensor and overall) and how much of each tensor each one prunes.
Scores are computed once per criterion (magnitude and random here; gradient scores are
passed in, since they need data and a loss) and every result is memoized.

Stable CSS classes (``add_class``) for browser tests:

=========================  ===============================================
``criteria-widget``        the whole widget (a VBox)
``criteria-a``             Dropdown, first criterion
``criteria-b``             Dropdown, second criterion
``criteria-sparsity``      FloatSlider, requested sparsity in [0.5, 0.99]
``criteria-scope``         Dropdown ``layerwise`` / ``global`` / ``global_normalized``
``criteria-accuracy``      HTML, one-shot validation accuracy of both
``criteria-overlap``       HTML, overall Jaccard index and its chance level
``criteria-table``         HTML table: per tensor, sparsity of A, of B, Jaccard
``criteria-error``         HTML, empty unless the last update failed
=========================  ===============================================
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from ..masking import check_sparsity, prunable_parameters
from ..pruning.criteria import jaccard, jaccard_per_tensor
from ..pruning.selection import SCOPES, select
from ..seeding import keeps_global_rng
from .common import (
    PruningCache,
    WidgetView,
    add_classes,
    basic_scores,
    batch_accuracy,
    check_cache,
    check_scope,
    html_labels,
    live_box,
    load_pruned,
    percent,
    private_copy,
    sparsity_slider,
    validation_batches,
)


@dataclass
class CriteriaCache(PruningCache):
    """What does not change between slider moves, built by :func:`criteria_cache`;
    ``pruned`` memoizes ``(masks, accuracy)`` by ``(criterion, sparsity, scope)``."""

    pruned: dict[tuple, tuple[dict[str, torch.Tensor], float]] = field(default_factory=dict)

    @property
    def criteria(self) -> list[str]:
        return list(self.scores)


@dataclass(frozen=True)
class SideBySide:
    """Two criteria at one sparsity and scope (one-shot, no fine-tuning).

    ``accuracy[c]``: validation accuracy of the pruned copy; ``per_tensor[c][name]``:
    the sparsity criterion ``c`` gives each tensor; ``jaccard``: overlap of the kept
    weights per tensor; ``overall_jaccard``: over all pruned tensors together;
    ``chance_jaccard``: what two independent random masks keeping the same fraction
    would give, d / (2 - d).
    """

    criteria: tuple[str, str]
    sparsity: float
    scope: str
    accuracy: dict[str, float]
    dense_accuracy: float
    per_tensor: dict[str, dict[str, float]]
    jaccard: dict[str, float]
    overall_jaccard: float
    chance_jaccard: float


@keeps_global_rng
def criteria_cache(
    model: nn.Module,
    data,
    *,
    scores: Mapping[str, Mapping[str, torch.Tensor]] | None = None,
    max_examples: int | None = None,
    seed: int = 0,
) -> CriteriaCache:
    """Copy ``model``, load the validation batches once and gather every criterion's scores.

    Magnitude and random scores are computed here; ``scores`` adds others by name, e.g.
    ``{"taylor": taylor_scores(model, loader), "movement": tracker.scores()}``. Each must
    cover the recurrent and classifier weights (the embedding is not pruned here).
    ``data`` is a Baseline (its validation split) or a validation loader.
    """
    work = private_copy(model)
    names = list(prunable_parameters(work, include_embedding=False))
    all_scores = basic_scores(work, names, seed)
    for criterion, given in (scores or {}).items():
        if not isinstance(given, Mapping):
            raise TypeError(f"scores[{criterion!r}] must be a dict name -> tensor")
        missing = [n for n in names if n not in given]
        if missing:
            raise ValueError(f"scores[{criterion!r}] lacks tensors {missing}")
        for n in names:
            if given[n].shape != dict(work.named_parameters())[n].shape:
                raise ValueError(f"scores[{criterion!r}][{n!r}] has the wrong shape")
        all_scores[criterion] = {n: given[n].detach().float().cpu() for n in names}
    batches = validation_batches(data, max_examples)
    params = dict(work.named_parameters())
    return CriteriaCache(
        source=model,
        work=work,
        dense={n: params[n].detach().clone() for n in names},
        scores=all_scores,
        batches=batches,
        dense_accuracy=batch_accuracy(work, batches),
    )


def _pruned(cache: CriteriaCache, criterion: str, sparsity: float, scope: str):
    key = (criterion, round(sparsity, 6), scope)
    if key not in cache.pruned:
        masks = select(cache.scores[criterion], sparsity, scope)
        load_pruned(cache, masks)
        cache.pruned[key] = (masks, batch_accuracy(cache.work, cache.batches))
    return cache.pruned[key]


def compare_two_criteria(
    model: nn.Module,
    data,
    criterion_a: str,
    criterion_b: str,
    sparsity: float,
    scope: str = "layerwise",
    cache: CriteriaCache | None = None,
) -> SideBySide:
    """Prune a copy of ``model`` with each criterion and compare; ``model`` is untouched.

    Pass the same ``cache`` (from :func:`criteria_cache`) on every call: masks and
    accuracies are memoized by ``(criterion, sparsity, scope)``.
    """
    sparsity, scope = check_sparsity(sparsity), check_scope(scope)
    if cache is None:
        cache = criteria_cache(model, data)
    check_cache(cache, model, "criteria_cache")
    for argument, criterion in (("criterion_a", criterion_a), ("criterion_b", criterion_b)):
        if criterion not in cache.scores:
            raise ValueError(
                f"unknown {argument}={criterion!r}; this cache has scores for {cache.criteria}"
            )
    masks_a, accuracy_a = _pruned(cache, criterion_a, sparsity, scope)
    masks_b, accuracy_b = _pruned(cache, criterion_b, sparsity, scope)
    density = 1 - sparsity
    return SideBySide(
        criteria=(criterion_a, criterion_b),
        sparsity=sparsity,
        scope=scope,
        accuracy={criterion_a: accuracy_a, criterion_b: accuracy_b},
        dense_accuracy=cache.dense_accuracy,
        per_tensor={
            c: {n: 1 - float(m.float().mean()) for n, m in masks.items()}
            for c, masks in ((criterion_a, masks_a), (criterion_b, masks_b))
        },
        jaccard=jaccard_per_tensor(masks_a, masks_b),
        overall_jaccard=jaccard(masks_a, masks_b),
        chance_jaccard=density / (2 - density),
    )


# --- the thin view -------------------------------------------------------------------------


def side_by_side_html(view: SideBySide) -> str:
    """The per-tensor table of ``view`` as HTML."""
    a, b = view.criteria
    head = f"<tr><th>tensor</th><th>sparsity {a}</th><th>sparsity {b}</th><th>Jaccard</th></tr>"
    rows = "".join(
        f"<tr><td>{n}</td><td>{percent(view.per_tensor[a][n])}</td>"
        f"<td>{percent(view.per_tensor[b][n])}</td><td>{view.jaccard[n]:.2f}</td></tr>"
        for n in view.jaccard
    )
    return f"<table>{head}{rows}</table>"


def default_criteria(options: list[str]) -> tuple[str, str]:
    """The two criteria a widget starts with: magnitude against the first criterion whose
    scores were passed in (``taylor``, ``movement``...), else against random."""
    extra = [c for c in options if c not in ("magnitude", "random")]
    return "magnitude", extra[0] if extra else "random"


def criteria_pair(criteria, options: list[str]) -> tuple[str, str]:
    """``criteria`` as a pair of names that have scores in ``options``, or a ValueError."""
    if (
        isinstance(criteria, str)
        or not isinstance(criteria, tuple | list)
        or len(criteria) != 2
        or not all(isinstance(c, str) for c in criteria)
    ):
        raise ValueError(f"criteria must be a pair of criterion names, got {criteria!r}")
    missing = [c for c in criteria if c not in options]
    if missing:
        raise ValueError(
            f"criteria={tuple(criteria)!r} asks for {missing}, which have no scores here; "
            f"choose from {options} (gradient criteria need their scores: "
            "scores={'taylor': taylor_scores(model, loader)})"
        )
    return criteria[0], criteria[1]


class CriteriaWidget(WidgetView):
    """Two criteria side by side (see the module docstring for the CSS classes).

    ``criteria`` (default :func:`default_criteria`: magnitude against the first extra
    criterion given in ``scores``, else random) must name criteria with scores; another
    name is a ValueError, never silently replaced.

    Attributes: ``criterion_a``, ``criterion_b``, ``sparsity``, ``scope`` (controls);
    ``accuracy``, ``overlap``, ``table``, ``error`` (HTML); ``widget`` (the VBox shown);
    ``view`` (the last :class:`SideBySide`).
    """

    def __init__(
        self,
        model: nn.Module,
        data,
        *,
        scores: Mapping[str, Mapping[str, torch.Tensor]] | None = None,
        criteria: tuple[str, str] | None = None,
        sparsity: float = 0.9,
        scope: str = "layerwise",
        max_examples: int | None = None,
        cache: CriteriaCache | None = None,
    ):
        import ipywidgets as w

        self.model = model
        if cache is None:
            cache = criteria_cache(model, data, scores=scores, max_examples=max_examples)
        self.cache = check_cache(cache, model, "criteria_cache")
        options = self.cache.criteria
        first, second = (
            default_criteria(options) if criteria is None else criteria_pair(criteria, options)
        )
        self.criterion_a = w.Dropdown(options=options, value=first, description="criterion A")
        self.criterion_b = w.Dropdown(options=options, value=second, description="criterion B")
        self.sparsity = sparsity_slider(sparsity, minimum=0.5)
        self.scope = w.Dropdown(options=list(SCOPES), value=scope, description="scope")
        self.accuracy, self.overlap, self.table, self.error = html_labels(
            "criteria-accuracy", "criteria-overlap", "criteria-table", "criteria-error"
        )
        add_classes(
            [
                (self.criterion_a, "criteria-a"),
                (self.criterion_b, "criteria-b"),
                (self.sparsity, "criteria-sparsity"),
                (self.scope, "criteria-scope"),
            ]
        )
        self.view: SideBySide | None = None
        self.widget = live_box(
            [
                w.HBox([self.criterion_a, self.criterion_b]),
                w.HBox([self.sparsity, self.scope]),
                self.accuracy,
                self.overlap,
                self.table,
                self.error,
            ],
            "criteria-widget",
            controls=(self.criterion_a, self.criterion_b, self.sparsity, self.scope),
            update=self.update,
        )

    def refresh(self) -> None:
        """Recompute for the current control values and refresh the labels and table."""
        view = compare_two_criteria(
            self.model,
            None,
            self.criterion_a.value,
            self.criterion_b.value,
            self.sparsity.value,
            self.scope.value,
            cache=self.cache,
        )
        a, b = view.criteria
        self.accuracy.value = (
            f"validation accuracy after pruning (no fine-tuning): {a} "
            f"<b>{percent(view.accuracy[a])}</b>, {b} <b>{percent(view.accuracy[b])}</b> "
            f"(dense {percent(view.dense_accuracy)})"
        )
        self.overlap.value = (
            f"kept weights in common (Jaccard): <b>{view.overall_jaccard:.2f}</b>; "
            f"two random masks would share {view.chance_jaccard:.2f}"
        )
        self.table.value = side_by_side_html(view)
        self.view = view


def criteria_widget(model: nn.Module, data, **options) -> CriteriaWidget:
    """Two criteria side by side at a chosen sparsity: accuracy, overlap, per-tensor sparsity.

    ``data`` is a Baseline (its validation split) or a validation loader; ``options``:
    ``scores`` (extra criteria, e.g. ``{"taylor": ...}``), ``criteria`` (the two shown
    first; by default magnitude against the first of ``scores``, else against random),
    ``sparsity``, ``scope``, ``max_examples``, ``cache`` (a :func:`criteria_cache`
    already built, to reuse its scores and results). ``model`` is never modified.
    """
    return CriteriaWidget(model, data, **options)


__all__ = [
    "CriteriaCache",
    "CriteriaWidget",
    "SideBySide",
    "compare_two_criteria",
    "criteria_cache",
    "criteria_pair",
    "criteria_widget",
    "default_criteria",
    "side_by_side_html",
]
