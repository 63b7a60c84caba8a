"""Lottery tickets (Frankle & Carbin 2019): train, prune, reset the survivors, retrain.

Introduced in chapter 2. :func:`lottery_ticket` runs the rounds; :func:`rewind_weights`
resets the surviving weights to earlier values (the masks stay);
``Baseline.initial_model()`` rebuilds the initialization theta_0 of a cached baseline.
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
from ..train import evaluate
from .finetune import finetune, training_loaders
from .magnitude import prune
from .schedules import (
    PruningRun,
    _check_scope_and_criterion,
    _names,
    _pruned_sparsity,
    iterative_sparsities,
)


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


def _weights_only(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


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
    _check_scope_and_criterion(scope, criterion)
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
    names = _names(model, include_embedding, names)
    _, valid_loader = training_loaders(data, seed=seed)
    rewind_state = _weights_only(model)
    histories = []
    if trained is None:
        captured = {}

        def capture(model: nn.Module, step: int) -> None:
            if step == rewind_step:
                captured["state"] = _weights_only(model)

        histories.append(
            finetune(
                model,
                data,
                epochs=epochs,
                lr=lr,
                after_step=capture if rewind_step else None,
                seed=seed,
                desc="train dense",
                **finetune_options,
            )
        )
        if rewind_step:
            if "state" not in captured:
                raise ValueError(
                    f"rewind_step={rewind_step} is beyond the first training's "
                    f"{histories[0].epoch[-1]} epochs"
                )
            rewind_state = captured["state"]
    else:
        rewind_weights(model, trained)
    if reinit_seed is not None:
        set_seed(reinit_seed)
        rewind_state = _weights_only(build_model(model.config()))
    events = Table()
    for r, target in enumerate(targets, start=1):
        prune(model, target, criterion=criterion, scope=scope, names=names, seed=seed + r)
        rewind_weights(model, rewind_state)
        reset_accuracy = evaluate(model, valid_loader)["accuracy"]
        history = finetune(
            model,
            data,
            epochs=epochs,
            lr=lr,
            seed=seed + r,
            desc=f"ticket round {r}/{rounds}",
            **finetune_options,
        )
        histories.append(history)
        events.append(
            {
                "round": r,
                "target": target,
                "sparsity": _pruned_sparsity(model, names),
                "valid_acc_reset": reset_accuracy,
                "valid_acc_retrained": max(history.valid_accuracy),
            }
        )
    return PruningRun(
        "lottery ticket" if reinit_seed is None else "random reinit",
        events,
        histories,
        events[-1]["sparsity"],
        events[-1]["valid_acc_retrained"],
    )


__all__ = ["lottery_ticket", "rewind_weights"]
