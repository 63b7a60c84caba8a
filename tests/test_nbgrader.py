"""The chapter notebooks are nbgrader source notebooks (docs/INSTRUCTOR.md, *Grading with
nbgrader*): every exercise is a solution cell whose answer sits between ``### BEGIN
SOLUTION`` and ``### END SOLUTION``, every check an autograded test cell whose hidden test
fails until the exercise is solved. The autograder's scores on a solved and an unsolved
copy are checked by tests/copies/test_autograde.py (``make copies``).
"""

import ast
import re

import pytest
from helpers import NOTEBOOKS, code_cells, nbgrader_course, run_nbgrader, solutions_and_checks
from notebook_tools import (
    BEGIN_HIDDEN,
    BEGIN_SOLUTION,
    END_HIDDEN,
    END_SOLUTION,
    cell_source,
    make_student_notebook,
    read_notebook,
    strip_hidden_tests,
    stub_solution,
)

SOLUTION = {"grade": False, "locked": False, "schema_version": 3, "solution": True, "task": False}
TEST = {"grade": True, "locked": True, "schema_version": 3, "solution": False, "task": False}
NO_NBGRADER = "nbgrader is not installed (it comes with the dev and grading extras)"


def nbgrader_metadata(cell: dict) -> dict:
    return dict(cell["metadata"]["nbgrader"])


def functions(source: str) -> list[ast.FunctionDef]:
    return [n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef)]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_exercise_is_a_solution_cell_whose_answer_is_marked(path):
    for solution, _ in solutions_and_checks(read_notebook(path)):
        source = cell_source(solution)
        meta = nbgrader_metadata(solution)
        names = [f.name for f in functions(source)]
        assert names and meta.pop("grade_id") == names[0] and meta == SOLUTION, meta
        markers = [ln for ln in source.splitlines() if "SOLUTION" in ln]
        assert [ln.strip() for ln in markers] == [BEGIN_SOLUTION, END_SOLUTION] * len(names)
        stub = stub_solution(source)  # raises on markers out of order
        assert BEGIN_SOLUTION not in stub and END_SOLUTION not in stub
        stubs = functions(stub)  # the student's cell parses
        assert [f.name for f in stubs] == names
        for before, after in zip(functions(source), stubs, strict=True):
            assert ast.unparse(after.args) == ast.unparse(before.args), "signature kept"
            assert ast.unparse(after.body[-1]) == "raise NotImplementedError()"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_check_is_a_test_cell_whose_hidden_test_asserts_that_check(path):
    for solution, check in solutions_and_checks(read_notebook(path)):
        name = solution["metadata"]["nbgrader"]["grade_id"]
        meta = nbgrader_metadata(check)
        assert meta.pop("grade_id") == f"check_{name}" and meta.pop("points") > 0
        assert meta == TEST
        lines = cell_source(check).splitlines()
        visible = strip_hidden_tests(cell_source(check)).splitlines()
        assert visible[0] == "# NBVAL_CHECK_OUTPUT"
        shown = re.fullmatch(rf"exercises\.(check_\w+)\({name}\)", visible[-1])
        assert shown, "the check's result is the cell's last expression: it is displayed"
        hidden = lines[lines.index(BEGIN_HIDDEN) + 1 : lines.index(END_HIDDEN)]
        assert hidden == [f"exercises.assert_passes({name}, exercises.{shown.group(1)})"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_grade_ids_are_unique_and_every_nbgrader_cell_is_an_exercise_or_its_check(path):
    nb = read_notebook(path)
    graded = [c for c in code_cells(nb) if "nbgrader" in c["metadata"]]
    ids = [c["metadata"]["nbgrader"]["grade_id"] for c in graded]
    assert len(ids) == len(set(ids)) and all(i.isidentifier() for i in ids), ids
    pairs = solutions_and_checks(nb)
    assert len(graded) == 2 * len(pairs)
    assert not any("nbgrader" in c["metadata"] for c in nb["cells"] if c["cell_type"] != "code")


def test_nbgraders_release_version_is_the_student_copy(tmp_path):
    """``nbgrader generate_assignment`` and ``make student`` give learners the same code."""
    pytest.importorskip("nbgrader", reason=NO_NBGRADER)
    course = tmp_path / "course"
    env = nbgrader_course(course, "chapters", NOTEBOOKS)
    output = run_nbgrader(course, env, "generate_assignment", "chapters", timeout=600)
    assert "ERROR" not in output, output[-3000:]
    for path in NOTEBOOKS:
        release = read_notebook(course / "release" / "chapters" / path.name)
        ours = make_student_notebook(read_notebook(path))
        assert [(c["cell_type"], cell_source(c)) for c in release["cells"]] == [
            (c["cell_type"], cell_source(c)) for c in ours["cells"]
        ], path.name
