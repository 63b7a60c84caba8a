"""Chapter 2: AGP magnitude pruning vs random pruning, and the sparsity explorer's latency.

AGP (Zhu & Gupta 2017) prunes the recurrent and classifier weights (embedding excluded)
during fine-tuning of each seed's cached baseline; the test accuracy is compared with the
same seed's dense test accuracy. Random pruning with the same schedule and fine-tuning is
the floor. Targets: <= 1.0 point below dense at 90 % (median of 3 seeds), <= 2.5 at 95 %.
"""

from __future__ import annotations

import statistics
import time

import torch
from common import md_table, median_spread, pct, seeds

from course_utils import get_baseline
from course_utils.measure import measure_latency, size_on_disk
from course_utils.pruning import agp_pruning, remove_masks, sparsity_report
from course_utils.train import evaluate
from course_utils.widgets import sparsity_explorer

__all__ = [
    "RECIPE",
    "SPARSITIES",
    "TARGET_DROP",
    "explorer_latency",
    "markdown",
    "prune_seed",
    "run",
    "summarize",
]

# the recipe: one global magnitude threshold over weight_ih, weight_hh and the classifier,
# s_i = 0, an update every 10 steps over 4 epochs (about 37 updates), then 2 epochs at s_f
RECIPE = {
    "full": {"epochs": 6, "prune_epochs": 4, "frequency": 10, "lr": 1e-3, "scope": "global"},
    "quick": {"epochs": 3, "prune_epochs": 2, "frequency": 10, "lr": 1e-3, "scope": "global"},
}
SPARSITIES = {"full": (0.9, 0.95, 0.98), "quick": (0.9, 0.95)}
TARGET_DROP = {0.9: 1.0, 0.95: 2.5}
SLIDER_MOVES = [round(0.5 + 0.025 * i, 3) for i in range(20)]  # 0.50 ... 0.975


def prune_seed(seed: int, sparsity: float, criterion: str, recipe: dict) -> dict:
    baseline = get_baseline(seed=seed)
    model = baseline.copy_model()
    start = time.perf_counter()
    run = agp_pruning(
        model, baseline, sparsity, criterion=criterion, seed=seed, progress=False, **recipe
    )
    seconds = time.perf_counter() - start
    dense = evaluate(baseline.model, baseline.loader("test"))["accuracy"]
    pruned = evaluate(model, baseline.loader("test"))["accuracy"]
    report = {r["tensor"]: r["sparsity"] for r in sparsity_report(model)}
    return {
        "dense_test_accuracy": dense,
        "test_accuracy": pruned,
        "drop_points": 100 * (dense - pruned),
        "valid_accuracy": run.valid_accuracy,
        "sparsity": run.sparsity,
        "per_tensor_sparsity": report,
        "seconds": seconds,
        "model": model,
    }


def explorer_latency(baseline) -> dict:
    """Milliseconds per slider move of the explorer (compute, labels and heat map)."""
    start = time.perf_counter()
    explorer = sparsity_explorer(baseline.model, baseline)
    build = time.perf_counter() - start
    times = []
    for value in SLIDER_MOVES:
        start = time.perf_counter()
        explorer.slider.value = value
        times.append(1e3 * (time.perf_counter() - start))
        if explorer.error.value:
            raise RuntimeError(explorer.error.value)
    return {
        "median_ms": statistics.median(times),
        "max_ms": max(times),
        "moves": len(times),
        "build_seconds": build,
        "validation_examples": explorer.cache.examples,
        "threads": torch.get_num_threads(),
    }


def summarize(per_run: dict, grid, seeds_used: list[int]) -> dict:
    """Per sparsity: both criteria's test accuracy and drop over seeds, and the target."""
    summary = {}
    for sparsity in grid:
        row = {}
        for criterion in ("magnitude", "random"):
            runs = [per_run[f"{criterion}-{sparsity}-seed{s}"] for s in seeds_used]
            row[criterion] = {
                "test_accuracy": median_spread([r["test_accuracy"] for r in runs]),
                "drop_points": median_spread([r["drop_points"] for r in runs]),
            }
        row["dense_test_accuracy"] = median_spread(
            [per_run[f"magnitude-{sparsity}-seed{s}"]["dense_test_accuracy"] for s in seeds_used]
        )
        target = TARGET_DROP.get(sparsity)
        row["target_drop_points"] = target
        row["met"] = None if target is None else row["magnitude"]["drop_points"]["median"] <= target
        summary[str(sparsity)] = row
    return summary


def run(mode: str) -> dict:
    recipe, grid = RECIPE[mode], SPARSITIES[mode]
    per_run, kept_model = {}, None
    for sparsity in grid:
        for criterion in ("magnitude", "random"):
            for seed in seeds(mode):
                result = prune_seed(seed, sparsity, criterion, recipe)
                model = result.pop("model")
                if seed == 0 and criterion == "magnitude" and sparsity == 0.9:
                    kept_model = model
                per_run[f"{criterion}-{sparsity}-seed{seed}"] = result
    baseline = get_baseline(seed=0)
    latency = explorer_latency(baseline)
    dense_state, pruned = baseline.model, kept_model
    remove_masks(pruned)
    speed = {
        name: measure_latency(m, batch_size=64, seq_len=baseline.config.max_len).median_ms
        for name, m in (("dense", dense_state), ("pruned_90", pruned))
    }
    results = {
        "recipe": recipe,
        "seeds": seeds(mode),
        "summary": summarize(per_run, grid, seeds(mode)),
        "runs": per_run,
        "explorer": latency,
        "size_bytes": {"dense": size_on_disk(dense_state), "pruned_90": size_on_disk(pruned)},
        "latency_ms_b64": speed,
    }
    return {"results": results, "markdown": markdown(results)}


def markdown(results: dict) -> str:
    recipe, latency = results["recipe"], results["explorer"]
    size, speed = results["size_bytes"], results["latency_ms_b64"]
    rows = []
    for sparsity, row in results["summary"].items():
        mag, rnd = row["magnitude"], row["random"]
        target = row["target_drop_points"]
        rows.append(
            [
                f"{100 * float(sparsity):.0f} %",
                pct(row["dense_test_accuracy"]),
                pct(mag["test_accuracy"]),
                f"{mag['drop_points']['median']:.1f}",
                "as it comes"
                if target is None
                else f"<= {target} ({'met' if row['met'] else 'NOT met'})",
                pct(rnd["test_accuracy"]),
                f"{rnd['drop_points']['median']:.1f}",
            ]
        )
    header = [
        "sparsity",
        "dense test acc",
        "AGP magnitude",
        "drop (points)",
        "target drop",
        "AGP random (floor)",
        "random drop",
    ]
    return "\n".join(
        [
            "## Chapter 2: AGP magnitude pruning (recurrent + classifier weights, embedding dense)",
            "",
            md_table(header, rows),
            "",
            f"Recipe: one global |w| threshold over weight_ih, weight_hh and the classifier; "
            f"cubic schedule from 0 % updated every {recipe['frequency']} steps over "
            f"{recipe['prune_epochs']} epochs, then {recipe['epochs'] - recipe['prune_epochs']} "
            f"epochs at the final sparsity; Adam lr {recipe['lr']}. Test accuracy: median "
            f"(min-max) over seeds {', '.join(map(str, results['seeds']))}; drop = median over "
            "seeds of (dense - pruned) for the same seed.",
            "",
            f"Sparsity explorer: median update {latency['median_ms']:.0f} ms per slider move "
            f"(max {latency['max_ms']:.0f} ms, {latency['moves']} moves, "
            f"{latency['validation_examples']} validation examples, "
            f"{latency['threads']} threads); built in {latency['build_seconds']:.1f} s.",
            "",
            f"Masked weights give no speed-up or smaller file: at 90 % (seed 0) the state_dict is "
            f"{size['pruned_90']['raw_bytes'] / 1e6:.2f} MB raw / "
            f"{size['pruned_90']['gzip_bytes'] / 1e6:.2f} MB gzip vs dense "
            f"{size['dense']['raw_bytes'] / 1e6:.2f} / {size['dense']['gzip_bytes'] / 1e6:.2f} MB; "
            f"latency at batch 64 (1 thread) {speed['pruned_90']:.0f} ms vs dense "
            f"{speed['dense']:.0f} ms.",
        ]
    )
