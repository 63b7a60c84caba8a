"""Experiment drivers: the cached baseline, the method zoo and the multi-seed comparisons.

Everything here is built from the algorithms in :mod:`course_utils.pruning`; nothing
there imports from here. ``baseline`` (chapter 1: train once, cache, reload),
``methods`` (the one registry of pruning methods, by name), ``comparison`` (chapter 3:
criteria over seeds and sparsities), ``gan_comparison`` (chapter 5: pruning to a
hidden-unit budget, GAL against its controls), ``unit_grid`` (chapters 4 and 5's verdict
grid: budgets × seeds, paired verdicts; ``grid_ray`` runs its rows as Ray tasks, with the
``scale`` extra), ``zoo`` (chapter 6: every method's pruned model, cached), ``sparse_speed``
(chapter 6: when the sparse path beats dense) and
``onnx_speed`` (chapter 6: ONNX Runtime against eager PyTorch; needs the ``deploy`` extra). A
learner reads the algorithms; these files are how the chapters and the benchmark run them
many times.
"""

__all__ = [
    "baseline",
    "comparison",
    "gan_comparison",
    "grid_ray",
    "methods",
    "onnx_speed",
    "sparse_speed",
    "unit_grid",
    "zoo",
]
