"""Pruning methods, one module each (chapters 2-5).

``masks`` (storing, applying and selecting masks), ``magnitude`` (|w| and random scores,
``prune``), ``schedules`` (one-shot, iterative, AGP, lottery tickets), ``gradient``
(Taylor, SNIP, movement), ``regularization`` (L1, L2, group lasso, ISS groups),
``structured`` (removing hidden units), ``gan`` (GAN-guided pruning).
"""

from .magnitude import magnitude_scores, prune, random_scores
from .masks import (
    apply_masks,
    get_masks,
    keep_masks,
    mask_gradients,
    overall_sparsity,
    prunable_parameters,
    remove_masks,
    select,
    select_global,
    select_layerwise,
    select_per_tensor,
    set_masks,
    sparsity_report,
)

__all__ = [
    "apply_masks",
    "get_masks",
    "keep_masks",
    "magnitude_scores",
    "mask_gradients",
    "overall_sparsity",
    "prunable_parameters",
    "prune",
    "random_scores",
    "remove_masks",
    "select",
    "select_global",
    "select_layerwise",
    "select_per_tensor",
    "set_masks",
    "sparsity_report",
]
