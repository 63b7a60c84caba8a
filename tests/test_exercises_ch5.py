"""Chapter 5's exercise checks accept correct answers and reject wrong ones."""

import pytest
import torch

from course_utils import exercises


def mask_outgoing(weight_hh, classifier_weight, mask):
    return weight_hh * mask[None, :], classifier_weight * mask[None, :]


def prox(y, grad, lr, lam):
    v = y - lr * grad
    return torch.clamp(torch.sign(v) * torch.clamp(v.abs() - lr * lam, min=0), min=0)


def d_loss(d_real, d_fake, smoothing):
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    return bce(d_real, torch.full_like(d_real, 1 - smoothing)) + bce(
        d_fake, torch.zeros_like(d_fake)
    )


def test_reference_answers_pass():
    assert exercises.check_mask_outgoing(mask_outgoing)
    assert exercises.check_mask_prox_step(prox)
    assert exercises.check_discriminator_loss(d_loss)


def test_wrong_outgoing_columns_fail():
    def rows_not_columns(weight_hh, classifier_weight, mask):
        return weight_hh * mask.repeat(4)[:, None], classifier_weight

    def in_place(weight_hh, classifier_weight, mask):
        weight_hh.mul_(mask[None, :])
        return weight_hh, classifier_weight * mask[None, :]

    def forgets_the_classifier(weight_hh, classifier_weight, mask):
        return weight_hh * mask[None, :], classifier_weight

    for wrong in (rows_not_columns, in_place, forgets_the_classifier):
        assert not exercises.check_mask_outgoing(wrong), wrong.__name__


def test_wrong_prox_steps_fail():
    def no_clamp(y, grad, lr, lam):
        v = y - lr * grad
        return torch.sign(v) * torch.clamp(v.abs() - lr * lam, min=0)

    def hard_threshold(y, grad, lr, lam):
        v = y - lr * grad
        return torch.where(v > lr * lam, v, torch.zeros_like(v))

    def threshold_ignores_lr(y, grad, lr, lam):
        return prox(y, grad, lr, lam / lr)

    for wrong in (no_clamp, hard_threshold, threshold_ignores_lr):
        assert not exercises.check_mask_prox_step(wrong), wrong.__name__


def test_wrong_discriminator_losses_fail():
    bce = torch.nn.functional.binary_cross_entropy_with_logits

    def no_smoothing(d_real, d_fake, smoothing):
        return bce(d_real, torch.ones_like(d_real)) + bce(d_fake, torch.zeros_like(d_fake))

    def two_sided(d_real, d_fake, smoothing):
        return bce(d_real, torch.full_like(d_real, 1 - smoothing)) + bce(
            d_fake, torch.full_like(d_fake, smoothing)
        )

    def swapped(d_real, d_fake, smoothing):
        return d_loss(d_fake, d_real, smoothing)

    for wrong in (no_smoothing, two_sided, swapped):
        assert not exercises.check_discriminator_loss(wrong), wrong.__name__

    def stub(d_real, d_fake, smoothing):
        raise NotImplementedError

    assert "not implemented yet" in exercises.check_discriminator_loss(stub).message


def test_reference_mask_outgoing_passes_the_check_the_learner_gets():
    assert exercises.check_mask_outgoing(exercises.reference_mask_outgoing)


def test_reference_mask_outgoing_equals_the_notebook_answer_and_draws_no_random_number():
    g = torch.Generator().manual_seed(1)
    w_hh, w_out = torch.randn(20, 5, generator=g), torch.randn(3, 5, generator=g)
    mask = torch.tensor([1.0, 0.0, 0.5, 1.2, 0.8])
    copies = w_hh.clone(), w_out.clone()
    torch.manual_seed(0)
    want_random = torch.rand(3)
    torch.manual_seed(0)
    got = exercises.reference_mask_outgoing(w_hh, w_out, mask)
    assert torch.equal(torch.rand(3), want_random)
    for a, b in zip(got, mask_outgoing(w_hh, w_out, mask), strict=True):
        assert torch.allclose(a, b)
    assert torch.equal(w_hh, copies[0]) and torch.equal(w_out, copies[1])


@pytest.mark.parametrize(
    ("shapes", "message"),
    [
        (((12, 4), (3, 4), (4,)), r"weight_hh must be an LSTM's \(4H, H\), got \(12, 4\)"),
        (((16, 4), (3, 5), (4,)), r"classifier_weight must be \(classes, 4\), got \(3, 5\)"),
        (((16, 4), (3, 4), (5,)), r"mask must have shape \(4,\), got \(5,\)"),
    ],
    ids=["gru-shaped-weight_hh", "classifier", "mask"],
)
def test_reference_mask_outgoing_refuses_shapes_that_do_not_fit(shapes, message):
    with pytest.raises(ValueError, match=message):
        exercises.reference_mask_outgoing(*(torch.ones(s) for s in shapes))


def test_reference_mask_outgoing_refuses_a_mask_that_is_not_a_tensor():
    with pytest.raises(TypeError, match=r"mask must be a 1-D tensor, got list"):
        exercises.reference_mask_outgoing(torch.ones(16, 4), torch.ones(3, 4), [1.0] * 4)
