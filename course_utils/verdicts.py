"""Verdicts computed from a run: better, no clear difference, or worse.

Introduced in chapter 2 (the lottery ticket against its control) and used wherever a
chapter compares two models from one run. A sentence that states a result is printed
from these functions, never written by hand, so it always matches the numbers above it.

- :func:`paired_accuracy` compares two classifiers on the SAME test examples. Only the
  examples where they disagree carry information: if A is right on ``a`` of them and B on
  ``b``, and the two were equally good, each disagreement would go either way with
  probability 1/2. The exact two-sided binomial (sign) test on ``a`` out of ``a + b`` is
  McNemar's exact test (McNemar 1947); below ``alpha`` the verdict is "better" or
  "worse", otherwise "no clear difference".
- :func:`speed` reads a latency ratio measured in one run, with a margin for timing noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .checks import fraction, non_negative_int, positive_number

__all__ = ["PairedVerdict", "paired_accuracy", "sign_test", "speed"]


def sign_test(wins: int, losses: int) -> float:
    """Exact two-sided p-value of ``wins`` against ``losses`` when each is a fair coin."""
    wins, losses = non_negative_int("wins", wins), non_negative_int("losses", losses)
    n = wins + losses
    if n == 0:
        return 1.0
    k = min(wins, losses)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


@dataclass(frozen=True)
class PairedVerdict:
    """Two classifiers on the same examples: where they disagree, and what that says."""

    accuracy_a: float
    accuracy_b: float
    only_a_right: int
    only_b_right: int
    p_value: float
    verdict: str  # "better", "no clear difference" or "worse" (A against B)

    def sentence(self, a: str, b: str) -> str:
        """One line a notebook can print: ``"A: 93.0 %, B: 92.7 % ... -> no clear difference"``."""
        return (
            f"{a}: {self.accuracy_a:.1%}, {b}: {self.accuracy_b:.1%}; they disagree on "
            f"{self.only_a_right + self.only_b_right} examples ({a} right on "
            f"{self.only_a_right}, {b} on {self.only_b_right}; sign test p = "
            f"{self.p_value:.2g}) -> {a} vs {b}: {self.verdict}"
        )


def paired_accuracy(
    preds_a: torch.Tensor, preds_b: torch.Tensor, labels: torch.Tensor, *, alpha: float = 0.05
) -> PairedVerdict:
    """Compare classifier A with classifier B on the same labelled examples.

    ``preds_a``, ``preds_b`` and ``labels`` are 1-D tensors of class ids of one length
    (``course_utils.train.predict`` gives them). The verdict is A's, against B.
    """
    alpha = fraction("alpha", alpha)
    tensors = {"preds_a": preds_a, "preds_b": preds_b, "labels": labels}
    for name, t in tensors.items():
        if not isinstance(t, torch.Tensor) or t.dim() != 1:
            raise ValueError(f"{name} must be a 1-D tensor of class ids, got {t!r:.60}")
    if not preds_a.shape == preds_b.shape == labels.shape or labels.numel() == 0:
        shapes = {k: tuple(v.shape) for k, v in tensors.items()}
        raise ValueError(f"preds_a, preds_b and labels need one non-zero length, got {shapes}")
    right_a, right_b = preds_a == labels, preds_b == labels
    only_a, only_b = int((right_a & ~right_b).sum()), int((right_b & ~right_a).sum())
    p = sign_test(only_a, only_b)
    verdict = "no clear difference"
    if p < alpha:
        verdict = "better" if only_a > only_b else "worse"
    n = labels.numel()
    return PairedVerdict(int(right_a.sum()) / n, int(right_b.sum()) / n, only_a, only_b, p, verdict)


def speed(ratio: float, *, margin: float = 0.2) -> str:
    """``"faster"``, ``"about the same speed"`` or ``"slower"`` for a speed-up ``ratio``.

    ``ratio`` is the reference's time divided by the model's (above 1: the model is
    faster). Within ``1 ± margin`` the run cannot tell the two apart: timings of one
    run on a laptop move by that much.
    """
    ratio = positive_number("ratio", ratio)
    margin = fraction("margin", margin)
    if ratio >= 1 + margin:
        return "faster"
    if ratio <= 1 / (1 + margin):
        return "slower"
    return "about the same speed"
