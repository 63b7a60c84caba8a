"""Selection: turning scores into masks with exactly the requested sparsity.

Introduced in chapter 2. A criterion gives one score tensor per weight (higher = keep);
a selection rule (:func:`select_layerwise`, :func:`select_global`,
:func:`select_per_tensor`) turns the scores into bool masks, pruning exactly
``round(sparsity * n)`` weights (the rounding of ``torch.nn.utils.prune``). Storing the
masks on a model is :mod:`course_utils.masking`.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from ..masking import check_sparsity

__all__ = [
    "SCOPES",
    "check_scope",
    "normalize_scores",
    "select",
    "select_global",
    "select_layerwise",
    "select_per_tensor",
]


def _keep_top(flat_scores: torch.Tensor, num_prune: int) -> torch.Tensor:
    """Bool mask that drops the ``num_prune`` lowest scores (exactly that many)."""
    keep = torch.ones_like(flat_scores, dtype=torch.bool)
    if num_prune > 0:
        idx = torch.topk(flat_scores, num_prune, largest=False, sorted=False).indices
        keep[idx] = False
    return keep


def _num_to_prune(sparsity: float, numel: int) -> int:
    # the same rounding as torch.nn.utils.prune, so that the two agree exactly
    return round(sparsity * numel)


def _check_scores(scores: Mapping[str, torch.Tensor]) -> None:
    if not scores:
        raise ValueError("scores is empty: no tensors to prune")
    for name, s in scores.items():
        if not isinstance(s, torch.Tensor):
            raise TypeError(f"scores[{name!r}] must be a tensor, got {type(s).__name__}")
        if torch.isnan(s).any():
            raise ValueError(f"scores[{name!r}] contains NaN")


def select_layerwise(
    scores: Mapping[str, torch.Tensor], sparsity: float
) -> dict[str, torch.Tensor]:
    """Prune the same fraction ``sparsity`` of every tensor (lowest scores first)."""
    return select_per_tensor(scores, {name: sparsity for name in scores})


def select_per_tensor(
    scores: Mapping[str, torch.Tensor], targets: Mapping[str, float]
) -> dict[str, torch.Tensor]:
    """Prune each tensor to its own target sparsity; tensors without a target stay dense."""
    _check_scores(scores)
    unknown = set(targets) - set(scores)
    if unknown:
        raise ValueError(f"targets names tensors that have no scores: {sorted(unknown)}")
    masks = {}
    for name, s in scores.items():
        target = check_sparsity(targets.get(name, 0.0), f"sparsity for {name!r}")
        keep = _keep_top(s.detach().reshape(-1).float(), _num_to_prune(target, s.numel()))
        masks[name] = keep.reshape(s.shape)
    return masks


def normalize_scores(scores: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Divide each tensor's scores by their root mean square, so tensors compare fairly."""
    out = {}
    for name, s in scores.items():
        s = s.detach().float()
        finite = s[torch.isfinite(s)]
        rms = finite.pow(2).mean().sqrt() if finite.numel() else torch.tensor(1.0)
        out[name] = s / rms.clamp_min(torch.finfo(torch.float32).tiny)
    return out


def select_global(
    scores: Mapping[str, torch.Tensor], sparsity: float, *, normalize: bool = False
) -> dict[str, torch.Tensor]:
    """Prune the fraction ``sparsity`` of all weights together, with one threshold.

    With ``normalize=True`` each tensor's scores are first divided by their RMS
    (:func:`normalize_scores`), so that a tensor with larger weights cannot shelter
    all of its entries.
    """
    _check_scores(scores)
    sparsity = check_sparsity(sparsity)
    if normalize:
        scores = normalize_scores(scores)
    names = list(scores)
    flat = torch.cat([scores[n].detach().reshape(-1).float() for n in names])
    keep = _keep_top(flat, _num_to_prune(sparsity, flat.numel()))
    masks, start = {}, 0
    for name in names:
        n = scores[name].numel()
        masks[name] = keep[start : start + n].reshape(scores[name].shape)
        start += n
    return masks


SCOPES = ("layerwise", "global", "global_normalized")


def check_scope(scope: str) -> str:
    """Return ``scope`` if it is one of :data:`SCOPES`, else raise a ValueError listing them."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope={scope!r}; choose from {list(SCOPES)}")
    return scope


def select(
    scores: Mapping[str, torch.Tensor],
    sparsity: float | Mapping[str, float],
    scope: str = "layerwise",
) -> dict[str, torch.Tensor]:
    """Dispatch to a selection rule: ``sparsity`` as a dict means per-tensor targets."""
    if isinstance(sparsity, Mapping):
        return select_per_tensor(scores, sparsity)
    if check_scope(scope) == "layerwise":
        return select_layerwise(scores, sparsity)
    return select_global(scores, sparsity, normalize=scope == "global_normalized")
