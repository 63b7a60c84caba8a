"""Measuring a model honestly: parameters, non-zeros, size on disk, CPU latency.

Introduced in chapter 1 and used by every chapter. The embedding is always reported
apart: in a text classifier it holds most of the parameters.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import statistics
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .checks import integer
from .models import tensor_group
from .report import Table

__all__ = [
    "Latency",
    "compare_latency",
    "count_nonzero",
    "count_parameters",
    "measure_latency",
    "model_device",
    "num_threads",
    "parameter_table",
    "serialized_state",
    "size_on_disk",
    "state_without_embedding",
]


def parameter_table(model: nn.Module) -> Table:
    """One row per parameter: name, group, shape, count, non-zeros, sparsity."""
    rows = Table()
    for name, p in model.named_parameters():
        nonzero = int(torch.count_nonzero(p.detach()))
        rows.append(
            {
                "tensor": name,
                "group": tensor_group(name),
                "shape": "x".join(map(str, p.shape)),
                "params": p.numel(),
                "nonzero": nonzero,
                "sparsity": 1 - nonzero / p.numel(),
            }
        )
    return rows


def count_parameters(model: nn.Module) -> dict[str, int]:
    """Parameter counts per group (embedding, recurrent, classifier) and in total."""
    counts = {"embedding": 0, "recurrent": 0, "classifier": 0, "other": 0}
    for name, p in model.named_parameters():
        counts[tensor_group(name)] += p.numel()
    counts = {k: v for k, v in counts.items() if v or k != "other"}
    counts["total"] = sum(counts.values())
    counts["total_without_embedding"] = counts["total"] - counts["embedding"]
    return counts


def count_nonzero(model: nn.Module) -> dict[str, int]:
    """Non-zero parameter counts per group and in total (same keys as count_parameters)."""
    counts = {"embedding": 0, "recurrent": 0, "classifier": 0, "other": 0}
    for name, p in model.named_parameters():
        counts[tensor_group(name)] += int(torch.count_nonzero(p.detach()))
    counts = {k: v for k, v in counts.items() if v or k != "other"}
    counts["total"] = sum(counts.values())
    counts["total_without_embedding"] = counts["total"] - counts["embedding"]
    return counts


def serialized_state(model_or_state: nn.Module | dict) -> bytes:
    """The bytes torch.save writes for a model's state_dict (fp32 as stored)."""
    state = model_or_state.state_dict() if isinstance(model_or_state, nn.Module) else model_or_state
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def size_on_disk(model_or_state: nn.Module | dict) -> dict[str, int]:
    """Bytes of the saved state_dict, raw and gzip-compressed (level 9, fixed mtime)."""
    raw = serialized_state(model_or_state)
    return {"raw_bytes": len(raw), "gzip_bytes": len(gzip.compress(raw, 9, mtime=0))}


@contextlib.contextmanager
def num_threads(threads: int) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(threads)``, then restore."""
    threads = integer("threads", threads, minimum=1)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass(frozen=True)
class Latency:
    """Milliseconds per forward pass: median and inter-quartile range over repeats."""

    median_ms: float
    q25_ms: float
    q75_ms: float
    batch_size: int
    seq_len: int
    threads: int
    repeats: int


def model_device(model: nn.Module) -> torch.device:
    """Where ``model``'s parameters live (the CPU for a model without any, such as an
    ONNX Runtime session)."""
    return next(model.parameters(), torch.empty(0)).device


def measure_latency(
    model: nn.Module,
    *,
    batch_size: int,
    seq_len: int = 256,
    threads: int = 1,
    repeats: int = 30,
    warmup: int = 5,
    seed: int = 0,
) -> Latency:
    """Time ``model(tokens, lengths)`` on random full-length inputs in inference mode.

    Warm-up runs first; then the median of ``repeats`` timed runs, with a fixed number
    of threads. Compare two models only with numbers from the same run and settings.
    """
    batch_size = integer("batch_size", batch_size, minimum=1)
    seq_len = integer("seq_len", seq_len, minimum=1)
    repeats = integer("repeats", repeats, minimum=1)
    warmup = integer("warmup", warmup, minimum=0)
    # the course's models (and SparseRNN) have an embedding; an ONNX Runtime session,
    # no parameters and a vocab_size
    device = model_device(model)
    vocab = getattr(model, "vocab_size", None) or model.embedding.num_embeddings
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.randint(1, vocab, (batch_size, seq_len), generator=generator).to(device)
    lengths = torch.full((batch_size,), seq_len, dtype=torch.long, device=device)
    was_training = model.training
    model.eval()
    times = []
    with num_threads(threads), torch.inference_mode():
        for _ in range(warmup):
            model(tokens, lengths)
        for _ in range(repeats):
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            model(tokens, lengths)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append((time.perf_counter() - start) * 1e3)
    model.train(was_training)
    q = statistics.quantiles(times, n=4) if len(times) > 1 else [times[0]] * 3
    return Latency(statistics.median(times), q[0], q[2], batch_size, seq_len, threads, repeats)


def compare_latency(
    models: Mapping[str, nn.Module],
    *,
    seq_len: int = 256,
    batch_sizes: Sequence[int] = (1, 64),
    rounds: int = 3,
    repeats: int = 30,
    threads: int = 1,
) -> dict[str, dict[int, float]]:
    """Median latency (ms) of each model per batch size, measured in the same run.

    Each round times every batch size for every model in turn, so that a change in
    machine load hits all models alike; the result is the median over ``rounds`` of
    each :func:`measure_latency` median. Each round starts from the next model, so that
    the first measurement after a change of batch size (often slower: caches and
    allocations) is not always the same model's. Use it for speed-up ratios.
    """
    rounds = integer("rounds", rounds, minimum=1)
    runs = {name: {bs: [] for bs in batch_sizes} for name in models}
    order = list(models.items())
    for r in range(rounds):
        shift = r % len(order) if order else 0
        for bs in batch_sizes:
            for name, model in order[shift:] + order[:shift]:
                lat = measure_latency(
                    model, batch_size=bs, seq_len=seq_len, repeats=repeats, threads=threads
                )
                runs[name][bs].append(lat.median_ms)
    return {n: {bs: statistics.median(v) for bs, v in r.items()} for n, r in runs.items()}


def state_without_embedding(model: nn.Module) -> dict:
    """The state_dict minus the embedding: what the recurrent part and classifier weigh."""
    return {k: v for k, v in model.state_dict().items() if not k.startswith("embedding.")}
