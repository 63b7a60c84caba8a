"""Exercise checks for chapter 6 (compare and deploy): sparse storage arithmetic."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..deploy.compress import csr_encode, payload_bytes
from .common import CheckResult, run_checks

__all__ = [
    "check_bitmask_bytes",
    "check_compression_ratio",
    "check_csr_encode",
    "reference_csr",
]


def reference_csr(matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The course's answer to ``csr``: :func:`~course_utils.deploy.compress.csr_encode`'s
    ``(values, col_index, row_ptr)``."""
    encoded = csr_encode(matrix)
    return encoded.values, encoded.col_index, encoded.row_ptr


def _matrices() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(6)
    random = torch.randn(5, 7, generator=g) * (torch.rand(5, 7, generator=g) < 0.3)
    return [
        torch.tensor([[0.0, 2.0, 0.0, 1.5], [0.0, 0.0, 0.0, 0.0], [-3.0, 0.0, 4.0, 0.0]]),
        torch.zeros(2, 3),
        torch.arange(1.0, 7.0).reshape(2, 3),
        random,
    ]


def check_csr_encode(fn: Callable) -> CheckResult:
    """``fn(matrix)`` -> ``(values, col_index, row_ptr)`` of a 2-D float tensor in CSR form:
    the non-zeros row by row, their column indices, and where each row starts
    (``rows + 1`` entries, first 0, last the number of non-zeros)."""

    def cases(fn):
        for matrix in _matrices():
            want = csr_encode(matrix)
            got = fn(matrix.clone())
            assert isinstance(got, tuple) and len(got) == 3, (
                "return a tuple (values, col_index, row_ptr)"
            )
            values, col_index, row_ptr = (torch.as_tensor(t) for t in got)
            shape = tuple(matrix.shape)
            assert row_ptr.tolist() == want.row_ptr.tolist(), (
                f"matrix of shape {shape}: row_ptr {row_ptr.tolist()}, "
                f"expected {want.row_ptr.tolist()}"
            )
            assert col_index.tolist() == want.col_index.tolist(), (
                f"matrix of shape {shape}: col_index {col_index.tolist()}, "
                f"expected {want.col_index.tolist()}"
            )
            assert values.shape == want.values.shape and torch.allclose(
                values.float(), want.values
            ), f"matrix of shape {shape}: values differ (order: row by row, left to right)"

    return run_checks("CSR encoding", fn, cases)


def check_bitmask_bytes(fn: Callable) -> CheckResult:
    """``fn(rows, cols, nnz, value_bytes)`` -> bytes of a bitmask-format matrix: one bit
    per entry (rounded up to whole bytes) plus ``value_bytes`` per non-zero."""

    def cases(fn):
        for rows, cols, nnz in [(1, 8, 3), (3, 5, 0), (128, 192, 2458), (16398, 64, 104947)]:
            for value_bytes, fmt in ((4, "bitmask_fp32"), (2, "bitmask_fp16")):
                want = payload_bytes(rows, cols, nnz, fmt)
                got = fn(rows, cols, nnz, value_bytes)
                assert got == want, (
                    f"rows={rows}, cols={cols}, nnz={nnz}, value_bytes={value_bytes}: "
                    f"got {got}, expected {want}"
                )

    return run_checks("bitmask size", fn, cases)


def check_compression_ratio(fn: Callable) -> CheckResult:
    """``fn(rows, cols, sparsity, fmt)`` -> dense float32 bytes / bytes in ``fmt`` for one
    matrix with ``round(sparsity * rows * cols)`` zeros; ``fmt`` is ``"csr_int32"``,
    ``"csr_int16"``, ``"bitmask_fp16"`` or ``"bitmask_int8"`` (one float32 scale per row)."""

    def cases(fn):
        for rows, cols, sparsity in [(512, 128, 0.9), (16398, 64, 0.9), (10, 10, 0.5), (4, 4, 0)]:
            nnz = rows * cols - round(sparsity * rows * cols)
            for fmt in ("csr_int32", "csr_int16", "bitmask_fp16", "bitmask_int8"):
                want = 4 * rows * cols / payload_bytes(rows, cols, nnz, fmt)
                got = fn(rows, cols, sparsity, fmt)
                assert isinstance(got, int | float), f"expected a number, got {type(got).__name__}"
                assert abs(got - want) < 1e-6 * want, (
                    f"{fmt}, shape ({rows}, {cols}), sparsity {sparsity}: got {got:.4f}, "
                    f"expected {want:.4f}"
                )

    return run_checks("compression ratio", fn, cases)
