"""The course website (``make book``) in headless Chromium, served over local HTTP.

The site is built once per session into a temporary folder and served on a loopback port;
every request for anything else is aborted. Every chapter page loads with no console error
and no failed request, opens with its learning objectives, has its formulas typeset by the
bundled MathJax and its figures loaded; the widget cells show their static view; the table
of contents navigates; the search finds a chapter-5 term; the slides are linked.
"""

from __future__ import annotations

import functools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import build_book  # noqa: E402  (tools/ is on pytest's pythonpath)
import pytest

from .browser_support import require

CHAPTERS = [nb.stem for nb in build_book.chapter_notebooks()]


@pytest.fixture(scope="session")
def built_book(tmp_path_factory, chromium_path):
    if not build_book.MATHJAX.exists():
        require("MathJax is not installed: run `npm ci --prefix slides` (needs Node.js)")
    try:
        import myst_nb  # noqa: F401
        import sphinx_book_theme  # noqa: F401
    except ImportError:
        require("Sphinx/MyST-NB are not installed (pip install -e '.[book]')")
    root = tmp_path_factory.mktemp("book")
    build_book.build(root / "site", root / "src")
    return root / "site"


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass


@pytest.fixture(scope="session")
def book_url(built_book):
    handler = functools.partial(_QuietHandler, directory=str(built_book))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def watch(page, base: str) -> dict[str, list[str]]:
    """Abort requests outside the site; collect them, failed requests and console errors."""
    seen: dict[str, list[str]] = {"remote": [], "failed": [], "console": []}

    def block(route):
        seen["remote"].append(route.request.url)
        route.abort()

    page.route(lambda url: not url.startswith(base), block)
    page.on("requestfailed", lambda request: seen["failed"].append(request.url))
    page.on(
        "console", lambda message: message.type == "error" and seen["console"].append(message.text)
    )
    return seen


def wait_for_mathjax(page) -> None:
    page.wait_for_function(
        "() => window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=60_000
    )
    page.evaluate("() => MathJax.startup.promise")


def assert_clean(page, seen) -> None:
    assert seen["remote"] == [], f"the page asked the network for {seen['remote']}"
    assert seen["failed"] == [], f"requests that failed: {seen['failed']}"
    assert seen["console"] == [], f"console errors: {seen['console']}"
    assert page.page_errors == []


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_page_loads_with_objectives_math_and_figures(page, book_url, chapter):
    seen = watch(page, book_url)
    page.goto(f"{book_url}chapters/{chapter}.html")
    wait_for_mathjax(page)
    page.wait_for_load_state("load")

    title = page.locator("article h1").first.inner_text()
    number = chapter.split("_", 1)[0].lstrip("0")
    assert title.startswith(f"Chapter {number} "), title
    article = page.locator("article").inner_text()
    assert "What you will be able to do after this chapter" in article
    assert article.index("What you will be able to do") < 2000, "objectives not at the top"

    typeset = page.evaluate("() => document.querySelectorAll('mjx-container svg').length")
    assert typeset > 0, "no formula was typeset"
    assert page.evaluate("() => document.querySelectorAll('mjx-merror').length") == 0
    untypeset = page.evaluate(
        "() => Array.from(document.querySelectorAll('.math'))"
        ".filter(e => !e.querySelector('mjx-container')).length"
    )
    assert untypeset == 0, f"{untypeset} formulas left as TeX"

    images = page.evaluate(
        "() => Array.from(document.querySelectorAll('article img'))"
        ".map(i => [i.getAttribute('src').slice(0, 60), i.complete && i.naturalWidth])"
    )
    assert images, "no figure on the page"
    assert [src for src, width in images if not width] == [], "figures that did not load"
    assert_clean(page, seen)


def test_widget_cells_show_their_static_view(page, book_url):
    seen = watch(page, book_url)
    page.goto(f"{book_url}chapters/02_magnitude_pruning.html")
    article = page.locator("article").inner_text()
    assert article.count("A static view of the widget") == 2
    assert "ExplorerBox(" not in article, "a widget shown as its text/plain repr"
    assert_clean(page, seen)


def test_table_of_contents_navigates(page, book_url):
    seen = watch(page, book_url)
    page.goto(book_url)
    assert "Pruning recurrent text classifiers" in page.locator("article h1").inner_text()
    link = page.locator("nav.bd-links a", has_text="Chapter 3").first
    link.click()
    page.wait_for_url("**/chapters/03_gradient_pruning.html")
    assert page.locator("article h1").first.inner_text().startswith("Chapter 3 ")
    page.locator("nav.bd-links a", has_text="Chapter 5b").first.click()
    page.wait_for_url("**/chapters/05b_data_free_distillation.html")
    page.locator("a.right-next").first.click()
    page.wait_for_url("**/chapters/06_compare_and_deploy.html")
    assert_clean(page, seen)


def test_search_finds_fista_in_chapter_5(page, book_url):
    seen = watch(page, book_url)
    page.goto(book_url)
    page.locator("button.search-button-field").first.click()
    page.keyboard.type("FISTA")
    page.keyboard.press("Enter")
    page.wait_for_url("**/search.html?q=FISTA*")
    results = page.locator("#search-results li a")
    results.first.wait_for(timeout=30_000)
    hrefs = [results.nth(i).get_attribute("href") for i in range(results.count())]
    assert any("chapters/05_gan_guided_pruning.html" in href for href in hrefs), hrefs
    assert_clean(page, seen)


def test_home_page_links_the_guide_and_the_slides(page, book_url):
    seen = watch(page, book_url)
    page.goto(book_url)
    table = page.locator("article table").first
    assert table.locator("a").count() == len(CHAPTERS)
    page.locator("nav.bd-links a", has_text="Instructor guide").first.click()
    page.wait_for_url("**/instructor.html")
    page.locator("article a", has_text="README").first.click()
    page.wait_for_url("**/index.html#chapters")
    page.locator("nav.bd-links a", has_text="Slides").first.click()
    page.wait_for_url("**/slides.html")
    decks = page.locator("ol.course-decks a")
    assert decks.count() == len(build_book.build_slides.find_decks())
    decks.first.click()
    page.wait_for_url("**/slides/01_baseline_rnn.slides.html")
    page.wait_for_function("() => window.Reveal && Reveal.isReady()", timeout=60_000)
    assert_clean(page, seen)
