"""Storage formats: oracle tests against torch's CSR, exact round trips, bad files."""

import gzip
import pickle

import numpy as np
import pytest
import torch
from helpers import pruned_model, random_batch
from hypothesis import given, settings
from hypothesis import strategies as st

from course_utils.checkpoints import CheckpointError, load_checkpoint
from course_utils.deploy import compress
from course_utils.deploy.compress import FORMATS, LOSSLESS, FormatError
from course_utils.models import RNNClassifier


def sparse_matrix(rows: int, cols: int, density: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    values = torch.randn(rows, cols, generator=g)
    return values * (torch.rand(rows, cols, generator=g) < density)


def pruned_tiny(seed: int = 0, sparsity: float = 0.7, **kwargs) -> RNNClassifier:
    options = {"embed_dim": 8, "hidden_size": 6, "max_len": 20, **kwargs}
    return pruned_model(60, 3, sparsity, seed=seed, **options)


def batch(seed: int = 0, size: int = 12, steps: int = 15):
    return random_batch(size, steps, vocab=60, seed=seed)


# --- one matrix ----------------------------------------------------------------------------

MATRICES = st.builds(
    sparse_matrix,
    rows=st.integers(1, 12),
    cols=st.integers(1, 12),
    density=st.floats(0.0, 1.0),
    seed=st.integers(0, 10_000),
)


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")
@settings(max_examples=40, deadline=None)
@given(matrix=MATRICES)
def test_csr_matches_torch_sparse_csr(matrix):
    ours = compress.csr_encode(matrix)
    oracle = matrix.to_sparse_csr()
    assert torch.equal(ours.values, oracle.values())
    assert torch.equal(ours.col_index.long(), oracle.col_indices())
    assert torch.equal(ours.row_ptr.long(), oracle.crow_indices())
    for dtype in (torch.int16, torch.int32):
        assert torch.equal(compress.csr_decode(compress.csr_encode(matrix, dtype)), matrix)


@settings(max_examples=40, deadline=None)
@given(matrix=MATRICES)
def test_bitmask_round_trip_and_size(matrix):
    bits, values = compress.bitmask_encode(matrix)
    rows, cols = matrix.shape
    assert bits.dtype == np.uint8 and len(bits) == (rows * cols + 7) // 8
    assert len(bits) == compress.bitmask_bytes(matrix.numel())
    assert len(values) == int((matrix != 0).sum())
    assert torch.equal(compress.bitmask_decode(bits, values, matrix.shape), matrix)


def test_bitmask_bit_order_is_row_major_most_significant_first():
    matrix = torch.tensor([[0.0, 2.0, 0.0], [0.0, 0.0, 0.0], [3.0, 0.0, 0.0]])
    bits, values = compress.bitmask_encode(matrix)
    # entries 1 and 6 of the 9 are non-zero: bits 0100 0010 | 0 (padded)
    assert bits.tolist() == [0b01000010, 0b00000000]
    assert values.tolist() == [2.0, 3.0]


@settings(max_examples=30, deadline=None)
@given(rows=st.integers(1, 8), cols=st.integers(1, 8), seed=st.integers(0, 10_000))
def test_row_quantization_error_is_at_most_half_a_step(rows, cols, seed):
    matrix = sparse_matrix(rows, cols, 0.6, seed)
    q, scales = compress.quantize_rows(matrix)
    assert q.dtype == torch.int8 and int(q.abs().max()) <= 127
    error = (compress.dequantize_rows(q, scales) - matrix).abs()
    assert bool((error <= scales[:, None] / 2 + 1e-7).all())
    assert bool((q[matrix == 0] == 0).all())  # zeros stay zeros
    nonzero_rows = (matrix != 0).any(dim=1)
    assert bool((q[nonzero_rows].abs().amax(dim=1) == 127).all())


def test_csr_int16_refuses_too_many_columns():
    with pytest.raises(ValueError, match="index_dtype"):
        compress.csr_encode(torch.zeros(1, 40_000), torch.int16)
    with pytest.raises(ValueError, match="2-D"):
        compress.csr_encode(torch.zeros(3))
    with pytest.raises(ValueError, match="index_dtype"):
        compress.csr_encode(torch.zeros(2, 2), torch.int64)


# --- whole models ----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", LOSSLESS)
def test_lossless_formats_give_back_the_same_model(fmt):
    model = pruned_tiny()
    decoded = compress.decode_model(compress.encode_model(model, fmt))
    assert decoded.config() == model.config()
    for (name, a), (_, b) in zip(model.named_parameters(), decoded.named_parameters(), strict=True):
        assert torch.equal(a, b), name
    tokens, lengths = batch()
    with torch.no_grad():
        assert torch.equal(model(tokens, lengths), decoded(tokens, lengths))


@pytest.mark.parametrize(
    ("fmt", "tolerance"),
    [("bitmask_fp16", 1e-2), ("bitmask_int8", 5e-2), ("bitmask_int8_gzip", 5e-2)],
)
def test_lossy_formats_keep_zeros_labels_and_logits_close(fmt, tolerance):
    model = pruned_tiny(seed=3)
    decoded = compress.decode_model(compress.encode_model(model, fmt))
    for (name, a), (_, b) in zip(model.named_parameters(), decoded.named_parameters(), strict=True):
        assert not bool(((a == 0) & (b != 0)).any()), name  # zeros stay zeros
    tokens, lengths = batch(seed=1, size=40)
    with torch.no_grad():
        a, b = model(tokens, lengths), decoded(tokens, lengths)
    assert float((a - b).abs().max()) < tolerance
    margin = a.topk(2, dim=1).values
    clear = (margin[:, 0] - margin[:, 1]) > 2 * tolerance
    assert torch.equal(a.argmax(1)[clear], b.argmax(1)[clear])


@pytest.mark.parametrize("sparsity", [0.0, 0.5, 0.8, 0.97])
def test_payload_bytes_formula_matches_the_encoded_arrays(sparsity):
    model = pruned_tiny(sparsity=sparsity)
    params = dict(model.named_parameters())
    for fmt in ("dense_fp32", "csr_int32", "csr_int16", "bitmask_fp32", "bitmask_fp16",
                "bitmask_int8"):  # fmt: skip
        header, payload = compress._header(compress.encode_model(model, fmt))
        assert len(payload) == header["payload_bytes"]
        for spec in header["tensors"]:
            stored = sum(np.dtype(dtype).itemsize * n for _, dtype, n in spec["arrays"])
            p = params[spec["name"]]
            if p.dim() == 1:
                assert stored == 4 * p.numel()
                continue
            nnz = int((p != 0).sum())
            assert stored == compress.payload_bytes(*p.shape, nnz, fmt), (fmt, spec["name"])
    with pytest.raises(ValueError, match="gzip"):
        compress.payload_bytes(2, 2, 1, "dense_fp32_gzip")
    with pytest.raises(ValueError, match="nnz=5"):
        compress.payload_bytes(2, 2, 5, "csr_int16")


@pytest.mark.parametrize(
    ("rows", "cols", "nnz", "error", "message"),
    [
        (-1, 4, 0, ValueError, r"rows must be an int >= 0, got -1"),
        (2, 4.0, 1, TypeError, r"cols must be an int >= 0, got 4.0 \(float\)"),
        (2, 4, True, TypeError, r"nnz must be an int >= 0, got True \(bool\)"),
        (2, 4, "3", TypeError, r"nnz must be an int >= 0, got '3' \(str\)"),
    ],
)
def test_payload_bytes_refuses_counts_that_are_not_ints_at_least_zero(
    rows, cols, nnz, error, message
):
    with pytest.raises(error, match=message):
        compress.payload_bytes(rows, cols, nnz, "bitmask_fp32")
    with pytest.raises(ValueError):  # a wrong type is a ValueError too, as it always was
        compress.payload_bytes(rows, cols, nnz, "bitmask_fp32")


@pytest.mark.parametrize(("numel", "nbytes"), [(0, 0), (1, 1), (8, 1), (9, 2), (24576, 3072)])
def test_bitmask_bytes_rounds_up_to_whole_bytes(numel, nbytes):
    assert compress.bitmask_bytes(numel) == nbytes
    assert compress.payload_bytes(1, numel, 0, "bitmask_fp32") == nbytes


def test_formats_order_by_size_at_high_sparsity():
    model = pruned_tiny(sparsity=0.8)
    sizes = {fmt: len(compress.encode_model(model, fmt)) for fmt in FORMATS}
    assert sizes["csr_int16"] < sizes["csr_int32"] < sizes["dense_fp32"]
    assert sizes["bitmask_fp16"] < sizes["bitmask_fp32"] < sizes["dense_fp32"]
    assert sizes["bitmask_int8_gzip"] < sizes["bitmask_int8"]
    assert sizes["dense_fp32_gzip"] < sizes["dense_fp32"]


def test_storage_table_ratios():
    model = pruned_tiny(sparsity=0.9)
    table = compress.storage_table(model, ["dense_fp32", "bitmask_int8"])
    assert [r["format"] for r in table] == ["dense_fp32", "bitmask_int8"]
    assert table[0]["ratio vs dense fp32"] == 1.0
    assert table[1]["ratio vs dense fp32"] == table[0]["bytes"] / table[1]["bytes"]
    assert [r["lossless"] for r in table] == [True, False]
    fmt, size = compress.smallest_lossless(model)
    assert fmt in LOSSLESS and size == min(len(compress.encode_model(model, f)) for f in LOSSLESS)


def test_encoding_is_deterministic_and_records_the_format():
    model = pruned_tiny()
    for fmt in FORMATS:
        data = compress.encode_model(model, fmt)
        assert data == compress.encode_model(model, fmt)
        assert compress.stored_format(data) == fmt


def test_save_and_load_file(tmp_path):
    model = pruned_tiny()
    path = tmp_path / "model.rnnz"
    size = compress.save_compressed(path, model, "csr_int16")
    assert path.stat().st_size == size
    loaded = compress.load_compressed(path, model)
    assert all(
        torch.equal(a, b) for a, b in zip(model.parameters(), loaded.parameters(), strict=True)
    )
    with pytest.raises(FileNotFoundError, match="no compressed model"):
        compress.load_compressed(tmp_path / "missing.rnnz")


# --- bad input -------------------------------------------------------------------------------


def test_bad_arguments_are_named():
    model = pruned_tiny()
    with pytest.raises(ValueError, match="format='zip'"):
        compress.encode_model(model, "zip")
    with pytest.raises(TypeError, match="RNNClassifier"):
        compress.encode_model(torch.nn.Linear(2, 2), "dense_fp32")
    with pytest.raises(TypeError, match="bytes"):
        compress.decode_model("not bytes")


class _Payload:
    """Unpickling this would create a marker file: proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("how", ["pickle", "torch.save", "random", "empty"])
def test_files_that_are_not_course_formats_are_refused_without_running_code(tmp_path, how):
    marker = tmp_path / "pwned"
    path = tmp_path / "file.bin"
    if how == "pickle":
        path.write_bytes(pickle.dumps(_Payload(marker)))
    elif how == "torch.save":
        torch.save({"evil": _Payload(marker)}, path)
    elif how == "random":
        path.write_bytes(np.random.default_rng(0).bytes(500))
    else:
        path.write_bytes(b"")
    with pytest.raises(FormatError, match="not a compressed course model"):
        compress.load_compressed(path)
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    assert not marker.exists()


@pytest.mark.parametrize("fmt", ["csr_int16", "bitmask_int8", "dense_fp32_gzip"])
def test_truncated_and_corrupted_files_are_refused(fmt):
    data = compress.encode_model(pruned_tiny(), fmt)
    for cut in (len(data) - 1, len(data) // 2, 20, 9):
        with pytest.raises(FormatError, match="truncated|corrupt"):
            compress.decode_model(data[:cut])
    if not fmt.endswith("gzip"):
        flipped = bytearray(data)
        flipped[-5] ^= 0xFF
        with pytest.raises(FormatError, match="checksum"):
            compress.decode_model(bytes(flipped))
        with pytest.raises(FormatError, match="padded"):
            compress.decode_model(data + b"\x00")


def test_another_architecture_is_refused():
    data = compress.encode_model(pruned_tiny(), "csr_int32")
    other = RNNClassifier(60, 3, embed_dim=8, hidden_size=7, max_len=20)
    with pytest.raises(FormatError, match="another architecture.*hidden_size"):
        compress.decode_model(data, other)


def _rewrite_header(data: bytes, change) -> bytes:
    import json
    import struct

    start = len(compress.MAGIC) + 4
    (size,) = struct.unpack("<I", data[len(compress.MAGIC) : start])
    header = json.loads(data[start : start + size])
    change(header)
    blob = json.dumps(header).encode()
    return compress.MAGIC + struct.pack("<I", len(blob)) + blob + data[start + size :]


def test_tampered_headers_are_refused():
    data = compress.encode_model(pruned_tiny(), "csr_int32")

    def bigger_vocab(h):
        h["config"]["vocab_size"] = 10**12

    def bad_dtype(h):
        h["tensors"][0]["arrays"][0][1] = "object"

    def unknown_config(h):
        h["config"]["evil"] = True

    def swapped_encoding(h):
        h["tensors"][0]["encoding"] = "bitmask"

    for change, message in [
        (bigger_vocab, "vocab_size=1000000000000 is more than the course reads"),
        (bad_dtype, "bad array"),
        (unknown_config, "config is not valid"),
        (swapped_encoding, "bitmask|missing|array"),
    ]:
        with pytest.raises(FormatError, match=message):
            compress.decode_model(_rewrite_header(data, change))


def test_gzip_bomb_guard(monkeypatch):
    monkeypatch.setattr(compress, "MAX_FILE_BYTES", 1000)
    data = gzip.compress(compress.MAGIC + b"\x00" * 5000)
    with pytest.raises(FormatError, match="more than 1000 bytes"):
        compress.decode_model(data)
