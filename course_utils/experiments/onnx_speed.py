"""Eager PyTorch against ONNX Runtime for chapter 6's deployed models, in one run.

For each model (an RNNClassifier in eval mode): export it with
:func:`~course_utils.deploy.onnx_runtime.export_onnx`, check the session against eager
PyTorch on a whole loader (same labels, largest logit difference), quantize it to int8
both ways (PyTorch's :func:`~course_utils.deploy.export.quantize_int8` and ONNX Runtime's
:func:`~course_utils.deploy.onnx_runtime.quantize_onnx_int8`), then time the four
versions of every model in the same interleaved rounds
(:func:`~course_utils.measure.compare_latency`), ONNX Runtime with as many threads as
PyTorch. Speed-ups are PyTorch's time over ONNX Runtime's at the same precision; read them
with :func:`~course_utils.verdicts.speed`'s margin.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ..checks import integer
from ..deploy.export import compare_outputs, quantize_int8
from ..deploy.onnx_runtime import OnnxClassifier, export_onnx, quantize_onnx_int8
from ..measure import compare_latency
from ..models import RNNClassifier
from ..report import Table
from ..train import predict

__all__ = ["OnnxComparison", "onnx_comparison"]


@dataclass
class OnnxComparison:
    """``checks``: one row per model (file sizes, agreement with eager PyTorch, accuracies);
    ``timings``: one row per model and precision (milliseconds per batch size, speed-ups);
    ``largest_diff``: per model, the largest logit difference between ONNX Runtime and
    eager PyTorch in float32 (the table shows it in exponent form)."""

    checks: Table
    timings: Table
    batch_sizes: tuple[int, ...]
    largest_diff: dict[str, float]


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_").lower() or "model"


def _accuracy(model, loader) -> float:
    preds, labels = predict(model, loader)
    return float((preds == labels).float().mean())


def onnx_comparison(
    models: Mapping[str, RNNClassifier],
    loader,
    folder: str | os.PathLike,
    *,
    batch_sizes: Sequence[int] = (1, 64),
    seq_len: int = 400,
    rounds: int = 3,
    repeats: int = 7,
    threads: int = 1,
) -> OnnxComparison:
    """Export, check, quantize and time every model of ``models`` (name -> model).

    ``loader`` yields ``(tokens, lengths, labels)`` batches (the whole test set): every
    check and accuracy is over all of it. The ``.onnx`` files go into ``folder``.
    """
    if not models:
        raise ValueError("models must not be empty")
    for name, model in models.items():
        if not isinstance(model, RNNClassifier):
            raise TypeError(
                f"models[{name!r}] must be an RNNClassifier, got {type(model).__name__}"
            )
    batch_sizes = tuple(integer("batch size", b, minimum=1) for b in batch_sizes)
    threads = integer("threads", threads, minimum=1)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {name: folder / f"{_slug(name)}.onnx" for name in models}
    # each export runs in its own Python process (export_onnx): two at a time
    with ThreadPoolExecutor(max_workers=2) as pool:
        exported = pool.map(export_onnx, models.values(), paths.values())
        sizes = dict(zip(models, exported, strict=True))
    checks, versions, largest = Table(), {}, {}
    for name, model in models.items():
        model = model.eval()
        fp32, int8 = paths[name], folder / f"{_slug(name)}_int8.onnx"
        fp32_bytes = sizes[name]
        int8_bytes = quantize_onnx_int8(fp32, int8)
        session, session8 = (OnnxClassifier(p, threads=threads) for p in (fp32, int8))
        torch8 = quantize_int8(model)
        same = compare_outputs(model, session, loader)
        checks.append(
            {
                "model": name,
                "onnx MB": fp32_bytes / 1e6,
                "onnx int8 MB": int8_bytes / 1e6,
                "examples": same["examples"],
                "same labels": same["label_agreement"],
                "max |logit diff|": f"{same['max_abs_diff']:.1e}",
                "test acc": _accuracy(model, loader),
                "test acc int8 (PyTorch)": _accuracy(torch8, loader),
                "test acc int8 (ONNX Runtime)": _accuracy(session8, loader),
            }
        )
        largest[name] = same["max_abs_diff"]
        versions[name] = {
            "fp32": {"PyTorch": model, "ONNX Runtime": session},
            "int8": {"PyTorch": torch8, "ONNX Runtime": session8},
        }
    flat = {
        (name, precision, runtime): m
        for name, by_precision in versions.items()
        for precision, by_runtime in by_precision.items()
        for runtime, m in by_runtime.items()
    }
    ms = compare_latency(
        flat,
        seq_len=seq_len,
        batch_sizes=batch_sizes,
        rounds=rounds,
        repeats=repeats,
        threads=threads,
    )
    timings = Table()
    for name, by_precision in versions.items():
        for precision in by_precision:
            row = {"model": name, "precision": precision}
            for bs in batch_sizes:
                eager, ort = (
                    ms[(name, precision, "PyTorch")][bs],
                    ms[(name, precision, "ONNX Runtime")][bs],
                )
                row[f"PyTorch b{bs} (ms)"] = eager
                row[f"ONNX Runtime b{bs} (ms)"] = ort
                row[f"ONNX Runtime speed-up b{bs}"] = eager / ort
            timings.append(row)
    return OnnxComparison(checks, timings, batch_sizes, largest)
