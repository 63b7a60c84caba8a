"""What every exercise check shares: the result type, the runner, the choice a demo
cell makes between the learner's function and the course's reference, and the assertion
nbgrader's autograder runs.

Used by every chapter's checks (introduced in chapter 1); :func:`yours_or_reference`
first appears in chapter 4, where a demo cell runs on the learner's ``group_shrink``
once it passes its check, and on the reference until then. :func:`assert_passes` is the
hidden test of every check cell (docs/INSTRUCTOR.md, *Grading with nbgrader*).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch

__all__ = [
    "RETURNED_NONE",
    "CheckResult",
    "Choice",
    "assert_close",
    "assert_passes",
    "run_checks",
    "yours_or_reference",
]

RETURNED_NONE = "your function returned None -- did you forget `return`?"


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    message: str

    def __bool__(self) -> bool:
        return self.passed

    def __repr__(self) -> str:
        mark = "PASSED" if self.passed else "NOT YET"
        return f"[{mark}] {self.name}: {self.message}"


class _ReturnedNone(Exception):
    """The learner's function returned None (raised by the wrapper in ``run_checks``)."""


def _refuse_none(fn: Callable) -> Callable:
    def guarded(*args, **kwargs):
        out = fn(*args, **kwargs)
        if out is None:
            raise _ReturnedNone
        return out

    return guarded


def run_checks(name: str, fn: Callable, cases: Callable[[Callable], None]) -> CheckResult:
    """Run ``cases(fn)`` and say in one line whether ``fn`` passed.

    No exercise returns None, so a call that does is reported as a missing ``return``
    (before any assertion about the value can fail or crash on it).
    """
    if not callable(fn):
        return CheckResult(name, False, f"expected a function, got {type(fn).__name__}")
    try:
        cases(_refuse_none(fn))
    except NotImplementedError:
        return CheckResult(name, False, "not implemented yet: replace `raise NotImplementedError`.")
    except _ReturnedNone:
        return CheckResult(name, False, RETURNED_NONE)
    except AssertionError as err:
        return CheckResult(name, False, str(err) or "a result differs from the reference")
    except Exception as err:  # the learner's code crashed: say how
        return CheckResult(name, False, f"your function raised {type(err).__name__}: {err}")
    return CheckResult(name, True, "all cases match the reference.")


class Choice(NamedTuple):
    """The function a demo cell runs, and the line it prints ("" when it runs yours)."""

    fn: Callable
    note: str


def _full_name(fn: Callable) -> str:
    module = getattr(fn, "__module__", None)
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)
    return f"{module}.{name}" if module else name


def _check_aside(yours: Callable, check: Callable[[Callable], CheckResult]) -> CheckResult:
    """``check(yours)`` with the global torch random state saved and restored."""
    if not callable(check):
        raise TypeError(
            "check must be an exercise check such as exercises.check_group_shrink, "
            f"got {type(check).__name__}"
        )
    with torch.random.fork_rng(devices=[]):
        result = check(yours)
    if not isinstance(result, CheckResult):
        raise TypeError(
            "check must return a CheckResult (an exercises.check_* function), "
            f"got {type(result).__name__} from {_full_name(check)}"
        )
    return result


def assert_passes(yours: Callable, check: Callable[[Callable], CheckResult]) -> None:
    """Raise ``AssertionError`` with the check's line unless ``yours`` passes ``check``.

    The hidden test of a check cell, which nbgrader's autograder restores: the cell errs,
    and scores 0, until the exercise is solved. The check runs with the global torch
    random state saved and restored, so the visible check after it computes and prints
    what it would without it.
    """
    result = _check_aside(yours, check)
    if not result.passed:
        raise AssertionError(repr(result))


def yours_or_reference(
    yours: Callable, check: Callable[[Callable], CheckResult], reference: Callable
) -> Choice:
    """Your function if it passes ``check``, else ``reference``, with a one-line note.

    ``check`` is the exercise's check (``exercises.check_group_shrink``); it runs again
    here, on the function as it is now, with the global torch random state saved and
    restored, so the choice never changes the numbers a cell computes. The note is ""
    when your function is used, otherwise a line starting ``[USING REFERENCE]``: print
    it when it is not empty. A demo cell::

        shrink, note = exercises.yours_or_reference(
            group_shrink, exercises.check_group_shrink, exercises.reference_group_shrink
        )
        if note:
            print(note)
    """
    if not callable(reference):
        raise TypeError(
            f"reference must be the course's function (a callable), got {type(reference).__name__}"
        )
    result = _check_aside(yours, check)
    if result.passed:
        return Choice(yours, "")
    name = getattr(yours, "__name__", None) or "function"
    note = (
        f"[USING REFERENCE] your {name} does not pass its check yet: this cell uses "
        f"{_full_name(reference)}; solve the exercise above to run it with yours"
    )
    return Choice(reference, note)


def assert_close(a: torch.Tensor, b: torch.Tensor, what: str, atol: float = 1e-5) -> None:
    assert isinstance(a, torch.Tensor), f"{what}: expected a tensor, got {type(a).__name__}"
    assert a.shape == b.shape, f"{what}: shape {tuple(a.shape)}, expected {tuple(b.shape)}"
    assert torch.allclose(a.float(), b.float(), atol=atol), (
        f"{what}: values differ from the reference"
    )
