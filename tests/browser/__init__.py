"""Browser tests: the slide decks in headless Chromium, JupyterLab driven by Playwright."""
