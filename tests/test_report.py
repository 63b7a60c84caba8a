"""Tables print every number by one rule: no exponents, no column of mixed styles."""

import math

import pytest

from course_utils.report import Table


@pytest.mark.parametrize(
    "value, text",
    [
        (0.9624, "0.9624"),
        (0.0, "0.0000"),
        (1.0, "1.000"),
        (1.03, "1.030"),
        (5.934, "5.934"),
        (157.64, "157.6"),
        (45350.1, "45,350"),
        (59780.0, "59,780"),
        (123456.7, "123,457"),
        (-2.5, "-2.500"),
        (16398, "16,398"),
        (True, "True"),
        ("lstm", "lstm"),
        (math.nan, "nan"),
    ],
)
def test_one_rule_for_every_number(value, text):
    assert Table._fmt(value) == text


def test_no_exponent_anywhere_in_a_column_of_timings():
    table = Table({"dense (µs)": v} for v in (264.0, 45350.0, 5.934, 89.4, 1.2e7))
    assert "e+" not in str(table) and "e+" not in table._repr_html_()
    assert "e+" not in table.to_markdown()
