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
- :func:`paired_seeds` compares two methods over seeds (chapters 4 and 5's verdict grid):
  each seed gives one paired difference (A's score minus B's, the same baseline under
  both); the verdict comes from the bootstrap confidence interval of the median
  difference (Efron & Tibshirani 1993): "better" only when the whole interval lies
  above 0, "worse" when it lies below, otherwise "no clear difference". For up to
  :data:`EXACT_UP_TO` seeds the bootstrap distribution is computed exactly, over every
  way of drawing the seeds with replacement, so there is no resampling noise.
- :func:`speed` reads a latency ratio measured in one run, with a margin for timing noise.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .checks import fraction, non_negative_int, positive_number

__all__ = [
    "EXACT_UP_TO",
    "PairedVerdict",
    "SeedVerdict",
    "bootstrap_medians",
    "paired_accuracy",
    "paired_seeds",
    "sign_test",
    "speed",
]

EXACT_UP_TO = 8
"""Up to this many seeds :func:`bootstrap_medians` enumerates every resample exactly."""


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


def _compositions(n: int, parts: int):
    """Every way to write ``n`` as an ordered sum of ``parts`` counts >= 0."""
    if parts == 1:
        yield (n,)
        return
    for first in range(n + 1):
        for rest in _compositions(n - first, parts - 1):
            yield (first, *rest)


def bootstrap_medians(
    values: Sequence[float], *, resamples: int = 20_000, seed: int = 0
) -> list[tuple[float, float]]:
    """The bootstrap distribution of the median of ``values``: ``[(median, probability)]``.

    A resample draws ``len(values)`` values with replacement. Up to :data:`EXACT_UP_TO`
    values, every resample is counted with its exact multinomial probability; beyond,
    ``resamples`` draws from ``random.Random(seed)`` (the global random state is not
    touched) each get probability ``1/resamples``. Sorted by median.
    """
    values = [float(v) for v in values]
    n = len(values)
    if n == 0:
        raise ValueError("values must not be empty")
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"values must be finite numbers, got {values}")
    weights: dict[float, float] = {}
    if n <= EXACT_UP_TO:
        for counts in _compositions(n, n):
            drawn = [v for v, c in zip(values, counts, strict=True) for _ in range(c)]
            ways = math.factorial(n)
            for c in counts:
                ways //= math.factorial(c)
            m = statistics.median(drawn)
            weights[m] = weights.get(m, 0.0) + ways / n**n
    else:
        resamples = int(resamples)
        if resamples < 1:
            raise ValueError(f"resamples must be a positive integer, got {resamples}")
        rng = random.Random(seed)
        for _ in range(resamples):
            m = statistics.median(rng.choices(values, k=n))
            weights[m] = weights.get(m, 0.0) + 1 / resamples
    return sorted(weights.items())


def _quantile(distribution: list[tuple[float, float]], q: float) -> float:
    """The smallest value whose cumulative probability reaches ``q``."""
    total = 0.0
    for value, weight in distribution:
        total += weight
        if total >= q - 1e-12:
            return value
    return distribution[-1][0]


@dataclass(frozen=True)
class SeedVerdict:
    """Method A against method B over seeds: paired differences and what they say."""

    seeds: tuple
    differences: tuple  # A - B per seed, in the order of ``seeds``
    median_difference: float
    low: float  # the bootstrap confidence interval of the median difference
    high: float
    level: float
    verdict: str  # "better", "no clear difference", "worse" (A against B) or "one seed"
    p_value: float  # sign test on the seeds where A and B differ: how rare this is by chance

    def interval(self, scale: float = 100.0, unit: str = " points") -> str:
        """``"+1.2 points (95 % interval -0.5 to +2.3)"``."""
        return (
            f"{scale * self.median_difference:+.1f}{unit} ({self.level:.0%} interval "
            f"{scale * self.low:+.1f} to {scale * self.high:+.1f})"
        ).replace("% interval", " % interval")


def paired_seeds(
    a: Sequence[float] | dict,
    b: Sequence[float] | dict,
    *,
    level: float = 0.95,
    resamples: int = 20_000,
    seed: int = 0,
) -> SeedVerdict:
    """Compare method A with method B over seeds, one paired difference per seed.

    ``a`` and ``b`` are scores per seed: two sequences of one length (seed ``i`` in both),
    or two dicts ``{seed: score}`` (the seeds both have are compared). The verdict is A's,
    against B: "better" when the ``level`` bootstrap interval of the median difference
    lies above 0, "worse" when it lies below 0, otherwise "no clear difference" (and "one
    seed" when only one seed is shared: no interval can be told from one value). With
    5 seeds "better" needs all five differences above 0: one seed against is enough to
    keep 0 inside the 95 % interval.

    With so few seeds the bootstrap interval is narrow: "better" says that every seed
    agreed, and five seeds out of five agree by chance once in 16 (two-sided). The
    result carries that number too, ``p_value``: the exact sign test (:func:`sign_test`)
    on the seeds where A and B differ.
    """
    level = fraction("level", level)
    if isinstance(a, dict) and isinstance(b, dict):
        seeds = tuple(sorted(set(a) & set(b)))
        diffs = tuple(float(a[s]) - float(b[s]) for s in seeds)
    elif isinstance(a, dict) or isinstance(b, dict):
        raise TypeError("a and b must both be dicts {seed: score} or both sequences")
    else:
        if len(a) != len(b):
            raise ValueError(f"a and b need one score per seed each, got {len(a)} and {len(b)}")
        seeds = tuple(range(len(a)))
        diffs = tuple(float(x) - float(y) for x, y in zip(a, b, strict=True))
    if not diffs:
        raise ValueError("a and b share no seed")
    distribution = bootstrap_medians(diffs, resamples=resamples, seed=seed)
    tail = (1 - level) / 2
    low, high = _quantile(distribution, tail), _quantile(distribution, 1 - tail)
    if len(diffs) < 2:
        verdict = "one seed"
    elif low > 0:
        verdict = "better"
    elif high < 0:
        verdict = "worse"
    else:
        verdict = "no clear difference"
    wins, losses = sum(d > 0 for d in diffs), sum(d < 0 for d in diffs)
    return SeedVerdict(
        seeds, diffs, statistics.median(diffs), low, high, level, verdict, sign_test(wins, losses)
    )


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
