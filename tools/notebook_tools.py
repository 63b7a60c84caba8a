"""Notebook housekeeping: hygiene checks, student copies and solutions.

Used by ``make student``, ``make lab`` and by the tests::

    python tools/notebook_tools.py student SRC DST [--solutions DIR] [--self-paced DIR]
    python tools/notebook_tools.py learner SRC DST


A code cell tagged ``solution`` holds a reference answer: in the student copy, the body
of every function it defines becomes ``raise NotImplementedError`` (docstring kept); a
solution cell without a function is replaced by a TODO comment. ``--solutions`` also
writes the full notebooks (reference answers and the committed outputs);
``--self-paced`` writes student copies in which a collapsed "Show a solution" cell
follows each exercise, for learners working on their own. ``learner`` writes the
self-paced copy of every chapter that DST does not hold yet (``make lab`` opens DST,
``my-notebooks/``): a copy already there, which the learner may have edited, is never
overwritten.
"""

from __future__ import annotations

import ast
import json
import re
import sys
from pathlib import Path

SOLUTION_TAG = "solution"
STUB = "raise NotImplementedError"
TOGGLE_TAG = "solution-toggle"
TOGGLE_SUMMARY = "Show a solution"


def read_notebook(path: str | Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def cell_source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _split_lines(text: str) -> list[str]:
    lines = text.splitlines(keepends=True)
    if lines:
        lines[-1] = lines[-1].rstrip("\n")
    return lines


def stub_solution(source: str) -> str:
    """Replace every function body in ``source`` by ``raise NotImplementedError``."""
    tree = ast.parse(source)
    lines = source.splitlines()
    functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    top = [
        f
        for f in functions
        if not any(
            o is not f and o.lineno <= f.lineno and f.end_lineno <= o.end_lineno for o in functions
        )
    ]
    if not top:
        return "# TODO: write your answer here (the reference answer is in the solutions copy)\n"
    for func in sorted(top, key=lambda f: f.lineno, reverse=True):
        body = func.body
        keep_doc = (
            isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        )
        first = body[1] if keep_doc and len(body) > 1 else (None if keep_doc else body[0])
        indent = " " * (body[0].col_offset)
        start = (first.lineno - 1) if first is not None else func.end_lineno
        end = func.end_lineno
        lines[start:end] = [f"{indent}# TODO: your code here", f"{indent}{STUB}"]
    return "\n".join(lines) + "\n"


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
    """A copy of ``nb`` with solutions stubbed and every output cleared.

    With ``inline_solutions=True`` each stubbed cell is followed by a collapsed markdown
    cell holding the reference answer (see ``solution_toggle_cell``).
    """
    nb = json.loads(json.dumps(nb))
    cells = []
    for cell in nb["cells"]:
        cells.append(cell)
        if cell["cell_type"] != "code":
            continue
        if SOLUTION_TAG in cell.get("metadata", {}).get("tags", []):
            reference = cell_source(cell)
            cell["source"] = _split_lines(stub_solution(reference))
            cell["metadata"]["tags"] = [t for t in cell["metadata"]["tags"] if t != SOLUTION_TAG]
            if inline_solutions:
                toggle = solution_toggle_cell(reference)
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
