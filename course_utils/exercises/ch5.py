"""Exercise checks for chapter 5 (GAN-guided pruning) and its appendix 05b (data-free)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ..models import RNNClassifier
from ..pruning.data_free import dafl_losses, embedded_forward
from ..pruning.gan import discriminator_loss, mask_prox_step, masked_parameters
from ..seeding import keeps_global_rng
from .common import CheckResult, assert_close, run_checks

__all__ = [
    "check_discriminator_loss",
    "check_embedded_logits",
    "check_information_entropy_loss",
    "check_mask_outgoing",
    "check_mask_prox_step",
    "reference_mask_outgoing",
]


def reference_mask_outgoing(
    weight_hh: torch.Tensor, classifier_weight: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The course's answer to ``mask_outgoing``: ``gan.masked_parameters`` on a one-layer,
    one-direction LSTM classifier that holds these two tensors.

    ``weight_hh`` (4H, H), ``classifier_weight`` (C, H), ``mask`` (H,); returns new tensors
    of the same shapes (no gradient flows back to the inputs). The global random state is
    left as it was.
    """
    for argument, value in (("weight_hh", weight_hh), ("classifier_weight", classifier_weight)):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{argument} must be a 2-D tensor, got {type(value).__name__}")
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"mask must be a 1-D tensor, got {type(mask).__name__}")
    if weight_hh.dim() != 2 or weight_hh.shape[0] != 4 * weight_hh.shape[1]:
        raise ValueError(f"weight_hh must be an LSTM's (4H, H), got {tuple(weight_hh.shape)}")
    hidden = weight_hh.shape[1]
    if classifier_weight.dim() != 2 or classifier_weight.shape[1] != hidden:
        raise ValueError(
            f"classifier_weight must be (classes, {hidden}), got {tuple(classifier_weight.shape)}"
        )
    if tuple(mask.shape) != (hidden,):
        raise ValueError(f"mask must have shape ({hidden},), got {tuple(mask.shape)}")
    with torch.random.fork_rng(devices=[]):
        model = RNNClassifier(2, classifier_weight.shape[0], embed_dim=1, hidden_size=hidden)
    with torch.no_grad():
        model.rnn.weight_hh_l0.copy_(weight_hh)
        model.classifier.weight.copy_(classifier_weight)
        scaled = masked_parameters(model, {(0, 0): mask.detach().float()})
    return scaled["rnn.weight_hh_l0"], scaled["classifier.weight"]


def check_mask_outgoing(fn: Callable) -> CheckResult:
    """``fn(weight_hh, classifier_weight, mask)`` -> ``(new weight_hh, new classifier weight)``
    for a one-layer, one-direction LSTM classifier: each tensor with unit k's outgoing
    column multiplied by ``mask[k]`` (new tensors; the inputs unchanged)."""

    def cases(fn):
        g = torch.Generator().manual_seed(5)
        for hidden, classes in ((3, 2), (4, 5), (6, 3)):
            model = RNNClassifier(10, classes, embed_dim=2, hidden_size=hidden)
            mask = torch.rand(hidden, generator=g) * 1.5
            mask[0] = 0.0
            want = masked_parameters(model, {(0, 0): mask})
            w_hh = model.rnn.weight_hh_l0.detach().clone()
            w_out = model.classifier.weight.detach().clone()
            got = fn(w_hh, w_out, mask.clone())
            assert isinstance(got, tuple | list) and len(got) == 2, (
                "return a pair (new weight_hh, new classifier weight)"
            )
            what = f"H={hidden}, C={classes}"
            assert_close(got[0], want["rnn.weight_hh_l0"].detach(), f"{what}: weight_hh", 1e-6)
            assert_close(got[1], want["classifier.weight"].detach(), f"{what}: classifier", 1e-6)
            assert torch.equal(w_hh, model.rnn.weight_hh_l0.detach()), (
                "the input weight_hh was changed in place: return new tensors"
            )

    return run_checks("the columns a unit's mask scales", fn, cases)


def check_mask_prox_step(fn: Callable) -> CheckResult:
    """``fn(y, grad, lr, lam)`` -> ``max(0, soft_threshold(y - lr·grad, lr·lam))``."""

    def cases(fn):
        y = torch.tensor([1.0, 0.5, 0.02, 0.8, 0.0, 1.2])
        grad = torch.tensor([0.2, -1.0, 0.3, 0.0, -0.05, 5.0])
        for lr, lam in ((0.1, 0.4), (0.5, 0.0), (0.05, 2.0)):
            got = fn(y.clone(), grad.clone(), lr, lam)
            want = mask_prox_step(y, grad, lr, lam)
            assert_close(got, want, f"lr={lr}, lam={lam}", 1e-6)
            assert (got >= 0).all(), f"lr={lr}, lam={lam}: a mask came out negative"
            assert int((got == 0).sum()) == int((want == 0).sum()), (
                f"lr={lr}, lam={lam}: expected {int((want == 0).sum())} exact zeros"
            )

    return run_checks("FISTA's proximal step for the masks", fn, cases)


def check_discriminator_loss(fn: Callable) -> CheckResult:
    """``fn(d_real, d_fake, smoothing)`` -> ``BCE(D(teacher), 1 - smoothing) + BCE(D(student), 0)``
    on D's logits (batch,), each BCE a mean over the batch."""

    def cases(fn):
        g = torch.Generator().manual_seed(3)
        d_real, d_fake = 2 * torch.randn(8, generator=g), 2 * torch.randn(8, generator=g)
        for smoothing in (0.0, 0.1, 0.2):
            got = fn(d_real.clone(), d_fake.clone(), smoothing)
            want = discriminator_loss(d_real, d_fake, smoothing)
            assert isinstance(got, torch.Tensor) and got.dim() == 0, "return a scalar tensor"
            assert torch.allclose(got, want, atol=1e-5), (
                f"smoothing={smoothing}: got {float(got):.4f}, expected {float(want):.4f}"
            )

    return run_checks("discriminator loss with label smoothing", fn, cases)


def check_information_entropy_loss(fn: Callable) -> CheckResult:
    """``fn(logits)`` -> DAFL's ``L_ie = Σ_c p̄_c log10 p̄_c``, a scalar tensor, where ``p̄``
    is the mean over the batch of ``softmax(logits)``: minus the entropy of ``p̄`` in log
    base 10, as in the paper's reference code."""

    def cases(fn):
        g = torch.Generator().manual_seed(7)
        batches = [3 * torch.randn(8, 5, generator=g), 10 * torch.eye(4), torch.zeros(3, 2)]
        one_class = torch.zeros(4, 3)
        one_class[:, 1] = 40.0
        for logits in (*batches, one_class):
            got = fn(logits.clone())
            want = dafl_losses(logits, torch.zeros(len(logits), 1))["entropy"]
            assert isinstance(got, torch.Tensor) and got.dim() == 0, "return a scalar tensor"
            assert torch.isfinite(got), f"logits of shape {tuple(logits.shape)}: got {got}"
            natural_log = " (the natural-log value: use log base 10)"
            hint = natural_log if torch.allclose(got, want * math.log(10), atol=1e-5) else ""
            assert torch.allclose(got, want, atol=1e-5), (
                f"logits of shape {tuple(logits.shape)}: got {float(got):.4f}, "
                f"expected {float(want):.4f}{hint}"
            )

    return run_checks("information-entropy loss", fn, cases)


@keeps_global_rng
def check_embedded_logits(fn: Callable) -> CheckResult:
    """``fn(model, embedded)`` -> the logits of an RNNClassifier (eval mode) for embedding
    sequences ``(batch, time, embed_dim)``, read in full: what ``model(tokens, lengths)``
    gives when ``embedded = model.embedding(tokens)`` and every length is ``time``."""

    def cases(fn):
        for cell, pooling, layers in (("lstm", "max", 1), ("gru", "mean", 2), ("lstm", "last", 1)):
            torch.manual_seed(11)
            model = RNNClassifier(
                20, 3, embed_dim=4, hidden_size=5, cell=cell, pooling=pooling, num_layers=layers
            ).eval()
            embedded = torch.randn(2, 6, 4)
            with torch.no_grad():
                got = fn(model, embedded.clone())
                want = embedded_forward(model, embedded)[0]
            assert_close(got, want, f"{cell}, {pooling} pooling, {layers} layer(s)", 1e-5)

    return run_checks("logits from embedding sequences", fn, cases)
