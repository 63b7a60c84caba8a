"""Checkpoints and caches: one safetensors file per model, safe to load from anyone.

Introduced in chapter 1, where ``get_baseline`` caches the trained baseline; chapter 2's
pruned models keep their masks through it, and chapter 6 shows why loading a file from
someone else never runs code here. ``get_baseline`` and the method zoo build their caches
on :func:`save_cached` / :func:`load_cached`; ``deploy.compress`` checks the configs it
reads with :func:`check_stored_config`. Every file is written whole or not at all, with
:func:`course_utils.files.atomic_write_bytes`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import struct
import warnings
from pathlib import Path

import torch

from .files import atomic_write_bytes
from .models import RNNClassifier, build_model

__all__ = [
    "CHECKPOINT_FORMAT",
    "FILE_LIMITS",
    "MAX_CHECKPOINT_BYTES",
    "MAX_HEADER_BYTES",
    "MAX_PARAMETERS",
    "CheckpointError",
    "check_stored_config",
    "load_cached",
    "load_checkpoint",
    "save_cached",
    "save_checkpoint",
    "weights_digest",
]

# A checkpoint is one safetensors file: an 8-byte header length, a JSON header that
# declares each tensor's dtype, shape and byte range, then the raw bytes. Nothing in it
# is unpickled, so loading one never runs code. The header's string metadata holds the
# format marker, the model's config and the caller's ``extra`` (both as JSON) and a
# SHA-256 over all of it, so one file, replaced atomically, is a whole cache entry. A
# config read from a file is checked against FILE_LIMITS and against the stored shapes
# before any tensor is allocated.

CHECKPOINT_FORMAT = "course_utils.checkpoint/v2"
FILE_LIMITS = {
    "vocab_size": 1_000_000,
    "num_classes": 10_000,
    "embed_dim": 4096,
    "hidden_size": 4096,
    "num_layers": 8,
    "max_len": 1_000_000,
}
"""The largest value of each size that the course accepts in a model config read from a
file (a checkpoint, a cache entry, a compressed model); the course's models are far below."""
MAX_PARAMETERS = 50_000_000
"""The most parameters a model read from a file may have (200 MB as float32)."""
MAX_HEADER_BYTES = 64 << 20
MAX_CHECKPOINT_BYTES = 5 * MAX_PARAMETERS + MAX_HEADER_BYTES + 8  # float32 weights, bool masks
_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "BOOL": 1}
_PICKLE_STARTS = (b"PK\x03\x04", b"\x80")  # torch.save's zip archive; pickle protocol >= 2


def weights_digest(model: torch.nn.Module) -> str:
    """SHA-256 of a model's parameters and buffers, by name: a retrained model is another key."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


class CheckpointError(ValueError):
    """A file that is not a readable course checkpoint, or one for another model."""


def check_stored_config(config) -> dict[str, tuple[int, ...]]:
    """Parameter shapes of the model that ``config`` (read from a file) describes.

    Checked before anything is allocated: every size in :data:`FILE_LIMITS` is within its
    limit, :class:`RNNClassifier` accepts the config (built on the meta device, which
    holds no numbers) and the model has at most :data:`MAX_PARAMETERS` parameters.
    Raises TypeError or ValueError naming the field, its value and the limit.
    """
    if not isinstance(config, dict):
        raise TypeError(f"the model config must be a dict, got {type(config).__name__}")
    for name, limit in FILE_LIMITS.items():
        value = config.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > limit:
            raise ValueError(
                f"{name}={value} is more than the course reads from a file: at most "
                f"{limit} (course_utils.checkpoints.FILE_LIMITS)"
            )
    with torch.device("meta"):
        skeleton = build_model(config)
    count = sum(p.numel() for p in skeleton.parameters())
    if count > MAX_PARAMETERS:
        raise ValueError(
            f"the config describes a model of {count:,} parameters, more than the course "
            f"reads from a file: at most {MAX_PARAMETERS:,} "
            "(course_utils.checkpoints.MAX_PARAMETERS)"
        )
    return {name: tuple(p.shape) for name, p in skeleton.named_parameters()}


def _check_json(value, where: str) -> None:
    """Raise a TypeError unless ``value`` reads back from JSON as it is."""
    if value is None or isinstance(value, bool | int | float | str):
        return
    if isinstance(value, list):
        for i, item in enumerate(value):
            _check_json(item, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{where} has the key {key!r}; JSON keys must be str")
            _check_json(item, f"{where}[{key!r}]")
        return
    raise TypeError(
        f"{where} is a {type(value).__name__}; checkpoint extras must be JSON data: "
        "dicts with str keys, lists, str, int, float, bool or None"
    )


def _read_header(data: bytes) -> tuple[dict, memoryview]:
    """The safetensors header of ``data`` and the tensor bytes after it (ValueError if bad)."""
    if len(data) < 8:
        raise ValueError(f"{len(data)} bytes, too few for a safetensors header")
    (size,) = struct.unpack("<Q", data[:8])
    if size > MAX_HEADER_BYTES:
        raise ValueError(f"a header of {size} bytes, more than {MAX_HEADER_BYTES}")
    if 8 + size > len(data):
        raise ValueError(f"truncated: the header needs {size} bytes, {len(data) - 8} follow")
    try:
        header = json.loads(data[8 : 8 + size])
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"the header is not JSON ({err})") from None
    if not isinstance(header, dict):
        raise ValueError("the header is not a JSON object")
    return header, memoryview(data)[8 + size :]


def _tensor_specs(header: dict, body_bytes: int) -> dict[str, tuple[str, tuple[int, ...]]]:
    """``{name: (dtype, shape)}`` once every declared shape fits its bytes (ValueError if not)."""
    specs, spans = {}, []
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (start, stop) = spec["dtype"], spec["shape"], spec["data_offsets"]
        except (TypeError, KeyError, ValueError):
            raise ValueError(f"tensor {name!r}: the header entry is malformed") from None
        numbers = [*shape, start, stop] if isinstance(shape, list) else [None]
        if dtype not in _DTYPE_BYTES or not all(
            isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in numbers
        ):
            raise ValueError(f"tensor {name!r}: bad dtype, shape or offsets in the header")
        nbytes = math.prod(shape) * _DTYPE_BYTES[dtype]
        if stop - start != nbytes:
            raise ValueError(
                f"tensor {name!r}: the header declares shape {shape} of {dtype} "
                f"({nbytes} bytes) but gives it {stop - start} bytes"
            )
        specs[name] = (dtype, tuple(shape))
        spans.append((start, stop, name))
    position = 0
    for start, stop, name in sorted(spans):
        if start != position:
            raise ValueError(f"tensor {name!r}: its bytes start at {start}, not at {position}")
        position = stop
    if position != body_bytes:
        raise ValueError(f"the header accounts for {position} bytes of tensors, not {body_bytes}")
    return specs


def _digest(header: dict, body: memoryview) -> str:
    """SHA-256 of the header (its JSON, less the digest itself) and of the tensor bytes."""
    meta = {k: v for k, v in header.get("__metadata__", {}).items() if k != "sha256"}
    blob = json.dumps({**header, "__metadata__": meta}, sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(blob.encode())
    digest.update(b"\x00")
    digest.update(body)
    return digest.hexdigest()


def save_checkpoint(path: str | os.PathLike, model: RNNClassifier, **extra) -> None:
    """Save architecture, weights and JSON data ``extra`` (vocab, metrics) atomically.

    One safetensors file (see the comment above); ``extra`` must be JSON data (dicts with
    str keys, lists, str, int, float, bool, None), which :func:`load_checkpoint` returns
    as it was.
    """
    from safetensors.torch import save

    if not isinstance(model, RNNClassifier):
        raise TypeError(f"model must be an RNNClassifier, got {type(model).__name__}")
    _check_json(extra, "extra")
    tensors = {
        n: t.detach().to("cpu", copy=True).contiguous() for n, t in model.state_dict().items()
    }
    metadata = {
        "format": CHECKPOINT_FORMAT,
        "config": json.dumps(model.config(), sort_keys=True),
        "extra": json.dumps(extra, sort_keys=True),
    }
    metadata["sha256"] = _digest(*_read_header(save(tensors, metadata=metadata)))
    atomic_write_bytes(path, save(tensors, metadata=metadata))


def _check_shapes(specs: dict, shapes: dict, where: str) -> None:
    """The stored tensors are the config's parameters (and their masks), shape for shape."""
    from .masking import MASK_SUFFIX

    owner = {name: name for name in shapes}
    owner.update({name + MASK_SUFFIX: name for name in shapes})
    missing = sorted(set(shapes) - set(specs))
    unexpected = sorted(set(specs) - set(owner))
    if missing or unexpected:
        raise CheckpointError(
            f"{where} does not hold the tensors of the model its config describes "
            f"(missing {missing}, unexpected {unexpected})"
        )
    for name, (_, shape) in specs.items():
        if shape != shapes[owner[name]]:
            raise CheckpointError(
                f"{where}: tensor {name!r} has shape {list(shape)}, but the model its "
                f"config describes needs {list(shapes[owner[name]])}"
            )


def load_checkpoint(
    path: str | os.PathLike, model: RNNClassifier | None = None
) -> tuple[RNNClassifier, dict]:
    """Load a checkpoint made by :func:`save_checkpoint`; returns ``(model, extra)``.

    Safe for files from anyone: nothing is unpickled (safetensors), and the file is
    refused with :class:`CheckpointError`, before any tensor is allocated, when its
    checksum does not match, its header's shapes do not fit its bytes or its config,
    or its config exceeds :data:`FILE_LIMITS` / :data:`MAX_PARAMETERS`. With ``model``
    given, its architecture must match. Mask buffers of a pruned model (chapter 2) are
    recreated, so a pruned model loads as saved.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load

    from .masking import register_masks_from_state_dict  # a pruned model's masks

    path = Path(path)
    where = f"path={str(path)!r}"
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {where}")
    if path.stat().st_size > MAX_CHECKPOINT_BYTES:
        raise CheckpointError(
            f"{where} holds {path.stat().st_size:,} bytes, more than a course checkpoint "
            f"may ({MAX_CHECKPOINT_BYTES:,}; course_utils.checkpoints.MAX_PARAMETERS)"
        )
    data = path.read_bytes()
    if data.startswith(_PICKLE_STARTS):
        raise CheckpointError(
            f"{where} is not a readable course checkpoint (the format marker "
            f"{CHECKPOINT_FORMAT!r} is missing: this is a torch.save or pickle file, which "
            "course_utils never unpickles, since unpickling can run code)"
        )
    try:
        header, body = _read_header(data)
        specs = _tensor_specs(header, len(body))
    except ValueError as err:
        raise CheckpointError(f"{where} is not a readable course checkpoint ({err})") from None
    meta = header.get("__metadata__")
    if not isinstance(meta, dict) or meta.get("format") != CHECKPOINT_FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise CheckpointError(
            f"{where} is not a course checkpoint (format marker {CHECKPOINT_FORMAT!r} "
            f"missing; the file says {found!r})"
        )
    if meta.get("sha256") != _digest(header, body):
        raise CheckpointError(f"{where} is corrupt: its checksum does not match its contents")
    try:
        config, extra = json.loads(meta["config"]), json.loads(meta["extra"])
        if not isinstance(extra, dict):
            raise TypeError("extra is not a JSON object")
        shapes = check_stored_config(config)
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{where} holds a model config the course refuses: {err}") from None
    _check_shapes(specs, shapes, where)
    if model is not None and model.config() != config:
        diff = {k: (config.get(k), v) for k, v in model.config().items() if config.get(k) != v}
        raise CheckpointError(f"checkpoint architecture differs from model: {diff} (file, model)")
    try:
        state = load(data)
    except SafetensorError as err:
        raise CheckpointError(f"{where} is not a readable course checkpoint ({err})") from None
    model = build_model(config) if model is None else model
    try:
        register_masks_from_state_dict(model, state)
        model.load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(f"weights in {where} do not fit the model: {err}") from None
    return model, extra


# --- caches (get_baseline, the zoo) -----------------------------------------------


def _legacy_files(path: Path) -> list[Path]:
    """The files of the cache format before safetensors for the same entry."""
    return [p for p in (path.with_suffix(".pt"), path.with_suffix(".sha256")) if p != path]


def save_cached(path: str | os.PathLike, model: RNNClassifier, *, what: str, **extra) -> bool:
    """Write a cache entry (:func:`save_checkpoint`: one file, its checksum inside).

    Returns True once written. A cache that cannot be written (a read-only or full disk,
    a folder of another user) costs one warning that names ``what`` cache, never the
    model: False is returned and the caller keeps what it trained. Files of the older
    pickle-based format for the same entry (``.pt``, ``.sha256``) are removed.
    """
    path = Path(path)
    try:
        save_checkpoint(path, model, **extra)
    except OSError as err:
        # the same text for every entry of a folder: Python shows it once per call site
        warnings.warn(
            f"{what} cache folder {path.parent} cannot be written ({type(err).__name__}: "
            f"{err.strerror or err}). The model is trained and returned but not cached, so "
            "the next call trains it again; set COURSE_CACHE to a folder you can write to.",
            stacklevel=3,
        )
        return False
    for old in _legacy_files(path):
        try:
            old.unlink(missing_ok=True)
        except OSError:
            pass
    return True


def load_cached(
    path: str | os.PathLike, key: str, *, what: str, stale: str
) -> tuple[RNNClassifier, dict] | None:
    """The entry :func:`save_cached` wrote, if the file is whole and was saved with ``key``.

    Otherwise ``None``, with a warning that names ``what`` cache it is and why it is not
    used (``stale`` says what a different key means) so that the caller rebuilds it: a
    corrupt, unreadable or refused file, or one of the older pickle-based format.
    """
    path = Path(path)
    shown = path
    try:
        if path.is_file():
            model, extra = load_checkpoint(path)
            if extra.get("key") == key:
                return model, extra
            problem = f"it was made {stale} (stale)"
        else:
            old = _legacy_files(path)[0]
            if old == path or not old.is_file():
                return None
            shown, problem = old, "it is in the pickle-based format of older versions (stale)"
    except FileNotFoundError:  # removed since is_file()
        return None
    except (CheckpointError, OSError) as err:
        problem = f"it cannot be read ({type(err).__name__}: {err})"
    warnings.warn(f"{what} cache {shown} is not usable: {problem}. Rebuilding it.", stacklevel=3)
    return None
