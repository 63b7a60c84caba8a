"""Exercise checks for chapter 1 (baseline RNN)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .common import CheckResult, assert_close, run_checks

__all__ = ["check_frequent_words", "check_masked_mean", "check_rnn_parameter_count"]


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

    return run_checks("frequent words", fn, cases)


def check_masked_mean(fn: Callable) -> CheckResult:
    """``fn(outputs, lengths)`` -> mean over the first ``lengths[b]`` steps of each row;
    outputs (batch, time, features), lengths (batch,)."""

    def cases(fn):
        g = torch.Generator().manual_seed(1)
        out = torch.randn(3, 5, 4, generator=g)
        lengths = torch.tensor([5, 2, 1])
        want = torch.stack([out[b, : int(n)].mean(0) for b, n in enumerate(lengths)])
        assert_close(fn(out, lengths), want, "masked mean")
        poisoned = out.clone()
        poisoned[1, 2:] = 1e6  # padding must not leak into the mean
        assert_close(fn(poisoned, lengths), want, "masked mean with large values in the padding")

    return run_checks("masked mean pooling", fn, cases)


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

    return run_checks("RNN parameter count", fn, cases)
