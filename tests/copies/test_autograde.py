"""nbgrader grades a chapter as an instructor would (docs/INSTRUCTOR.md, *Grading with
nbgrader*): in a course directory of its own, ``nbgrader generate_assignment`` makes the
release version of chapter 1 (the fastest to run), then ``nbgrader autograde`` runs two
submissions in fast mode: the release version with every exercise solved (the reference
answers, as a learner would type them) and the release version as handed out. The
gradebook must give full points to the first and 0 to the second, whose only errors are
the hidden tests of its check cells: every other cell runs, on the course's reference.

About a minute on two cores with the models cached (``make copies`` runs after nbval,
which cached them), two with an empty cache (chapter 1 then trains its baseline).
"""

from __future__ import annotations

import csv
import json

from helpers import NOTEBOOKS, nbgrader_course, run_nbgrader, solutions_and_checks
from notebook_tools import cell_source, is_solution, read_notebook, reference_answer

CHAPTER = NOTEBOOKS[0]
ASSIGNMENT = "ch01"
TIMEOUT_S = 3600


def grade_id(cell: dict) -> str:
    return cell["metadata"]["nbgrader"]["grade_id"]


def solved(release: dict, source: dict) -> dict:
    """``release`` with each exercise's cell holding the reference answer, unmarked."""
    answers = {
        grade_id(c): reference_answer(cell_source(c)) for c in source["cells"] if is_solution(c)
    }
    nb = json.loads(json.dumps(release))
    for cell in nb["cells"]:
        if is_solution(cell):
            cell["source"] = answers[grade_id(cell)]
    return nb


def erring_cells(nb: dict) -> list[str]:
    """What each cell with an error output is: its grade id, else its first line."""
    return [
        cell["metadata"].get("nbgrader", {}).get("grade_id") or cell_source(cell)[:60]
        for cell in nb["cells"]
        if any(out.get("output_type") == "error" for out in cell.get("outputs", []))
    ]


def test_autograde_gives_full_points_when_solved_and_zero_before(tmp_path):
    course = tmp_path / "course"
    env = nbgrader_course(course, ASSIGNMENT, [CHAPTER])
    run_nbgrader(course, env, "generate_assignment", ASSIGNMENT, timeout=600)
    release = read_notebook(course / "release" / ASSIGNMENT / CHAPTER.name)
    source = read_notebook(CHAPTER)
    submissions = {"solved": solved(release, source), "unsolved": release}
    for student, nb in submissions.items():
        folder = course / "submitted" / student / ASSIGNMENT
        folder.mkdir(parents=True)
        text = json.dumps(nb, indent=1, ensure_ascii=False) + "\n"
        (folder / CHAPTER.name).write_text(text, encoding="utf-8")

    run_nbgrader(course, env, "autograde", ASSIGNMENT, timeout=TIMEOUT_S)
    run_nbgrader(course, env, "export", timeout=600)

    checks = [grade_id(check) for _, check in solutions_and_checks(source)]
    points = sum(c["metadata"]["nbgrader"]["points"] for _, c in solutions_and_checks(source))
    with (course / "grades.csv").open(encoding="utf-8") as f:
        grades = {row["student_id"]: row for row in csv.DictReader(f)}
    assert set(grades) == set(submissions)
    for student in submissions:
        assert float(grades[student]["max_score"]) == points
    assert float(grades["solved"]["score"]) == points
    assert float(grades["unsolved"]["score"]) == 0

    graded = {
        s: read_notebook(course / "autograded" / s / ASSIGNMENT / CHAPTER.name) for s in submissions
    }
    assert erring_cells(graded["solved"]) == []
    assert erring_cells(graded["unsolved"]) == checks, "only the hidden tests may fail"
