"""Magnitude pruning (Han et al. 2015) and its random baseline.

Introduced in chapter 2. ``prune(model, 0.9)`` removes the 90 % smallest-|w| weights of
every recurrent and classifier weight matrix and keeps the masks on the model. Scores
are computed apart from selection: chapter 3 passes gradient-based ``scores`` to the
same function.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from ..masking import check_names, check_sparsity, get_masks, prunable_parameters, set_masks
from .gradient import MovementScores, RunningTaylorScores, snip_scores
from .selection import SCOPES, MaskFn, select, select_with


def magnitude_scores(model: nn.Module, names: list[str] | None = None) -> dict[str, torch.Tensor]:
    """|w| for each named weight (default: every prunable weight)."""
    params = check_names(model, names) if names is not None else prunable_parameters(model)
    return {n: params[n].detach().abs().clone() for n in (names or params)}


def random_scores(
    model: nn.Module, names: list[str] | None = None, *, seed: int = 0
) -> dict[str, torch.Tensor]:
    """Uniform random scores: the floor every criterion must beat."""
    params = check_names(model, names) if names is not None else prunable_parameters(model)
    generator = torch.Generator().manual_seed(seed)
    return {
        n: torch.rand(params[n].shape, generator=generator).to(params[n].device)
        for n in (names or params)
    }


CRITERIA = {
    "magnitude": magnitude_scores,  # |w| (chapter 2)
    "random": random_scores,  # the floor every criterion must beat (chapter 2)
    "taylor": RunningTaylorScores,  # |g·w| averaged while training (chapter 3)
    "movement": MovementScores,  # -Σ g·w accumulated while training (chapter 3)
    "snip": snip_scores,  # |g·w| on one batch, at initialization (chapter 3)
}
"""Every score criterion of the course, by name: its score function, or for the criteria
that accumulate scores while training, its tracker (a ``before_step`` hook with
``.scores()``). Higher scores are kept."""
WEIGHT_CRITERIA = ("magnitude", "random")
"""The criteria that score a model without data: ``CRITERIA[c](model, names)`` (``seed=``
for ``"random"``). ``prune``, the sensitivity scan and the sparsity explorer take these."""
TRAINING_CRITERIA = ("taylor", "movement")
"""The criteria whose scores a tracker accumulates during fine-tuning (gradual pruning)."""


def check_criterion(criterion: str, allowed: Sequence[str] = WEIGHT_CRITERIA) -> str:
    """``criterion`` when it is one of ``allowed`` (names in :data:`CRITERIA`).

    Otherwise a ValueError that lists them: ``unknown criterion='size'; choose from
    ['magnitude', 'random']``.
    """
    if criterion not in allowed:
        raise ValueError(f"unknown criterion={criterion!r}; choose from {list(allowed)}")
    return criterion


def prune(
    model: nn.Module,
    sparsity: float | Mapping[str, float],
    *,
    criterion: str = "magnitude",
    scope: str = "layerwise",
    include_embedding: bool = False,
    names: list[str] | None = None,
    scores: Mapping[str, torch.Tensor] | None = None,
    seed: int = 0,
    mask_fn: MaskFn | None = None,
) -> dict[str, torch.Tensor]:
    """Prune ``model`` in place and return the masks it now carries.

    Args:
        sparsity: fraction of weights to zero, in [0, 1); or a dict of per-tensor targets.
        criterion: ``"magnitude"`` or ``"random"`` (ignored when ``scores`` is given).
        scope: ``"layerwise"`` (same sparsity per tensor), ``"global"`` (one threshold),
            or ``"global_normalized"`` (one threshold on RMS-normalized scores).
        include_embedding: also prune ``embedding.weight``.
        names: prune only these tensors (default: every prunable weight).
        scores: precomputed scores (higher = keep), e.g. from chapter 3's criteria.
        mask_fn: your own one-tensor rule ``mask_fn(tensor, sparsity) -> bool mask``
            (chapter 2's ``magnitude_mask``) chooses the pruned entries instead of the
            course's: see :func:`~course_utils.pruning.selection.select_with`.

    Weights that are already masked stay pruned: they rank below every live weight,
    so iterative and gradual schedules only ever add zeros.

    The masks stay on the model as ``<param>_mask`` buffers. ``train_model`` and
    ``finetune`` re-apply them after every optimizer step, so training keeps the pruned
    weights at zero; in a training loop of your own, call ``apply_masks(model)`` after
    each ``optimizer.step()`` (or ``keep_masks(optimizer, model)`` once), otherwise the
    optimizer revives them and the sparsity silently drops back towards 0.
    """
    if scope not in SCOPES:
        raise ValueError(f"unknown scope={scope!r}; choose from {list(SCOPES)}")
    if scores is None and criterion not in WEIGHT_CRITERIA:
        raise ValueError(
            f"unknown criterion={criterion!r}; choose from {list(WEIGHT_CRITERIA)} "
            "(gradient criteria: pass their scores, course_utils.pruning.gradient)"
        )
    if not isinstance(sparsity, Mapping):
        check_sparsity(sparsity)
    names = pruned_names(model, include_embedding=include_embedding, names=names)
    if isinstance(sparsity, Mapping):
        check_names(model, sparsity, "sparsity")
        names = list(dict.fromkeys([*names, *sparsity]))
    if scores is None:
        scores = (
            CRITERIA[criterion](model, names, seed=seed)
            if criterion == "random"
            else (CRITERIA[criterion](model, names))
        )
    else:
        missing = [n for n in names if n not in scores]
        if missing:
            raise ValueError(f"scores lacks tensors {missing}")
        scores = {n: scores[n] for n in names}
    existing = get_masks(model)
    scores = {
        n: s.float().masked_fill(~existing[n], float("-inf")) if n in existing else s.float()
        for n, s in scores.items()
    }
    masks = (
        select(scores, sparsity, scope)
        if mask_fn is None
        else select_with(mask_fn, scores, sparsity, scope)
    )
    # a weight pruned before stays pruned, even when the new target is lower
    masks = {n: m & existing[n] if n in existing else m for n, m in masks.items()}
    set_masks(model, masks)
    return masks


def pruned_names(
    model: nn.Module, *, include_embedding: bool = False, names: Sequence[str] | None = None
) -> list[str]:
    """The tensors a pruning call works on, as a list of names.

    ``names`` itself after checking that each is a prunable weight of ``model``
    (:func:`~course_utils.masking.check_names`), or by default every prunable weight
    matrix, the embedding only with ``include_embedding``. An empty ``names`` is a
    ValueError. :func:`prune` and every schedule choose their tensors here.
    """
    if names is None:
        return list(prunable_parameters(model, include_embedding=include_embedding))
    if not names:
        raise ValueError("names is empty: no tensors to prune")
    check_names(model, names)
    return list(names)


def pruned_sparsity(model: nn.Module, names: Sequence[str]) -> float:
    """Fraction of exact zeros over the tensors ``names``: the sparsity a schedule reached."""
    params = dict(model.named_parameters())
    total = sum(params[n].numel() for n in names)
    zeros = sum(int((params[n] == 0).sum()) for n in names)
    return zeros / total


__all__ = [
    "CRITERIA",
    "TRAINING_CRITERIA",
    "WEIGHT_CRITERIA",
    "check_criterion",
    "magnitude_scores",
    "prune",
    "pruned_names",
    "pruned_sparsity",
    "random_scores",
]
