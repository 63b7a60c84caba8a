"""Helpers for the course *Pruning recurrent text classifiers*.

One module per idea, named after it: ``data`` and ``text`` (chapter 1's pipeline),
``models``, ``train``, ``measure``, ``baseline``, ``pruning`` (chapters 2-5),
``widgets`` and ``exercises``. Nothing runs at import time.
"""

from .experiments.baseline import Baseline, BaselineConfig, get_baseline
from .seeding import set_seed
from .settings import default_device, fast_mode

__all__ = [
    "Baseline",
    "BaselineConfig",
    "default_device",
    "fast_mode",
    "get_baseline",
    "set_seed",
]
__version__ = "1.0.0"
