"""A small text pipeline: tokenizer, vocabulary, numericalization, padding, batching.

Introduced in chapter 1. The names follow torchtext's legacy API (``get_tokenizer``,
``build_vocab_from_iterator``, ``Vocab.set_default_index``...) so that torchtext users
feel at home; torchtext itself no longer imports with current PyTorch.

A word is a run of Unicode letters and digits (with the accents and vowel signs that
combine with them), read after NFKC normalization and lowercasing, so French, German,
Turkish or Arabic words come out whole; punctuation, symbols and emoji are dropped:

>>> basic_tokenize("Café résumé in Zürich, didn't it? ❤️")
['café', 'résumé', 'in', 'zürich', "didn't", 'it']
"""

from __future__ import annotations

import functools
import re
import sys
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence

import torch
from torch.utils.data import Dataset, Sampler

from . import checks

__all__ = [
    "BucketBatchSampler",
    "PAD",
    "TextClassificationDataset",
    "UNK",
    "Vocab",
    "basic_tokenize",
    "build_vocab_from_iterator",
    "collate_batch",
    "get_tokenizer",
    "make_loader",
    "normalize",
    "numericalize",
    "pad_batch",
]

PAD, UNK = "<pad>", "<unk>"
# variation selectors only pick a glyph (emoji or text style, a Han variant): removed
_GLYPH_SELECTORS = re.compile("[\ufe00-\ufe0f\U000e0100-\U000e01ef]")


@functools.cache
def _word_regex() -> re.Pattern[str]:
    """The word pattern, built on first use (scanning Unicode for its marks takes ~0.2 s).

    ``[^\\W_]`` is a letter or digit (``str.isalnum``), ``[^\\W\\d_]`` a letter; combining
    marks (categories Mn, Mc), which Python's ``\\w`` leaves out, may follow either.
    On lowercase ASCII text it matches exactly what ``[a-z0-9]+(?:'[a-z]+)?`` matches.
    """
    ranges, start = [], None
    for cp in range(sys.maxunicode + 2):
        is_mark = cp <= sys.maxunicode and unicodedata.category(chr(cp)) in ("Mn", "Mc")
        if is_mark and start is None:
            start = cp
        elif not is_mark and start is not None:
            ranges.append(f"\\U{start:08x}-\\U{cp - 1:08x}")
            start = None
    marks = f"[{''.join(ranges)}]+"
    word = rf"[^\W_]+(?:{marks}[^\W_]*)*"
    letters = rf"[^\W\d_]+(?:{marks}[^\W\d_]*)*"
    return re.compile(rf"{word}(?:'{letters})?")


def normalize(text: str) -> str:
    """NFKC-normalize, fold curly quotes to ASCII and lowercase ``text``."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    text = unicodedata.normalize("NFKC", text)
    text = text.replace("\u2019", "'").replace("\u2018", "'")
    return text.lower()


def basic_tokenize(text: str) -> list[str]:
    """Split ``text`` into lowercase words and numbers; punctuation is dropped.

    A word is a run of Unicode letters and digits, each with the combining marks that
    follow it, in the NFKC-normalized, lowercased text (Python's ``str.lower``); one
    apostrophe followed by letters stays inside it. The underscore, punctuation,
    symbols and emoji separate words and are dropped. Consequences worth knowing:

    - a script written without spaces (Chinese, Japanese, Thai) gives one token per
      run of letters: ``"我爱北京"`` is one token, not four words;
    - ``str.lower`` is not Turkish-aware: ``"İ"`` becomes ``"i"`` plus the combining
      dot U+0307 (kept in the word), ``"I"`` becomes ``"i"``, not ``"ı"``.

    >>> basic_tokenize("Profits jumped 76% to $1.13bn, didn't they?")
    ['profits', 'jumped', '76', 'to', '1', '13bn', "didn't", 'they']
    """
    text = normalize(text)
    if not text.isascii():
        text = _GLYPH_SELECTORS.sub("", text)
    return _word_regex().findall(text)


_TOKENIZERS: dict[str, Callable[[str], list[str]]] = {
    "basic": basic_tokenize,
    "whitespace": lambda text: normalize(text).split(),
}


def get_tokenizer(name: str = "basic") -> Callable[[str], list[str]]:
    """Return a tokenizer by name: ``"basic"`` (words, no punctuation) or ``"whitespace"``."""
    if name not in _TOKENIZERS:
        raise ValueError(f"unknown tokenizer name={name!r}; choose from {sorted(_TOKENIZERS)}")
    return _TOKENIZERS[name]


def _not_text(name: str, value, what: str) -> None:
    """Refuse a str or bytes where ``what`` (a collection of tokens) is expected."""
    if isinstance(value, str | bytes):
        raise TypeError(
            f"{name} must be {what}, got a {type(value).__name__} ({value[:40]!r}); "
            "tokenize the text first, e.g. with basic_tokenize(text)"
        )


class Vocab:
    """Maps tokens to indices and back; unknown tokens map to the default index."""

    def __init__(self, itos: Sequence[str], default_index: int | None = None):
        _not_text("itos", itos, "a list of tokens")
        if len(set(itos)) != len(itos):
            raise ValueError("itos contains duplicate tokens")
        self._itos = list(itos)
        self._stoi = {token: i for i, token in enumerate(self._itos)}
        self._default: int | None = None
        if default_index is not None:
            self.set_default_index(default_index)

    def __len__(self) -> int:
        return len(self._itos)

    def __contains__(self, token: str) -> bool:
        return token in self._stoi

    def __getitem__(self, token: str) -> int:
        if token in self._stoi:
            return self._stoi[token]
        if self._default is None:
            raise KeyError(f"token {token!r} not in vocabulary and no default index is set")
        return self._default

    def __call__(self, tokens: Iterable[str]) -> list[int]:
        return self.lookup_indices(tokens)

    def set_default_index(self, index: int) -> None:
        index = checks.integer("index", index)
        if not 0 <= index < len(self):
            raise ValueError(f"default index={index} out of range for {len(self)} tokens")
        self._default = index

    def get_default_index(self) -> int | None:
        return self._default

    def lookup_indices(self, tokens: Iterable[str]) -> list[int]:
        _not_text("tokens", tokens, "a list of tokens")
        return [self[token] for token in tokens]

    def lookup_tokens(self, indices: Iterable[int]) -> list[str]:
        """The tokens of ``indices``; an id outside ``[0, len(vocab))`` is an IndexError."""
        tokens = []
        for position, index in enumerate(indices):
            if isinstance(index, bool) or not hasattr(index, "__index__"):
                raise TypeError(
                    f"indices[{position}] must be an int token id, got {index!r} "
                    f"({type(index).__name__})"
                )
            i = index.__index__()
            if not 0 <= i < len(self._itos):
                raise IndexError(
                    f"indices[{position}]: token id {i} is out of range for a vocabulary "
                    f"of size {len(self._itos)} (ids 0..{len(self._itos) - 1})"
                )
            tokens.append(self._itos[i])
        return tokens

    def get_itos(self) -> list[str]:
        return list(self._itos)

    def get_stoi(self) -> dict[str, int]:
        return dict(self._stoi)

    def state_dict(self) -> dict:
        """Plain-data form, safe for ``torch.load(weights_only=True)``."""
        return {"itos": list(self._itos), "default_index": self._default}

    @classmethod
    def from_state_dict(cls, state: dict) -> Vocab:
        return cls(state["itos"], state["default_index"])

    def __repr__(self) -> str:
        return f"Vocab({len(self)} tokens, default_index={self._default})"


def build_vocab_from_iterator(
    iterator: Iterable[Iterable[str]],
    min_freq: int = 1,
    specials: Sequence[str] = (PAD, UNK),
    special_first: bool = True,
    max_tokens: int | None = None,
) -> Vocab:
    """Build a :class:`Vocab` from token lists, most frequent first (ties alphabetical).

    ``iterator`` yields one list of tokens per text (``map(basic_tokenize, texts)``);
    raw strings are refused. ``max_tokens`` caps the size *including* the specials, as
    in torchtext. When ``"<unk>"`` is among the specials it becomes the default index.
    """
    min_freq = checks.positive_int("min_freq", min_freq)
    _not_text("specials", specials, "a list of special tokens")
    special_first = checks.boolean("special_first", special_first)
    if max_tokens is not None:
        max_tokens = checks.integer("max_tokens", max_tokens, allowed="an int or None")
    if max_tokens is not None and max_tokens <= len(specials):
        raise ValueError(f"max_tokens={max_tokens} leaves no room beside {len(specials)} specials")
    _not_text("iterator", iterator, "an iterable of token lists")
    counts: Counter[str] = Counter()
    for i, tokens in enumerate(iterator):
        _not_text(f"iterator item {i}", tokens, "a list of tokens")
        counts.update(tokens)
    for token in [*specials, *counts]:
        if not isinstance(token, str):
            raise TypeError(f"tokens must be str, got {token!r} ({type(token).__name__})")
    words = [w for w, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if c >= min_freq]
    words = [w for w in words if w not in specials]
    if max_tokens is not None:
        words = words[: max_tokens - len(specials)]
    itos = list(specials) + words if special_first else words + list(specials)
    vocab = Vocab(itos)
    if UNK in vocab:
        vocab.set_default_index(vocab[UNK])
    return vocab


def _max_len(max_len: int | None) -> int | None:
    if max_len is None:
        return None
    return checks.integer("max_len", max_len, minimum=1, allowed="a positive int or None")


def numericalize(
    text: str,
    vocab: Vocab,
    *,
    max_len: int | None = None,
    tokenizer: Callable[[str], list[str]] = basic_tokenize,
    allow_unknown_only: bool = False,
) -> torch.Tensor:
    """Turn one text into a 1-D LongTensor of token ids, truncated to ``max_len``.

    Raises ValueError for a text with no tokens, or (unless ``allow_unknown_only``)
    one whose tokens are all unknown: the model would have nothing to read.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    max_len = _max_len(max_len)
    allow_unknown_only = checks.boolean("allow_unknown_only", allow_unknown_only)
    tokens = tokenizer(text)
    if not tokens:
        raise ValueError(f"text has no tokens after tokenization: {text[:40]!r}")
    ids = vocab.lookup_indices(tokens[:max_len] if max_len else tokens)
    unk = vocab.get_default_index()
    if not allow_unknown_only and unk is not None and all(i == unk for i in ids):
        raise ValueError(
            f"text has only unknown tokens ({len(ids)} of them), nothing for the model to read: "
            f"{text[:40]!r}"
        )
    return torch.tensor(ids, dtype=torch.long)


class TextClassificationDataset(Dataset):
    """Numericalized (token ids, label) pairs, built once from (text, label) pairs."""

    def __init__(
        self,
        examples: Sequence[tuple[str, int]],
        vocab: Vocab,
        *,
        num_classes: int,
        max_len: int | None = None,
        tokenizer: Callable[[str], list[str]] = basic_tokenize,
    ):
        num_classes = checks.positive_int("num_classes", num_classes)
        max_len = _max_len(max_len)
        self.ids: list[torch.Tensor] = []
        self.labels: list[int] = []
        for i, (text, label) in enumerate(examples):
            if (
                isinstance(label, bool)
                or not isinstance(label, int)
                or not 0 <= label < num_classes
            ):
                raise ValueError(
                    f"examples[{i}] has label={label!r}, expected 0..{num_classes - 1}"
                )
            try:
                self.ids.append(numericalize(text, vocab, max_len=max_len, tokenizer=tokenizer))
            except ValueError as err:
                raise ValueError(f"examples[{i}]: {err}") from None
            self.labels.append(label)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.ids[i], self.labels[i]

    def lengths(self) -> list[int]:
        return [len(x) for x in self.ids]


def _check_ids(name: str, ids) -> None:
    """Refuse anything but a 1-D tensor of integer token ids (one text)."""
    if not isinstance(ids, torch.Tensor):
        raise TypeError(
            f"{name} must be a 1-D tensor of token ids (one text), got {type(ids).__name__}"
        )
    if ids.dim() != 1:
        raise ValueError(
            f"{name} must be a 1-D tensor of token ids (one text), got shape {tuple(ids.shape)}"
        )
    if len(ids) and (ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool):
        raise TypeError(f"{name} must hold integer token ids (torch.int64), got {ids.dtype}")


def pad_batch(
    sequences: Sequence[torch.Tensor], pad_index: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad 1-D id tensors to ``(batch, max_len)``; also return their lengths."""
    pad_index = checks.integer("pad_index", pad_index)
    if len(sequences) == 0:
        raise ValueError("sequences is empty")
    for i, seq in enumerate(sequences):
        _check_ids(f"sequences[{i}]", seq)
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.long)
    if (lengths == 0).any():
        raise ValueError("sequences contains an empty sequence")
    padded = torch.full((len(sequences), int(lengths.max())), pad_index, dtype=torch.long)
    for row, seq in enumerate(sequences):
        padded[row, : len(seq)] = seq
    return padded, lengths


def collate_batch(
    batch: Sequence[tuple[torch.Tensor, int]], pad_index: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """DataLoader collate: sort by length (longest first), pad, return (tokens, lengths, labels).

    ``batch`` holds ``(ids, label)`` pairs, ``ids`` a 1-D tensor of one text's token ids.
    """
    for i, item in enumerate(batch):
        if not isinstance(item, tuple | list) or len(item) != 2:
            raise TypeError(f"batch[{i}] must be an (ids, label) pair, got {type(item).__name__}")
        _check_ids(f"batch[{i}] ids", item[0])
    batch = sorted(batch, key=lambda item: len(item[0]), reverse=True)
    tokens, lengths = pad_batch([ids for ids, _ in batch], pad_index)
    labels = torch.tensor([label for _, label in batch], dtype=torch.long)
    return tokens, lengths, labels


class BucketBatchSampler(Sampler[list[int]]):
    """Yield batches of indices whose sequences have similar lengths.

    Indices are shuffled, cut into pools of ``batch_size * pool_factor``, each pool is
    sorted by length and cut into batches; batch order is shuffled again. Less padding,
    the same randomness from epoch to epoch as a plain shuffle (seeded by ``generator``).
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        *,
        shuffle: bool = True,
        pool_factor: int = 50,
        generator: torch.Generator | None = None,
    ):
        batch_size = checks.positive_int("batch_size", batch_size)
        shuffle = checks.boolean("shuffle", shuffle)
        pool_factor = checks.positive_int("pool_factor", pool_factor)
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.pool = batch_size * pool_factor
        self.generator = generator

    def __len__(self) -> int:
        return (len(self.lengths) + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[list[int]]:
        n = len(self.lengths)
        order = torch.randperm(n, generator=self.generator).tolist() if self.shuffle else range(n)
        order = list(order)
        batches = []
        for start in range(0, n, self.pool):
            pool = sorted(order[start : start + self.pool], key=lambda i: -self.lengths[i])
            batches += [pool[i : i + self.batch_size] for i in range(0, len(pool), self.batch_size)]
        if self.shuffle:
            batches = [batches[i] for i in torch.randperm(len(batches), generator=self.generator)]
        yield from batches


def make_loader(
    dataset: TextClassificationDataset,
    batch_size: int,
    *,
    shuffle: bool = False,
    seed: int = 0,
) -> torch.utils.data.DataLoader:
    """A DataLoader that buckets by length and pads with :func:`collate_batch`."""
    batch_size = checks.positive_int("batch_size", batch_size)
    shuffle = checks.boolean("shuffle", shuffle)
    seed = checks.integer("seed", seed)
    generator = torch.Generator().manual_seed(seed)
    sampler = BucketBatchSampler(
        dataset.lengths(), batch_size, shuffle=shuffle, generator=generator
    )
    return torch.utils.data.DataLoader(dataset, batch_sampler=sampler, collate_fn=collate_batch)
