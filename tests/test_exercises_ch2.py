"""Chapter 2's exercise checks accept correct answers and reject wrong ones."""

import torch

from course_utils import exercises
from course_utils.pruning import agp_sparsity


def magnitude_mask(weight, sparsity):
    k = round(sparsity * weight.numel())
    mask = torch.ones(weight.numel(), dtype=torch.bool)
    mask[torch.argsort(weight.abs().flatten())[:k]] = False
    return mask.reshape(weight.shape)


agp = exercises.reference_agp  # a right answer: agp_sparsity with positional arguments


def global_sparsities(weights, sparsity):
    flat = torch.cat([w.abs().flatten() for w in weights.values()])
    k = round(sparsity * flat.numel())
    threshold = flat.sort().values[k - 1] if k else -1.0
    return {name: float((w.abs() <= threshold).float().mean()) for name, w in weights.items()}


def test_reference_answers_pass():
    assert exercises.check_magnitude_mask(magnitude_mask)
    assert exercises.check_agp_sparsity(agp)
    assert exercises.check_global_sparsities(global_sparsities)


def test_wrong_magnitude_masks_fail():
    keeps_smallest = lambda w, s: ~magnitude_mask(w, 1 - s) if s else magnitude_mask(w, s)
    assert not exercises.check_magnitude_mask(keeps_smallest)
    signed = lambda w, s: magnitude_mask(w.clamp(min=0) + 1e-9 * w, s)  # ignores |w|
    assert not exercises.check_magnitude_mask(signed)
    threshold = lambda w, s: w.abs() > w.abs().flatten().quantile(s)  # not an exact count
    result = exercises.check_magnitude_mask(threshold)
    assert not result
    assert not exercises.check_magnitude_mask(lambda w, s: 1 / 0)


def test_wrong_agp_schedules_fail():
    linear = lambda t, si, sf, t0, t1, dt: agp_sparsity(
        t, initial=si, final=sf, start_step=t0, end_step=t1, frequency=dt, exponent=1
    )
    assert not exercises.check_agp_sparsity(linear)
    not_held = lambda t, si, sf, t0, t1, dt: agp_sparsity(
        t, initial=si, final=sf, start_step=t0, end_step=t1, frequency=1
    )
    assert not exercises.check_agp_sparsity(not_held)
    result = exercises.check_agp_sparsity(lambda *a: "0.5")
    assert not result and "expected a number" in result.message


def test_wrong_global_sparsities_fail():
    layerwise = lambda weights, s: {k: s for k in weights}
    assert not exercises.check_global_sparsities(layerwise)
    signed = lambda weights, s: global_sparsities(
        {k: w.clamp(min=0) for k, w in weights.items()}, s
    )
    assert not exercises.check_global_sparsities(signed)
