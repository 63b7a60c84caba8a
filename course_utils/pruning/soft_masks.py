"""Soft masks on the hidden units of an RNN classifier, and how to cut the dead units out.

Introduced in chapter 5 (GAN-guided pruning, :mod:`course_utils.pruning.gan`). A
:class:`MaskedStudent` is a copy of a classifier whose hidden units carry soft masks
``m_k >= 0``, one per unit, layer and direction. A mask scales everything its unit sends
out: its column in ``weight_hh`` (the recurrence), its column in the next layer's
``weight_ih`` (both directions read it), and its column in the classifier. With
``m_k = 0`` the unit influences nothing, so chapter 4's ``remove_hidden_units`` removes
it exactly (:func:`remove_masked_units`, after :func:`fold_masks`). The columns are
scaled inside ``torch.func.functional_call``, so the student keeps PyTorch's fast
LSTM/GRU kernels. :class:`FistaMasks` updates the masks with FISTA under an L1 penalty.

Masks are keyed like chapter 4's keep specs: ``{(layer, direction): (hidden,) tensor}``,
direction 0 forward and 1 backward.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping

import torch
from torch import nn
from torch.func import functional_call

from ..checks import non_negative_number, positive_number
from ..models import RNNClassifier
from .groups import rnn_param_name
from .regularization import soft_threshold
from .structured import Slot, remove_hidden_units, select_units, unit_slots

__all__ = [
    "FistaMasks",
    "MaskDict",
    "MaskedStudent",
    "ProxFn",
    "check_masks",
    "check_teacher",
    "fold_masks",
    "frozen_copy",
    "kept_units",
    "mask_key",
    "mask_prox_step",
    "mask_slots",
    "masked_parameters",
    "remove_masked_units",
]

MaskDict = dict[Slot, torch.Tensor]


def mask_key(slot: Slot) -> str:
    """The key of a slot's masks in :attr:`MaskedStudent.masks` and :class:`FistaMasks`:
    ``"l1_reverse"`` for ``(1, 1)`` (a ParameterDict takes only string keys)."""
    layer, direction = slot
    return f"l{layer}{'_reverse' if direction else ''}"


def mask_slots(model: RNNClassifier) -> list[Slot]:
    """Every ``(layer, direction)`` that carries a mask, in order (chapter 4's slots)."""
    return unit_slots(model)


def check_teacher(teacher: nn.Module, argument: str = "teacher") -> RNNClassifier:
    """Raise a clear error unless ``teacher`` is an RNNClassifier with hidden units."""
    if not isinstance(teacher, RNNClassifier):
        raise TypeError(
            f"{argument} must be a course_utils RNNClassifier, got {type(teacher).__name__}"
        )
    if sum(p.numel() for p in teacher.rnn.parameters()) == 0:
        raise ValueError(f"{argument} has an empty RNN: nothing to prune")
    return teacher


def frozen_copy(teacher: RNNClassifier) -> RNNClassifier:
    """A copy of ``teacher`` in eval mode whose weights need no gradient: a teacher that
    only answers (GAL, data-free distillation), never learns."""
    teacher = copy.deepcopy(teacher).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


def check_masks(model: RNNClassifier, masks: Mapping) -> MaskDict:
    """Return ``masks`` as ``{slot: (hidden,) tensor}`` for every slot, or raise clearly."""
    if not isinstance(masks, Mapping):
        raise TypeError(f"masks must be a dict {{(layer, direction): tensor}}, got {masks!r}")
    slots, hidden = mask_slots(model), model.rnn.hidden_size
    if set(masks) != set(slots):
        raise ValueError(f"masks must have exactly the slots {slots}, got {sorted(masks)}")
    for slot in slots:
        m = masks[slot]
        if not isinstance(m, torch.Tensor) or tuple(m.shape) != (hidden,):
            raise ValueError(f"masks[{slot}] must be a tensor of shape ({hidden},)")
    return {slot: masks[slot] for slot in slots}


def masked_parameters(model: RNNClassifier, masks: Mapping[Slot, torch.Tensor]) -> dict:
    """The weights whose columns the unit masks scale, already scaled (differentiable).

    For slot (l, d) with mask m (length H): ``weight_hh_l{l}{d}[:, k] * m_k``; the next
    layer's ``weight_ih`` (both directions) and, after the last layer, the classifier
    weight, whose input is ``[h_fwd ; h_bwd]``, scaled by ``[m_fwd ; m_bwd]``.
    """
    rnn, params = model.rnn, dict(model.named_parameters())
    dirs = 2 if rnn.bidirectional else 1
    out = {}
    for layer in range(rnn.num_layers):
        for d in range(dirs):
            name = rnn_param_name(layer, d, "weight_hh")
            out[name] = params[name] * masks[(layer, d)][None, :]
        outgoing = torch.cat([masks[(layer, d)] for d in range(dirs)])
        if layer + 1 < rnn.num_layers:
            for d in range(dirs):
                name = rnn_param_name(layer + 1, d, "weight_ih")
                out[name] = params[name] * outgoing[None, :]
        else:
            out["classifier.weight"] = params["classifier.weight"] * outgoing[None, :]
    return out


def _architecture_mismatch(teacher: RNNClassifier, student: RNNClassifier) -> dict:
    a, b = teacher.config(), student.config()
    return {k: (a[k], b.get(k)) for k in a if a[k] != b.get(k)}


class MaskedStudent(nn.Module):
    """A copy of the teacher (or of ``student``) with one learnable soft mask per hidden unit.

    ``student(tokens, lengths)`` returns logits (batch, C) computed with the masked
    columns. ``student.model`` holds the trainable weights; the masks (all ones at the
    start) live in ``student.masks``, a ParameterDict keyed ``"l0"``, ``"l0_reverse"``...;
    :meth:`mask_values` returns them keyed by ``(layer, direction)``.
    """

    def __init__(self, teacher: RNNClassifier, student: RNNClassifier | None = None):
        super().__init__()
        check_teacher(teacher)
        if student is not None:
            check_teacher(student, "student")
            diff = _architecture_mismatch(teacher, student)
            if diff:
                raise ValueError(
                    f"teacher/student architecture mismatch (teacher, student): {diff}"
                )
        self.model = copy.deepcopy(student if student is not None else teacher)
        for p in self.model.parameters():
            p.requires_grad_(True)  # the teacher may be frozen; its copy trains
        self.slots = mask_slots(self.model)
        hidden = self.model.rnn.hidden_size
        device = next(self.model.parameters()).device
        self.masks = nn.ParameterDict(
            {mask_key(s): nn.Parameter(torch.ones(hidden, device=device)) for s in self.slots}
        )

    def weight_parameters(self) -> list[nn.Parameter]:
        return list(self.model.parameters())

    def mask_dict(self) -> MaskDict:
        """The mask parameters keyed by slot (differentiable, not copies)."""
        return {s: self.masks[mask_key(s)] for s in self.slots}

    def mask_values(self) -> MaskDict:
        """Detached copies of the masks, keyed by ``(layer, direction)``."""
        return {s: m.detach().clone() for s, m in self.mask_dict().items()}

    @torch.no_grad()
    def set_masks(self, masks: Mapping[Slot, torch.Tensor]) -> None:
        for slot, m in check_masks(self.model, masks).items():
            self.masks[mask_key(slot)].copy_(m)

    def forward(
        self,
        tokens: torch.Tensor,
        lengths: torch.Tensor,
        masks: Mapping[Slot, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Logits with ``masks`` (default: the student's own mask parameters)."""
        masks = self.mask_dict() if masks is None else masks
        params = masked_parameters(self.model, masks)
        return functional_call(self.model, params, (tokens, lengths))


def mask_prox_step(y: torch.Tensor, grad: torch.Tensor, lr: float, lam: float) -> torch.Tensor:
    """The proximal gradient step of FISTA for non-negative L1 masks:
    ``max(0, soft_threshold(y - lr·grad, lr·lam))``."""
    return torch.clamp(soft_threshold(y - lr * grad, lr * lam), min=0.0)


ProxFn = Callable[[torch.Tensor, torch.Tensor, float, float], torch.Tensor]
"""``prox(y, grad, lr, lam)`` -> the next masks: :func:`mask_prox_step`'s signature."""


class FistaMasks:
    """FISTA (Beck & Teboulle 2009) for the masks: a gradient step, then the L1 prox.

    With iterates ``m_k`` and momentum ``a_k`` (``a_0 = 1``)::

        a_{k+1} = (1 + sqrt(1 + 4 a_k²)) / 2
        y_k     = m_k + ((a_{k-1} - 1) / a_k) (m_k - m_{k-1})
        m_{k+1} = max(0, soft_threshold(y_k - lr·∇f(y_k), lr·lam))

    The student runs at the extrapolated point ``y`` (the gradient is taken there, as
    FISTA requires); :meth:`step` takes that gradient and moves the mask parameters
    ``masks`` (a ParameterDict) to the next ``y``. ``current`` holds the iterates ``m_k``.

    With ``restart=True`` the momentum restarts (``a`` back to 1, so the next ``y`` is
    ``m_{k+1}`` itself) whenever the step points against it, i.e. when
    ``(y_k - m_{k+1})·(m_{k+1} - m_k) > 0`` (the gradient restart of O'Donoghue & Candès,
    2015). The student's weights change under the masks' feet, so without it momentum
    builds up and drives all masks to zero together.

    ``lams`` holds one λ per mask key (all ``lam`` at the start); a caller may change
    them between steps. :meth:`freeze` ends the search for one key: its zero masks stay
    zero from then on (those units are pruned) and its λ becomes 0, so the survivors
    are no longer pushed down.

    ``prox`` is the proximal step, ``prox(y, grad, lr, lam)``: :func:`mask_prox_step`, or
    the learner's own (chapter 5's exercise); what it returns is checked (the mask's
    shape, no negative values).
    """

    def __init__(
        self,
        masks: nn.ParameterDict,
        *,
        lr: float,
        lam: float,
        restart: bool = False,
        prox: ProxFn | None = None,
    ):
        lr, lam = positive_number("lr", lr), non_negative_number("lam", lam)
        if prox is not None and not callable(prox):
            raise TypeError(f"prox must be callable(y, grad, lr, lam) -> mask, got {prox!r}")
        self.prox = prox or mask_prox_step
        self.params, self.lr, self.lam, self.restart = masks, lr, lam, restart
        self.lams = dict.fromkeys(masks.keys(), float(lam))
        self.current = {k: p.detach().clone() for k, p in masks.items()}
        self.previous = {k: v.clone() for k, v in self.current.items()}
        self.support: dict[str, torch.Tensor] = {}  # frozen keys: which masks may be > 0
        self.a_prev, self.a = 1.0, 1.0
        self.steps = self.restarts = 0

    @staticmethod
    def next_a(a: float) -> float:
        return (1 + math.sqrt(1 + 4 * a * a)) / 2

    @torch.no_grad()
    def step(self, grads: Mapping[str, torch.Tensor]) -> None:
        """One FISTA step from the gradient at the point the student ran at (y)."""
        against = 0.0
        for k, p in self.params.items():
            y = p.detach()
            new = self._prox(y, grads[k], self.lams[k])
            if k in self.support:
                new = new * self.support[k]
            against += float(((y - new) * (new - self.current[k])).sum())
            self.previous[k], self.current[k] = self.current[k], new
        if self.restart and against > 0:
            self.a, self.restarts = 1.0, self.restarts + 1
        self.a_prev, self.a = self.a, self.next_a(self.a)
        beta = (self.a_prev - 1) / self.a
        for k, p in self.params.items():
            p.copy_(self.current[k] + beta * (self.current[k] - self.previous[k]))
            if k in self.support:
                p.mul_(self.support[k])
        self.steps += 1

    def _prox(self, y: torch.Tensor, grad: torch.Tensor, lam: float) -> torch.Tensor:
        new = self.prox(y.clone(), grad.clone(), self.lr, lam)  # copies: y is the masks
        if not isinstance(new, torch.Tensor) or new.shape != y.shape:
            got = tuple(new.shape) if isinstance(new, torch.Tensor) else type(new).__name__
            raise ValueError(f"prox returned {got}, expected a tensor of shape {tuple(y.shape)}")
        if (new < 0).any():
            raise ValueError("prox returned a negative mask: masks must stay >= 0")
        return new.detach().to(y.dtype)

    @torch.no_grad()
    def freeze(self, key: str) -> None:
        """Prune ``key``'s zero masks for good and stop penalizing its survivors."""
        if key not in self.current:
            raise KeyError(f"no mask named {key!r}; masks are {list(self.current)}")
        self.support[key] = (self.current[key] > 0).to(self.current[key].dtype)
        self.lams[key] = 0.0
        self.previous[key] = self.previous[key] * self.support[key]
        self.params[key].mul_(self.support[key])

    def alive(self, key: str | None = None) -> int:
        """Masks above zero, in ``key`` or over all keys."""
        masks = self.current.values() if key is None else [self.current[key]]
        return sum(int((m > 0).sum()) for m in masks)


def fold_masks(
    student: MaskedStudent, masks: Mapping[Slot, torch.Tensor] | None = None
) -> RNNClassifier:
    """A plain RNNClassifier whose weights have the masks multiplied in (same outputs).

    ``masks`` default to the student's own; the copy is in the student's train/eval mode.
    """
    masks = check_masks(student.model, student.mask_values() if masks is None else masks)
    model = copy.deepcopy(student.model)
    with torch.no_grad():
        scaled = masked_parameters(model, masks)
        params = dict(model.named_parameters())
        for name, value in scaled.items():
            params[name].copy_(value)
    return model


def kept_units(
    masks: Mapping[Slot, torch.Tensor], keep: int | None = None, threshold: float = 0.0
) -> dict[Slot, torch.Tensor]:
    """A chapter-4 keep spec ``{slot: sorted unit indices}`` from soft masks.

    By default the units with ``m > threshold`` (at least the largest one per slot). With
    ``keep``, every slot keeps exactly its ``keep`` largest masks (ties to the lower
    index), so that methods compare at equal hidden sizes.
    """
    if not isinstance(masks, Mapping) or not masks:
        raise TypeError("masks must be a non-empty dict {(layer, direction): (hidden,) tensor}")
    if keep is not None:
        return select_units(masks, keep)
    threshold = non_negative_number("threshold", threshold)
    out = {}
    for slot, m in masks.items():
        m = m.detach().cpu()
        index = torch.nonzero(m > threshold).flatten()
        out[slot] = index if index.numel() else m.argmax().reshape(1)
    return out


def remove_masked_units(
    student: MaskedStudent,
    masks: Mapping[Slot, torch.Tensor] | None = None,
    *,
    keep: int | None = None,
    threshold: float = 0.0,
) -> RNNClassifier:
    """Fold the masks into the weights, then remove the units not kept (chapter 4).

    ``masks`` default to the student's own. The kept units are :func:`kept_units`
    ``(masks, keep, threshold)``: with the defaults, every unit whose mask is exactly 0
    goes, and the smaller model computes exactly what the student computes at ``masks``
    (a unit with ``m_k = 0`` has zero outgoing columns once folded). With ``keep`` or a
    threshold > 0, units with small non-zero masks go too, which changes the outputs.
    """
    masks = check_masks(student.model, student.mask_values() if masks is None else masks)
    folded = fold_masks(student, masks)
    return remove_hidden_units(folded, kept_units(masks, keep, threshold))
