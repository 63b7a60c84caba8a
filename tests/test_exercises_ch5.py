"""Chapter 5's exercise checks accept correct answers and reject wrong ones."""

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
