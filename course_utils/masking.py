"""Masks stored on a model: which weights can be pruned, store, apply, keep, report.

Introduced in chapter 2; every later chapter and ``train_model`` rely on it, so it sits
below training in the package. A mask is a bool tensor stored as a buffer
``<name>_mask`` beside the weight it masks (``rnn.weight_hh_l0_mask``), so deepcopy,
``state_dict`` and ``load_state_dict`` carry it. Masking multiplies the weight in place:
the LSTM keeps its flat weight storage, its fast kernel and its speed, and the saved
weights are true zeros. Turning scores into masks is :mod:`course_utils.pruning.selection`.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from .checks import fraction
from .models import MASK_SUFFIX, tensor_group
from .report import Table

__all__ = [
    "MASK_SUFFIX",
    "apply_masks",
    "check_names",
    "check_sparsity",
    "get_masks",
    "keep_masks",
    "mask_gradients",
    "overall_sparsity",
    "prunable_parameters",
    "register_masks_from_state_dict",
    "remove_masks",
    "set_masks",
    "sparsity_report",
]


# --- which tensors can be pruned -------------------------------------------------


def _is_prunable(name: str, param: torch.Tensor) -> bool:
    leaf = name.rsplit(".", 1)[-1]
    return param.dim() == 2 and leaf.startswith("weight")


def prunable_parameters(
    model: nn.Module, *, include_embedding: bool = True
) -> dict[str, nn.Parameter]:
    """The weight matrices that pruning may touch, by name, in model order.

    These are the embedding (unless ``include_embedding=False``), every
    ``weight_ih_l{k}``/``weight_hh_l{k}`` (and ``_reverse``) of the RNN, and Linear
    weights. Biases are never pruned.
    """
    params = {
        name: p
        for name, p in model.named_parameters()
        if _is_prunable(name, p) and (include_embedding or tensor_group(name) != "embedding")
    }
    if not params:
        raise ValueError(
            f"model has no prunable weights: {type(model).__name__} has no 2-D weight matrix"
            + ("" if include_embedding else " outside the embedding")
        )
    return params


def _owner(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    module_path, _, attr = name.rpartition(".")
    return (model.get_submodule(module_path) if module_path else model), attr


def check_names(model: nn.Module, names, argument: str = "names") -> dict[str, nn.Parameter]:
    """All parameters of ``model`` by name, after checking that ``names`` are prunable ones."""
    if isinstance(names, str):
        raise TypeError(f"{argument} must be a list of tensor names, got the string {names!r}")
    params = dict(model.named_parameters())
    for name in names:
        if name not in params:
            raise ValueError(
                f"{argument} has tensor name {name!r}, which does not exist in the model; "
                f"prunable ones: {list(prunable_parameters(model))}"
            )
        if not _is_prunable(name, params[name]):
            raise ValueError(
                f"{argument} has tensor name {name!r}, which is not a prunable weight matrix"
            )
    return params


def check_sparsity(sparsity: float, argument: str = "sparsity") -> float:
    """Return ``sparsity`` as a float in [0, 1), or raise an error naming ``argument``.

    A TypeError for a value that is not a number (a bool, a string, None), a ValueError
    for one outside [0, 1) or NaN (:func:`course_utils.checks.fraction`).
    """
    return fraction(argument, sparsity)


# --- storing and applying masks ----------------------------------------------------


def get_masks(model: nn.Module) -> dict[str, torch.Tensor]:
    """The masks currently on ``model``, keyed by the name of the weight they mask."""
    masks = {}
    for name, _ in model.named_parameters():
        owner, attr = _owner(model, name)
        mask = getattr(owner, attr + MASK_SUFFIX, None)
        if isinstance(mask, torch.Tensor):
            masks[name] = mask
    return masks


def set_masks(model: nn.Module, masks: Mapping[str, torch.Tensor]) -> None:
    """Attach (or replace) masks and zero the masked weights in place.

    ``masks`` maps weight names to bool (or 0/1) tensors of the weight's shape; True
    keeps a weight.
    """
    if not isinstance(masks, Mapping):
        raise TypeError(f"masks must be a dict of name -> tensor, got {type(masks).__name__}")
    params = check_names(model, masks, "masks")
    for name, mask in masks.items():
        if not isinstance(mask, torch.Tensor):
            raise TypeError(f"mask for {name!r} must be a tensor, got {type(mask).__name__}")
        weight = params[name]
        if mask.shape != weight.shape:
            raise ValueError(
                f"mask for {name!r} has shape {tuple(mask.shape)}, expected {tuple(weight.shape)}"
            )
        if mask.dtype != torch.bool:
            if not torch.all((mask == 0) | (mask == 1)):
                raise ValueError(f"mask for {name!r} must hold only 0 and 1")
            mask = mask != 0
        owner, attr = _owner(model, name)
        buffer_name = attr + MASK_SUFFIX
        mask = mask.detach().to(weight.device).clone()
        if isinstance(getattr(owner, buffer_name, None), torch.Tensor):
            setattr(owner, buffer_name, mask)
        else:
            owner.register_buffer(buffer_name, mask)
    apply_masks(model)


@torch.no_grad()
def apply_masks(model: nn.Module) -> None:
    """Zero every masked weight in place (a no-op for a model without masks).

    ``train_model`` and ``finetune`` do it after every optimizer step; a loop of your
    own must too (or use :func:`keep_masks`), or the step revives pruned weights.
    """
    params = dict(model.named_parameters())
    for name, mask in get_masks(model).items():
        params[name].mul_(mask)


@torch.no_grad()
def mask_gradients(model: nn.Module) -> None:
    """Zero the gradients of masked weights in place."""
    params = dict(model.named_parameters())
    for name, mask in get_masks(model).items():
        if params[name].grad is not None:
            params[name].grad.mul_(mask)


def remove_masks(model: nn.Module) -> None:
    """Make pruning permanent: zero the weights once more and drop the mask buffers."""
    apply_masks(model)
    for name in list(get_masks(model)):
        owner, attr = _owner(model, name)
        delattr(owner, attr + MASK_SUFFIX)


def keep_masks(optimizer: torch.optim.Optimizer, model: nn.Module) -> list:
    """Keep pruned weights at exactly zero while ``optimizer`` trains ``model``.

    Before each step the masked gradients are zeroed; after it the masks are
    re-applied, so that neither momentum nor Adam's running averages nor weight decay
    can revive a pruned weight. Returns the hook handles (``.remove()`` them to stop).
    """
    pre = optimizer.register_step_pre_hook(lambda opt, args, kwargs: mask_gradients(model))
    post = optimizer.register_step_post_hook(lambda opt, args, kwargs: apply_masks(model))
    return [pre, post]


def register_masks_from_state_dict(
    model: nn.Module, state_dict: Mapping[str, torch.Tensor]
) -> None:
    """Create empty mask buffers for the masks in ``state_dict`` so that it loads."""
    params = dict(model.named_parameters())
    for key, value in state_dict.items():
        if not key.endswith(MASK_SUFFIX):
            continue
        name = key[: -len(MASK_SUFFIX)]
        if name in params and not isinstance(get_masks(model).get(name), torch.Tensor):
            owner, attr = _owner(model, name)
            owner.register_buffer(attr + MASK_SUFFIX, torch.ones_like(value, dtype=torch.bool))


# --- reporting ------------------------------------------------------------------


def sparsity_report(model: nn.Module) -> Table:
    """Sparsity of every prunable weight, then totals with and without the embedding.

    Counts exact zeros in the weights (masked or not). Biases are excluded.
    """
    rows = Table()
    totals = {"embedding": [0, 0], "other": [0, 0]}
    for name, p in prunable_parameters(model).items():
        n, nz = p.numel(), int(torch.count_nonzero(p.detach()))
        group = tensor_group(name)
        rows.append(
            {
                "tensor": name,
                "group": group,
                "params": n,
                "nonzero": nz,
                "sparsity": 1 - nz / n,
            }
        )
        bucket = totals["embedding" if group == "embedding" else "other"]
        bucket[0] += n
        bucket[1] += nz
    n, nz = totals["other"]
    if n:
        rows.append(
            {
                "tensor": "TOTAL without embedding",
                "group": "",
                "params": n,
                "nonzero": nz,
                "sparsity": 1 - nz / n,
            }
        )
    n += totals["embedding"][0]
    nz += totals["embedding"][1]
    rows.append(
        {
            "tensor": "TOTAL with embedding",
            "group": "",
            "params": n,
            "nonzero": nz,
            "sparsity": 1 - nz / n,
        }
    )
    return rows


def overall_sparsity(model: nn.Module, *, include_embedding: bool = False) -> float:
    """Fraction of exact zeros over the prunable weights."""
    params = prunable_parameters(model, include_embedding=include_embedding)
    total = sum(p.numel() for p in params.values())
    nonzero = sum(int(torch.count_nonzero(p.detach())) for p in params.values())
    return 1 - nonzero / total
