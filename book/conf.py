"""Sphinx configuration of the course website: ``make book`` (tools/build_book.py).

The build copies this folder, the executed chapter notebooks, the README's overview and the
instructor guide into ``build/book-src/`` and runs Sphinx there; the site goes to
``build/book/``. Nothing is executed: the pages show the outputs committed in the notebooks.
MathJax is the copy in ``slides/node_modules`` (``npm ci --prefix slides``), served from the
site itself, so the pages load nothing from the network.
"""

project = "Pruning recurrent text classifiers"
author = "the course authors"
copyright = "the course authors, MIT licence"
html_title = project

extensions = ["myst_nb"]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints"]
root_doc = "index"

# MyST: $...$ and $$...$$ math, \begin{align} blocks, ::: fences.
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3

# The committed outputs, never a new run.
nb_execution_mode = "off"
# Widgets: no widget JavaScript (it would come from a CDN, and the notebooks keep no widget
# state); each widget cell shows the static view it stores as text/html.
nb_ipywidgets_js = {}
nb_mime_priority_overrides = [("html", "application/vnd.jupyter.widget-view+json", None)]

# MathJax 3 from _static/mathjax (copied there by the build), never a CDN.
mathjax_path = "mathjax/tex-svg-full.js"

html_theme = "sphinx_book_theme"
html_static_path = ["_static"]
html_theme_options = {
    "home_page_in_toc": True,
    "show_toc_level": 2,
    "use_download_button": True,
    "use_fullscreen_button": False,
    "navigation_with_keys": False,
    "navbar_persistent": [],
}
# Light: the figures are drawn on white (and an empty mode is an error in the console).
html_context = {"default_mode": "light"}
html_show_sourcelink = False
html_copy_source = True
