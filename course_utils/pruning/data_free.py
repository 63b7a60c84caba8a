"""Data-free distillation of a pruned RNN classifier, after DAFL (Chen et al., ICCV 2019).

Introduced in chapter 5's appendix (notebook ``05b``). Chapter 5 fine-tuned every pruned
model on the training articles. Without them (privacy, licensing, a model shipped
alone), DAFL trains a **generator** whose samples the frozen teacher treats like real
data: the teacher is the fixed discriminator. For images the generator makes pixels;
for a text classifier it makes **embedding sequences**, which the teacher's and the
student's LSTMs read in place of looked-up word vectors (:func:`embedded_forward`).

The generator minimizes, over a batch of generated sequences with teacher logits
``y_i``, pooled teacher features ``f_i`` and softmax outputs ``p_i``:

- ``L_oh = (1/n) Σ CE(y_i, argmax y_i)``: the teacher is confident about each sample;
- ``L_a = -(1/(n·F)) Σ_i Σ_j |f_ij|``: the samples excite the teacher's F features strongly;
- ``L_ie = Σ_c p̄_c·log10(p̄_c)`` with ``p̄ = (1/n) Σ p_i``: the classes are balanced over
  the batch (this is minus the entropy of p̄, in base 10);

``L_G = L_oh + alpha·L_a + beta·L_ie``, scaled as in the paper's reference code: ``L_a``
is a mean over examples and features (not each feature vector's L1 norm, which would be
F times stronger) and ``L_ie`` takes log base 10. The paper's alpha 0.1 and beta 5 are
tuned for that scaling. The **student** learns from the same samples by knowledge
distillation, ``KL(softmax(y/T) || softmax(s/T))·T²``. Generator and student step once
per iteration, as in the paper's code: :func:`distill_data_free` runs :func:`sample_inputs`,
:func:`teacher_losses`, :func:`student_loss`, :func:`generator_step` and
:func:`student_step` in turn. The generator mirrors DAFL's (a linear layer, two
upsample-and-convolve blocks with batch norm, tanh and a final batch norm without
affine parameters), in 1-D over time; its output is scaled to the mean and standard
deviation of each dimension of the teacher's embedding table, so that generated vectors
live where real word vectors do.
"""

from __future__ import annotations

import copy
import time
import warnings
from dataclasses import dataclass, field

import torch
from torch import nn

from ..checks import integer, non_negative_number, positive_number
from ..masking import keep_masks
from ..models import RNNClassifier
from ..seeding import keeps_global_rng
from ..settings import show_progress
from ..train import evaluate, nonempty_batches
from .soft_masks import check_teacher, frozen_copy

__all__ = [
    "DAFLConfig",
    "DAFLResult",
    "SOURCES",
    "SequenceGenerator",
    "check_pair",
    "dafl_losses",
    "distill_data_free",
    "distillation_loss",
    "embedded_forward",
    "embedding_stats",
    "generator_step",
    "nearest_words",
    "sample_inputs",
    "student_loss",
    "student_step",
    "teacher_losses",
]


def embedded_forward(
    model: RNNClassifier, embedded: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and pooled features of ``model`` for embedding sequences ``(batch, time, E)``.

    Every sequence is read in full (no padding): the same computation as ``model(tokens,
    lengths)`` with ``embedded = model.embedding(tokens)`` and full lengths.
    """
    check_teacher(model, "model")
    dim = model.embedding.embedding_dim
    if not isinstance(embedded, torch.Tensor) or embedded.dim() != 3 or embedded.shape[2] != dim:
        shape = tuple(embedded.shape) if isinstance(embedded, torch.Tensor) else embedded
        raise ValueError(f"embedded must have shape (batch, time, {dim}), got {shape}")
    if embedded.shape[0] == 0 or embedded.shape[1] == 0:
        raise ValueError(f"embedded must have batch and time > 0, got {tuple(embedded.shape)}")
    batch, steps, _ = embedded.shape
    # cuDNN computes RNN input gradients only in training mode; the plain kernel always does.
    with torch.backends.cudnn.flags(enabled=False):
        out, _ = model.rnn(model.dropout(embedded))
    mask = torch.ones(batch, steps, dtype=torch.bool, device=embedded.device)
    lengths = torch.full((batch,), steps, dtype=torch.long, device=embedded.device)
    features = model.pool(out, mask, lengths)
    return model.classifier(model.dropout(features)), features


def dafl_losses(
    logits: torch.Tensor, features: torch.Tensor, *, alpha: float = 0.1, beta: float = 5.0
) -> dict[str, torch.Tensor]:
    """DAFL's generator losses from the teacher's logits and pooled features of a batch.

    Returns ``{"one_hot", "activation", "entropy", "total"}`` with ``total = one_hot +
    alpha·activation + beta·entropy`` (the formulas in the module docstring):
    ``activation = -mean |features|`` over examples and features, ``entropy = Σ_c p̄_c
    log10 p̄_c`` for the mean ``p̄`` of the softmax over the batch.
    """
    if logits.dim() != 2 or features.dim() != 2 or logits.shape[0] != features.shape[0]:
        raise ValueError(
            "logits and features must be (batch, C) and (batch, F) with the same batch, got "
            f"{tuple(logits.shape)} and {tuple(features.shape)}"
        )
    one_hot = nn.functional.cross_entropy(logits, logits.argmax(dim=1))
    activation = -features.abs().mean()  # a mean over examples and features
    mean_p = torch.softmax(logits, dim=1).mean(dim=0)
    entropy = (mean_p * torch.log10(mean_p.clamp_min(1e-12))).sum()  # -H(mean p), base 10
    total = one_hot + alpha * activation + beta * entropy
    return {"one_hot": one_hot, "activation": activation, "entropy": entropy, "total": total}


def embedding_stats(model: RNNClassifier) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation of each embedding dimension over the real words."""
    weight = model.embedding.weight.detach()
    rows = torch.ones(weight.shape[0], dtype=torch.bool, device=weight.device)
    if model.embedding.padding_idx is not None:
        rows[model.embedding.padding_idx] = False
    real = weight[rows]
    return real.mean(dim=0), real.std(dim=0).clamp_min(1e-6)


class SequenceGenerator(nn.Module):
    """Noise ``(batch, noise_dim)`` -> embedding sequences ``(batch, seq_len, embed_dim)``.

    DAFL's generator in 1-D: linear to ``seq_len/4`` steps of ``channels``, batch norm,
    two blocks of (upsample x2, conv, batch norm, LeakyReLU), a last conv, tanh and batch
    norm without affine parameters; then ``mean + std·x`` per dimension (the teacher's
    embedding statistics, :func:`embedding_stats`).
    """

    def __init__(
        self,
        noise_dim: int,
        seq_len: int,
        mean: torch.Tensor,
        std: torch.Tensor,
        *,
        channels: int = 128,
    ):
        super().__init__()
        for name, value in (("noise_dim", noise_dim), ("seq_len", seq_len), ("channels", channels)):
            integer(name, value, minimum=1)
        if seq_len % 4:
            raise ValueError(f"seq_len must be a multiple of 4 (two upsamplings), got {seq_len}")
        if mean.dim() != 1 or std.shape != mean.shape:
            raise ValueError(
                f"mean and std must be 1-D of the same length, got {tuple(mean.shape)}, "
                f"{tuple(std.shape)}"
            )
        embed_dim = mean.shape[0]
        self.noise_dim, self.seq_len, self.channels = noise_dim, seq_len, channels
        self.register_buffer("mean", mean.detach().clone())
        self.register_buffer("std", std.detach().clone())
        self.project = nn.Linear(noise_dim, channels * seq_len // 4)
        self.body = nn.Sequential(
            nn.BatchNorm1d(channels),
            nn.Upsample(scale_factor=2),
            nn.Conv1d(channels, channels, 3, padding=1),
            nn.BatchNorm1d(channels),
            nn.LeakyReLU(0.2),
            nn.Upsample(scale_factor=2),
            nn.Conv1d(channels, channels // 2, 3, padding=1),
            nn.BatchNorm1d(channels // 2),
            nn.LeakyReLU(0.2),
            nn.Conv1d(channels // 2, embed_dim, 3, padding=1),
            nn.Tanh(),
            nn.BatchNorm1d(embed_dim, affine=False),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.dim() != 2 or z.shape[1] != self.noise_dim:
            raise ValueError(f"z must have shape (batch, {self.noise_dim}), got {tuple(z.shape)}")
        h = self.project(z).view(z.shape[0], self.channels, self.seq_len // 4)
        x = self.body(h).transpose(1, 2)  # (batch, seq_len, embed_dim)
        return self.mean + self.std * x


SOURCES = ("generator", "random_words")


@dataclass
class DAFLConfig:
    """Hyper-parameters of data-free distillation (paper's alpha and beta)."""

    steps: int = 600
    batch_size: int = 64
    seq_len: int = 100  # generated sequence length (the teacher reads any length)
    noise_dim: int = 64
    channels: int = 128
    # alpha 0.1 and beta 5 as in the paper's reference code, for this scaling (L_a a mean
    # over examples and features, L_ie in log base 10)
    alpha: float = 0.1  # weight of the activation loss L_a
    beta: float = 5.0  # weight of the information-entropy loss L_ie
    g_lr: float = 1e-3  # generator (Adam)
    lr: float = 3e-4  # student (Adam)
    temperature: float = 1.0  # distillation temperature
    clip: float | None = 1.0  # gradient-norm clipping for the student
    eval_every: int = 50  # validation pass every n steps (monitoring only)
    seed: int = 0
    # "generator": DAFL. "random_words": the control without a generator, sequences of
    # words drawn uniformly from the vocabulary, looked up in the teacher's embedding.
    source: str = "generator"

    def check(self) -> None:
        for name in ("steps", "seq_len", "noise_dim", "channels", "eval_every"):
            integer(name, getattr(self, name), minimum=1)
        integer("batch_size", self.batch_size, minimum=2, allowed="an int >= 2 (batch norm)")
        for name in ("alpha", "beta"):
            non_negative_number(name, getattr(self, name))
        for name in ("g_lr", "lr", "temperature"):
            positive_number(name, getattr(self, name))
        if self.source not in SOURCES:
            raise ValueError(f"unknown source={self.source!r}; choose from {SOURCES}")
        if self.clip is not None:
            positive_number("clip", self.clip)


@dataclass
class DAFLResult:
    """The distilled student (eval mode), the generator and the record of training.

    ``generator`` is None for ``source="random_words"``.

    ``history``: per-step ``one_hot``, ``activation``, ``entropy``, ``generator`` (L_G),
    ``kd`` and ``class_share`` (the teacher's predicted classes over the batch); with a
    validation loader, ``valid_step`` and ``valid_accuracy`` (monitoring only: nothing is
    selected on real data). ``diverged``: training stopped on a NaN or infinite loss.
    """

    student: RNNClassifier
    generator: SequenceGenerator | None
    history: dict = field(default_factory=dict)
    seconds: float = 0.0
    diverged: bool = False


def check_pair(teacher: RNNClassifier, student: RNNClassifier) -> None:
    """Raise a clear error unless the student can learn from the teacher's inputs/outputs."""
    check_teacher(teacher, "teacher")
    check_teacher(student, "student")
    t, s = teacher.config(), student.config()
    for key in ("embed_dim", "num_classes", "vocab_size", "padding_idx"):
        if t[key] != s[key]:
            raise ValueError(
                f"teacher/student architecture mismatch: {key} is {t[key]} in the teacher "
                f"and {s[key]} in the student; the student must read the same embeddings "
                "and predict the same classes"
            )
    if next(teacher.parameters()).device != next(student.parameters()).device:
        raise ValueError("teacher and student must be on the same device")


def distillation_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Knowledge distillation: ``KL(softmax(t/T) || softmax(s/T))·T²``, averaged over the batch.

    ``T`` is the temperature; the factor ``T²`` keeps the gradients' scale when ``T``
    changes (Hinton et al. 2015).
    """
    return (
        nn.functional.kl_div(
            torch.log_softmax(student_logits / temperature, dim=1),
            torch.log_softmax(teacher_logits / temperature, dim=1),
            log_target=True,
            reduction="batchmean",
        )
        * temperature**2
    )


def sample_inputs(
    teacher: RNNClassifier,
    generator: SequenceGenerator | None,
    words: torch.Tensor,
    config: DAFLConfig,
    noise: torch.Generator,
) -> torch.Tensor:
    """Step 1 of a DAFL iteration: a batch of embedding sequences ``(batch, seq_len, E)``.

    With a ``generator`` (DAFL), its samples from Gaussian noise; without one (the
    control, ``source="random_words"``), ``config.seq_len`` words drawn uniformly from
    ``words`` and looked up in the teacher's embedding. Random numbers come from the
    ``torch.Generator`` ``noise`` only.
    """
    device = words.device
    if generator is not None:
        z = torch.randn(config.batch_size, config.noise_dim, generator=noise, device=device)
        return generator(z)
    pick = torch.randint(
        len(words), (config.batch_size, config.seq_len), generator=noise, device=device
    )
    return teacher.embedding(words[pick])


def teacher_losses(
    teacher: RNNClassifier, inputs: torch.Tensor, config: DAFLConfig, *, learn: bool
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Step 2: the frozen teacher reads the batch; DAFL's generator losses on its answer.

    Returns :func:`dafl_losses` (``total`` is L_G) and the teacher's logits. With
    ``learn=True`` the losses keep their graph back to the generator that made
    ``inputs``; otherwise nothing is recorded for gradients.
    """
    with torch.set_grad_enabled(learn):
        t_logits, t_features = embedded_forward(teacher, inputs)
        losses = dafl_losses(t_logits, t_features, alpha=config.alpha, beta=config.beta)
    return losses, t_logits


def student_loss(
    student: RNNClassifier, inputs: torch.Tensor, t_logits: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Step 3: the student reads the same batch and is scored against the teacher.

    Inputs and teacher logits are detached: the student's loss moves neither the
    generator nor the teacher. Returns :func:`distillation_loss`.
    """
    s_logits, _ = embedded_forward(student, inputs.detach())
    return distillation_loss(s_logits, t_logits.detach(), temperature)


def generator_step(optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    """Step 4: one Adam step of the generator on its loss L_G."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def student_step(
    student: RNNClassifier, optimizer: torch.optim.Optimizer, kd: torch.Tensor, clip: float | None
) -> None:
    """Step 5: one Adam step of the student on its distillation loss ``kd``.

    The gradient norm is clipped to ``clip`` first (None: no clipping); the optimizer
    keeps chapter 2's masks, if any.
    """
    optimizer.zero_grad(set_to_none=True)
    kd.backward()
    if clip is not None:
        nn.utils.clip_grad_norm_(student.parameters(), clip)
    optimizer.step()


_LOSSES = ("one_hot", "activation", "entropy", "generator", "kd")


@keeps_global_rng
def distill_data_free(
    teacher: RNNClassifier,
    student: RNNClassifier,
    config: DAFLConfig | None = None,
    *,
    valid_loader=None,
    progress: bool | None = None,
) -> DAFLResult:
    """Distill ``teacher`` into a copy of ``student`` with generated embedding sequences only.

    No training data is read: with ``config.source="generator"`` (DAFL) a generator learns
    DAFL's losses against the teacher; with ``"random_words"`` (the control) the inputs are
    uniformly drawn words. Each iteration runs five steps: :func:`sample_inputs`,
    :func:`teacher_losses`, :func:`student_loss`, :func:`generator_step` (DAFL only) and
    :func:`student_step`. ``valid_loader`` (optional) is evaluated every
    ``config.eval_every`` steps to draw the curve; it selects nothing. If a loss becomes
    NaN or infinite, training stops before that step's update with a RuntimeWarning: the
    result keeps the last finite state (``diverged=True``). The teacher and ``student``
    are not changed; the result's student is a trained copy, in eval mode.
    """
    from tqdm.auto import tqdm

    config = config or DAFLConfig()
    if not isinstance(config, DAFLConfig):
        raise TypeError(f"config must be a DAFLConfig, got {type(config).__name__}")
    config.check()
    check_pair(teacher, student)
    if valid_loader is not None:
        valid_loader = nonempty_batches(valid_loader, "valid_loader")
    device = next(teacher.parameters()).device
    torch.manual_seed(config.seed)
    noise = torch.Generator(device=device).manual_seed(config.seed)
    teacher = frozen_copy(teacher)
    student = copy.deepcopy(student).train()
    generator, learn = None, config.source == "generator"
    if learn:
        mean, std = embedding_stats(teacher)
        generator = SequenceGenerator(
            config.noise_dim, config.seq_len, mean, std, channels=config.channels
        ).to(device)
        opt_g = torch.optim.Adam(generator.parameters(), lr=config.g_lr)
    opt_s = torch.optim.Adam(student.parameters(), lr=config.lr)
    keep_masks(opt_s, student)  # a student pruned in chapter 2 stays pruned
    words = torch.arange(teacher.embedding.num_embeddings, device=device)
    words = words[words != teacher.embedding.padding_idx]
    history: dict = {name: [] for name in _LOSSES} | {
        "class_share": [],
        "valid_step": [],
        "valid_accuracy": [],
    }
    show = show_progress() if progress is None else progress
    start, diverged = time.perf_counter(), False
    for step in tqdm(range(1, config.steps + 1), desc="DAFL", disable=not show, leave=False):
        inputs = sample_inputs(teacher, generator, words, config, noise)  # 1.
        losses, t_logits = teacher_losses(teacher, inputs, config, learn=learn)  # 2.
        kd = student_loss(student, inputs, t_logits, config.temperature)  # 3.
        bad = [n for n, v in (("generator", losses["total"]), ("kd", kd)) if not torch.isfinite(v)]
        if bad:
            diverged = True
            warnings.warn(_diverged(step, bad[0]), RuntimeWarning, stacklevel=2)
            break
        if learn:
            generator_step(opt_g, losses["total"])  # 4.
        student_step(student, opt_s, kd, config.clip)  # 5.
        _record_step(history, losses, kd, t_logits, config.batch_size)
        if valid_loader is not None and (step % config.eval_every == 0 or step == config.steps):
            history["valid_step"].append(step)
            history["valid_accuracy"].append(evaluate(student, valid_loader)["accuracy"])
            student.train()
    student.eval()
    if generator is not None:
        generator.eval()
    seconds = time.perf_counter() - start
    return DAFLResult(student, generator, history, seconds, diverged)


def _diverged(step: int, what: str) -> str:
    return (
        f"DAFL diverged at step {step}: the {what} loss is not finite. Stopped before this "
        "step's update; the result keeps the last finite state. Lower g_lr or lr."
    )


def _record_step(history: dict, losses: dict, kd: torch.Tensor, t_logits, batch_size) -> None:
    values = (losses["one_hot"], losses["activation"], losses["entropy"], losses["total"], kd)
    for name, value in zip(_LOSSES, values, strict=True):
        history[name].append(float(value.detach()))
    counts = torch.bincount(t_logits.argmax(dim=1), minlength=t_logits.shape[1])
    history["class_share"].append((counts.float() / batch_size).tolist())


def nearest_words(
    generator: SequenceGenerator, embedding: nn.Embedding, vocab, *, num: int = 3, seed: int = 0
) -> list[list[str]]:
    """For ``num`` generated sequences, the nearest vocabulary word (cosine) at every step.

    A way to look at what the generator makes: not text, but points of embedding space,
    read back as their nearest real words.
    """
    num = integer("num", num, minimum=2, allowed="an int >= 2 (batch norm)")
    device = embedding.weight.device
    z = torch.randn(
        num,
        generator.noise_dim,
        generator=torch.Generator(device=device).manual_seed(seed),
        device=device,
    )
    with torch.no_grad():
        fake = nn.functional.normalize(generator.eval()(z), dim=2)
        table = nn.functional.normalize(embedding.weight, dim=1)
        ids = (fake @ table.T).argmax(dim=2)
    return [vocab.lookup_tokens(row.tolist()) for row in ids]
