"""Gradient-based importance: first-order Taylor, SNIP and movement pruning.

Introduced in chapter 3. Each criterion returns one score tensor per prunable weight
(higher = keep), so it plugs into the same selection rules and schedules as magnitude
pruning: ``prune(model, 0.9, scores=taylor_scores(model, loader))``.

- Taylor (Molchanov et al. 2017, 2019): removing weight w changes the loss by about
  g·w (first order), so the element score is |g·w|, averaged over many mini-batches
  (or an exponential moving average with ``momentum``). For a group of weights (a
  hidden unit), the score is (Σ g·w)² over the group, or over the weights that read
  the unit (the paper's gate form).
- SNIP (Lee et al. 2019): at initialization, one batch, |g·w| normalized to sum to 1
  over all tensors; keep the top κ and train the sparse net from there.
- Movement (Sanh et al. 2020): during fine-tuning the score accumulates -g·w at every
  step (weights moving away from zero gain score); prune by top-k under the cubic
  schedule.

Scores from a fixed model (:func:`taylor_scores`, :func:`snip_scores`) and scores
accumulated while training (:class:`RunningTaylorScores`, :class:`MovementScores`, both
``before_step`` hooks) share one format. :func:`taylor_unit_scores` scores whole hidden
units over chapter 4's ISS groups (or, in the gate form, over their reading side only).
The pipelines that prune with these scores (gradual pruning, SNIP) live in
:mod:`course_utils.pruning.criteria`, the equal-budget comparison in
:mod:`course_utils.experiments.comparison`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

import torch
from torch import nn

from ..checks import fraction, positive_int, positive_number
from ..masking import check_names, prunable_parameters
from ..train import check_batch, nonempty_batches, num_classes_of
from .groups import Group, GroupSet, hidden_unit_groups

__all__ = [
    "ImportanceFn",
    "LossFn",
    "MovementScores",
    "RunningTaylorScores",
    "UNIT_TAYLOR_FORMS",
    "batch_gradients",
    "cross_entropy_loss",
    "group_slices",
    "looks_trained",
    "snip_scores",
    "taylor_group_scores",
    "taylor_scores",
    "taylor_unit_scores",
]

LossFn = Callable[[nn.Module, tuple], torch.Tensor]


def cross_entropy_loss(model: nn.Module, batch: tuple) -> torch.Tensor:
    """Mean cross-entropy of ``model`` on a ``(tokens, lengths, labels)`` batch."""
    tokens, lengths, labels = batch
    return nn.functional.cross_entropy(model(tokens, lengths), labels)


def _params(model: nn.Module, names: Sequence[str] | None) -> dict[str, nn.Parameter]:
    if names is None:
        return prunable_parameters(model)
    if not names:
        raise ValueError("names is empty: no tensors to score")
    params = check_names(model, names)
    return {n: params[n] for n in names}


def _require_data(criterion: str, data, loss_fn) -> None:
    if data is None:
        raise ValueError(
            f"the {criterion} criterion needs gradients: pass data (a DataLoader or a list of "
            "(tokens, lengths, labels) batches); magnitude and random need none"
        )
    if loss_fn is not None and not callable(loss_fn):
        raise TypeError(
            f"loss_fn must be callable(model, batch) -> loss, got {type(loss_fn).__name__}"
        )


def _to_device(batch: tuple, device: torch.device) -> tuple:
    return tuple(x.to(device) if isinstance(x, torch.Tensor) else x for x in batch)


def _gradients(
    model: nn.Module, batch: tuple, params: Mapping[str, nn.Parameter], loss_fn: LossFn
) -> dict[str, torch.Tensor]:
    """Gradients of the batch loss with respect to ``params`` (model in eval mode).

    The batch must be a ``(tokens, lengths, labels)`` triple with labels in range
    (:func:`course_utils.train.check_batch`; a custom ``loss_fn`` reads the rest itself).
    """
    batch = check_batch(
        batch, num_classes_of(model), "each batch of data", shapes=loss_fn is cross_entropy_loss
    )
    device = next(model.parameters()).device
    loss = loss_fn(model, _to_device(batch, device))
    if not torch.isfinite(loss):
        raise FloatingPointError(f"the loss is {loss.item()}: cannot score with its gradient")
    grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
    return {
        n: torch.zeros_like(p) if g is None else g.detach()
        for (n, p), g in zip(params.items(), grads, strict=True)
    }


class _EvalMode:
    """Score with dropout off, then restore the model's mode."""

    def __init__(self, model: nn.Module):
        self.model, self.was_training = model, model.training

    def __enter__(self):
        self.model.eval()
        return self.model

    def __exit__(self, *exc):
        self.model.train(self.was_training)


def batch_gradients(
    model: nn.Module,
    data: Iterable[tuple],
    params: Mapping[str, nn.Parameter],
    loss_fn: LossFn,
    num_batches: int,
) -> Iterator[dict[str, torch.Tensor]]:
    """Yield ``{name: gradient}`` of the loss for each of the first ``num_batches`` batches.

    The gradients are taken with respect to ``params`` with dropout off (the model is in
    eval mode while the batches are read, and back in its own mode afterwards); every
    Taylor score of this module sums its products ``g·w`` over these batches.
    """
    with _EvalMode(model):
        for seen, batch in enumerate(data):
            if seen == num_batches:
                break
            yield _gradients(model, batch, params, loss_fn)


ImportanceFn = Callable[[torch.Tensor, list[torch.Tensor]], torch.Tensor]
"""``importance(weight, grads)`` -> scores of the weight's shape, from the list of its
per-batch gradients: chapter 3's exercise ``taylor_importance``."""


def _check_importance(importance, momentum) -> None:
    if importance is not None and not callable(importance):
        raise TypeError(f"importance must be callable(weight, grads) -> scores, got {importance!r}")
    if importance is not None and momentum is not None:
        raise ValueError("importance averages the batches itself: pass momentum=None with it")


def _scores_from(
    importance: ImportanceFn, param: torch.Tensor, grads: list[torch.Tensor], name: str
) -> torch.Tensor:
    """``importance(weight, grads)`` for one tensor, checked: its shape, finite, >= 0."""
    scores = importance(param.detach().float().clone(), grads)
    if not isinstance(scores, torch.Tensor):
        raise TypeError(f"importance returned {type(scores).__name__} for {name!r}, not a tensor")
    if scores.shape != param.shape:
        raise ValueError(
            f"importance returned shape {tuple(scores.shape)} for {name!r}, "
            f"expected the weight's {tuple(param.shape)}"
        )
    scores = scores.detach().float()
    if not torch.isfinite(scores).all() or (scores < 0).any():
        raise ValueError(f"importance returned negative or non-finite scores for {name!r}")
    return scores


def taylor_scores(
    model: nn.Module,
    data: Iterable[tuple] | None = None,
    *,
    num_batches: int = 30,
    momentum: float | None = None,
    loss_fn: LossFn | None = None,
    names: Sequence[str] | None = None,
    importance: ImportanceFn | None = None,
) -> dict[str, torch.Tensor]:
    """First-order Taylor importance |g·w| per weight, accumulated over mini-batches.

    Args:
        data: batches ``(tokens, lengths, labels)``; the first ``num_batches`` are used.
        momentum: ``None`` averages the per-batch scores; a value in [0, 1) keeps an
            exponential moving average ``s <- momentum·s + (1 - momentum)·|g·w|``.
        loss_fn: ``loss_fn(model, batch)``; default cross-entropy.
        names: tensors to score (default: every prunable weight).
        importance: your own ``importance(weight, grads) -> scores`` (chapter 3's
            exercise ``taylor_importance``), called once per tensor with the list of its
            per-batch gradients, instead of the course's average (not with ``momentum``).

    Returns ``{name: scores}`` with the weights' shapes.
    """
    _require_data("taylor", data, loss_fn)
    num_batches = positive_int("num_batches", num_batches)
    if momentum is not None:
        momentum = fraction("momentum", momentum)
    _check_importance(importance, momentum)
    data = nonempty_batches(data, "data")
    loss_fn = loss_fn or cross_entropy_loss
    params = _params(model, names)
    if importance is not None:
        grads = {n: [] for n in params}
        for batch_grads in batch_gradients(model, data, params, loss_fn, num_batches):
            for n in params:
                grads[n].append(batch_grads[n].detach().float())
        return {n: _scores_from(importance, p, grads[n], n) for n, p in params.items()}
    scores = {n: torch.zeros_like(p, dtype=torch.float32) for n, p in params.items()}
    seen = 0
    for grads in batch_gradients(model, data, params, loss_fn, num_batches):
        for n, p in params.items():
            value = (grads[n] * p.detach()).abs().float()
            if momentum is None:
                scores[n] += value
            elif seen == 0:
                scores[n] = value
            else:
                scores[n] = momentum * scores[n] + (1 - momentum) * value
        seen += 1
    if momentum is None:
        scores = {n: s / seen for n, s in scores.items()}
    return scores


def taylor_group_scores(
    model: nn.Module,
    data: Iterable[tuple] | None,
    groups,
    *,
    num_batches: int = 30,
    loss_fn: LossFn | None = None,
) -> dict[object, float]:
    """Structured Taylor importance (Σ_group g·w)² per group, averaged over batches.

    ``groups`` maps a group key (e.g. a hidden unit) to slices ``(param name, index)``
    whose entries together form the group; ``param[index]`` selects them (an index may
    be a bool mask of the parameter's shape). A chapter-4 ``GroupSet`` (e.g.
    ``hidden_unit_groups(model)``) is accepted too: see :func:`group_slices`.
    """
    _require_data("taylor", data, loss_fn)
    num_batches = positive_int("num_batches", num_batches)
    data = nonempty_batches(data, "data")
    if isinstance(groups, GroupSet):
        groups = group_slices(groups)
    if not isinstance(groups, Mapping):
        raise TypeError(
            "groups must be a dict {key: [(param name, index), ...]} or a GroupSet, "
            f"got {type(groups).__name__}"
        )
    if not groups:
        raise ValueError("groups is empty")
    loss_fn = loss_fn or cross_entropy_loss
    all_params = dict(model.named_parameters())
    used = sorted({name for slices in groups.values() for name, _ in slices})
    unknown = [n for n in used if n not in all_params]
    if unknown:
        raise ValueError(f"groups name tensors the model does not have: {unknown}")
    params = {n: all_params[n] for n in used}
    totals = dict.fromkeys(groups, 0.0)
    seen = 0
    for grads in batch_gradients(model, data, params, loss_fn, num_batches):
        products = {n: grads[n] * params[n].detach() for n in used}
        for key, slices in groups.items():
            total = sum(products[name][index].sum() for name, index in slices)
            totals[key] += float(total) ** 2
        seen += 1
    return {key: value / seen for key, value in totals.items()}


def group_slices(groups) -> dict[tuple, list[tuple[str, torch.Tensor]]]:
    """Chapter 4's ISS groups as ``{group key: [(param name, bool mask), ...]}``.

    ``groups`` is a ``GroupSet`` (``hidden_unit_groups(model)`` or
    ``embedding_dim_groups(model)``). Each bool mask has its parameter's shape and marks
    the group's entries; an entry listed twice in the group (a unit's diagonal entries of
    ``weight_hh`` lie in its rows and in its column) is marked once, so sums over the
    masks count every weight of the group exactly once.
    """
    if not isinstance(groups, GroupSet):
        raise TypeError(
            "groups must be a GroupSet from course_utils.pruning.groups, "
            f"got {type(groups).__name__}"
        )
    return {
        group.key: list(groups.element_masks(i).items()) for i, group in enumerate(groups.groups)
    }


def _group_index(groups) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """``{param: (flat element indices, group ids)}``, each group's entries listed once."""
    flat: dict[str, list[torch.Tensor]] = {}
    ids: dict[str, list[torch.Tensor]] = {}
    for gid in range(len(groups)):
        for name, mask in groups.element_masks(gid).items():
            index = torch.nonzero(mask.reshape(-1)).flatten()
            flat.setdefault(name, []).append(index)
            ids.setdefault(name, []).append(torch.full_like(index, gid))
    return {name: (torch.cat(flat[name]), torch.cat(ids[name])) for name in flat}


def _reading_side(groups: GroupSet) -> GroupSet:
    """The same groups cut down to the slices that read each group's output
    (``Slice.reads``: a unit's ``weight_hh`` column and its consumer columns)."""
    reading = [Group(g.key, tuple(s for s in g.slices if s.reads)) for g in groups]
    return GroupSet(reading, groups.width, groups.shapes)


UNIT_TAYLOR_FORMS = ("group", "gate")
"""The forms of :func:`taylor_unit_scores`: the whole ISS group, or the weights that read
the unit."""


def taylor_unit_scores(
    model: nn.Module,
    data: Iterable[tuple] | None = None,
    *,
    groups=None,
    num_batches: int = 30,
    loss_fn: LossFn | None = None,
    form: str = "group",
) -> dict[tuple[int, int], torch.Tensor]:
    """Structured Taylor score of every hidden unit (Molchanov et al. 2019).

    The score of unit k is ``(Σ g·w)²`` per batch, averaged over ``num_batches`` batches;
    ``form`` says which weights of its ISS group (chapter 4's ``hidden_unit_groups``)
    the sum runs over:

    - ``"group"`` (the default, the form chapter 5's ``"unit_taylor"`` compares): the
      whole group, its gate rows and biases, its ``weight_hh`` column and its consumer
      column; the first-order loss change when every weight tied to the unit is zeroed.
      A variant of the paper's score.
    - ``"gate"`` (the paper's form; ``"unit_taylor_gate"``): only the weights that read
      the unit, its ``weight_hh`` column and its consumer columns. With a gate ``m_k``
      on the unit's output (``h'_k = m_k·h_k``, read as ``z = W h'``),
      ``∂L/∂m_k = Σ_t Σ_i (∂L/∂z_{i,t})·W_ik·h_{k,t}`` at ``m = 1``, which is ``Σ g·w``
      over those columns: the score is ``(∂L/∂m_k)²``. The cell's own carry (an LSTM's
      ``c_t``, a GRU's ``z·h_{t-1}``) stays inside the unit and has no gate.

    Returns ``{(layer, direction): (hidden_size,) tensor}``, the format of
    ``course_utils.pruning.structured.select_units``. ``groups`` (default: the model's
    ``hidden_unit_groups``) may be any GroupSet built for this model.
    """
    _require_data("taylor", data, loss_fn)
    num_batches = positive_int("num_batches", num_batches)
    if form not in UNIT_TAYLOR_FORMS:
        raise ValueError(f"unknown form={form!r}; choose from {list(UNIT_TAYLOR_FORMS)}")
    data = nonempty_batches(data, "data")
    if groups is None:
        groups = hidden_unit_groups(model)
    elif not isinstance(groups, GroupSet):
        raise TypeError(f"groups must be a GroupSet or None, got {type(groups).__name__}")
    params = dict(model.named_parameters())
    for name, shape in groups.shapes.items():
        if name not in params or tuple(params[name].shape) != shape:
            raise ValueError(f"groups were built for another model: parameter {name!r} differs")
    if form == "gate":
        groups = _reading_side(groups)
    device = next(model.parameters()).device
    index = {n: (i.to(device), g.to(device)) for n, (i, g) in _group_index(groups).items()}
    used = {n: params[n] for n in index}
    totals = torch.zeros(len(groups), dtype=torch.float64, device=device)
    seen = 0
    for grads in batch_gradients(model, data, used, loss_fn or cross_entropy_loss, num_batches):
        sums = torch.zeros(len(groups), dtype=torch.float64, device=device)
        for name, (flat, ids) in index.items():
            product = (grads[name] * used[name].detach()).reshape(-1)[flat]
            sums.index_add_(0, ids, product.double())
        totals += sums**2
        seen += 1
    return {slot: v.float().cpu() for slot, v in groups.by_slot(totals / seen).items()}


def looks_trained(model: nn.Module) -> bool:
    """True when some recurrent weight lies outside PyTorch's U(±1/√H) initialization."""
    rnn = getattr(model, "rnn", None)
    if not isinstance(rnn, nn.RNNBase):
        return False
    bound = 1 / math.sqrt(rnn.hidden_size)
    return any(
        float(p.detach().abs().max()) > bound * (1 + 1e-6)
        for name, p in rnn.named_parameters()
        if name.startswith("weight_hh")
    )


def snip_scores(
    model: nn.Module,
    batch: tuple | None = None,
    *,
    loss_fn: LossFn | None = None,
    names: Sequence[str] | None = None,
    importance: ImportanceFn | None = None,
) -> dict[str, torch.Tensor]:
    """SNIP connection sensitivity |g·w| on one batch, normalized to sum to 1 over all tensors.

    SNIP is meant for a freshly initialized network (prune, then train the sparse net).
    Called on a model whose recurrent weights have left their initial range, it warns.
    ``importance`` (chapter 3's ``taylor_importance``) computes |g·w| from the one
    batch's gradient instead of the course's code, as in :func:`taylor_scores`.
    """
    _require_data("snip", batch, loss_fn)
    _check_importance(importance, None)
    if isinstance(batch, torch.utils.data.DataLoader):
        batch = next(iter(nonempty_batches(batch, "batch")))
    if looks_trained(model):
        warnings.warn(
            "SNIP scores a network at initialization, before training; this model's recurrent "
            "weights lie outside their initial range U(±1/√H), so it looks trained. On a trained "
            "model SNIP is a one-batch Taylor score: use taylor_scores (many batches) instead.",
            UserWarning,
            stacklevel=2,
        )
    params = _params(model, names)
    with _EvalMode(model):
        grads = _gradients(model, batch, params, loss_fn or cross_entropy_loss)
    if importance is None:
        raw = {n: (grads[n] * p.detach()).abs().float() for n, p in params.items()}
    else:
        raw = {
            n: _scores_from(importance, p, [grads[n].detach().float()], n)
            for n, p in params.items()
        }
    total = sum(float(s.sum()) for s in raw.values())
    if total == 0:
        raise ValueError("all SNIP sensitivities are zero (zero gradients): check batch and loss")
    return {n: s / total for n, s in raw.items()}


class _ScoreTracker:
    """Scores per prunable weight, updated from ``g·w`` after every backward pass.

    A ``before_step`` hook for ``train_model`` (it is callable); subclasses say how one
    step's ``g·w`` changes the score in :meth:`_update`.
    """

    label, needs = "gradient", "training steps"

    def __init__(self, model: nn.Module, names: Sequence[str] | None = None):
        self.names = list(_params(model, names))
        params = dict(model.named_parameters())
        self.values = {n: torch.zeros_like(params[n], dtype=torch.float32) for n in self.names}
        self.steps = 0

    def _update(self, name: str, grad_times_weight: torch.Tensor) -> None:
        raise NotImplementedError

    @torch.no_grad()
    def accumulate(self, model: nn.Module, step: int | None = None) -> None:
        params = dict(model.named_parameters())
        for n in self.names:
            p = params[n]
            if p.grad is None:
                raise ValueError(f"{n} has no gradient: call accumulate after loss.backward()")
            self._update(n, (p.grad * p).float())
        self.steps += 1

    __call__ = accumulate  # so that it can be passed as a before_step hook

    def scores(self) -> dict[str, torch.Tensor]:
        if self.steps == 0:
            raise ValueError(f"no steps accumulated yet: {self.label} scores need {self.needs}")
        return {n: s.clone() for n, s in self.values.items()}


class MovementScores(_ScoreTracker):
    """Movement-pruning scores, accumulated during fine-tuning (Sanh et al. 2020).

    Call :meth:`accumulate` after each backward pass (``train_model``'s ``before_step``
    hook does it): ``S <- S - lr·(∂L/∂W)·W``. Weights that move away from zero gain
    score; those pulled towards zero lose it. ``scores()`` returns a copy.

    Our masks are monotone (a pruned weight is zero and stays pruned), so unlike the
    paper's straight-through version, a pruned weight cannot come back; under the
    cubic schedule, where sparsity only grows, this changes little.
    """

    label, needs = "movement", "fine-tuning steps"

    def __init__(self, model: nn.Module, names: Sequence[str] | None = None, lr: float = 1.0):
        lr = positive_number("lr", lr)
        super().__init__(model, names)
        self.lr = lr

    def _update(self, name: str, grad_times_weight: torch.Tensor) -> None:
        self.values[name] -= self.lr * grad_times_weight


class RunningTaylorScores(_ScoreTracker):
    """Taylor importance |g·w| accumulated while training (Molchanov et al. 2017).

    A ``before_step`` hook, like :class:`MovementScores`: after each backward pass it
    updates ``S <- momentum·S + (1 - momentum)·|g·w|`` with the training batch's
    gradient (dropout on, after gradient clipping), so that gradual pruning can rank
    weights by Taylor importance at no extra cost. The first step sets ``S = |g·w|``.
    """

    label = "running Taylor"

    def __init__(self, model: nn.Module, names: Sequence[str] | None = None, momentum=0.9):
        momentum = fraction("momentum", momentum)
        super().__init__(model, names)
        self.momentum = momentum

    def _update(self, name: str, grad_times_weight: torch.Tensor) -> None:
        value = grad_times_weight.abs()
        if self.steps == 0:
            self.values[name] = value
        else:
            self.values[name].mul_(self.momentum).add_(value, alpha=1 - self.momentum)
