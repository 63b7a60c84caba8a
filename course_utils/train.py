"""Training and evaluation of the course's classifiers.

Introduced in chapter 1; the pruning chapters pass hooks (``before_step``,
``after_step``) to keep masks, accumulate scores or take proximal steps. What they train
on is a :class:`TrainingData` (chapter 1's ``Baseline``) or a :class:`LoaderPair`;
:func:`first_batches` keeps only the first training batches of one, for quick checks.
"""

from __future__ import annotations

import copy
import itertools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol, runtime_checkable

import torch
from torch import nn
from tqdm.auto import tqdm

from .checks import integer, positive_int
from .masking import keep_masks
from .measure import model_device
from .seeding import keeps_global_rng
from .settings import show_progress

__all__ = [
    "FirstBatches",
    "History",
    "LoaderPair",
    "StepHook",
    "TrainingData",
    "check_batch",
    "check_logits",
    "confusion_matrix",
    "evaluate",
    "first_batches",
    "model_device",
    "nonempty_batches",
    "num_classes_of",
    "predict",
    "train_model",
]


@dataclass
class History:
    """Per-epoch training record, for plots."""

    epoch: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    valid_loss: list[float] = field(default_factory=list)
    valid_accuracy: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    best_epoch: int | None = None
    stopped_early: bool = False

    def as_dict(self) -> dict:
        return {k: copy.copy(v) for k, v in self.__dict__.items()}

    @property
    def best_valid_accuracy(self) -> float:
        return max(self.valid_accuracy) if self.valid_accuracy else float("nan")


def _check_labels(labels: torch.Tensor, num_classes: int | None) -> None:
    if labels.dtype != torch.long:
        raise TypeError(f"labels must have dtype torch.int64, got {labels.dtype}")
    if num_classes is None or not labels.numel():
        return
    if int(labels.min()) < 0 or int(labels.max()) >= num_classes:
        raise ValueError(
            f"labels must lie in [0, {num_classes}), "
            f"got min {int(labels.min())}, max {int(labels.max())}"
        )


def num_classes_of(model: nn.Module) -> int | None:
    """How many classes ``model.classifier`` predicts (None for a model without one)."""
    classifier = getattr(model, "classifier", None)
    return getattr(classifier, "out_features", None)


# --- what a batch and a loader must be (every loop of the package checks here) ----------

_NOTHING = object()


def nonempty_batches(loader, argument: str = "loader"):
    """``loader`` after checking that it yields at least one batch; else a ValueError.

    A loader with a length is checked by ``len`` (an empty split, or ``drop_last=True``
    with fewer examples than a batch, gives 0); one without is asked for its first batch.
    A one-shot iterator (a generator) comes back as an equivalent iterator that still
    yields that first batch. The error names ``argument``.
    """
    try:
        empty = len(loader) == 0
    except TypeError:
        try:
            iterator = iter(loader)
        except TypeError:
            raise TypeError(
                f"{argument} must be a DataLoader or a list of (tokens, lengths, labels) "
                f"batches, got {type(loader).__name__}"
            ) from None
        first = next(iterator, _NOTHING)
        empty = first is _NOTHING
        if not empty and iterator is loader:  # a generator: give the first batch back
            loader = itertools.chain([first], iterator)
    if empty:
        raise ValueError(
            f"{argument} yields no batches (an empty split, or drop_last=True with fewer "
            "examples than one batch): give it at least one batch"
        )
    return loader


def check_batch(
    batch, num_classes: int | None, argument: str = "batch", *, shapes: bool = True
) -> tuple:
    """``batch`` as the triple ``(tokens, lengths, labels)``, or a clear error.

    ``tokens`` is a (batch, time) tensor, ``lengths`` and ``labels`` 1-D tensors of one
    entry per example; labels are int64 class indices in ``[0, num_classes)`` (not
    checked against a range when ``num_classes`` is None). Every loop of the package
    that computes a loss on labels calls it, so a bad batch fails before the loss does.
    With ``shapes=False`` (a custom loss that reads its own inputs) only the triple and
    its labels (when they are a tensor) are checked.
    """
    if not isinstance(batch, tuple | list) or len(batch) != 3:
        size = f"{len(batch)}-" if isinstance(batch, tuple | list) else ""
        raise ValueError(
            f"{argument} must be the triple (tokens, lengths, labels) that the course's "
            f"loaders yield, got a {size}{type(batch).__name__}"
        )
    if not shapes:
        if isinstance(batch[2], torch.Tensor):
            _check_labels(batch[2], num_classes)
        return tuple(batch)
    for name, value in zip(("tokens", "lengths", "labels"), batch, strict=True):
        if not isinstance(value, torch.Tensor):
            raise TypeError(
                f"{argument} must hold tensors (tokens, lengths, labels); its {name} is a "
                f"{type(value).__name__}"
            )
    tokens, lengths, labels = batch
    if tokens.dim() != 2 or lengths.dim() != 1 or labels.dim() != 1:
        raise ValueError(
            f"{argument} must be (tokens (batch, time), lengths (batch,), labels (batch,)), "
            f"got shapes {tuple(tokens.shape)}, {tuple(lengths.shape)}, {tuple(labels.shape)}"
        )
    _check_labels(labels, num_classes)
    return tokens, lengths, labels


def check_logits(logits: torch.Tensor, model: nn.Module) -> None:
    """Raise a FloatingPointError when ``logits`` hold NaN or inf, naming the bad weights."""
    if bool(torch.isfinite(logits).all()):
        return
    bad = [n for n, p in model.named_parameters() if not bool(torch.isfinite(p).all())]
    cause = f"these weights are NaN or infinite: {bad}" if bad else "no weight is NaN or infinite"
    raise FloatingPointError(
        "the model's logits contain NaN or infinite values, so its loss and accuracy would "
        f"mean nothing; {cause}. The weights are probably corrupt (a diverged training run, "
        "a bad checkpoint or an edited tensor): reload or retrain the model"
    )


@torch.no_grad()
def evaluate(model: nn.Module, loader, device: torch.device | None = None) -> dict[str, float]:
    """Mean cross-entropy and accuracy of ``model`` over ``loader``.

    Raises a ValueError for an empty ``loader`` or a bad batch (:func:`check_batch`) and a
    FloatingPointError when the model outputs NaN or inf (:func:`check_logits`).
    """
    device = device or model_device(model)
    loader = nonempty_batches(loader, "loader")
    was_training = model.training
    model.eval()
    total_loss, correct, count = 0.0, 0, 0
    try:
        for batch in loader:
            tokens, lengths, labels = check_batch(batch, num_classes_of(model))
            tokens, labels = tokens.to(device), labels.to(device)
            logits = model(tokens, lengths.to(device))
            check_logits(logits, model)
            total_loss += nn.functional.cross_entropy(logits, labels, reduction="sum").item()
            correct += (logits.argmax(dim=1) == labels).sum().item()
            count += len(labels)
    finally:
        model.train(was_training)
    if count == 0:
        raise ValueError("loader yielded no examples: every batch was empty")
    return {"loss": total_loss / count, "accuracy": correct / count}


@torch.no_grad()
def predict(model: nn.Module, loader) -> tuple[torch.Tensor, torch.Tensor]:
    """Predicted and true labels over ``loader`` (both 1-D LongTensors on the CPU)."""
    device = model_device(model)
    loader = nonempty_batches(loader, "loader")
    was_training = model.training
    model.eval()
    preds, trues = [], []
    try:
        for batch in loader:
            tokens, lengths, labels = check_batch(batch, num_classes_of(model))
            logits = model(tokens.to(device), lengths.to(device))
            check_logits(logits, model)
            preds.append(logits.argmax(dim=1).cpu())
            trues.append(labels)
    finally:
        model.train(was_training)
    return torch.cat(preds), torch.cat(trues)


def confusion_matrix(preds: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Counts ``[true, predicted]`` as a (num_classes, num_classes) LongTensor."""
    _check_labels(labels, num_classes)
    _check_labels(preds, num_classes)
    flat = labels * num_classes + preds
    return torch.bincount(flat, minlength=num_classes**2).reshape(num_classes, num_classes)


StepHook = Callable[[nn.Module, int], None]


def train_model(
    model: nn.Module,
    train_loader,
    valid_loader,
    *,
    epochs: int,
    lr: float = 3e-3,
    weight_decay: float = 0.0,
    optimizer: torch.optim.Optimizer | None = None,
    clip: float | None = 1.0,
    patience: int | None = None,
    before_step: StepHook | None = None,
    after_step: StepHook | None = None,
    loss_fn: Callable[[nn.Module, tuple], torch.Tensor] | None = None,
    best_from_epoch: int = 1,
    progress: bool | None = None,
    desc: str = "train",
) -> History:
    """Train with Adam (or ``optimizer``), keep the best validation state, return a History.

    ``before_step(model, step)`` runs after ``backward`` and before ``optimizer.step``
    (gradient hooks: masks, movement scores); ``after_step(model, step)`` runs after it
    (re-apply masks, proximal updates). ``loss_fn(model, batch)`` replaces the
    cross-entropy. With ``patience``, training stops after that many epochs without a
    better validation accuracy. The model ends in the best epoch's state, chosen among
    epochs ``>= best_from_epoch`` (AGP, chapter 2: only the epochs at the final sparsity;
    earlier epochs count neither as best nor towards ``patience``).
    ``progress=None`` shows a bar unless ``COURSE_PROGRESS=0``.

    A pruned model (chapter 2's ``<param>_mask`` buffers) stays pruned: the masked
    gradients are zeroed before every optimizer step and the masks re-applied after it
    (:func:`course_utils.pruning.keep_masks`), also for masks added during training.
    Empty loaders, batches that are not ``(tokens, lengths, labels)`` and labels out of
    range raise a ValueError before any step.
    """
    epochs = positive_int("epochs", epochs)
    if patience is not None:
        patience = positive_int("patience", patience)
    best_from_epoch = integer(
        "best_from_epoch", best_from_epoch, minimum=1, maximum=epochs, allowed=f"in [1, {epochs=}]"
    )
    train_loader = nonempty_batches(train_loader, "train_loader")
    valid_loader = nonempty_batches(valid_loader, "valid_loader")
    if optimizer is None:
        optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)

    handles = keep_masks(optimizer, model)
    try:
        return _train(
            model,
            train_loader,
            valid_loader,
            epochs=epochs,
            optimizer=optimizer,
            clip=clip,
            patience=patience,
            before_step=before_step,
            after_step=after_step,
            loss_fn=loss_fn,
            best_from_epoch=best_from_epoch,
            progress=progress,
            desc=desc,
        )
    finally:
        for handle in handles:
            handle.remove()


def _train(
    model: nn.Module,
    train_loader,
    valid_loader,
    *,
    epochs: int,
    optimizer: torch.optim.Optimizer,
    clip: float | None,
    patience: int | None,
    before_step: StepHook | None,
    after_step: StepHook | None,
    loss_fn: Callable[[nn.Module, tuple], torch.Tensor] | None,
    best_from_epoch: int,
    progress: bool | None,
    desc: str,
) -> History:
    """The loop of :func:`train_model`, once its arguments are checked and masks kept."""
    device = model_device(model)
    history = History()
    best_state, best_acc, bad_epochs, step = None, -1.0, 0, 0
    bar = tqdm(
        total=epochs * len(train_loader) if hasattr(train_loader, "__len__") else None,
        desc=desc,
        disable=not (show_progress() if progress is None else progress),
        leave=False,
    )
    for epoch in range(1, epochs + 1):
        start, running, seen = time.perf_counter(), 0.0, 0
        model.train()
        for batch in train_loader:
            tokens, lengths, labels = check_batch(batch, num_classes_of(model))
            batch = (tokens.to(device), lengths.to(device), labels.to(device))
            optimizer.zero_grad(set_to_none=True)
            if loss_fn is None:
                loss = nn.functional.cross_entropy(model(batch[0], batch[1]), batch[2])
            else:
                loss = loss_fn(model, batch)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss became {loss.item()} at step {step}; lower lr")
            loss.backward()
            if clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), clip)
            if before_step is not None:
                before_step(model, step)
            optimizer.step()
            step += 1
            if after_step is not None:
                after_step(model, step)
            running += loss.item() * len(labels)
            seen += len(labels)
            bar.update()
        if seen == 0:
            raise ValueError(
                f"train_loader yields no batches in epoch {epoch}: a one-shot iterator (a "
                "generator) is used up after one epoch; pass a DataLoader or a list of batches"
            )
        metrics = evaluate(model, valid_loader)
        history.epoch.append(epoch)
        history.train_loss.append(running / seen)
        history.valid_loss.append(metrics["loss"])
        history.valid_accuracy.append(metrics["accuracy"])
        history.seconds.append(time.perf_counter() - start)
        bar.set_postfix(valid_acc=f"{metrics['accuracy']:.3f}")
        if epoch < best_from_epoch:
            continue
        if metrics["accuracy"] > best_acc:
            best_acc, bad_epochs, history.best_epoch = metrics["accuracy"], 0, epoch
            best_state = copy.deepcopy(model.state_dict())
        else:
            bad_epochs += 1
            if patience is not None and bad_epochs >= patience:
                history.stopped_early = True
                break
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    return history


# --- what the pruning functions train on ------------------------------------------------


@runtime_checkable
class TrainingData(Protocol):
    """Anything with a ``loader(split, ...)`` method, like chapter 1's ``Baseline``.

    ``loader("train", seed=s)`` gives the training batches shuffled with ``s`` and
    ``loader("valid")`` the validation batches; the keywords ``batch_size`` (``None``: its
    own), ``shuffle`` (``None``: only the training split) and ``seed`` (``None``: its own)
    are those of ``Baseline.loader``. Every pruning function that trains takes such an
    object, or a ``(train_loader, valid_loader)`` pair (:class:`LoaderPair`).
    ``isinstance(x, TrainingData)`` checks only that ``x`` has a ``loader`` method.
    """

    def loader(
        self, split: str, batch_size: int | None = None, *, seed: int | None = None, **options
    ) -> Iterable:
        """The batches of ``split``, shuffled with ``seed``; ``options``: ``shuffle``."""


class LoaderPair(NamedTuple):
    """A training loader and a validation loader: the other form of training data.

    A plain ``(train_loader, valid_loader)`` tuple works too; a loader is a DataLoader or
    a list of ``(tokens, lengths, labels)`` batches. Unlike a :class:`TrainingData`, a
    pair has one fixed batch order: every epoch sees the same batches.
    """

    train: Iterable
    valid: Iterable


@dataclass(frozen=True)
class FirstBatches:
    """``data`` whose training loader stops after its first ``count`` batches.

    A :class:`TrainingData` for quick checks, made by :func:`first_batches`. Each call of
    ``loader("train", seed=s)`` takes the first ``count`` batches of
    ``data.loader("train", seed=s)``, so another seed gives other batches; the other
    splits are ``data``'s own. ``batch_size``, ``seed`` and ``options`` are passed on.
    """

    data: TrainingData
    count: int

    @keeps_global_rng
    def loader(
        self, split: str, batch_size: int | None = None, *, seed: int | None = None, **options
    ) -> Iterable:
        loader = self.data.loader(split, batch_size, seed=seed, **options)
        return loader if split != "train" else list(itertools.islice(loader, self.count))


def first_batches(data: TrainingData, count: int | None) -> TrainingData:
    """``data`` with only its first ``count`` training batches per epoch (quick checks).

    ``count=None`` returns ``data`` itself, otherwise a :class:`FirstBatches`. To draw
    the batches once, for one seed, take its loaders:
    ``training_loaders(first_batches(data, 8), seed=0)`` is a :class:`LoaderPair`.
    """
    if count is None:
        return data
    if not isinstance(data, TrainingData):
        raise TypeError(
            "data must have a loader(split, ...) method, like a Baseline, "
            f"got {type(data).__name__}"
        )
    return FirstBatches(data, positive_int("count", count))
