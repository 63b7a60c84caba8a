"""A small text pipeline: tokenizer, vocabulary, numericalization, padding, batching.

Introduced in chapter 1. The names follow torchtext's legacy API (``get_tokenizer``,
``build_vocab_from_iterator``, ``Vocab.set_default_index``...) so that torchtext users
feel at home; torchtext itself no longer imports with current PyTorch.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence

import torch
from torch.utils.data import Dataset, Sampler

PAD, UNK = "<pad>", "<unk>"
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def normalize(text: str) -> str:
    """NFKC-normalize, fold curly quotes to ASCII and lowercase ``text``."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    text = unicodedata.normalize("NFKC", text)
    text = text.replace("\u2019", "'").replace("\u2018", "'")
    return text.lower()


def basic_tokenize(text: str) -> list[str]:
    """Split ``text`` into lowercase words and numbers; punctuation is dropped.

    >>> basic_tokenize("Profits jumped 76% to $1.13bn, didn't they?")
    ['profits', 'jumped', '76', 'to', '1', '13bn', "didn't", 'they']
    """
    return _WORD.findall(normalize(text))


_TOKENIZERS: dict[str, Callable[[str], list[str]]] = {
    "basic": basic_tokenize,
    "whitespace": lambda text: normalize(text).split(),
}


def get_tokenizer(name: str = "basic") -> Callable[[str], list[str]]:
    """Return a tokenizer by name: ``"basic"`` (words, no punctuation) or ``"whitespace"``."""
    if name not in _TOKENIZERS:
        raise ValueError(f"unknown tokenizer name={name!r}; choose from {sorted(_TOKENIZERS)}")
    return _TOKENIZERS[name]


class Vocab:
    """Maps tokens to indices and back; unknown tokens map to the default index."""

    def __init__(self, itos: Sequence[str], default_index: int | None = None):
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
        if not 0 <= index < len(self):
            raise ValueError(f"default index={index} out of range for {len(self)} tokens")
        self._default = index

    def get_default_index(self) -> int | None:
        return self._default

    def lookup_indices(self, tokens: Iterable[str]) -> list[int]:
        return [self[token] for token in tokens]

    def lookup_tokens(self, indices: Iterable[int]) -> list[str]:
        return [self._itos[i] for i in indices]

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

    ``max_tokens`` caps the size *including* the specials, as in torchtext. When
    ``"<unk>"`` is among the specials it becomes the default index.
    """
    if min_freq < 1:
        raise ValueError(f"min_freq must be >= 1, got {min_freq}")
    if max_tokens is not None and max_tokens <= len(specials):
        raise ValueError(f"max_tokens={max_tokens} leaves no room beside {len(specials)} specials")
    counts: Counter[str] = Counter()
    for tokens in iterator:
        counts.update(tokens)
    words = [w for w, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if c >= min_freq]
    words = [w for w in words if w not in specials]
    if max_tokens is not None:
        words = words[: max_tokens - len(specials)]
    itos = list(specials) + words if special_first else words + list(specials)
    vocab = Vocab(itos)
    if UNK in vocab:
        vocab.set_default_index(vocab[UNK])
    return vocab


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
    if max_len is not None and max_len < 1:
        raise ValueError(f"max_len must be >= 1, got {max_len}")
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
        self.ids: list[torch.Tensor] = []
        self.labels: list[int] = []
        for i, (text, label) in enumerate(examples):
            if not isinstance(label, int) or not 0 <= label < num_classes:
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


def pad_batch(
    sequences: Sequence[torch.Tensor], pad_index: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad 1-D id tensors to ``(batch, max_len)``; also return their lengths."""
    if len(sequences) == 0:
        raise ValueError("sequences is empty")
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
    """DataLoader collate: sort by length (longest first), pad, return (tokens, lengths, labels)."""
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
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
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
    generator = torch.Generator().manual_seed(seed)
    sampler = BucketBatchSampler(
        dataset.lengths(), batch_size, shuffle=shuffle, generator=generator
    )
    return torch.utils.data.DataLoader(dataset, batch_sampler=sampler, collate_fn=collate_batch)
