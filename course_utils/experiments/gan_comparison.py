"""Structured pruning methods compared at equal hidden size, with one fine-tuning budget.

Introduced in chapter 5 (and used by its benchmark section). Every structured method of
:mod:`course_utils.experiments.methods` ends with a physically smaller RNNClassifier
keeping the same number of hidden units per layer and direction (chapter 4's
``remove_hidden_units``), then gets the same fine-tuning:

- ``"gal"``: GAN-guided soft masks (:func:`~course_utils.pruning.gan.train_gal`) with
  a unit budget (λ grows until ``units`` masks are left), fold the masks in, keep the
  units with the largest masks;
- ``"gal_no_adv"``: the ablation without the adversarial term (distillation + L1 masks);
- ``"group_lasso"``: chapter 4's ISS group lasso, keep the largest group norms;
- ``"unit_magnitude"``: the baseline's largest ISS group norms (structured magnitude);
- ``"unit_taylor"``: chapter 3's structured Taylor score per unit (the course's form: the
  whole ISS group);
- ``"unit_taylor_gate"``: the same score in the gate form of Molchanov et al. 2019 (only
  the weights that read the unit), run when named (not in :data:`UNIT_METHODS`).

Fine-tuning (:func:`finetune_pruned`) distills from the dense teacher (Hinton et al. 2015)
and keeps the state before fine-tuning when that is better on validation. Rows name the
method under ``"method"``; :func:`~course_utils.experiments.comparison.summarize` and
:func:`~course_utils.experiments.comparison.compare_medians` read them with
``by="method"``.
"""

from __future__ import annotations

import copy
import dataclasses
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from ..checks import fraction, positive_int, positive_number
from ..pruning.finetune import finetune, training_loaders
from ..pruning.gan import CachedTeacher, GALConfig, GALResult, remove_masked_units, train_gal
from ..pruning.gradient import taylor_unit_scores
from ..pruning.groups import hidden_unit_groups
from ..pruning.regularization import train_group_lasso
from ..pruning.structured import remove_hidden_units, select_units, select_units_by_norm, unit_norms
from ..report import Table, median_range, median_spread
from ..seeding import keeps_global_rng
from ..train import TrainingData, evaluate, first_batches
from .baseline import Baseline
from .comparison import compare_medians
from .methods import METHODS, get_method, method_names, simplest_not_behind

__all__ = [
    "UNIT_METHODS",
    "UnitBudget",
    "adversarial_verdict",
    "compare_unit_pruning",
    "distillation_loss",
    "finetune_pruned",
    "gal_for",
    "method_summary",
    "prune_to_units",
    "simplest_sufficient",
]

UNIT_METHODS = ("gal", "gal_no_adv", "group_lasso", "unit_magnitude", "unit_taylor")
"""The methods chapter 5 compares, in table order (:func:`compare_unit_pruning`'s default).
:func:`prune_to_units` knows every structured method; ``"unit_taylor_gate"`` (structured
Taylor in the paper's gate form) runs only when named."""


def distillation_loss(teacher: nn.Module, *, temperature: float = 2.0, alpha: float = 0.5):
    """A ``loss_fn(model, batch)`` for ``finetune``: knowledge distillation (Hinton et al.).

    ``alpha·T²·KL(softmax(t/T) || softmax(s/T)) + (1 - alpha)·CE(s, labels)`` with the
    teacher's logits ``t`` (``teacher`` may be a :class:`CachedTeacher`).
    """
    temperature = positive_number("temperature", temperature)
    alpha = fraction("alpha", alpha, high_open=False)
    if not isinstance(teacher, CachedTeacher):
        teacher = CachedTeacher(teacher)

    def loss_fn(model: nn.Module, batch: tuple) -> torch.Tensor:
        tokens, lengths, labels = batch
        student = model(tokens, lengths)
        t = teacher(tokens, lengths)
        kl = nn.functional.kl_div(
            torch.log_softmax(student / temperature, dim=1),
            torch.log_softmax(t / temperature, dim=1),
            log_target=True,
            reduction="batchmean",
        )
        ce = nn.functional.cross_entropy(student, labels)
        return alpha * temperature**2 * kl + (1 - alpha) * ce

    return loss_fn


@keeps_global_rng
def finetune_pruned(
    model: nn.Module,
    data: TrainingData | tuple,
    *,
    epochs: int,
    lr: float = 3e-4,
    teacher: nn.Module | None = None,
    temperature: float = 2.0,
    alpha: float = 0.5,
    seed: int | None = None,
    progress: bool | None = None,
) -> dict:
    """Fine-tune a pruned model in place; keep the better of "before" and "after".

    With ``teacher`` the loss is :func:`distillation_loss`, otherwise cross-entropy.
    ``data`` is a Baseline or ``(train_loader, valid_loader)``. The model ends in the
    best validation state among the start and the fine-tuned epochs (the start wins only
    if strictly better). Returns ``{"valid_before", "valid_after", "kept_epoch"}``
    (``kept_epoch`` 0: the state before fine-tuning).
    """
    _, valid_loader = training_loaders(data, seed=seed)
    before = evaluate(model, valid_loader)["accuracy"]
    start = copy.deepcopy(model.state_dict())
    loss_fn = None
    if teacher is not None:
        loss_fn = distillation_loss(teacher, temperature=temperature, alpha=alpha)
    history = finetune(
        model, data, epochs=epochs, lr=lr, loss_fn=loss_fn, seed=seed, progress=progress
    )
    after = max(history.valid_accuracy)
    kept = history.best_epoch
    if before > after:
        model.load_state_dict(start)
        kept = 0
    model.eval()
    return {"valid_before": before, "valid_after": max(before, after), "kept_epoch": kept}


@dataclass
class UnitBudget:
    """What every method gets in :func:`compare_unit_pruning`.

    ``units``: hidden units kept per layer and direction. ``gal``: the GAL recipe (the
    ablation is the same with ``adv_weight=0``); with ``gal_budget`` (the default) both
    train with the unit budget ``target_units=units``: λ grows from ``gal.lam`` until
    only ``units`` masks per slot are above zero, so the cut is exact. ``gl_lambda``,
    ``gl_epochs``: group lasso. ``taylor_batches``: batches of structured Taylor scores.
    ``ft_epochs``, ``ft_lr``, ``distill``: the fine-tuning every method gets.
    ``train_batches`` (quick checks only): every epoch of every method sees only the
    first ``train_batches`` training batches.
    """

    units: int = 32
    gal: GALConfig = field(default_factory=GALConfig)
    gal_budget: bool = True
    gl_lambda: float = 0.05
    gl_epochs: int = 2
    taylor_batches: int = 30
    ft_epochs: int = 2
    ft_lr: float = 1e-3
    distill: bool = True
    train_batches: int | None = None

    def __post_init__(self):
        for name in ("units", "gl_epochs", "taylor_batches", "ft_epochs", "train_batches"):
            value = getattr(self, name)
            if name == "train_batches" and value is None:
                continue
            positive_int(name, value)
        if not isinstance(self.gal, GALConfig):
            raise TypeError(f"gal must be a GALConfig, got {type(self.gal).__name__}")
        self.gal.check()

    def data(self, baseline: TrainingData) -> TrainingData:
        """The baseline, or with ``train_batches`` the baseline whose training loader stops
        after its first ``train_batches`` batches (:func:`~course_utils.train.first_batches`)."""
        return first_batches(baseline, self.train_batches)

    def describe(self, units: str | None = None) -> str:
        """The budget in one paragraph, for a notebook or a report. ``units`` replaces the
        number of units in the text (e.g. ``"64, 32 or 16"`` for a grid of budgets)."""
        g, units = self.gal, units or str(self.units)
        text = (
            f"Every method ends with {units} hidden units per layer and direction, then "
            f"{self.ft_epochs} epoch(s) of fine-tuning (Adam, lr {self.ft_lr:g}, "
            + ("distillation from the dense model" if self.distill else "cross-entropy")
            + ", the state before fine-tuning kept when it is better on validation). "
            f"GAL and its ablation: {g.epochs} epochs ("
            + (
                f"λ from {g.lam:g}, times {g.lam_growth:g} per mask step until "
                f"{units} units are left"
                if self.gal_budget
                else f"λ {g.lam:g}"
            )
            + f", masks every {g.mask_every} steps); group lasso: {self.gl_epochs} epochs (λ "
            f"{self.gl_lambda:g}); Taylor: scores from {self.taylor_batches} batches; "
            "magnitude: no training."
        )
        if self.train_batches is not None:
            text += f" Quick check: an epoch is only the first {self.train_batches} batches."
        return text


@keeps_global_rng
def gal_for(
    baseline: Baseline,
    budget: UnitBudget,
    *,
    adversarial: bool = True,
    cache: CachedTeacher | None = None,
    progress: bool | None = None,
) -> GALResult:
    """Train GAL (or its ablation) on ``baseline`` with the budget's recipe, seeded by it."""
    data = budget.data(baseline)
    config = dataclasses.replace(
        budget.gal,
        seed=baseline.seed,
        adv_weight=budget.gal.adv_weight if adversarial else 0.0,
        target_units=budget.units if budget.gal_budget else budget.gal.target_units,
    )
    return train_gal(
        baseline.model,
        data.loader("train", seed=baseline.seed),
        data.loader("valid"),
        config,
        teacher_cache=cache,
        progress=progress,
    )


@keeps_global_rng
def prune_to_units(
    method: str,
    baseline: Baseline,
    budget: UnitBudget,
    *,
    cache: CachedTeacher | None = None,
    gal_result: GALResult | None = None,
    progress: bool | None = None,
) -> tuple[nn.Module, dict]:
    """The baseline pruned to ``budget.units`` units per slot by ``method`` (no fine-tuning).

    ``method`` is a structured method: one of :data:`UNIT_METHODS` or
    ``"unit_taylor_gate"``. Returns ``(smaller model, scores per slot used to choose the
    units)``. For ``"gal"`` and ``"gal_no_adv"`` a finished ``gal_result`` may be passed
    to skip training.
    """
    get_method(method, method_names("structured"))
    dense, units = baseline.model.eval(), budget.units
    data = budget.data(baseline)
    if method in ("gal", "gal_no_adv"):
        result = gal_result or gal_for(
            baseline, budget, adversarial=method == "gal", cache=cache, progress=progress
        )
        return remove_masked_units(result.student, result.masks, keep=units), result.masks
    if method == "unit_magnitude":
        scores = unit_norms(dense)
        return remove_hidden_units(dense, select_units(scores, units)), scores
    if method in ("unit_taylor", "unit_taylor_gate"):
        loader = data.loader("train", seed=baseline.seed)
        form = "gate" if method == "unit_taylor_gate" else "group"
        scores = taylor_unit_scores(dense, loader, num_batches=budget.taylor_batches, form=form)
        return remove_hidden_units(dense, select_units(scores, units)), scores
    if method != "group_lasso":
        raise NotImplementedError(f"prune_to_units has no recipe for method={method!r}")
    model = baseline.copy_model()
    train_group_lasso(
        model,
        hidden_unit_groups(model),
        data,
        lam=budget.gl_lambda,
        epochs=budget.gl_epochs,
        seed=baseline.seed,
        progress=progress,
    )
    model.eval()
    return remove_hidden_units(model, select_units_by_norm(model, units)), unit_norms(model)


def _pruned_row(
    method: str,
    baseline: Baseline,
    budget: UnitBudget,
    *,
    cache: CachedTeacher,
    dense_test: float,
    gal_result: GALResult | None,
    progress: bool | None,
) -> tuple[nn.Module, dict]:
    """One method on one baseline: prune to units, fine-tune; the model and its row."""
    start = time.perf_counter()
    test_loader, valid_loader = baseline.loader("test"), baseline.loader("valid")
    model, _ = prune_to_units(
        method, baseline, budget, cache=cache, gal_result=gal_result, progress=progress
    )
    test_before = evaluate(model, test_loader)["accuracy"]
    info = finetune_pruned(
        model,
        budget.data(baseline),
        epochs=budget.ft_epochs,
        lr=budget.ft_lr,
        teacher=cache if budget.distill else None,
        seed=baseline.seed,
        progress=progress,
    )
    row = {
        "method": method,
        "sparsity": 1 - budget.units / baseline.model.rnn.hidden_size,
        "units": budget.units,
        "seed": baseline.seed,
        "dense_test": dense_test,
        "valid_before": info["valid_before"],
        "test_before": test_before,
        "valid_accuracy": evaluate(model, valid_loader)["accuracy"],
        "test_accuracy": evaluate(model, test_loader)["accuracy"],
        "kept_epoch": info["kept_epoch"],
        "seconds": time.perf_counter() - start,
    }
    return model, row


@keeps_global_rng
def compare_unit_pruning(
    baselines: Baseline | Sequence[Baseline],
    methods: Sequence[str] = UNIT_METHODS,
    budget: UnitBudget | None = None,
    *,
    gal_results: Mapping[tuple[str, int], GALResult] | None = None,
    models: dict | None = None,
    progress: bool | None = None,
) -> Table:
    """Prune each baseline with each method to ``budget.units`` units, fine-tune equally.

    ``baselines``: a Baseline or a list (one per seed). ``gal_results`` maps
    ``(method, seed)`` to finished GAL runs to reuse. One row per (seed, method):
    ``method``, ``sparsity`` (fraction of hidden units removed), ``units``, ``seed``,
    ``dense_test``, ``valid_before``/``test_before`` (pruned, before fine-tuning),
    ``valid_accuracy``/``test_accuracy`` (after), ``kept_epoch``, ``seconds``. Pass a
    dict as ``models`` to receive the final models, keyed ``(method, seed)``.
    """
    budget = budget or UnitBudget()
    if isinstance(baselines, TrainingData):
        baselines = [baselines]
    for method in methods:
        get_method(method, method_names("structured"))
    gal_results = dict(gal_results or {})
    rows = Table()
    for baseline in baselines:
        cache = CachedTeacher(baseline.model.eval())
        dense_test = evaluate(baseline.model, baseline.loader("test"))["accuracy"]
        for method in methods:
            model, row = _pruned_row(
                method,
                baseline,
                budget,
                cache=cache,
                dense_test=dense_test,
                gal_result=gal_results.get((method, baseline.seed)),
                progress=progress,
            )
            rows.append(row)
            if models is not None:
                models[(method, baseline.seed)] = model
    return rows


def method_summary(rows: Sequence[dict]) -> Table:
    """Per method: test accuracy before and after fine-tuning and the drop against each
    seed's own dense model, as ``median (min to max)`` over seeds (percent, points)."""

    def spread(values: list[float]) -> str:
        return median_range(median_spread(values), between=" to ")

    table = Table()
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        table.append(
            {
                "method": METHODS[method].long_label if method in METHODS else method,
                "units": mine[0]["units"],
                "seeds": len(mine),
                "test % before fine-tuning": spread([100 * r["test_before"] for r in mine]),
                "test % after": spread([100 * r["test_accuracy"] for r in mine]),
                "drop vs dense (points)": spread(
                    [100 * (r["dense_test"] - r["test_accuracy"]) for r in mine]
                ),
            }
        )
    return table


def adversarial_verdict(rows: Sequence[dict], metric: str = "test_accuracy") -> dict:
    """Does the adversarial term help? GAL against its ablation on ``metric``.

    Returns medians and ranges over seeds of both, the per-seed (paired) differences,
    their median, and ``verdict``: chapter 3's rule (:func:`compare_medians`): "better"
    or "worse" only when the medians differ AND the two ranges do not overlap, else "no
    clear difference" ("one seed" with a single seed). ``sentence`` states it with the
    numbers.
    """
    by_seed = {
        m: {r["seed"]: r[metric] for r in rows if r["method"] == m} for m in ("gal", "gal_no_adv")
    }
    seeds = sorted(set(by_seed["gal"]) & set(by_seed["gal_no_adv"]))
    if not seeds:
        raise ValueError("rows need both 'gal' and 'gal_no_adv' for the same seeds")
    gal = [by_seed["gal"][s] for s in seeds]
    ablation = [by_seed["gal_no_adv"][s] for s in seeds]
    paired = [a - b for a, b in zip(gal, ablation, strict=True)]
    picked = [r for r in rows if r["method"] in ("gal", "gal_no_adv") and r["seed"] in seeds]
    verdict = compare_medians(picked, "gal", "gal_no_adv", metric=metric, by="method")[0]["verdict"]
    median_diff = statistics.median(gal) - statistics.median(ablation)
    spread = max(max(gal) - min(gal), max(ablation) - min(ablation))
    if len(seeds) < 2:
        verdict = "one seed"
        answer = "one seed cannot tell: there is no seed spread to compare the difference with"
    elif verdict == "better":
        answer = "yes: GAL beats the ablation beyond the seed spread"
    elif verdict == "worse":
        answer = "no: GAL is worse than the ablation beyond the seed spread"
    else:
        answer = "not measurably: the difference is within the seed spread"

    def percent(values: list[float]) -> str:
        return median_range(median_spread(values), scale=100, unit=" %", always_range=True)

    sentence = (
        f"Does the adversarial term help? {answer}. Over {len(seeds)} seed(s), median "
        f"{metric.replace('_', ' ')}: GAL {percent(gal)}, ablation {percent(ablation)}; "
        f"difference of medians {100 * median_diff:+.1f} points, per-seed differences "
        f"{', '.join(f'{100 * d:+.1f}' for d in paired)}; the widest seed range is "
        f"{100 * spread:.1f} points."
    )
    return {
        "seeds": seeds,
        "gal": gal,
        "ablation": ablation,
        "paired_differences": paired,
        "median_difference": median_diff,
        "largest_range": spread,
        "verdict": verdict,
        "sentence": sentence,
    }


def simplest_sufficient(rows: Sequence[dict], metric: str = "test_accuracy") -> dict:
    """Which method to use: the simplest one that no other method clearly beats.

    The method with the best median ``metric`` over seeds is the reference; every other
    method is compared with it by chapter 3's rule (:func:`compare_medians`: "worse" only
    when its median is lower AND its best seed is below the reference's worst). Among the
    methods not clearly behind, the one of least :attr:`Method.effort` is recommended:
    when a simpler method is as good, the simpler one wins. With one seed nothing can be
    told apart, and ``verdict`` says so.
    """
    methods = list(dict.fromkeys(r["method"] for r in rows))
    if not methods:
        raise ValueError("rows is empty: run compare_unit_pruning first")
    values = {m: [r[metric] for r in rows if r["method"] == m] for m in methods}
    medians = {m: statistics.median(v) for m, v in values.items()}
    seeds = min(len(v) for v in values.values())
    verdicts: dict[str, str] = {}

    def clearly_behind(m: str, best: str) -> bool:
        verdicts[m] = compare_medians(rows, m, best, metric=metric, by="method")[0]["verdict"]
        return verdicts[m] == "worse"

    best, behind, simplest = simplest_not_behind(
        medians, clearly_behind, lambda m: METHODS[m].effort
    )
    enough = [best] + [m for m in verdicts if m not in behind]

    def named(m: str) -> str:
        return f"{METHODS[m].label} {100 * medians[m]:.1f} %"

    if seeds < 2:
        verdict = "one seed"
        sentence = (
            f"Best median {metric.replace('_', ' ')}: {named(best)}. One seed cannot rank "
            "methods: there is no seed spread to compare the differences with."
        )
    else:
        verdict = "simplest is best" if simplest == best else "simpler is as good"
        sentence = (
            f"Best median {metric.replace('_', ' ')} over {seeds} seeds: {named(best)}. "
            f"Not clearly behind it: {', '.join(named(m) for m in enough[1:]) or 'none'}. "
            f"Clearly behind: {', '.join(named(m) for m in behind) or 'none'}. "
            f"The simplest of the methods not clearly behind: {METHODS[simplest].label} "
            f"({METHODS[simplest].description}) -> use it on this task."
        )
    return {
        "best": best,
        "medians": medians,
        "verdicts": verdicts,
        "not_behind": enough,
        "simplest": simplest,
        "seeds": seeds,
        "verdict": verdict,
        "sentence": sentence,
    }
