"""JupyterLab in headless Chromium: notebooks run, widgets respond, decks present with RISE.

One server for the whole module (``lab_server``): copies of the chapter notebooks, a small
harness notebook and deck 01 in a temporary folder; fast mode and the repository's
baseline cache, so chapter 2 loads the baseline instead of training it.

- The harness test checks the machinery itself with a tiny slider that has the sparsity
  explorer's CSS classes: the server starts, the kernel is this virtual environment's,
  "Run All Above" runs the cells a widget needs, the widget renders and answers the slider.
- The chapter 2 test does the same with the real ``sparsity_explorer``. It runs only the
  cells the explorer cell needs (found by reading which cells bind the names it uses:
  the set-up cell and the baseline cell), as a learner who jumps to the widget would, so
  that it does not retrain the whole chapter. It is skipped (with its reason) only while
  notebooks/02_magnitude_pruning.ipynb does not exist.
- The RISE test opens deck 01 in JupyterLab, starts the RISE presentation and moves on a slide.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from .lab_server import (
    cell_errors,
    cell_output_text,
    cells_needed,
    code_sources,
    open_notebook,
    run_cells,
    run_cells_through,
    run_command,
)

SLIDER = ".sparsity-slider"
DISPLAYED = (".sparsity-accuracy", ".sparsity-overall")
RUN_TIMEOUT_S = 300  # one cell of chapter 2 (loading the baseline), fast mode, 2 busy cores

HARNESS_WIDGET = """\
slider = widgets.FloatSlider(
    value=0.5, min=0.0, max=0.95, step=0.05, description="sparsity", continuous_update=False
)
slider.add_class("sparsity-slider")
accuracy = widgets.HTML()
accuracy.add_class("sparsity-accuracy")
overall = widgets.HTML()
overall.add_class("sparsity-overall")


def update(change=None):
    accuracy.value = f"accuracy {BASE_ACCURACY * (1 - slider.value**3):.1%}"
    overall.value = f"overall sparsity {slider.value:.0%}"


slider.observe(update, names="value")
update()
widgets.VBox([slider, accuracy, overall])"""


@pytest.fixture(scope="module")
def harness(lab_root) -> str:
    """A notebook whose widget needs a variable from an earlier cell."""
    nb = new_notebook(
        cells=[
            new_markdown_cell("# Browser-test harness"),
            new_code_cell("import sys\n\nimport ipywidgets as widgets\n\nprint(sys.prefix)"),
            new_code_cell("BASE_ACCURACY = 0.9"),
            new_code_cell(HARNESS_WIDGET),
        ]
    )
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nbformat.write(nb, lab_root / "harness.ipynb")
    return "harness.ipynb"


def displayed(page) -> tuple[str, ...]:
    return tuple(page.locator(selector).first.inner_text().strip() for selector in DISPLAYED)


def move_slider_and_wait_for_change(page, timeout_s: float = 120) -> tuple[tuple, tuple]:
    """Press a key on the slider's handle; return what was displayed before and after."""
    page.locator(SLIDER).first.wait_for(state="visible", timeout=timeout_s * 1000)
    for selector in DISPLAYED:
        page.locator(selector).first.wait_for(state="visible", timeout=timeout_s * 1000)
    before = displayed(page)
    handle = page.locator(f"{SLIDER} .noUi-handle").first
    at_max = float(handle.get_attribute("aria-valuenow")) >= float(
        handle.get_attribute("aria-valuemax")
    )
    handle.focus()
    page.keyboard.press("ArrowLeft" if at_max else "ArrowRight")
    page.wait_for_function(
        "([selectors, before]) => selectors.some((s, i) =>"
        " document.querySelector(s).innerText.trim() !== before[i])",
        arg=[list(DISPLAYED), list(before)],
        timeout=timeout_s * 1000,
        polling=250,
    )
    page.wait_for_timeout(1000)  # let both displayed values settle
    return before, displayed(page)


def test_harness_lab_runs_the_venv_kernel_and_a_widget_answers_its_slider(
    page, lab_server, harness
):
    open_notebook(page, lab_server, harness)
    run_cells_through(page, 3, timeout_s=120)
    assert cell_output_text(page, 1).strip() == sys.prefix, "the kernel is not this venv's"
    before, after = move_slider_and_wait_for_change(page)
    assert before == ("accuracy 78.8%", "overall sparsity 50%")
    assert after == ("accuracy 75.0%", "overall sparsity 55%")
    assert cell_errors(page) == []


def test_cells_needed_follows_the_names_a_cell_reads():
    sources = [
        "import torch\nimport course_utils as cu",  # 0: set-up, always run
        None,  # markdown
        "baseline = cu.get_baseline()\nmodel = baseline.model",  # 2
        "slow = train_for_an_hour(model)",  # 3: not needed
        "%%time\nx = 1",  # 4: not Python
        "import ipywidgets as widgets",  # 5
        "def show(m):\n    return widgets.view(m)",  # 6
        "model = baseline.copy_model()",  # 7: the latest binding of model
        "show(model)",  # 8
    ]
    assert cells_needed(sources, 8) == [0, 2, 5, 6, 7, 8]
    assert cells_needed(sources, 3) == [0, 2, 3]
    assert cells_needed(sources, 4) == [0, 4]


def chapter2_notebook(root: Path) -> Path | None:
    found = sorted(root.glob("02_*.ipynb"))
    return found[0] if found else None


def test_chapter2_sparsity_explorer_answers_its_slider(page, lab_server, lab_root):
    notebook = chapter2_notebook(lab_root)
    if notebook is None:
        pytest.skip("notebooks/02_magnitude_pruning.ipynb is not written yet")
    open_notebook(page, lab_server, notebook.name)
    sources = code_sources(page)
    cells = [i for i, src in enumerate(sources) if src and "sparsity_explorer(" in src]
    assert cells, f"{notebook.name} has no cell calling sparsity_explorer("
    needed = cells_needed(sources, cells[0])
    assert len(needed) >= 2, needed  # at least the set-up cell and the explorer
    run_cells(page, needed, timeout_s=RUN_TIMEOUT_S)
    before, after = move_slider_and_wait_for_change(page, timeout_s=180)
    assert before[0] != after[0], f"accuracy did not change: {before} -> {after}"
    assert before[1] != after[1], f"overall sparsity did not change: {before} -> {after}"
    assert not [e for e in cell_errors(page) if "Error" in e or "Traceback" in e]


def test_rise_presents_a_deck_in_jupyterlab(page, lab_server, lab_root):
    decks = sorted((lab_root / "slides").glob("01_*.ipynb"))
    assert decks, "deck 01 was not copied into the lab folder"
    remote: list[str] = []
    page.on(
        "request",
        lambda r: remote.append(r.url) if not r.url.startswith(lab_server.base_url) else None,
    )
    open_notebook(page, lab_server, f"slides/{decks[0].name}")
    assert run_command(page, "RISE:preview", timeout_s=60) == "done"
    frame = None
    for _ in range(120):
        frame = next((f for f in page.frames if "/rise/" in f.url), None)
        if frame is not None:
            break
        page.wait_for_timeout(500)
    assert frame is not None, "RISE did not open its presentation frame"
    present = ".reveal .slides section.present:not(.stack)"
    frame.wait_for_selector(present, timeout=120_000)
    frame.wait_for_function(
        "(s) => document.querySelector(s).textContent.includes('Chapter 1')",
        arg=present,
        timeout=60_000,
    )
    assert frame.evaluate("() => document.querySelectorAll('mjx-container').length") > 0
    first = frame.evaluate("() => location.hash")
    frame.locator(f"{present} .jp-Cell").first.click()
    page.keyboard.press("ArrowRight")
    frame.wait_for_function("(h) => location.hash !== h", arg=first, timeout=30_000)
    assert "After this chapter" in frame.locator(present).text_content()
    assert remote == [], f"RISE asked the network for {remote}"


def test_self_paced_solution_toggle_opens_in_jupyterlab(page, lab_server, lab_root):
    from notebook_tools import write_student_copies

    copies = write_student_copies(lab_root, lab_root / "self-paced", inline_solutions=True)
    assert copies
    open_notebook(page, lab_server, f"self-paced/{copies[0].name}")
    toggle = page.locator(".jp-RenderedMarkdown details").first
    toggle.scroll_into_view_if_needed()
    assert toggle.get_attribute("open") is None, "the solution is shown before asking"
    assert not toggle.locator("pre").first.is_visible()
    toggle.locator("summary").click()
    code = toggle.locator("pre").first
    code.wait_for(state="visible", timeout=10_000)
    assert "def " in code.inner_text()
