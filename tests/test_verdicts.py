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


# --- paired verdicts over seeds (the bootstrap interval of the median difference) ---------------


def test_exact_bootstrap_of_five_values_matches_the_binomial_by_hand():
    # the resampled median (5 draws) is the smallest value when at least 3 draws are it:
    # C(5,3)(1/5)^3(4/5)^2 + C(5,4)(1/5)^4(4/5) + (1/5)^5 = 0.0512 + 0.0064 + 0.00032
    distribution = dict(verdicts.bootstrap_medians([-1.0, 1.0, 2.0, 3.0, 4.0]))
    assert math.isclose(distribution[-1.0], 0.05792, rel_tol=1e-12)
    # the middle value: at least 3 draws <= 2 and at least 3 draws >= 2
    below = sum(math.comb(5, k) * 0.6**k * 0.4 ** (5 - k) for k in range(3, 6))
    above_1 = sum(math.comb(5, k) * 0.4**k * 0.6 ** (5 - k) for k in range(3, 6))
    assert math.isclose(distribution[2.0], below - above_1, rel_tol=1e-12)
    assert math.isclose(sum(distribution.values()), 1.0, rel_tol=1e-12)


def test_even_counts_average_the_two_middle_draws():
    distribution = dict(verdicts.bootstrap_medians([0.0, 1.0]))
    assert distribution == {0.0: 0.25, 0.5: 0.5, 1.0: 0.25}


def test_monte_carlo_bootstrap_agrees_with_the_binomial_and_keeps_the_global_state():
    values = [float(v) for v in range(9)]  # beyond EXACT_UP_TO: resampled
    assert len(values) > verdicts.EXACT_UP_TO
    p_min = sum(math.comb(9, k) * (1 / 9) ** k * (8 / 9) ** (9 - k) for k in range(5, 10))
    import random

    random.seed(123)
    before = random.random()
    random.seed(123)
    distribution = dict(verdicts.bootstrap_medians(values, resamples=20_000, seed=1))
    assert random.random() == before  # the caller's random stream did not move
    sigma = math.sqrt(p_min * (1 - p_min) / 20_000)
    assert abs(distribution[0.0] - p_min) < 4 * sigma
    again = dict(verdicts.bootstrap_medians(values, resamples=20_000, seed=1))
    assert again == distribution


@pytest.mark.parametrize(
    "a, b, expected",
    [
        ([0.95, 0.94, 0.96, 0.93, 0.95], [0.93, 0.93, 0.95, 0.92, 0.94], "better"),
        ([0.93, 0.93, 0.95, 0.92, 0.94], [0.95, 0.94, 0.96, 0.93, 0.95], "worse"),
        # one seed of five against: 0 stays inside the 95 % interval
        ([0.95, 0.94, 0.96, 0.93, 0.90], [0.93, 0.93, 0.95, 0.92, 0.94], "no clear difference"),
        ([0.95, 0.94, 0.96], [0.93, 0.93, 0.95], "better"),  # three seeds, all ahead
        ([0.95, 0.94, 0.96], [0.95, 0.93, 0.95], "no clear difference"),  # one tie
        ([0.95], [0.93], "one seed"),
    ],
)
def test_paired_seeds_verdicts(a, b, expected):
    result = verdicts.paired_seeds(a, b)
    assert result.verdict == expected
    assert result.low <= result.median_difference <= result.high
    assert result.differences == tuple(x - y for x, y in zip(a, b, strict=True))


def test_paired_seeds_pairs_dicts_by_seed_and_reports_the_interval():
    result = verdicts.paired_seeds({0: 0.9, 1: 0.8, 7: 0.5}, {1: 0.7, 0: 0.85, 3: 0.1})
    assert result.seeds == (0, 1)
    assert result.differences == pytest.approx((0.05, 0.1))
    assert result.interval() == "+7.5 points (95 % interval +5.0 to +10.0)"


def test_paired_seeds_refuses_bad_input():
    with pytest.raises(ValueError, match="one score per seed"):
        verdicts.paired_seeds([0.9, 0.8], [0.9])
    with pytest.raises(ValueError, match="share no seed"):
        verdicts.paired_seeds({0: 0.9}, {1: 0.9})
    with pytest.raises(TypeError, match="both be dicts"):
        verdicts.paired_seeds({0: 0.9}, [0.9])
    with pytest.raises(ValueError, match="level"):
        verdicts.paired_seeds([0.9], [0.8], level=1.5)
    with pytest.raises(ValueError, match="finite"):
        verdicts.paired_seeds([float("nan")], [0.8])


def test_paired_seeds_reports_how_rare_the_seeds_agreement_is():
    five = verdicts.paired_seeds([0.95, 0.94, 0.96, 0.93, 0.95], [0.93, 0.93, 0.95, 0.92, 0.94])
    assert five.verdict == "better" and five.p_value == pytest.approx(2 / 32)
    three = verdicts.paired_seeds([0.95, 0.94, 0.96], [0.93, 0.93, 0.95])
    assert three.verdict == "better" and three.p_value == pytest.approx(2 / 8)
    tie = verdicts.paired_seeds([0.95, 0.94, 0.96], [0.95, 0.93, 0.95])  # one tie is dropped
    assert tie.p_value == pytest.approx(2 / 4)
