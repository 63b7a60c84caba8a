"""The built reveal.js decks in headless Chromium, with the network cut off.

For every deck: the first slide renders (a screenshot with real contrast, not a blank
page), the next-slide key moves to slide 2, every formula is typeset by the bundled
MathJax with no error, every figure loads, and the page asks for nothing outside its
folder.
"""

from __future__ import annotations

import io

import pytest

from .browser_support import load_build_slides, require

BUILD = load_build_slides()
DECKS = BUILD.find_decks()


@pytest.fixture(scope="session")
def built_slides(tmp_path_factory, chromium_path):
    if not (BUILD.NODE_MODULES / "reveal.js").exists():
        require("reveal.js is not installed: run `npm ci --prefix slides` (needs Node.js)")
    out = tmp_path_factory.mktemp("slides")
    BUILD.build(out)
    return out


def open_deck(page, path):
    """Load a deck with every non-file request aborted; return the list of those requests."""
    remote: list[str] = []

    def block(route):
        remote.append(route.request.url)
        route.abort()

    page.route(lambda url: not url.startswith("file:"), block)
    failed: list[str] = []
    page.on("requestfailed", lambda request: failed.append(request.url))
    page.goto(path.as_uri())
    page.wait_for_function("() => window.Reveal && Reveal.isReady()", timeout=60_000)
    page.wait_for_function(
        "() => window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=60_000
    )
    page.evaluate("() => MathJax.startup.promise")
    return remote, failed


def contrast(png: bytes) -> tuple[float, float]:
    """Grey-level standard deviation, and the share of pixels unlike the commonest colour."""
    from PIL import Image, ImageStat

    grey = Image.open(io.BytesIO(png)).convert("L")
    histogram = grey.histogram()
    background = max(range(256), key=histogram.__getitem__)
    total = sum(histogram)
    unlike = sum(n for level, n in enumerate(histogram) if abs(level - background) > 40)
    return ImageStat.Stat(grey).stddev[0], unlike / total


def test_blank_page_has_no_contrast(browser):
    page = browser.new_page()
    try:
        page.set_content("<html><body style='background:white'></body></html>")
        std, share = contrast(page.screenshot())
    finally:
        page.close()
    assert std < 1 and share == 0


@pytest.mark.parametrize("deck", DECKS, ids=lambda p: p.stem)
def test_deck_renders_offline_and_the_next_slide_key_works(page, built_slides, deck):
    html = built_slides / f"{deck.stem}.slides.html"
    assert html.exists(), f"{html.name} was not built"
    remote, failed = open_deck(page, html)

    assert page.evaluate("() => Reveal.getIndices()")["h"] == 0
    std, share = contrast(page.screenshot())
    assert std > 10 and share > 0.005, f"first slide looks blank (std {std:.1f}, ink {share:.3%})"
    title = page.evaluate("() => Reveal.getCurrentSlide().innerText")
    assert title.strip().lower().startswith(f"chapter {int(deck.name[:2])}")

    page.keyboard.press("ArrowRight")
    page.wait_for_function("() => Reveal.getIndices().h === 1", timeout=10_000)
    assert page.evaluate("() => Reveal.getCurrentSlide().innerText") != title

    formulas = page.evaluate("() => document.querySelectorAll('mjx-container svg').length")
    assert formulas > 0, "no formula was typeset"
    assert page.evaluate("() => document.querySelectorAll('mjx-merror').length") == 0
    assert "$$" not in page.evaluate("() => document.querySelector('.reveal').innerText")

    images = page.evaluate(
        "() => Array.from(document.images).map(i => [i.getAttribute('src'), i.naturalWidth])"
    )
    assert images, "no figure in the deck"
    assert [src for src, width in images if width == 0] == [], "figures that did not load"

    assert remote == [], f"the deck asked the network for {remote}"
    assert failed == [], f"requests that failed: {failed}"
    assert page.page_errors == []


def test_build_writes_an_index_and_deck_copies_for_rise(built_slides):
    assert (built_slides / "index.html").exists()
    for deck in DECKS:
        assert (built_slides / deck.name).exists(), "the deck copy for RISE is missing"
