"""Interactive widgets for live tuning in JupyterLab (ipywidgets 8).

Each widget is a pure compute function (tested headless: set inputs, assert on the
result) plus a thin ipywidgets view. One module per chapter's widgets; everything is
re-exported here, so notebooks write ``course_utils.widgets.sparsity_explorer(...)``.
"""
