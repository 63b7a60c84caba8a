"""Seeds: one call that seeds everything, and library functions that leave yours alone.

Introduced in chapter 1. :func:`set_seed` is the one function that sets the global
random streams (Python, NumPy, PyTorch): call it in a notebook to make the next cells
repeatable. A library function that takes a ``seed`` never moves your streams: it is
wrapped in :func:`keeps_global_rng`, which saves the three global states when it starts
and puts them back when it returns (the idea of ``torch.random.fork_rng``). Module
initialization and dropout have no ``generator=`` argument in PyTorch, so the course
seeds the global streams inside that private scope rather than passing generators.

A seeded function that calls another (``lottery_ticket`` calls ``finetune``) shares the
scope of the outermost one, exactly as if there were no scope: the results are the same
as those of plain ``set_seed`` calls.
"""

from __future__ import annotations

import functools
import random
import threading
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import numpy as np
import torch

from .checks import integer

__all__ = ["global_rng_state", "keeps_global_rng", "set_seed"]

P = ParamSpec("P")
R = TypeVar("R")
_depth = threading.local()


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and PyTorch; CPU results are then identical on rerun."""
    seed = integer("seed", seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def global_rng_state() -> tuple:
    """The global states of Python's, NumPy's and PyTorch's random streams (CUDA too)."""
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    return random.getstate(), np.random.get_state(), torch.get_rng_state(), cuda


def _restore(state: tuple) -> None:
    python, numpy, torch_cpu, cuda = state
    random.setstate(python)
    np.random.set_state(numpy)
    torch.set_rng_state(torch_cpu)
    if cuda:
        torch.cuda.set_rng_state_all(cuda)


def keeps_global_rng(function: Callable[P, R]) -> Callable[P, R]:
    """Decorate a function that seeds: its caller's random streams are restored on return.

    Only the outermost decorated call saves and restores, so nested calls draw from one
    stream, as they would without the decorator.
    """

    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        depth = getattr(_depth, "value", 0)
        state = global_rng_state() if depth == 0 else None
        _depth.value = depth + 1
        try:
            return function(*args, **kwargs)
        finally:
            _depth.value = depth
            if state is not None:
                _restore(state)

    return wrapper
