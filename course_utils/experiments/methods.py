"""The pruning methods of the course, by name: one registry for every experiment.

A *method* is a whole recipe that turns the trained baseline into a pruned model: a
score criterion, a schedule, training and, for structured methods, the removal of hidden
units. (A *criterion* is only the score: see :data:`course_utils.pruning.magnitude.CRITERIA`.)
Chapter 5's comparison (:mod:`course_utils.experiments.gan_comparison`) and chapter 6's
zoo (:mod:`course_utils.experiments.zoo`) name their methods here, so that a name means
one thing everywhere:

- unstructured methods zero single weights: ``magnitude_oneshot``, ``magnitude_agp``
  (chapter 2), ``taylor``, ``movement`` (gradual pruning by that criterion), ``snip``
  and its variant ``snip_layerwise`` (chapter 3);
- structured methods keep a number of hidden units and remove the others: ``group_lasso``
  (chapter 4), ``unit_magnitude`` (ISS group norms, chapter 4), ``unit_taylor``
  (structured Taylor scores, chapter 3), its gate form ``unit_taylor_gate``, ``gal``
  and its ablation ``gal_no_adv`` (chapter 5).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

__all__ = ["KINDS", "METHODS", "Method", "get_method", "method_names", "simplest_not_behind"]

KINDS = ("unstructured", "structured")


@dataclass(frozen=True)
class Method:
    """One pruning method: its name, how tables print it, its kind and its chapter.

    ``label``: the short name of chapter 6's line-up; ``long_label``: the name of chapter
    5's table, which says what sets the method apart (the same as ``label`` unless given).
    ``kind``: ``"unstructured"`` (zeros single weights; the amount is a sparsity) or
    ``"structured"`` (removes hidden units; the amount is the number kept).
    ``effort``: what the method adds to plain fine-tuning, from 0 (nothing: scores read
    off the trained weights) to 4 (training with learned masks and a discriminator); a
    verdict that finds two methods equally good recommends the one of least effort.
    """

    name: str
    label: str
    kind: str
    chapter: int
    description: str
    long_label: str = ""
    effort: int = 0

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown kind={self.kind!r}; choose from {list(KINDS)}")
        if not self.long_label:
            object.__setattr__(self, "long_label", self.label)


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method(
            "magnitude_oneshot",
            "magnitude one-shot",
            "unstructured",
            2,
            "remove the smallest |w| once, under one global threshold, then fine-tune",
            effort=0,
        ),
        Method(
            "magnitude_agp",
            "magnitude AGP",
            "unstructured",
            2,
            "remove the smallest |w| step by step along the cubic schedule while fine-tuning",
            effort=1,
        ),
        Method(
            "taylor",
            "Taylor",
            "unstructured",
            3,
            "gradual pruning by Taylor importance |g·w|, averaged while fine-tuning",
            effort=1,
        ),
        Method(
            "movement",
            "movement",
            "unstructured",
            3,
            "gradual pruning by movement -Σ g·w, accumulated while fine-tuning",
            effort=1,
        ),
        Method(
            "snip",
            "SNIP",
            "unstructured",
            3,
            "prune the initialization by |g·w| on one batch, ranked over all tensors together,"
            " then train from scratch",
            effort=1,
        ),
        Method(
            "snip_layerwise",
            "SNIP, layerwise",
            "unstructured",
            3,
            "SNIP with the same sparsity in each tensor instead of one ranking over all tensors",
            effort=1,
        ),
        Method(
            "gal",
            "GAN-guided (GAL)",
            "structured",
            5,
            "learn soft unit masks against a discriminator, keep the largest masks",
            long_label="GAL (GAN-guided masks)",
            effort=4,
        ),
        Method(
            "gal_no_adv",
            "GAL without D",
            "structured",
            5,
            "GAL's ablation: the same masks learned by distillation and L1, no discriminator",
            long_label="ablation: distillation + L1 masks, no D",
            effort=3,
        ),
        Method(
            "group_lasso",
            "group lasso",
            "structured",
            4,
            "train with the ISS group-lasso penalty, keep the units of largest group norm",
            long_label="group lasso (chapter 4)",
            effort=2,
        ),
        Method(
            "unit_magnitude",
            "structured magnitude",
            "structured",
            4,
            "keep the units whose ISS groups have the largest norm in the trained baseline",
            long_label="structured magnitude (group norm)",
            effort=0,
        ),
        Method(
            "unit_taylor",
            "structured Taylor",
            "structured",
            3,
            "keep the units with the largest structured Taylor score (Σ g·w)² of their group",
            long_label="structured Taylor (chapter 3)",
            effort=1,
        ),
        Method(
            "unit_taylor_gate",
            "structured Taylor, gate form",
            "structured",
            5,
            "keep the units with the largest Taylor score (Σ g·w)² over the weights that read "
            "them: the gradient of a gate on the unit's output",
            long_label="structured Taylor, gate form (Molchanov et al. 2019)",
            effort=1,
        ),
    )
}
"""Every pruning method by name: the unstructured ones, then the structured ones in the
order of chapter 5's table."""


def method_names(kind: str | None = None) -> tuple[str, ...]:
    """The names in :data:`METHODS`, in its order; only those of ``kind`` when given."""
    if kind is not None and kind not in KINDS:
        raise ValueError(f"unknown kind={kind!r}; choose from {list(KINDS)}")
    return tuple(name for name, m in METHODS.items() if kind is None or m.kind == kind)


def get_method(name: str, among: Sequence[str] | None = None) -> Method:
    """The :class:`Method` called ``name``.

    ``among`` (optional) restricts the choice to the names an experiment runs. An unknown
    name is a ValueError that lists the choices: ``unknown method='prune_all'; choose
    from [...]``.
    """
    choices = list(METHODS if among is None else among)
    if name not in choices or name not in METHODS:
        raise ValueError(f"unknown method={name!r}; choose from {choices}")
    return METHODS[name]


def simplest_not_behind(
    medians: Mapping[str, float],
    clearly_behind: Callable[[str, str], bool],
    effort: Callable[[str], int],
) -> tuple[str, list[str], str]:
    """The "simplest sufficient" step of every method verdict: ``(best, behind, simplest)``.

    ``best`` has the highest median; ``behind`` lists, in the order of ``medians``, the
    methods ``m`` for which ``clearly_behind(m, best)``; ``simplest`` is, among the others
    (``best`` included), the one of least ``effort(m)`` (ties: the first in order). How
    "clearly behind" is decided is the caller's rule (medians and seed ranges, or a paired
    bootstrap).
    """
    order = list(medians)
    if not order:
        raise ValueError("medians is empty: no methods to choose from")
    best = max(order, key=lambda m: medians[m])
    behind = [m for m in order if m != best and clearly_behind(m, best)]
    simplest = min((m for m in order if m not in behind), key=lambda m: (effort(m), order.index(m)))
    return best, behind, simplest
