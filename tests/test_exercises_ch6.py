"""Chapter 6 exercise checks: the reference passes, typical mistakes fail with a hint."""

import torch

from course_utils import exercises
from course_utils.deploy.compress import csr_encode, payload_bytes


def reference_csr(matrix):
    csr = csr_encode(matrix)
    return csr.values, csr.col_index.long(), csr.row_ptr.long()


def test_csr_check():
    assert exercises.check_csr_encode(reference_csr)

    def without_leading_zero(matrix):  # row_ptr should start at 0 and have rows + 1 entries
        values, cols, row_ptr = reference_csr(matrix)
        return values, cols, row_ptr[1:]

    def column_major(matrix):  # non-zeros in the wrong order
        values, cols, row_ptr = reference_csr(matrix.T.contiguous())
        return values, cols, row_ptr

    def rows_instead_of_columns(matrix):
        values, _, row_ptr = reference_csr(matrix)
        return values, torch.nonzero(matrix)[:, 0], row_ptr

    for wrong in (without_leading_zero, column_major, rows_instead_of_columns):
        result = exercises.check_csr_encode(wrong)
        assert not result
        assert "expected" in result.message or "differ" in result.message
    assert not exercises.check_csr_encode(lambda m: [1, 2, 3])


def test_bitmask_check():
    assert exercises.check_bitmask_bytes(lambda r, c, n, b: (r * c + 7) // 8 + n * b)
    floor = exercises.check_bitmask_bytes(lambda r, c, n, b: r * c // 8 + n * b)
    assert not floor and "expected" in floor.message  # forgot to round up
    bits = exercises.check_bitmask_bytes(lambda r, c, n, b: r * c + n * b)
    assert not bits  # a bit is not a byte


def test_compression_ratio_check():
    def right(rows, cols, sparsity, fmt):
        nnz = rows * cols - round(sparsity * rows * cols)
        return 4 * rows * cols / payload_bytes(rows, cols, nnz, fmt)

    assert exercises.check_compression_ratio(right)

    def no_row_pointers(rows, cols, sparsity, fmt):
        nnz = rows * cols - round(sparsity * rows * cols)
        extra = 4 * (rows + 1) if fmt.startswith("csr") else 0
        return 4 * rows * cols / (payload_bytes(rows, cols, nnz, fmt) - extra)

    def inverted(rows, cols, sparsity, fmt):
        return 1 / right(rows, cols, sparsity, fmt)

    for wrong in (no_row_pointers, inverted):
        result = exercises.check_compression_ratio(wrong)
        assert not result and "expected" in result.message
