"""Shipping a pruned model: torch.export, dynamic int8 quantization, output checks.

Introduced in chapter 6.

- :class:`InferenceClassifier` runs an RNNClassifier without its input checks (they read
  tensor values, which an exported graph cannot do) on inputs padded to a fixed length.
- :func:`export_classifier` traces it with ``torch.export`` (the successor of
  TorchScript): the batch size stays dynamic; the number of time steps is fixed, because
  ``torch.export`` unrolls the LSTM's shape logic over time. :func:`save_exported` and
  :func:`load_exported` write and read the ``.pt2`` file.
- :func:`quantize_int8` applies PyTorch's dynamic int8 quantization to the LSTM and
  Linear layers (int8 weights, activations quantized on the fly).
- :func:`compare_outputs` checks two models (or a model and an export) on the same data.
"""

from __future__ import annotations

import copy
import io
import os
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from torch import nn

from .models import RNNClassifier
from .train import atomic_write_bytes


class ExportError(ValueError):
    """A model that cannot be exported, or a file that is not a readable export."""


def _check_exportable(model) -> RNNClassifier:
    if not isinstance(model, RNNClassifier):
        raise TypeError(f"model must be an RNNClassifier, got {type(model).__name__}")
    if model.rnn.bidirectional:
        raise ExportError(
            "bidirectional models cannot be exported: they pack each batch by its lengths "
            "(pack_padded_sequence), a shape that depends on the data, which torch.export "
            "cannot trace. Export a unidirectional model, or serve this one with eager PyTorch."
        )
    return model


def pad_to(tokens: torch.Tensor, seq_len: int, pad_index: int = 0) -> torch.Tensor:
    """Right-pad (batch, time) token ids to (batch, seq_len); longer inputs are an error."""
    if tokens.dim() != 2:
        raise ValueError(f"tokens must have shape (batch, time), got {tuple(tokens.shape)}")
    if tokens.shape[1] > seq_len:
        raise ValueError(
            f"tokens has {tokens.shape[1]} time steps, more than seq_len={seq_len}; truncate "
            "the texts first (course_utils.robustness.predict_texts does)"
        )
    return nn.functional.pad(tokens, (0, seq_len - tokens.shape[1]), value=pad_index)


class InferenceClassifier(nn.Module):
    """A unidirectional RNNClassifier for inference on inputs padded to ``seq_len`` steps.

    ``forward(tokens, lengths)``: ``tokens`` (batch, seq_len) int64, right-padded,
    ``lengths`` (batch,) int64 -> logits (batch, num_classes), equal to ``model(tokens,
    lengths)``: a left-to-right RNN never sees the padding that follows a real step, and
    pooling skips padded steps. No input checks: validate inputs before (e.g. with
    ``model.check_inputs``); dropout is off.
    """

    def __init__(self, model: RNNClassifier, seq_len: int | None = None):
        super().__init__()
        model = _check_exportable(model)
        seq_len = model.max_len if seq_len is None else seq_len
        if isinstance(seq_len, bool) or not isinstance(seq_len, int) or seq_len < 1:
            raise ValueError(
                f"seq_len must be a positive int (or the model's max_len), got {seq_len!r}"
            )
        if model.max_len is not None and seq_len > model.max_len:
            raise ValueError(f"seq_len={seq_len} exceeds the model's max_len={model.max_len}")
        self.model = copy.deepcopy(model).eval()
        self.seq_len = seq_len

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        out, mask = self.model.run_rnn(tokens, lengths)
        return self.model.classifier(self.model.pool(out, mask, lengths))


def export_classifier(
    model: RNNClassifier, seq_len: int | None = None, *, example_batch: int = 2
) -> torch.export.ExportedProgram:
    """``torch.export`` a unidirectional RNNClassifier: dynamic batch, ``seq_len`` time steps.

    ``seq_len`` defaults to the model's ``max_len``; pad shorter inputs with
    :func:`pad_to`. Raises :class:`ExportError` for bidirectional models.
    """
    wrapper = InferenceClassifier(model, seq_len)
    if isinstance(example_batch, bool) or not isinstance(example_batch, int) or example_batch < 2:
        raise ValueError(f"example_batch must be an int >= 2, got {example_batch!r}")
    device = next(model.parameters()).device
    steps = wrapper.seq_len
    tokens = torch.ones(example_batch, steps, dtype=torch.long, device=device)
    lengths = torch.full((example_batch,), steps, dtype=torch.long, device=device)
    lengths[-1] = max(1, steps // 2)  # an example with padding
    batch = torch.export.Dim("batch", min=1)
    with warnings.catch_warnings():
        # nn.LSTM reassigns its flat weights while traced; torch warns, the graph is right
        warnings.filterwarnings("ignore", message=r"The tensor attributes .*_flat_weights")
        return torch.export.export(
            wrapper,
            (tokens, lengths),
            dynamic_shapes={"tokens": {0: batch}, "lengths": {0: batch}},
        )


def exported_seq_len(exported: torch.export.ExportedProgram) -> int:
    """The fixed number of time steps an exported classifier expects."""
    spec = next(n for n in exported.graph.nodes if n.op == "placeholder" and "tokens" in n.name)
    return int(spec.meta["val"].shape[1])


def save_exported(path: str | os.PathLike, exported: torch.export.ExportedProgram) -> int:
    """Write an exported program to ``path`` (a ``.pt2`` file) atomically; return its bytes."""
    if not isinstance(exported, torch.export.ExportedProgram):
        raise TypeError(f"exported must be a torch.export.ExportedProgram, got {type(exported)}")
    buffer = io.BytesIO()
    torch.export.save(exported, buffer)
    atomic_write_bytes(path, buffer.getvalue())
    return len(buffer.getvalue())


def load_exported(path: str | os.PathLike) -> torch.export.ExportedProgram:
    """Read a ``.pt2`` file written by :func:`save_exported`.

    The file holds a graph of PyTorch operators and the weights, not Python code;
    anything else raises :class:`ExportError`.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no exported model at path={str(path)!r}")
    try:
        return torch.export.load(path)
    except Exception as err:  # torch raises several types for files that are not .pt2
        first = (str(err).splitlines() or [""])[0][:200]
        raise ExportError(
            f"path={str(path)!r} is not a readable torch.export file ({type(err).__name__}: "
            f"{first})"
        ) from None


# --- dynamic int8 quantization --------------------------------------------------------------


def quantize_int8(model: RNNClassifier) -> nn.Module:
    """A copy of ``model`` with int8 dynamic quantization of its LSTM/GRU and Linear layers.

    Weights become int8 (one scale per tensor); activations are quantized on the fly at
    each call. The embedding stays float32. CPU only. Uses
    ``torch.ao.quantization.quantize_dynamic``: torch deprecates it in favour of torchao,
    whose ``quantize_`` does not handle ``nn.LSTM``.
    """
    if not isinstance(model, RNNClassifier):
        raise TypeError(f"model must be an RNNClassifier, got {type(model).__name__}")
    if next(model.parameters()).device.type != "cpu":
        raise ValueError("dynamic int8 quantization runs on the CPU: move the model with .cpu()")
    quantization = getattr(getattr(torch, "ao", None), "quantization", None)
    quantize_dynamic = getattr(quantization, "quantize_dynamic", None)
    if quantize_dynamic is None:
        raise RuntimeError(
            f"torch {torch.__version__} no longer has torch.ao.quantization.quantize_dynamic; "
            "the int8 part of chapter 6 needs torch <= 2.13 or a port to its successor"
        )
    layers = {nn.Linear, nn.LSTM, nn.GRU}
    with warnings.catch_warnings():
        # only the deprecation notices of torch.ao.quantization itself are silenced here
        warnings.filterwarnings("ignore", message=r"torch\.ao\.quantization is deprecated")
        warnings.filterwarnings("ignore", message=r"torch\.quantize_per_tensor.* are deprecated")
        quantized = quantize_dynamic(copy.deepcopy(model).eval(), layers, dtype=torch.qint8)
    return quantized


# --- checking outputs ------------------------------------------------------------------------


@torch.no_grad()
def compare_outputs(
    reference: Callable,
    candidate: Callable,
    batches: Iterable,
    *,
    seq_len: int | None = None,
) -> dict[str, float]:
    """Run both on every ``(tokens, lengths, ...)`` batch and compare the logits.

    With ``seq_len``, tokens are padded to it first (for exported models). Returns
    ``max_abs_diff`` (largest logit difference), ``label_agreement`` (fraction of equal
    argmax), ``identical`` (1.0 when every logit is bit-equal), ``examples``,
    ``flipped`` (examples whose label changed) and ``largest_flipped_margin`` (the
    largest gap between the reference's two top logits among them: a flip with a gap
    below about twice ``max_abs_diff`` is a near tie, not a real change).
    """
    for m in (reference, candidate):
        if isinstance(m, nn.Module):
            try:
                m.eval()
            except NotImplementedError:  # an exported module is always in inference mode
                pass
    largest, agree, count, identical, flipped_margin = 0.0, 0, 0, True, 0.0
    for batch in batches:
        tokens, lengths = batch[0], batch[1]
        a = reference(tokens, lengths)
        b = candidate(pad_to(tokens, seq_len) if seq_len else tokens, lengths)
        if a.shape != b.shape:
            raise ValueError(f"outputs differ in shape: {tuple(a.shape)} and {tuple(b.shape)}")
        largest = max(largest, float((a.float() - b.float()).abs().max()))
        identical = identical and torch.equal(a, b)
        same = a.argmax(1) == b.argmax(1)
        agree += int(same.sum())
        count += len(tokens)
        if not bool(same.all()) and a.shape[1] > 1:
            top = a[~same].float().topk(2, dim=1).values
            flipped_margin = max(flipped_margin, float((top[:, 0] - top[:, 1]).max()))
    if count == 0:
        raise ValueError("batches yielded no examples")
    return {
        "max_abs_diff": largest,
        "label_agreement": agree / count,
        "identical": float(identical),
        "examples": count,
        "flipped": count - agree,
        "largest_flipped_margin": flipped_margin,
    }


__all__ = [
    "ExportError",
    "InferenceClassifier",
    "compare_outputs",
    "export_classifier",
    "exported_seq_len",
    "load_exported",
    "pad_to",
    "quantize_int8",
    "save_exported",
]
