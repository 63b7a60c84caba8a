"""Checked notebook outputs hold on any machine.

nbval compares every cell marked ``# NBVAL_CHECK_OUTPUT`` with its committed output. Such a
cell must not print a value that floating-point rounding can change (the order of a sum
depends on the CPU, the BLAS and the thread count): it prints the verdict of a tolerance
check and keeps the value in an assert. ``make nbval`` also runs every notebook a second
time with one thread, which sums in another order; this test catches the usual culprits
before that run does.
"""

import re
from pathlib import Path

import pytest
from helpers import NOTEBOOKS, code_cells
from notebook_tools import cell_source, read_notebook

# 1.5e-08: a rounding residue; 1.2699999809265137: float32 printed with float64 digits.
NOISE = re.compile(r"\b\d\.\d+e-\d+\b|\b\d+\.\d{9,}\b")


def checked_outputs(path: Path) -> list[tuple[int, str]]:
    out = []
    for number, cell in enumerate(code_cells(read_notebook(path)), start=1):
        if "NBVAL_CHECK_OUTPUT" not in cell_source(cell):
            continue
        text = ""
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                text += "".join(output.get("text", ""))
            else:
                text += "".join(output.get("data", {}).get("text/plain", ""))
        out.append((number, text))
    return out


def test_the_pattern_catches_rounding_noise():
    assert NOISE.search("max difference 1.5e-08")
    assert NOISE.search("read back [[0.0, -1.2699999809265137]]")
    assert not NOISE.search("masks [0.95, 0.95] | loss 0.4679 | 52429 of 65536 | 1e-6: True")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_checked_cells_print_no_rounding_noise(path):
    cells = checked_outputs(path)
    noisy = [(n, m.group()) for n, text in cells for m in [NOISE.search(text)] if m]
    assert not noisy, f"checked code cells print values that rounding can change: {noisy}"
