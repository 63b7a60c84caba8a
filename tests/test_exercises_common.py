"""What every chapter's checks share: ``yours_or_reference``, the choice a demo cell makes
between the learner's function and the course's reference."""

import pytest
import torch

from course_utils import exercises
from course_utils.pruning import gan


def prox(y, grad, lr, lam):
    v = y - lr * grad
    return torch.clamp(torch.sign(v) * torch.clamp(v.abs() - lr * lam, min=0), min=0)


def mask_prox_step(y, grad, lr, lam):
    raise NotImplementedError


def test_a_function_that_passes_its_check_is_used_and_nothing_is_said():
    choice = exercises.yours_or_reference(prox, exercises.check_mask_prox_step, gan.mask_prox_step)
    assert isinstance(choice, exercises.Choice)
    assert choice.fn is prox and choice.note == ""


def test_an_unfinished_function_gets_the_reference_and_one_line_saying_so():
    fn, note = exercises.yours_or_reference(
        mask_prox_step, exercises.check_mask_prox_step, gan.mask_prox_step
    )
    assert fn is gan.mask_prox_step
    assert note == (
        "[USING REFERENCE] your mask_prox_step does not pass its check yet: this cell uses "
        "course_utils.pruning.soft_masks.mask_prox_step; solve the exercise above to run it "
        "with yours"
    )
    assert "\n" not in note


@pytest.mark.parametrize(
    "wrong",
    [
        lambda y, grad, lr, lam: y - lr * grad,  # a wrong answer
        lambda y, grad, lr, lam: None,  # forgot `return`
        lambda y, grad, lr, lam: 1 / 0,  # crashes
    ],
    ids=["wrong", "returns-none", "crashes"],
)
def test_a_function_that_fails_its_check_in_any_way_gets_the_reference(wrong):
    fn, note = exercises.yours_or_reference(wrong, exercises.check_mask_prox_step, prox)
    assert fn is prox and note.startswith("[USING REFERENCE] your <lambda> ")


def test_the_check_reruns_on_the_function_as_it_is_now():
    calls = []

    def check(fn):
        calls.append(fn)
        return exercises.check_mask_prox_step(fn)

    exercises.yours_or_reference(prox, check, gan.mask_prox_step)
    assert calls == [prox]


def test_the_choice_leaves_the_global_random_state_alone():
    def mask_outgoing(weight_hh, classifier_weight, mask):
        return weight_hh * mask[None, :], classifier_weight * mask[None, :]

    torch.manual_seed(3)
    want = torch.rand(4)
    torch.manual_seed(3)
    for fn in (mask_outgoing, lambda *args: None):  # the check builds models: it draws
        exercises.yours_or_reference(
            fn, exercises.check_mask_outgoing, exercises.reference_mask_outgoing
        )
    assert torch.equal(torch.rand(4), want)


def test_check_must_be_an_exercise_check():
    with pytest.raises(TypeError, match=r"check must be an exercise check .* got str"):
        exercises.yours_or_reference(prox, "check_mask_prox_step", gan.mask_prox_step)


def test_check_must_return_a_check_result():
    with pytest.raises(TypeError, match=r"check must return a CheckResult .* got bool"):
        exercises.yours_or_reference(prox, lambda fn: True, gan.mask_prox_step)


def test_reference_must_be_callable():
    with pytest.raises(TypeError, match=r"reference must be the course's function .* got NoneType"):
        exercises.yours_or_reference(prox, exercises.check_mask_prox_step, None)


def test_the_package_exports_every_chapters_checks_and_nothing_it_lacks():
    from course_utils.exercises import ch1, ch2, ch3, ch4, ch5, ch6, common

    chapters = {name for module in (ch1, ch2, ch3, ch4, ch5, ch6) for name in module.__all__}
    shared = {"CheckResult", "Choice", "assert_passes", "yours_or_reference"}
    assert set(exercises.__all__) == chapters | shared and shared <= set(common.__all__)
    assert all(getattr(exercises, name) is not None for name in exercises.__all__)


def test_every_exercises_name_a_notebook_uses_is_exported():
    import re

    from helpers import NOTEBOOKS

    used = set()
    for path in NOTEBOOKS:
        used |= set(re.findall(r"\bexercises\.(\w+)", path.read_text(encoding="utf-8")))
    assert used and used <= set(exercises.__all__), sorted(used - set(exercises.__all__))


def test_assert_passes_is_silent_for_a_solved_exercise_and_says_why_otherwise():
    """The hidden test of every check cell (what nbgrader's autograder scores)."""
    assert exercises.assert_passes(prox, exercises.check_mask_prox_step) is None
    with pytest.raises(AssertionError, match=r"^\[NOT YET\] .*not implemented yet"):
        exercises.assert_passes(mask_prox_step, exercises.check_mask_prox_step)
    with pytest.raises(TypeError, match="check must be an exercise check"):
        exercises.assert_passes(prox, None)


def test_assert_passes_leaves_the_global_random_state_as_it_was():
    """The visible check after it must compute what it did before the hidden test ran
    (this check seeds torch's global generator for its small models)."""
    torch.manual_seed(0)
    before = torch.random.get_rng_state()
    check, reference = exercises.check_group_shrink, exercises.reference_group_shrink
    exercises.assert_passes(reference, check)
    with pytest.raises(AssertionError):
        exercises.assert_passes(lambda weight, threshold: weight, check)
    assert torch.equal(torch.random.get_rng_state(), before)
    check(reference)
    assert not torch.equal(torch.random.get_rng_state(), before), "the check itself does"
