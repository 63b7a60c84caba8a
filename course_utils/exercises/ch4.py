"""Exercise checks for chapter 4 (regularization and structured pruning)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..models import RNNClassifier
from ..pruning.regularization import Group, GroupSet, Slice, hidden_unit_groups, soft_threshold
from ..pruning.structured import remove_hidden_units
from ..seeding import keeps_global_rng
from .common import CheckResult, assert_close, run_checks

__all__ = [
    "check_group_shrink",
    "check_iss_group_masks",
    "check_remove_units",
    "check_soft_threshold",
    "reference_group_shrink",
    "reference_remove_units",
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


_LSTM_KEYS = (
    "embedding.weight",
    "rnn.weight_ih_l0",
    "rnn.weight_hh_l0",
    "rnn.bias_ih_l0",
    "rnn.bias_hh_l0",
    "classifier.weight",
    "classifier.bias",
)


def _check_lstm_state(state, keep) -> int:
    """The hidden size of a one-layer, one-direction LSTM classifier's ``state``."""
    if not isinstance(state, dict) or set(state) != set(_LSTM_KEYS):
        raise ValueError(
            "state must be the state_dict of a one-layer, one-direction LSTM RNNClassifier "
            f"(keys {list(_LSTM_KEYS)})"
        )
    if not isinstance(keep, torch.Tensor) or keep.dim() != 1 or keep.dtype.is_floating_point:
        raise TypeError("keep must be a 1-D tensor of unit indices")
    hidden = state["rnn.weight_hh_l0"].shape[1]
    if len(keep) == 0 or keep.min() < 0 or keep.max() >= hidden:
        raise ValueError(f"keep must hold between 1 and {hidden} unit indices in [0, {hidden})")
    return hidden


def reference_remove_units(state: dict, keep: torch.Tensor) -> dict:
    """The course's answer to ``remove_units``: the state of the smaller LSTM classifier.

    ``state`` is a one-layer, one-direction LSTM RNNClassifier's ``state_dict()``, ``keep``
    the indices of the hidden units to keep (in the order the new model holds them).
    Unit k computes rows k, H+k, 2H+k, 3H+k of ``weight_ih``, ``weight_hh`` and both
    biases (gates i, f, g, o); it is read by column k of ``weight_hh`` and of the
    classifier. Returns a new dict; ``state`` is not changed.
    """
    hidden = _check_lstm_state(state, keep)
    keep = keep.long()
    rows = torch.cat([gate * hidden + keep for gate in range(4)])
    new = {name: value.clone() for name, value in state.items()}
    for name in ("rnn.weight_ih_l0", "rnn.bias_ih_l0", "rnn.bias_hh_l0"):
        new[name] = state[name][rows].clone()
    new["rnn.weight_hh_l0"] = state["rnn.weight_hh_l0"][rows][:, keep].clone()
    new["classifier.weight"] = state["classifier.weight"][:, keep].clone()
    return new


@keeps_global_rng
def check_remove_units(fn: Callable) -> CheckResult:
    """``fn(state, keep)`` -> the ``state_dict`` of the LSTM classifier that holds only the
    hidden units ``keep``, compared tensor by tensor with
    ``course_utils.pruning.remove_hidden_units`` (one layer, one direction)."""

    def cases(fn):
        g = torch.Generator().manual_seed(4)
        for e, h, c, k in [(3, 5, 2, 2), (2, 6, 4, 3), (4, 4, 3, 1), (3, 3, 2, 3)]:
            torch.manual_seed(e * 10 + h)
            model = RNNClassifier(12, c, embed_dim=e, hidden_size=h)
            keep = torch.randperm(h, generator=g)[:k].sort().values
            want = remove_hidden_units(model, {(0, 0): keep}).state_dict()
            state = {n: v.clone() for n, v in model.state_dict().items()}
            got = fn(state, keep.clone())
            what = f"H={h}, keep={keep.tolist()}"
            assert isinstance(got, dict), f"expected a state dict, got {type(got).__name__}"
            assert set(got) == set(want), f"{what}: keys {sorted(got)}, expected {sorted(want)}"
            for name, value in want.items():
                mine = got[name]
                assert isinstance(mine, torch.Tensor), f"{name}: expected a tensor"
                assert mine.shape == value.shape, (
                    f"{what}: {name} has shape {tuple(mine.shape)}, expected {tuple(value.shape)}"
                    " (each gate block keeps the units' rows; weight_hh and the classifier "
                    "keep their columns)"
                )
                assert torch.equal(mine, value), (
                    f"{what}: {name} holds the wrong values (unit k's rows are k, H+k, 2H+k, "
                    "3H+k, in the order of keep)"
                )
            for name, value in model.state_dict().items():
                assert torch.equal(state[name], value), f"the input state's {name} was changed"

    return run_checks("removing hidden units from a one-layer LSTM", fn, cases)
