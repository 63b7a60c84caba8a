"""Build the course website into build/book/, viewable offline: ``make book``.

A static site made with Sphinx and MyST-NB (the ``book`` extra of pyproject.toml) from:

- the executed chapter notebooks ``notebooks/[0-9]*.ipynb``, shown with their committed
  outputs (nothing is run); each chapter page opens with its learning objectives; the widget
  cells show the static view they store;
- the README's overview and chapter table (the home page), the instructor guide
  ``docs/INSTRUCTOR.md``, and the slide decks (built by ``tools/build_slides.py`` into
  ``build/book/slides/``);
- the configuration and the slides page in ``book/``.

The sources are staged in ``build/book-src/``. Math is typeset by the MathJax of
``slides/node_modules`` (``npm ci --prefix slides``, once, with Node.js), copied into the
site: no page loads anything from the network, which the build checks.

    python tools/build_book.py [--out DIR]
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import shutil
import sys
import time
from html import escape
from pathlib import Path

import build_slides
import notebook_tools

ROOT = Path(__file__).resolve().parents[1]
BOOK_DIR = ROOT / "book"
NOTEBOOKS_DIR = ROOT / "notebooks"
README = ROOT / "README.md"
INSTRUCTOR = ROOT / "docs" / "INSTRUCTOR.md"
STAGE_DIR = ROOT / "build" / "book-src"
OUT_DIR = ROOT / "build" / "book"
MATHJAX = build_slides.NODE_MODULES / "mathjax" / "es5" / "tex-svg-full.js"
CHAPTERS = "chapters"

RUN_IT = """\
## Run it yourself

These pages show every chapter with the outputs of one run. To run the notebooks and do
the exercises, get the course's files; then, with Python 3.11+ and `make`, one command sets
everything up and opens JupyterLab on your own copy of every chapter:

    make lab

The README's *Quick start* also covers conda and pip without `make` (Windows).
"""

PAGE_TITLES = {"instructor.md": "Instructor guide", "slides.md": "Slides", "index.md": "Home"}
MARKDOWN_LINK = re.compile(r"(?<!!)\[([^\]]+)\]\(([^)\s]+)\)")


class BookBuildError(RuntimeError):
    """The site cannot be built (missing packages or MathJax, warnings, remote resources)."""


def chapter_notebooks(notebooks_dir: Path = NOTEBOOKS_DIR) -> list[Path]:
    return sorted(Path(notebooks_dir).glob("[0-9]*.ipynb"))


def rewrite_links(text: str, base: str) -> str:
    """Point the repository links of a markdown file (in folder ``base``) at the site's pages.

    Chapters, the README, the instructor guide and the slides become pages of the site; a
    link to any other file of the repository keeps its text and loses the link.
    """

    def target(match: re.Match) -> str:
        label, url = match.groups()
        if re.match(r"^([a-z]+:|#)", url):
            return match.group(0)
        path, _, anchor = url.partition("#")
        resolved = Path(base, path).as_posix()
        while "/../" in f"/{resolved}":
            resolved = re.sub(r"(^|/)[^/]+/\.\.(/|$)", r"\1", resolved, count=1)
        resolved = resolved.removeprefix("./").rstrip("/")
        page = {
            "README.md": "index.md",
            "docs/INSTRUCTOR.md": "instructor.md",
            "slides": "slides.md",
        }.get(resolved)
        if page is None and re.fullmatch(r"notebooks/[0-9][^/]*\.ipynb", resolved):
            page = f"{CHAPTERS}/{Path(resolved).name}"
        if page is None:
            return label
        if label.strip("`") == url:  # a path as its own label: the page's title instead
            label = PAGE_TITLES.get(page, label)
        return f"[{label}]({page}{'#' + anchor if anchor else ''})"

    return MARKDOWN_LINK.sub(target, text)


def readme_overview(readme: Path = README) -> str:
    """The README from its title up to the Quick start: overview and chapter table."""
    text = readme.read_text(encoding="utf-8")
    overview = text.split("\n## Quick start", 1)[0].rstrip()
    return rewrite_links(overview, ".")


def index_page(notebooks: list[Path]) -> str:
    chapters = "\n".join(f"{CHAPTERS}/{nb.stem}" for nb in notebooks)
    return (
        f"{readme_overview()}\n\n{RUN_IT}\n"
        f"```{{toctree}}\n:hidden:\n:caption: Chapters\n\n{chapters}\n```\n\n"
        "```{toctree}\n:hidden:\n:caption: Teaching\n\ninstructor\nslides\n```\n"
    )


def slides_list(decks: list[Path]) -> str:
    items = "\n".join(
        f'<li><a href="slides/{d.stem}.slides.html">{escape(build_slides.deck_title(d))}</a></li>'
        for d in decks
    )
    return f'\n```{{raw}} html\n<ol class="course-decks">\n{items}\n</ol>\n```\n'


def reader_copy(nb: dict) -> dict:
    """The notebook as a reader sees it: the answers without nbgrader's solution markers,
    the check cells without their hidden tests (outputs unchanged)."""
    nb = copy.deepcopy(nb)
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            source = notebook_tools.cell_source(cell)
            source = notebook_tools.strip_hidden_tests(notebook_tools.reference_answer(source))
            cell["source"] = source.splitlines(keepends=True)
    return nb


def stage(stage_dir: Path = STAGE_DIR) -> list[Path]:
    """Write the Sphinx sources into ``stage_dir``; return the chapter notebooks staged."""
    if not MATHJAX.exists():
        raise BookBuildError(
            f"MathJax is missing ({MATHJAX.relative_to(ROOT)}): run `npm ci --prefix slides` "
            "(needs Node.js 18+), or `make book`, which runs it"
        )
    notebooks = chapter_notebooks()
    if not notebooks:
        raise BookBuildError(f"no chapter notebooks in {NOTEBOOKS_DIR}")
    if stage_dir.exists():
        shutil.rmtree(stage_dir)
    shutil.copytree(BOOK_DIR, stage_dir, ignore=shutil.ignore_patterns("__pycache__"))
    (stage_dir / CHAPTERS).mkdir()
    for notebook in notebooks:
        page = reader_copy(notebook_tools.read_notebook(notebook))
        text = json.dumps(page, indent=1, ensure_ascii=False) + "\n"
        (stage_dir / CHAPTERS / notebook.name).write_text(text, encoding="utf-8")
    (stage_dir / "index.md").write_text(index_page(notebooks), encoding="utf-8")
    guide = rewrite_links(INSTRUCTOR.read_text(encoding="utf-8"), "docs")
    (stage_dir / "instructor.md").write_text(guide, encoding="utf-8")
    slides_page = stage_dir / "slides.md"
    slides_page.write_text(
        slides_page.read_text(encoding="utf-8") + slides_list(build_slides.find_decks()),
        encoding="utf-8",
    )
    mathjax = stage_dir / "_static" / "mathjax"
    mathjax.mkdir(parents=True, exist_ok=True)
    shutil.copy2(MATHJAX, mathjax / MATHJAX.name)
    shutil.copy2(MATHJAX.parents[1] / "LICENSE", mathjax / "LICENSE")
    return notebooks


def run_sphinx(stage_dir: Path, out_dir: Path) -> None:
    try:
        from sphinx.cmd.build import build_main
    except ImportError as error:
        raise BookBuildError(
            f"{error}: the site needs Sphinx and MyST-NB, pip install -e '.[book]'"
        ) from error
    doctrees = stage_dir.parent / "book-doctrees"
    args = ["-b", "html", "-q", "-W", "--keep-going", "-E", "-d", str(doctrees)]
    if build_main([*args, str(stage_dir), str(out_dir)]) != 0:
        raise BookBuildError("Sphinx reported warnings or errors (above)")


def remote_pages(out_dir: Path) -> dict[str, list[str]]:
    """Pages of the site that would load a script, style sheet or image from the network."""
    found = {}
    for page in sorted(out_dir.rglob("*.html")):
        urls = build_slides.remote_resources(page.read_text(encoding="utf-8"))
        if urls:
            found[page.relative_to(out_dir).as_posix()] = urls
    return found


def build(out_dir: Path = OUT_DIR, stage_dir: Path = STAGE_DIR) -> list[Path]:
    """Build the site into ``out_dir``; return the chapter pages written."""
    notebooks = stage(stage_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    run_sphinx(stage_dir, out_dir)
    try:
        build_slides.build(out_dir / "slides")
    except build_slides.SlideBuildError as error:
        raise BookBuildError(f"slides: {error}") from error
    remote = remote_pages(out_dir)
    if remote:
        listed = "; ".join(f"{page}: {urls[0]}" for page, urls in remote.items())
        raise BookBuildError(f"pages that would load from the network: {listed}")
    pages = [out_dir / CHAPTERS / f"{nb.stem}.html" for nb in notebooks]
    missing = [page.name for page in pages if not page.exists()]
    if missing:
        raise BookBuildError(f"chapter pages not written: {missing}")
    return pages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="output folder")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        pages = build(args.out.resolve())
    except BookBuildError as error:
        print(f"make book: {error}", file=sys.stderr)
        return 1
    shown = args.out.resolve() / "index.html"
    shown = shown.relative_to(ROOT) if shown.is_relative_to(ROOT) else shown
    print(f"wrote {len(pages)} chapter pages, the home page {shown}, the instructor guide and")
    print(f"the slides in {time.perf_counter() - start:.0f} s; open {shown} in a browser")
    return 0


if __name__ == "__main__":
    sys.exit(main())
