"""Magnitude pruning (Han et al. 2015) and its random baseline.

Introduced in chapter 2. ``prune(model, 0.9)`` removes the 90 % smallest-|w| weights of
every recurrent and classifier weight matrix and keeps the masks on the model. Scores
are computed apart from selection: chapter 3 passes gradient-based ``scores`` to the
same function.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from ..masking import check_names, check_sparsity, get_masks, prunable_parameters, set_masks
from .selection import SCOPES, select


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


CRITERIA = {"magnitude": magnitude_scores, "random": random_scores}


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
    if scores is None and criterion not in CRITERIA:
        raise ValueError(
            f"unknown criterion={criterion!r}; choose from {sorted(CRITERIA)} "
            "(gradient criteria: course_utils.pruning.gradient)"
        )
    if not isinstance(sparsity, Mapping):
        check_sparsity(sparsity)
    if names is None:
        names = list(prunable_parameters(model, include_embedding=include_embedding))
    elif not names:
        raise ValueError("names is empty: no tensors to prune")
    check_names(model, names)
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
    masks = select(scores, sparsity, scope)
    # a weight pruned before stays pruned, even when the new target is lower
    masks = {n: m & existing[n] if n in existing else m for n, m in masks.items()}
    set_masks(model, masks)
    return masks
