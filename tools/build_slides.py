"""Build the chapter slide decks into build/slides/, viewable offline: ``make slides``.

Each deck is a markdown-only notebook ``slides/NN_<chapter>.ipynb`` whose cells carry RISE /
nbconvert slideshow metadata (``slide``, ``subslide``, ``fragment``, ``notes``, ``skip``).
The build writes, under ``build/slides/``:

- ``NN_<chapter>.slides.html``: ``jupyter nbconvert --to slides`` (the ``SlidesExporter``)
  with the template in ``tools/slides_template/course_reveal``; reveal.js and MathJax come
  from the npm packages pinned in ``slides/package-lock.json`` (``npm ci --prefix slides``)
  and are copied to ``vendor/``, so no CDN is needed when the slides are shown;
- ``figures/<name>.png``: the key plots, cut from the committed, executed chapter notebooks;
- ``NN_<chapter>.ipynb``: a copy of each deck next to ``figures/``, for presenting live
  with RISE in JupyterLab (``make present``);
- ``index.html``: a list of the decks.

Figures: the tag convention for chapter authors
-----------------------------------------------
A deck never holds a number copied by hand: its plots come from the chapter's own run.

1. In ``notebooks/0N_*.ipynb``, tag the code cell that draws the figure with
   ``slide-figure:chN-<name>`` (lower-case letters, digits and dashes after ``chN-``; ``N``
   is the chapter of that notebook), e.g. ``slide-figure:ch2-accuracy-sparsity``.
   In JupyterLab: select the cell, open the property inspector (gear icon), "Cell Tags".
2. The cell's first ``image/png`` output is used: draw one figure per tagged cell, end it
   with ``plt.show()``, and commit the executed notebook (``make notebooks``).
3. The deck shows it with markdown ``![what it shows](figures/chN-<name>.png)``.

A tag names one figure, so each ``slide-figure:`` tag appears on exactly one cell.

What is tolerant and what is strict
-----------------------------------
- Tolerant (always): a figure of a chapter whose notebook does not exist yet. The build
  says which figures are pending and puts a placeholder image in their place, so decks
  of chapters still being written build and can be rehearsed.
- Strict with ``--strict`` (``tests/test_slides.py`` checks the same): once a chapter's
  notebook exists, every figure a deck references from it must be there: a cell tagged
  with its name that has a PNG output. Malformed tags, a tag on two cells, a ``chN-`` tag in
  another chapter's notebook and deck images outside ``figures/`` are problems too. Without
  ``--strict`` (plain ``make slides``) they are reported, a placeholder stands in, and the
  build still succeeds, so a chapter author can look at the decks while tagging.
- Always an error: missing reveal.js/MathJax files (run ``npm ci --prefix slides``), and
  any HTML that would load a script, style sheet or image from the network.
"""

from __future__ import annotations

import argparse
import base64
import re
import shutil
import sys
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

from notebook_tools import cell_source, read_notebook

ROOT = Path(__file__).resolve().parents[1]
DECKS_DIR = ROOT / "slides"
NOTEBOOKS_DIR = ROOT / "notebooks"
OUT_DIR = ROOT / "build" / "slides"
TEMPLATE_DIR = Path(__file__).resolve().parent / "slides_template"
TEMPLATE_NAME = "course_reveal"
NODE_MODULES = DECKS_DIR / "node_modules"

TAG_PREFIX = "slide-figure:"
FIGURE_NAME = re.compile(r"^ch(?P<chapter>[1-9][0-9]*)-[a-z0-9]+(?:-[a-z0-9]+)*$")
# Markdown images and HTML <img> tags in deck cells.
DECK_IMAGE = re.compile(r"!\[[^\]]*\]\(\s*<?([^)\s>]+)>?[^)]*\)|<img\s[^>]*src=[\"']([^\"']+)[\"']")
DECK_FIGURE = re.compile(r"^figures/(?P<name>[^/]+)\.png$")

# Files copied from slides/node_modules to build/slides/vendor (relative to node_modules).
VENDOR_FILES = [
    "reveal.js/dist/reveal.js",
    "reveal.js/dist/reveal.css",
    "reveal.js/dist/reset.css",
    "reveal.js/dist/theme/white.css",
    "reveal.js/dist/theme/fonts/source-sans-pro",
    "reveal.js/plugin/notes/notes.js",
    "reveal.js/LICENSE",
    "mathjax/es5/tex-svg-full.js",
    "mathjax/LICENSE",
]


class SlideBuildError(RuntimeError):
    """The decks cannot be built (missing assets, remote references, strict problems)."""


@dataclass
class TaggedFigure:
    """One ``slide-figure:`` tag found in a chapter notebook."""

    name: str
    notebook: Path
    cell_index: int
    png: bytes | None  # None when the tagged cell has no image/png output


@dataclass
class FigurePlan:
    """Which deck figures can be cut from notebooks, which are pending, which are missing."""

    found: dict[str, TaggedFigure] = field(default_factory=dict)
    pending: dict[str, str] = field(default_factory=dict)  # name -> why (notebook not written)
    missing: dict[str, str] = field(default_factory=dict)  # name -> what to do (strict)
    problems: list[str] = field(default_factory=list)  # strict problems, in words

    @property
    def ok(self) -> bool:
        return not self.problems


def _shown(path: Path) -> str:
    """``folder/name`` for messages: decks and notebooks share their file names."""
    return f"{path.parent.name}/{path.name}"


def chapter_of(path: Path) -> int:
    """The chapter number of ``NN_name.ipynb`` (deck or notebook)."""
    match = re.match(r"^(\d\d)_", path.name)
    if not match:
        raise ValueError(f"path must be named NN_<chapter>.ipynb, got {path.name!r}")
    return int(match.group(1))


def chapter_notebook(chapter: int, notebooks_dir: Path) -> Path | None:
    """``notebooks_dir/NN_*.ipynb`` for ``chapter``, or None while it is not written."""
    found = sorted(Path(notebooks_dir).glob(f"{chapter:02d}_*.ipynb"))
    return found[0] if found else None


def first_png(cell: dict) -> bytes | None:
    for output in cell.get("outputs", []):
        data = output.get("data", {}).get("image/png")
        if data:
            return base64.b64decode("".join(data) if isinstance(data, list) else data)
    return None


def tagged_figures(notebook: Path) -> tuple[list[TaggedFigure], list[str]]:
    """Every ``slide-figure:`` tag in ``notebook`` and the problems with those tags."""
    figures, problems = [], []
    chapter = chapter_of(notebook)
    for index, cell in enumerate(read_notebook(notebook)["cells"]):
        for tag in cell.get("metadata", {}).get("tags", []):
            if not tag.startswith(TAG_PREFIX):
                continue
            name = tag[len(TAG_PREFIX) :]
            where = f"{_shown(notebook)} cell {index}"
            match = FIGURE_NAME.match(name)
            if match is None:
                problems.append(
                    f"{where}: tag {tag!r} is malformed; use 'slide-figure:ch{chapter}-<name>' "
                    "with lower-case letters, digits and dashes"
                )
                continue
            if int(match.group("chapter")) != chapter:
                problems.append(f"{where}: tag {tag!r} names another chapter; use 'ch{chapter}-'")
                continue
            if cell.get("cell_type") != "code":
                problems.append(f"{where}: tag {tag!r} is on a {cell.get('cell_type')} cell")
                continue
            figures.append(TaggedFigure(name, notebook, index, first_png(cell)))
    return figures, problems


def deck_images(deck: Path) -> list[str]:
    """Every image path a deck's markdown cells show, in order."""
    paths = []
    for cell in read_notebook(deck)["cells"]:
        if cell.get("cell_type") == "markdown":
            for match in DECK_IMAGE.finditer(cell_source(cell)):
                paths.append(match.group(1) or match.group(2))
    return paths


def deck_figures(deck: Path) -> list[str]:
    """The figure names (``chN-<name>``) a deck references as ``figures/<name>.png``."""
    names = []
    for path in deck_images(deck):
        match = DECK_FIGURE.match(path)
        if match and match.group("name") not in names:
            names.append(match.group("name"))
    return names


def plan_figures(decks: list[Path], notebooks_dir: Path) -> FigurePlan:
    """Match the figures the decks reference with the tagged cells of the chapter notebooks."""
    plan = FigurePlan()
    tags: dict[str, list[TaggedFigure]] = {}
    for notebook in sorted(Path(notebooks_dir).glob("[0-9][0-9]_*.ipynb")):
        figures, problems = tagged_figures(notebook)
        plan.problems += problems
        for figure in figures:
            tags.setdefault(figure.name, []).append(figure)
    for name, figures in tags.items():
        if len(figures) > 1:
            cells = ", ".join(f"{_shown(f.notebook)} cell {f.cell_index}" for f in figures)
            plan.problems.append(f"tag 'slide-figure:{name}' is on several cells: {cells}")
    for deck in decks:
        for path in deck_images(deck):
            match = DECK_FIGURE.match(path)
            if match is None or not FIGURE_NAME.match(match.group("name")):
                plan.problems.append(
                    f"{_shown(deck)}: image {path!r} is not figures/chN-<name>.png; decks show "
                    "only figures cut from chapter notebooks (no pasted images)"
                )
        for name in deck_figures(deck):
            if not FIGURE_NAME.match(name) or name in plan.found or name in plan.pending:
                continue
            chapter = int(FIGURE_NAME.match(name).group("chapter"))
            notebook = chapter_notebook(chapter, notebooks_dir)
            figures = tags.get(name, [])
            if notebook is None:
                plan.pending[name] = f"notebooks/{chapter:02d}_*.ipynb is not written yet"
            elif not figures:
                plan.missing[name] = f"tag a cell of {_shown(notebook)} 'slide-figure:{name}'"
                plan.problems.append(
                    f"{_shown(deck)} shows figures/{name}.png but no cell of "
                    f"{_shown(notebook)} is tagged 'slide-figure:{name}'"
                )
            elif figures[0].png is None:
                plan.missing[name] = f"execute {_shown(notebook)}: the tagged cell has no PNG"
                plan.problems.append(
                    f"{_shown(deck)} shows figures/{name}.png but {_shown(notebook)} cell "
                    f"{figures[0].cell_index} (tagged 'slide-figure:{name}') has no PNG output: "
                    "execute the notebook (make notebooks) and commit it"
                )
            else:
                plan.found[name] = figures[0]
    return plan


def placeholder_png(name: str, reason: str) -> bytes:
    """A grey PNG that says which figure will stand here and why it is not there yet."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 3.5), dpi=100)
    FigureCanvasAgg(fig)
    fig.patch.set_facecolor("#eeeeee")
    fig.text(0.5, 0.6, f"figure {name}", ha="center", fontsize=20, color="#555555")
    fig.text(0.5, 0.4, reason, ha="center", fontsize=12, color="#777777", wrap=True)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", facecolor=fig.get_facecolor())
    return buffer.getvalue()


def write_figures(plan: FigurePlan, decks: list[Path], figures_dir: Path) -> list[Path]:
    """Write found figures, and placeholders for the rest, to ``figures_dir``."""
    figures_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for deck in decks:
        for name in deck_figures(deck):
            target = figures_dir / f"{name}.png"
            if target in written:
                continue
            if name in plan.found:
                data = plan.found[name].png
            else:
                reason = plan.pending.get(name) or plan.missing.get(name, "see the build report")
                data = placeholder_png(name, reason)
            target.write_bytes(data)
            written.append(target)
    return written


def copy_vendor_assets(node_modules: Path, vendor_dir: Path) -> None:
    """Copy reveal.js and MathJax from ``node_modules`` into ``vendor_dir``."""
    missing = [rel for rel in VENDOR_FILES if not (node_modules / rel).exists()]
    if missing:
        raise SlideBuildError(
            f"reveal.js/MathJax files are missing from {node_modules} ({missing[0]}, ...): "
            "run `npm ci --prefix slides` (needs Node.js 18+), or `make slides`, which runs it"
        )
    for rel in VENDOR_FILES:
        source, target = node_modules / rel, vendor_dir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
        else:
            shutil.copy2(source, target)


class _ResourceFinder(HTMLParser):
    """Collects what a page loads by itself: scripts, style sheets, images, frames, CSS urls
    and URL strings in inline scripts."""

    LOADING = {"script": "src", "img": "src", "iframe": "src", "source": "src", "embed": "src"}

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self._text_kind: str | None = None  # "style" or "script" while inside one

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in self.LOADING and attrs.get(self.LOADING[tag]):
            self.urls.append(attrs[self.LOADING[tag]])
        if tag == "link" and attrs.get("href") and "stylesheet" in (attrs.get("rel") or ""):
            self.urls.append(attrs["href"])
        if tag in ("style", "script"):
            self._text_kind = tag

    def handle_endtag(self, tag):
        if tag in ("style", "script"):
            self._text_kind = None

    def handle_data(self, data):
        if self._text_kind == "style":
            self.urls += re.findall(r"url\(\s*['\"]?([^'\")\s]+)", data)
            self.urls += re.findall(r"@import\s+['\"]([^'\"]+)['\"]", data)
        elif self._text_kind == "script":
            self.urls += re.findall(r"['\"`]((?:https?:)?//[^'\"`\s]+)['\"`]", data)


def remote_resources(html: str) -> list[str]:
    """URLs on the network (http, https, protocol-relative) that ``html`` would load."""
    finder = _ResourceFinder()
    finder.feed(html)
    return [u for u in finder.urls if re.match(r"^(https?:)?//", u.strip(), re.IGNORECASE)]


def slides_exporter():
    """The nbconvert ``SlidesExporter`` configured for local reveal.js and MathJax."""
    from nbconvert import SlidesExporter
    from traitlets.config import Config

    config = Config()
    config.SlidesExporter.template_name = TEMPLATE_NAME
    config.SlidesExporter.extra_template_basedirs = [str(TEMPLATE_DIR)]
    config.SlidesExporter.reveal_url_prefix = "vendor/reveal.js"
    config.SlidesExporter.reveal_theme = "white"
    config.SlidesExporter.reveal_transition = "none"
    config.SlidesExporter.reveal_number = "c/t"
    config.SlidesExporter.exclude_input_prompt = True
    config.SlidesExporter.exclude_output_prompt = True
    config.HTMLExporter.mathjax_url = "vendor/mathjax/es5/tex-svg-full.js"
    return SlidesExporter(config=config)


def export_deck(deck: Path, out_dir: Path, exporter=None) -> Path:
    """Write ``out_dir/<deck>.slides.html``; refuse HTML that loads anything remote."""
    import nbformat

    exporter = exporter or slides_exporter()
    nb = nbformat.read(deck, as_version=4)
    html, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": deck.stem}})
    remote = remote_resources(html)
    if remote:
        raise SlideBuildError(f"{deck.name}: the HTML would load from the network: {remote}")
    target = out_dir / f"{deck.stem}.slides.html"
    target.write_text(html, encoding="utf-8")
    return target


def deck_title(deck: Path) -> str:
    for cell in read_notebook(deck)["cells"]:
        for line in cell_source(cell).splitlines():
            if line.startswith("# "):
                return line[2:].strip()
    return deck.stem


def write_index(decks: list[Path], out_dir: Path) -> Path:
    from html import escape

    items = "\n".join(
        f'<li><a href="{d.stem}.slides.html">{escape(deck_title(d))}</a></li>' for d in decks
    )
    page = (
        '<!DOCTYPE html>\n<html lang="en">\n<head><meta charset="utf-8">'
        "<title>Pruning recurrent text classifiers: slides</title></head>\n"
        '<body style="font-family: sans-serif; max-width: 40em; margin: 2em auto">\n'
        "<h1>Pruning recurrent text classifiers: slides</h1>\n"
        f"<ol>\n{items}\n</ol>\n"
        "<p>Keys: arrows or space to move, <kbd>S</kbd> speaker notes, <kbd>F</kbd> full "
        "screen, <kbd>Esc</kbd> overview.</p>\n</body>\n</html>\n"
    )
    target = out_dir / "index.html"
    target.write_text(page, encoding="utf-8")
    return target


def find_decks(decks_dir: Path = DECKS_DIR) -> list[Path]:
    return sorted(Path(decks_dir).glob("[0-9][0-9]_*.ipynb"))


def build(
    out_dir: Path = OUT_DIR,
    *,
    decks_dir: Path = DECKS_DIR,
    notebooks_dir: Path = NOTEBOOKS_DIR,
    node_modules: Path | None = NODE_MODULES,
    strict: bool = False,
) -> tuple[list[Path], FigurePlan]:
    """Build every deck into ``out_dir``; return the HTML files and the figure plan.

    ``node_modules=None`` skips copying reveal.js/MathJax (the HTML then needs ``vendor/``
    from another build). Raises ``SlideBuildError`` on the errors listed in the module
    docstring (and, with ``strict=True``, on any figure problem).
    """
    decks = find_decks(decks_dir)
    if not decks:
        raise SlideBuildError(f"no decks named NN_<chapter>.ipynb in {decks_dir}")
    plan = plan_figures(decks, notebooks_dir)
    if strict and not plan.ok:
        raise SlideBuildError("figure problems:\n  " + "\n  ".join(plan.problems))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if node_modules is not None:
        copy_vendor_assets(Path(node_modules), out_dir / "vendor")
    write_figures(plan, decks, out_dir / "figures")
    exporter = slides_exporter()
    pages = [export_deck(deck, out_dir, exporter) for deck in decks]
    for deck in decks:
        shutil.copy2(deck, out_dir / deck.name)
    write_index(decks, out_dir)
    return pages, plan


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="output folder")
    parser.add_argument("--strict", action="store_true", help="figure problems are errors")
    args = parser.parse_args(argv)
    try:
        pages, plan = build(args.out, strict=args.strict)
    except SlideBuildError as error:
        print(f"make slides: {error}", file=sys.stderr)
        return 1
    for page in pages:
        print(f"wrote {page.relative_to(ROOT) if page.is_relative_to(ROOT) else page}")
    print(f"figures cut from chapter notebooks: {len(plan.found)}")
    if plan.pending:
        print(f"pending (placeholder shown) until the chapter notebook exists: {len(plan.pending)}")
        for name, why in sorted(plan.pending.items()):
            print(f"  {name}: {why}")
    if plan.problems:
        print(f"problems (placeholder shown; an error with --strict): {len(plan.problems)}")
        for problem in plan.problems:
            print(f"  {problem}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
