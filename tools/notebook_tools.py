"""Notebook housekeeping: hygiene checks, student copies and solutions.

Used by ``make student``, ``make lab`` and by the tests::

    python tools/notebook_tools.py student SRC DST [--solutions DIR] [--self-paced DIR]
    python tools/notebook_tools.py learner SRC DST


The chapter notebooks are nbgrader source notebooks (docs/INSTRUCTOR.md, *Grading with
nbgrader*); this file makes the same student copy as ``nbgrader generate_assignment``
without needing nbgrader. In a solution cell (``metadata.nbgrader.solution``) each region
from ``### BEGIN SOLUTION`` to ``### END SOLUTION`` becomes ``# YOUR CODE HERE`` and
``raise NotImplementedError()``, indented as the marker; in every code cell the lines
from ``### BEGIN HIDDEN TESTS`` to ``### END HIDDEN TESTS`` are dropped. ``--solutions``
also writes the full notebooks (reference answers and the committed outputs);
``--self-paced`` writes student copies in which a collapsed "Show a solution" cell
follows each exercise, for learners working on their own. ``learner`` writes the
self-paced copy of every chapter that DST does not hold yet (``make lab`` opens DST,
``my-notebooks/``): a copy already there, which the learner may have edited, is never
overwritten.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")  # nbgrader's stub for Python
TOGGLE_TAG = "solution-toggle"
TOGGLE_SUMMARY = "Show a solution"


def read_notebook(path: str | Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def cell_source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def is_solution(cell: dict) -> bool:
    """True for the cell of an exercise: nbgrader's ``solution`` flag in its metadata."""
    return bool(cell.get("metadata", {}).get("nbgrader", {}).get("solution"))


def _split_lines(text: str) -> list[str]:
    lines = text.splitlines(keepends=True)
    if lines:
        lines[-1] = lines[-1].rstrip("\n")
    return lines


def _replace_regions(source: str, begin: str, end: str, stub: tuple[str, ...]) -> str:
    """``source`` with each region from a ``begin`` line to an ``end`` line, both
    included, replaced by the ``stub`` lines indented as the ``begin`` line."""
    out, inside = [], False
    for number, line in enumerate(source.splitlines(), 1):
        marker = line.strip()
        if marker == begin:
            if inside:
                raise ValueError(f"line {number}: {begin!r} inside another region")
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            out += [indent + s for s in stub]
        elif marker == end:
            if not inside:
                raise ValueError(f"line {number}: {end!r} without {begin!r}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{begin!r} without {end!r}")
    return "\n".join(out) + ("\n" if source.endswith("\n") else "")


def stub_solution(source: str) -> str:
    """What the student gets for a solution cell: each marked region replaced by the stub."""
    if BEGIN_SOLUTION not in source:
        raise ValueError(f"a solution cell without {BEGIN_SOLUTION!r}: {source[:60]!r}")
    return _replace_regions(source, BEGIN_SOLUTION, END_SOLUTION, STUB)


def strip_hidden_tests(source: str) -> str:
    """``source`` without its hidden tests (which nbgrader's autograder puts back)."""
    return _replace_regions(source, BEGIN_HIDDEN, END_HIDDEN, ())


def reference_answer(source: str) -> str:
    """A solution cell as the learner would write it: the code without the markers."""
    lines = source.splitlines(keepends=True)
    return "".join(ln for ln in lines if ln.strip() not in (BEGIN_SOLUTION, END_SOLUTION))


def solution_toggle_cell(source: str) -> dict:
    """A markdown cell that shows ``source`` only when its "Show a solution" line is clicked."""
    fence = "```"
    while fence in source:
        fence += "`"
    text = (
        f"<details>\n<summary><b>{TOGGLE_SUMMARY}</b> (try the exercise first)</summary>\n\n"
        f"{fence}python\n{source.rstrip()}\n{fence}\n\n</details>"
    )
    return {
        "cell_type": "markdown",
        "metadata": {"tags": [TOGGLE_TAG]},
        "source": _split_lines(text),
    }


def make_student_notebook(nb: dict, *, inline_solutions: bool = False) -> dict:
    """A copy of ``nb`` with solutions stubbed, hidden tests dropped, outputs cleared.

    With ``inline_solutions=True`` each stubbed cell is followed by a collapsed markdown
    cell holding the reference answer (see ``solution_toggle_cell``).
    """
    nb = json.loads(json.dumps(nb))
    cells = []
    for cell in nb["cells"]:
        cells.append(cell)
        if cell["cell_type"] != "code":
            continue
        source = cell_source(cell)
        if not is_solution(cell):
            cell["source"] = _split_lines(strip_hidden_tests(source))
        else:
            cell["source"] = _split_lines(stub_solution(source))
            if inline_solutions:
                toggle = solution_toggle_cell(reference_answer(source))
                if "id" in cell:
                    toggle["id"] = f"{cell['id']}-solution"[:64]
                cells.append(toggle)
        cell["outputs"] = []
        cell["execution_count"] = None
    nb["cells"] = cells
    return nb


def _chapter_notebooks(src: Path) -> list[Path]:
    return sorted(Path(src).glob("[0-9]*.ipynb"))


def write_student_copies(
    src: str | Path, dst: str | Path, *, inline_solutions: bool = False
) -> list[Path]:
    """Write a student copy of every chapter notebook in ``src`` to ``dst``."""
    src, dst = Path(src), Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    written = []
    for path in _chapter_notebooks(src):
        out = dst / path.name
        student = make_student_notebook(read_notebook(path), inline_solutions=inline_solutions)
        out.write_text(json.dumps(student, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(out)
    return written


def write_learner_copies(src: str | Path, dst: str | Path) -> tuple[list[Path], list[Path]]:
    """Write the self-paced copy of each chapter of ``src`` that ``dst`` lacks.

    Returns ``(written, kept)``: the copies written now, and the chapters already in
    ``dst``, left exactly as they are (the learner's answers and outputs live there).
    """
    src, dst = Path(src), Path(dst)
    chapters = _chapter_notebooks(src)
    if not chapters:
        raise FileNotFoundError(f"src holds no chapter notebooks (NN_*.ipynb): {src}")
    dst.mkdir(parents=True, exist_ok=True)
    written, kept = [], []
    for path in chapters:
        out = dst / path.name
        if out.exists():
            kept.append(out)
            continue
        learner = make_student_notebook(read_notebook(path), inline_solutions=True)
        text = json.dumps(learner, indent=1, ensure_ascii=False) + "\n"
        with out.open("x", encoding="utf-8") as f:  # "x": never replace a file
            f.write(text)
        written.append(out)
    return written, kept


def write_solutions(src: str | Path, dst: str | Path) -> list[Path]:
    """Copy every chapter notebook of ``src``, reference answers and outputs included."""
    src, dst = Path(src), Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    written = []
    for path in _chapter_notebooks(src):
        out = dst / path.name
        out.write_bytes(path.read_bytes())
        written.append(out)
    return written


_BASE64_IMAGE = re.compile(r"data:image/[a-z+]+;base64,", re.IGNORECASE)


def hygiene_problems(nb: dict) -> list[str]:
    """What keeps ``nb`` from being a clean, committed top-to-bottom run."""
    problems = []
    kernel = nb.get("metadata", {}).get("kernelspec", {}).get("name")
    if kernel != "python3":
        problems.append(f"kernelspec is {kernel!r}, expected 'python3'")
    if "widgets" in nb.get("metadata", {}):
        problems.append("saved widget state in metadata.widgets")
    counts = []
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "markdown" and _BASE64_IMAGE.search(cell_source(cell)):
            problems.append(f"cell {i}: base64 image in markdown")
        if cell["cell_type"] != "code" or not cell_source(cell).strip():
            continue
        counts.append(cell.get("execution_count"))
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                problems.append(f"cell {i}: error output {out.get('ename')}")
            if out.get("output_type") == "stream" and out.get("name") == "stderr":
                text = "".join(out.get("text", ""))
                if "Traceback" in text:
                    problems.append(f"cell {i}: traceback in stderr")
    if counts != list(range(1, len(counts) + 1)):
        problems.append(
            f"execution counts are not 1..{len(counts)} (one clean run): {counts[:8]}..."
        )
    return problems


def main(argv: list[str]) -> int:
    if len(argv) >= 3 and argv[0] == "student":
        options = dict(zip(argv[3::2], argv[4::2], strict=False))
        if len(argv[3:]) % 2 or set(options) - {"--solutions", "--self-paced"}:
            print("options: --solutions DIR, --self-paced DIR")
            return 2
        written = write_student_copies(argv[1], argv[2])
        if "--solutions" in options:
            written += write_solutions(argv[1], options["--solutions"])
        if "--self-paced" in options:
            written += write_student_copies(argv[1], options["--self-paced"], inline_solutions=True)
        for path in written:
            print(path)
        return 0
    if len(argv) == 3 and argv[0] == "learner":
        written, kept = write_learner_copies(argv[1], argv[2])
        for path in written:
            print(f"new exercise copy: {path}")
        if kept:
            print(
                f"kept {len(kept)} chapters already in {argv[2]} as they are (never "
                "overwritten); to start one afresh, rename its file and run this again"
            )
        return 0
    if len(argv) >= 2 and argv[0] == "check":
        bad = 0
        for name in argv[1:]:
            for problem in hygiene_problems(read_notebook(name)):
                print(f"{name}: {problem}")
                bad += 1
        return 1 if bad else 0
    print(
        "usage: python tools/notebook_tools.py student SRC DST "
        "[--solutions DIR] [--self-paced DIR] | learner SRC DST | check NB..."
    )
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
