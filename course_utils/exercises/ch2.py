"""Exercise checks for chapter 2 (magnitude pruning)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ..pruning import agp_sparsity, select_global, select_layerwise
from .common import CheckResult, run_checks

__all__ = [
    "check_agp_sparsity",
    "check_global_sparsities",
    "check_magnitude_mask",
    "reference_agp",
    "reference_magnitude_mask",
]


def reference_magnitude_mask(weight: torch.Tensor, sparsity: float) -> torch.Tensor:
    """The course's answer to ``magnitude_mask``: ``select_layerwise`` on ``|weight|``."""
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"weight must be a tensor, got {type(weight).__name__}")
    return select_layerwise({"weight": weight.detach().abs()}, sparsity)["weight"]


def reference_agp(
    step: int, initial: float, final: float, start_step: int, end_step: int, frequency: int
) -> float:
    """The course's answer to ``agp``: :func:`~course_utils.pruning.agp_sparsity`, with
    the exercise's positional arguments."""
    return agp_sparsity(
        step,
        initial=initial,
        final=final,
        start_step=start_step,
        end_step=end_step,
        frequency=frequency,
    )


def _tie_free(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    n = math.prod(shape)
    values = (torch.randperm(n, generator=g).float() + 1) / n
    signs = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0)
    return (values * signs).reshape(shape)


def check_magnitude_mask(fn: Callable) -> CheckResult:
    """``fn(weight, sparsity)`` -> bool mask of ``weight``'s shape, False for the
    ``round(sparsity * weight.numel())`` entries of smallest |w|."""

    def cases(fn):
        w = torch.tensor([[0.5, -0.1, 0.3], [-0.7, 0.05, -0.2]])
        got = fn(w, 0.5)
        want = torch.tensor([[True, False, True], [True, False, False]])
        assert isinstance(got, torch.Tensor), f"expected a tensor, got {type(got).__name__}"
        assert got.shape == w.shape, f"mask shape {tuple(got.shape)}, expected {tuple(w.shape)}"
        assert torch.equal(got.bool(), want), (
            f"sparsity 0.5 of {w.tolist()} gave {got.tolist()}, expected {want.tolist()} "
            "(the sign does not matter: compare |w|)"
        )
        for shape, sparsity, seed in [((8, 5), 0.9, 0), ((20, 7), 0.0, 1), ((4, 4, 3), 0.3, 2)]:
            w = _tie_free(shape, seed)
            want = select_layerwise({"w": w.abs()}, sparsity)["w"]
            got = fn(w, sparsity)
            assert got.shape == w.shape, f"mask shape {tuple(got.shape)} for {shape}"
            pruned = int((~got.bool()).sum())
            assert pruned == int((~want).sum()), (
                f"shape {shape}, sparsity {sparsity}: pruned {pruned} entries, "
                f"expected exactly round({sparsity} * {w.numel()}) = {int((~want).sum())}"
            )
            assert torch.equal(got.bool(), want), f"shape {shape}: wrong entries pruned"

    return run_checks("magnitude mask", fn, cases)


def check_agp_sparsity(fn: Callable) -> CheckResult:
    """``fn(step, initial, final, start_step, end_step, frequency)`` -> the AGP target,
    held constant between pruning steps (every ``frequency`` steps from ``start_step``)."""

    def cases(fn):
        for initial, final, start, end, freq in [
            (0.0, 0.9, 0, 100, 10),
            (0.2, 0.95, 50, 350, 100),
            (0.0, 0.5, 10, 13, 1),
        ]:
            for step in sorted({0, start, start + 1, (start + end) // 2, end - 1, end, end + 7}):
                want = agp_sparsity(
                    step,
                    initial=initial,
                    final=final,
                    start_step=start,
                    end_step=end,
                    frequency=freq,
                )
                got = fn(step, initial, final, start, end, freq)
                assert isinstance(got, int | float), f"expected a number, got {type(got).__name__}"
                assert math.isclose(got, want, abs_tol=1e-9), (
                    f"step {step} (s_i={initial}, s_f={final}, t0={start}, end={end}, "
                    f"dt={freq}): got {got:.6f}, expected {want:.6f}"
                )

    return run_checks("AGP sparsity", fn, cases)


def check_global_sparsities(fn: Callable) -> CheckResult:
    """``fn(weights, sparsity)`` -> ``{name: fraction of that tensor pruned}`` when the
    ``round(sparsity * total)`` smallest |w| over ALL tensors together are pruned."""

    def cases(fn):
        weights = {
            "small": torch.tensor([0.1, -0.2, 0.3, -0.4]),
            "large": torch.tensor([1.0, -2.0, 0.25, 3.0]),
        }
        got = fn(weights, 0.5)
        assert set(got) == set(weights), f"keys {sorted(got)}, expected {sorted(weights)}"
        want = {"small": 0.75, "large": 0.25}
        assert all(math.isclose(float(got[k]), v) for k, v in want.items()), (
            f"got {got}, expected {want}"
        )
        g = torch.Generator().manual_seed(0)
        weights = {
            "embedding": torch.randn(40, 8, generator=g),
            "rnn": (torch.rand(16, 4, generator=g) - 0.5) * 0.5,
            "classifier": torch.randn(3, 4, generator=g) * 0.3,
        }
        for sparsity in (0.3, 0.8):
            masks = select_global({k: w.abs() for k, w in weights.items()}, sparsity)
            want = {k: float((~m).float().mean()) for k, m in masks.items()}
            got = fn(weights, sparsity)
            assert all(math.isclose(float(got[k]), v, abs_tol=1e-6) for k, v in want.items()), (
                f"sparsity {sparsity}: got {got}, expected {want}"
            )

    return run_checks("global per-tensor sparsities", fn, cases)
