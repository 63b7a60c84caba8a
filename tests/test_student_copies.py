"""``make student``: classroom copies, the solutions folder, and self-paced copies.

tests/test_notebooks.py checks the stubs themselves; here: what self-paced learners get.
"""

from __future__ import annotations

import re

import pytest
from helpers import NOTEBOOKS, ROOT, is_solution
from notebook_tools import (
    TOGGLE_SUMMARY,
    TOGGLE_TAG,
    cell_source,
    main,
    make_student_notebook,
    read_notebook,
    reference_answer,
    solution_toggle_cell,
    write_learner_copies,
    write_solutions,
    write_student_copies,
)


def toggle_code(cell: dict) -> str:
    """The python code inside a "Show a solution" cell."""
    match = re.search(r"(`{3,})python\n(.*)\n\1\n", cell_source(cell), re.DOTALL)
    assert match, cell_source(cell)
    return match.group(2)


def is_toggle(cell: dict) -> bool:
    return TOGGLE_TAG in cell.get("metadata", {}).get("tags", [])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_self_paced_copy_has_a_collapsed_solution_after_each_exercise(path):
    original = read_notebook(path)
    references = [reference_answer(cell_source(c)) for c in original["cells"] if is_solution(c)]
    assert references, "the chapter has no exercise"
    self_paced = make_student_notebook(original, inline_solutions=True)
    cells = self_paced["cells"]
    toggles = [i for i, c in enumerate(cells) if is_toggle(c)]
    assert len(toggles) == len(references)
    for i, reference in zip(toggles, references, strict=True):
        assert "raise NotImplementedError" in cell_source(cells[i - 1]), "toggle not after stub"
        text = cell_source(cells[i])
        assert text.startswith("<details>\n<summary>") and "<details open" not in text
        assert TOGGLE_SUMMARY in text and "### " not in text, "no nbgrader marker in the answer"
        assert toggle_code(cells[i]) == reference.rstrip()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_self_paced_copy_is_the_classroom_copy_plus_toggles(path):
    original = read_notebook(path)
    classroom = make_student_notebook(original)
    self_paced = make_student_notebook(original, inline_solutions=True)
    assert [c for c in self_paced["cells"] if not is_toggle(c)] == classroom["cells"]
    assert not any(is_toggle(c) for c in classroom["cells"])
    ids = [c["id"] for c in self_paced["cells"] if "id" in c]
    assert len(ids) == len(set(ids)), "cell ids must stay unique"


def test_toggle_survives_code_that_contains_a_fence():
    source = 'def f():\n    return """```python\nx\n```"""\n'
    assert toggle_code(solution_toggle_cell(source)) == source.rstrip()


def test_solutions_folder_holds_the_full_committed_notebooks(tmp_path):
    written = write_solutions(ROOT / "notebooks", tmp_path)
    assert [p.name for p in written] == [p.name for p in NOTEBOOKS]
    for path in NOTEBOOKS:
        assert (tmp_path / path.name).read_bytes() == path.read_bytes()


def test_make_student_writes_classroom_solutions_and_self_paced(tmp_path, capsys):
    student, solutions, self_paced = tmp_path / "s", tmp_path / "s" / "sol", tmp_path / "sp"
    args = ["student", str(ROOT / "notebooks"), str(student)]
    assert main([*args, "--solutions", str(solutions), "--self-paced", str(self_paced)]) == 0
    names = [p.name for p in NOTEBOOKS]
    assert sorted(p.name for p in student.glob("*.ipynb")) == names
    assert sorted(p.name for p in solutions.glob("*.ipynb")) == names
    for name in names:
        assert not any(is_toggle(c) for c in read_notebook(student / name)["cells"])
        assert any(is_toggle(c) for c in read_notebook(self_paced / name)["cells"])
    assert str(solutions / names[0]) in capsys.readouterr().out


@pytest.mark.parametrize("extra", [["--answers", "x"], ["--solutions"]])
def test_make_student_rejects_unknown_options(tmp_path, extra):
    assert main(["student", str(ROOT / "notebooks"), str(tmp_path), *extra]) == 2


def test_classroom_copies_keep_no_reference_answer_and_no_hidden_test(tmp_path):
    for path in write_student_copies(ROOT / "notebooks", tmp_path):
        text = path.read_text(encoding="utf-8")
        for marker in ("BEGIN SOLUTION", "END SOLUTION", "HIDDEN TESTS", "assert_passes"):
            assert marker not in text, f"{path.name} still holds {marker!r}"
        original = read_notebook(ROOT / "notebooks" / path.name)
        for cell in original["cells"]:
            if is_solution(cell):
                body = reference_answer(cell_source(cell)).splitlines()[-1].strip()
                assert body not in text, f"{path.name} still holds {body!r}"


def test_learner_copies_are_the_self_paced_copies(tmp_path):
    written, kept = write_learner_copies(ROOT / "notebooks", tmp_path / "mine")
    assert [p.name for p in written] == [p.name for p in NOTEBOOKS] and kept == []
    for path in NOTEBOOKS:
        mine = read_notebook(tmp_path / "mine" / path.name)
        assert mine == make_student_notebook(read_notebook(path), inline_solutions=True)


def test_learner_copies_never_overwrite_a_chapter_the_learner_has(tmp_path):
    mine = tmp_path / "mine"
    write_learner_copies(ROOT / "notebooks", mine)
    edited = mine / NOTEBOOKS[1].name
    edited.write_text('{"my answers": true}', encoding="utf-8")
    (mine / NOTEBOOKS[0].name).unlink()
    written, kept = write_learner_copies(ROOT / "notebooks", mine)
    assert written == [mine / NOTEBOOKS[0].name], "only the missing chapter is added"
    assert edited in kept and len(kept) == len(NOTEBOOKS) - 1
    assert edited.read_text(encoding="utf-8") == '{"my answers": true}'


def test_learner_copies_refuse_a_source_without_chapters(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"src holds no chapter notebooks"):
        write_learner_copies(tmp_path, tmp_path / "mine")


def test_make_learner_adds_missing_chapters_and_says_what_it_kept(tmp_path, capsys):
    args = ["learner", str(ROOT / "notebooks"), str(tmp_path / "mine")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert out.count("new exercise copy: ") == len(NOTEBOOKS) and "kept" not in out
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "new exercise copy" not in out
    assert f"kept {len(NOTEBOOKS)} chapters already in {tmp_path / 'mine'}" in out


def makefile_recipe(target: str) -> list[str]:
    lines = (ROOT / "Makefile").read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{target}:"))
    recipe = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip())
    return recipe


def test_make_lab_opens_the_learner_copies_and_lab_full_the_full_notebooks():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "\nLEARNER ?= my-notebooks\n" in makefile
    assert makefile_recipe("lab") == [
        "$(PY) tools/notebook_tools.py learner notebooks $(LEARNER)",
        "$(BIN)/jupyter lab --notebook-dir=$(LEARNER) --port=$(PORT) $(ALLOW_ROOT)",
    ]
    assert makefile_recipe("lab-full") == [
        "$(BIN)/jupyter lab --notebook-dir=notebooks --port=$(PORT) $(ALLOW_ROOT)"
    ]
    ignored = (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert "my-notebooks/" in ignored, "the learner's answers must never be committed"


def test_make_help_lists_every_target_the_makefile_comment_names():
    lines = (ROOT / "Makefile").read_text(encoding="utf-8").splitlines()
    header = lines[1 : lines.index("")]
    assert all(line.startswith("#") for line in header)
    named = {m.group(1) for line in header if (m := re.match(r"#   make ([a-z-]+)", line))}
    targets = set(re.findall(r"^([a-z][a-z-]*):", "\n".join(lines), re.MULTILINE))
    assert {"lab", "lab-full", "test", "student"} <= named <= targets
    assert makefile_recipe("help") == ["@sed -n '2,/^$$/{/^#/p;}' Makefile"], "prints it all"


def test_readme_quick_start_says_which_command_opens_what():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("## Quick start")
    quick = readme[start : readme.index("\n## ", start + 1)]
    assert "make lab" in quick and "my-notebooks/" in quick and "make lab-full" in quick
    assert "tools/notebook_tools.py learner notebooks my-notebooks" in quick, (
        "the paths without make"
    )
    assert "--notebook-dir=notebooks" not in quick.split("make lab-full")[0]
