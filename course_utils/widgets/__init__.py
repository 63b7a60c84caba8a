"""Interactive widgets for live tuning in JupyterLab (ipywidgets 8).

Each widget is a pure compute function (tested headless: set inputs, assert on the
result) plus a thin ipywidgets view. One module per chapter's widgets; everything is
re-exported here, so notebooks write ``course_utils.widgets.sparsity_explorer(...)``.
"""

from .agp import AGPScheduleWidget, agp_curve, agp_schedule_widget
from .criteria import (
    CriteriaWidget,
    SideBySide,
    compare_two_criteria,
    criteria_cache,
    criteria_widget,
)
from .gan import GALThresholdExplorer, gal_threshold_stats, train_lambda_grid
from .sparsity import (
    SparsityExplorer,
    explore_sparsity,
    explorer_cache,
    sparsity_explorer,
)
from .structured import UnitsKeptExplorer, units_kept_stats

__all__ = [
    "GALThresholdExplorer",
    "gal_threshold_stats",
    "train_lambda_grid",
    "UnitsKeptExplorer",
    "units_kept_stats",
    "AGPScheduleWidget",
    "CriteriaWidget",
    "SideBySide",
    "compare_two_criteria",
    "criteria_cache",
    "criteria_widget",
    "SparsityExplorer",
    "agp_curve",
    "agp_schedule_widget",
    "explore_sparsity",
    "explorer_cache",
    "sparsity_explorer",
]
