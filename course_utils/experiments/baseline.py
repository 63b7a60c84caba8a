"""The reference model every chapter starts from, trained once and cached.

Introduced in chapter 1. ``get_baseline()`` trains the dense LSTM classifier on BBC News
(about half a minute on two CPU cores) and caches it outside git, keyed by the config
and a hash of the data. Later calls load it in about a second. A cache file that is
corrupt, refused, of an older format, or that belongs to another config or other data,
is detected and rebuilt; a cache folder that cannot be written costs a warning, never
the trained model.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from ..checkpoints import load_cached, save_cached
from ..data import DatasetSplits, load_dataset
from ..models import RNNClassifier
from ..seeding import keeps_global_rng, set_seed
from ..settings import cache_dir as default_cache_dir
from ..settings import default_device
from ..text import (
    TextClassificationDataset,
    Vocab,
    basic_tokenize,
    build_vocab_from_iterator,
    make_loader,
)
from ..train import evaluate, train_model

__all__ = [
    "Baseline",
    "BaselineConfig",
    "build_vocab",
    "encode_splits",
    "get_baseline",
    "new_model",
]


@dataclass(frozen=True)
class BaselineConfig:
    """Everything that defines the reference model; part of the cache key."""

    dataset: str = "bbc_news"
    data_seed: int = 0
    max_len: int = 400
    min_freq: int = 2
    max_vocab: int = 20_000
    cell: str = "lstm"
    embed_dim: int = 64
    embed_init_std: float | None = 0.1
    hidden_size: int = 128
    num_layers: int = 1
    bidirectional: bool = False
    pooling: str = "max"
    dropout: float = 0.3
    lr: float = 3e-3
    batch_size: int = 16
    epochs: int = 10
    patience: int | None = 4
    clip: float | None = 1.0

    def key(self, data_fingerprint: str, seed: int) -> str:
        blob = json.dumps(
            {
                "config": dataclasses.asdict(self),
                "data": data_fingerprint,
                "seed": seed,
            },
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()


@dataclass
class Baseline:
    """A trained classifier with its data, vocabulary and record.

    Its :meth:`loader` makes it a :class:`~course_utils.train.TrainingData`: every pruning
    function that trains can take the baseline itself.
    """

    model: RNNClassifier
    vocab: Vocab
    data: DatasetSplits
    datasets: dict[str, TextClassificationDataset]
    config: BaselineConfig
    seed: int
    history: dict
    metrics: dict
    from_cache: bool

    def loader(
        self,
        split: str,
        batch_size: int | None = None,
        *,
        shuffle: bool | None = None,
        seed: int | None = None,
    ):
        """A bucketing DataLoader over ``"train"``, ``"valid"`` or ``"test"``.

        Training data is shuffled by default; ``batch_size`` defaults to the config's
        for train and 256 otherwise.
        """
        if split not in self.datasets:
            raise ValueError(f"unknown split={split!r}; choose from {sorted(self.datasets)}")
        if batch_size is None:
            batch_size = self.config.batch_size if split == "train" else 256
        if shuffle is None:
            shuffle = split == "train"
        return make_loader(
            self.datasets[split],
            batch_size,
            shuffle=shuffle,
            seed=self.seed if seed is None else seed,
        )

    @keeps_global_rng
    def initial_model(self) -> RNNClassifier:
        """The weights training started from (theta_0), rebuilt from the seed.

        ``get_baseline`` seeds with ``set_seed(seed)`` just before building the model, so
        the same two steps give back the initialization of the cached model (chapter 2's
        lottery tickets rewind to it; chapter 3's SNIP scores it).
        """
        set_seed(self.seed)
        model = new_model(self.config, len(self.vocab), self.data.num_classes)
        return model.to(next(self.model.parameters()).device)

    def copy_model(self) -> RNNClassifier:
        """An independent copy of the trained model, to prune without touching the original."""
        return copy.deepcopy(self.model)


def encode_splits(
    data: DatasetSplits, vocab: Vocab, max_len: int
) -> dict[str, TextClassificationDataset]:
    k = data.num_classes
    return {
        split: TextClassificationDataset(
            getattr(data, split), vocab, num_classes=k, max_len=max_len
        )
        for split in ("train", "valid", "test")
    }


def build_vocab(data: DatasetSplits, config: BaselineConfig) -> Vocab:
    """Vocabulary from the training split only (min_freq, max size, <pad>=0, <unk>=1)."""
    return build_vocab_from_iterator(
        (basic_tokenize(text) for text, _ in data.train),
        min_freq=config.min_freq,
        max_tokens=config.max_vocab,
    )


def new_model(config: BaselineConfig, vocab_size: int, num_classes: int) -> RNNClassifier:
    return RNNClassifier(
        vocab_size,
        num_classes,
        embed_dim=config.embed_dim,
        hidden_size=config.hidden_size,
        num_layers=config.num_layers,
        cell=config.cell,
        bidirectional=config.bidirectional,
        pooling=config.pooling,
        dropout=config.dropout,
        max_len=config.max_len,
        embed_init_std=config.embed_init_std,
    )


def _resolve_config(config, overrides: dict) -> BaselineConfig:
    """``config`` (default: ``BaselineConfig()``) with the keyword ``overrides`` applied."""
    if config is not None and not isinstance(config, BaselineConfig):
        fields = (
            ", ".join(f"{k}={v!r}" for k, v in config.items())
            if isinstance(config, dict)
            else "epochs=1"
        )
        raise TypeError(
            f"config must be a BaselineConfig or None, got {type(config).__name__}: pass "
            f"get_baseline(BaselineConfig({fields})) or get_baseline({fields})"
        )
    names = [f.name for f in dataclasses.fields(BaselineConfig)]
    unknown = sorted(set(overrides) - set(names))
    if unknown:
        raise TypeError(f"unknown BaselineConfig field(s) {unknown}; the fields are {names}")
    return dataclasses.replace(config or BaselineConfig(), **overrides)


def _from_cache(
    model: RNNClassifier, extra: dict, data: DatasetSplits, config, seed: int, path: Path
) -> Baseline | None:
    """The Baseline of a cache entry, or None (with a warning) when its record is unusable."""
    try:
        vocab = Vocab.from_state_dict(extra["vocab"])
        history, metrics = dict(extra["history"]), dict(extra["metrics"])
        if len(vocab) != model.embedding.num_embeddings:
            raise ValueError(
                f"{len(vocab)} words for {model.embedding.num_embeddings} embedding rows"
            )
        if model.classifier.out_features != data.num_classes:
            raise ValueError(
                f"{model.classifier.out_features} outputs for {data.num_classes} classes"
            )
    except (KeyError, TypeError, ValueError) as err:
        warnings.warn(
            f"Baseline cache {path} is not usable: its vocabulary or record does not fit "
            f"({type(err).__name__}: {err}). Rebuilding it.",
            stacklevel=3,
        )
        return None
    datasets = encode_splits(data, vocab, config.max_len)
    return Baseline(model, vocab, data, datasets, config, seed, history, metrics, from_cache=True)


@keeps_global_rng
def get_baseline(
    config: BaselineConfig | None = None,
    *,
    seed: int = 0,
    cache: bool = True,
    cache_dir: str | Path | None = None,
    progress: bool | None = None,
    **overrides,
) -> Baseline:
    """Train the reference classifier once and cache it; later calls load it.

    ``seed`` seeds the model's initialization and the batch order (the data split is
    fixed by ``config.data_seed``). Keyword ``overrides`` replace config fields, e.g.
    ``get_baseline(cell="gru")``. Returns a :class:`Baseline`. The cache is one
    safetensors file per config, seed and data (``baseline-<key>.safetensors``); a folder
    that cannot be written gives a warning and the model is returned all the same.
    """
    config = _resolve_config(config, overrides)
    data = load_dataset(config.dataset, seed=config.data_seed)
    key = config.key(data.fingerprint(), seed)
    path = Path(cache_dir or default_cache_dir()) / f"baseline-{key[:20]}.safetensors"
    device = default_device()

    cached = (
        load_cached(path, key, what="Baseline", stale="for another config or other data")
        if cache
        else None
    )
    if cached is not None:
        restored = _from_cache(*cached, data, config, seed, path)
        if restored is not None:
            restored.model.to(device)
            return restored

    baseline = _trained(data, config, seed, device, progress)
    if cache:
        save_cached(
            path,
            baseline.model.cpu(),
            what="Baseline",
            key=key,
            vocab=baseline.vocab.state_dict(),
            history=baseline.history,
            metrics=baseline.metrics,
        )
        baseline.model.to(device)
    return baseline


@keeps_global_rng
def _trained(
    data: DatasetSplits,
    config: BaselineConfig,
    seed: int,
    device: torch.device,
    progress: bool | None,
) -> Baseline:
    """Build the vocabulary, initialize the model from ``seed``, train it and measure it."""
    vocab = build_vocab(data, config)
    datasets = encode_splits(data, vocab, config.max_len)
    set_seed(seed)
    model = new_model(config, len(vocab), data.num_classes).to(device)
    baseline = Baseline(model, vocab, data, datasets, config, seed, {}, {}, from_cache=False)
    start = time.perf_counter()
    history = train_model(
        model,
        baseline.loader("train"),
        baseline.loader("valid"),
        epochs=config.epochs,
        lr=config.lr,
        clip=config.clip,
        patience=config.patience,
        progress=progress,
        desc=f"baseline {config.cell} seed {seed}",
    )
    seconds = time.perf_counter() - start
    baseline.history = history.as_dict()
    baseline.metrics = {
        "valid_accuracy": evaluate(model, baseline.loader("valid"))["accuracy"],
        "test_accuracy": evaluate(model, baseline.loader("test"))["accuracy"],
        "train_seconds": seconds,
        "torch": str(torch.__version__),
        "threads": torch.get_num_threads(),
    }
    return baseline
