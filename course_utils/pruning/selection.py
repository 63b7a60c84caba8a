"""Selection: turning scores into masks with exactly the requested sparsity.

Introduced in chapter 2. A criterion gives one score tensor per weight (higher = keep);
a selection rule (:func:`select_layerwise`, :func:`select_global`,
:func:`select_per_tensor`) turns the scores into bool masks, pruning exactly
``round(sparsity * n)`` weights (the rounding of ``torch.nn.utils.prune``). Storing the
masks on a model is :mod:`course_utils.masking`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

from ..masking import check_sparsity

__all__ = [
    "SCOPES",
    "MaskFn",
    "check_scope",
    "normalize_scores",
    "select",
    "select_global",
    "select_layerwise",
    "select_per_tensor",
    "select_with",
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
    flat = torch.cat([s.detach().reshape(-1).float() for s in scores.values()])
    return _split(_keep_top(flat, _num_to_prune(sparsity, flat.numel())), scores)


def _split(keep: torch.Tensor, scores: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Cut one flat mask over all tensors (in the order of ``scores``) into one per tensor."""
    masks, start = {}, 0
    for name, s in scores.items():
        masks[name] = keep[start : start + s.numel()].reshape(s.shape)
        start += s.numel()
    return masks


MaskFn = Callable[[torch.Tensor, float], torch.Tensor]
"""A one-tensor selection rule: ``mask_fn(tensor, sparsity)`` -> bool mask of the tensor's
shape, False for the ``round(sparsity * tensor.numel())`` entries of smallest |x|
(chapter 2's exercise ``magnitude_mask``)."""


def _checked_mask(mask, scores: torch.Tensor, sparsity: float, what: str) -> torch.Tensor:
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"mask_fn must return a tensor for {what}, got {type(mask).__name__}")
    if mask.shape != scores.shape:
        raise ValueError(
            f"mask_fn returned shape {tuple(mask.shape)} for {what}, expected {tuple(scores.shape)}"
        )
    mask = mask.to(device=scores.device).bool()
    pruned, want = int((~mask).sum()), _num_to_prune(sparsity, scores.numel())
    if pruned != want:
        raise ValueError(
            f"mask_fn pruned {pruned} entries of {what}, expected exactly "
            f"round({sparsity} * {scores.numel()}) = {want}"
        )
    return mask


def select_with(
    mask_fn: MaskFn,
    scores: Mapping[str, torch.Tensor],
    sparsity: float | Mapping[str, float],
    scope: str = "layerwise",
) -> dict[str, torch.Tensor]:
    """:func:`select`, with ``mask_fn`` choosing the entries instead of the course's rule.

    ``mask_fn(tensor, sparsity)`` drops the smallest |x| of one tensor (chapter 2's
    ``magnitude_mask``); scores must not be negative, so that |score| ranks as the score
    does. ``"layerwise"`` calls it on each tensor; ``"global"`` on all scores flattened
    into one tensor (one threshold); ``"global_normalized"`` on the same after
    :func:`normalize_scores`. Scores of ``-inf`` (weights pruned before) are passed as 0,
    the lowest score. Each mask it returns is checked: the tensor's shape and exactly
    ``round(sparsity * n)`` entries pruned.
    """
    if not callable(mask_fn):
        raise TypeError(f"mask_fn must be callable(tensor, sparsity) -> mask, got {mask_fn!r}")
    _check_scores(scores)
    for name, s in scores.items():
        if (s < 0).any() and not (s[s < 0] == float("-inf")).all():
            raise ValueError(f"scores[{name!r}] has negative values: mask_fn ranks by |score|")
    if isinstance(sparsity, Mapping):
        unknown = set(sparsity) - set(scores)
        if unknown:
            raise ValueError(f"sparsity names tensors that have no scores: {sorted(unknown)}")
        targets = {n: check_sparsity(sparsity.get(n, 0.0), f"sparsity for {n!r}") for n in scores}
        scope = "layerwise"
    else:
        targets = dict.fromkeys(scores, check_sparsity(sparsity))
    if check_scope(scope) == "global_normalized":
        scores = normalize_scores(scores)
    scores = {
        n: torch.where(torch.isfinite(s), s.detach().float(), torch.zeros((), device=s.device))
        for n, s in scores.items()
    }
    if scope == "layerwise":
        return {
            n: _checked_mask(mask_fn(s, targets[n]), s, targets[n], repr(n))
            for n, s in scores.items()
        }
    flat = torch.cat([s.reshape(-1) for s in scores.values()])
    return _split(
        _checked_mask(mask_fn(flat, sparsity), flat, sparsity, "all tensors together"), scores
    )


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
