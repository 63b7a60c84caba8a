"""Lottery tickets (Frankle & Carbin 2019): train, prune, reset the survivors, retrain.

Introduced in chapter 2. :func:`lottery_ticket` runs the experiment in the chapter's
steps, each a function of its own:

1. train the dense network from its initialization theta_0 (:func:`train_dense`), or
   take weights that this training already gave (the baseline);
2. prune the smallest weights (:func:`~course_utils.pruning.prune`);
3. reset the survivors to theta_0, or rewind them to their values after a few training
   steps (:func:`rewind_weights`; the masks stay);
4. retrain them (:func:`~course_utils.pruning.schedules.finetune_round`);

and repeats steps 2-4 once per round. The control experiment keeps the masks but gives
the survivors a fresh random initialization (:func:`random_initialization`).
``Baseline.initial_model()`` rebuilds theta_0 of a cached baseline.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from ..checks import non_negative_int, positive_int, positive_number
from ..masking import apply_masks, get_masks
from ..models import build_model
from ..report import Table
from ..seeding import keeps_global_rng, set_seed
from ..train import History
from .finetune import finetune, training_loaders
from .magnitude import check_criterion, prune, pruned_names
from .schedules import PruningRun, finetune_round, iterative_sparsities
from .selection import check_scope

__all__ = [
    "lottery_ticket",
    "random_initialization",
    "rewind_weights",
    "train_dense",
    "weights_of",
]


def weights_of(model: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of every parameter's values, by name: what :func:`rewind_weights` restores.

    Buffers (and so masks) are left out: rewinding changes weights, never masks.
    """
    return {n: p.detach().clone() for n, p in model.named_parameters()}


@torch.no_grad()
def rewind_weights(model: nn.Module, weights: nn.Module | Mapping[str, torch.Tensor]) -> None:
    """Copy every parameter's values from ``weights`` into ``model``; masks stay applied.

    ``weights`` is a model of the same architecture or its ``state_dict``. The pruned
    weights stay zero: only the survivors take the rewound values.
    """
    state = weights.state_dict() if isinstance(weights, nn.Module) else weights
    params = dict(model.named_parameters())
    missing = [n for n in params if n not in state]
    if missing:
        raise ValueError(f"weights lacks parameters {missing}")
    for name, p in params.items():
        if state[name].shape != p.shape:
            raise ValueError(
                f"weights[{name!r}] has shape {tuple(state[name].shape)}, expected {tuple(p.shape)}"
            )
        p.copy_(state[name])
    apply_masks(model)


@keeps_global_rng
def train_dense(
    model: nn.Module,
    data,
    *,
    epochs: int,
    lr: float = 3e-3,
    rewind_step: int = 0,
    seed: int = 0,
    **finetune_options,
) -> tuple[History, dict[str, torch.Tensor]]:
    """Step 1 of a lottery ticket: train the dense ``model`` in place from theta_0.

    Returns the training's History and the weights the survivors will be reset to:
    theta_0 itself (the values ``model`` held before training) or, with
    ``rewind_step=k``, the values after k training steps. A ``rewind_step`` beyond the
    last step is a ValueError.
    """
    rewind_step = non_negative_int("rewind_step", rewind_step)
    theta_0 = weights_of(model)
    captured = {}

    def capture(model: nn.Module, step: int) -> None:
        if step == rewind_step:
            captured["state"] = weights_of(model)

    history = finetune(
        model,
        data,
        epochs=epochs,
        lr=lr,
        after_step=capture if rewind_step else None,
        seed=seed,
        desc="train dense",
        **finetune_options,
    )
    if not rewind_step:
        return history, theta_0
    if "state" not in captured:
        raise ValueError(
            f"rewind_step={rewind_step} is beyond the first training's {history.epoch[-1]} epochs"
        )
    return history, captured["state"]


@keeps_global_rng
def random_initialization(model: nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """The control's weights: a fresh random initialization of ``model``'s architecture.

    The same draws as building the model anew after ``set_seed(seed)``; ``model`` itself
    is not changed. Reset a ticket to them with :func:`rewind_weights`.
    """
    set_seed(seed)
    return weights_of(build_model(model.config()))


@keeps_global_rng
def lottery_ticket(
    model: nn.Module,
    data,
    sparsity: float,
    *,
    epochs: int,
    rounds: int = 1,
    lr: float = 3e-3,
    rewind_step: int = 0,
    trained: nn.Module | Mapping[str, torch.Tensor] | None = None,
    reinit_seed: int | None = None,
    scope: str = "global",
    criterion: str = "magnitude",
    include_embedding: bool = False,
    names: Sequence[str] | None = None,
    seed: int = 0,
    **finetune_options,
) -> PruningRun:
    """Frankle & Carbin (2019): train, prune, reset the survivors, retrain; ``rounds`` times.

    ``model`` holds the initialization theta_0 and ends as the retrained ticket. The
    first training (``epochs`` epochs) can be skipped by passing ``trained``, the weights
    that training from theta_0 gave (e.g. the baseline; only with ``rewind_step=0``).
    Each round prunes the same fraction of the surviving weights by ``criterion`` and
    ``scope`` (:func:`iterative_sparsities`), resets the survivors to theta_0 or, with
    ``rewind_step=k``, to their values after k training steps ("rewinding"), and
    retrains them ``epochs`` epochs. ``reinit_seed`` gives the control experiment: the
    survivors get a fresh random initialization instead.
    """
    check_scope(scope)
    check_criterion(criterion)
    targets = iterative_sparsities(sparsity, rounds)
    epochs, lr = positive_int("epochs", epochs), positive_number("lr", lr)
    rewind_step = non_negative_int("rewind_step", rewind_step)
    if trained is not None and rewind_step > 0:
        raise ValueError(
            f"rewind_step={rewind_step} needs the weights after {rewind_step} steps, which "
            "only the first training gives: pass trained=None"
        )
    if get_masks(model):
        raise ValueError("model must be the dense initialization, but it already has masks")
    set_seed(seed)
    names = pruned_names(model, include_embedding=include_embedding, names=names)
    _, valid_loader = training_loaders(data, seed=seed)
    if trained is None:  # 1. train the dense network
        history, reset_to = train_dense(
            model,
            data,
            epochs=epochs,
            lr=lr,
            rewind_step=rewind_step,
            seed=seed,
            **finetune_options,
        )
        histories = [history]
    else:  # ... or take the weights it gave
        reset_to, histories = weights_of(model), []
        rewind_weights(model, trained)
    if reinit_seed is not None:  # the control: same masks, a new initialization
        reset_to = random_initialization(model, reinit_seed)
    events = Table()
    for r, target in enumerate(targets, start=1):
        prune(model, target, criterion=criterion, scope=scope, names=names, seed=seed + r)  # 2.
        rewind_weights(model, reset_to)  # 3. reset the survivors
        row, history = finetune_round(  # 4. retrain
            model,
            data,
            valid_loader=valid_loader,
            names=names,
            epochs=epochs,
            lr=lr,
            seed=seed + r,
            desc=f"ticket round {r}/{rounds}",
            labels=("reset", "retrained"),
            **finetune_options,
        )
        events.append({"round": r, "target": target, **row})
        histories.append(history)
    last = events[-1]
    return PruningRun(
        "lottery ticket" if reinit_seed is None else "random reinit",
        events,
        histories,
        last["sparsity"],
        last["valid_acc_retrained"],
    )
