"""Groups of weights that live or die together, and the ISS groups of an RNN.

Introduced in chapter 4. :func:`hidden_unit_groups` builds the intrinsic sparse
structures (ISS, Wen et al. 2018) of an LSTM/GRU/RNN: one group per hidden unit holding
every weight that computes it or reads it, so that a zero group can be cut out and leave
a smaller dense RNN (:mod:`course_utils.pruning.structured`).
:func:`embedding_dim_groups` does the same for embedding dimensions. A
:class:`GroupSet` is the one definition that norms, penalties, proximal steps
(:mod:`course_utils.pruning.regularization`), masks and removal all use.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ..checks import integer, number
from ..models import GATES, cell_name

__all__ = [
    "Group",
    "GroupSet",
    "Slice",
    "check_groups",
    "check_strength",
    "embedding_dim_groups",
    "hidden_unit_groups",
    "rnn_param_name",
    "split_model",
]


def check_strength(lam: float, argument: str = "lam") -> float:
    """Return a regularization strength (or threshold) as a float, or raise naming ``argument``."""
    return number(argument, lam, minimum=0, what="a number")


# --- groups ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Slice:
    """Part of one parameter: rows (``dim=0``) or columns (``dim=1``) ``index``.

    For a 1-D parameter (a bias) ``dim`` is 0. ``reads`` is True when these weights read
    the group's output (a unit's column in ``weight_hh`` or in its consumer), False when
    they compute it (its gate rows and biases, an embedding column).
    """

    param: str
    dim: int
    index: tuple[int, ...]
    reads: bool = False


@dataclass(frozen=True)
class Group:
    """One structure: ``key`` names it, ``slices`` list its weights (a weight may appear in
    two slices of a group, e.g. the diagonal entries of ``weight_hh``; it counts once).

    Keys: ``("unit", layer, direction, k)`` for a hidden unit, ``("embedding", j)``
    for an embedding dimension.
    """

    key: tuple
    slices: tuple[Slice, ...]

    @property
    def slot(self) -> tuple:
        """``(layer, direction)`` for a hidden unit, ``("embedding",)`` otherwise."""
        return self.key[1:3] if self.key[0] == "unit" else self.key[:1]

    @property
    def position(self) -> int:
        """Index of the unit (or dimension) within its slot."""
        return self.key[-1]


@dataclass
class GroupSet:
    """Groups of one kind over one model, with everything computed from one definition.

    ``width`` is the number of groups per slot (hidden size, or embedding dimension):
    every slice index ``i`` of the group at position ``k`` is ``block * width + k``,
    which is how :mod:`course_utils.pruning.structured` moves it when units are removed.

    Methods take the model whose parameters the groups name: :meth:`norms`,
    :meth:`penalty` (differentiable), :meth:`shrink_` (proximal step), :meth:`zero_`,
    :meth:`element_masks`.
    """

    groups: list[Group]
    width: int
    shapes: dict[str, tuple[int, ...]]
    _index: dict = field(default_factory=dict, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.groups)

    def __iter__(self):
        return iter(self.groups)

    @property
    def keys(self) -> list[tuple]:
        return [g.key for g in self.groups]

    def slots(self) -> list[tuple]:
        """The slots in order, e.g. ``[(0, 0), (0, 1), (1, 0), (1, 1)]``."""
        return list(dict.fromkeys(g.slot for g in self.groups))

    def by_slot(self, values: torch.Tensor) -> dict[tuple, torch.Tensor]:
        """Split a per-group tensor (e.g. :meth:`norms`) into ``{slot: (width,) tensor}``."""
        out: dict[tuple, list[int]] = {}
        for i, g in enumerate(self.groups):
            out.setdefault(g.slot, []).append(i)
        return {slot: values[torch.tensor(idx, device=values.device)] for slot, idx in out.items()}

    # -- compiled flat indices: (param) -> (flat element index, group id) -------------
    def _flat_index(self, device: torch.device) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        key = str(device)
        if key not in self._index:
            per_param: dict[str, tuple[list[torch.Tensor], list[torch.Tensor]]] = {}
            for gid, group in enumerate(self.groups):
                elements: dict[str, list[torch.Tensor]] = {}
                for s in group.slices:
                    elements.setdefault(s.param, []).append(_slice_elements(s, self.shapes))
                for name, parts in elements.items():
                    flat = torch.unique(torch.cat(parts))
                    idx, ids = per_param.setdefault(name, ([], []))
                    idx.append(flat)
                    ids.append(torch.full_like(flat, gid))
            self._index[key] = {
                name: (torch.cat(idx).to(device), torch.cat(ids).to(device))
                for name, (idx, ids) in per_param.items()
            }
        return self._index[key]

    def _params(self, model: nn.Module) -> dict[str, torch.Tensor]:
        params = dict(model.named_parameters())
        for name, shape in self.shapes.items():
            if name not in params or tuple(params[name].shape) != shape:
                got = tuple(params[name].shape) if name in params else "missing"
                raise ValueError(
                    f"model does not match these groups: parameter {name!r} is {got}, "
                    f"the groups were built for {shape}"
                )
        return params

    def squared_norms(self, model: nn.Module) -> torch.Tensor:
        """``(num_groups,)`` sums of squares; differentiable."""
        params = self._params(model)
        device = next(iter(params.values())).device
        total = None
        for name, (idx, ids) in self._flat_index(device).items():
            values = params[name].reshape(-1)[idx].pow(2)
            part = torch.zeros(len(self.groups), device=device, dtype=values.dtype)
            part = part.index_add(0, ids, values)
            total = part if total is None else total + part
        return total

    def norms(self, model: nn.Module) -> torch.Tensor:
        """``(num_groups,)`` un-squared L2 norms ``||w_g||_2`` (detached)."""
        with torch.no_grad():
            return self.squared_norms(model).sqrt()

    def penalty(self, model: nn.Module) -> torch.Tensor:
        """Group lasso ``sum_g ||w_g||_2`` (Yuan & Lin 2006), differentiable.

        At a zero group the subgradient 0 is used (no division by zero).
        """
        tiny = torch.finfo(torch.float32).tiny
        return self.squared_norms(model).clamp_min(tiny).sqrt().sum()

    @torch.no_grad()
    def scale_(self, model: nn.Module, factors: torch.Tensor) -> None:
        """Multiply every weight of group g by ``factors[g]`` in place.

        A weight in two groups is multiplied by both factors.
        """
        params = self._params(model)
        for name, (idx, ids) in self._flat_index(factors.device).items():
            p = params[name]
            scale = torch.ones(p.numel(), device=p.device, dtype=p.dtype)
            scale.scatter_reduce_(0, idx, factors[ids].to(p.dtype), reduce="prod")
            p.mul_(scale.view_as(p))

    @torch.no_grad()
    def shrink_(self, model: nn.Module, threshold: float) -> torch.Tensor:
        """Group soft-threshold: ``w_g <- w_g * max(0, 1 - threshold / ||w_g||_2)``.

        Factors come from the norms before the step. A group whose norm is at most
        ``threshold`` becomes exactly zero. Returns the factors ``(num_groups,)``.
        """
        threshold = check_strength(threshold, "threshold")
        norms = self.norms(model)
        factors = torch.where(
            norms > threshold, 1 - threshold / norms.clamp_min(1e-30), torch.zeros_like(norms)
        )
        self.scale_(model, factors)
        return factors

    @torch.no_grad()
    def zero_(self, model: nn.Module, which: torch.Tensor, *, reads_only: bool = False) -> None:
        """Set the groups where the bool tensor ``which`` is True to zero, in place.

        With ``reads_only=True`` only the weights that read a group's output are zeroed
        (its columns in ``weight_hh`` and in the consumer): the unit still runs, but
        nothing sees it.
        """
        params = self._params(model)
        which = torch.as_tensor(which, dtype=torch.bool)
        if which.shape != (len(self.groups),):
            raise ValueError(
                f"which must be a bool tensor of shape ({len(self.groups)},), "
                f"got {tuple(which.shape)}"
            )
        for gid in torch.nonzero(which).flatten().tolist():
            for s in self.groups[gid].slices:
                if reads_only and not s.reads:
                    continue
                p = params[s.param]
                index = torch.tensor(s.index, device=p.device)
                p.index_fill_(s.dim, index, 0.0)

    def element_masks(self, group: int) -> dict[str, torch.Tensor]:
        """Bool masks ``{param: mask of the param's shape}`` marking group ``group``'s weights."""
        last = len(self.groups) - 1
        group = integer("group", group, minimum=0, maximum=last, allowed=f"an int in [0, {last}]")
        masks: dict[str, torch.Tensor] = {}
        for s in self.groups[group].slices:
            mask = masks.setdefault(s.param, torch.zeros(self.shapes[s.param], dtype=torch.bool))
            mask.index_fill_(s.dim, torch.tensor(s.index), True)
        return masks


def _slice_elements(s: Slice, shapes: dict[str, tuple[int, ...]]) -> torch.Tensor:
    """Flat (row-major) indices of the elements a slice covers."""
    shape = shapes[s.param]
    index = torch.tensor(s.index, dtype=torch.long)
    if len(shape) == 1:
        return index
    rows, cols = shape
    if s.dim == 0:
        return (index[:, None] * cols + torch.arange(cols)[None, :]).reshape(-1)
    return (torch.arange(rows)[:, None] * cols + index[None, :]).reshape(-1)


# --- the groups of an RNN classifier ---------------------------------------------------------


def split_model(model: nn.Module) -> tuple[nn.Module, str, str | None, nn.Module | None]:
    """(rnn module, parameter prefix, consumer weight name or None, embedding or None)."""
    if isinstance(model, nn.RNNBase):
        rnn, prefix, consumer, embedding = model, "", None, None
    else:
        rnn = getattr(model, "rnn", None)
        if not isinstance(rnn, nn.Module) or not hasattr(model, "classifier"):
            raise TypeError(
                "model must be an RNNClassifier (with .rnn and .classifier) or an "
                f"nn.LSTM/GRU/RNN, got {type(model).__name__}"
            )
        prefix, consumer = "rnn.", "classifier.weight"
        embedding = getattr(model, "embedding", None)
    cell_name(rnn)  # TypeError naming an unsupported module type
    if getattr(rnn, "proj_size", 0):
        raise ValueError(f"LSTMs with proj_size > 0 are not supported, got {rnn.proj_size}")
    return rnn, prefix, consumer, embedding


def rnn_param_name(layer: int, direction: int, kind: str, prefix: str = "rnn.") -> str:
    """``rnn.weight_hh_l1_reverse`` from ``(1, 1, "weight_hh")``."""
    return f"{prefix}{kind}_l{layer}{'_reverse' if direction else ''}"


def hidden_unit_groups(model: nn.Module) -> GroupSet:
    """ISS groups (Wen et al. 2018): one per hidden unit of every layer and direction.

    ``model`` is an RNNClassifier or a bare nn.LSTM/GRU/RNN. The group of unit ``k`` in
    layer ``l``, direction ``d`` (0 forward, 1 backward; hidden size ``H``, ``G`` gate
    blocks: LSTM i,f,g,o -> 4; GRU r,z,n -> 3; RNN -> 1) holds

    - rows ``{k, H+k, ..., (G-1)H+k}`` of ``weight_ih_l{l}``, ``weight_hh_l{l}``,
      ``bias_ih_l{l}`` and ``bias_hh_l{l}`` (suffix ``_reverse`` for d=1);
    - column ``k`` of ``weight_hh_l{l}`` (h_k feeding back);
    - column ``d*H + k`` of its consumer: ``weight_ih_l{l+1}`` of both directions, or
      ``classifier.weight`` after the last layer (a bare RNN's last layer has none).

    Groups are ordered by layer, direction, unit.
    """
    rnn, prefix, consumer, _ = split_model(model)
    params = dict(model.named_parameters())
    hidden, layers = rnn.hidden_size, rnn.num_layers
    directions = 2 if rnn.bidirectional else 1
    gates = GATES[cell_name(rnn)]
    groups = []
    for layer in range(layers):
        for d in range(directions):
            for k in range(hidden):
                rows = tuple(g * hidden + k for g in range(gates))
                slices = [
                    Slice(rnn_param_name(layer, d, kind, prefix), 0, rows)
                    for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
                    if rnn_param_name(layer, d, kind, prefix) in params
                ]
                slices.append(Slice(rnn_param_name(layer, d, "weight_hh", prefix), 1, (k,), True))
                column = (d * hidden + k,)
                if layer + 1 < layers:
                    slices += [
                        Slice(rnn_param_name(layer + 1, d2, "weight_ih", prefix), 1, column, True)
                        for d2 in range(directions)
                    ]
                elif consumer is not None:
                    slices.append(Slice(consumer, 1, column, True))
                groups.append(Group(("unit", layer, d, k), tuple(slices)))
    return _group_set(groups, hidden, params)


def embedding_dim_groups(model: nn.Module) -> GroupSet:
    """One group per embedding dimension ``j``: column ``j`` of ``embedding.weight`` and
    column ``j`` of ``rnn.weight_ih_l0`` (and ``rnn.weight_ih_l0_reverse``)."""
    rnn, prefix, _, embedding = split_model(model)
    if not isinstance(embedding, nn.Embedding):
        raise TypeError(f"model must have an nn.Embedding .embedding, got {type(model).__name__}")
    params = dict(model.named_parameters())
    directions = 2 if rnn.bidirectional else 1
    groups = []
    for j in range(embedding.embedding_dim):
        slices = [Slice("embedding.weight", 1, (j,))]
        slices += [
            Slice(rnn_param_name(0, d, "weight_ih", prefix), 1, (j,), True)
            for d in range(directions)
        ]
        groups.append(Group(("embedding", j), tuple(slices)))
    return _group_set(groups, embedding.embedding_dim, params)


def _group_set(groups: list[Group], width: int, params: dict) -> GroupSet:
    names = dict.fromkeys(s.param for g in groups for s in g.slices)
    return GroupSet(groups, width, {n: tuple(params[n].shape) for n in names})


def check_groups(groups: GroupSet) -> GroupSet:
    """``groups`` itself when it is a :class:`GroupSet`, else a TypeError saying how to make one."""
    if not isinstance(groups, GroupSet):
        raise TypeError(
            "groups must be a GroupSet (hidden_unit_groups(model) or embedding_dim_groups(model)), "
            f"got {type(groups).__name__}"
        )
    return groups
