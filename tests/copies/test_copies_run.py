"""Every student and self-paced copy runs top to bottom with no exercise solved.

``make student`` writes the copies a class gets (each exercise's body replaced by
``raise NotImplementedError``), ``make lab`` the self-paced ones. Here each copy runs on
a fresh kernel in fast mode (``COURSE_FAST=1``, ``COURSE_PROGRESS=0``), from its own
folder, as a learner's *Run All* does: no cell may end in an error, every exercise check
must print its ``[NOT YET] ... not implemented yet`` line, and every demo cell that calls
an exercise's function must say it uses the course's reference. The full notebooks'
``[PASSED]`` lines are nbval's business (``make nbval``).

Collected only under ``COURSE_COPIES=1`` (see conftest.py); ``make copies`` sets it and
runs after nbval, whose fast run has cached the baseline. ``--durations=0`` there prints
how long each copy took.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest
from helpers import NOTEBOOKS, ROOT, solutions_and_checks
from nbclient import NotebookClient
from notebook_tools import cell_source, read_notebook, write_student_copies

KINDS = {"student": False, "self-paced": True}  # kind -> inline_solutions
KERNEL = "rnn-pruning-course-copies"
CELL_TIMEOUT_S = 1200
NOT_YET = "not implemented yet"
USING_REFERENCE = "[USING REFERENCE]"


@pytest.fixture(scope="session")
def copies(tmp_path_factory) -> dict[str, Path]:
    """kind -> the folder holding that kind of copy of every chapter."""
    base = tmp_path_factory.mktemp("copies")
    folders = {}
    for kind, inline in KINDS.items():
        written = write_student_copies(ROOT / "notebooks", base / kind, inline_solutions=inline)
        assert [p.name for p in written] == [p.name for p in NOTEBOOKS]
        folders[kind] = base / kind
    return folders


@pytest.fixture(scope="session")
def kernel_env(tmp_path_factory):
    """A kernel spec for this very Python, so no user-level ``python3`` spec can win, and
    the environment a learner's fast run has (no MPLBACKEND: the inline backend draws)."""
    data = tmp_path_factory.mktemp("jupyter")
    spec = data / "kernels" / KERNEL
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    spec.joinpath("kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": KERNEL, "language": "python"}),
        encoding="utf-8",
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JUPYTER_PATH", str(data))
        mp.setenv("COURSE_FAST", "1")
        mp.setenv("COURSE_PROGRESS", "0")
        mp.delenv("MPLBACKEND", raising=False)
        yield


def outputs_text(cell) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            parts.append(out.get("text", ""))
        elif out.get("output_type") in ("execute_result", "display_data"):
            parts.append(out.get("data", {}).get("text/plain", ""))
    return "".join(parts)


def check_cell_ids(original: dict) -> list[str]:
    """Ids of the cells that check each exercise: the first check after a solution cell."""
    return [check["id"] for _, check in solutions_and_checks(original)]


def problems_in(nb) -> list[str]:
    """What a learner would see go wrong: error outputs and tracebacks, cells not run."""
    problems = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or not cell_source(cell).strip():
            continue
        lines = [ln for ln in cell_source(cell).splitlines() if ln.strip()]
        code = [ln for ln in lines if not ln.lstrip().startswith("#")] or lines
        head = f"id {cell.get('id')}: {code[0].strip()[:70]}"
        if cell.get("execution_count") is None:
            problems.append(f"cell {i} ({head!r}) did not run")
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                problems.append(f"cell {i} ({head!r}): {out['ename']}: {out['evalue'][:300]}")
            elif out.get("name") == "stderr" and "Traceback" in out.get("text", ""):
                problems.append(f"cell {i} ({head!r}): a traceback in stderr")
    return problems


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("chapter", NOTEBOOKS, ids=lambda p: p.stem)
def test_copy_runs_top_to_bottom_with_no_exercise_solved(kind, chapter, copies, kernel_env):
    path = copies[kind] / chapter.name
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT_S,
        kernel_name=KERNEL,
        allow_errors=True,  # run every cell, then report every failure at once
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()
    ran = path.with_suffix(".run.ipynb")
    nbformat.write(nb, ran)

    problems = problems_in(nb)
    assert not problems, f"{kind} copy of {chapter.name} ({ran}):\n" + "\n".join(problems[:8])

    by_id = {cell.get("id"): cell for cell in nb.cells}
    checks = check_cell_ids(read_notebook(chapter))
    assert checks, f"{chapter.name} has no exercise"
    for cell_id in checks:
        text = outputs_text(by_id[cell_id])
        assert "[NOT YET]" in text and NOT_YET in text, (
            f"{kind} copy of {chapter.name}, cell {cell_id}: the check printed {text!r}"
        )
    for cell in nb.cells:
        if cell.cell_type == "code" and "yours_or_reference(" in cell_source(cell):
            assert USING_REFERENCE in outputs_text(cell), (
                f"{kind} copy of {chapter.name}, cell {cell.get('id')}: no {USING_REFERENCE} line"
            )
