"""Chapter 1: the dense baseline's accuracy over seeds and its training time."""

from __future__ import annotations

from common import md_table, median_spread, pct, seeds

from course_utils import get_baseline
from course_utils.measure import count_parameters, measure_latency, size_on_disk

__all__ = ["run"]


def run(mode: str) -> dict:
    per_seed = {}
    for seed in seeds(mode):
        b = get_baseline(seed=seed, cache=False)  # always retrain: the time is measured
        per_seed[seed] = {
            "test_accuracy": b.metrics["test_accuracy"],
            "valid_accuracy": b.metrics["valid_accuracy"],
            "train_seconds": b.metrics["train_seconds"],
            "epochs": len(b.history["epoch"]),
        }
    b = get_baseline(seed=0)
    lat = {
        bs: measure_latency(b.model, batch_size=bs, seq_len=b.config.max_len).median_ms
        for bs in (1, 64)
    }
    results = {
        "per_seed": per_seed,
        "test_accuracy": median_spread([r["test_accuracy"] for r in per_seed.values()]),
        "train_seconds": median_spread([r["train_seconds"] for r in per_seed.values()]),
        "parameters": count_parameters(b.model),
        "size": size_on_disk(b.model),
        "latency_ms": lat,
        "threads_for_training": b.metrics["threads"],
    }
    t, params = results["train_seconds"], results["parameters"]
    markdown = "\n".join(
        [
            "## Chapter 1: dense baseline (LSTM 128, BBC News, deduplicated)",
            "",
            md_table(
                [
                    "test accuracy (median, min-max)",
                    "training time",
                    "parameters (embedding)",
                    "fp32 size",
                    "latency b=1 / b=64 (1 thread)",
                ],
                [
                    [
                        pct(results["test_accuracy"]),
                        f"{t['median']:.0f} s ({t['min']:.0f}-{t['max']:.0f})",
                        f"{params['total']:,} ({params['embedding']:,})",
                        f"{results['size']['raw_bytes'] / 1e6:.2f} MB",
                        f"{lat[1]:.1f} ms / {lat[64]:.0f} ms",
                    ]
                ],
            ),
            "",
            f"Seeds: {', '.join(str(s) for s in per_seed)}; training uses "
            f"{results['threads_for_training']} threads.",
        ]
    )
    return {"results": results, "markdown": markdown}
