"""Storage formats for pruned models: how many bytes the zeros really save.

Introduced in chapter 6. A pruned model saved with ``torch.save`` is as large as the
dense one: a zero costs four bytes like any float. The formats below store only what
is needed, in one small self-describing container (a JSON header and raw arrays, read
back with NumPy: no pickle, so loading a file never runs code):

- ``dense_fp32``: every tensor as float32 (the reference size);
- ``dense_fp32_gzip``: the same, gzip-compressed (level 6; runs of zeros compress well);
- ``csr_int32`` / ``csr_int16``: each weight matrix in compressed sparse row form,
  ``values`` (float32), column indices (int32 or int16) and row pointers (int32);
- ``bitmask_fp32``: one bit per weight says "non-zero", then the non-zero values as
  float32 (cheaper than CSR's indices once more than 1 weight in 16 is non-zero);
- ``bitmask_fp16``: the bitmask, then the non-zero values as float16 (lossy: about 3
  significant digits);
- ``bitmask_int8``: the bitmask, then the non-zero values as int8 with one float32
  scale per row, ``w ≈ scale_r * q`` (lossy; linear quantization in the spirit of Deep
  Compression, Han et al. 2016, which used k-means weight sharing);
- ``bitmask_int8_gzip``: that, gzip-compressed (Deep Compression's last stage is
  Huffman coding; gzip's DEFLATE is LZ77 plus Huffman coding).

Biases (1-D) are always stored as float32. The decoded model has no mask buffers: a
pruned weight is an exact zero.

Safe to load from anyone: nothing is unpickled, a gzip stream may not inflate past
:data:`MAX_FILE_BYTES` nor carry trailing data, and the header's model config must stay
within ``course_utils.checkpoints.FILE_LIMITS`` and ``MAX_PARAMETERS`` and match the stored
arrays before any tensor is allocated (a small file cannot describe a huge model).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import struct
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..checkpoints import MAX_PARAMETERS, check_stored_config
from ..checks import non_negative_int
from ..files import atomic_write_bytes
from ..models import RNNClassifier, build_model
from ..report import Table

FORMATS = (
    "dense_fp32",
    "dense_fp32_gzip",
    "csr_int32",
    "csr_int16",
    "bitmask_fp32",
    "bitmask_fp16",
    "bitmask_int8",
    "bitmask_int8_gzip",
)
LOSSLESS = ("dense_fp32", "dense_fp32_gzip", "csr_int32", "csr_int16", "bitmask_fp32")
MAGIC = b"RNNPRUNE"
VERSION = 1
MAX_HEADER_BYTES = 16 << 20
MAX_FILE_BYTES = 4 * MAX_PARAMETERS + MAX_HEADER_BYTES + 12
"""A gzip stream that inflates past this is refused (float32 weights of the largest
model the course reads, and its header)."""
_DTYPES = {"float32", "float16", "int8", "int16", "int32", "uint8"}
_GZIP_MAGIC = b"\x1f\x8b"


class FormatError(ValueError):
    """Bytes that are not a readable compressed course model, or one for another model."""


# --- the encodings, on one matrix ---------------------------------------------------------


@dataclass(frozen=True)
class CSR:
    """A matrix in compressed sparse row form.

    ``values`` (nnz,) holds the non-zeros row by row; ``col_index`` (nnz,) their
    columns; ``row_ptr`` (rows + 1,) where each row starts in ``values``
    (``row_ptr[0] = 0``, ``row_ptr[-1] = nnz``).
    """

    values: torch.Tensor
    col_index: torch.Tensor
    row_ptr: torch.Tensor
    shape: tuple[int, int]


def _check_matrix(matrix: torch.Tensor, argument: str = "matrix") -> torch.Tensor:
    if not isinstance(matrix, torch.Tensor):
        raise TypeError(f"{argument} must be a torch.Tensor, got {type(matrix).__name__}")
    if matrix.dim() != 2:
        raise ValueError(f"{argument} must be 2-D, got shape {tuple(matrix.shape)}")
    return matrix.detach().cpu().float()


def csr_encode(matrix: torch.Tensor, index_dtype: torch.dtype = torch.int32) -> CSR:
    """CSR form of a 2-D tensor; ``index_dtype`` (int16 or int32) holds the column indices."""
    matrix = _check_matrix(matrix)
    if index_dtype not in (torch.int16, torch.int32):
        raise ValueError(f"index_dtype must be torch.int16 or torch.int32, got {index_dtype}")
    rows, cols = matrix.shape
    if cols - 1 > torch.iinfo(index_dtype).max:
        raise ValueError(
            f"a matrix with {cols} columns needs column indices up to {cols - 1}, more than "
            f"index_dtype={index_dtype} holds"
        )
    nonzero = matrix != 0
    counts = nonzero.sum(dim=1)
    row_ptr = torch.zeros(rows + 1, dtype=torch.int32)
    row_ptr[1:] = torch.cumsum(counts, 0)
    col_index = torch.nonzero(nonzero)[:, 1].to(index_dtype)  # row-major order
    return CSR(matrix[nonzero], col_index, row_ptr, (rows, cols))


def csr_decode(csr: CSR) -> torch.Tensor:
    """The dense (rows, cols) float32 tensor of a :class:`CSR`."""
    rows, cols = csr.shape
    counts = (csr.row_ptr[1:] - csr.row_ptr[:-1]).long()
    row_of = torch.repeat_interleave(torch.arange(rows), counts)
    dense = torch.zeros(rows, cols, dtype=torch.float32)
    dense[row_of, csr.col_index.long()] = csr.values.float()
    return dense


def bitmask_encode(matrix: torch.Tensor) -> tuple[np.ndarray, torch.Tensor]:
    """``(bits, values)``: one bit per entry in row-major order (1 = non-zero, packed 8 per
    byte, most significant bit first) and the non-zero values (float32) in the same order."""
    matrix = _check_matrix(matrix)
    nonzero = matrix != 0
    bits = np.packbits(nonzero.reshape(-1).numpy())
    return bits, matrix[nonzero]


def bitmask_decode(bits: np.ndarray, values: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """The dense float32 tensor of ``shape`` from :func:`bitmask_encode`'s output."""
    numel = int(np.prod(shape))
    nonzero = torch.from_numpy(np.unpackbits(bits, count=numel).astype(bool))
    if int(nonzero.sum()) != len(values):
        raise FormatError(f"bitmask marks {int(nonzero.sum())} non-zeros but {len(values)} values")
    dense = torch.zeros(numel, dtype=torch.float32)
    dense[nonzero] = values.float()
    return dense.reshape(tuple(shape))


def quantize_rows(matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 quantization with one scale per row.

    Returns ``(q, scales)``: ``q`` (rows, cols) int8 in [-127, 127] and ``scales``
    (rows,) float32 with ``scale_r = max_c |w_rc| / 127`` (0 for an all-zero row), so
    that ``w ≈ scale_r * q``. Zeros stay exact zeros.
    """
    matrix = _check_matrix(matrix)
    scales = matrix.abs().amax(dim=1) / 127.0
    safe = torch.where(scales > 0, scales, torch.ones_like(scales))
    q = torch.round(matrix / safe[:, None]).clamp(-127, 127).to(torch.int8)
    return q, scales


def dequantize_rows(q: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """``scale_r * q`` as float32 (rows, cols)."""
    return q.float() * scales.float()[:, None]


def bitmask_bytes(numel: int) -> int:
    """Bytes of the bitmask over ``numel`` weights: one bit each, rounded up to whole bytes."""
    return (numel + 7) // 8


def payload_bytes(rows: int, cols: int, nnz: int, fmt: str) -> int:
    """Bytes a (rows, cols) weight matrix with ``nnz`` non-zeros takes in format ``fmt``.

    The arrays only (no header); gzip formats depend on the data and are refused.
    ``dense_fp32``: 4·rows·cols. CSR: values (4·nnz) + column indices (4 or 2 bytes
    each) + row pointers (4·(rows + 1)). Bitmask: ⌈rows·cols / 8⌉ + the values (4, 2 or
    1 byte each) + for int8 one float32 scale per row (4·rows).
    """
    rows = non_negative_int("rows", rows)
    cols = non_negative_int("cols", cols)
    nnz = non_negative_int("nnz", nnz)
    if nnz > rows * cols:
        raise ValueError(f"nnz={nnz} exceeds rows * cols = {rows * cols}")
    bits = bitmask_bytes(rows * cols)
    sizes = {
        "dense_fp32": 4 * rows * cols,
        "csr_int32": 8 * nnz + 4 * (rows + 1),
        "csr_int16": 6 * nnz + 4 * (rows + 1),
        "bitmask_fp32": bits + 4 * nnz,
        "bitmask_fp16": bits + 2 * nnz,
        "bitmask_int8": bits + nnz + 4 * rows,
    }
    if fmt not in sizes:
        raise ValueError(f"payload_bytes knows format={fmt!r} only as one of {list(sizes)}")
    return sizes[fmt]


# --- the container ------------------------------------------------------------------------


def _check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"unknown format={fmt!r}; choose from {list(FORMATS)}")
    return fmt


def _check_model(model) -> RNNClassifier:
    if not isinstance(model, RNNClassifier):
        raise TypeError(f"model must be an RNNClassifier, got {type(model).__name__}")
    return model


def _parameters(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter (masked weights are already zero), on the CPU, as float32."""
    return {n: p.detach().cpu().float() for n, p in model.named_parameters()}


CsrFn = Callable[[torch.Tensor], tuple]
"""``csr(matrix)`` -> ``(values, col_index, row_ptr)``: chapter 6's exercise ``csr``."""


def csr_with(csr: CsrFn, matrix: torch.Tensor, index_dtype: torch.dtype, name: str) -> CSR:
    """The :class:`CSR` of ``matrix`` computed by ``csr`` (your encoder), checked.

    The three arrays are cast to the format's dtypes (float32 values, ``index_dtype``
    column indices, int32 row pointers) and must decode to ``matrix`` exactly, otherwise
    a ValueError names the tensor ``name``: a file is never written from a wrong encoding.
    """
    if not callable(csr):
        raise TypeError(f"csr must be a function (matrix -> values, col_index, row_ptr): {csr!r}")
    want = csr_encode(matrix, index_dtype)  # also checks that the indices fit index_dtype
    got = csr(matrix.clone())
    if not isinstance(got, tuple | list) or len(got) != 3:
        raise ValueError(f"csr must return (values, col_index, row_ptr) for {name!r}")
    values, col_index, row_ptr = (torch.as_tensor(a) for a in got)
    rows, cols = matrix.shape
    consistent = (
        values.dim() == col_index.dim() == row_ptr.dim() == 1
        and len(values) == len(col_index) == want.values.numel()
        and len(row_ptr) == rows + 1
        and bool(((col_index >= 0) & (col_index < cols)).all())
    )
    wrong = ValueError(f"csr returned a wrong encoding of {name!r}: it does not decode to it")
    if not consistent or not torch.equal(row_ptr.long(), want.row_ptr.long()):
        raise wrong
    encoded = CSR(values.float(), col_index.to(index_dtype), want.row_ptr, (rows, cols))
    if not torch.equal(csr_decode(encoded), matrix.float()):
        raise wrong
    return encoded


def _encode_tensor(
    value: torch.Tensor, fmt: str, csr: CsrFn | None = None, name: str = "tensor"
) -> tuple[str, dict[str, np.ndarray]]:
    if value.dim() != 2 or fmt.startswith("dense"):
        return "dense", {"values": value.numpy().astype(np.float32).reshape(-1)}
    if fmt.startswith("csr"):
        index_dtype = torch.int16 if fmt == "csr_int16" else torch.int32
        if csr is None:
            csr = csr_encode(value, index_dtype)
        else:
            csr = csr_with(csr, value, index_dtype, name)
        return "csr", {
            "values": csr.values.numpy(),
            "col_index": csr.col_index.numpy(),
            "row_ptr": csr.row_ptr.numpy(),
        }
    bits, values = bitmask_encode(value)
    if fmt == "bitmask_fp32":
        return "bitmask", {"bits": bits, "values": values.numpy()}
    if fmt == "bitmask_fp16":
        return "bitmask", {"bits": bits, "values": values.numpy().astype(np.float16)}
    q, scales = quantize_rows(value)
    return "bitmask_int8", {
        "bits": bits,
        "values": q[value != 0].numpy(),
        "scales": scales.numpy(),
    }


def encode_model(model: RNNClassifier, fmt: str, *, csr: CsrFn | None = None) -> bytes:
    """The bytes of ``model`` stored in format ``fmt`` (one of :data:`FORMATS`).

    ``csr`` (your chapter-6 encoder) encodes every matrix of the CSR formats instead of
    :func:`csr_encode`, checked by :func:`csr_with`; the bytes are the same when it is right.
    """
    model, fmt = _check_model(model), _check_format(fmt)
    tensors, chunks = [], []
    for name, value in _parameters(model).items():
        encoding, arrays = _encode_tensor(value, fmt, csr, name)
        tensors.append(
            {
                "name": name,
                "shape": list(value.shape),
                "encoding": encoding,
                "arrays": [[key, str(a.dtype), int(a.size)] for key, a in arrays.items()],
            }
        )
        chunks += [np.ascontiguousarray(a).tobytes() for a in arrays.values()]
    payload = b"".join(chunks)
    header = {
        "format": fmt,
        "version": VERSION,
        "config": model.config(),
        "tensors": tensors,
        "payload_bytes": len(payload),
        "payload_sha256": hashlib.sha256(payload).hexdigest(),
    }
    blob = json.dumps(header, separators=(",", ":")).encode()
    data = MAGIC + struct.pack("<I", len(blob)) + blob + payload
    if fmt.endswith("_gzip"):
        data = gzip.compress(data, 6, mtime=0)
    return data


_GZIP_ERRORS = {
    "incorrect data check": "gzip CRC check failed: the file is corrupt",
    "incorrect length check": "gzip size check failed: the file is corrupt or truncated",
}


def _gunzip(data: bytes) -> bytes:
    """One gzip member, inflated to at most :data:`MAX_FILE_BYTES`, with nothing after it."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, MAX_FILE_BYTES + 1)
    except zlib.error as err:
        known = next((m for text, m in _GZIP_ERRORS.items() if text in str(err)), None)
        raise FormatError(known or f"the gzip stream is corrupt ({err})") from None
    if len(out) > MAX_FILE_BYTES:
        raise FormatError(f"the file decompresses to more than {MAX_FILE_BYTES} bytes")
    if not inflater.eof:
        raise FormatError("the gzip stream is truncated")
    if inflater.unused_data:
        raise FormatError(
            f"trailing data after the gzip stream ({len(inflater.unused_data)} bytes): the "
            "file is corrupt or was appended to"
        )
    return out


def _header(data: bytes) -> tuple[dict, memoryview]:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"data must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if data[:2] == _GZIP_MAGIC:
        data = _gunzip(data)
    if data[: len(MAGIC)] != MAGIC:
        raise FormatError(
            "not a compressed course model (the file does not start with the course's "
            f"marker {MAGIC!r}); checkpoints load with "
            "course_utils.checkpoints.load_checkpoint"
        )
    start = len(MAGIC) + 4
    if len(data) < start:
        raise FormatError("the file is truncated (no header length)")
    (size,) = struct.unpack("<I", data[len(MAGIC) : start])
    if size > MAX_HEADER_BYTES or start + size > len(data):
        raise FormatError(f"the file is truncated or corrupt (header of {size} bytes)")
    try:
        header = json.loads(data[start : start + size].decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise FormatError(f"the header is not valid JSON ({err})") from None
    if not isinstance(header, dict) or header.get("version") != VERSION:
        raise FormatError(f"unsupported container version {header.get('version')!r}")
    payload = memoryview(data)[start + size :]
    if len(payload) != header.get("payload_bytes"):
        raise FormatError(
            f"the file is truncated or padded: {len(payload)} payload bytes, the header "
            f"says {header.get('payload_bytes')}"
        )
    if hashlib.sha256(payload).hexdigest() != header.get("payload_sha256"):
        raise FormatError("the payload checksum does not match: the file is corrupt")
    return header, payload


def _arrays(spec: dict, payload: memoryview, offset: int) -> tuple[dict[str, np.ndarray], int]:
    arrays = {}
    for key, dtype, count in spec["arrays"]:
        if dtype not in _DTYPES or not isinstance(count, int) or count < 0:
            raise FormatError(f"tensor {spec['name']!r}: bad array {key!r} ({dtype}, {count})")
        nbytes = np.dtype(dtype).itemsize * count
        if offset + nbytes > len(payload):
            raise FormatError(f"tensor {spec['name']!r}: array {key!r} runs past the payload")
        arrays[key] = np.frombuffer(payload, dtype=dtype, count=count, offset=offset).copy()
        offset += nbytes
    return arrays, offset


def _decode_tensor(spec: dict, arrays: dict[str, np.ndarray], shape: tuple) -> torch.Tensor:
    name, encoding = spec["name"], spec["encoding"]
    numel = int(np.prod(shape))
    try:
        if encoding == "dense":
            if len(arrays["values"]) != numel:
                raise FormatError(
                    f"tensor {name!r}: {len(arrays['values'])} values, {numel} entries"
                )
            return torch.from_numpy(arrays["values"].astype(np.float32)).reshape(shape)
        rows, cols = shape
        if encoding == "csr":
            row_ptr = torch.from_numpy(arrays["row_ptr"].astype(np.int64))
            col = torch.from_numpy(arrays["col_index"].astype(np.int64))
            values = torch.from_numpy(arrays["values"].astype(np.float32))
            ok = (
                len(row_ptr) == rows + 1
                and int(row_ptr[0]) == 0
                and int(row_ptr[-1]) == len(values) == len(col)
                and bool((row_ptr[1:] >= row_ptr[:-1]).all())
                and (len(col) == 0 or (int(col.min()) >= 0 and int(col.max()) < cols))
            )
            if not ok:
                raise FormatError(f"tensor {name!r}: inconsistent CSR arrays")
            return csr_decode(CSR(values, col, row_ptr, (rows, cols)))
        if len(arrays["bits"]) != bitmask_bytes(numel):
            raise FormatError(f"tensor {name!r}: the bitmask has the wrong length")
        if encoding == "bitmask":
            values = torch.from_numpy(arrays["values"].astype(np.float32))
            return bitmask_decode(arrays["bits"], values, shape)
        if encoding == "bitmask_int8":
            scales = torch.from_numpy(arrays["scales"].astype(np.float32))
            if len(scales) != rows:
                raise FormatError(f"tensor {name!r}: {len(scales)} scales for {rows} rows")
            q = bitmask_decode(arrays["bits"], torch.from_numpy(arrays["values"]), shape)
            return dequantize_rows(q, scales)
    except KeyError as err:
        raise FormatError(f"tensor {name!r}: array {err} is missing") from None
    raise FormatError(f"tensor {name!r}: unknown encoding {encoding!r}")


def _architecture(config, expected: RNNClassifier | None) -> dict[str, tuple]:
    """Parameter shapes of the architecture in ``config``, checked against the course's
    bounds before anything is allocated (``course_utils.checkpoints.check_stored_config``)."""
    if not isinstance(config, dict):
        raise FormatError("the header has no model config")
    if expected is not None and expected.config() != config:
        diff = {k: (config.get(k), v) for k, v in expected.config().items() if config.get(k) != v}
        raise FormatError(f"the file holds another architecture: {diff} (file, model)")
    try:
        return check_stored_config(config)
    except (TypeError, ValueError) as err:
        raise FormatError(f"the header's model config is not valid ({err})") from None


def decode_model(data: bytes, model: RNNClassifier | None = None) -> RNNClassifier:
    """Rebuild the model stored by :func:`encode_model` (any format), in eval mode on the CPU.

    With ``model`` given, the stored architecture must equal its ``config()``. Raises
    :class:`FormatError` for bytes that are not such a file, truncated or corrupt files
    (gzip CRC, size or trailing data included), files for another architecture, and
    configs beyond ``course_utils.checkpoints.FILE_LIMITS`` / ``MAX_PARAMETERS`` (refused before
    any tensor is allocated).
    """
    if model is not None:
        _check_model(model)
    header, payload = _header(data)
    shapes = _architecture(header.get("config"), model)
    specs = header.get("tensors")
    if not isinstance(specs, list) or [s.get("name") for s in specs] != list(shapes):
        raise FormatError("the stored tensors do not match the model's parameters")
    state, offset = {}, 0
    try:
        for spec in specs:
            shape = shapes[spec["name"]]
            if tuple(spec.get("shape", ())) != shape:
                raise FormatError(f"tensor {spec['name']!r} has shape {spec['shape']}, not {shape}")
            arrays, offset = _arrays(spec, payload, offset)
            state[spec["name"]] = _decode_tensor(spec, arrays, shape)
    except FormatError:
        raise
    except (TypeError, ValueError, KeyError, AttributeError) as err:
        raise FormatError(f"the header describes the tensors wrongly ({err!r})") from None
    if offset != len(payload):
        raise FormatError("the payload holds more bytes than the tensors use")
    out = build_model(header["config"])
    out.load_state_dict(state)
    return out.eval()


def save_compressed(
    path: str | os.PathLike, model: RNNClassifier, fmt: str, *, csr: CsrFn | None = None
) -> int:
    """Write ``model`` in format ``fmt`` to ``path`` atomically; return the bytes written.

    ``csr`` as in :func:`encode_model`."""
    data = encode_model(model, fmt, csr=csr)
    atomic_write_bytes(path, data)
    return len(data)


def load_compressed(path: str | os.PathLike, model: RNNClassifier | None = None) -> RNNClassifier:
    """Read a file written by :func:`save_compressed` (see :func:`decode_model`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no compressed model at path={str(path)!r}")
    try:
        return decode_model(path.read_bytes(), model)
    except FormatError as err:
        raise FormatError(f"path={str(path)!r}: {err}") from None


def stored_format(data: bytes) -> str:
    """The format name recorded in the bytes of a compressed model."""
    return _header(data)[0].get("format", "?")


# --- sizes ---------------------------------------------------------------------------------


def storage_table(
    model: RNNClassifier,
    formats: Sequence[str] = FORMATS,
    *,
    reference_bytes: int | None = None,
    csr: CsrFn | None = None,
) -> Table:
    """One row per format: bytes on disk and the ratio ``reference_bytes / bytes``.

    ``reference_bytes`` defaults to this model in ``dense_fp32`` (pass the dense
    baseline's ``dense_fp32`` size to compare a smaller model with the original).
    ``csr`` (your encoder) writes the CSR formats, as in :func:`encode_model`.
    """
    _check_model(model)
    if reference_bytes is None:
        reference_bytes = len(encode_model(model, "dense_fp32"))
    rows = Table()
    for fmt in formats:
        size = len(encode_model(model, _check_format(fmt), csr=csr))
        rows.append(
            {
                "format": fmt,
                "bytes": size,
                "MB": size / 1e6,
                "ratio vs dense fp32": reference_bytes / size,
                "lossless": fmt in LOSSLESS,
            }
        )
    return rows


def smallest_lossless(model: RNNClassifier) -> tuple[str, int]:
    """``(format, bytes)`` of the smallest lossless format for ``model``."""
    sizes = {fmt: len(encode_model(model, fmt)) for fmt in LOSSLESS}
    best = min(sizes, key=sizes.get)
    return best, sizes[best]


def torch_save_bytes(state: dict) -> int:
    """Bytes ``torch.save`` writes for ``state`` (for comparison with the formats above)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return len(buffer.getvalue())


__all__ = [
    "CSR",
    "CsrFn",
    "FORMATS",
    "FormatError",
    "LOSSLESS",
    "bitmask_bytes",
    "bitmask_decode",
    "bitmask_encode",
    "csr_decode",
    "csr_encode",
    "csr_with",
    "decode_model",
    "dequantize_rows",
    "encode_model",
    "load_compressed",
    "payload_bytes",
    "quantize_rows",
    "save_compressed",
    "smallest_lossless",
    "storage_table",
    "stored_format",
    "torch_save_bytes",
]
