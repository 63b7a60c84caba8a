"""Fixtures for the browser tests: headless Chromium through Playwright, and JupyterLab.

Chromium is found as ``$COURSE_CHROMIUM``, then ``chromium``/``chromium-browser``/
``google-chrome`` on PATH, then Playwright's own download (``playwright install chromium``).
Without one, these tests are skipped with a notice printed at the end of the run: they
did not pass, they were not run. ``COURSE_REQUIRE_BROWSER=1`` (set by ``.ci/run``) turns
a missing browser, Playwright or reveal.js into a test failure.

On a failure the page's screenshot and, for JupyterLab tests, the server log are saved
under ``build/browser-failures/``.
"""

from __future__ import annotations

import os
import re
import shutil
import sys

import pytest

from .browser_support import (
    CHROMIUM_ARGS,
    FAILURES,
    NOTICES,
    ROOT,
    VIEWPORT,
    find_chromium,
    load_build_slides,
    require,
)
from .lab_server import JupyterLabServer


def pytest_terminal_summary(terminalreporter):
    if NOTICES:
        terminalreporter.write_sep("!", "BROWSER TESTS NOT RUN", yellow=True, bold=True)
        for notice in NOTICES:
            terminalreporter.write_line(f"  {notice}")
        terminalreporter.write_line(
            "  These checks did not pass: they were not run. Install Chromium (Debian/Ubuntu: "
            "apt-get install chromium) or set COURSE_CHROMIUM=/path/to/chrome."
        )


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        require("the Python package playwright is not installed (pip install -e '.[dev]')")
    path = find_chromium()
    explicit = os.environ.get("COURSE_CHROMIUM")
    if path is None and explicit:
        require(f"COURSE_CHROMIUM={explicit} does not exist")
    if path is None:
        require("no Chromium/Chrome executable found")
    return path


@pytest.fixture(scope="session")
def browser(chromium_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        instance = p.chromium.launch(
            executable_path=chromium_path, args=CHROMIUM_ARGS, headless=True, timeout=120_000
        )
        try:
            yield instance
        finally:
            instance.close()


def failure_name(item) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", item.nodeid)[-150:]


@pytest.fixture
def page(browser, request):
    """A fresh page; on failure its screenshot goes to build/browser-failures/."""
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(60_000)
    new_page = context.new_page()
    errors: list[str] = []
    new_page.on("pageerror", lambda error: errors.append(str(error)))
    new_page.page_errors = errors
    try:
        yield new_page
    finally:
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            FAILURES.mkdir(parents=True, exist_ok=True)
            try:
                new_page.screenshot(path=str(FAILURES / f"{failure_name(request.node)}.png"))
            except Exception as error:  # the page may be gone; the test failure is what counts
                print(f"no failure screenshot: {error}", file=sys.stderr)
        context.close()


@pytest.fixture(scope="session")
def build_slides():
    return load_build_slides()


@pytest.fixture(scope="session")
def lab_root(tmp_path_factory, build_slides):
    """A notebook folder for JupyterLab: the chapters, and deck 01 with its figures in slides/."""
    root = tmp_path_factory.mktemp("lab-root")
    for path in sorted((ROOT / "notebooks").glob("[0-9]*.ipynb")):
        shutil.copy2(path, root / path.name)
    deck = build_slides.find_decks()[0]
    (root / "slides").mkdir()
    shutil.copy2(deck, root / "slides" / deck.name)
    plan = build_slides.plan_figures([deck], build_slides.NOTEBOOKS_DIR)
    build_slides.write_figures(plan, [deck], root / "slides" / "figures")
    return root


@pytest.fixture(scope="session")
def lab_server(chromium_path, lab_root, tmp_path_factory, request):
    """``jupyter lab`` on a free loopback port with a token; always stopped at the end."""
    cache = os.environ.get("COURSE_CACHE") or str(ROOT / ".cache")
    env = {"COURSE_FAST": "1", "COURSE_CACHE": cache, "COURSE_PROGRESS": "0"}
    server = JupyterLabServer(lab_root, tmp_path_factory.mktemp("lab-work"), env=env)

    def save_log():
        FAILURES.mkdir(parents=True, exist_ok=True)
        if server.log_path.exists():
            shutil.copy2(server.log_path, FAILURES / "jupyter-lab.log")

    try:
        server.start()
    except RuntimeError:
        save_log()
        raise
    try:
        yield server
    finally:
        server.stop()
        if request.session.testsfailed:
            save_log()
