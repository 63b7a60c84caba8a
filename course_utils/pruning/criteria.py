"""Pruning with chapter 3's criteria: gradually (movement pruning) or at init (SNIP).

Introduced in chapter 3; it composes chapter 2's :class:`AGPPruner` and ``finetune``
with the scores of :mod:`course_utils.pruning.gradient`. The equal-budget comparison of
criteria lives in :mod:`course_utils.experiments.comparison`.

- :func:`gradual_pruning`: the cubic AGP schedule (Zhu & Gupta 2017) where each pruning
  step ranks the live weights by ``magnitude``, ``random``, ``taylor`` (running |g·w|)
  or ``movement`` (accumulated -g·w). ``criterion="movement"`` is movement pruning with
  hard top-k (Sanh et al. 2020). The names are those of the one registry of score
  criteria, :data:`course_utils.pruning.magnitude.CRITERIA`.
- :func:`snip_pruning`: SNIP (Lee et al. 2019): score a freshly initialized network on
  one batch, prune it, train the sparse network. As in the paper, the scores of all
  tensors are ranked together (``scope="global"``); ``scope="layerwise"`` is a variant.
- :func:`jaccard` and :func:`jaccard_per_tensor`: how far two masks keep the same weights.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from ..checks import fraction, positive_int, positive_number
from ..masking import check_sparsity
from ..report import Table
from ..seeding import keeps_global_rng, set_seed
from ..train import TrainingData, evaluate, nonempty_batches
from .finetune import finetune, training_loaders
from .gradient import ImportanceFn, snip_scores
from .magnitude import (
    CRITERIA,
    TRAINING_CRITERIA,
    WEIGHT_CRITERIA,
    check_criterion,
    prune,
    pruned_names,
    pruned_sparsity,
)
from .schedules import AGPPruner, PruningRun
from .selection import SCOPES

GRADUAL_CRITERIA = (*WEIGHT_CRITERIA, *TRAINING_CRITERIA)
"""The criteria :func:`gradual_pruning` ranks by: magnitude, random, taylor, movement."""
SNIP_SCOPES = {"snip": "global", "snip_layerwise": "layerwise"}
"""The SNIP criteria of chapter 3's comparison and the scope each ranks with: ``"snip"``
is the paper's (one threshold over all tensors; the sparsity of each tensor follows from
the ranking), ``"snip_layerwise"`` the variant that prunes each tensor to the same
sparsity, the allocation the gradual criteria get in chapter 3."""
ALL_CRITERIA = (*GRADUAL_CRITERIA, *SNIP_SCOPES)
"""Every criterion of chapter 3's comparison: the gradual ones, SNIP and its layerwise
variant."""


# --- overlap of masks --------------------------------------------------------------------


def _kept(mask) -> torch.Tensor:
    if isinstance(mask, Mapping):
        return torch.cat([m.detach().reshape(-1).bool().cpu() for m in mask.values()])
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"a mask must be a tensor or a dict of tensors, got {type(mask).__name__}")
    return mask.detach().reshape(-1).bool().cpu()


def jaccard(mask_a, mask_b) -> float:
    """Jaccard index |A ∩ B| / |A ∪ B| of the weights two masks KEEP (True entries).

    Masks are bool tensors of one shape, or dicts ``{name: mask}`` with the same names
    (then all tensors count together). 1 means the same weights are kept; two random
    masks that each keep a fraction d of n weights give about d / (2 - d). Two masks
    that keep nothing give 1.
    """
    if isinstance(mask_a, Mapping) != isinstance(mask_b, Mapping):
        raise TypeError("mask_a and mask_b must both be tensors or both be dicts")
    if isinstance(mask_a, Mapping) and list(mask_a) != list(mask_b):
        raise ValueError(
            f"the two dicts must name the same tensors, got {list(mask_a)} and {list(mask_b)}"
        )
    a, b = _kept(mask_a), _kept(mask_b)
    if a.shape != b.shape:
        raise ValueError(f"masks differ in size: {a.numel()} and {b.numel()} entries")
    union = int((a | b).sum())
    return 1.0 if union == 0 else int((a & b).sum()) / union


def jaccard_per_tensor(
    masks_a: Mapping[str, torch.Tensor], masks_b: Mapping[str, torch.Tensor]
) -> dict[str, float]:
    """:func:`jaccard` of each tensor's masks, for the tensors both dicts have."""
    names = [n for n in masks_a if n in masks_b]
    if not names:
        raise ValueError("the two mask dicts share no tensor name")
    return {n: jaccard(masks_a[n], masks_b[n]) for n in names}


# --- gradual pruning with any criterion ------------------------------------------------------


def _tracker(criterion: str, model: nn.Module, names: list[str], momentum: float):
    """The criterion's score tracker (a ``before_step`` hook), or None for |w| and random."""
    if criterion not in TRAINING_CRITERIA:
        return None
    options = {"momentum": momentum} if criterion == "taylor" else {}
    return CRITERIA[criterion](model, names, **options)


def _check_fraction(value: float, argument: str, *, upper_inclusive: bool = False) -> float:
    return fraction(argument, value, high_open=not upper_inclusive, what="a fraction of the steps")


def agp_steps(steps: int, *, warmup: float, ramp_end: float, frequency: int) -> tuple[int, int]:
    """``(start_step, end_step)`` of the cubic schedule inside a run of ``steps`` steps.

    The schedule starts after ``warmup`` of the steps (scores accumulate first) and
    reaches the final sparsity at ``ramp_end`` of them (never after the last step); the
    rest fine-tunes frozen masks.
    """
    warmup = _check_fraction(warmup, "warmup")
    ramp_end = _check_fraction(ramp_end, "ramp_end", upper_inclusive=True)
    if ramp_end <= warmup:
        raise ValueError(f"ramp_end must be > warmup={warmup}, got ramp_end={ramp_end}")
    frequency = positive_int("frequency", frequency)
    steps = positive_int("steps", steps)
    start = min(round(warmup * steps), steps - 1)
    return start, max(start + 1, min(steps, round(ramp_end * steps)))


@keeps_global_rng
def gradual_pruning(
    model: nn.Module,
    data: TrainingData | tuple,
    final: float,
    *,
    criterion: str = "movement",
    epochs: int = 1,
    lr: float = 1e-3,
    warmup: float = 0.1,
    ramp_end: float = 0.7,
    frequency: int = 5,
    scope: str = "layerwise",
    include_embedding: bool = False,
    names: Sequence[str] | None = None,
    momentum: float = 0.9,
    tracker=None,
    seed: int = 0,
    progress: bool | None = None,
) -> PruningRun:
    """Fine-tune ``model`` for ``epochs`` epochs while pruning it to ``final`` sparsity.

    The target follows the cubic AGP schedule (chapter 2's :class:`AGPPruner`) from the
    step at ``warmup`` of the run to the step at ``ramp_end``, with an update every
    ``frequency`` steps; then the masks are frozen. At each update the live weights are
    ranked by ``criterion``:

    - ``"magnitude"`` |w|, ``"random"`` uniform scores;
    - ``"taylor"``: |g·w| of the training batches, averaged with ``momentum``
      (:class:`RunningTaylorScores`);
    - ``"movement"``: ``S = -Σ g·w`` since the start (:class:`MovementScores`); this is
      movement pruning with hard top-k.

    ``tracker`` (optional) replaces the criterion's score tracker, e.g. to inspect the
    scores afterwards. ``data`` is a Baseline or ``(train_loader, valid_loader)``. The
    model ends in its best validation state at the final sparsity; returns a
    :class:`PruningRun` (``events``: the schedule's pruning steps).
    """
    check_criterion(criterion, GRADUAL_CRITERIA)
    final = check_sparsity(final, "final")
    if scope not in SCOPES:
        raise ValueError(f"unknown scope={scope!r}; choose from {list(SCOPES)}")
    epochs = positive_int("epochs", epochs)
    names = pruned_names(model, include_embedding=include_embedding, names=names)
    train_loader, _ = training_loaders(data, seed=seed)
    steps_per_epoch = len(train_loader)
    start, end = agp_steps(
        epochs * steps_per_epoch, warmup=warmup, ramp_end=ramp_end, frequency=frequency
    )
    if tracker is None:
        tracker = _tracker(criterion, model, names, momentum)
    elif not (callable(tracker) and hasattr(tracker, "scores")):
        raise TypeError("tracker must be a before_step hook with a .scores() method")
    set_seed(seed)
    pruner = AGPPruner(
        model,
        final,
        start_step=start,
        end_step=end,
        frequency=frequency,
        scope=scope,
        criterion=criterion if tracker is None else "magnitude",
        names=names,
        scores_fn=None if tracker is None else (lambda m: tracker.scores()),
        seed=seed,
    )
    history = finetune(
        model,
        data,
        epochs=epochs,
        lr=lr,
        before_step=tracker,
        after_step=pruner,
        best_from_epoch=min(epochs, math.ceil(end / steps_per_epoch)),
        seed=seed,
        progress=progress,
        desc=f"{criterion} AGP",
    )
    events = Table({"step": s, "target": t} for s, t in pruner.events)
    accuracy = history.valid_accuracy[history.best_epoch - 1]
    return PruningRun(
        f"{criterion} AGP", events, [history], pruned_sparsity(model, names), accuracy
    )


# --- SNIP: prune at initialization, then train ------------------------------------------------


@keeps_global_rng
def first_batch(data: TrainingData | tuple, batch_size: int, seed: int) -> tuple:
    """The first training batch ``(tokens, lengths, labels)`` of a seeded loader.

    ``data`` is a :class:`~course_utils.train.TrainingData` such as a ``Baseline`` (its own
    loader, ``batch_size`` articles) or a ``(train_loader, valid_loader)`` pair (its
    first batch, whatever its size). SNIP scores the initialization on this one batch.
    """
    if isinstance(data, TrainingData):
        loader = data.loader("train", batch_size=positive_int("batch_size", batch_size), seed=seed)
        return next(iter(nonempty_batches(loader, "data's training loader")))
    train_loader, _ = training_loaders(data, seed=seed)
    return next(iter(train_loader))


@keeps_global_rng
def snip_pruning(
    model: nn.Module,
    data: TrainingData | tuple,
    sparsity: float,
    *,
    epochs: int,
    lr: float = 3e-3,
    scope: str = "global",
    include_embedding: bool = False,
    names: Sequence[str] | None = None,
    batch: tuple | None = None,
    batch_size: int = 64,
    seed: int = 0,
    progress: bool | None = None,
    importance: ImportanceFn | None = None,
) -> PruningRun:
    """SNIP (Lee et al. 2019): prune ``model`` at initialization, then train the sparse net.

    The scores are |g·w| on ONE batch (``batch``, or the first training batch of
    ``batch_size`` articles when ``data`` is a Baseline), normalized over all pruned
    tensors. The default ``scope="global"`` is the paper's: the scores of all tensors
    are ranked together and the lowest ``sparsity`` of them pruned, so each tensor's
    sparsity follows from the ranking. ``scope="layerwise"`` is a variant that prunes
    each tensor to ``sparsity``. Then the masked network trains ``epochs`` epochs with
    Adam at ``lr`` (keeping its best validation epoch). ``model`` should be freshly
    initialized (e.g. ``baseline.initial_model()``): on a trained model SNIP warns.
    ``importance`` (chapter 3's ``taylor_importance``) computes |g·w| instead of the
    course's code (:func:`~course_utils.pruning.gradient.snip_scores`).
    """
    sparsity = check_sparsity(sparsity)
    epochs, lr = positive_int("epochs", epochs), positive_number("lr", lr)
    if scope not in SCOPES:
        raise ValueError(f"unknown scope={scope!r}; choose from {list(SCOPES)}")
    names = pruned_names(model, include_embedding=include_embedding, names=names)
    set_seed(seed)
    if batch is None:
        batch = first_batch(data, batch_size, seed)
    scores = snip_scores(model, batch, names=names, importance=importance)
    prune(model, sparsity, scores=scores, scope=scope, names=names)
    _, valid_loader = training_loaders(data, seed=seed)
    pruned_accuracy = evaluate(model, valid_loader)["accuracy"]
    history = finetune(model, data, epochs=epochs, lr=lr, seed=seed, progress=progress, desc="SNIP")
    events = Table(
        [
            {
                "target": sparsity,
                "sparsity": pruned_sparsity(model, names),
                "valid_acc_at_init": pruned_accuracy,
                "valid_acc_trained": history.best_valid_accuracy,
            }
        ]
    )
    return PruningRun(
        "SNIP", events, [history], pruned_sparsity(model, names), history.best_valid_accuracy
    )


__all__ = [
    "ALL_CRITERIA",
    "GRADUAL_CRITERIA",
    "SNIP_SCOPES",
    "agp_steps",
    "first_batch",
    "gradual_pruning",
    "jaccard",
    "jaccard_per_tensor",
    "snip_pruning",
]
