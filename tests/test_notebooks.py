"""The committed notebooks: hygiene, exercises, student copies, offline.

Execution itself is checked by nbval (``make test`` runs ``pytest --nbval-lax``).
"""

import ast
import re

import pytest
from helpers import NOTEBOOKS, ROOT, code_cells, is_solution, solutions_and_checks
from notebook_tools import (
    cell_source,
    hygiene_problems,
    make_student_notebook,
    read_notebook,
    strip_hidden_tests,
    stub_solution,
    write_student_copies,
)

from course_utils import exercises


def test_there_are_chapter_notebooks():
    assert NOTEBOOKS, "no notebooks found"
    assert NOTEBOOKS[0].name == "01_baseline_rnn.ipynb"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_notebook_is_one_clean_run(path):
    nb = read_notebook(path)
    assert hygiene_problems(nb) == []
    assert any(c.get("outputs") for c in code_cells(nb)), "no outputs: was the notebook run?"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_opens_with_goals_and_time_and_closes_with_a_summary(path):
    cells = read_notebook(path)["cells"]
    opening = cell_source(cells[0])
    assert opening.startswith("# Chapter") and "**Time:**" in opening
    assert "you will be able to" in opening.lower()
    markdown = [cell_source(c) for c in cells if c["cell_type"] == "markdown"]
    assert any(m.startswith("## Summary") for m in markdown)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_needs_no_network_and_no_hard_coded_cuda(path):
    code = "\n".join(cell_source(c) for c in code_cells(read_notebook(path)))
    assert not re.search(r"https?://", code)
    assert ".cuda()" not in code and 'device="cuda"' not in code
    assert 'load_dataset("bbc_news"' in code or "get_baseline(" in code


def exercise_pairs(nb):
    """(setup source, solution source, check expression) for every solution cell."""
    setup = cell_source(code_cells(nb)[0])
    return [(setup, cell_source(s), cell_source(c)) for s, c in solutions_and_checks(nb)]


def run_check(setup, solution, check):
    namespace = {}
    exec(compile(setup, "<setup>", "exec"), namespace)
    exec(compile(solution, "<solution>", "exec"), namespace)
    tree = ast.parse(check)
    *body, last = tree.body
    exec(compile(ast.Module(body, []), "<check>", "exec"), namespace)
    return eval(compile(ast.Expression(last.value), "<check>", "eval"), namespace)


ALL_EXERCISES = [
    pytest.param(*pair, id=f"{path.name}-{k}")
    for path in NOTEBOOKS
    for k, pair in enumerate(exercise_pairs(read_notebook(path)))
]


def test_every_chapter_has_exercises():
    for path in NOTEBOOKS:
        assert len(exercise_pairs(read_notebook(path))) >= 2, path.name


@pytest.mark.parametrize(("setup", "solution", "check"), ALL_EXERCISES)
def test_check_accepts_the_reference_answer(setup, solution, check):
    result = run_check(setup, solution, check)
    assert isinstance(result, exercises.CheckResult) and result.passed, result


@pytest.mark.parametrize(("setup", "solution", "check"), ALL_EXERCISES)
def test_check_rejects_the_student_stub(setup, solution, check):
    result = run_check(setup, stub_solution(solution), strip_hidden_tests(check))
    assert isinstance(result, exercises.CheckResult) and not result.passed
    assert "not implemented yet" in result.message


@pytest.mark.parametrize(("setup", "solution", "check"), ALL_EXERCISES)
def test_the_autograders_hidden_test_fails_on_the_student_stub(setup, solution, check):
    """nbgrader's autograder restores the hidden test: the check cell errs, scoring 0."""
    assert strip_hidden_tests(check) != check, "the check cell has no hidden test"
    with pytest.raises(AssertionError, match=r"^\[NOT YET\] .*not implemented yet"):
        run_check(setup, stub_solution(solution), check)


def test_checks_reject_wrong_answers():
    assert not exercises.check_frequent_words(lambda docs, k: ["the"])
    assert not exercises.check_masked_mean(lambda out, lengths: out.mean(1))
    assert not exercises.check_rnn_parameter_count(lambda *args: 0)
    assert not exercises.check_rnn_parameter_count("not a function")
    crashed = exercises.check_masked_mean(lambda out, lengths: 1 / 0)
    assert "ZeroDivisionError" in crashed.message


def test_stub_keeps_signature_and_docstring():
    source = (
        'def f(x, y=2):\n    """Doc."""\n    ### BEGIN SOLUTION\n    z = x + y\n    return z\n'
        "    ### END SOLUTION\n\nresult = f(1)\n"
    )
    stubbed = stub_solution(source)
    assert stubbed == (
        'def f(x, y=2):\n    """Doc."""\n    # YOUR CODE HERE\n    raise NotImplementedError()\n'
        "\nresult = f(1)\n"
    ), "the marked region becomes nbgrader's stub, indented as the marker"
    namespace = {}
    exec(stubbed.replace("result = f(1)", ""), namespace)
    with pytest.raises(NotImplementedError):
        namespace["f"](1)


@pytest.mark.parametrize(
    "source",
    [
        "x = 1\n",
        "### BEGIN SOLUTION\nx = 1\n",
        "### END SOLUTION\nx = 1\n",
        "### BEGIN SOLUTION\n### BEGIN SOLUTION\nx = 1\n### END SOLUTION\n",
    ],
    ids=["no-markers", "no-end", "no-begin", "nested"],
)
def test_stub_refuses_a_solution_without_balanced_markers(source):
    with pytest.raises(ValueError, match="SOLUTION"):
        stub_solution(source)


def test_hidden_tests_are_dropped_and_the_rest_kept():
    check = "# NBVAL_CHECK_OUTPUT\n### BEGIN HIDDEN TESTS\nassert f()\n### END HIDDEN TESTS\nf()"
    assert strip_hidden_tests(check) == "# NBVAL_CHECK_OUTPUT\nf()"
    assert strip_hidden_tests("f()\n") == "f()\n"


def test_student_copies_have_no_solutions_and_no_outputs(tmp_path):
    written = write_student_copies(ROOT / "notebooks", tmp_path)
    assert [p.name for p in written] == [p.name for p in NOTEBOOKS]
    for path in NOTEBOOKS:
        original = read_notebook(path)
        student = make_student_notebook(original)
        assert all(not c["outputs"] and c["execution_count"] is None for c in code_cells(student))
        for before, after in zip(code_cells(original), code_cells(student), strict=True):
            if is_solution(before):
                assert "raise NotImplementedError()" in cell_source(after)
            else:
                assert cell_source(after) == strip_hidden_tests(cell_source(before))


def solution_functions(nb) -> set[str]:
    names = set()
    for cell in code_cells(nb):
        if is_solution(cell):
            tree = ast.parse(cell_source(cell))
            names |= {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    return names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_cell_calls_an_exercise_function_except_through_yours_or_reference(path):
    """In a student copy those functions raise NotImplementedError: a demo cell that called
    one directly would stop Run All. It takes ``exercises.yours_or_reference(...)`` instead."""
    nb = read_notebook(path)
    names = solution_functions(nb)
    for i, cell in enumerate(code_cells(nb)):
        if is_solution(cell):
            continue
        calls = {
            node.func.id
            for node in ast.walk(ast.parse(cell_source(cell)))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
        }
        assert not calls & names, f"cell {cell.get('id', i)} calls {sorted(calls & names)} directly"


def demo_choices(nb):
    """(setup, solution sources, the ``yours_or_reference(...)`` call) of every demo cell."""
    cells = code_cells(nb)
    solutions = [cell_source(c) for c in cells if is_solution(c)]
    choices = []
    for cell in cells:
        for node in ast.walk(ast.parse(cell_source(cell))):
            if isinstance(node, ast.Call) and ast.unparse(node.func).endswith("yours_or_reference"):
                choices.append((cell_source(cells[0]), solutions, ast.unparse(node)))
    return choices


ALL_CHOICES = [
    pytest.param(*choice, id=f"{path.name}-{k}")
    for path in NOTEBOOKS
    for k, choice in enumerate(demo_choices(read_notebook(path)))
]


def test_every_chapter_runs_an_experiment_on_the_learners_code():
    """Chapters 2-6 each hand at least one exercise function to a real experiment."""
    assert {p.id.split(".ipynb")[0] for p in ALL_CHOICES} >= {
        "02_magnitude_pruning",
        "03_gradient_pruning",
        "04_regularization_structured",
        "05_gan_guided_pruning",
        "06_compare_and_deploy",
    }


@pytest.mark.parametrize(
    ("notebook", "hook"),
    [
        ("02_magnitude_pruning", "mask_fn"),
        ("02_magnitude_pruning", "schedule_fn=schedule_fn"),
        ("03_gradient_pruning", "importance=importance"),
        ("04_regularization_structured", "remove(model.state_dict(), kept)"),
        ("05_gan_guided_pruning", "d_loss_fn=d_loss_fn"),
        ("05_gan_guided_pruning", "prox_fn=prox_fn"),
        ("06_compare_and_deploy", "csr=csr_fn"),
    ],
)
def test_the_learners_function_reaches_the_experiment(notebook, hook):
    """The function ``yours_or_reference`` chose is what the experiment is given."""
    nb = read_notebook(ROOT / "notebooks" / f"{notebook}.ipynb")
    assert any(hook in cell_source(c) for c in code_cells(nb)), hook


@pytest.mark.parametrize(("setup", "solutions", "call"), ALL_CHOICES)
@pytest.mark.parametrize("stubbed", [False, True], ids=["solved", "student"])
def test_demo_cell_uses_yours_once_solved_and_says_when_it_uses_the_reference(
    setup, solutions, call, stubbed
):
    namespace = {}
    exec(compile(setup, "<setup>", "exec"), namespace)
    for solution in solutions:
        source = stub_solution(solution) if stubbed else solution
        exec(compile(source, "<solution>", "exec"), namespace)
    fn, note = eval(compile(call, "<demo>", "eval"), namespace)
    yours = namespace[ast.parse(call).body[0].value.args[0].id]
    if stubbed:
        assert fn is not yours and note.startswith("[USING REFERENCE] your ")
    else:
        assert fn is yours and note == "", "the full notebook must print nothing extra"
