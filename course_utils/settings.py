"""Course-wide settings read from the environment: fast mode, device, cache folder.

Introduced in chapter 1. Each is read when asked for, never at import time.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

__all__ = ["PUBLISHED_BENCHMARK", "cache_dir", "default_device", "fast_mode", "show_progress"]

PUBLISHED_BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "latest.json"
"""The benchmark that ``make bench BENCH_ARGS=--publish`` wrote, in a clone of the course
(chapters 4, 5 and 5b read their many-seed verdicts from it)."""


def fast_mode() -> bool:
    """True when ``COURSE_FAST=1``: notebooks shrink epochs and grids (CI sets it)."""
    return os.environ.get("COURSE_FAST", "0").strip().lower() in {"1", "true", "yes"}


def show_progress() -> bool:
    """False when ``COURSE_PROGRESS=0``: no progress bars (used for committed notebooks)."""
    return os.environ.get("COURSE_PROGRESS", "1").strip().lower() not in {
        "0",
        "false",
        "no",
    }


def default_device() -> torch.device:
    """The device for the whole course, chosen once: ``$COURSE_DEVICE`` or ``"cpu"``.

    The course is written for the CPU; ``COURSE_DEVICE=cuda`` runs it on a GPU.
    """
    return torch.device(os.environ.get("COURSE_DEVICE", "cpu"))


def cache_dir() -> Path:
    """Where trained baselines and pruned models are cached: ``$COURSE_CACHE`` or
    ``~/.cache/rnn-pruning-course``.

    A folder shared by a class works: cache files get the mode the writer's umask gives
    any new file (``umask 002`` makes them group-writable too), and a learner who cannot
    write there still gets every model, with a warning.
    """
    env = os.environ.get("COURSE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "rnn-pruning-course"
