"""Shared by the browser tests and their fixtures: finding Chromium, the notice/require rule.

``require(reason)`` skips a test with a notice printed at the end of the run, or fails it
when ``COURSE_REQUIRE_BROWSER=1`` (set by ``.ci/run``).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FAILURES = ROOT / "build" / "browser-failures"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 800}
NOTICES: list[str] = []


def load_build_slides():
    """``tools/build_slides.py`` as a module (tools/ is not a package), loaded once."""
    if "build_slides" in sys.modules:
        return sys.modules["build_slides"]
    spec = importlib.util.spec_from_file_location(
        "build_slides", ROOT / "tools" / "build_slides.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["build_slides"] = module
    spec.loader.exec_module(module)
    return module


def require(reason: str):
    """Skip with a notice, or fail when ``COURSE_REQUIRE_BROWSER=1``."""
    if os.environ.get("COURSE_REQUIRE_BROWSER", "").strip() == "1":
        pytest.fail(f"{reason} (COURSE_REQUIRE_BROWSER=1)", pytrace=False)
    if reason not in NOTICES:
        NOTICES.append(reason)
    pytest.skip(f"NOT TESTED: {reason}")


def find_chromium() -> str | None:
    """A Chromium or Chrome executable, or None."""
    explicit = os.environ.get("COURSE_CHROMIUM")
    if explicit:
        return explicit if Path(explicit).exists() else None
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    mac = Path("/Applications/Google Chrome.app/Contents/MacOS/Google Chrome")
    if mac.exists():
        return str(mac)
    try:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            bundled = p.chromium.executable_path
        return bundled if Path(bundled).exists() else None
    except Exception:  # no playwright, or no driver: treated as "no browser"
        return None
