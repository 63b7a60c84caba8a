"""GAN-guided structured pruning of RNN classifiers, after GAL (Lin et al., CVPR 2019).

Introduced in chapter 5. The trained dense classifier is the frozen **teacher**. The
**student** (the generator) is a copy of it whose hidden units carry soft masks
``m_k >= 0``, one per unit, layer and direction. A mask scales everything its unit
sends out: its column in ``weight_hh`` (the recurrence), its column in the next layer's
``weight_ih`` (both directions read it), and its column in the classifier. With
``m_k = 0`` the unit influences nothing, so chapter 4's ``remove_hidden_units`` removes
it exactly. The columns are scaled inside ``torch.func.functional_call``, so the student
keeps PyTorch's fast LSTM/GRU kernels.

A small non-linear **discriminator** tells teacher logits from student logits. Each
iteration updates the discriminator, then the student's weights on
``adv_weight·BCE(D(student), "teacher") + data_weight·MSE(student, teacher)
[+ ce_weight·CE(student, labels)]``; every ``mask_every`` iterations the masks take a
FISTA step with the L1 penalty ``lam·||m||_1`` as its proximal part.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.func import functional_call

from ..models import RNNClassifier
from ..settings import show_progress
from ..train import evaluate


def _suffix(direction: int) -> str:
    return "_reverse" if direction == 1 else ""


def mask_keys(model: RNNClassifier) -> list[str]:
    """Names of the unit masks, ``"l{layer}{suffix}"`` as in PyTorch's parameter names."""
    dirs = 2 if model.rnn.bidirectional else 1
    return [f"l{layer}{_suffix(d)}" for layer in range(model.rnn.num_layers) for d in range(dirs)]


def check_teacher(teacher: nn.Module) -> RNNClassifier:
    """Raise a clear error unless ``teacher`` is an RNNClassifier with hidden units."""
    if not isinstance(teacher, RNNClassifier):
        raise TypeError(
            f"teacher must be a course_utils RNNClassifier, got {type(teacher).__name__}"
        )
    if sum(p.numel() for p in teacher.rnn.parameters()) == 0:
        raise ValueError("teacher has an empty RNN: nothing to prune")
    return teacher


def masked_parameters(model: RNNClassifier, masks: dict[str, torch.Tensor]) -> dict:
    """The weights whose columns the unit masks scale, already scaled.

    For layer l and direction d with mask m (length H): ``weight_hh_l{l}{d}[:, k] * m_k``;
    the next layer's ``weight_ih`` (both directions) and, after the last layer, the
    classifier weight, whose input is ``[h_fwd ; h_bwd]``, scaled by ``[m_fwd ; m_bwd]``.
    """
    rnn, params = model.rnn, dict(model.named_parameters())
    dirs = 2 if rnn.bidirectional else 1
    out = {}
    for layer in range(rnn.num_layers):
        for d in range(dirs):
            name = f"rnn.weight_hh_l{layer}{_suffix(d)}"
            out[name] = params[name] * masks[f"l{layer}{_suffix(d)}"][None, :]
        outgoing = torch.cat([masks[f"l{layer}{_suffix(d)}"] for d in range(dirs)])
        if layer + 1 < rnn.num_layers:
            for d in range(dirs):
                name = f"rnn.weight_ih_l{layer + 1}{_suffix(d)}"
                out[name] = params[name] * outgoing[None, :]
        else:
            out["classifier.weight"] = params["classifier.weight"] * outgoing[None, :]
    return out


class MaskedStudent(nn.Module):
    """A copy of the teacher with one learnable soft mask per hidden unit.

    ``student(tokens, lengths)`` returns logits computed with the masked columns.
    ``student.model`` holds the trainable weights, ``student.masks`` the masks (a
    ParameterDict keyed by :func:`mask_keys`, all ones at the start).
    """

    def __init__(self, teacher: RNNClassifier, student: RNNClassifier | None = None):
        super().__init__()
        check_teacher(teacher)
        if student is not None:
            check_teacher(student)
            if student.config() != teacher.config():
                diff = {
                    k: (v, student.config()[k])
                    for k, v in teacher.config().items()
                    if student.config()[k] != v
                }
                raise ValueError(
                    f"teacher/student architecture mismatch (teacher, student): {diff}"
                )
        self.model = copy.deepcopy(student if student is not None else teacher)
        for p in self.model.parameters():
            p.requires_grad_(True)  # the teacher may be frozen; its copy trains
        hidden = self.model.rnn.hidden_size
        device = next(self.model.parameters()).device
        self.masks = nn.ParameterDict(
            {k: nn.Parameter(torch.ones(hidden, device=device)) for k in mask_keys(self.model)}
        )

    @property
    def classifier(self) -> nn.Linear:
        return self.model.classifier

    def weight_parameters(self) -> list[nn.Parameter]:
        return list(self.model.parameters())

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        params = masked_parameters(self.model, dict(self.masks))
        return functional_call(self.model, params, (tokens, lengths))

    def mask_values(self) -> dict[str, torch.Tensor]:
        return {k: m.detach().clone() for k, m in self.masks.items()}


class Discriminator(nn.Module):
    """A small non-linear MLP: logits (batch, C) -> "is this the teacher?" logit (batch,)."""

    def __init__(self, in_features: int, hidden: int = 64):
        super().__init__()
        if in_features < 1 or hidden < 1:
            raise ValueError(f"in_features and hidden must be >= 1, got {in_features}, {hidden}")
        self.net = nn.Sequential(
            nn.Linear(in_features, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


def soft_threshold(x: torch.Tensor, threshold: float) -> torch.Tensor:
    """sign(x)·max(|x| - threshold, 0), elementwise."""
    return torch.sign(x) * torch.clamp(x.abs() - threshold, min=0.0)


class FistaMasks:
    """FISTA for the masks: a gradient step on the smooth loss, then the L1 prox.

    With iterates ``m_k`` and momentum ``a_k`` (``a_0 = 1``)::

        a_{k+1} = (1 + sqrt(1 + 4 a_k²)) / 2
        y_k     = m_k + ((a_{k-1} - 1) / a_k) (m_k - m_{k-1})
        m_{k+1} = max(0, soft_threshold(y_k - lr·∇f(y_k), lr·lam))

    The student runs at the extrapolated point ``y`` (the gradient is taken there, as
    FISTA requires); :meth:`step` takes that gradient and moves the student's mask
    parameters to the next ``y``. ``current`` holds the iterates ``m_k``.
    """

    def __init__(self, masks: nn.ParameterDict, *, lr: float, lam: float):
        if not lr > 0:
            raise ValueError(f"mask lr must be > 0, got {lr}")
        if not lam >= 0:
            raise ValueError(f"lam must be >= 0, got {lam}")
        self.params, self.lr, self.lam = masks, lr, lam
        self.current = {k: p.detach().clone() for k, p in masks.items()}
        self.previous = {k: v.clone() for k, v in self.current.items()}
        self.a_prev, self.a = 1.0, 1.0
        self.steps = 0

    @staticmethod
    def next_a(a: float) -> float:
        return (1 + math.sqrt(1 + 4 * a * a)) / 2

    @torch.no_grad()
    def step(self, grads: dict[str, torch.Tensor]) -> None:
        """One FISTA step from the gradient at the point the student ran at (y)."""
        for k, p in self.params.items():
            y = p.detach()
            new = torch.clamp(soft_threshold(y - self.lr * grads[k], self.lr * self.lam), min=0.0)
            self.previous[k], self.current[k] = self.current[k], new
        self.a_prev, self.a = self.a, self.next_a(self.a)
        beta = (self.a_prev - 1) / self.a
        for k, p in self.params.items():
            p.copy_(self.current[k] + beta * (self.current[k] - self.previous[k]))
        self.steps += 1

    def alive(self) -> int:
        return sum(int((m > 0).sum()) for m in self.current.values())


@dataclass
class GALConfig:
    """Hyper-parameters of GAN-guided pruning (defaults tuned for the course baseline)."""

    lam: float = 0.02  # L1 strength on the masks
    epochs: int = 6
    lr: float = 1e-3  # student weights (Adam)
    d_lr: float = 1e-3  # discriminator (Adam)
    mask_lr: float = 0.05  # FISTA step size
    mask_every: int = 2  # mask update every n student steps
    adv_weight: float = 1.0  # 0 gives the ablation: distillation + L1 masks
    data_weight: float = 1.0  # MSE between teacher and student logits
    ce_weight: float = 0.0  # optional label cross-entropy
    label_smoothing: float = 0.1  # D's "teacher" target is 1 - label_smoothing
    d_hidden: int = 64
    d_weight_decay: float = 1e-4
    clip: float | None = 1.0
    seed: int = 0

    def check(self) -> None:
        for name in ("lam", "adv_weight", "data_weight", "ce_weight", "d_weight_decay"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("lr", "d_lr", "mask_lr"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.epochs < 1 or self.mask_every < 1:
            raise ValueError(
                f"epochs and mask_every must be >= 1, got {self.epochs}, {self.mask_every}"
            )
        if not 0 <= self.label_smoothing < 0.5:
            raise ValueError(f"label_smoothing must be in [0, 0.5), got {self.label_smoothing}")


@dataclass
class GALResult:
    """The trained student, its final masks, and the record of training."""

    student: MaskedStudent
    masks: dict[str, torch.Tensor]
    history: dict = field(default_factory=dict)
    diverged: bool = False
    message: str = ""

    def units_alive(self) -> dict[str, int]:
        return {k: int((m > 0).sum()) for k, m in self.masks.items()}


def _history() -> dict:
    keys = [
        "step",
        "d_loss",
        "d_real_acc",
        "d_fake_acc",
        "g_adv",
        "g_data",
        "g_ce",
        "mask_l1",
        "alive",
    ]
    return {k: [] for k in keys} | {
        "epoch": [],
        "valid_accuracy": [],
        "valid_logit_mse": [],
        "mask_snapshots": [],
    }


@torch.no_grad()
def logit_gap(teacher: nn.Module, student: nn.Module, loader: Iterable) -> dict[str, float]:
    """Mean squared difference of logits and the student's accuracy over ``loader``."""
    teacher.eval()
    student.eval()
    device = next(teacher.parameters()).device
    total, count, correct = 0.0, 0, 0
    for tokens, lengths, labels in loader:
        tokens, lengths, labels = tokens.to(device), lengths.to(device), labels.to(device)
        t, s = teacher(tokens, lengths), student(tokens, lengths)
        total += float(((t - s) ** 2).mean(dim=1).sum())
        correct += int((s.argmax(1) == labels).sum())
        count += len(labels)
    return {"logit_mse": total / count, "accuracy": correct / count}


def train_gal(
    teacher: RNNClassifier,
    train_loader: Iterable,
    valid_loader: Iterable,
    config: GALConfig | None = None,
    *,
    student: RNNClassifier | None = None,
    progress: bool | None = None,
) -> GALResult:
    """Train a masked student against the frozen teacher with a discriminator.

    Returns a :class:`GALResult`. If a loss becomes NaN or infinite, training stops
    with a warning that says where, and the result holds the state of the last
    completed epoch (``diverged=True``).
    """
    from tqdm.auto import tqdm

    config = config or GALConfig()
    config.check()
    check_teacher(teacher)
    torch.manual_seed(config.seed)
    teacher = copy.deepcopy(teacher).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    net = MaskedStudent(teacher, student)
    device = next(teacher.parameters()).device
    disc = Discriminator(teacher.classifier.out_features, config.d_hidden).to(device)
    opt_w = torch.optim.Adam(net.weight_parameters(), lr=config.lr)
    opt_d = torch.optim.Adam(disc.parameters(), lr=config.d_lr, weight_decay=config.d_weight_decay)
    fista = FistaMasks(net.masks, lr=config.mask_lr, lam=config.lam)
    bce = nn.functional.binary_cross_entropy_with_logits
    real_target = 1.0 - config.label_smoothing
    history = _history()
    mask_grads = {k: torch.zeros_like(m) for k, m in net.masks.items()}
    pending, step = 0, 0
    good_state = (copy.deepcopy(net.state_dict()), {k: v.clone() for k, v in fista.current.items()})
    show = show_progress() if progress is None else progress
    bar = tqdm(total=config.epochs * len(train_loader), desc="GAL", disable=not show, leave=False)
    diverged, message = False, ""
    for epoch in range(1, config.epochs + 1):
        net.train()
        for tokens, lengths, labels in train_loader:
            tokens, lengths, labels = tokens.to(device), lengths.to(device), labels.to(device)
            with torch.no_grad():
                t_logits = teacher(tokens, lengths)
            s_logits = net(tokens, lengths)
            # 1. discriminator: teacher logits are "real", student logits "fake"
            if config.adv_weight > 0:
                d_real, d_fake = disc(t_logits), disc(s_logits.detach())
                d_loss = bce(d_real, torch.full_like(d_real, real_target)) + bce(
                    d_fake, torch.zeros_like(d_fake)
                )
                opt_d.zero_grad(set_to_none=True)
                d_loss.backward()
                opt_d.step()
                d_real_acc = float((d_real > 0).float().mean())
                d_fake_acc = float((d_fake < 0).float().mean())
            else:
                d_loss, d_real_acc, d_fake_acc = (
                    torch.tensor(float("nan")),
                    float("nan"),
                    float("nan"),
                )
            # 2. student weights (and mask gradients) on adversarial + data losses
            zero = torch.zeros((), device=device)
            if config.adv_weight > 0:
                d_student = disc(s_logits)
                g_adv = bce(d_student, torch.ones_like(d_student))  # "call me the teacher"
            else:
                g_adv = zero
            g_data = nn.functional.mse_loss(s_logits, t_logits)
            g_ce = nn.functional.cross_entropy(s_logits, labels) if config.ce_weight > 0 else zero
            loss = config.adv_weight * g_adv + config.data_weight * g_data + config.ce_weight * g_ce
            losses = {"discriminator": d_loss if config.adv_weight > 0 else None, "student": loss}
            bad = [k for k, v in losses.items() if v is not None and not torch.isfinite(v)]
            if bad:
                diverged = True
                value = float(losses[bad[0]].detach())
                message = (
                    f"GAL training diverged at epoch {epoch}, step {step}: the {bad[0]} loss is "
                    f"{value}. Stopped; the result keeps the state of the last completed epoch. "
                    "Lower lr, d_lr or mask_lr."
                )
                break
            opt_w.zero_grad(set_to_none=True)
            for m in net.masks.values():
                m.grad = None
            loss.backward()
            if config.clip is not None:
                nn.utils.clip_grad_norm_(net.weight_parameters(), config.clip)
            opt_w.step()
            for k, m in net.masks.items():
                mask_grads[k] += m.grad
            pending += 1
            step += 1
            # 3. masks: a FISTA step every mask_every steps, on the averaged gradient
            if pending == config.mask_every:
                fista.step({k: g / pending for k, g in mask_grads.items()})
                for g in mask_grads.values():
                    g.zero_()
                pending = 0
            history["step"].append(step)
            history["d_loss"].append(float(d_loss.detach()))
            history["d_real_acc"].append(d_real_acc)
            history["d_fake_acc"].append(d_fake_acc)
            history["g_adv"].append(float(g_adv.detach()))
            history["g_data"].append(float(g_data.detach()))
            history["g_ce"].append(float(g_ce.detach()))
            history["mask_l1"].append(sum(float(m.sum()) for m in fista.current.values()))
            history["alive"].append(fista.alive())
            bar.update()
        if diverged:
            break
        gap = logit_gap(teacher, _Finalized(net, fista.current), valid_loader)
        history["epoch"].append(epoch)
        history["valid_accuracy"].append(gap["accuracy"])
        history["valid_logit_mse"].append(gap["logit_mse"])
        history["mask_snapshots"].append({k: v.clone() for k, v in fista.current.items()})
        good_state = (
            copy.deepcopy(net.state_dict()),
            {k: v.clone() for k, v in fista.current.items()},
        )
    bar.close()
    net.load_state_dict(good_state[0])
    masks = good_state[1]
    with torch.no_grad():
        for k, p in net.masks.items():
            p.copy_(masks[k])  # the student now runs at its final masks, not at y
    if diverged:
        warnings.warn(message, RuntimeWarning, stacklevel=2)
    return GALResult(net, masks, history, diverged, message)


class _Finalized(nn.Module):
    """The student evaluated at the FISTA iterate ``m`` instead of the extrapolated ``y``."""

    def __init__(self, net: MaskedStudent, masks: dict[str, torch.Tensor]):
        super().__init__()
        self.net, self.masks_at = net, masks

    def forward(self, tokens, lengths):
        params = masked_parameters(self.net.model, self.masks_at)
        return functional_call(self.net.model, params, (tokens, lengths))


def fold_masks(
    student: MaskedStudent, masks: dict[str, torch.Tensor] | None = None
) -> RNNClassifier:
    """A plain RNNClassifier whose weights have the masks multiplied in (same outputs)."""
    masks = masks if masks is not None else student.mask_values()
    model = copy.deepcopy(student.model)
    scaled = masked_parameters(model, masks)
    with torch.no_grad():
        params = dict(model.named_parameters())
        for name, value in scaled.items():
            params[name].copy_(value)
    return model


def kept_units(masks: dict[str, torch.Tensor], keep: int | None = None) -> dict[str, torch.Tensor]:
    """Indices of the units to keep per mask key: those with m > 0, or the ``keep`` largest.

    With ``keep``, every layer and direction keeps exactly ``keep`` units (the largest
    masks; ties broken by index), so that methods compare at equal hidden sizes.
    """
    out = {}
    for k, m in masks.items():
        if keep is None:
            idx = torch.nonzero(m > 0).flatten()
            if idx.numel() == 0:
                idx = m.argmax().reshape(1)  # a layer needs at least one unit
        else:
            if not 1 <= keep <= m.numel():
                raise ValueError(f"keep must be in [1, {m.numel()}], got {keep}")
            idx = torch.sort(torch.topk(m, keep, sorted=False).indices).values
        out[k] = idx
    return out


def evaluate_student(student: MaskedStudent, loader) -> float:
    """Validation accuracy of the masked student."""
    return evaluate(student, loader)["accuracy"]
