"""Chapter 2's live sparsity explorer.

A pure compute function (:func:`explore_sparsity`), tested headless, plus a thin
ipywidgets view (:func:`sparsity_explorer`). The explorer prunes a private COPY of the model: the
learner's model is never changed. Scores, the dense weights and the validation batches
are computed once and cached, and every result is memoized, so a slider move costs one
selection, one copy of the weights and one pass over the validation batches.

Stable CSS classes (``add_class``) for browser tests:

==========================  ================================================
``sparsity-explorer``       the whole explorer (a VBox)
``sparsity-slider``         FloatSlider, requested sparsity in [0, 0.99]
``sparsity-criterion``      Dropdown ``magnitude`` / ``random``
``sparsity-scope``          Dropdown ``layerwise`` / ``global`` / ``global_normalized``
``sparsity-embedding``      Checkbox: prune the embedding too
``sparsity-accuracy``       HTML ``validation accuracy: 95.3 % (dense 98.1 %)``
``sparsity-overall``        HTML ``sparsity: 80.0 % of recurrent + classifier weights;
                            embedding 0.0 %``
``sparsity-kept``           HTML ``kept: 41,002 of 1,140,928 weights``
``sparsity-size``           HTML ``estimated size: 1.31 MB (dense fp32: 4.57 MB)``
``sparsity-bar``            FloatProgress, one per tensor: its sparsity in %
``sparsity-heatmap``        Image (PNG): |w| of a recurrent matrix, pruned = white
``sparsity-error``          HTML, empty unless the last update failed
==========================  ================================================

The estimated size assumes a bitmask format: 4 bytes per kept fp32 weight plus one bit
per position of each pruned tensor (a tensor stays dense when that is smaller); biases
and other parameters are stored dense. It is an estimate, not a file written to disk.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import torch
from torch import nn

from ..deploy.compress import bitmask_bytes
from ..masking import check_sparsity, prunable_parameters
from ..models import tensor_group
from ..pruning.magnitude import WEIGHT_CRITERIA, check_criterion
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

HEATMAP_DEFAULT = "rnn.weight_hh_l0"


# --- the explorer: pure compute -------------------------------------------------------


@dataclass
class ExplorerCache(PruningCache):
    """What does not change between slider moves, built by :func:`explorer_cache`;
    ``other_params`` counts the parameters never pruned (biases), ``results`` memoizes
    each :class:`SparsityView`."""

    other_params: int
    heatmap_name: str
    results: dict[tuple, SparsityView] = field(default_factory=dict)

    @property
    def examples(self) -> int:
        return sum(len(b[2]) for b in self.batches)


@dataclass(frozen=True)
class SparsityView:
    """One state of the explorer.

    ``accuracy`` is on the cached validation batches; ``overall_sparsity`` counts the
    recurrent and classifier weights, ``embedding_sparsity`` the embedding apart;
    ``kept``/``total`` count the prunable weights (embedding included); ``heatmap`` is
    the watched weight matrix with its pruned entries set to NaN.
    """

    sparsity: float
    criterion: str
    scope: str
    include_embedding: bool
    accuracy: float
    dense_accuracy: float
    overall_sparsity: float
    embedding_sparsity: float
    kept: int
    total: int
    per_tensor: dict[str, float]
    dense_bytes: int
    estimated_bytes: int
    heatmap_name: str
    heatmap: torch.Tensor


@keeps_global_rng
def explorer_cache(
    model: nn.Module,
    data,
    *,
    max_examples: int | None = None,
    heatmap: str = HEATMAP_DEFAULT,
    seed: int = 0,
) -> ExplorerCache:
    """Copy ``model``, score every prunable weight and load the validation batches once.

    ``data`` is a Baseline (its validation split) or a loader of ``(tokens, lengths,
    labels)`` batches; ``max_examples`` keeps only the first examples, for speed.
    """
    work = private_copy(model)
    params = prunable_parameters(work, include_embedding=True)
    if heatmap not in params:
        raise ValueError(
            f"heatmap={heatmap!r} is not a prunable tensor; choose from {list(params)}"
        )
    batches = validation_batches(data, max_examples)
    names = list(params)
    total_params = sum(p.numel() for p in work.parameters())
    return ExplorerCache(
        source=model,
        work=work,
        dense={n: p.detach().clone() for n, p in params.items()},
        scores=basic_scores(work, names, seed),
        batches=batches,
        dense_accuracy=batch_accuracy(work, batches),
        other_params=total_params - sum(p.numel() for p in params.values()),
        heatmap_name=heatmap,
    )


def _estimated_bytes(numel: int, nonzero: int) -> int:
    """Bitmask fp32 storage of one tensor (dense when that is smaller)."""
    return min(4 * numel, 4 * nonzero + bitmask_bytes(numel))


def explore_sparsity(
    model: nn.Module,
    data,
    sparsity: float,
    criterion: str = "magnitude",
    scope: str = "layerwise",
    include_embedding: bool = False,
    cache: ExplorerCache | None = None,
) -> SparsityView:
    """Prune a copy of ``model`` as asked and measure it; ``model`` itself is untouched.

    Pass the same ``cache`` (from :func:`explorer_cache`) on every call: results are
    memoized by ``(sparsity, criterion, scope, include_embedding)``.
    """
    sparsity = check_sparsity(sparsity)
    check_criterion(criterion, WEIGHT_CRITERIA)
    check_scope(scope)
    if cache is None:
        cache = explorer_cache(model, data)
    check_cache(cache, model, "explorer_cache")
    key = (round(sparsity, 6), criterion, scope, bool(include_embedding))
    if key in cache.results:
        return cache.results[key]
    names = [n for n in cache.dense if include_embedding or tensor_group(n) != "embedding"]
    masks = select({n: cache.scores[criterion][n] for n in names}, sparsity, scope)
    load_pruned(cache, masks, unpruned=[n for n in cache.dense if n not in masks])
    accuracy = batch_accuracy(cache.work, cache.batches)
    per_tensor, counts = {}, {"embedding": [0, 0], "other": [0, 0]}
    estimated = 4 * cache.other_params
    for name, dense in cache.dense.items():
        numel = dense.numel()
        kept = int(masks[name].sum()) if name in masks else numel
        per_tensor[name] = 1 - kept / numel
        bucket = counts["embedding" if tensor_group(name) == "embedding" else "other"]
        bucket[0] += numel
        bucket[1] += kept
        estimated += _estimated_bytes(numel, kept) if name in masks else 4 * numel
    heat = cache.dense[cache.heatmap_name].float().clone()
    if cache.heatmap_name in masks:
        heat[~masks[cache.heatmap_name]] = float("nan")
    total = counts["embedding"][0] + counts["other"][0]
    view = SparsityView(
        sparsity=sparsity,
        criterion=criterion,
        scope=scope,
        include_embedding=bool(include_embedding),
        accuracy=accuracy,
        dense_accuracy=cache.dense_accuracy,
        overall_sparsity=1 - counts["other"][1] / counts["other"][0],
        embedding_sparsity=(
            1 - counts["embedding"][1] / counts["embedding"][0] if counts["embedding"][0] else 0.0
        ),
        kept=counts["embedding"][1] + counts["other"][1],
        total=total,
        per_tensor=per_tensor,
        dense_bytes=4 * (total + cache.other_params),
        estimated_bytes=estimated,
        heatmap_name=cache.heatmap_name,
        heatmap=heat.cpu(),
    )
    cache.results[key] = view
    return view


# --- the explorer: thin view ----------------------------------------------------------


def heatmap_png(view: SparsityView, *, vmax: float | None = None, scale: int = 2) -> bytes:
    """The watched matrix as a PNG: |w| in viridis (transposed: hidden units on rows),
    pruned entries white; each weight is ``scale`` x ``scale`` pixels."""
    import matplotlib
    import matplotlib.image
    import numpy as np

    magnitude = view.heatmap.abs().T.numpy()
    top = vmax if vmax is not None else float(np.nanmax(magnitude, initial=0.0)) or 1.0
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="white")
    rgba = cmap(matplotlib.colors.Normalize(0.0, top)(np.ma.masked_invalid(magnitude)), bytes=True)
    rgba = np.repeat(np.repeat(rgba, scale, axis=0), scale, axis=1)
    buffer = io.BytesIO()
    matplotlib.image.imsave(buffer, rgba, format="png")
    return buffer.getvalue()


def render_view(view: SparsityView, ax=None):
    """A static picture of ``view`` for a notebook: per-tensor bars and the heat map."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(1, 2, figsize=(11, 3.4), width_ratios=[1, 1.5], layout="constrained")
    bars, heat = ax
    names = list(view.per_tensor)
    colors = ["tab:gray" if tensor_group(n) == "embedding" else "tab:blue" for n in names]
    bars.barh(range(len(names)), [100 * view.per_tensor[n] for n in names], color=colors)
    bars.set_yticks(range(len(names)), names, fontsize=8)
    bars.invert_yaxis()
    bars.set_xlim(0, 100)
    bars.set_xlabel("sparsity (%)")
    bars.set_title(
        f"{view.criterion}, {view.scope}: valid acc {percent(view.accuracy)}", fontsize=10
    )
    import matplotlib

    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="white")
    image = heat.imshow(
        view.heatmap.abs().T.numpy(), aspect="auto", cmap=cmap, interpolation="nearest"
    )
    heat.set_xlabel("row of the matrix (gate blocks i, f, g, o)")
    heat.set_ylabel("column (hidden unit)")
    heat.set_title(f"|{view.heatmap_name}| (white = pruned)", fontsize=10)
    heat.figure.colorbar(image, ax=heat, label="|w|")
    return ax


class SparsityExplorer(WidgetView):
    """The explorer's widgets (see the module docstring for their CSS classes).

    Attributes: ``slider``, ``criterion``, ``scope``, ``include_embedding`` (controls);
    ``accuracy``, ``overall``, ``kept``, ``size``, ``error`` (HTML labels); ``bars``
    (one FloatProgress per tensor, by name, value = sparsity in %); ``heatmap``
    (Image); ``widget`` (the VBox shown); ``view`` (the last :class:`SparsityView`).
    """

    def __init__(
        self,
        model: nn.Module,
        data,
        *,
        sparsity: float = 0.8,
        max_examples: int | None = None,
        heatmap: str = HEATMAP_DEFAULT,
    ):
        import ipywidgets as w

        self.model = model
        self.cache = explorer_cache(model, data, max_examples=max_examples, heatmap=heatmap)
        self._vmax = float(self.cache.dense[heatmap].abs().max())
        self.slider = sparsity_slider(sparsity, minimum=0.0)
        self.criterion = w.Dropdown(
            options=sorted(WEIGHT_CRITERIA), value="magnitude", description="criterion"
        )
        self.scope = w.Dropdown(options=list(SCOPES), value="layerwise", description="scope")
        self.include_embedding = w.Checkbox(value=False, description="prune the embedding too")
        self.accuracy, self.overall, self.kept, self.size, self.error = html_labels(
            "sparsity-accuracy",
            "sparsity-overall",
            "sparsity-kept",
            "sparsity-size",
            "sparsity-error",
        )
        self.bars = {
            name: w.FloatProgress(value=0.0, min=0.0, max=100.0, description=name.split(".")[-1])
            for name in self.cache.dense
        }
        self._bar_labels = {name: w.Label() for name in self.cache.dense}
        self.heatmap = w.Image(format="png")
        self.view: SparsityView | None = None
        add_classes(
            [
                (self.slider, "sparsity-slider"),
                (self.criterion, "sparsity-criterion"),
                (self.scope, "sparsity-scope"),
                (self.include_embedding, "sparsity-embedding"),
                (self.heatmap, "sparsity-heatmap"),
            ]
            + [(bar, "sparsity-bar") for bar in self.bars.values()]
        )
        controls = (self.slider, self.criterion, self.scope, self.include_embedding)
        bar_rows = [w.HBox([self.bars[n], self._bar_labels[n]]) for n in self.cache.dense]
        self.widget = live_box(
            [
                w.HBox([self.slider, self.criterion, self.scope, self.include_embedding]),
                w.HBox([self.accuracy, self.overall]),
                w.HBox([self.kept, self.size]),
                w.HBox(
                    [
                        w.VBox([w.HTML("<b>sparsity per tensor</b>"), *bar_rows]),
                        w.VBox(
                            [
                                w.HTML(
                                    f"<b>|{heatmap}|</b>, transposed: dark = small, "
                                    "yellow = large, white = pruned"
                                ),
                                self.heatmap,
                            ]
                        ),
                    ]
                ),
                self.error,
            ],
            "sparsity-explorer",
            controls=controls,
            update=self.update,
        )

    def refresh(self) -> None:
        """Recompute for the current control values and refresh labels, bars and heat map."""
        view = explore_sparsity(
            self.model,
            None,
            self.slider.value,
            self.criterion.value,
            self.scope.value,
            self.include_embedding.value,
            cache=self.cache,
        )
        self.accuracy.value = (
            f"validation accuracy: <b>{percent(view.accuracy)}</b> "
            f"(dense {percent(view.dense_accuracy)})"
        )
        self.overall.value = (
            f"sparsity: <b>{percent(view.overall_sparsity)}</b> of recurrent + classifier "
            f"weights; embedding {percent(view.embedding_sparsity)}"
        )
        self.kept.value = f"kept: {view.kept:,} of {view.total:,} weights"
        self.size.value = (
            f"estimated size: {view.estimated_bytes / 1e6:.2f} MB "
            f"(dense fp32: {view.dense_bytes / 1e6:.2f} MB)"
        )
        for name, value in view.per_tensor.items():
            self.bars[name].value = 100 * value
            self._bar_labels[name].value = percent(value)
        self.heatmap.value = heatmap_png(view, vmax=self._vmax)
        self.view = view


def sparsity_explorer(model: nn.Module, data, **options) -> SparsityExplorer:
    """Live sparsity tuning: a slider, criterion and scope menus, an embedding toggle.

    ``data`` is a Baseline (its validation split is used) or a validation loader;
    ``options``: ``sparsity`` (start value), ``max_examples`` (evaluate on the first
    examples only, for speed), ``heatmap`` (the tensor drawn). Shows validation
    accuracy, sparsity, weights kept, the estimated size, per-tensor sparsity bars and a
    heat map. ``model`` is never modified.
    """
    return SparsityExplorer(model, data, **options)


__all__ = [
    "ExplorerCache",
    "SparsityExplorer",
    "SparsityView",
    "explore_sparsity",
    "explorer_cache",
    "heatmap_png",
    "render_view",
    "sparsity_explorer",
]
