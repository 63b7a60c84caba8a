"""Exercise checks for chapter 3 (gradient-based pruning)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..seeding import keeps_global_rng
from .common import CheckResult, assert_close, run_checks

__all__ = [
    "check_jaccard",
    "check_movement_update",
    "check_taylor_importance",
    "reference_taylor_importance",
]


def reference_taylor_importance(weight: torch.Tensor, grads: list[torch.Tensor]) -> torch.Tensor:
    """The course's answer to ``taylor_importance``: ``mean_b |g_b * w|`` over the batches."""
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"weight must be a tensor, got {type(weight).__name__}")
    if not grads or not all(isinstance(g, torch.Tensor) for g in grads):
        raise ValueError("grads must be a non-empty list of gradient tensors")
    return torch.stack([(g * weight).abs() for g in grads]).mean(dim=0)


class _Linear(nn.Module):
    """A linear classifier on given features, scored through ``classifier.weight``."""

    def __init__(self, features: int, classes: int):
        super().__init__()
        self.classifier = nn.Linear(features, classes)


def _linear_loss(model: nn.Module, batch: tuple) -> torch.Tensor:
    features, _, labels = batch
    return nn.functional.cross_entropy(model.classifier(features), labels)


@keeps_global_rng
def check_taylor_importance(fn: Callable) -> CheckResult:
    """``fn(weight, grads)`` -> first-order Taylor importance ``mean_b |g_b * w|``.

    ``weight`` is a (rows, cols) tensor, ``grads`` a list of per-batch gradients of the
    same shape; the result has the weight's shape. Compared with
    ``course_utils.pruning.gradient.taylor_scores`` on a small linear model.
    """
    from ..pruning.gradient import taylor_scores

    def cases(fn):
        g = torch.Generator().manual_seed(3)
        for features, classes, num_batches in [(4, 3, 3), (2, 2, 1), (5, 4, 4)]:
            torch.manual_seed(features)
            model = _Linear(features, classes)
            batches = [
                (
                    torch.randn(6, features, generator=g),
                    None,
                    torch.randint(0, classes, (6,), generator=g),
                )
                for _ in range(num_batches)
            ]
            weight = model.classifier.weight
            grads = [
                torch.autograd.grad(_linear_loss(model, b), weight)[0].detach() for b in batches
            ]
            want = taylor_scores(model, batches, loss_fn=_linear_loss)["classifier.weight"]
            got = fn(weight.detach().clone(), [x.clone() for x in grads])
            assert_close(
                got, want, f"{num_batches} batch(es), weight {tuple(weight.shape)}", atol=1e-6
            )

    return run_checks("Taylor importance", fn, cases)


def check_jaccard(fn: Callable) -> CheckResult:
    """``fn(mask_a, mask_b)`` -> Jaccard index |A ∩ B| / |A ∪ B| of the KEPT weights.

    Masks are bool tensors of one shape (True keeps); two masks that keep nothing give
    1.0. Compared with ``course_utils.pruning.criteria.jaccard``.
    """
    from ..pruning.criteria import jaccard

    def cases(fn):
        g = torch.Generator().manual_seed(5)
        pairs = [
            (torch.tensor([True, True, False, False]), torch.tensor([True, False, True, False])),
            (torch.rand(6, 7, generator=g) < 0.3, torch.rand(6, 7, generator=g) < 0.3),
            (torch.rand(50, generator=g) < 0.05, torch.rand(50, generator=g) < 0.9),
            (torch.zeros(3, dtype=torch.bool), torch.zeros(3, dtype=torch.bool)),
        ]
        for a, b in pairs:
            got = fn(a.clone(), b.clone())
            want = jaccard(a, b)
            assert isinstance(got, float | int | torch.Tensor), (
                f"expected a number, got {type(got).__name__}"
            )
            assert abs(float(got) - want) < 1e-6, (
                f"masks of shape {tuple(a.shape)} keeping {int(a.sum())} and {int(b.sum())}: "
                f"got {float(got):.4f}, expected {want:.4f}"
            )

    return run_checks("Jaccard index of two masks", fn, cases)


@keeps_global_rng
def check_movement_update(fn: Callable) -> CheckResult:
    """``fn(scores, weight, grad, lr)`` -> movement scores after one step: ``S - lr * g * w``.

    Compared with ``course_utils.pruning.gradient.MovementScores`` on a small model.
    """
    from ..pruning.gradient import MovementScores

    def cases(fn):
        g = torch.Generator().manual_seed(7)
        torch.manual_seed(7)
        model = _Linear(3, 2)
        weight = model.classifier.weight
        tracker = MovementScores(model, lr=0.5)
        scores = torch.zeros_like(weight)
        for step in range(3):
            weight.grad = torch.randn(weight.shape, generator=g)
            tracker(model, step)
            scores = fn(scores.clone(), weight.detach().clone(), weight.grad.clone(), 0.5)
            want = tracker.scores()["classifier.weight"]
            assert_close(scores, want, f"scores after step {step + 1}", atol=1e-6)

    return run_checks("movement score update", fn, cases)
