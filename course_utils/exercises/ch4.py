"""Exercise checks for chapter 4 (regularization and structured pruning)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..models import RNNClassifier
from ..pruning.regularization import Group, GroupSet, Slice, hidden_unit_groups, soft_threshold
from .common import CheckResult, assert_close, run_checks

__all__ = [
    "check_group_shrink",
    "check_iss_group_masks",
    "check_soft_threshold",
    "reference_group_shrink",
]


def check_soft_threshold(fn: Callable) -> CheckResult:
    """``fn(weight, threshold)`` -> ``sign(w) * max(|w| - threshold, 0)`` (a new tensor)."""

    def cases(fn):
        g = torch.Generator().manual_seed(4)
        w = torch.randn(6, 5, generator=g)
        for threshold in (0.0, 0.3, 1.0, 5.0):
            got = fn(w.clone(), threshold)
            assert_close(got, soft_threshold(w, threshold), f"threshold={threshold}", atol=1e-6)
            zeros = int((w.abs() <= threshold).sum())
            assert int((got == 0).sum()) == zeros, (
                f"threshold={threshold}: expected {zeros} exact zeros, got {int((got == 0).sum())}"
            )

    return run_checks("soft threshold (L1 proximal step)", fn, cases)


def check_iss_group_masks(fn: Callable) -> CheckResult:
    """``fn(input_size, hidden_size, num_classes, unit)`` -> ``{name: bool mask}`` marking the
    ISS group of LSTM unit ``unit`` in a one-layer, one-direction RNNClassifier; names
    ``rnn.weight_ih_l0``, ``rnn.weight_hh_l0``, ``rnn.bias_ih_l0``, ``rnn.bias_hh_l0``,
    ``classifier.weight``; each mask has its parameter's shape."""

    def cases(fn):
        for e, h, c, k in [(3, 4, 2, 1), (5, 3, 4, 0), (2, 6, 3, 5)]:
            model = RNNClassifier(10, c, embed_dim=e, hidden_size=h)
            groups = hidden_unit_groups(model)
            want = groups.element_masks(k)
            got = fn(e, h, c, k)
            assert isinstance(got, dict), f"expected a dict, got {type(got).__name__}"
            assert set(got) == set(want), (
                f"E={e} H={h} unit={k}: names {sorted(got)}, expected {sorted(want)}"
            )
            for name, mask in want.items():
                m = got[name]
                assert isinstance(m, torch.Tensor) and m.shape == mask.shape, (
                    f"{name}: expected a mask of shape {tuple(mask.shape)}"
                )
                assert torch.equal(m.bool(), mask), (
                    f"E={e} H={h} unit={k}: {name} marks {int(m.bool().sum())} weights, "
                    f"expected {int(mask.sum())} (check the gate rows and the columns)"
                )

    return run_checks("ISS group of one LSTM unit", fn, cases)


def _row_groups(rows: int, cols: int) -> GroupSet:
    """One group per row of a parameter named ``weight`` of shape (rows, cols)."""
    groups = [Group(("row", i), (Slice("weight", 0, (i,)),)) for i in range(rows)]
    return GroupSet(groups, rows, {"weight": (rows, cols)})


def reference_group_shrink(weight: torch.Tensor, threshold: float) -> torch.Tensor:
    """The course's answer to ``group_shrink``: ``GroupSet.shrink_`` with one group per row.

    ``weight`` (rows, cols) is not changed; returns a new tensor of its shape.
    """
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"weight must be a 2-D tensor (rows, cols), got {type(weight).__name__}")
    if weight.dim() != 2:
        raise ValueError(f"weight must be a 2-D tensor (rows, cols), got {tuple(weight.shape)}")
    holder = nn.Module()
    holder.weight = nn.Parameter(weight.detach().clone(), requires_grad=False)
    _row_groups(*weight.shape).shrink_(holder, threshold)
    return holder.weight.detach()


def check_group_shrink(fn: Callable) -> CheckResult:
    """``fn(weight, threshold)`` -> a new (rows, cols) tensor where each row, one group,
    is scaled by ``max(0, 1 - threshold / ||row||_2)``."""

    def cases(fn):
        g = torch.Generator().manual_seed(7)
        w = torch.randn(5, 4, generator=g) * torch.tensor([[0.1], [1.0], [0.5], [2.0], [0.0]])
        rows = _row_groups(5, 4)
        for threshold in (0.0, 0.4, 1.5):
            layer = nn.Linear(4, 5)  # its init draws from the global generator: the
            # chapter's later cells see that state, so keep this draw
            with torch.no_grad():
                layer.weight.copy_(w)
            rows.shrink_(layer, threshold)
            got = fn(w.clone(), threshold)
            assert_close(got, layer.weight.detach(), f"threshold={threshold}", atol=1e-6)

    return run_checks("group soft threshold", fn, cases)
