"""The website's sources (tools/build_book.py): links, the home page, the staged files.

The site itself is built and opened in Chromium by tests/browser/test_book_browser.py.
"""

import json
import re

import build_book
import pytest


def test_repository_links_become_pages_of_the_site():
    text = (
        "[one](notebooks/01_baseline_rnn.ipynb) [deck](slides/) [guide](docs/INSTRUCTOR.md) "
        "[docs/INSTRUCTOR.md](docs/INSTRUCTOR.md) "
        "[web](https://example.org/x) [here](#chapters) [code](course_utils/data.py)"
    )
    assert build_book.rewrite_links(text, ".") == (
        "[one](chapters/01_baseline_rnn.ipynb) [deck](slides.md) [guide](instructor.md) "
        "[Instructor guide](instructor.md) "
        "[web](https://example.org/x) [here](#chapters) code"
    )
    assert build_book.rewrite_links("[the README](../README.md#chapters)", "docs") == (
        "[the README](index.md#chapters)"
    )
    assert build_book.rewrite_links("![a plot](figures/x.png)", ".") == "![a plot](figures/x.png)"


def test_home_page_is_the_readme_overview_with_every_chapter():
    notebooks = build_book.chapter_notebooks()
    assert [nb.stem[:3] for nb in notebooks] == ["01_", "02_", "03_", "04_", "05_", "05b", "06_"]
    page = build_book.index_page(notebooks)
    assert page.startswith("# Pruning recurrent text classifiers\n")
    assert "## Chapters" in page and "## Quick start" not in page
    for notebook in notebooks:
        assert f"(chapters/{notebook.name})" in page, "chapter table link"
        assert re.search(rf"^chapters/{notebook.stem}$", page, re.MULTILINE), "toctree entry"
    assert re.search(r"^instructor\nslides$", page, re.MULTILINE)
    assert "(notebooks/" not in page and "docs/" not in page and "[slides/]" not in page


def test_every_chapter_opens_with_its_learning_objectives():
    from notebook_tools import cell_source, read_notebook

    for notebook in build_book.chapter_notebooks():
        first = cell_source(read_notebook(notebook)["cells"][0])
        assert first.startswith("# Chapter "), notebook.name
        assert "What you will be able to do after this chapter" in first, notebook.name


def test_stage_writes_the_sources_with_local_mathjax(tmp_path):
    if not build_book.MATHJAX.exists():
        pytest.skip("MathJax is not installed: npm ci --prefix slides")
    stage = tmp_path / "src"
    notebooks = build_book.stage(stage)
    for notebook in notebooks:
        staged = json.loads((stage / "chapters" / notebook.name).read_text(encoding="utf-8"))
        assert staged == build_book.reader_copy(build_book.notebook_tools.read_notebook(notebook))
    assert (stage / "_static" / "mathjax" / "tex-svg-full.js").exists()
    conf = (stage / "conf.py").read_text()
    assert 'nb_execution_mode = "off"' in conf
    assert 'mathjax_path = "mathjax/tex-svg-full.js"' in conf
    assert "](../" not in (stage / "instructor.md").read_text()
    decks = build_book.build_slides.find_decks()
    assert (stage / "slides.md").read_text().count('.slides.html">') == len(decks)


def test_the_pages_show_answers_without_grading_markers_and_outputs_unchanged():
    for path in build_book.chapter_notebooks():
        nb = build_book.notebook_tools.read_notebook(path)
        page = build_book.reader_copy(nb)
        text = "".join("".join(c["source"]) for c in page["cells"])
        for marker in ("### BEGIN SOLUTION", "### END SOLUTION", "### BEGIN HIDDEN TESTS"):
            assert marker not in text, (path.name, marker)
        assert "assert_passes" not in text, path.name
        assert [c.get("outputs") for c in page["cells"]] == [c.get("outputs") for c in nb["cells"]]
        answers = [c for c in nb["cells"] if "### BEGIN SOLUTION" in "".join(c["source"])]
        assert answers, f"{path.name} has no exercise"
        # the answer's code itself is kept: every non-marker line is still on the page
        for cell in answers:
            kept = [ln for ln in "".join(cell["source"]).splitlines() if "###" not in ln]
            assert all(ln in text for ln in kept)
