"""The chapter decks and their build (tools/build_slides.py), without a browser.

Strict here, as in ``build_slides.py --strict``: once a chapter notebook exists, every
figure its deck shows must be a tagged cell with a PNG output. Figures of chapters not
written yet are pending, and the build still succeeds with placeholders.
The rendering in Chromium is tested in tests/browser/test_slides_browser.py.
"""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import sys
from pathlib import Path

import pytest
from notebook_tools import cell_source, hygiene_problems, read_notebook

ROOT = Path(__file__).resolve().parents[1]


def _load_build_slides():
    if "build_slides" not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            "build_slides", ROOT / "tools" / "build_slides.py"
        )
        module = importlib.util.module_from_spec(spec)
        sys.modules["build_slides"] = module
        spec.loader.exec_module(module)
    return sys.modules["build_slides"]


bs = _load_build_slides()
DECKS = bs.find_decks()
CHAPTER_NAMES = [
    "01_baseline_rnn",
    "02_magnitude_pruning",
    "03_gradient_pruning",
    "04_regularization_structured",
    "05_gan_guided_pruning",
    "06_compare_and_deploy",
]


def slide_types(deck: Path) -> list[str]:
    return [c["metadata"]["slideshow"]["slide_type"] for c in read_notebook(deck)["cells"]]


def test_one_deck_per_chapter_named_like_its_notebook():
    assert [d.stem for d in DECKS] == CHAPTER_NAMES
    for notebook in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"):
        assert (ROOT / "slides" / notebook.name).exists(), f"no deck for {notebook.name}"


@pytest.mark.parametrize("deck", DECKS, ids=lambda p: p.stem)
def test_deck_is_a_clean_markdown_slide_notebook(deck):
    nb = read_notebook(deck)
    assert hygiene_problems(nb) == []
    assert all(c["cell_type"] == "markdown" for c in nb["cells"])
    assert all("slideshow" in c["metadata"] for c in nb["cells"]), "a cell has no slide type"
    assert set(slide_types(deck)) <= {"slide", "subslide", "fragment", "notes", "skip", "-"}
    assert slide_types(deck)[0] == "slide"
    assert nb["metadata"]["rise"]["theme"] == "white"  # other RISE themes load web fonts
    first = cell_source(nb["cells"][0])
    assert first.startswith(f"# Chapter {int(deck.name[:2])} — ")
    assert f"notebooks/{deck.name}" in first


def test_deck_title_is_its_chapter_title_once_the_chapter_exists():
    compared = 0
    for deck in DECKS:
        notebook = bs.chapter_notebook(bs.chapter_of(deck), ROOT / "notebooks")
        if notebook is not None:
            title = cell_source(read_notebook(notebook)["cells"][0]).splitlines()[0]
            assert cell_source(read_notebook(deck)["cells"][0]).splitlines()[0] == title
            compared += 1
    assert compared >= 1


@pytest.mark.parametrize("deck", DECKS, ids=lambda p: p.stem)
def test_deck_has_10_to_20_slides_with_formula_figure_and_takeaway(deck):
    kinds = slide_types(deck)
    slides = kinds.count("slide") + kinds.count("subslide")
    assert 10 <= slides <= 20, f"{slides} slides"
    text = "\n".join(cell_source(c) for c in read_notebook(deck)["cells"])
    assert "$$" in text, "no formula"
    assert bs.deck_figures(deck), "no figure from the chapter's run"
    assert "## Takeaway" in text


def test_every_figure_of_a_written_chapter_is_tagged_and_executed():
    """The strict rule: decks of existing chapter notebooks show only real figures."""
    plan = bs.plan_figures(DECKS, ROOT / "notebooks")
    assert plan.problems == []
    written = {bs.chapter_of(p) for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")}
    for name in plan.pending:
        assert int(name[2 : name.index("-")]) not in written
    assert {"ch1-data", "ch1-training"} <= set(plan.found)


# ------------------------------------------------------------------ synthetic notebooks

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\nnot-really-an-image").decode()


def write_notebook(path: Path, cells: list[dict]) -> Path:
    cells = [dict(cell, id=f"c{i}") for i, cell in enumerate(cells)]
    nb = {
        "cells": cells,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(nb))
    return path


def code(tags=(), png=True) -> dict:
    outputs = [{"output_type": "display_data", "data": {"image/png": PNG}, "metadata": {}}]
    return {
        "cell_type": "code",
        "source": "plt.show()",
        "metadata": {"tags": list(tags)},
        "outputs": outputs if png else [],
        "execution_count": 1,
    }


def markdown(text: str, kind: str = "slide") -> dict:
    return {
        "cell_type": "markdown",
        "source": text,
        "metadata": {"slideshow": {"slide_type": kind}},
    }


@pytest.fixture
def course(tmp_path):
    """Two decks; chapter 1 written with one tagged figure, chapter 2 not written."""
    decks, notebooks = tmp_path / "slides", tmp_path / "notebooks"
    write_notebook(
        decks / "01_a.ipynb",
        [markdown("# Chapter 1 — A\n\n$$x$$"), markdown("![curves](figures/ch1-curves.png)")],
    )
    write_notebook(decks / "02_b.ipynb", [markdown("# Chapter 2 — B\n\n![x](figures/ch2-x.png)")])
    write_notebook(notebooks / "01_a.ipynb", [code(["slide-figure:ch1-curves"])])
    return decks, notebooks


def test_plan_finds_tagged_figures_and_tolerates_unwritten_chapters(course):
    decks, notebooks = course
    plan = bs.plan_figures(bs.find_decks(decks), notebooks)
    assert plan.ok and list(plan.found) == ["ch1-curves"]
    assert plan.found["ch1-curves"].png == base64.b64decode(PNG)
    assert list(plan.pending) == ["ch2-x"] and "not written yet" in plan.pending["ch2-x"]


@pytest.mark.parametrize(
    ("cells", "expected"),
    [
        ([code()], "no cell of notebooks/01_a.ipynb is tagged 'slide-figure:ch1-curves'"),
        ([code(["slide-figure:ch1-curves"], png=False)], "has no PNG output"),
        ([code(["slide-figure:ch1-curves"])] * 2, "is on several cells"),
        ([code(["slide-figure:Curves"])], "is malformed"),
        ([code(["slide-figure:ch2-curves"])], "names another chapter"),
    ],
    ids=["untagged", "not-executed", "duplicate", "malformed", "wrong-chapter"],
)
def test_plan_reports_each_kind_of_missing_figure(course, cells, expected):
    decks, notebooks = course
    write_notebook(notebooks / "01_a.ipynb", cells)
    plan = bs.plan_figures(bs.find_decks(decks), notebooks)
    assert not plan.ok
    assert any(expected in problem for problem in plan.problems), plan.problems


def test_pasted_images_in_decks_are_problems(course):
    decks, notebooks = course
    write_notebook(decks / "01_a.ipynb", [markdown("# Chapter 1 — A\n\n![x](plot.png)")])
    plan = bs.plan_figures(bs.find_decks(decks), notebooks)
    assert any("'plot.png' is not figures/chN-<name>.png" in p for p in plan.problems)


def test_build_is_tolerant_by_default_and_strict_on_request(course, tmp_path):
    decks, notebooks = course
    write_notebook(notebooks / "01_a.ipynb", [code()])  # the tag is missing
    with pytest.raises(bs.SlideBuildError, match="figure problems"):
        bs.build(tmp_path / "strict", decks_dir=decks, notebooks_dir=notebooks, strict=True)
    pages, plan = bs.build(
        tmp_path / "out", decks_dir=decks, notebooks_dir=notebooks, node_modules=None
    )
    assert [p.name for p in pages] == ["01_a.slides.html", "02_b.slides.html"]
    assert len(plan.problems) == 1 and list(plan.pending) == ["ch2-x"]
    from PIL import Image

    for name in ("ch1-curves", "ch2-x"):  # placeholders stand in, and are real PNGs
        Image.open(io.BytesIO((tmp_path / "out" / "figures" / f"{name}.png").read_bytes()))


def test_missing_reveal_js_is_a_clear_error(course, tmp_path):
    decks, notebooks = course
    with pytest.raises(bs.SlideBuildError, match="npm ci --prefix slides"):
        bs.build(
            tmp_path / "out",
            decks_dir=decks,
            notebooks_dir=notebooks,
            node_modules=tmp_path / "nowhere",
        )


def test_built_html_loads_nothing_from_the_network(tmp_path):
    pages, _ = bs.build(tmp_path, node_modules=None)
    assert len(pages) == len(DECKS)
    for page in pages:
        html = page.read_text()
        assert bs.remote_resources(html) == []
        assert 'src="vendor/reveal.js/dist/reveal.js"' in html
        assert 'src="vendor/mathjax/es5/tex-svg-full.js"' in html
        for src in bs.deck_images(ROOT / "slides" / page.name.replace(".slides.html", ".ipynb")):
            assert (tmp_path / src).exists(), src
    assert (tmp_path / "index.html").exists()


@pytest.mark.parametrize(
    "snippet",
    [
        '<script src="https://cdn.example.org/reveal.js"></script>',
        '<link rel="stylesheet" href="//cdn.example.org/theme.css">',
        "<style>@import url(https://fonts.example.org/css);</style>",
        "<style>@import 'http://fonts.example.org/x.css';</style>",
        "<script>var s = 'https://cdn.example.org/mathjax.js';</script>",
        '<img src="http://example.org/plot.png">',
    ],
)
def test_remote_resources_catches_what_a_page_would_fetch(snippet):
    assert bs.remote_resources(f"<html><head>{snippet}</head></html>") != []


def test_remote_resources_ignores_links_and_local_files():
    html = (
        '<a href="https://arxiv.org/abs/1506.02626">paper</a>'
        '<script src="vendor/reveal.js/dist/reveal.js"></script>'
        '<img src="figures/ch1-data.png"><style>/* see https://example.org */</style>'
    )
    assert bs.remote_resources(html) == []
