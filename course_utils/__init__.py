"""Helpers for the course *Pruning recurrent text classifiers*.

The package is built in layers; a module imports only from the layers below it
(``tests/test_layers.py`` holds this). Bottom to top, with the chapter that introduces each:

- ``settings``, ``checks``, ``files``, ``seeding``, ``report``: environment, argument
  checks, atomic writes, seeds, tables (chapter 1);
- ``text``, ``data``, ``models``: the pipeline and the classifier (chapter 1);
- ``measure`` and ``plots`` (chapter 1), ``masking`` and ``verdicts`` (chapter 2);
- ``train`` and ``checkpoints``: training, evaluation, saved models (chapter 1);
- ``pruning/``: the algorithms, one module per idea (chapters 2-5);
- ``deploy/``: storage formats, export, robustness (chapter 6);
- ``experiments/``: the cached baseline (chapter 1), the multi-seed comparisons
  (chapters 3 and 5) and the method zoo (chapter 6);
- ``widgets/`` and ``exercises/``: what the notebooks show and check.

The parts to read are the algorithms in ``pruning/`` and ``masking``, ``train`` and
``models`` under them; ``experiments/`` is how the chapters run them many times. Nothing
runs at import time.
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
