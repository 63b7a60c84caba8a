"""Verdicts from one run: McNemar's exact test against hand-computed values, speed margins."""

import math

import pytest
import torch

from course_utils import verdicts


@pytest.mark.parametrize(
    "wins, losses, expected",
    [
        (0, 0, 1.0),
        (3, 3, 1.0),
        (0, 6, 2 / 64),  # both tails of Binomial(6, 1/2): 2 * P(X = 0)
        (1, 9, 2 * (1 + 10) / 1024),  # McNemar's exact test, b = 1, c = 9
        (9, 1, 2 * (1 + 10) / 1024),
        (2, 5, 2 * (1 + 7 + 21) / 128),
    ],
)
def test_sign_test_matches_the_binomial_tails_by_hand(wins, losses, expected):
    assert math.isclose(verdicts.sign_test(wins, losses), expected, rel_tol=1e-12)


def test_sign_test_never_exceeds_one_and_is_symmetric():
    for wins in range(12):
        for losses in range(12):
            p = verdicts.sign_test(wins, losses)
            assert 0 < p <= 1
            assert p == verdicts.sign_test(losses, wins)


def _preds(labels, wrong):
    preds = labels.clone()
    preds[wrong] = (labels[wrong] + 1) % 5
    return preds


def test_paired_accuracy_counts_only_the_disagreements():
    labels = torch.arange(100) % 5
    a = _preds(labels, torch.arange(0, 3))  # A wrong on 0-2
    b = _preds(labels, torch.arange(0, 13))  # B wrong on 0-12: A alone right on 10
    result = verdicts.paired_accuracy(a, b, labels)
    assert (result.only_a_right, result.only_b_right) == (10, 0)
    assert result.accuracy_a == 0.97 and result.accuracy_b == 0.87
    assert result.verdict == "better"
    assert verdicts.paired_accuracy(b, a, labels).verdict == "worse"
    assert "-> A vs B: better" in result.sentence("A", "B")


def test_a_few_articles_either_way_is_no_clear_difference():
    labels = torch.arange(400) % 5
    a = _preds(labels, torch.arange(0, 20))
    b = _preds(labels, torch.arange(3, 26))  # A right on 3-... only where B is wrong
    result = verdicts.paired_accuracy(a, b, labels)
    assert result.only_a_right == 6 and result.only_b_right == 3
    assert result.verdict == "no clear difference"


def test_identical_predictions_are_no_clear_difference():
    labels = torch.arange(50) % 5
    result = verdicts.paired_accuracy(labels, labels, labels)
    assert result.p_value == 1.0 and result.verdict == "no clear difference"


@pytest.mark.parametrize(
    "ratio, expected",
    [
        (4.2, "faster"),
        (1.2, "faster"),
        (1.197, "about the same speed"),
        (1.0, "about the same speed"),
        (0.84, "about the same speed"),
        (0.8, "slower"),
    ],
)
def test_speed_verdict_has_three_outcomes_with_a_noise_margin(ratio, expected):
    assert verdicts.speed(ratio) == expected


def test_bad_inputs_name_the_argument():
    labels = torch.arange(10) % 5
    with pytest.raises(ValueError, match="preds_b"):
        verdicts.paired_accuracy(labels, labels[:5], labels)
    with pytest.raises(ValueError, match="preds_a"):
        verdicts.paired_accuracy(labels[None], labels, labels)
    with pytest.raises(ValueError, match="wins"):
        verdicts.sign_test(-1, 3)
    with pytest.raises(TypeError, match="losses"):
        verdicts.sign_test(1, 2.5)
    with pytest.raises(ValueError, match="ratio"):
        verdicts.speed(0)
