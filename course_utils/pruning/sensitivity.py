"""Sensitivity analysis: how much does each tensor tolerate being pruned on its own?

Introduced in chapter 2. :func:`sensitivity_scan` prunes one tensor at a time, by
magnitude (or at random), over a grid of sparsities, without fine-tuning, and records
the validation accuracy; :func:`plot_sensitivity` draws one curve per tensor. Tensors
whose curve stays flat can take a higher sparsity than the others (Han et al. 2015 chose
per-layer thresholds this way).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from ..masking import check_names, check_sparsity, prunable_parameters
from ..models import tensor_group
from ..report import Table
from ..seeding import keeps_global_rng
from ..train import evaluate
from .magnitude import CRITERIA, check_criterion
from .selection import select_layerwise

DEFAULT_GRID = (0.5, 0.7, 0.8, 0.9, 0.95, 0.98)


@torch.no_grad()
@keeps_global_rng
def sensitivity_scan(
    model: nn.Module,
    loader,
    sparsities: Sequence[float] = DEFAULT_GRID,
    *,
    names: Sequence[str] | None = None,
    include_embedding: bool = True,
    criterion: str = "magnitude",
    seed: int = 0,
) -> Table:
    """Validation accuracy with one tensor pruned at a time; ``model`` is not modified.

    Returns a Table with one row per (tensor, sparsity): ``tensor``, ``group``,
    ``sparsity``, ``accuracy``, ``loss``; plus one row with ``tensor="(dense)"`` and
    sparsity 0 for the unpruned model.
    """
    check_criterion(criterion)
    if isinstance(sparsities, int | float) or not len(sparsities):
        raise ValueError(f"sparsities must be a non-empty list of numbers, got {sparsities!r}")
    grid = [check_sparsity(s, "sparsities") for s in sparsities]
    work = copy.deepcopy(model)
    if names is None:
        names = list(prunable_parameters(work, include_embedding=include_embedding))
    elif not names:
        raise ValueError("names is empty: no tensors to scan")
    params = check_names(work, names)
    dense = evaluate(work, loader)
    rows = Table(
        [
            {
                "tensor": "(dense)",
                "group": "",
                "sparsity": 0.0,
                "accuracy": dense["accuracy"],
                "loss": dense["loss"],
            }
        ]
    )
    for name in names:
        weight = params[name]
        original = weight.detach().clone()
        scores = CRITERIA[criterion](
            work, [name], **({"seed": seed} if criterion == "random" else {})
        )
        for sparsity in grid:
            mask = select_layerwise(scores, sparsity)[name]
            weight.copy_(original * mask)
            metrics = evaluate(work, loader)
            rows.append(
                {
                    "tensor": name,
                    "group": tensor_group(name),
                    "sparsity": sparsity,
                    "accuracy": metrics["accuracy"],
                    "loss": metrics["loss"],
                }
            )
        weight.copy_(original)
    return rows


def plot_sensitivity(table: Table, ax=None, *, title: str = "Sensitivity of each tensor"):
    """One accuracy-vs-sparsity curve per tensor from :func:`sensitivity_scan`'s table."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.8))
    dense = [r for r in table if r["tensor"] == "(dense)"]
    names = list(dict.fromkeys(r["tensor"] for r in table if r["tensor"] != "(dense)"))
    for name in names:
        rows = sorted((r for r in table if r["tensor"] == name), key=lambda r: r["sparsity"])
        ax.plot(
            [100 * r["sparsity"] for r in rows],
            [100 * r["accuracy"] for r in rows],
            "o-",
            label=name,
        )
    if dense:
        ax.axhline(100 * dense[0]["accuracy"], color="grey", ls="--", lw=1, label="dense")
    ax.set_xlabel("sparsity of that tensor alone (%)")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return ax


__all__ = ["DEFAULT_GRID", "plot_sensitivity", "sensitivity_scan"]
