"""Notebook housekeeping: hygiene checks and student copies.

Used by ``make student`` (``python -m course_utils.notebook_tools student SRC DST``) and
by the tests. A code cell tagged ``solution`` holds a reference answer: in the student
copy, the body of every function it defines becomes ``raise NotImplementedError``
(docstring kept); a solution cell without a function is replaced by a TODO comment.
"""

from __future__ import annotations

import ast
import json
import re
import sys
from pathlib import Path

SOLUTION_TAG = "solution"
STUB = "raise NotImplementedError"


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


def make_student_notebook(nb: dict) -> dict:
    """A copy of ``nb`` with solutions stubbed and every output cleared."""
    nb = json.loads(json.dumps(nb))
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        if SOLUTION_TAG in cell.get("metadata", {}).get("tags", []):
            cell["source"] = _split_lines(stub_solution(cell_source(cell)))
            cell["metadata"]["tags"] = [t for t in cell["metadata"]["tags"] if t != SOLUTION_TAG]
        cell["outputs"] = []
        cell["execution_count"] = None
    return nb


def write_student_copies(src: str | Path, dst: str | Path) -> list[Path]:
    """Write a student copy of every chapter notebook in ``src`` to ``dst``."""
    src, dst = Path(src), Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted(src.glob("[0-9]*.ipynb")):
        out = dst / path.name
        out.write_text(json.dumps(make_student_notebook(read_notebook(path)), indent=1) + "\n")
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
    if len(argv) == 3 and argv[0] == "student":
        for path in write_student_copies(argv[1], argv[2]):
            print(path)
        return 0
    if len(argv) >= 2 and argv[0] == "check":
        bad = 0
        for name in argv[1:]:
            for problem in hygiene_problems(read_notebook(name)):
                print(f"{name}: {problem}")
                bad += 1
        return 1 if bad else 0
    print("usage: python -m course_utils.notebook_tools student SRC DST | check NB...")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
