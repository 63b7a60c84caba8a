"""What a deployed classifier meets: messy text, bad inputs and noise.

Introduced in chapter 6 (its "safety" section).

- :func:`predict_texts` runs a model on raw strings the way a service would: normalize,
  tokenize, truncate long texts, and report (instead of crashing on) empty texts, texts
  with only unknown words and values that are not strings.
- :func:`add_typos` and :func:`drop_words` corrupt text reproducibly (seeded);
  :func:`accuracy_under_noise` measures how accuracy falls as the noise grows, so that
  dense and pruned models can be compared.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable, Mapping, Sequence

import torch
from torch import nn

from ..checks import fraction, positive_int
from ..report import Table
from ..text import Vocab, basic_tokenize, pad_batch

__all__ = [
    "NOISES",
    "accuracy_under_noise",
    "add_typos",
    "drop_words",
    "noisy_texts",
    "predict_texts",
    "read_text",
    "typo",
]

_WORD = re.compile(r"[^\W\d_]{3,}")  # runs of 3+ letters, any script


def _check_rate(rate: float, argument: str = "rate") -> float:
    return fraction(argument, rate, high_open=False, what="a probability")


def _check_text(text, argument: str = "text") -> str:
    if not isinstance(text, str):
        raise TypeError(f"{argument} must be a str, got {type(text).__name__}")
    return text


# --- noise --------------------------------------------------------------------------------


def typo(word: str, rng: random.Random) -> str:
    """One typo in ``word``: swap two neighbouring letters or delete one (equally likely)."""
    i = rng.randrange(len(word) - 1)
    if rng.random() < 0.5:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    return word[:i] + word[i + 1 :]


def add_typos(text: str, rate: float, seed: int = 0) -> str:
    """Give each word of 3+ letters a typo (:func:`typo`) with probability ``rate``.

    Everything else (spaces, punctuation, numbers) is kept. The same ``seed`` gives the
    same typos.
    """
    text, rate = _check_text(text), _check_rate(rate)
    rng = random.Random(seed)
    return _WORD.sub(lambda m: typo(m.group(), rng) if rng.random() < rate else m.group(), text)


def drop_words(text: str, rate: float, seed: int = 0) -> str:
    """Remove each whitespace-separated word with probability ``rate`` (one always stays)."""
    text, rate = _check_text(text), _check_rate(rate)
    rng = random.Random(seed)
    words = text.split()
    kept = [w for w in words if rng.random() >= rate]
    if not kept and words:
        kept = [words[rng.randrange(len(words))]]
    return " ".join(kept)


NOISES: dict[str, Callable[[str, float, int], str]] = {
    "typos": add_typos,
    "drop_words": drop_words,
}


def noisy_texts(texts: Sequence[str], kind: str, rate: float, seed: int = 0) -> list[str]:
    """Each text corrupted by noise ``kind`` (``"typos"`` or ``"drop_words"``) at ``rate``.

    Text ``i`` uses seed ``seed * 1_000_003 + i``: reproducible, and independent of the
    other texts.
    """
    if kind not in NOISES:
        raise ValueError(f"unknown noise kind={kind!r}; choose from {sorted(NOISES)}")
    return [NOISES[kind](t, rate, seed * 1_000_003 + i) for i, t in enumerate(texts)]


# --- predicting raw texts -----------------------------------------------------------------


def read_text(
    text, vocab: Vocab, max_len: int | None, tokenizer: Callable[[str], list[str]] = basic_tokenize
) -> dict:
    """What the pipeline makes of one input: ``tokens``, ``ids``, ``unknown`` words,
    ``truncated`` (tokens cut beyond ``max_len``) and ``status``: ``"ok"``,
    ``"truncated"``, ``"empty"`` (no tokens), ``"only unknown words"`` or ``"not text"``."""
    out = {"tokens": [], "ids": [], "unknown": [], "truncated": 0, "status": "ok"}
    if not isinstance(text, str):
        out["status"] = "not text"
        return out
    tokens = tokenizer(text)
    if not tokens:
        out["status"] = "empty"
        return out
    kept = tokens[:max_len] if max_len else tokens
    unk = vocab.get_default_index()
    ids = vocab.lookup_indices(kept)
    out.update(
        tokens=kept,
        ids=ids,
        unknown=[t for t, i in zip(kept, ids, strict=True) if i == unk],
        truncated=len(tokens) - len(kept),
    )
    if unk is not None and all(i == unk for i in ids):
        out["status"] = "only unknown words"
    elif out["truncated"]:
        out["status"] = "truncated"
    return out


@torch.no_grad()
def predict_texts(
    model: Callable,
    vocab: Vocab,
    texts: Iterable,
    *,
    max_len: int | None = None,
    seq_len: int | None = None,
    batch_size: int = 64,
    class_names: Sequence[str] | None = None,
) -> Table:
    """Classify raw texts; one row per text, bad inputs reported, never raised.

    Each text is normalized (NFKC, lowercase) and tokenized like the training data, cut
    to ``max_len`` tokens (default: the model's ``max_len``), and looked up in ``vocab``
    (unknown words map to ``<unk>``). Texts that are empty, hold only unknown words or
    are not strings get no prediction (``label`` None) and say why in ``status``.
    ``seq_len`` pads every batch to that many steps (for an exported model). Columns:
    ``text`` (first 40 characters), ``tokens``, ``unknown``, ``truncated``, ``status``,
    ``label``, ``class``, ``confidence`` (softmax probability of the label).
    ``texts`` may be any iterable of texts (a list, a generator, a pandas column); it is
    read once. A lone ``str`` is refused (it would be read as one text per character).
    """
    if isinstance(texts, str | bytes):
        raise TypeError(
            f"texts must be a list of strings, got one {type(texts).__name__}: wrap it in a list"
        )
    if not isinstance(texts, Iterable):
        raise TypeError(f"texts must be a list of strings, got {type(texts).__name__}")
    texts = list(texts)  # a generator is read once, here
    if max_len is None:
        max_len = getattr(model, "max_len", None) or seq_len
    if seq_len is not None and (max_len is None or max_len > seq_len):
        raise ValueError(f"max_len={max_len} must be set and at most seq_len={seq_len}")
    batch_size = positive_int("batch_size", batch_size)
    read = [read_text(t, vocab, max_len) for t in texts]
    rows = Table()
    for text, r in zip(texts, read, strict=True):
        shown = text[:40] + ("…" if len(text) > 40 else "") if isinstance(text, str) else repr(text)
        rows.append(
            {
                "text": shown,
                "tokens": len(r["tokens"]),
                "unknown": len(r["unknown"]),
                "truncated": r["truncated"],
                "status": r["status"],
                "label": None,
                "class": "",
                "confidence": None,
            }
        )
    good = [i for i, r in enumerate(read) if r["status"] in ("ok", "truncated")]
    device = _device(model)
    if isinstance(model, nn.Module) and hasattr(model, "check_inputs"):
        model.eval()
    for start in range(0, len(good), batch_size):
        chunk = good[start : start + batch_size]
        tokens, lengths = pad_batch([torch.tensor(read[i]["ids"]) for i in chunk])
        if seq_len is not None:
            tokens = nn.functional.pad(tokens, (0, seq_len - tokens.shape[1]))
        probs = torch.softmax(model(tokens.to(device), lengths.to(device)), dim=1).cpu()
        confidence, labels = probs.max(dim=1)
        for i, label, p in zip(chunk, labels.tolist(), confidence.tolist(), strict=True):
            rows[i]["label"] = label
            rows[i]["class"] = class_names[label] if class_names else str(label)
            rows[i]["confidence"] = p
    return rows


def _device(model) -> torch.device:
    if isinstance(model, nn.Module):
        for p in model.parameters():
            return p.device
    return torch.device("cpu")


# --- accuracy under noise -----------------------------------------------------------------


def accuracy_under_noise(
    models: Mapping[str, Callable],
    vocab: Vocab,
    examples: Sequence[tuple[str, int]],
    *,
    kind: str,
    rates: Sequence[float],
    seed: int = 0,
    max_len: int | None = None,
) -> Table:
    """Accuracy of each model on ``examples`` (text, label) corrupted at each noise rate.

    ``models`` maps names to models. One row per (model, rate): ``model``, ``noise``,
    ``rate``, ``accuracy`` (a text that cannot be read counts as wrong), ``unknown``
    (fraction of tokens that are unknown words) and ``unreadable`` (texts without a
    prediction). The noise is :func:`noisy_texts` with ``seed``: every model sees exactly
    the same corrupted texts.
    """
    if not isinstance(models, Mapping) or not models:
        raise TypeError("models must be a non-empty dict {name: model}")
    if not examples:
        raise ValueError("examples is empty")
    texts = [t for t, _ in examples]
    labels = [y for _, y in examples]
    rows = Table()
    for rate in rates:
        corrupted = noisy_texts(texts, kind, _check_rate(rate, "rates"), seed)
        for name, model in models.items():
            table = predict_texts(model, vocab, corrupted, max_len=max_len)
            correct = sum(r["label"] == y for r, y in zip(table, labels, strict=True))
            tokens = sum(r["tokens"] for r in table)
            rows.append(
                {
                    "model": name,
                    "noise": kind,
                    "rate": float(rate),
                    "accuracy": correct / len(labels),
                    "unknown": sum(r["unknown"] for r in table) / max(tokens, 1),
                    "unreadable": sum(r["label"] is None for r in table),
                }
            )
    return rows
