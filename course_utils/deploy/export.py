"""Shipping a pruned model: torch.export, dynamic int8 quantization, output checks.

Introduced in chapter 6.

- :class:`InferenceClassifier` runs an RNNClassifier on inputs padded to a fixed length,
  with input checks an exported graph can keep (no Python reads of tensor values).
- :func:`export_classifier` traces it with ``torch.export`` (the successor of
  TorchScript): the batch size stays dynamic; the number of time steps is fixed, because
  ``torch.export`` unrolls the LSTM's shape logic over time. :func:`save_exported` and
  :func:`load_exported` write and read the ``.pt2`` file; :func:`exported_module` is
  the callable module, with clear errors for inputs of the wrong shape.
- :func:`quantize_int8` applies PyTorch's dynamic int8 quantization to the LSTM and
  Linear layers (int8 weights, activations quantized on the fly).
- :func:`compare_outputs` checks two models (or a model and an export) on the same data.

What is safe to load: :func:`load_exported` reads only plain exported programs (a graph
of ``torch.ops.aten`` operators and raw weights) and refuses, before torch reads the
file, every archive entry torch would unpickle, compiled code (AOTInductor), and graph
expressions or guards that are not plain shape arithmetic (torch evaluates them as
Python). A ``.pt2`` file from an unknown source is otherwise as unsafe as a pickle.
"""

from __future__ import annotations

import copy
import io
import json
import os
import re
import warnings
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from torch import nn

from ..files import atomic_write_bytes
from ..models import RNNClassifier

__all__ = [
    "ExportError",
    "InferenceClassifier",
    "MAX_EXPORT_BYTES",
    "check_exportable",
    "check_padded_inputs",
    "compare_outputs",
    "export_classifier",
    "exported_module",
    "exported_seq_len",
    "load_exported",
    "pad_to",
    "quantize_int8",
    "save_exported",
]


class ExportError(ValueError):
    """A model that cannot be exported, or a file that is not a readable export."""


def check_exportable(model) -> RNNClassifier:
    """``model`` if it is a unidirectional RNNClassifier; a clear error otherwise."""
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
            "the texts first (course_utils.deploy.robustness.predict_texts does)"
        )
    return nn.functional.pad(tokens, (0, seq_len - tokens.shape[1]), value=pad_index)


def check_padded_inputs(
    tokens: torch.Tensor, lengths: torch.Tensor, seq_len: int, vocab_size: int
) -> None:
    """Raise a TypeError/ValueError naming the argument for inputs an export cannot read.

    ``tokens`` must be (batch, seq_len) int64 token ids in [0, vocab_size) (pad shorter
    inputs with :func:`pad_to`), ``lengths`` (batch,) int64 in [1, seq_len].
    """
    for name, value in (("tokens", tokens), ("lengths", lengths)):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
        if value.dtype != torch.long:
            raise TypeError(f"{name} must have dtype torch.int64, got {value.dtype}")
    if tokens.dim() != 2 or tokens.shape[0] < 1 or tokens.shape[1] != seq_len:
        raise ValueError(
            f"tokens must have shape (batch, seq_len={seq_len}), got {tuple(tokens.shape)}: "
            f"the export takes exactly {seq_len} time steps; pad shorter inputs with "
            f"deploy.pad_to(tokens, {seq_len})"
        )
    if lengths.shape != (tokens.shape[0],):
        raise ValueError(
            f"lengths must have shape ({tokens.shape[0]},) to match tokens, "
            f"got {tuple(lengths.shape)}"
        )
    lo, hi = int(lengths.min()), int(lengths.max())
    if lo < 1 or hi > seq_len:
        raise ValueError(
            f"lengths must lie in [1, seq_len={seq_len}] (real tokens per row, before the "
            f"padding), got min {lo}, max {hi}"
        )
    vmin, vmax = int(tokens.min()), int(tokens.max())
    if vmin < 0 or vmax >= vocab_size:
        raise ValueError(
            f"tokens must lie in [0, vocab_size={vocab_size}), got min {vmin}, max {vmax}"
        )


def _exporting() -> bool:
    is_exporting = getattr(torch.compiler, "is_exporting", torch.compiler.is_compiling)
    return bool(is_exporting())


class InferenceClassifier(nn.Module):
    """A unidirectional RNNClassifier for inference on inputs padded to ``seq_len`` steps.

    ``forward(tokens, lengths)``: ``tokens`` (batch, seq_len) int64, right-padded,
    ``lengths`` (batch,) int64 -> logits (batch, num_classes), equal to ``model(tokens,
    lengths)``: a left-to-right RNN never sees the padding that follows a real step, and
    pooling skips padded steps. Dropout is off. Inputs are checked
    (:func:`check_padded_inputs`); in an exported graph the lengths and token ids are
    checked by the graph itself (``lengths`` 0 would give NaN logits).
    """

    def __init__(self, model: RNNClassifier, seq_len: int | None = None):
        super().__init__()
        model = check_exportable(model)
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
        vocab_size = self.model.embedding.num_embeddings
        if _exporting():  # checks that become part of the graph
            torch._assert_async(
                ((lengths >= 1) & (lengths <= self.seq_len)).all(),
                f"lengths must lie in [1, seq_len={self.seq_len}] (real tokens per row)",
            )
            torch._assert_async(
                ((tokens >= 0) & (tokens < vocab_size)).all(),
                f"tokens must lie in [0, vocab_size={vocab_size})",
            )
        else:
            check_padded_inputs(tokens, lengths, self.seq_len, vocab_size)
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


def exported_module(exported: torch.export.ExportedProgram) -> nn.Module:
    """``exported.module()`` that checks its inputs first (:func:`check_padded_inputs`).

    torch's own guard would say ``Guard failed: tokens.size()[1] == 400`` for a batch
    that was not padded; this module names the argument and what is allowed instead.
    """
    if not isinstance(exported, torch.export.ExportedProgram):
        raise TypeError(f"exported must be a torch.export.ExportedProgram, got {type(exported)}")
    seq_len = exported_seq_len(exported)
    vocab_size = int(exported.state_dict["model.embedding.weight"].shape[0])
    module = exported.module()

    def check(_, args, kwargs):
        tokens = args[0] if args else kwargs.get("tokens")
        lengths = args[1] if len(args) > 1 else kwargs.get("lengths")
        check_padded_inputs(tokens, lengths, seq_len, vocab_size)

    module.register_forward_pre_hook(check, prepend=True, with_kwargs=True)
    return module


def save_exported(path: str | os.PathLike, exported: torch.export.ExportedProgram) -> int:
    """Write an exported program to ``path`` (a ``.pt2`` file) atomically; return its bytes."""
    if not isinstance(exported, torch.export.ExportedProgram):
        raise TypeError(f"exported must be a torch.export.ExportedProgram, got {type(exported)}")
    buffer = io.BytesIO()
    torch.export.save(exported, buffer)
    atomic_write_bytes(path, buffer.getvalue())
    return len(buffer.getvalue())


MAX_EXPORT_BYTES = 512 << 20
"""The largest ``.pt2`` file, and the most its entries may inflate to, that is read."""
_ENTRIES = re.compile(
    r"archive_format|archive_version|byteorder|\.data/version|\.data/serialization_id"
    r"|models/model\.json|data/sample_inputs/model\.pt"
    r"|data/weights/model_weights_config\.json|data/weights/weight_\d+"
    r"|data/constants/model_constants_config\.json|data/constants/tensor_\d+"
)
_OPERATORS = {"getitem", "add", "sub", "mul", "floordiv", "truediv", "mod", "neg", "pow"}
_OPERATORS |= {"eq", "ne", "lt", "le", "gt", "ge", "and_", "or_", "not_"}
_SYM_FUNCTIONS = {"sym_int", "sym_float", "sym_max", "sym_min", "sym_not", "sym_ite"}
_TARGET = re.compile(r"torch\.ops\.aten\.([A-Za-z_][A-Za-z0-9_]*)\.([A-Za-z_][A-Za-z0-9_]*)")
# sympy expressions and guards: names from this list, numbers, quoted symbol names
# (s0, u3...), arithmetic and comparisons; torch evaluates them as Python
_SYMPY_NAMES = (
    "Symbol Integer Rational Float Add Mul Pow Mod Max Min Abs FloorDiv CeilDiv CleanDiv "
    "PythonMod ModularIndexing Where CeilToInt FloorToInt TruncToInt RoundToInt IntTrueDiv "
    "FloatTrueDiv ToFloat Eq Ne Lt Le Gt Ge StrictLessThan LessThan StrictGreaterThan "
    "GreaterThan Equality Unequality And Or Not True False None oo positive negative "
    "nonnegative integer real finite precision size stride storage_offset and or not L"
).split()
_EXPRESSION_TOKEN = re.compile(
    r"\s+|[A-Za-z_][A-Za-z0-9_]*|\d+(\.\d+)?(e[+-]?\d+)?|'[A-Za-z_][A-Za-z0-9_]*'"
    r"|==|!=|<=|>=|//|\*\*|[-+*/%<>=(),\[\].]"
)


def _plain_expression(text) -> bool:
    """True for a sympy expression or guard built only from :data:`_SYMPY_NAMES`."""
    if not isinstance(text, str) or len(text) > 10_000:
        return False
    position = 0
    while position < len(text):
        token = _EXPRESSION_TOKEN.match(text, position)
        if token is None:
            return False
        word = token.group()
        if (word[0].isalpha() or word[0] == "_") and word not in _SYMPY_NAMES:
            return False
        position = token.end()
    return "__" not in text


def _plain_target(target) -> bool:
    if not isinstance(target, str):
        return False
    if target.startswith("_operator."):
        return target.removeprefix("_operator.") in _OPERATORS
    if target.startswith("torch.sym_"):
        return target.removeprefix("torch.") in _SYM_FUNCTIONS
    match = _TARGET.fullmatch(target)
    if match is None:
        return False
    try:  # as torch resolves it: an aten operator overload, nothing else
        resolved = getattr(getattr(torch.ops.aten, match[1]), match[2])
    except (AttributeError, RuntimeError):
        return False
    return isinstance(resolved, torch._ops.OpOverload)


def _check_program_json(data: bytes) -> None:
    """Refuse a graph that calls anything but aten operators, or whose expressions or
    guards (evaluated as Python by torch) are more than shape arithmetic."""
    program = json.loads(data)
    if not isinstance(program, dict):
        raise ValueError("models/model.json is not a JSON object")
    for guard in program.get("guards_code") or []:
        if not _plain_expression(guard):
            raise ValueError(f"the guard {str(guard)[:80]!r} is not plain shape arithmetic")
    todo = [program]
    while todo:
        item = todo.pop()
        if isinstance(item, list):
            todo.extend(item)
        elif isinstance(item, dict):
            if "expr_str" in item and not _plain_expression(item["expr_str"]):
                raise ValueError(
                    f"the expression {str(item['expr_str'])[:80]!r} is not plain arithmetic"
                )
            if "target" in item and "inputs" in item and not _plain_target(item["target"]):
                raise ValueError(
                    f"the graph calls {str(item['target'])[:80]!r}; only torch.ops.aten "
                    "operators are loaded"
                )
            todo.extend(item.values())


def _check_payloads(data: bytes, kind: str) -> None:
    """Every weight or constant of the archive is raw bytes, none to unpickle."""
    parsed = json.loads(data)
    config = parsed.get("config") if isinstance(parsed, dict) else None
    if not isinstance(config, dict):
        raise ValueError(f"the {kind} config is malformed")
    prefix = "weight_" if kind == "weights" else "tensor_"
    for name, meta in config.items():
        if not isinstance(meta, dict) or meta.get("use_pickle") is not False:
            raise ValueError(
                f"the {kind} entry {name!r} would be unpickled (use_pickle), which can run code"
            )
        if not re.fullmatch(prefix + r"\d+", str(meta.get("path_name"))):
            raise ValueError(f"the {kind} entry {name!r} is not a plain tensor")


def _plain_archive(data: bytes) -> bytes:
    """The archive rebuilt from its checked entries, or a ValueError saying what is refused.

    Torch then reads exactly the bytes checked here (no two zip readers to disagree); the
    sample inputs, which torch would unpickle, are left out.
    """
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        infos = archive.infolist()
        names = [info.filename for info in infos]
        if len(set(names)) != len(names):
            raise ValueError("the archive names an entry twice")
        if sum(info.file_size for info in infos) > MAX_EXPORT_BYTES:
            raise ValueError(f"the archive inflates to more than {MAX_EXPORT_BYTES} bytes")
        roots = {name.split("/", 1)[0] for name in names}
        if len(roots) != 1 or not all("/" in name for name in names):
            raise ValueError("the entries are not in one archive folder")
        (root,) = roots
        entries = {}
        for name in names:
            inner = name[len(root) + 1 :]
            if not _ENTRIES.fullmatch(inner):
                raise ValueError(
                    f"the entry {inner!r} is not part of a plain exported program (compiled "
                    "code, or an object torch would unpickle)"
                )
            entries[inner] = archive.read(name)
    if "models/model.json" not in entries:
        raise ValueError("the archive has no models/model.json")
    _check_program_json(entries["models/model.json"])
    _check_payloads(entries.get("data/weights/model_weights_config.json", b"{}"), "weights")
    _check_payloads(
        entries.get("data/constants/model_constants_config.json", b'{"config": {}}'),
        "constants",
    )
    entries["data/sample_inputs/model.pt"] = b""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        for inner, content in entries.items():
            archive.writestr(f"{root}/{inner}", content)
    return out.getvalue()


def load_exported(path: str | os.PathLike) -> torch.export.ExportedProgram:
    """Read a ``.pt2`` file written by :func:`save_exported`.

    Safe for plain exported programs only: a graph of ``torch.ops.aten`` operators, raw
    weights, and shape expressions. Refused with :class:`ExportError` before torch reads
    the file: entries that torch would unpickle (``use_pickle`` weights or constants,
    custom or opaque objects), compiled AOTInductor code, graphs that call other Python
    functions, and expressions or guards that are more than shape arithmetic (torch
    evaluates them as Python). The example inputs stored in the file are not read.
    Call :func:`exported_module` on the result for a module that checks its inputs.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no exported model at path={str(path)!r}")
    if path.stat().st_size > MAX_EXPORT_BYTES:
        raise ExportError(f"path={str(path)!r} is larger than {MAX_EXPORT_BYTES} bytes")
    try:
        plain = _plain_archive(path.read_bytes())
    except Exception as err:  # zipfile and json raise many types for damaged files
        raise ExportError(
            f"path={str(path)!r} is not a readable torch.export file, or not a plain one "
            f"({type(err).__name__}: {str(err)[:200]})"
        ) from None
    try:
        return torch.export.load(io.BytesIO(plain))
    except Exception as err:  # torch raises several types for files that are not .pt2
        first = (str(err).splitlines() or [""])[0][:200]
        raise ExportError(
            f"path={str(path)!r} is not a readable torch.export file ({type(err).__name__}: "
            f"{first})"
        ) from None


# --- dynamic int8 quantization --------------------------------------------------------------


def quantize_int8(model: RNNClassifier) -> nn.Module:
    """A copy of ``model`` with int8 dynamic quantization of its LSTM/GRU and Linear layers.

    A plain ``"rnn"`` cell stays float32 (torch has no dynamic int8 ``nn.RNN``): a
    warning names the cell.

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
    if type(quantized.rnn) is type(model.rnn):  # torch has no dynamic int8 nn.RNN
        warnings.warn(
            f"quantize_int8 left the recurrent layer in float32: cell={model.cell!r} "
            f"({type(model.rnn).__name__}) has no dynamically quantized version in torch; "
            "only the classifier is int8. Use cell='lstm' or 'gru' for an int8 RNN.",
            stacklevel=2,
        )
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
