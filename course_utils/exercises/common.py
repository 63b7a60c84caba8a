"""What every exercise check shares: the result type and the runner."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


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


def run_checks(name: str, fn: Callable, cases: Callable[[Callable], None]) -> CheckResult:
    if not callable(fn):
        return CheckResult(name, False, f"expected a function, got {type(fn).__name__}")
    try:
        cases(fn)
    except NotImplementedError:
        return CheckResult(name, False, "not implemented yet: replace `raise NotImplementedError`.")
    except AssertionError as err:
        return CheckResult(name, False, str(err) or "a result differs from the reference")
    except Exception as err:  # the learner's code crashed: say how
        return CheckResult(name, False, f"your function raised {type(err).__name__}: {err}")
    return CheckResult(name, True, "all cases match the reference.")


def assert_close(a: torch.Tensor, b: torch.Tensor, what: str, atol: float = 1e-5) -> None:
    assert isinstance(a, torch.Tensor), f"{what}: expected a tensor, got {type(a).__name__}"
    assert a.shape == b.shape, f"{what}: shape {tuple(a.shape)}, expected {tuple(b.shape)}"
    assert torch.allclose(a.float(), b.float(), atol=atol), (
        f"{what}: values differ from the reference"
    )
