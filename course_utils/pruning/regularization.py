"""Regularization that prunes: L1, L2 and group lasso, as penalties and proximal steps.

Introduced in chapter 4. Penalties (:func:`l1_penalty`, :func:`l2_penalty`,
:func:`group_lasso_penalty`) are differentiable scalars to add to the loss
(:func:`regularized_loss`); proximal steps (:func:`proximal_l1`,
:func:`proximal_group_lasso`) are ``train_model(after_step=...)`` hooks that set weights
or whole groups to exact zeros; :func:`train_group_lasso` is the chapter's recipe.

The groups themselves (ISS hidden-unit groups, embedding dimensions) are defined in
:mod:`course_utils.pruning.groups` and re-exported here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from ..checks import positive_int, positive_number
from ..masking import check_names, prunable_parameters
from ..seeding import keeps_global_rng, set_seed
from ..train import train_model
from .groups import (
    Group,
    GroupSet,
    Slice,
    check_groups,
    check_strength,
    embedding_dim_groups,
    hidden_unit_groups,
    rnn_param_name,
)

__all__ = [
    "Group",
    "GroupSet",
    "Slice",
    "check_strength",
    "embedding_dim_groups",
    "group_lasso_penalty",
    "group_norms",
    "hidden_unit_groups",
    "l1_penalty",
    "l2_penalty",
    "proximal_group_lasso",
    "proximal_l1",
    "regularized_loss",
    "rnn_param_name",
    "soft_threshold",
    "train_group_lasso",
    "zero_groups_below",
]

# --- which weights -------------------------------------------------------------------


def _weights(model: nn.Module, names: Sequence[str] | None) -> dict[str, nn.Parameter]:
    if names is None:
        return prunable_parameters(model, include_embedding=False)
    if isinstance(names, str) or not names:
        raise ValueError(f"names must be a non-empty list of weight names, got {names!r}")
    params = check_names(model, names)
    return {n: params[n] for n in names}


# --- element-wise penalties and the soft threshold -------------------------------------


def l1_penalty(model: nn.Module, names: Sequence[str] | None = None) -> torch.Tensor:
    """``sum |w|`` over the weight matrices ``names`` (default: all but the embedding)."""
    return sum(p.abs().sum() for p in _weights(model, names).values())


def l2_penalty(model: nn.Module, names: Sequence[str] | None = None) -> torch.Tensor:
    """``sum w²`` over the weight matrices ``names`` (default: all but the embedding).

    Adding ``(lam / 2) * l2_penalty`` to the loss is weight decay ``lam`` for SGD.
    """
    return sum(p.pow(2).sum() for p in _weights(model, names).values())


def soft_threshold(weight: torch.Tensor, threshold: float) -> torch.Tensor:
    """The proximal operator of ``threshold * |w|``: ``sign(w) * max(|w| - threshold, 0)``."""
    threshold = check_strength(threshold, "threshold")
    return torch.sign(weight) * (weight.abs() - threshold).clamp_min(0)


def regularized_loss(
    penalty: Callable[[nn.Module], torch.Tensor], lam: float
) -> Callable[[nn.Module, tuple], torch.Tensor]:
    """A ``train_model(loss_fn=...)``: cross-entropy + ``lam * penalty(model)``.

    ``penalty`` is e.g. :func:`l1_penalty` or ``groups.penalty`` (a :class:`GroupSet`'s);
    the optimizer then follows the (sub)gradient of the penalty.
    """
    lam = check_strength(lam)
    if not callable(penalty):
        raise TypeError(f"penalty must be callable(model), got {type(penalty).__name__}")

    def loss_fn(model: nn.Module, batch: tuple) -> torch.Tensor:
        tokens, lengths, labels = batch
        loss = nn.functional.cross_entropy(model(tokens, lengths), labels)
        return loss + lam * penalty(model) if lam else loss

    return loss_fn


def proximal_l1(
    lam: float, lr: float, names: Sequence[str] | None = None
) -> Callable[[nn.Module, int], None]:
    """An ``after_step`` hook: soft-threshold every weight in ``names`` by ``lr * lam``.

    After a gradient step with learning rate ``lr`` on the loss without penalty, this is
    the proximal-gradient step for ``loss + lam * ||w||_1``: weights that the step
    leaves within ``lr * lam`` of zero become exactly zero.
    """
    threshold = check_strength(lam) * positive_number("lr", lr)

    @torch.no_grad()
    def hook(model: nn.Module, step: int) -> None:
        for p in _weights(model, names).values():
            p.copy_(soft_threshold(p, threshold))

    return hook


def group_norms(model: nn.Module, groups: GroupSet) -> torch.Tensor:
    """``(num_groups,)`` un-squared L2 norm of every group."""
    return check_groups(groups).norms(model)


def group_lasso_penalty(model: nn.Module, groups: GroupSet) -> torch.Tensor:
    """``sum_g ||w_g||_2`` over ``groups``; differentiable (add ``lam *`` it to the loss)."""
    return check_groups(groups).penalty(model)


def proximal_group_lasso(
    groups: GroupSet, lam: float, lr: float
) -> Callable[[nn.Module, int], None]:
    """An ``after_step`` hook: group soft-threshold by ``lr * lam`` after every step.

    ``w_g <- w_g * max(0, 1 - lr * lam / ||w_g||_2)``: the proximal step of
    ``lam * sum_g ||w_g||_2`` (exact for non-overlapping groups; ISS groups share the
    entries where a unit's rows cross another unit's column, and such a weight takes
    both groups' factors).
    """
    groups = check_groups(groups)
    threshold = check_strength(lam) * positive_number("lr", lr)

    def hook(model: nn.Module, step: int) -> None:
        groups.shrink_(model, threshold)

    return hook


def zero_groups_below(model: nn.Module, groups: GroupSet, tol: float) -> int:
    """Zero every group whose norm is at most ``tol``; return how many are now zero."""
    tol = check_strength(tol, "tol")
    which = check_groups(groups).norms(model) <= tol
    groups.zero_(model, which)
    return int(which.sum())


# --- a training recipe ---------------------------------------------------------------------


@keeps_global_rng
def train_group_lasso(
    model: nn.Module,
    groups: GroupSet,
    data,
    *,
    lam: float,
    epochs: int,
    lr: float = 1e-3,
    method: str = "penalty",
    seed: int = 0,
    progress: bool | None = None,
) -> dict[str, list]:
    """Train ``model`` in place under group lasso on ``groups``; end in the LAST state.

    ``data`` has ``.loader(split, seed=...)`` (a ``Baseline`` of chapter 1).
    ``method="penalty"``: Adam on cross-entropy + ``lam * sum_g ||w_g||`` (the
    subgradient; Adam weighs the penalty against each weight's own gradient).
    ``method="proximal"``: plain SGD on the cross-entropy, then the group soft-threshold
    by ``lr * lam`` after every step (exact zeros). Epochs run one at a time, each with
    its own batch order, because ``train_model`` keeps its best epoch and here the last
    one is wanted. Returns per-epoch ``valid_accuracy``, ``zero_groups`` and ``penalty``.
    """
    lam, lr = check_strength(lam), positive_number("lr", lr)
    groups = check_groups(groups)
    epochs = positive_int("epochs", epochs)
    if method == "penalty":
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        hooks = {"loss_fn": regularized_loss(groups.penalty, lam)}
    elif method == "proximal":
        optimizer = torch.optim.SGD(model.parameters(), lr=lr)
        hooks = {"after_step": proximal_group_lasso(groups, lam, lr)}
    else:
        raise ValueError(f"unknown method={method!r}; choose 'penalty' or 'proximal'")
    set_seed(seed)
    record: dict[str, list] = {"valid_accuracy": [], "zero_groups": [], "penalty": []}
    for epoch in range(epochs):
        history = train_model(
            model,
            data.loader("train", seed=seed + epoch),
            data.loader("valid"),
            epochs=1,
            optimizer=optimizer,
            progress=progress,
            desc=f"group lasso {epoch + 1}/{epochs}",
            **hooks,
        )
        norms = groups.norms(model)
        record["valid_accuracy"].append(history.valid_accuracy[0])
        record["zero_groups"].append(int((norms == 0).sum()))
        record["penalty"].append(float(norms.sum()))
    return record
