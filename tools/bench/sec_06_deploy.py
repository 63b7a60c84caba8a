"""Chapter 6: every method side by side, storage formats, int8, export.

Two parts, one thread throughout:

1. Targets. Each seed's baseline is pruned to 90 % of ALL its weight matrices, embedding
   included (it holds about 91 % of the parameters), by magnitude AGP with one global
   threshold (``zoo.pruned_model("magnitude_agp", 0.9, include_embedding=True)``).
   Test accuracy is compared with the same seed's dense model; the file is measured in
   every storage format of ``course_utils.deploy.compress``. Targets: >= 6x smaller than dense
   fp32 in a lossless format within 1 point of dense accuracy (median over seeds), and
   >= 10x with int8 values.
2. The method grid (seed 0): each chapter's method at 90 % (unstructured, embedding
   dense as in chapters 2-3) or 32 hidden units (structured), with the chapter's recipe
   (quick mode: chapter 6's shorter budget). Accuracy, non-zeros, sizes, and latency at
   batch 1 and 64 against the dense model measured in the same run (interleaved rounds),
   plus int8 dynamic quantization and a torch.export round trip of the GAL model.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from common import latency_note, md_table, median_spread, met_words, pct, seeds

from course_utils import deploy, get_baseline
from course_utils.deploy import compress
from course_utils.experiments import zoo
from course_utils.measure import compare_latency, count_nonzero
from course_utils.train import evaluate

__all__ = [
    "TARGETS",
    "export_check",
    "grid_models",
    "markdown",
    "run",
    "settings",
    "size_cell",
    "target_seed",
]

TARGETS = {"max_drop_points": 1.0, "lossless_ratio": 6.0, "int8_ratio": 10.0}


def settings(mode: str) -> dict:
    if mode == "full":
        return {"budget": "full", "rounds": 3, "repeats": 20}
    return {"budget": "short", "rounds": 2, "repeats": 10}


def target_seed(seed: int, budget: str) -> dict:
    baseline = get_baseline(seed=seed)
    pruned = zoo.pruned_model(
        "magnitude_agp", 0.9, seed=seed, budget=budget, include_embedding=True, baseline=baseline
    )
    dense_bytes = len(compress.encode_model(baseline.model, "dense_fp32"))
    sizes = {r["format"]: r["bytes"] for r in compress.storage_table(pruned.model)}
    test = baseline.loader("test")
    checks = {}
    for fmt in compress.FORMATS:
        decoded = compress.decode_model(compress.encode_model(pruned.model, fmt))
        checks[fmt] = deploy.compare_outputs(pruned.model, decoded, test)
    int8_runtime = deploy.quantize_int8(pruned.model)
    nonzero = count_nonzero(pruned.model)
    return {
        "dense_test_accuracy": pruned.metrics["dense_test_accuracy"],
        "test_accuracy": pruned.metrics["test_accuracy"],
        "drop_points": 100
        * (pruned.metrics["dense_test_accuracy"] - pruned.metrics["test_accuracy"]),
        "nonzero": nonzero,
        "dense_fp32_bytes": dense_bytes,
        "bytes": sizes,
        "ratio": {fmt: dense_bytes / size for fmt, size in sizes.items()},
        "round_trip": checks,
        "int8_runtime_test_accuracy": evaluate(int8_runtime, test)["accuracy"],
        "train_seconds": pruned.metrics["train_seconds"],
        "from_cache": pruned.from_cache,
    }


def grid_models(budget: str) -> tuple:
    baseline = get_baseline(seed=0)
    return baseline, zoo.lineup_models(seed=0, budget=budget, baseline=baseline)


def export_check(model, baseline) -> dict:
    start = time.perf_counter()
    program = deploy.export_classifier(model)
    seconds = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.pt2"
        size = deploy.save_exported(path, program)
        loaded = deploy.load_exported(path).module()
    seq_len = deploy.exported_seq_len(program)
    checks = {
        bs: deploy.compare_outputs(
            model, loaded, baseline.loader("test", batch_size=bs), seq_len=seq_len
        )
        for bs in (1, 64)
    }
    return {"export_seconds": seconds, "bytes": size, "seq_len": seq_len, "checks": checks}


def run(mode: str) -> dict:
    cfg = settings(mode)
    per_seed = {s: target_seed(s, cfg["budget"]) for s in seeds(mode)}
    baseline, entries = grid_models(cfg["budget"])
    dense = baseline.model.eval()
    timed = {"dense fp32": dense}
    timed.update({e.label: e.model for e in entries})
    gal = next(e for e in entries if e.method == "gal")
    timed["dense, int8 dynamic"] = deploy.quantize_int8(dense)
    timed[f"{gal.label}, int8 dynamic"] = deploy.quantize_int8(gal.model)
    latency = compare_latency(
        timed, seq_len=baseline.config.max_len, rounds=cfg["rounds"], repeats=cfg["repeats"]
    )
    export = export_check(gal.model, baseline)
    test = baseline.loader("test")
    dense_bytes = len(compress.encode_model(dense, "dense_fp32"))
    grid = []
    for name, model in timed.items():
        entry = next((e for e in entries if e.label == name), None)
        accuracy = entry.metrics["test_accuracy"] if entry else evaluate(model, test)["accuracy"]
        row = {
            "model": name,
            "test_accuracy": accuracy,
            "latency_ms": latency[name],
            "speedup": {bs: latency["dense fp32"][bs] / latency[name][bs] for bs in (1, 64)},
        }
        if "int8" not in name:
            best, size = compress.smallest_lossless(model)
            row.update(
                nonzero=count_nonzero(model),
                smallest_lossless=best,
                lossless_ratio=dense_bytes / size,
                int8_ratio=dense_bytes / len(compress.encode_model(model, "bitmask_int8")),
            )
        if entry is not None:
            row.update(train_seconds=entry.metrics["train_seconds"], recipe=entry.recipe)
        grid.append(row)
    drops = [r["drop_points"] for r in per_seed.values()]
    best_lossless = {s: max(r["ratio"][f] for f in compress.LOSSLESS) for s, r in per_seed.items()}
    results = {
        "mode": mode,
        "budget": cfg["budget"],
        "targets": TARGETS,
        "per_seed": per_seed,
        "test_accuracy": median_spread([r["test_accuracy"] for r in per_seed.values()]),
        "dense_test_accuracy": median_spread([r["dense_test_accuracy"] for r in per_seed.values()]),
        "drop_points": median_spread(drops),
        "targets_met": {
            "accuracy": statistics.median(drops) <= TARGETS["max_drop_points"],
            "lossless_ratio": min(best_lossless.values()) >= TARGETS["lossless_ratio"],
            "int8_ratio": min(r["ratio"]["bitmask_int8"] for r in per_seed.values())
            >= TARGETS["int8_ratio"],
        },
        "grid": grid,
        "export": export,
        "latency_rounds": cfg["rounds"],
        "latency_repeats": cfg["repeats"],
    }
    return {"results": results, "markdown": markdown(results)}


def size_cell(seed_result: dict, fmt: str) -> str:
    return f"{seed_result['bytes'][fmt] / 1e6:.3f} ({seed_result['ratio'][fmt]:.1f}x)"


def markdown(r: dict) -> str:
    seeds_used = list(r["per_seed"])
    first = r["per_seed"][seeds_used[0]]
    formats = md_table(
        ["format", "lossless", *(f"seed {s}: MB (ratio)" for s in seeds_used)],
        [
            [
                fmt,
                "yes" if fmt in compress.LOSSLESS else "no",
                *(size_cell(r["per_seed"][s], fmt) for s in seeds_used),
            ]
            for fmt in compress.FORMATS
        ],
    )
    lossy = {
        fmt: {
            "max_abs_diff": max(
                r["per_seed"][s]["round_trip"][fmt]["max_abs_diff"] for s in seeds_used
            ),
            "flipped": sum(r["per_seed"][s]["round_trip"][fmt]["flipped"] for s in seeds_used),
            "margin": max(
                r["per_seed"][s]["round_trip"][fmt]["largest_flipped_margin"] for s in seeds_used
            ),
        }
        for fmt in compress.FORMATS
    }
    exact = all(
        r["per_seed"][s]["round_trip"][fmt]["identical"] == 1.0
        for s in seeds_used
        for fmt in compress.LOSSLESS
    )
    lossy_text = "; ".join(
        f"{fmt}: max |logit difference| {v['max_abs_diff']:.1e}, {v['flipped']} test label(s) "
        f"changed"
        + (f" (largest top-2 logit gap among them {v['margin']:.1e})" if v["flipped"] else "")
        for fmt, v in lossy.items()
        if fmt not in compress.LOSSLESS
    )
    drop = r["drop_points"]
    met = met_words(r["targets_met"])
    grid = md_table(
        [
            "model (seed 0)",
            "test acc",
            "non-zeros (embedding + rest)",
            "lossless file (ratio)",
            "int8 file (ratio)",
            "batch 1 ms (speed-up)",
            "batch 64 ms (speed-up)",
        ],
        [
            [
                g["model"],
                f"{100 * g['test_accuracy']:.1f} %",
                f"{g['nonzero']['embedding']:,} + {g['nonzero']['total_without_embedding']:,}"
                if "nonzero" in g
                else "",
                f"{g['smallest_lossless']} ({g['lossless_ratio']:.1f}x)" if "nonzero" in g else "",
                f"{g['int8_ratio']:.1f}x" if "nonzero" in g else "",
                f"{g['latency_ms'][1]:.1f} ({g['speedup'][1]:.2f}x)",
                f"{g['latency_ms'][64]:.0f} ({g['speedup'][64]:.2f}x)",
            ]
            for g in r["grid"]
        ],
    )
    e = r["export"]
    return "\n".join(
        [
            "## Chapter 6: 90 % of all weights, storage formats, every method side by side",
            "",
            f"90 % of every weight matrix, embedding included (magnitude AGP, one global "
            f"threshold, `{r['budget']}` budget). Test accuracy {pct(r['test_accuracy'])} vs "
            f"dense {pct(r['dense_test_accuracy'])}; drop vs each seed's own dense model: "
            f"median {drop['median']:.1f} points (min {drop['min']:.1f}, max "
            f"{drop['max']:.1f}) over seeds {', '.join(map(str, seeds_used))}.",
            "",
            formats,
            "",
            f"Ratios are against the dense baseline in `dense_fp32` "
            f"({first['dense_fp32_bytes'] / 1e6:.2f} MB). Decoded on every seed's test set: "
            f"lossless formats {'bit-identical logits' if exact else 'NOT bit-identical'}; "
            f"{lossy_text}. Int8 dynamic "
            f"quantization at run time of the 90 % model: test accuracy "
            f"{100 * first['int8_runtime_test_accuracy']:.1f} % (seed {seeds_used[0]}).",
            "",
            f"Targets: within {TARGETS['max_drop_points']:.0f} point of dense, median over "
            f"seeds ({met['accuracy']}); >= {TARGETS['lossless_ratio']:.0f}x smaller in a "
            f"lossless format ({met['lossless_ratio']}); >= {TARGETS['int8_ratio']:.0f}x with "
            f"int8 values ({met['int8_ratio']}).",
            "",
            grid,
            "",
            f"{latency_note(r['latency_rounds'], r['latency_repeats'])} "
            f"({e['seq_len']} tokens); speed-up "
            "= dense fp32 / model, same run. Unstructured models keep the embedding dense (as "
            "in chapters 2-3) except the last row. torch.export of the GAL model: "
            f"{e['export_seconds']:.0f} s to export, {e['bytes'] / 1e6:.2f} MB file, fixed "
            f"{e['seq_len']} steps, dynamic batch; max |logit difference| vs eager "
            f"{max(c['max_abs_diff'] for c in e['checks'].values()):.1e} at batch 1 and 64.",
        ]
    )
