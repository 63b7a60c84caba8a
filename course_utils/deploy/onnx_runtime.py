"""Serving a pruned classifier with ONNX Runtime (optional; introduced in chapter 6).

ONNX Runtime is the inference engine a CPU deployment most often uses. It is an optional
extra of the course: ``pip install -e '.[deploy]'`` (onnx, onnxscript, onnxruntime).
Without it, :func:`available` is False and every function here raises an ImportError
that says how to install it.

- :func:`export_onnx` writes an RNNClassifier as one ``.onnx`` file with PyTorch's
  current exporter (``torch.onnx.export(..., dynamo=True)``, which starts from
  ``torch.export``). Batch size *and* number of time steps stay dynamic: the LSTM
  becomes ONNX's ``LSTM`` operator, which loops over time itself. Lengths and padding are
  handled as in eager PyTorch (a left-to-right RNN never sees the padding after a real
  step; pooling skips padded steps). The exporter computes the LSTM's weights in PyTorch's
  gate order inside the graph; they are folded into plain constants (onnxscript's
  optimizer) so that ONNX Runtime's quantizer can see them.
- :class:`OnnxClassifier` is an ONNX Runtime session with the call signature of the model,
  ``logits = session_model(tokens, lengths)``, inputs checked as the model checks them, a
  fixed number of threads. It reads only self-contained files of a bounded size (no
  external data files, which could point anywhere on the disk).
- :func:`quantize_onnx_int8` is ONNX Runtime's dynamic int8 quantization of the same
  layers PyTorch's :func:`~course_utils.deploy.export.quantize_int8` quantizes (LSTM and
  the classifier; the embedding stays float32).

ONNX's LSTM operator takes dense weights: a model with 90 % of its LSTM weights at zero
runs as fast as the dense one, as in PyTorch. Only fewer hidden units make it faster.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import io
import json
import logging
import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ..checks import integer
from ..files import atomic_write_bytes
from ..masking import remove_masks
from ..models import RNNClassifier, build_model
from .export import ExportError, check_exportable, check_padded_inputs

__all__ = [
    "INSTALL_HINT",
    "MAX_ONNX_BYTES",
    "OnnxClassifier",
    "available",
    "export_onnx",
    "quantize_onnx_int8",
]

INSTALL_HINT = (
    "ONNX Runtime is an optional extra of the course. Install it from the course folder "
    "with: pip install -e '.[deploy]'  (in a notebook: %pip install -e '..[deploy]', "
    "then restart the kernel)"
)
MAX_ONNX_BYTES = 256 * 2**20
"""Largest ``.onnx`` file :class:`OnnxClassifier` reads (the course's models: about 4.6 MB)."""

_PACKAGES = ("onnx", "onnxscript", "onnxruntime")
_QUANTIZED_OPS = ["LSTM", "GRU", "Gemm", "MatMul"]  # not Gather: the embedding stays float32


def available() -> bool:
    """True when onnx, onnxscript and onnxruntime can be imported."""
    return all(importlib.util.find_spec(name) is not None for name in _PACKAGES)


def _require() -> None:
    missing = [name for name in _PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise ImportError(f"{', '.join(missing)} not installed. {INSTALL_HINT}")


class _LogitsGraph(nn.Module):
    """The classifier's forward pass without the Python checks of input values, which a
    traced graph cannot keep (:class:`OnnxClassifier` checks inputs before each run)."""

    def __init__(self, model: RNNClassifier):
        super().__init__()
        self.model = model

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        out, mask = self.model.run_rnn(tokens, lengths)
        return self.model.classifier(self.model.pool(out, mask, lengths))


def export_onnx(model: RNNClassifier, path: str | os.PathLike) -> int:
    """Write ``model`` (pruned or not) to ``path`` as one ONNX file; return its bytes.

    Inputs ``tokens`` (batch, time) int64 right-padded and ``lengths`` (batch,) int64;
    output ``logits`` (batch, classes). Batch and time are dynamic. The file records the
    vocabulary size, the number of classes and the model's ``max_len``, which
    :class:`OnnxClassifier` checks inputs against. Bidirectional models are refused
    (:class:`~course_utils.deploy.export.ExportError`), as by ``export_classifier``, and
    so are tanh RNNs (``cell="rnn"``: the exporter unrolls them over a fixed number of
    steps; LSTM and GRU become ONNX's own operators). The file is written atomically: an
    interrupted export leaves no partial file.

    The export runs in a fresh Python process: PyTorch's exporter keeps state between
    exports in one process, and a second export there froze the time axis to the example
    input's length.
    """
    _require()
    if check_exportable(model).cell not in ("lstm", "gru"):
        raise ExportError(
            f"cell={model.cell!r} cannot be exported with a dynamic number of time steps: "
            "ONNX has LSTM and GRU operators, and PyTorch's exporter writes the tanh RNN as "
            "a loop unrolled over the example's steps. Export an LSTM or GRU model, or use "
            "deploy.export_classifier (a fixed number of steps)."
        )
    plain = copy.deepcopy(model).cpu().eval()
    remove_masks(plain)  # pruned weights are zeros already; the mask buffers are not needed
    with tempfile.TemporaryDirectory() as tmp:
        state, config, out = (Path(tmp) / n for n in ("state.safetensors", "config.json", "m"))
        save_file({k: v.contiguous() for k, v in plain.state_dict().items()}, state)
        config.write_text(json.dumps(plain.config()), encoding="utf-8")
        command = [sys.executable, "-m", __name__, str(state), str(config), str(out)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            raise ExportError(f"the ONNX export failed:\n{done.stderr[-3000:]}")
        data = out.read_bytes()
    atomic_write_bytes(path, data)
    return len(data)


def _export_here(model: RNNClassifier, out: Path) -> None:
    """The export itself (run by :func:`export_onnx` in a fresh process)."""
    import onnx
    import onnxscript.optimizer

    graph = _LogitsGraph(model.eval()).eval()
    steps = 8 if model.max_len is None else min(8, model.max_len)
    if steps < 2:
        raise ExportError(f"the model's max_len={model.max_len} is too short to export (< 2)")
    tokens = torch.ones(2, steps, dtype=torch.long)
    lengths = torch.tensor([steps, max(1, steps // 2)])  # one example with padding
    batch, time = torch.export.Dim("batch", min=1), torch.export.Dim("time", min=1)
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)  # notes on torchvision etc.
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")  # the exporter's notes on traced LSTM attributes
        program = torch.onnx.export(
            graph,
            (tokens, lengths),
            dynamo=True,
            input_names=["tokens", "lengths"],
            output_names=["logits"],
            dynamic_shapes={"tokens": {0: batch, 1: time}, "lengths": {0: batch}},
            verbose=False,
        )
    # fold the gate reordering of the LSTM weights into constants, however large
    proto = onnxscript.optimizer.optimize(
        program.model_proto, input_size_limit=2**62, output_size_limit=2**62
    )
    dims = [
        [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim]
        for i in proto.graph.input
    ]
    if dims != [["batch", "time"], ["batch"]]:
        raise ExportError(f"the exporter fixed an input's shape: {dims}, not batch x time")
    meta = {
        "vocab_size": model.embedding.num_embeddings,
        "num_classes": model.classifier.out_features,
        "max_len": model.max_len or 0,
    }
    onnx.helper.set_model_props(proto, {f"course.{k}": str(v) for k, v in meta.items()})
    out.write_bytes(proto.SerializeToString())


def _read_model(path: Path):
    import onnx

    if not path.is_file():
        raise FileNotFoundError(f"path={str(path)!r} is not a file")
    if path.stat().st_size > MAX_ONNX_BYTES:
        raise ExportError(f"path={str(path)!r} is larger than {MAX_ONNX_BYTES} bytes")
    data = path.read_bytes()
    try:
        proto = onnx.load_from_string(data)
    except Exception as err:  # protobuf's DecodeError and friends
        raise ExportError(f"path={str(path)!r} is not an ONNX model: {err}") from err
    tensors = list(proto.graph.initializer)
    for node in proto.graph.node:
        tensors += [a.t for a in node.attribute if a.HasField("t")]
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in tensors):
        raise ExportError(
            f"path={str(path)!r} keeps weights in external data files; only self-contained "
            "files are read (export_onnx writes one)"
        )
    meta = {p.key: p.value for p in proto.metadata_props}
    try:
        vocab, classes, max_len = (
            int(meta[f"course.{k}"]) for k in ("vocab_size", "num_classes", "max_len")
        )
    except (KeyError, ValueError) as err:
        raise ExportError(
            f"path={str(path)!r} was not written by export_onnx (no course.vocab_size, "
            "course.num_classes and course.max_len metadata)"
        ) from err
    names = [i.name for i in proto.graph.input]
    if names != ["tokens", "lengths"]:
        raise ExportError(f"path={str(path)!r} has inputs {names}, not ['tokens', 'lengths']")
    return data, vocab, classes, max_len


class OnnxClassifier(nn.Module):
    """An ONNX Runtime session that is called like the model: ``logits = m(tokens, lengths)``.

    ``path``: a file written by :func:`export_onnx` (or :func:`quantize_onnx_int8`).
    ``threads``: ONNX Runtime's own thread count, fixed when the session starts (it does
    not follow ``torch.set_num_threads``; time it against PyTorch at the same count).
    Inputs are checked as ``RNNClassifier`` checks them; logits come back as a tensor.
    Inference only: it has no parameters and ``train()`` changes nothing.
    """

    def __init__(self, path: str | os.PathLike, *, threads: int = 1):
        super().__init__()
        _require()
        import onnxruntime as ort

        threads = integer("threads", threads, minimum=1)
        self.path = Path(path)
        data, self.vocab_size, self.num_classes, max_len = _read_model(self.path)
        self.max_len = max_len or None
        self.threads = threads
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only
        self.session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if isinstance(tokens, torch.Tensor) and (tokens.dim() != 2 or 0 in tokens.shape):
            raise ValueError(
                f"tokens must have shape (batch, time) with both > 0, got {tuple(tokens.shape)}"
            )
        steps = tokens.shape[1] if isinstance(tokens, torch.Tensor) else 1
        if self.max_len is not None and steps > self.max_len:
            raise ValueError(
                f"tokens has {steps} time steps, more than max_len={self.max_len}; truncate it"
            )
        check_padded_inputs(tokens, lengths, steps, self.vocab_size)
        feeds = {"tokens": tokens.cpu().numpy(), "lengths": lengths.cpu().numpy()}
        return torch.from_numpy(self.session.run(["logits"], feeds)[0])

    def extra_repr(self) -> str:
        return f"path={str(self.path)!r}, threads={self.threads}"


def quantize_onnx_int8(src: str | os.PathLike, dst: str | os.PathLike) -> int:
    """ONNX Runtime's dynamic int8 quantization of ``src`` (from :func:`export_onnx`) into ``dst``.

    int8 weights, one scale per tensor, activations quantized on the fly, for the LSTM
    (``DynamicQuantizeLSTM``) and the classifier: the layers PyTorch's ``quantize_int8``
    quantizes. The embedding stays float32. Returns the bytes written (atomically).
    """
    _require()
    from onnxruntime.quantization import QuantType, quantize_dynamic

    src = Path(src)
    _read_model(src)  # the same checks as loading it
    root = logging.getLogger()
    level = root.level
    # the quantizer advises its shape-inference pre-pass on the root logger; export_onnx's
    # graph is already optimized and its shapes are known
    root.setLevel(logging.ERROR)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "int8.onnx"
            quantize_dynamic(
                src, out, weight_type=QuantType.QInt8, op_types_to_quantize=_QUANTIZED_OPS
            )
            data = out.read_bytes()
    finally:
        root.setLevel(level)
    atomic_write_bytes(dst, data)
    return len(data)


def _main(argv: list[str]) -> int:
    state, config, out = argv
    model = build_model(json.loads(Path(config).read_text(encoding="utf-8")))
    model.load_state_dict(load_file(state))
    _export_here(model, Path(out))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
