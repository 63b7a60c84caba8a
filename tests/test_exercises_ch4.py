"""Chapter 4's exercise checks and the reference a demo cell falls back on."""

import pytest
import torch

from course_utils import exercises


def group_shrink(weight, threshold):
    norms = weight.norm(dim=1, keepdim=True)
    scale = torch.where(
        norms > threshold, 1 - threshold / norms.clamp_min(1e-12), torch.zeros_like(norms)
    )
    return weight * scale


def test_reference_group_shrink_passes_the_check_the_learner_gets():
    assert exercises.check_group_shrink(exercises.reference_group_shrink)


def test_reference_group_shrink_equals_the_notebook_answer_and_keeps_its_input():
    g = torch.Generator().manual_seed(0)
    weight = torch.randn(6, 3, generator=g) * torch.tensor([[0.1], [1], [0], [2], [0.3], [5]])
    before = weight.clone()
    for threshold in (0.0, 0.5, 2.0):
        got = exercises.reference_group_shrink(weight, threshold)
        assert torch.allclose(got, group_shrink(weight, threshold), atol=1e-6)
        assert torch.equal(got[2], torch.zeros(3)), "a zero row stays zero"
    assert torch.equal(weight, before)


def test_wrong_group_shrinks_fail():
    def per_entry(weight, threshold):
        return torch.sign(weight) * (weight.abs() - threshold).clamp_min(0)

    def columns(weight, threshold):
        return group_shrink(weight.T, threshold).T

    for wrong in (per_entry, columns):
        assert not exercises.check_group_shrink(wrong), wrong.__name__


def test_reference_group_shrink_refuses_a_weight_that_is_not_2d():
    with pytest.raises(ValueError, match=r"weight must be a 2-D tensor \(rows, cols\), got \(4,\)"):
        exercises.reference_group_shrink(torch.ones(4), 0.1)


def test_reference_group_shrink_refuses_a_weight_that_is_not_a_tensor():
    with pytest.raises(TypeError, match=r"weight must be a 2-D tensor \(rows, cols\), got list"):
        exercises.reference_group_shrink([[1.0, 2.0]], 0.1)
