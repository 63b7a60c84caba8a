"""Checks for the exercises in every chapter.

Each ``check_*`` function takes the learner's function, runs it on small fixed cases
against the course's reference, and returns a :class:`CheckResult` that displays as one
line. A function that still raises ``NotImplementedError`` is reported as not yet done,
so student notebooks run top to bottom. Chapters add their checks below their heading.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn


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


def _run_checks(name: str, fn: Callable, cases: Callable[[Callable], None]) -> CheckResult:
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


def _close(a: torch.Tensor, b: torch.Tensor, what: str, atol: float = 1e-5) -> None:
    assert isinstance(a, torch.Tensor), f"{what}: expected a tensor, got {type(a).__name__}"
    assert a.shape == b.shape, f"{what}: shape {tuple(a.shape)}, expected {tuple(b.shape)}"
    assert torch.allclose(a.float(), b.float(), atol=atol), (
        f"{what}: values differ from the reference"
    )


# --- chapter 1 -----------------------------------------------------------------------


def check_frequent_words(fn: Callable) -> CheckResult:
    """``fn(token_lists, min_freq)`` -> words with count >= min_freq, most frequent first,
    ties in alphabetical order (the order ``build_vocab_from_iterator`` uses)."""

    def cases(fn):
        docs = [["the", "cat", "sat"], ["the", "dog", "sat", "down"], ["a", "cat"]]
        got = fn(docs, 2)
        assert list(got) == ["cat", "sat", "the"], f"min_freq=2 gave {got}, expected cat, sat, the"
        got = fn(docs, 1)
        want = ["cat", "sat", "the", "a", "dog", "down"]
        assert list(got) == want, f"min_freq=1 gave {got}, expected {want}"
        assert list(fn([], 1)) == [], "no documents should give no words"

    return _run_checks("frequent words", fn, cases)


def check_masked_mean(fn: Callable) -> CheckResult:
    """``fn(outputs, lengths)`` -> mean over the first ``lengths[b]`` steps of each row;
    outputs (batch, time, features), lengths (batch,)."""

    def cases(fn):
        g = torch.Generator().manual_seed(1)
        out = torch.randn(3, 5, 4, generator=g)
        lengths = torch.tensor([5, 2, 1])
        want = torch.stack([out[b, : int(n)].mean(0) for b, n in enumerate(lengths)])
        _close(fn(out, lengths), want, "masked mean")
        poisoned = out.clone()
        poisoned[1, 2:] = 1e6  # padding must not leak into the mean
        _close(fn(poisoned, lengths), want, "masked mean with large values in the padding")

    return _run_checks("masked mean pooling", fn, cases)


def check_rnn_parameter_count(fn: Callable) -> CheckResult:
    """``fn(cell, embed_dim, hidden_size, num_layers, bidirectional)`` -> parameters of
    ``nn.LSTM``/``nn.GRU``/``nn.RNN`` with biases."""

    def cases(fn):
        mods = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}
        for cell, e, h, layers, bi in [
            ("lstm", 64, 128, 1, False),
            ("gru", 32, 16, 2, False),
            ("rnn", 10, 7, 1, True),
            ("lstm", 5, 3, 3, True),
        ]:
            want = sum(p.numel() for p in mods[cell](e, h, layers, bidirectional=bi).parameters())
            got = fn(cell, e, h, layers, bi)
            assert got == want, (
                f"{cell} E={e} H={h} layers={layers} bi={bi}: got {got}, expected {want}"
            )

    return _run_checks("RNN parameter count", fn, cases)
