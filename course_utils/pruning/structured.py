"""Structured pruning that really shrinks the model: remove hidden units or embedding dims.

Introduced in chapter 4; chapter 3 (Taylor scores per unit) and chapter 5 (GAN masks)
reuse the same selection and removal. :func:`remove_hidden_units` returns a NEW
RNNClassifier whose nn.LSTM/GRU/RNN has fewer hidden units, built from the ISS groups of
:func:`~course_utils.pruning.groups.hidden_unit_groups` (one definition for
norms, proximal steps, masks and removal).

The keep format: ``keep = {(layer, direction): unit indices}``, direction 0 forward and
1 backward, indices a 1-D int tensor or list (order does not matter; kept units keep
their original order). A slot (layer, direction) left out keeps all its units.

PyTorch's fused nn.LSTM/GRU/RNN has ONE hidden size for every layer and direction. When
``keep`` holds different counts, the new hidden size is the largest count, and slots
with fewer units are padded with dead units: all their weights and biases are zero, so
their state stays exactly 0 (LSTM: c = 0.5*c + 0.5*tanh(0) = 0, h = 0.5*tanh(0) = 0;
GRU: h = 0.5*h = 0; RNN: h = tanh(0) = 0) and their consumer columns are zero too. The
outputs are unchanged; only the speed-up is that of the largest layer.
"""

from __future__ import annotations

import copy
import numbers
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn

from ..checks import integer, non_negative_number, number
from ..masking import MASK_SUFFIX, register_masks_from_state_dict
from ..models import RNNClassifier, build_model
from .groups import GroupSet, embedding_dim_groups, hidden_unit_groups, split_model

__all__ = [
    "Slot",
    "allocate_units",
    "check_keep",
    "keep_from_masks",
    "layer_sensitivity",
    "mask_embedding_dims",
    "mask_hidden_units",
    "nonzero_units",
    "remove_embedding_dims",
    "remove_hidden_units",
    "select_units",
    "select_units_by_norm",
    "unit_norms",
    "unit_slots",
    "units_kept",
]

Slot = tuple[int, int]


# --- the keep specification ------------------------------------------------------------


def _rnn_of(model: nn.Module) -> nn.RNNBase:
    if not isinstance(model, nn.RNNBase | RNNClassifier):
        raise TypeError(
            f"model must be an RNNClassifier or an nn.LSTM/GRU/RNN, got {type(model).__name__}"
        )
    return split_model(model)[0]  # TypeError/ValueError for unsupported RNN modules


def unit_slots(model: nn.Module) -> list[Slot]:
    """Every ``(layer, direction)`` of the model's RNN, in order."""
    rnn = _rnn_of(model)
    directions = 2 if rnn.bidirectional else 1
    return [(layer, d) for layer in range(rnn.num_layers) for d in range(directions)]


def _as_index(values, argument: str) -> torch.Tensor:
    if isinstance(values, torch.Tensor):
        if values.dtype in (torch.bool,) or values.is_floating_point() or values.is_complex():
            raise TypeError(f"{argument} must hold integer indices, got dtype {values.dtype}")
        index = values.detach().cpu().long()
    else:
        try:
            items = list(values)
        except TypeError:
            raise TypeError(
                f"{argument} must be a list or 1-D tensor of indices, got {type(values).__name__}"
            ) from None
        if not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in items):
            raise TypeError(f"{argument} must hold integer indices, got {items!r}")
        index = torch.tensor([int(v) for v in items], dtype=torch.long)
    if index.dim() != 1:
        raise ValueError(f"{argument} must be 1-D, got shape {tuple(index.shape)}")
    return index


def _check_index(index: torch.Tensor, size: int, argument: str) -> torch.Tensor:
    if index.numel() == 0:
        raise ValueError(f"{argument} is empty: keep at least one")
    bad = index[(index < 0) | (index >= size)]
    if bad.numel():
        raise ValueError(f"{argument} has indices outside [0, {size}): {bad.tolist()}")
    values, counts = torch.unique(index, return_counts=True)
    if (counts > 1).any():
        raise ValueError(f"{argument} has duplicated indices: {values[counts > 1].tolist()}")
    return values  # sorted


def check_keep(model: nn.Module, keep: Mapping) -> dict[Slot, torch.Tensor]:
    """Validate ``keep`` and return it complete: every slot, sorted LongTensors (CPU)."""
    rnn = _rnn_of(model)
    if not isinstance(keep, Mapping):
        raise TypeError(
            f"keep must be a dict {{(layer, direction): unit indices}}, got {type(keep).__name__}"
        )
    slots = unit_slots(model)
    out = {slot: torch.arange(rnn.hidden_size) for slot in slots}
    for slot, values in keep.items():
        if slot not in slots:
            raise ValueError(
                f"keep names (layer, direction) = {slot!r}, which the model does not have; "
                f"it has {slots} (direction 1 only when bidirectional)"
            )
        out[slot] = _check_index(
            _as_index(values, f"keep[{slot}]"), rnn.hidden_size, f"keep[{slot}]"
        )
    return out


def units_kept(keep: Mapping[Slot, torch.Tensor]) -> dict[Slot, int]:
    """How many units each slot keeps."""
    return {slot: len(index) for slot, index in keep.items()}


# --- rebuilding tensors from groups -------------------------------------------------------


def _index_maps(
    groups: GroupSet, positions: dict[int, int], new_width: int
) -> dict[tuple[str, int], torch.Tensor]:
    """For each (param, dim) the groups touch: new index -> old index (-1: padding).

    Group ``g`` kept at new position ``p``: its slice index ``i = block*width + k``
    moves to ``block*new_width + p``.
    """
    maps: dict[tuple[str, int], torch.Tensor] = {}
    width = groups.width
    for group in groups:
        for s in group.slices:
            key = (s.param, s.dim)
            if key not in maps:
                blocks = groups.shapes[s.param][s.dim] // width
                maps[key] = torch.full((blocks * new_width,), -1, dtype=torch.long)
    for gid, pos in positions.items():
        for s in groups.groups[gid].slices:
            for i in s.index:
                maps[(s.param, s.dim)][(i // width) * new_width + pos] = i
    return maps


def _take(tensor: torch.Tensor, dim: int, index_map: torch.Tensor) -> torch.Tensor:
    index_map = index_map.to(tensor.device)
    out = tensor.index_select(dim, index_map.clamp_min(0))
    pad = torch.nonzero(index_map < 0).flatten()
    if pad.numel():
        out.index_fill_(dim, pad, False if out.dtype == torch.bool else 0)
    return out


def _shrunk_state(
    model: nn.Module, groups: GroupSet, positions: dict[int, int], new_width: int
) -> dict[str, torch.Tensor]:
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    for (param, dim), index_map in _index_maps(groups, positions, new_width).items():
        for key in (param, param + MASK_SUFFIX):
            if key in state:
                state[key] = _take(state[key], dim, index_map)
    return state


def _new_rnn(rnn: nn.RNNBase, *, input_size: int, hidden_size: int) -> nn.RNNBase:
    kwargs = dict(
        input_size=input_size,
        hidden_size=hidden_size,
        num_layers=rnn.num_layers,
        bias=rnn.bias,
        batch_first=rnn.batch_first,
        dropout=rnn.dropout,
        bidirectional=rnn.bidirectional,
    )
    if type(rnn) is nn.RNN:
        kwargs["nonlinearity"] = rnn.nonlinearity
    return type(rnn)(**kwargs)


def _rebuild(model: nn.Module, state: dict, *, embed_dim: int, hidden_size: int) -> nn.Module:
    rnn = _rnn_of(model)
    param = next(model.parameters())
    new_rnn = _new_rnn(rnn, input_size=embed_dim, hidden_size=hidden_size)
    if isinstance(model, nn.RNNBase):
        new = new_rnn
    else:
        config = dict(model.config(), embed_dim=embed_dim, hidden_size=hidden_size)
        new = build_model(config)
        new.rnn = new_rnn
    new.to(device=param.device, dtype=param.dtype)
    register_masks_from_state_dict(new, state)
    new.load_state_dict(state)
    return new.train(model.training)


# --- hidden units -------------------------------------------------------------------------


def _positions(groups: GroupSet, keep: Mapping[tuple, torch.Tensor]) -> dict[int, int]:
    """group id -> its new position, for every kept group."""
    where = {slot: {int(k): p for p, k in enumerate(index)} for slot, index in keep.items()}
    return {
        gid: where[g.slot][g.position]
        for gid, g in enumerate(groups)
        if g.position in where[g.slot]
    }


def remove_hidden_units(model: nn.Module, keep: Mapping) -> nn.Module:
    """A new, physically smaller copy of ``model`` holding only the kept hidden units.

    ``model`` is an RNNClassifier (or a bare nn.LSTM/GRU/RNN); ``keep`` maps
    ``(layer, direction)`` to the unit indices to keep (see the module docstring; slots
    left out keep everything). The new hidden size is the largest count; smaller slots
    are padded with dead units. Masks from chapter 2 (``<param>_mask`` buffers) shrink
    with their weights. The original model is not changed.

    The new model's outputs equal those of :func:`mask_hidden_units` (same ``keep``).
    """
    keep = check_keep(model, keep)
    groups = hidden_unit_groups(model)
    new_width = max(len(index) for index in keep.values())
    state = _shrunk_state(model, groups, _positions(groups, keep), new_width)
    return _rebuild(model, state, embed_dim=_rnn_of(model).input_size, hidden_size=new_width)


def mask_hidden_units(model: nn.Module, keep: Mapping, *, reads_only: bool = False) -> nn.Module:
    """A copy of ``model`` where the units not in ``keep`` are zeroed but still present.

    By default the whole ISS group of each removed unit is zeroed (what group lasso
    drives to zero). With ``reads_only=True`` only the weights that read the unit are
    zeroed (its column in ``weight_hh`` and in the consumer): the unit still computes a
    state, but nothing uses it. Either way the logits equal those of
    :func:`remove_hidden_units`.
    """
    keep = check_keep(model, keep)
    groups = hidden_unit_groups(model)
    kept = _positions(groups, keep)
    which = torch.tensor([gid not in kept for gid in range(len(groups))])
    masked = copy.deepcopy(model)
    groups.zero_(masked, which, reads_only=reads_only)
    return masked


# --- embedding dimensions ------------------------------------------------------------------


def _check_dims(model: nn.Module, keep_dims) -> torch.Tensor:
    if not isinstance(model, RNNClassifier):
        raise TypeError(f"model must be an RNNClassifier, got {type(model).__name__}")
    _rnn_of(model)
    dim = model.embedding.embedding_dim
    return _check_index(_as_index(keep_dims, "keep_dims"), dim, "keep_dims")


def remove_embedding_dims(model: RNNClassifier, keep_dims) -> RNNClassifier:
    """A new model whose embedding keeps only the dimensions ``keep_dims`` (1-D indices).

    Drops the other columns of ``embedding.weight`` and of ``rnn.weight_ih_l0`` (both
    directions). Outputs equal those of :func:`mask_embedding_dims`.
    """
    keep_dims = _check_dims(model, keep_dims)
    groups = embedding_dim_groups(model)
    positions = {int(j): p for p, j in enumerate(keep_dims)}
    state = _shrunk_state(model, groups, positions, len(keep_dims))
    return _rebuild(model, state, embed_dim=len(keep_dims), hidden_size=model.rnn.hidden_size)


def mask_embedding_dims(
    model: RNNClassifier, keep_dims, *, reads_only: bool = False
) -> RNNClassifier:
    """A copy of ``model`` with the embedding dimensions not in ``keep_dims`` zeroed."""
    keep_dims = set(_check_dims(model, keep_dims).tolist())
    groups = embedding_dim_groups(model)
    which = torch.tensor([g.position not in keep_dims for g in groups])
    masked = copy.deepcopy(model)
    groups.zero_(masked, which, reads_only=reads_only)
    return masked


# --- selection ----------------------------------------------------------------------------


def unit_norms(model: nn.Module) -> dict[Slot, torch.Tensor]:
    """ISS group norm of every hidden unit: ``{(layer, direction): (hidden,) tensor}``."""
    groups = hidden_unit_groups(model)
    return groups.by_slot(groups.norms(model))


def _counts(scores: Mapping[Slot, torch.Tensor], keep) -> dict[Slot, int]:
    if isinstance(keep, Mapping):
        unknown = set(keep) - set(scores)
        if unknown:
            raise ValueError(f"keep names slots that have no scores: {sorted(unknown)}")
        counts = {slot: keep.get(slot, len(s)) for slot, s in scores.items()}
    elif isinstance(keep, float):
        keep = number("keep", keep, minimum=0, maximum=1, low_open=True, what="a fraction")
        counts = {slot: max(1, round(keep * len(s))) for slot, s in scores.items()}
    elif isinstance(keep, int) and not isinstance(keep, bool):
        counts = {slot: keep for slot in scores}
    else:
        raise TypeError(
            "keep must be a fraction (float), a count per slot (int) or a dict "
            f"{{(layer, direction): count}}, got {type(keep).__name__}"
        )
    for slot, n in counts.items():
        size = len(scores[slot])
        allowed = f"an int in [1, {size}]"
        integer(f"keep count for {slot}", n, minimum=1, maximum=size, allowed=allowed)
    return counts


def select_units(scores: Mapping[Slot, torch.Tensor], keep) -> dict[Slot, torch.Tensor]:
    """Keep the highest-scoring units of each slot; returns a keep spec.

    ``scores`` maps ``(layer, direction)`` to a (hidden,) tensor (group norms, chapter 3's
    Taylor scores per unit, ...). ``keep`` is a fraction in (0, 1] (rounded, at least one
    unit), an int count per slot, or a dict ``{slot: count}`` (slots left out keep all).
    Ties go to the lower index.
    """
    if not isinstance(scores, Mapping) or not scores:
        raise TypeError("scores must be a non-empty dict {(layer, direction): (hidden,) tensor}")
    for slot, s in scores.items():
        if not isinstance(s, torch.Tensor) or s.dim() != 1:
            raise ValueError(f"scores[{slot}] must be a 1-D tensor")
        if torch.isnan(s).any():
            raise ValueError(f"scores[{slot}] contains NaN")
    out = {}
    for slot, n in _counts(scores, keep).items():
        order = torch.sort(scores[slot].detach().float().cpu(), descending=True, stable=True)
        out[slot] = torch.sort(order.indices[:n]).values
    return out


def select_units_by_norm(model: nn.Module, keep) -> dict[Slot, torch.Tensor]:
    """:func:`select_units` on the ISS group norms (structured magnitude pruning)."""
    return select_units(unit_norms(model), keep)


def keep_from_masks(masks: Mapping[Slot, torch.Tensor]) -> dict[Slot, torch.Tensor]:
    """A keep spec from per-unit bool masks ``{slot: (hidden,) bool}`` (True keeps)."""
    out = {}
    for slot, mask in masks.items():
        if not isinstance(mask, torch.Tensor) or mask.dim() != 1:
            raise ValueError(f"masks[{slot}] must be a 1-D bool tensor")
        index = torch.nonzero(mask.detach().cpu().bool()).flatten()
        if index.numel() == 0:
            raise ValueError(f"masks[{slot}] keeps no unit: keep at least one")
        out[slot] = index
    return out


def nonzero_units(model: nn.Module, tol: float = 0.0) -> dict[Slot, torch.Tensor]:
    """Units whose ISS group norm exceeds ``tol`` (at least the largest one per slot)."""
    tol = non_negative_number("tol", tol)
    out = {}
    for slot, norms in unit_norms(model).items():
        index = torch.nonzero(norms > tol).flatten()
        out[slot] = index if index.numel() else norms.argmax().reshape(1)
    return out


# --- structure retention: how many units per slot ----------------------------------------


def layer_sensitivity(
    model: nn.Module,
    evaluate_fn: Callable[[nn.Module], float],
    counts: Sequence[int],
    scores: Mapping[Slot, torch.Tensor] | None = None,
) -> dict[Slot, dict[int, float]]:
    """Score (e.g. validation accuracy) when ONE slot is shrunk to each of ``counts``.

    The other slots keep all their units; units are chosen by ``scores`` (default: ISS
    group norms). Returns ``{slot: {count: evaluate_fn(shrunk model)}}``, full count
    included.
    """
    scores = unit_norms(model) if scores is None else scores
    hidden = _rnn_of(model).hidden_size
    grid = sorted({int(c) for c in counts} | {hidden}, reverse=True)
    if grid[-1] < 1 or grid[0] > hidden:
        raise ValueError(f"counts must lie in [1, {hidden}], got {list(counts)}")
    out: dict[Slot, dict[int, float]] = {}
    full = evaluate_fn(model)
    for slot in unit_slots(model):
        out[slot] = {hidden: full}
        for n in grid[1:]:
            shrunk = remove_hidden_units(model, select_units(scores, {slot: n}))
            out[slot][n] = float(evaluate_fn(shrunk))
    return out


def allocate_units(sensitivity: Mapping[Slot, Mapping[int, float]], budget: int) -> dict[Slot, int]:
    """Unit counts per slot, at most ``budget`` in total, from :func:`layer_sensitivity`.

    Greedy: start from every slot's largest count; repeatedly take the step down (to
    the slot's next measured count) that keeps the highest score, until the total fits
    the budget. Slots that lose little when shrunk alone give up units first.
    """
    if not sensitivity:
        raise ValueError("sensitivity is empty")
    grids = {slot: sorted(curve, reverse=True) for slot, curve in sensitivity.items()}
    smallest = sum(grid[-1] for grid in grids.values())
    budget = integer(
        "budget", budget, minimum=smallest, allowed=f"an int >= {smallest} (the smallest counts)"
    )
    step = {slot: 0 for slot in grids}
    while sum(grids[s][step[s]] for s in grids) > budget:
        candidates = [s for s in grids if step[s] + 1 < len(grids[s])]
        best = max(candidates, key=lambda s: (sensitivity[s][grids[s][step[s] + 1]], -step[s]))
        step[best] += 1
    return {slot: grids[slot][step[slot]] for slot in grids}
