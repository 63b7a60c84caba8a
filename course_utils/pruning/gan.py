"""GAN-guided structured pruning of RNN classifiers, after GAL (Lin et al., CVPR 2019).

Introduced in chapter 5. The trained dense classifier is the frozen **teacher**. The
**student** (the generator) is a copy of it whose hidden units carry soft masks
``m_k >= 0`` (:mod:`course_utils.pruning.soft_masks`: the masked student, FISTA for the
masks, folding and removal, all re-exported here). With ``m_k = 0`` a unit influences
nothing, so chapter 4's ``remove_hidden_units`` removes it exactly.

A small non-linear **discriminator** tells teacher logits from student logits.
:func:`train_gal` repeats the chapter's five steps on every batch, each a function of its
own (:func:`gal_parts` builds what they update):

1. the teacher's logits ``t`` (:class:`CachedTeacher`);
2. the student's logits ``s`` at the current masks (:func:`outputs_for_discriminator`
   gives both);
3. :func:`discriminator_step`: one step of D, ``t`` "real" and ``s`` "fake";
4. :func:`student_step`: one step of the student's weights on ``adv_weight·BCE(D(s),
   "teacher") + data_weight·MSE(s, t) [+ ce_weight·CE(s, labels)]``; the masks'
   gradients add up;
5. :func:`mask_step`, every ``mask_every`` iterations: a FISTA step on the averaged
   mask gradient, with the L1 penalty ``lam·||m||_1`` as its proximal part
   (:func:`steer_lam` then applies the unit budget);

and ends each epoch with :func:`validate_masks`. ``adv_weight=0`` is the ablation
without the adversarial term (distillation + L1 masks).

In the variant ``GALConfig(d_input="logits+features")`` D sees each side's logits next
to the pooled hidden features the classifier reads (the student's masked, so a removed
unit reads 0; :func:`logits_and_features`). Five logits say little about how an answer
was reached, so a D that also sees the features can push the student to copy the
teacher's inner representation, not only its answers.

With a unit budget (``GALConfig.target_units``), λ is not fixed: it starts at ``lam``
and grows by ``lam_growth`` per mask step until each (layer, direction) has at most
``target_units`` masks above zero; then that slot's zero masks stay zero and its λ
drops to 0, and the remaining steps let the survivors recover. The final removal is
then exact at the wanted size (growing regularization, Wang et al., ICLR 2021).

Masks are keyed like chapter 4's keep specs: ``{(layer, direction): (hidden,) tensor}``,
direction 0 forward and 1 backward.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from torch import nn
from torch.func import functional_call

from ..checks import integer, non_negative_number, number, positive_number
from ..masking import keep_masks
from ..models import RNNClassifier
from ..seeding import keeps_global_rng
from ..settings import show_progress
from ..train import check_batch, nonempty_batches
from .regularization import soft_threshold
from .soft_masks import (
    FistaMasks,
    MaskDict,
    MaskedStudent,
    ProxFn,
    check_masks,
    check_teacher,
    fold_masks,
    frozen_copy,
    kept_units,
    mask_key,
    mask_prox_step,
    mask_slots,
    masked_parameters,
    remove_masked_units,
)
from .structured import Slot

__all__ = [
    "D_INPUTS",
    "CachedTeacher",
    "Discriminator",
    "DiscriminatorLossFn",
    "FistaMasks",
    "GALConfig",
    "GALDiverged",
    "GALParts",
    "GALResult",
    "MaskedStudent",
    "ProxFn",
    "check_masks",
    "check_teacher",
    "discriminator_input",
    "instance_noise",
    "discriminator_loss",
    "discriminator_step",
    "fold_masks",
    "gal_parts",
    "kept_units",
    "logit_gap",
    "logits_and_features",
    "mask_iterates",
    "mask_key",
    "mask_prox_step",
    "mask_slots",
    "mask_step",
    "masked_parameters",
    "outputs_for_discriminator",
    "remove_masked_units",
    "soft_threshold",
    "steer_lam",
    "student_step",
    "train_gal",
    "validate_masks",
]

DiscriminatorLossFn = Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]
"""``loss_fn(d_real, d_fake, smoothing)`` -> D's loss: :func:`discriminator_loss`'s signature."""

D_INPUTS = ("logits", "logits+features")
"""What the discriminator may see (:attr:`GALConfig.d_input`)."""


class Discriminator(nn.Module):
    """A small non-linear MLP: what it sees (batch, in_features) -> "is this the teacher?"
    logit (batch,). It sees logits (C values) or logits and features (C + F values)."""

    def __init__(self, in_features: int, hidden: int = 64):
        super().__init__()
        in_features = integer("in_features", in_features, minimum=1)
        hidden = integer("hidden", hidden, minimum=1)
        self.net = nn.Sequential(
            nn.Linear(in_features, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


def discriminator_loss(
    d_real: torch.Tensor, d_fake: torch.Tensor, label_smoothing: float = 0.0
) -> torch.Tensor:
    """``BCE(D(teacher), 1 - label_smoothing) + BCE(D(student), 0)`` on D's logits (batch,).

    One-sided label smoothing (Salimans et al. 2016): only the "real" target is softened,
    so D never becomes fully sure of the teacher and its gradients stay useful.
    """
    bce = nn.functional.binary_cross_entropy_with_logits
    real = bce(d_real, torch.full_like(d_real, 1.0 - label_smoothing))
    return real + bce(d_fake, torch.zeros_like(d_fake))


@dataclass
class GALConfig:
    """Hyper-parameters of GAN-guided pruning (defaults tuned for the course baseline)."""

    lam: float = 0.1  # L1 strength on the masks (with target_units: where λ starts)
    epochs: int = 4
    lr: float = 3e-4  # student weights (Adam)
    d_lr: float = 1e-3  # discriminator (Adam)
    mask_lr: float = 0.05  # FISTA step size
    mask_every: int = 2  # mask update every n student steps
    restart: bool = True  # FISTA's momentum restarts when it points uphill
    adv_weight: float = 1.0  # 0 gives the ablation: distillation + L1 masks
    data_weight: float = 1.0  # MSE between teacher and student logits
    ce_weight: float = 0.0  # optional label cross-entropy
    label_smoothing: float = 0.1  # D's "teacher" target is 1 - label_smoothing
    d_noise: float = 2.0  # std of the instance noise added to every value D sees
    d_hidden: int = 64
    # what D sees: "logits" (Lin et al.) or "logits+features" (the logits and the pooled
    # hidden features the classifier reads, side by side)
    d_input: str = "logits"
    # with "logits+features": std of the instance noise on the feature columns (None: the
    # same d_noise as the logits; pooled LSTM features spread about 1/10 as much as logits)
    d_feature_noise: float | None = None
    d_weight_decay: float = 1e-4
    clip: float | None = 1.0
    snapshot_every: int = 5  # record the masks every n student steps (dashboards)
    seed: int = 0
    # A unit budget instead of a fixed λ (growing regularization, Wang et al. 2021):
    # while a (layer, direction) has more than target_units masks above zero, its λ is
    # multiplied by lam_growth at every mask step, starting from lam; once it is within
    # budget, its zero masks stay zero and its λ drops to 0.
    target_units: int | None = None
    lam_growth: float = 1.03

    def check(self) -> None:
        for name in ("lam", "adv_weight", "data_weight", "ce_weight", "d_weight_decay", "d_noise"):
            non_negative_number(name, getattr(self, name))
        for name in ("lr", "d_lr", "mask_lr"):
            positive_number(name, getattr(self, name))
        for name in ("epochs", "mask_every", "snapshot_every", "d_hidden", "target_units"):
            value = getattr(self, name)
            if name == "target_units" and value is None:
                continue
            integer(name, value, minimum=1, allowed="an int >= 1")
        number("lam_growth", self.lam_growth, minimum=1)
        if self.d_feature_noise is not None:
            non_negative_number("d_feature_noise", self.d_feature_noise)
        if not isinstance(self.d_input, str) or self.d_input not in D_INPUTS:
            raise ValueError(f"d_input must be one of {list(D_INPUTS)}, got {self.d_input!r}")
        if self.clip is not None:
            positive_number("clip", self.clip)
        if self.target_units is not None and not self.lam > 0:
            raise ValueError(f"lam must be > 0 when target_units is set, got {self.lam}")
        number("label_smoothing", self.label_smoothing, minimum=0, maximum=0.5, high_open=True)
        if self.adv_weight == 0 and self.data_weight == 0 and self.ce_weight == 0:
            raise ValueError("adv_weight, data_weight and ce_weight are all 0: nothing to learn")


@dataclass
class GALResult:
    """The trained student at its chosen masks, and the record of training.

    ``masks`` are the FISTA iterates of the kept epoch (``best_epoch``: the completed
    epoch with the lowest validation objective; 0 means the start), keyed by slot;
    ``student`` runs at them. ``history`` holds per-step losses and accuracies of D,
    mask snapshots and per-epoch validation numbers.
    """

    student: MaskedStudent
    masks: MaskDict
    history: dict = field(default_factory=dict)
    best_epoch: int = 0
    diverged: bool = False
    message: str = ""

    def units_alive(self) -> dict[Slot, int]:
        return {slot: int((m > 0).sum()) for slot, m in self.masks.items()}

    def pruned_model(self, keep: int | None = None, threshold: float = 0.0) -> RNNClassifier:
        """The physically smaller classifier: :func:`remove_masked_units` at ``masks``."""
        return remove_masked_units(self.student, self.masks, keep=keep, threshold=threshold)


def _history() -> dict:
    per_step = [
        "step",
        "d_loss",
        "d_real_loss",
        "d_fake_loss",
        "d_real_acc",
        "d_fake_acc",
        "g_adv",
        "g_data",
        "g_ce",
        "mask_l1",
        "alive",
        "lam",
    ]
    per_epoch = ["epoch", "valid_accuracy", "valid_logit_mse", "valid_objective", "epoch_alive"]
    snapshots = {"snapshot_step": [], "mask_snapshots": []}
    return {k: [] for k in per_step + per_epoch} | snapshots | {"budget_met_step": {}}


@torch.no_grad()
def logit_gap(teacher: nn.Module, student: nn.Module, loader: Iterable) -> dict[str, float]:
    """Mean squared difference of logits (per example, averaged over classes) and the
    student's accuracy over ``loader``: ``{"logit_mse", "accuracy"}``."""
    was_training = teacher.training, student.training
    teacher.eval()
    student.eval()
    device = next(teacher.parameters()).device
    classes = getattr(getattr(teacher, "classifier", None), "out_features", None)
    total, count, correct = 0.0, 0, 0
    for batch in nonempty_batches(loader, "loader"):
        tokens, lengths, labels = check_batch(batch, classes, "each batch of loader")
        tokens, lengths, labels = tokens.to(device), lengths.to(device), labels.to(device)
        t, s = teacher(tokens, lengths), student(tokens, lengths)
        total += float(((t - s) ** 2).mean(dim=1).sum())
        correct += int((s.argmax(1) == labels).sum())
        count += len(labels)
    teacher.train(was_training[0])
    student.train(was_training[1])
    if count == 0:
        raise ValueError("loader yields no examples: every batch was empty")
    return {"logit_mse": total / count, "accuracy": correct / count}


class CachedTeacher(nn.Module):
    """The frozen teacher in eval mode, remembering its logits for every sequence it saw.

    A frozen model in eval mode is a fixed function of each sequence, so a training
    loop that meets the same articles every epoch (distillation, GAL) needs the
    teacher's forward pass only once per article. Keys are the bytes of the sequence's
    real tokens. ``cached(tokens, lengths)`` returns logits (batch, C) without gradient;
    ``cached.logits_and_features(tokens, lengths)`` returns them with the pooled features
    (batch, F), remembered as well.
    """

    def __init__(self, teacher: RNNClassifier):
        super().__init__()
        self.teacher = check_teacher(teacher)
        self.store: dict[bytes, torch.Tensor] = {}
        self.feature_store: dict[bytes, torch.Tensor] = {}

    @torch.no_grad()
    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        keys = self._keys(tokens, lengths)
        missing = [i for i, k in enumerate(keys) if k not in self.store]
        if missing:
            index = torch.tensor(missing, device=tokens.device)
            logits = self._in_eval_mode(self.teacher, tokens[index], lengths[index])
            for i, row in zip(missing, logits, strict=True):
                self.store[keys[i]] = row
        return torch.stack([self.store[k] for k in keys])

    @torch.no_grad()
    def logits_and_features(
        self, tokens: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The teacher's logits (batch, C) and pooled features (batch, F)
        (:func:`logits_and_features`), each computed once per sequence."""
        keys = self._keys(tokens, lengths)
        missing = [i for i, k in enumerate(keys) if k not in self.feature_store]
        if missing:
            index = torch.tensor(missing, device=tokens.device)
            logits, features = self._in_eval_mode(
                lambda *batch: logits_and_features(self.teacher, *batch),
                tokens[index],
                lengths[index],
            )
            for i, row, f in zip(missing, logits, features, strict=True):
                self.store.setdefault(keys[i], row)  # logits seen before stay as they were
                self.feature_store[keys[i]] = f
        logits = torch.stack([self.store[k] for k in keys])
        return logits, torch.stack([self.feature_store[k] for k in keys])

    @staticmethod
    def _keys(tokens: torch.Tensor, lengths: torch.Tensor) -> list[bytes]:
        return [tokens[i, : int(n)].cpu().numpy().tobytes() for i, n in enumerate(lengths)]

    def _in_eval_mode(self, run, tokens: torch.Tensor, lengths: torch.Tensor):
        was_training = self.teacher.training
        self.teacher.eval()
        out = run(tokens, lengths)
        self.teacher.train(was_training)
        return out


class _WithFeatures(nn.Module):
    """A classifier's forward pass that also returns the pooled features it classified."""

    def __init__(self, model: RNNClassifier):
        super().__init__()
        self.model = model

    def forward(self, tokens, lengths):
        features = self.model.features(tokens, lengths)
        return self.model.classifier(self.model.dropout(features)), features


def logits_and_features(
    model: RNNClassifier | MaskedStudent, tokens: torch.Tensor, lengths: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (batch, C) and pooled features (batch, F) from one forward pass.

    The features are :meth:`RNNClassifier.features`: what the classifier reads, before its
    dropout; F is ``directions·hidden``. For a :class:`MaskedStudent` they are multiplied
    by its last layer's masks ``[m_fwd ; m_bwd]`` (its classifier reads them so), so a
    unit with ``m_k = 0`` reads 0; its logits are those of ``student(tokens, lengths)``.
    """
    if not isinstance(model, MaskedStudent):
        return _WithFeatures(check_teacher(model, "model"))(tokens, lengths)
    masks = model.mask_dict()
    params = masked_parameters(model.model, masks)
    logits, features = functional_call(
        _WithFeatures(model.model), {f"model.{k}": v for k, v in params.items()}, (tokens, lengths)
    )
    last = model.model.rnn.num_layers - 1
    outgoing = torch.cat([masks[(last, d)] for d in range(model.model.num_directions)])
    return logits, features * outgoing


def outputs_for_discriminator(
    model: CachedTeacher | MaskedStudent,
    tokens: torch.Tensor,
    lengths: torch.Tensor,
    config: GALConfig,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Steps 1 and 2 of a GAL iteration: ``(logits, features)`` of the teacher (a
    :class:`CachedTeacher`) or of the student (a :class:`MaskedStudent`).

    ``features`` is None when D sees only logits (``config.d_input == "logits"``), else
    the pooled features of :func:`logits_and_features`.
    """
    if config.d_input == "logits":
        return model(tokens, lengths), None
    if isinstance(model, CachedTeacher):
        return model.logits_and_features(tokens, lengths)
    return logits_and_features(model, tokens, lengths)


def discriminator_input(
    logits: torch.Tensor, features: torch.Tensor | None, config: GALConfig
) -> torch.Tensor:
    """What D sees of one side, before the instance noise: the logits (batch, C), or with
    ``config.d_input == "logits+features"`` the logits and features side by side
    (batch, C + F)."""
    if config.d_input == "logits":
        if features is not None:
            raise ValueError('features were given but config.d_input is "logits"')
        return logits
    if features is None:
        raise ValueError(f"config.d_input is {config.d_input!r}: pass the features too")
    return torch.cat([logits, features], dim=1)


class _AtMasks(nn.Module):
    """The student evaluated at fixed masks (the FISTA iterate ``m``, not ``y``)."""

    def __init__(self, net: MaskedStudent, masks: Mapping[Slot, torch.Tensor]):
        super().__init__()
        self.net, self.masks_at = net, masks

    def forward(self, tokens, lengths):
        return self.net(tokens, lengths, masks=self.masks_at)


class GALDiverged(FloatingPointError):
    """A GAL step met a NaN or infinite value before updating anything with it.

    ``what`` names the loss (``"discriminator"``, ``"student"``) or ``"mask"``;
    ``value`` is the first bad value. :func:`train_gal` stops on it with a warning.
    """

    def __init__(self, what: str, value: float):
        super().__init__(f"the {what} loss is {value}")
        self.what, self.value = what, value


def _check_finite(what: str, value: torch.Tensor) -> None:
    flat = value.detach().reshape(-1)
    finite = torch.isfinite(flat)
    if not bool(finite.all()):
        raise GALDiverged(what, float(flat[~finite][0]))


class GALParts(NamedTuple):
    """What a GAL run trains: the masked student (the generator), the discriminator, an
    Adam optimizer for each, and FISTA for the masks."""

    student: MaskedStudent
    discriminator: Discriminator
    student_optimizer: torch.optim.Optimizer
    discriminator_optimizer: torch.optim.Optimizer
    fista: FistaMasks


def gal_parts(
    teacher: RNNClassifier,
    config: GALConfig,
    student: RNNClassifier | None = None,
    *,
    prox: ProxFn | None = None,
) -> GALParts:
    """The set-up of :func:`train_gal`: a :class:`MaskedStudent` of ``student`` (default:
    a copy of ``teacher``), a fresh :class:`Discriminator` on what ``config.d_input``
    names (C logits, or C logits and F pooled features), their optimizers (the student's
    keeps chapter 2's masks) and :class:`FistaMasks` (with ``prox`` as its proximal
    step: by default :func:`mask_prox_step`).

    The discriminator's initial weights are drawn from PyTorch's global stream:
    :func:`train_gal` seeds it with ``config.seed`` first.
    """
    net = MaskedStudent(teacher, student)
    device = next(teacher.parameters()).device
    seen = teacher.classifier.out_features
    if config.d_input == "logits+features":
        seen += teacher.classifier.in_features  # the pooled features the classifier reads
    disc = Discriminator(seen, config.d_hidden).to(device)
    opt_w = torch.optim.Adam(net.weight_parameters(), lr=config.lr)
    keep_masks(opt_w, net.model)  # a student pruned in chapter 2 stays pruned
    opt_d = torch.optim.Adam(disc.parameters(), lr=config.d_lr, weight_decay=config.d_weight_decay)
    fista = FistaMasks(
        net.masks, lr=config.mask_lr, lam=config.lam, restart=config.restart, prox=prox
    )
    return GALParts(net, disc, opt_w, opt_d, fista)


def discriminator_step(
    disc: Discriminator,
    optimizer: torch.optim.Optimizer,
    t_logits: torch.Tensor,
    s_logits: torch.Tensor,
    config: GALConfig,
    t_features: torch.Tensor | None = None,
    s_features: torch.Tensor | None = None,
    *,
    loss_fn: DiscriminatorLossFn | None = None,
) -> dict[str, float]:
    """Step 3 of a GAL iteration: one Adam step on D alone.

    Teacher logits are "real", student logits "fake" and detached (the student does not
    move here); both get instance noise of std ``config.d_noise``, and the real target
    is smoothed (:func:`discriminator_loss`). With ``config.d_input ==
    "logits+features"`` D sees each side's features next to its logits
    (:func:`discriminator_input`). Returns D's ``loss``, ``real_loss``, ``fake_loss`` and
    its accuracies ``real_acc``, ``fake_acc`` on this batch. A NaN or infinite loss
    raises :class:`GALDiverged` before the step. ``loss_fn(d_real, d_fake, smoothing)``
    replaces :func:`discriminator_loss` (chapter 5's exercise); it must return a scalar.
    """
    real = discriminator_input(t_logits, t_features, config)
    fake = discriminator_input(s_logits, s_features, config).detach()
    classes = t_logits.shape[1]
    d_real = disc(instance_noise(real, config, classes))
    d_fake = disc(instance_noise(fake, config, classes))
    d_loss = (loss_fn or discriminator_loss)(d_real, d_fake, config.label_smoothing)
    if not isinstance(d_loss, torch.Tensor) or d_loss.dim() != 0:
        raise ValueError("the discriminator loss_fn must return a scalar tensor")
    _check_finite("discriminator", d_loss)
    optimizer.zero_grad(set_to_none=True)
    d_loss.backward()
    optimizer.step()
    return _discriminator_record(d_real, d_fake, d_loss, config.label_smoothing)


def student_step(
    net: MaskedStudent,
    disc: Discriminator,
    optimizer: torch.optim.Optimizer,
    t_logits: torch.Tensor,
    s_logits: torch.Tensor,
    labels: torch.Tensor,
    config: GALConfig,
    mask_grads: dict[str, torch.Tensor],
    s_features: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Step 4 of a GAL iteration: one Adam step on the student's weights.

    The loss is ``adv_weight·BCE(D(s), 1) + data_weight·MSE(s, t) + ce_weight·CE(s,
    labels)``: "call me the teacher", stay close to its logits, optionally get the labels
    right (a term with weight 0 is not computed and counts as 0). D sees what
    :func:`discriminator_input` gives: with ``config.d_input == "logits+features"`` the
    student's (masked) features ``s_features`` too. The same backward pass leaves a
    gradient on every mask, added to ``mask_grads`` for step 5 (:func:`mask_step`).
    Returns the terms ``g_adv``, ``g_data``, ``g_ce``. A NaN or infinite loss raises
    :class:`GALDiverged` before the step.
    """
    zero = torch.zeros((), device=s_logits.device)
    if config.adv_weight > 0:
        seen = discriminator_input(s_logits, s_features, config)
        d_student = disc(instance_noise(seen, config, s_logits.shape[1]))
        g_adv = nn.functional.binary_cross_entropy_with_logits(
            d_student, torch.ones_like(d_student)
        )
    else:
        g_adv = zero
    g_data = nn.functional.mse_loss(s_logits, t_logits)
    g_ce = nn.functional.cross_entropy(s_logits, labels) if config.ce_weight > 0 else zero
    loss = config.adv_weight * g_adv + config.data_weight * g_data + config.ce_weight * g_ce
    _check_finite("student", loss)
    optimizer.zero_grad(set_to_none=True)
    for m in net.masks.values():
        m.grad = None
    loss.backward()
    if config.clip is not None:
        nn.utils.clip_grad_norm_(net.weight_parameters(), config.clip)
    optimizer.step()
    for k, m in net.masks.items():
        mask_grads[k] += m.grad
    return {"g_adv": g_adv, "g_data": g_data, "g_ce": g_ce}


def mask_step(fista: FistaMasks, mask_grads: dict[str, torch.Tensor], count: int) -> None:
    """Step 5 of a GAL iteration (every ``mask_every`` student steps): one FISTA step.

    The gradient is ``mask_grads`` averaged over the ``count`` student steps that summed
    it; the sums are then reset to zero for the next ones. The L1 penalty is FISTA's
    proximal part (:meth:`FistaMasks.step`).
    """
    fista.step({k: g / count for k, g in mask_grads.items()})
    for g in mask_grads.values():
        g.zero_()


def steer_lam(fista: FistaMasks, slots, config: GALConfig, step: int, met: dict) -> None:
    """The unit budget, after a mask step: grow each slot's λ until its alive masks fit.

    A slot with more than ``config.target_units`` masks above zero has its λ multiplied
    by ``config.lam_growth``; one within budget is frozen (:meth:`FistaMasks.freeze`)
    and ``met[slot]`` records the ``step``. Frozen slots are left alone.
    """
    for slot in slots:
        key = mask_key(slot)
        if slot in met:
            continue
        if fista.alive(key) <= config.target_units:
            fista.freeze(key)
            met[slot] = step
            if fista.alive(key) == 0:
                warnings.warn(
                    f"every mask of layer {slot[0]}, direction {slot[1]} reached 0 at step "
                    f"{step}, below target_units={config.target_units}: lower lam_growth "
                    "or mask_lr so that λ grows more gently",
                    RuntimeWarning,
                    stacklevel=3,
                )
        else:
            fista.lams[key] *= config.lam_growth


def mask_iterates(net: MaskedStudent, fista: FistaMasks) -> MaskDict:
    """FISTA's iterates ``m`` keyed by slot: the masks GAL keeps (the student runs at ``y``)."""
    return {s: fista.current[mask_key(s)] for s in net.slots}


def validate_masks(
    teacher: nn.Module,
    net: MaskedStudent,
    fista: FistaMasks,
    valid_loader: Iterable,
    config: GALConfig,
    met: Mapping,
) -> dict[str, float]:
    """After each epoch: the student at the iterates ``m`` on the validation split.

    Returns its ``accuracy``, ``logit_mse`` against the teacher (:func:`logit_gap`) and
    the ``objective`` that picks the kept epoch: ``data_weight·logit_mse + lam·||m||_1``;
    with a unit budget ``data_weight·logit_mse`` once every slot is in ``met`` (within
    budget), infinity before.
    """
    at = mask_iterates(net, fista)
    gap = logit_gap(teacher, _AtMasks(net, at), valid_loader)
    if config.target_units is None:
        l1 = sum(float(m.sum()) for m in at.values())
        objective = config.data_weight * gap["logit_mse"] + config.lam * l1
    elif len(met) == len(net.slots):
        objective = config.data_weight * gap["logit_mse"]  # every slot within budget
    else:
        objective = math.inf  # kept only if no epoch ends within budget (the last one)
    return {"accuracy": gap["accuracy"], "logit_mse": gap["logit_mse"], "objective": objective}


def _snapshot(net: MaskedStudent, fista: FistaMasks) -> tuple[dict, MaskDict]:
    iterates = {s: m.clone() for s, m in mask_iterates(net, fista).items()}
    return copy.deepcopy(net.model.state_dict()), iterates


_NO_DISCRIMINATOR = dict.fromkeys(
    ("loss", "real_loss", "fake_loss", "real_acc", "fake_acc"), float("nan")
)  # the record of a step without discriminator (adv_weight=0)


@keeps_global_rng
def train_gal(
    teacher: RNNClassifier,
    train_loader: Iterable,
    valid_loader: Iterable,
    config: GALConfig | None = None,
    *,
    student: RNNClassifier | None = None,
    teacher_cache: CachedTeacher | None = None,
    progress: bool | None = None,
    d_loss_fn: DiscriminatorLossFn | None = None,
    prox_fn: ProxFn | None = None,
) -> GALResult:
    """Train a masked student against the frozen teacher with a discriminator.

    Each iteration runs the chapter's five steps on one batch: the teacher's logits, the
    student's logits at the masks (both from :func:`outputs_for_discriminator`, with
    their pooled features when ``config.d_input == "logits+features"``),
    :func:`discriminator_step`, :func:`student_step` and, every ``mask_every``
    iterations, :func:`mask_step` (with a unit budget, then :func:`steer_lam`). Each
    epoch ends with :func:`validate_masks`; the result keeps the completed epoch with the
    lowest validation objective ``data_weight·logit MSE + lam·||m||_1`` (the penalized
    distillation loss that the masks minimize). With a unit budget
    (``config.target_units``) λ changes during training, so the kept epoch is the one
    with the lowest ``data_weight·logit MSE`` among those that end within budget (the
    last epoch if none does; ``history["budget_met_step"]`` says when each slot got
    there). If a loss or a mask becomes NaN or infinite, training stops with a
    RuntimeWarning that says where, and the result keeps the best state so far
    (``diverged=True``; the start if no epoch was completed). The student is returned in
    eval mode. The teacher is not changed. ``teacher_cache`` (a :class:`CachedTeacher`
    of this teacher) lets several runs share the teacher's logits (and features).

    The learner's own code can run two of the steps (chapter 5's exercises):
    ``d_loss_fn(d_real, d_fake, smoothing)`` replaces :func:`discriminator_loss` in
    :func:`discriminator_step`, and ``prox_fn(y, grad, lr, lam)`` replaces
    :func:`mask_prox_step` in FISTA's mask step.
    """
    from tqdm.auto import tqdm

    for argument, fn in (("d_loss_fn", d_loss_fn), ("prox_fn", prox_fn)):
        if fn is not None and not callable(fn):
            raise TypeError(f"{argument} must be a function, got {type(fn).__name__}")

    config = _checked_config(config, teacher)
    train_loader = nonempty_batches(train_loader, "train_loader")
    valid_loader = nonempty_batches(valid_loader, "valid_loader")
    torch.manual_seed(config.seed)
    teacher_cache = _checked_cache(teacher_cache, teacher)
    teacher = frozen_copy(teacher)
    net, disc, opt_w, opt_d, fista = gal_parts(teacher, config, student, prox=prox_fn)
    device, classes = next(teacher.parameters()).device, teacher.classifier.out_features
    history = _history()
    met = history["budget_met_step"]  # slot -> the step it got within the unit budget
    mask_grads = {k: torch.zeros_like(m) for k, m in net.masks.items()}
    pending, step, diverged, message = 0, 0, False, ""
    best = (math.inf, 0, _snapshot(net, fista))
    show = show_progress() if progress is None else progress
    bar = tqdm(total=config.epochs * len(train_loader), desc="GAL", disable=not show, leave=False)
    for epoch in range(1, config.epochs + 1):
        net.train()
        for batch in train_loader:
            tokens, lengths, labels = check_batch(batch, classes, "each batch of train_loader")
            tokens, lengths, labels = tokens.to(device), lengths.to(device), labels.to(device)
            # 1. the teacher; 2. the student, at the masks y
            t_logits, t_features = outputs_for_discriminator(teacher_cache, tokens, lengths, config)
            s_logits, s_features = outputs_for_discriminator(net, tokens, lengths, config)
            try:
                d = _NO_DISCRIMINATOR
                if config.adv_weight > 0:  # 3. the discriminator
                    d = discriminator_step(
                        disc,
                        opt_d,
                        t_logits,
                        s_logits,
                        config,
                        t_features,
                        s_features,
                        loss_fn=d_loss_fn,
                    )
                # 4. the student's weights; the masks' gradients add up in mask_grads
                g = student_step(
                    net, disc, opt_w, t_logits, s_logits, labels, config, mask_grads, s_features
                )
                pending, step = pending + 1, step + 1
                if pending == config.mask_every:  # 5. the masks
                    mask_step(fista, mask_grads, pending)
                    pending = 0
                    if config.target_units is not None:
                        steer_lam(fista, net.slots, config, step, met)
                    _check_finite("mask", torch.stack([m.sum() for m in fista.current.values()]))
            except GALDiverged as bad:
                diverged, message = True, _diverged(epoch, step, bad.what, bad.value)
                break
            _record_step(history, step, d, g, fista, net, config)
            bar.update()
        if diverged:
            break
        scores = validate_masks(teacher, net, fista, valid_loader, config, met)
        _record_epoch(history, epoch, scores, fista)
        if scores["objective"] < best[0] or not math.isfinite(best[0]):
            best = (scores["objective"], epoch, _snapshot(net, fista))
    bar.close()
    _, best_epoch, (state, masks) = best
    net.model.load_state_dict(state)
    net.set_masks(masks)  # the student now runs at the kept iterates m, not at y
    net.eval()
    if diverged:
        warnings.warn(message, RuntimeWarning, stacklevel=2)
    return GALResult(net, masks, history, best_epoch, diverged, message)


def _checked_config(config: GALConfig | None, teacher: RNNClassifier) -> GALConfig:
    config = config or GALConfig()
    if not isinstance(config, GALConfig):
        raise TypeError(f"config must be a GALConfig, got {type(config).__name__}")
    config.check()
    check_teacher(teacher)
    hidden = teacher.rnn.hidden_size
    if config.target_units is not None and config.target_units >= hidden:
        raise ValueError(
            f"target_units must be below the teacher's {hidden} hidden units, "
            f"got {config.target_units}"
        )
    return config


def _checked_cache(cache: CachedTeacher | None, teacher: RNNClassifier) -> CachedTeacher:
    if cache is None:
        return CachedTeacher(teacher)
    if not isinstance(cache, CachedTeacher) or cache.teacher is not teacher:
        raise ValueError("teacher_cache must be a CachedTeacher of this very teacher")
    return cache


def instance_noise(seen: torch.Tensor, config: GALConfig, classes: int) -> torch.Tensor:
    """What D sees, blurred: ``config.d_noise`` on the ``classes`` logit columns and, with
    features, ``config.d_feature_noise`` (default ``d_noise``) on the feature columns."""
    if config.d_input == "logits" or config.d_feature_noise is None:
        return _noisy(seen, config.d_noise)
    std = torch.full((seen.shape[1],), float(config.d_feature_noise), device=seen.device)
    std[:classes] = config.d_noise
    return seen + std * torch.randn_like(seen)


def _noisy(logits: torch.Tensor, std: float) -> torch.Tensor:
    """Instance noise (Sønderby et al. 2017): blur what D sees so it cannot win outright."""
    return logits + std * torch.randn_like(logits) if std > 0 else logits


def _diverged(epoch: int, step: int, what: str, value: float) -> str:
    return (
        f"GAL training diverged at epoch {epoch}, step {step}: the {what} loss is {value}. "
        "Stopped; the result keeps the best state so far (lowest validation objective "
        "among the completed epochs, or the start). Lower lr, d_lr or mask_lr."
    )


@torch.no_grad()
def _discriminator_record(d_real, d_fake, d_loss, label_smoothing: float) -> dict[str, float]:
    bce = nn.functional.binary_cross_entropy_with_logits
    return {
        "loss": float(d_loss),
        "real_loss": float(bce(d_real, torch.full_like(d_real, 1.0 - label_smoothing))),
        "fake_loss": float(bce(d_fake, torch.zeros_like(d_fake))),
        "real_acc": float((d_real > 0).float().mean()),
        "fake_acc": float((d_fake < 0).float().mean()),
    }


def _record_step(history, step, d, g, fista, net, config) -> None:
    history["step"].append(step)
    for key in ("loss", "real_loss", "fake_loss", "real_acc", "fake_acc"):
        history[f"d_{key}"].append(d[key])
    for key in ("g_adv", "g_data", "g_ce"):
        history[key].append(float(g[key].detach()))
    history["mask_l1"].append(sum(float(m.sum()) for m in fista.current.values()))
    history["alive"].append(fista.alive())
    history["lam"].append(sum(fista.lams.values()) / len(fista.lams))
    if step % config.snapshot_every == 0:
        history["snapshot_step"].append(step)
        history["mask_snapshots"].append(
            {s: m.clone() for s, m in mask_iterates(net, fista).items()}
        )


def _record_epoch(history, epoch, scores, fista) -> None:
    history["epoch"].append(epoch)
    history["valid_accuracy"].append(scores["accuracy"])
    history["valid_logit_mse"].append(scores["logit_mse"])
    history["valid_objective"].append(scores["objective"])
    history["epoch_alive"].append(fista.alive())
