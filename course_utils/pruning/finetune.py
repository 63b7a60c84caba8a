"""Fine-tuning a pruned model with its masks kept.

Introduced in chapter 2; every pruning schedule and chapters 3 and 5 use :func:`finetune`.
It is ``course_utils.train.train_model`` with the course's fine-tuning defaults: pruned
weights stay exactly zero (``train_model`` keeps the masks,
:func:`~course_utils.pruning.keep_masks`), ``before_step`` and ``after_step`` hooks see
the step count of the whole run, a ``loss_fn`` can replace the cross-entropy, and the
best validation state is kept among the epochs you allow (for AGP: only those after the
last pruning step, so the result has the final sparsity).

``data`` is either a :class:`~course_utils.train.TrainingData` such as chapter 1's
``Baseline`` (its train and validation loaders are used) or a pair ``(train_loader,
valid_loader)`` (:class:`~course_utils.train.LoaderPair`).
"""

from __future__ import annotations

from torch import nn

from ..checks import positive_int, positive_number
from ..seeding import keeps_global_rng, set_seed
from ..train import History, LoaderPair, TrainingData, nonempty_batches, train_model


def training_loaders(data: TrainingData | tuple, *, seed: int | None = None) -> LoaderPair:
    """``(train_loader, valid_loader)`` from a :class:`TrainingData` (a Baseline) or a pair.

    ``seed`` shuffles the training loader of a :class:`TrainingData`; a pair is returned
    as it is. Either loader yielding no batches is a ValueError that names it.
    """
    if isinstance(data, TrainingData):
        train, valid = data.loader("train", seed=seed), data.loader("valid")
    elif isinstance(data, tuple | list) and len(data) == 2:
        train, valid = data
    else:
        raise TypeError(
            "data must be a Baseline or a (train_loader, valid_loader) pair, "
            f"got {type(data).__name__}"
        )
    return LoaderPair(
        nonempty_batches(train, "data's training loader"),
        nonempty_batches(valid, "data's validation loader"),
    )


@keeps_global_rng
def finetune(
    model: nn.Module,
    data,
    *,
    epochs: int,
    lr: float = 1e-3,
    seed: int | None = None,
    desc: str = "fine-tune",
    **train_options,
) -> History:
    """Train ``model`` in place with its masks kept; return the History of all epochs.

    This is chapter 1's ``train_model`` on ``data``'s loaders, with a smaller default
    learning rate. Pruned weights stay exactly zero: ``train_model`` masks the
    optimizer's gradients before each step and re-applies the masks after it
    (:func:`keep_masks`), which also covers masks added during training (AGP). ``seed``
    (optional) seeds dropout and the batch order.

    The other keyword arguments go to ``train_model``: ``weight_decay``, ``optimizer``,
    ``clip`` (gradient-norm clipping, 1.0 by default), ``before_step(model, step)`` and
    ``after_step(model, step)`` hooks (the step count runs over the whole run, not per
    epoch), ``loss_fn`` (replaces the cross-entropy), ``best_from_epoch`` (the model
    ends in the state of the best validation accuracy among epochs ``>=
    best_from_epoch``), ``patience`` and ``progress``.
    """
    epochs = positive_int("epochs", epochs)
    lr = positive_number("lr", lr)
    for hook in ("before_step", "after_step"):
        value = train_options.get(hook)
        if value is not None and not callable(value):
            raise TypeError(f"hooks must be callable(model, step), got {value!r}")
    if seed is not None:
        set_seed(seed)
    train_loader, valid_loader = training_loaders(data, seed=seed)
    return train_model(
        model, train_loader, valid_loader, epochs=epochs, lr=lr, desc=desc, **train_options
    )


__all__ = ["finetune", "training_loaders"]
