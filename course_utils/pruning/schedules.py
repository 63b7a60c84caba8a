"""When to prune: one-shot, iterative and gradual (AGP) schedules with fine-tuning.

Introduced in chapter 2; chapter 3 reuses :class:`AGPPruner` with its own scores.

- :func:`agp_sparsity` is Zhu & Gupta's (2017) cubic schedule; :class:`AGPPruner` is the
  ``after_step`` hook that follows it.
- :func:`one_shot_pruning`, :func:`iterative_pruning` (Han et al. 2015) and
  :func:`agp_pruning` run whole schedules, fine-tuning with
  :func:`~course_utils.pruning.finetune`, and return a :class:`PruningRun` record
  (lottery tickets, in ``lottery.py``, return one too).
- A round of one-shot or iterative pruning is two steps: ``prune`` to the round's
  target, then :func:`finetune_round` (measure, fine-tune, measure again).

``data`` is either a :class:`course_utils.Baseline` (its train and validation loaders
are used) or a pair ``(train_loader, valid_loader)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from ..checks import integer, number, positive_int, positive_number
from ..masking import check_sparsity
from ..report import Table
from ..seeding import keeps_global_rng, set_seed
from ..train import History, evaluate
from .finetune import finetune, training_loaders
from .magnitude import check_criterion, prune, pruned_names, pruned_sparsity
from .selection import MaskFn, check_scope

__all__ = [
    "AGPPruner",
    "PruningRun",
    "ScheduleFn",
    "ScoresFn",
    "agp_pruning",
    "agp_sparsity",
    "finetune_round",
    "iterative_pruning",
    "iterative_sparsities",
    "one_shot_pruning",
]

ScoresFn = Callable[[nn.Module], Mapping[str, torch.Tensor]]
ScheduleFn = Callable[[int, float, float, int, int, int], float]
"""``schedule_fn(step, initial, final, start_step, end_step, frequency)`` -> target
sparsity: :func:`agp_sparsity` with positional arguments (chapter 2's exercise ``agp``)."""


# --- the AGP formula ------------------------------------------------------------------


def agp_sparsity(
    step: int,
    *,
    initial: float,
    final: float,
    start_step: int,
    end_step: int,
    frequency: int,
    exponent: float = 3.0,
) -> float:
    """Target sparsity at training step ``step`` under automated gradual pruning.

    Zhu & Gupta (2017), with ``n * frequency = end_step - start_step``::

        s_t = s_f + (s_i - s_f) * (1 - (t - t0) / (n * dt)) ** 3

    where ``t`` is the latest pruning step at or before ``step`` (pruning happens at
    ``start_step``, every ``frequency`` steps after it, and at ``end_step``; the target is
    held between them). Before ``start_step`` it is ``initial``; from ``end_step`` on,
    ``final``. ``exponent=1`` gives a linear ramp.
    """
    step = integer("step", step)
    start_step = integer("start_step", start_step)
    end_step = integer("end_step", end_step)
    frequency = integer("frequency", frequency, minimum=1)
    initial = check_sparsity(initial, "initial")
    final = check_sparsity(final, "final")
    if end_step <= start_step:
        raise ValueError(f"end_step must be > start_step={start_step}, got end_step={end_step}")
    if final < initial:
        raise ValueError(f"final sparsity must be >= initial={initial}, got final={final}")
    exponent = positive_number("exponent", exponent)
    if step < start_step:
        return initial
    if step >= end_step:
        return final
    last_update = start_step + (step - start_step) // frequency * frequency
    if last_update == start_step:
        return initial
    progress = (last_update - start_step) / (end_step - start_step)
    return final + (initial - final) * (1.0 - progress) ** exponent


class AGPPruner:
    """An ``after_step`` hook that prunes ``model`` along :func:`agp_sparsity`.

    At every pruning step it re-selects, among the weights still alive, the
    lowest-scoring ones until each tensor (``scope="layerwise"``) or all of them
    together (``"global"``) reach the schedule's target; pruned weights stay pruned, so
    from ``end_step`` on the masks are frozen at ``final``. Scores are |w| (or random),
    or whatever ``scores_fn(model)`` returns (chapter 3 passes gradient scores).
    ``mask_fn`` and ``schedule_fn`` let chapter 2's exercises do the selecting and the
    scheduling (:meth:`target`; :func:`~course_utils.pruning.prune`'s ``mask_fn``).
    ``events`` lists ``(step, target sparsity)`` for each pruning step taken.
    """

    def __init__(
        self,
        model: nn.Module,
        final: float,
        *,
        end_step: int,
        frequency: int,
        initial: float = 0.0,
        start_step: int = 0,
        exponent: float = 3.0,
        scope: str = "layerwise",
        criterion: str = "magnitude",
        include_embedding: bool = False,
        names: Sequence[str] | None = None,
        scores_fn: ScoresFn | None = None,
        seed: int = 0,
        mask_fn: MaskFn | None = None,
        schedule_fn: ScheduleFn | None = None,
    ):
        self.schedule = {
            "initial": initial,
            "final": final,
            "start_step": start_step,
            "end_step": end_step,
            "frequency": frequency,
            "exponent": exponent,
        }
        agp_sparsity(start_step, **self.schedule)  # validates every argument
        if schedule_fn is not None and not callable(schedule_fn):
            raise TypeError(f"schedule_fn must be callable like agp_sparsity, got {schedule_fn!r}")
        if schedule_fn is not None and exponent != 3.0:
            raise ValueError(
                f"schedule_fn is the cubic schedule (it takes no exponent), got exponent={exponent}"
            )
        if mask_fn is not None and not callable(mask_fn):
            raise TypeError(f"mask_fn must be callable(tensor, sparsity) -> mask, got {mask_fn!r}")
        check_scope(scope)
        if scores_fn is None:
            check_criterion(criterion)
        elif not callable(scores_fn):
            raise TypeError(f"scores_fn must be callable(model) -> scores, got {scores_fn!r}")
        self.names = pruned_names(model, include_embedding=include_embedding, names=names)
        self.scope, self.criterion, self.scores_fn, self.seed = scope, criterion, scores_fn, seed
        self.mask_fn, self.schedule_fn = mask_fn, schedule_fn
        self.current = 0.0
        self.events: list[tuple[int, float]] = []

    def is_pruning_step(self, step: int) -> bool:
        """True at ``start_step``, every ``frequency`` steps after it, and at ``end_step``."""
        start, end = self.schedule["start_step"], self.schedule["end_step"]
        return start <= step <= end and (
            (step - start) % self.schedule["frequency"] == 0 or step == end
        )

    def target(self, step: int) -> float:
        """The schedule's sparsity at ``step``: :func:`agp_sparsity`, or ``schedule_fn``
        called as ``schedule_fn(step, initial, final, start_step, end_step, frequency)``
        (chapter 2's exercise ``agp``), its value checked to lie in [0, 1)."""
        if self.schedule_fn is None:
            return agp_sparsity(step, **self.schedule)
        s = self.schedule
        value = self.schedule_fn(
            step, s["initial"], s["final"], s["start_step"], s["end_step"], s["frequency"]
        )
        return check_sparsity(value, f"schedule_fn's value at step {step}")

    def __call__(self, model: nn.Module, step: int) -> None:
        if not self.is_pruning_step(step):
            return
        target = self.target(step)
        if target <= self.current:
            return
        scores = None if self.scores_fn is None else self.scores_fn(model)
        prune(
            model,
            target,
            criterion=self.criterion,
            scope=self.scope,
            names=self.names,
            scores=scores,
            seed=self.seed + step,
            mask_fn=self.mask_fn,
        )
        self.current = target
        self.events.append((step, target))


# --- whole schedules -------------------------------------------------------------------


@dataclass
class PruningRun:
    """What a schedule did.

    ``events`` has one row per pruning step (``round`` or ``step``, ``target``
    sparsity, the ``sparsity`` reached, validation accuracy right after pruning and after
    fine-tuning where measured); ``histories`` the fine-tuning record of each phase;
    ``sparsity`` the final sparsity of the pruned tensors; ``valid_accuracy`` the final
    model's.
    """

    schedule: str
    events: Table
    histories: list[History] = field(default_factory=list)
    sparsity: float = 0.0
    valid_accuracy: float = float("nan")

    @property
    def epochs(self) -> int:
        """Fine-tuning epochs spent in total."""
        return sum(len(h.epoch) for h in self.histories)


@keeps_global_rng
def finetune_round(
    model: nn.Module,
    data,
    *,
    valid_loader,
    names: Sequence[str],
    epochs: int,
    lr: float,
    seed: int,
    desc: str,
    labels: tuple[str, str] = ("pruned", "finetuned"),
    **finetune_options,
) -> tuple[dict, History]:
    """After pruning: measure the model, fine-tune it, and return the round's numbers.

    Returns ``(row, history)``: ``row`` holds ``sparsity`` (over the tensors ``names``,
    after fine-tuning), ``valid_acc_<labels[0]>`` (validation accuracy right after
    pruning) and ``valid_acc_<labels[1]>`` (the best one while fine-tuning, the state
    the model ends in); ``history`` is :func:`~course_utils.pruning.finetune`'s record.
    Lottery tickets call the two measurements ``"reset"`` and ``"retrained"``.
    """
    accuracy = evaluate(model, valid_loader)["accuracy"]
    history = finetune(model, data, epochs=epochs, lr=lr, seed=seed, desc=desc, **finetune_options)
    row = {
        "sparsity": pruned_sparsity(model, names),
        f"valid_acc_{labels[0]}": accuracy,
        f"valid_acc_{labels[1]}": max(history.valid_accuracy),
    }
    return row, history


@keeps_global_rng
def one_shot_pruning(
    model: nn.Module,
    data,
    sparsity: float | Mapping[str, float],
    *,
    epochs: int,
    lr: float = 1e-3,
    criterion: str = "magnitude",
    scope: str = "layerwise",
    include_embedding: bool = False,
    names: Sequence[str] | None = None,
    seed: int = 0,
    mask_fn: MaskFn | None = None,
    **finetune_options,
) -> PruningRun:
    """Prune once to ``sparsity``, then fine-tune ``epochs`` epochs with the masks kept.

    ``mask_fn`` (your ``magnitude_mask``) chooses the pruned weights instead of the
    course's selection rule (see :func:`~course_utils.pruning.prune`)."""
    epochs, lr = positive_int("epochs", epochs), positive_number("lr", lr)
    check_scope(scope)
    check_criterion(criterion)
    set_seed(seed)
    names = pruned_names(model, include_embedding=include_embedding, names=names)
    _, valid_loader = training_loaders(data, seed=seed)
    prune(
        model, sparsity, criterion=criterion, scope=scope, names=names, seed=seed, mask_fn=mask_fn
    )
    row, history = finetune_round(
        model,
        data,
        valid_loader=valid_loader,
        names=names,
        epochs=epochs,
        lr=lr,
        seed=seed,
        desc="one-shot",
        **finetune_options,
    )
    target = sparsity if not isinstance(sparsity, Mapping) else float("nan")
    events = Table([{"round": 1, "target": target, **row}])
    return PruningRun("one-shot", events, [history], row["sparsity"], row["valid_acc_finetuned"])


def iterative_sparsities(sparsity: float, rounds: int) -> list[float]:
    """Targets of each round, removing the same fraction of the remaining weights each time.

    ``s_r = 1 - (1 - s) ** (r / rounds)`` for ``r = 1..rounds`` (the last one is ``s``).
    """
    sparsity = check_sparsity(sparsity)
    rounds = positive_int("rounds", rounds)
    targets = [1 - (1 - sparsity) ** (r / rounds) for r in range(1, rounds + 1)]
    targets[-1] = sparsity
    return targets


@keeps_global_rng
def iterative_pruning(
    model: nn.Module,
    data,
    sparsity: float,
    *,
    rounds: int,
    epochs_per_round: int,
    lr: float = 1e-3,
    criterion: str = "magnitude",
    scope: str = "layerwise",
    include_embedding: bool = False,
    names: Sequence[str] | None = None,
    seed: int = 0,
    mask_fn: MaskFn | None = None,
    **finetune_options,
) -> PruningRun:
    """Han et al. (2015): prune a little, fine-tune, repeat for ``rounds`` rounds.

    Each round removes the same fraction of the weights still alive
    (:func:`iterative_sparsities`); already-pruned weights stay pruned. ``mask_fn`` as in
    :func:`one_shot_pruning`.
    """
    check_scope(scope)
    check_criterion(criterion)
    targets = iterative_sparsities(sparsity, rounds)
    epochs_per_round = positive_int("epochs_per_round", epochs_per_round)
    lr = positive_number("lr", lr)
    set_seed(seed)
    names = pruned_names(model, include_embedding=include_embedding, names=names)
    _, valid_loader = training_loaders(data, seed=seed)
    events, histories = Table(), []
    for r, target in enumerate(targets, start=1):
        prune(
            model,
            target,
            criterion=criterion,
            scope=scope,
            names=names,
            seed=seed + r,
            mask_fn=mask_fn,
        )
        row, history = finetune_round(
            model,
            data,
            valid_loader=valid_loader,
            names=names,
            epochs=epochs_per_round,
            lr=lr,
            seed=seed + r,
            desc=f"iterative round {r}/{rounds}",
            **finetune_options,
        )
        events.append({"round": r, "target": target, **row})
        histories.append(history)
    last = events[-1]
    return PruningRun("iterative", events, histories, last["sparsity"], last["valid_acc_finetuned"])


@keeps_global_rng
def agp_pruning(
    model: nn.Module,
    data,
    final: float,
    *,
    epochs: int,
    prune_epochs: float,
    frequency: int,
    initial: float = 0.0,
    lr: float = 1e-3,
    criterion: str = "magnitude",
    scope: str = "layerwise",
    include_embedding: bool = False,
    names: Sequence[str] | None = None,
    scores_fn: ScoresFn | None = None,
    seed: int = 0,
    mask_fn: MaskFn | None = None,
    schedule_fn: ScheduleFn | None = None,
    **finetune_options,
) -> PruningRun:
    """Zhu & Gupta (2017): prune gradually while fine-tuning for ``epochs`` epochs.

    The schedule starts at step 0 (pruning to ``initial`` at once), updates every
    ``frequency`` steps and reaches ``final`` after ``prune_epochs`` epochs (it may be a
    fraction); the remaining epochs fine-tune with frozen masks. The model ends in the
    best validation state among epochs that finished at the final sparsity.

    Your own code can drive it (chapter 2's exercises): ``schedule_fn`` (your ``agp``)
    gives the target sparsity at each step instead of :func:`agp_sparsity`, and
    ``mask_fn`` (your ``magnitude_mask``) chooses the pruned weights (see
    :class:`AGPPruner`).
    """
    epochs, lr = positive_int("epochs", epochs), positive_number("lr", lr)
    prune_epochs = number("prune_epochs", prune_epochs, minimum=0, maximum=epochs, low_open=True)
    train_loader, valid_loader = training_loaders(data, seed=seed)
    steps_per_epoch = len(train_loader)
    end_step = max(1, round(prune_epochs * steps_per_epoch))
    set_seed(seed)
    names = pruned_names(model, include_embedding=include_embedding, names=names)
    pruner = AGPPruner(
        model,
        final,
        initial=initial,
        start_step=0,
        end_step=end_step,
        frequency=frequency,
        scope=scope,
        criterion=criterion,
        names=names,
        scores_fn=scores_fn,
        seed=seed,
        mask_fn=mask_fn,
        schedule_fn=schedule_fn,
    )
    pruner(model, 0)
    extra_after = finetune_options.pop("after_step", None)

    def after_step(model: nn.Module, step: int) -> None:
        if extra_after is not None:
            extra_after(model, step)
        pruner(model, step)

    history = finetune(
        model,
        data,
        epochs=epochs,
        lr=lr,
        after_step=after_step,
        best_from_epoch=math.ceil(end_step / steps_per_epoch),
        seed=seed,
        desc="AGP",
        **finetune_options,
    )
    events = Table({"step": s, "target": t} for s, t in pruner.events)
    reached = pruned_sparsity(model, names)
    accuracy = evaluate(model, valid_loader)["accuracy"]
    return PruningRun("AGP", events, [history], reached, accuracy)
