"""Comparing pruning criteria fairly: one budget for all, medians over seeds, a verdict.

Introduced in chapter 3 (and used by its benchmark section). :class:`FineTuneBudget`
states the training every criterion gets; :func:`prune_by_criterion` prunes one copy of
a baseline with one criterion (:mod:`course_utils.pruning.criteria`) and that budget;
:func:`compare_criteria` does it for every criterion, sparsity and seed and measures
test accuracy. Its rows name the score criterion under ``"criterion"``: the gradual
criteria, ``"snip"`` (SNIP as in the paper, one ranking over all tensors) and
``"snip_layerwise"`` (the variant with the same sparsity in each tensor).
:func:`summarize`, :func:`compare_medians` and :func:`describe_claim` turn rows into
medians, spreads and sentences that follow the numbers; chapter 5's rows, which name a
pruning method under ``"method"`` (:mod:`course_utils.experiments.methods`), use the
first two with ``by="method"``.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from ..checks import positive_int, positive_number
from ..masking import check_sparsity, get_masks
from ..models import RNNClassifier
from ..pruning.criteria import (
    ALL_CRITERIA,
    SNIP_SCOPES,
    agp_steps,
    first_batch,
    gradual_pruning,
    snip_pruning,
)
from ..pruning.finetune import training_loaders
from ..pruning.magnitude import check_criterion
from ..pruning.schedules import PruningRun
from ..report import Table, median_range, median_spread
from ..seeding import keeps_global_rng
from ..train import LoaderPair, TrainingData, first_batches, predict
from ..verdicts import paired_accuracy
from .baseline import Baseline

__all__ = [
    "CriteriaComparison",
    "FineTuneBudget",
    "compare_criteria",
    "compare_medians",
    "describe_claim",
    "paired_claim",
    "prune_by_criterion",
    "summarize",
]

# --- the equal-budget comparison ----------------------------------------------------------------


@dataclass(frozen=True)
class FineTuneBudget:
    """The training every criterion gets in :func:`compare_criteria`.

    Criteria that prune the trained model (magnitude, random, Taylor, movement) fine-tune
    it for ``epochs`` passes over the training split with Adam at ``lr``, pruning along
    the same cubic schedule (start at ``warmup``, final sparsity at ``ramp_end`` of the
    steps, an update every ``frequency`` steps). SNIP prunes the model's initialization
    and trains it from scratch for ``scratch_epochs`` epochs at ``scratch_lr``; ``None``
    means the baseline's own training (its epochs and learning rate) plus ``epochs``: the
    same number of training steps in total as the baseline's training followed by the
    fine-tuning the other criteria get.
    """

    epochs: int = 1
    lr: float = 1e-3
    warmup: float = 0.1
    ramp_end: float = 0.7
    frequency: int = 5
    scratch_epochs: int | None = None
    scratch_lr: float | None = None
    snip_batch_size: int = 64
    train_batches: int | None = None

    def __post_init__(self):
        for argument in ("epochs", "scratch_epochs", "train_batches", "snip_batch_size"):
            value = getattr(self, argument)
            if value is None and argument in ("scratch_epochs", "train_batches"):
                continue
            positive_int(argument, value)
        for argument in ("lr", "scratch_lr"):
            value = getattr(self, argument)
            if value is not None:
                positive_number(argument, value)
        agp_steps(100, warmup=self.warmup, ramp_end=self.ramp_end, frequency=self.frequency)

    def snip_epochs(self, baseline: Baseline) -> int:
        """SNIP's epochs from scratch: ``scratch_epochs`` or the baseline's + ``epochs``."""
        return self.scratch_epochs or baseline.config.epochs + self.epochs

    def snip_lr(self, baseline: Baseline) -> float:
        """SNIP's learning rate from scratch: ``scratch_lr`` or the baseline's own."""
        return self.scratch_lr or baseline.config.lr

    @keeps_global_rng
    def data(self, baseline: TrainingData, seed: int) -> TrainingData | LoaderPair:
        """The baseline, or with ``train_batches`` a :class:`~course_utils.train.LoaderPair`:
        its first ``train_batches`` training batches (shuffled with ``seed``, drawn once, so
        every epoch sees the same ones) and its validation loader."""
        if self.train_batches is None:
            return baseline
        return training_loaders(first_batches(baseline, self.train_batches), seed=seed)

    def steps_per_epoch(self, baseline: Baseline) -> int:
        full = len(baseline.loader("train"))
        return full if self.train_batches is None else min(full, self.train_batches)

    def describe(self, baseline: Baseline, *, snip: bool = True) -> str:
        """One paragraph stating the budget in steps, for a notebook or a report.

        ``snip=False`` leaves out SNIP's budget (for a comparison without SNIP).
        """
        per_epoch = self.steps_per_epoch(baseline)
        steps = self.epochs * per_epoch
        start, end = agp_steps(
            steps, warmup=self.warmup, ramp_end=self.ramp_end, frequency=self.frequency
        )
        scratch = self.snip_epochs(baseline)
        text = (
            f"From the trained baseline: {self.epochs} epoch(s) of {per_epoch} steps = {steps} "
            f"Adam steps (lr {self.lr:g}, batches of {baseline.config.batch_size} articles); "
            f"pruning follows the cubic schedule from step {start} to step {end}, an update "
            f"every {self.frequency} steps, then {steps - end} steps with frozen masks."
        )
        if snip:
            text += (
                f" SNIP from the initialization: {scratch} epoch(s) = {scratch * per_epoch} "
                f"steps at lr {self.snip_lr(baseline):g}"
            )
            if self.scratch_epochs is None:
                text += (
                    f" (the baseline's {baseline.config.epochs} training epochs + the "
                    f"{self.epochs} fine-tuning epoch(s) the others get)."
                )
            else:
                text += f" (the baseline itself trained {baseline.config.epochs} epochs)."
        if self.train_batches is not None:
            text += f" Quick check: an epoch is only the first {per_epoch} training batches."
        return text


@dataclass
class CriteriaComparison:
    """What :func:`compare_criteria` measured.

    ``rows``: one per (seed, sparsity, criterion) with ``valid_accuracy``,
    ``test_accuracy``, ``sparsity`` reached and ``seconds``; ``masks[(criterion,
    sparsity, seed)]``: the final masks; ``predictions`` under the same key: the final
    model's label for every test article, and ``test_labels[seed]`` the true ones (for
    paired verdicts, :func:`paired_claim`).
    """

    rows: Table
    masks: dict[tuple[str, float, int], dict[str, torch.Tensor]] = field(default_factory=dict)
    predictions: dict[tuple[str, float, int], torch.Tensor] = field(default_factory=dict)
    test_labels: dict[int, torch.Tensor] = field(default_factory=dict)

    def extend(self, other: CriteriaComparison) -> None:
        self.rows.extend(other.rows)
        self.masks.update(other.masks)
        self.predictions.update(other.predictions)
        self.test_labels.update(other.test_labels)


@keeps_global_rng
def prune_by_criterion(
    baseline: Baseline,
    criterion: str,
    sparsity: float,
    budget: FineTuneBudget,
    *,
    data: TrainingData | tuple | None = None,
    scope: str = "layerwise",
    include_embedding: bool = False,
    progress: bool | None = None,
) -> tuple[RNNClassifier, PruningRun]:
    """One run of the comparison: a copy of ``baseline`` pruned to ``sparsity`` by ``criterion``.

    SNIP (``"snip"``, ``"snip_layerwise"``) prunes the baseline's initialization (scored
    on the first training batch of ``budget.snip_batch_size`` articles) and trains it
    from scratch with the budget's SNIP epochs; the other criteria prune the trained
    baseline gradually during the budget's fine-tuning. ``scope`` is the allocation of
    the gradual criteria; each SNIP criterion has its own (:data:`SNIP_SCOPES`: ``"snip"``
    ranks all tensors together as in the paper, ``"snip_layerwise"`` prunes each tensor
    to ``sparsity``). ``data`` (default ``budget.data(baseline, seed)``) is what both
    train on; the seed is the baseline's. Returns ``(pruned model, its PruningRun)``.
    """
    seed = baseline.seed
    if data is None:
        data = budget.data(baseline, seed)
    options = {"scope": scope, "include_embedding": include_embedding, "seed": seed}
    if criterion in SNIP_SCOPES:
        model = baseline.initial_model()
        run = snip_pruning(
            model,
            data,
            sparsity,
            epochs=budget.snip_epochs(baseline),
            lr=budget.snip_lr(baseline),
            batch=first_batch(baseline, budget.snip_batch_size, seed),
            progress=progress,
            **{**options, "scope": SNIP_SCOPES[criterion]},
        )
        return model, run
    model = baseline.copy_model()
    run = gradual_pruning(
        model,
        data,
        sparsity,
        criterion=criterion,
        epochs=budget.epochs,
        lr=budget.lr,
        warmup=budget.warmup,
        ramp_end=budget.ramp_end,
        frequency=budget.frequency,
        progress=progress,
        **options,
    )
    return model, run


@keeps_global_rng
def compare_criteria(
    baselines: Baseline | Sequence[Baseline],
    criteria: Sequence[str] = ALL_CRITERIA,
    sparsities: Sequence[float] = (0.8, 0.9, 0.95, 0.98),
    *,
    budget: FineTuneBudget | None = None,
    scope: str = "layerwise",
    include_embedding: bool = False,
    progress: bool | None = None,
) -> CriteriaComparison:
    """Prune copies of each baseline with each criterion to each sparsity; same budget.

    ``baselines`` is a Baseline or a list of them (one per seed: ``get_baseline(seed=s)``);
    the fine-tuning seed is the baseline's. The baselines themselves are not changed.
    Test accuracy is measured once, on each final model (:func:`prune_by_criterion`).

    ``scope`` is how the gradual criteria allocate the sparsity (default: the same in each
    tensor). SNIP's scope does not follow it: ``"snip"`` always ranks the scores of all
    tensors together, as Lee et al. (2019) do, and ``"snip_layerwise"`` always prunes each
    tensor to the same sparsity.
    """
    budget = budget or FineTuneBudget()
    if not isinstance(budget, FineTuneBudget):
        raise TypeError(f"budget must be a FineTuneBudget, got {type(budget).__name__}")
    if isinstance(baselines, TrainingData):
        baselines = [baselines]
    for criterion in criteria:
        check_criterion(criterion, ALL_CRITERIA)
    sparsities = [check_sparsity(s) for s in sparsities]
    if not criteria or not sparsities:
        raise ValueError("criteria and sparsities must not be empty")
    result = CriteriaComparison(Table())
    for baseline in baselines:
        seed = baseline.seed
        data = budget.data(baseline, seed)
        for sparsity in sparsities:
            for criterion in criteria:
                start = time.perf_counter()
                model, run = prune_by_criterion(
                    baseline,
                    criterion,
                    sparsity,
                    budget,
                    data=data,
                    scope=scope,
                    include_embedding=include_embedding,
                    progress=progress,
                )
                preds, labels = predict(model, baseline.loader("test"))
                test = int((preds == labels).sum()) / len(labels)  # what evaluate computes
                result.rows.append(
                    {
                        "criterion": criterion,
                        "sparsity": sparsity,
                        "seed": seed,
                        "reached": run.sparsity,
                        "valid_accuracy": run.valid_accuracy,
                        "test_accuracy": test,
                        "epochs": run.epochs,
                        "seconds": time.perf_counter() - start,
                    }
                )
                result.masks[(criterion, sparsity, seed)] = {
                    n: m.detach().cpu().clone() for n, m in get_masks(model).items()
                }
                result.predictions[(criterion, sparsity, seed)] = preds
                result.test_labels[seed] = labels
    return result


# --- summaries -------------------------------------------------------------------------------


_BY = ("criterion", "method")
"""What a row may name: a score criterion (chapter 3) or a pruning method (chapter 5)."""


def _check_by(by: str) -> str:
    if by not in _BY:
        raise ValueError(f"unknown by={by!r}; choose from {list(_BY)}")
    return by


def _values(rows, name: str, sparsity: float, metric: str, by: str) -> list[float]:
    return [r[metric] for r in rows if r[by] == name and math.isclose(r["sparsity"], sparsity)]


def summarize(rows, metric: str = "test_accuracy", *, by: str = "criterion") -> Table:
    """One row per criterion (or method, ``by="method"``), one column per sparsity:
    ``median % (min-max)`` over seeds."""
    by = _check_by(by)
    names = list(dict.fromkeys(r[by] for r in rows))
    sparsities = sorted(dict.fromkeys(r["sparsity"] for r in rows))
    table = Table()
    for name in names:
        row = {by: name}
        for s in sparsities:
            values = _values(rows, name, s, metric, by)
            row[f"{100 * s:g} %"] = median_range(median_spread(values), scale=100) if values else ""
        table.append(row)
    return table


def compare_medians(
    rows,
    challenger: str,
    reference: str = "magnitude",
    *,
    metric: str = "test_accuracy",
    margin: float = 0.0,
    by: str = "criterion",
) -> Table:
    """Per sparsity: medians of two criteria (or methods, ``by="method"``), their
    difference and a verdict.

    The verdict is ``"better"`` when the challenger's median exceeds the reference's by
    more than ``margin`` AND its worst seed beats the reference's best; ``"worse"`` in
    the mirror case; otherwise ``"no clear difference"``. With one seed the ranges are
    single points, so ``margin`` carries the noise allowance.
    """
    by = _check_by(by)
    table = Table()
    for s in sorted(dict.fromkeys(r["sparsity"] for r in rows)):
        a = _values(rows, challenger, s, metric, by)
        b = _values(rows, reference, s, metric, by)
        if not a or not b:
            continue
        diff = statistics.median(a) - statistics.median(b)
        if diff > margin and min(a) > max(b):
            verdict = "better"
        elif diff < -margin and max(a) < min(b):
            verdict = "worse"
        else:
            verdict = "no clear difference"
        table.append(
            {
                "sparsity": s,
                challenger: statistics.median(a),
                reference: statistics.median(b),
                "difference": diff,
                "seeds": min(len(a), len(b)),
                "verdict": verdict,
            }
        )
    return table


def describe_claim(
    rows,
    challengers: Sequence[str] = ("taylor", "movement", "snip", "snip_layerwise"),
    reference: str = "magnitude",
    *,
    metric: str = "test_accuracy",
    margin: float = 0.0,
) -> str:
    """Sentences that test "gradient criteria handle high sparsity better than |w|"."""
    lines = []
    for challenger in challengers:
        table = compare_medians(rows, challenger, reference, metric=metric, margin=margin)
        if not table:
            continue
        parts = [
            f"{100 * r['sparsity']:g} %: {100 * r['difference']:+.1f} pts ({r['verdict']})"
            for r in table
        ]
        counts = {v: sum(r["verdict"] == v for r in table) for v in ("better", "worse")}
        if counts["better"] and not counts["worse"]:
            summary = (
                f"{challenger} beats {reference} at {counts['better']} of {len(table)} sparsities"
            )
        elif counts["worse"] and not counts["better"]:
            summary = (
                f"{challenger} loses to {reference} at {counts['worse']} of {len(table)} sparsities"
            )
        elif not counts["better"] and not counts["worse"]:
            summary = f"{challenger} and {reference} cannot be told apart here"
        else:
            summary = f"{challenger} vs {reference}: mixed"
        lines.append(f"{summary} (median {metric.replace('_', ' ')}; " + "; ".join(parts) + ")")
    return "\n".join(lines)


def paired_claim(
    comparison: CriteriaComparison,
    challengers: Sequence[str] = ("taylor", "movement"),
    reference: str = "magnitude",
    *,
    seed: int | None = None,
) -> str:
    """One line per challenger: its verdict against ``reference`` at every sparsity, paired
    on the test articles of one seed (:func:`~course_utils.verdicts.paired_accuracy`:
    better, no clear difference or worse, from the articles where the two disagree).

    ``seed`` defaults to the only seed of the comparison. With one seed this is the right
    test for *this run*; over seeds, see :func:`describe_claim`.
    """
    seeds = sorted(comparison.test_labels)
    if seed is None:
        if len(seeds) != 1:
            raise ValueError(f"the comparison has seeds {seeds}: pass seed=")
        seed = seeds[0]
    if seed not in comparison.test_labels:
        raise ValueError(f"no predictions for seed={seed}; the comparison has seeds {seeds}")
    labels = comparison.test_labels[seed]
    lines = []
    for challenger in challengers:
        sparsities = sorted(
            s for c, s, k in comparison.predictions if c == challenger and k == seed
        )
        parts = []
        for sparsity in sparsities:
            reference_key = (reference, sparsity, seed)
            if reference_key not in comparison.predictions:
                continue
            v = paired_accuracy(
                comparison.predictions[(challenger, sparsity, seed)],
                comparison.predictions[reference_key],
                labels,
            )
            parts.append(
                f"{100 * sparsity:g} %: {100 * (v.accuracy_a - v.accuracy_b):+.1f} pts, "
                f"{v.only_a_right} vs {v.only_b_right} articles -> {v.verdict}"
            )
        if parts:
            lines.append(f"{challenger} vs {reference} (seed {seed}): " + "; ".join(parts))
    return "\n".join(lines)
