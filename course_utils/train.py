"""Training, evaluation and checkpoints for the course's classifiers.

Introduced in chapter 1; the pruning chapters pass hooks (``before_step``,
``after_step``) to keep masks, accumulate scores or take proximal steps.
"""

from __future__ import annotations

import copy
import hashlib
import os
import random
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .models import RNNClassifier, build_model
from .settings import show_progress

CHECKPOINT_FORMAT = "course_utils.checkpoint/v1"


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and PyTorch; CPU results are then identical on rerun."""
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


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


def _check_labels(labels: torch.Tensor, num_classes: int) -> None:
    if labels.dtype != torch.long:
        raise TypeError(f"labels must have dtype torch.int64, got {labels.dtype}")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(
            f"labels must lie in [0, {num_classes}), "
            f"got min {int(labels.min())}, max {int(labels.max())}"
        )


def _num_classes(model: nn.Module) -> int:
    return model.classifier.out_features


@torch.no_grad()
def evaluate(model: nn.Module, loader, device: torch.device | None = None) -> dict[str, float]:
    """Mean cross-entropy and accuracy of ``model`` over ``loader``."""
    device = device or model_device(model)
    was_training = model.training
    model.eval()
    total_loss, correct, count = 0.0, 0, 0
    for tokens, lengths, labels in loader:
        _check_labels(labels, _num_classes(model))
        tokens, labels = tokens.to(device), labels.to(device)
        logits = model(tokens, lengths.to(device))
        total_loss += nn.functional.cross_entropy(logits, labels, reduction="sum").item()
        correct += (logits.argmax(dim=1) == labels).sum().item()
        count += len(labels)
    model.train(was_training)
    if count == 0:
        raise ValueError("loader yielded no examples")
    return {"loss": total_loss / count, "accuracy": correct / count}


@torch.no_grad()
def predict(model: nn.Module, loader) -> tuple[torch.Tensor, torch.Tensor]:
    """Predicted and true labels over ``loader`` (both 1-D LongTensors on the CPU)."""
    device = model_device(model)
    was_training = model.training
    model.eval()
    preds, trues = [], []
    for tokens, lengths, labels in loader:
        preds.append(model(tokens.to(device), lengths.to(device)).argmax(dim=1).cpu())
        trues.append(labels)
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
    progress: bool | None = None,
    desc: str = "train",
) -> History:
    """Train with Adam (or ``optimizer``), keep the best validation state, return a History.

    ``before_step(model, step)`` runs after ``backward`` and before ``optimizer.step``
    (gradient hooks: masks, movement scores); ``after_step(model, step)`` runs after it
    (re-apply masks, proximal updates). ``loss_fn(model, batch)`` replaces the
    cross-entropy. With ``patience``, training stops after that many epochs without a
    better validation accuracy. The model ends in the best epoch's state.
    ``progress=None`` shows a bar unless ``COURSE_PROGRESS=0``.
    """
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    if patience is not None and patience < 1:
        raise ValueError(f"patience must be >= 1 or None, got {patience}")
    device = model_device(model)
    if optimizer is None:
        optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    history = History()
    best_state, best_acc, bad_epochs, step = None, -1.0, 0, 0
    bar = tqdm(
        total=epochs * len(train_loader),
        desc=desc,
        disable=not (show_progress() if progress is None else progress),
        leave=False,
    )
    for epoch in range(1, epochs + 1):
        start, running, seen = time.perf_counter(), 0.0, 0
        model.train()
        for batch in train_loader:
            tokens, lengths, labels = batch
            _check_labels(labels, _num_classes(model))
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
        metrics = evaluate(model, valid_loader)
        history.epoch.append(epoch)
        history.train_loss.append(running / seen)
        history.valid_loss.append(metrics["loss"])
        history.valid_accuracy.append(metrics["accuracy"])
        history.seconds.append(time.perf_counter() - start)
        bar.set_postfix(valid_acc=f"{metrics['accuracy']:.3f}")
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


# --- checkpoints ------------------------------------------------------------------


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_checkpoint(path: str | os.PathLike, model: RNNClassifier, **extra) -> None:
    """Save architecture, weights and plain-data ``extra`` (vocab, metrics) atomically."""
    import io

    payload = {
        "format": CHECKPOINT_FORMAT,
        "config": model.config(),
        "state_dict": model.state_dict(),
        "extra": extra,
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write_bytes(path, buffer.getvalue())


class CheckpointError(ValueError):
    """A file that is not a readable course checkpoint, or one for another model."""


def load_checkpoint(
    path: str | os.PathLike, model: RNNClassifier | None = None
) -> tuple[RNNClassifier, dict]:
    """Load a checkpoint made by :func:`save_checkpoint` (``weights_only=True``: no code runs).

    Returns ``(model, extra)``. With ``model`` given, its architecture must match. Mask
    buffers of a pruned model (chapter 2) are recreated, so a pruned model loads as saved.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at path={str(path)!r}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(
            f"path={str(path)!r} is not a readable course checkpoint ({type(err).__name__}: "
            f"{(str(err).splitlines() or [''])[0][:200]})"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"path={str(path)!r} is not a course checkpoint (format marker missing)"
        )
    config = payload["config"]
    if model is None:
        model = build_model(config)
    elif model.config() != config:
        diff = {k: (config.get(k), v) for k, v in model.config().items() if config.get(k) != v}
        raise CheckpointError(f"checkpoint architecture differs from model: {diff} (file, model)")
    from .pruning.masks import register_masks_from_state_dict  # a pruned model's mask buffers

    try:
        register_masks_from_state_dict(model, payload["state_dict"])
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as err:
        raise CheckpointError(
            f"weights in path={str(path)!r} do not fit the model: {err}"
        ) from None
    return model, payload.get("extra", {})


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save_cached(path: str | os.PathLike, model: RNNClassifier, **extra) -> None:
    """A cache entry: :func:`save_checkpoint`, then its SHA-256 in ``<path>.sha256``.

    The digest is written last, so an interrupted write leaves no entry that looks whole.
    """
    path = Path(path)
    save_checkpoint(path, model, **extra)
    atomic_write_bytes(path.with_suffix(".sha256"), _file_digest(path).encode())


def load_cached(
    path: str | os.PathLike, key: str, *, what: str, stale: str
) -> tuple[RNNClassifier, dict] | None:
    """The entry :func:`save_cached` wrote, if the file is whole and was saved with ``key``.

    Otherwise ``None``, with a warning that names ``what`` cache it is and why it is not
    used (``stale`` says what a different key means) so that the caller rebuilds it.
    """
    path = Path(path)
    if not path.exists():
        return None
    digest = path.with_suffix(".sha256")
    if not digest.exists() or digest.read_text().strip() != _file_digest(path):
        problem = "its checksum does not match (corrupt or half-written)"
    else:
        try:
            model, extra = load_checkpoint(path)
            if extra.get("key") == key:
                return model, extra
            problem = f"it was made {stale} (stale)"
        except (CheckpointError, KeyError, TypeError) as err:
            problem = f"it cannot be read ({err})"
    warnings.warn(f"{what} cache {path} is not usable: {problem}. Rebuilding it.", stacklevel=3)
    return None
