"""Fine-tuning a pruned model with its masks kept.

Introduced in chapter 2; every pruning schedule and chapters 3 and 5 use :func:`finetune`.
It reuses ``course_utils.train.train_model`` one epoch at a time, so pruned weights stay
exactly zero (``train_model`` keeps the masks, :func:`~course_utils.pruning.keep_masks`),
extra ``before_step`` and ``after_step`` hooks see the step count of the whole run, a
``loss_fn`` can replace the cross-entropy, and the best validation state is kept among
the epochs you allow (for AGP: only those after the last pruning step, so the result has
the final sparsity).

``data`` is either a :class:`course_utils.Baseline` (its train and validation loaders
are used) or a pair ``(train_loader, valid_loader)``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

from ..checks import integer, positive_int, positive_number
from ..seeding import keeps_global_rng, set_seed
from ..train import History, StepHook, nonempty_batches, train_model


def training_loaders(data, *, seed: int | None = None) -> tuple:
    """``(train_loader, valid_loader)`` from a Baseline or from such a pair.

    Either loader yielding no batches is a ValueError that names it.
    """
    if hasattr(data, "loader") and hasattr(data, "datasets"):
        train, valid = data.loader("train", seed=seed), data.loader("valid")
    elif isinstance(data, tuple | list) and len(data) == 2:
        train, valid = data
    else:
        raise TypeError(
            "data must be a Baseline or a (train_loader, valid_loader) pair, "
            f"got {type(data).__name__}"
        )
    return (
        nonempty_batches(train, "data's training loader"),
        nonempty_batches(valid, "data's validation loader"),
    )


def _shifted(hook: StepHook | None, offset: list[int]) -> StepHook | None:
    if hook is None:
        return None
    if not callable(hook):
        raise TypeError(f"hooks must be callable(model, step), got {hook!r}")
    return lambda model, step: hook(model, offset[0] + step)


@keeps_global_rng
def finetune(
    model: nn.Module,
    data,
    *,
    epochs: int,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    optimizer: torch.optim.Optimizer | None = None,
    clip: float | None = 1.0,
    before_step: StepHook | None = None,
    after_step: StepHook | None = None,
    loss_fn: Callable[[nn.Module, tuple], torch.Tensor] | None = None,
    best_from_epoch: int = 1,
    seed: int | None = None,
    progress: bool | None = None,
    desc: str = "fine-tune",
) -> History:
    """Train ``model`` in place with its masks kept; return the History of all epochs.

    Pruned weights stay exactly zero: ``train_model`` masks the optimizer's gradients
    before each step and re-applies the masks after it (:func:`keep_masks`), which also
    covers masks added during training (AGP). ``before_step(model, step)`` and ``after_step(model,
    step)`` get the step count over the whole run (not per epoch). The model ends in the
    state of the best validation accuracy among epochs ``>= best_from_epoch``.
    ``seed`` (optional) seeds dropout and the batch order.
    """
    epochs = positive_int("epochs", epochs)
    best_from_epoch = integer(
        "best_from_epoch", best_from_epoch, minimum=1, maximum=epochs, allowed=f"in [1, {epochs=}]"
    )
    lr = positive_number("lr", lr)
    if seed is not None:
        set_seed(seed)
    train_loader, valid_loader = training_loaders(data, seed=seed)
    if optimizer is None:
        optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    offset = [0]
    before, after = _shifted(before_step, offset), _shifted(after_step, offset)
    history, best_state, best_accuracy = History(), None, -1.0
    for epoch in range(1, epochs + 1):
        record = train_model(
            model,
            train_loader,
            valid_loader,
            epochs=1,
            optimizer=optimizer,
            clip=clip,
            before_step=before,
            after_step=after,
            loss_fn=loss_fn,
            progress=progress,
            desc=f"{desc} {epoch}/{epochs}",
        )
        offset[0] += len(train_loader)
        history.epoch.append(epoch)
        history.train_loss += record.train_loss
        history.valid_loss += record.valid_loss
        history.valid_accuracy += record.valid_accuracy
        history.seconds += record.seconds
        if epoch >= best_from_epoch and record.valid_accuracy[-1] > best_accuracy:
            best_accuracy, history.best_epoch = record.valid_accuracy[-1], epoch
            best_state = copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    return history


__all__ = ["finetune", "training_loaders"]
