"""Argument checks shared by the package: counts, numbers, fractions and flags.

Used from chapter 1 on by every module that takes a number or a flag from the learner
(``train``, ``pruning``, ``widgets``...); it imports nothing from the course, so any
module may use it. Each check returns the value as a plain ``int``, ``float`` or
``bool``, or raises at the call: :class:`ArgumentTypeError` (a ``TypeError``) when the
type is wrong (``bool`` is not accepted as a number, nor ``2.0`` or ``"3"`` as an int),
``ValueError`` when the value is out of range. The message names the argument, shows the
value and says what is allowed::

    >>> try:
    ...     positive_int("epochs", 2.5)
    ... except TypeError as err:
    ...     print(err)
    epochs must be a positive int, got 2.5 (float)
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable

__all__ = [
    "ArgumentTypeError",
    "boolean",
    "finite_numbers",
    "fraction",
    "integer",
    "non_negative_int",
    "non_negative_number",
    "number",
    "positive_int",
    "positive_number",
]


class ArgumentTypeError(TypeError, ValueError):
    """An argument of the wrong type: a TypeError, and also a ValueError.

    Before these checks the course raised ValueError for a count given as ``2.5`` or
    ``True``; code (and tests) that catch ValueError for any bad argument keep working.
    """


def _shown(value) -> str:
    return f"{value!r} ({type(value).__name__})"


def _bounds(minimum, maximum, low_open: bool = False, high_open: bool = False) -> str:
    """``"in [0, 1)"``, ``"> 0"``, ``"<= 5"`` or ``""`` for no bound."""
    if minimum is not None and maximum is not None:
        return f"in {'(' if low_open else '['}{minimum:g}, {maximum:g}{')' if high_open else ']'}"
    if minimum is not None:
        return f"{'>' if low_open else '>='} {minimum:g}"
    if maximum is not None:
        return f"{'<' if high_open else '<='} {maximum:g}"
    return ""


def integer(
    name: str,
    value,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    allowed: str | None = None,
) -> int:
    """``value`` as an int in ``[minimum, maximum]`` (either bound may be None).

    Messages read ``"frequency must be an int >= 1, got 1.5 (float)"`` (type) and
    ``"frequency must be >= 1, got 0"`` (range); ``allowed`` replaces the description in
    both (e.g. ``"a positive int"``).
    """
    bounds = _bounds(minimum, maximum)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        wanted = allowed or f"an int {bounds}".strip()
        raise ArgumentTypeError(f"{name} must be {wanted}, got {_shown(value)}")
    value = int(value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ValueError(f"{name} must be {allowed or bounds}, got {value}")
    return value


def positive_int(name: str, value) -> int:
    """``value`` as an int >= 1 (epochs, steps, batch sizes, counts)."""
    return integer(name, value, minimum=1, allowed="a positive int")


def non_negative_int(name: str, value) -> int:
    """``value`` as an int >= 0 (a step index, a seed offset)."""
    return integer(name, value, minimum=0, allowed="an int >= 0")


def number(
    name: str,
    value,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    what: str | None = None,
    allowed: str | None = None,
) -> float:
    """``value`` as a finite float within the bounds (``low_open``: ``> minimum``).

    NaN and infinities are refused whatever the bounds. Messages read
    ``"lr must be a number > 0, got 'a' (str)"`` (type) and ``"lr must be > 0, got
    -1.0"`` (range); ``what`` names the kind of number in both (``"warmup must be a
    fraction of the steps in [0, 1), got -0.1"``); ``allowed`` replaces the whole
    description in both (``"> 0 or None"``).
    """
    bounds = _bounds(minimum, maximum, low_open, high_open) or "finite"
    if allowed is not None:
        what, bounds = allowed, ""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        kind = what or ("a finite number" if bounds == "finite" else "a number")
        wanted = kind if bounds in ("finite", "") else f"{kind} {bounds}"
        raise ArgumentTypeError(f"{name} must be {wanted}, got {_shown(value)}")
    value = float(value)
    bad = not math.isfinite(value)
    if minimum is not None:
        bad = bad or (value <= minimum if low_open else value < minimum)
    if maximum is not None:
        bad = bad or (value >= maximum if high_open else value > maximum)
    if bad:
        wanted = " ".join(part for part in (what, bounds) if part)
        raise ValueError(f"{name} must be {wanted}, got {value}")
    return value


def positive_number(name: str, value) -> float:
    """``value`` as a finite float > 0 (learning rates, temperatures)."""
    return number(name, value, minimum=0, low_open=True)


def non_negative_number(name: str, value) -> float:
    """``value`` as a finite float >= 0 (penalty strengths, tolerances)."""
    return number(name, value, minimum=0)


def fraction(
    name: str, value, *, low_open: bool = False, high_open: bool = True, what: str | None = None
) -> float:
    """``value`` as a float in ``[0, 1)`` (a sparsity); the flags open or close the ends."""
    return number(
        name, value, minimum=0, maximum=1, low_open=low_open, high_open=high_open, what=what
    )


def boolean(name: str, value) -> bool:
    """``value`` itself when it is a bool; ``"no"``, ``0`` or ``None`` are refused."""
    if not isinstance(value, bool):
        raise ArgumentTypeError(f"{name} must be True or False, got {_shown(value)}")
    return value


def finite_numbers(name: str, values: Iterable) -> list[float]:
    """``values`` as a list of finite floats; the error gives the position of a bad one."""
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise ArgumentTypeError(f"{name} must be a list of numbers, got {_shown(values)}")
    out = []
    for i, value in enumerate(values):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ArgumentTypeError(f"{name}[{i}] must be a finite number, got {_shown(value)}")
        if not math.isfinite(value):
            raise ValueError(f"{name}[{i}] must be a finite number, got {value}")
        out.append(float(value))
    return out
