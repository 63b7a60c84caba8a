"""Chapter 5's appendix (05b): data-free distillation of a pruned LSTM (DAFL, Chen et al. 2019).

Recipe: each baseline seed is cut to 32 of its 128 hidden units by structured magnitude
(chapter 5's ``prune_to_units("unit_magnitude")``, no training), then the student learns from
the dense teacher without any training article, for ``DAFLConfig().steps`` steps: from a
DAFL generator (``source="generator"``) or, as the control, from sequences of uniformly
drawn vocabulary words (``source="random_words"``). For reference, the same student
fine-tuned with the real training articles (one epoch of distillation, chapter 5's
``finetune_pruned``). Test accuracy against each seed's own dense model; nothing is
selected on validation data.
"""

from __future__ import annotations

import dataclasses
import statistics
import time

from common import md_table, median_spread, pct, seeds

from course_utils import get_baseline
from course_utils.experiments.gan_comparison import UnitBudget, finetune_pruned, prune_to_units
from course_utils.pruning.data_free import DAFLConfig, distill_data_free
from course_utils.train import evaluate
from course_utils.verdicts import paired_seeds

__all__ = ["ROWS", "UNITS", "markdown", "run", "settings"]

UNITS = 32
ROWS = {
    "before": "structured magnitude, no training",
    "random_words": "random vocabulary words (control)",
    "generator": "DAFL generator",
    "real_data": "real training articles, 1 epoch (reference)",
}


def settings(mode: str) -> dict:
    if mode == "full":
        return {"dafl": DAFLConfig(), "ft_epochs": 1}
    return {"dafl": dataclasses.replace(DAFLConfig(), steps=40), "ft_epochs": 1}


def run(mode: str) -> dict:
    cfg = settings(mode)
    per_seed: dict = {}
    for seed in seeds(mode):
        baseline = get_baseline(seed=seed)
        test = baseline.loader("test")
        student, _ = prune_to_units("unit_magnitude", baseline, UnitBudget(units=UNITS))
        row = {
            "dense": evaluate(baseline.model, test)["accuracy"],
            "before": evaluate(student, test)["accuracy"],
        }
        seconds = {}
        for source in ("random_words", "generator"):
            config = dataclasses.replace(cfg["dafl"], seed=seed, source=source)
            start = time.perf_counter()
            result = distill_data_free(baseline.model, student, config, progress=False)
            seconds[source] = time.perf_counter() - start
            row[source] = evaluate(result.student, test)["accuracy"]
        tuned = prune_to_units("unit_magnitude", baseline, UnitBudget(units=UNITS))[0]
        start = time.perf_counter()
        finetune_pruned(
            tuned,
            baseline,
            epochs=cfg["ft_epochs"],
            lr=1e-3,
            teacher=baseline.model,
            seed=seed,
            progress=False,
        )
        seconds["real_data"] = time.perf_counter() - start
        row["real_data"] = evaluate(tuned, test)["accuracy"]
        per_seed[seed] = {"test_accuracy": row, "seconds": seconds}
    summary = {
        key: median_spread([s["test_accuracy"][key] for s in per_seed.values()])
        for key in ("dense", *ROWS)
    }
    gain = [
        s["test_accuracy"]["generator"] - s["test_accuracy"]["random_words"]
        for s in per_seed.values()
    ]
    results = {
        "recipe": {
            "units": UNITS,
            "dafl": dataclasses.asdict(cfg["dafl"]),
            "real_data_epochs": cfg["ft_epochs"],
        },
        "per_seed": per_seed,
        "summary": summary,
        "generator_minus_random_words": median_spread(gain),
        "generator_vs_random_words": _versus(per_seed, "generator", "random_words"),
    }
    return {"results": results, "markdown": markdown(results, mode)}


def _versus(per_seed: dict, a: str, b: str) -> dict:
    """A against B paired by seed (``paired_seeds``): difference, interval, verdict."""
    v = paired_seeds(
        {s: p["test_accuracy"][a] for s, p in per_seed.items()},
        {s: p["test_accuracy"][b] for s, p in per_seed.items()},
    )
    return {
        "median_difference": v.median_difference,
        "low": v.low,
        "high": v.high,
        "verdict": v.verdict,
        "interval": v.interval(),
        "p_value": v.p_value,
    }


def markdown(results: dict, mode: str) -> str:
    s, dafl = results["summary"], results["recipe"]["dafl"]
    seconds = {
        key: statistics.median(p["seconds"][key] for p in results["per_seed"].values())
        for key in ("random_words", "generator", "real_data")
    }
    rows = [["dense teacher (128 units)", pct(s["dense"]), ""]]
    for key, name in ROWS.items():
        rows.append([f"{name}", pct(s[key]), f"{seconds[key]:.0f}" if key in seconds else ""])
    gain = results["generator_minus_random_words"]
    versus = _versus(results["per_seed"], "generator", "random_words")
    per_seed = ", ".join(f"{100 * v:+.1f}" for v in gain["values"])
    return "\n".join(
        [
            "## Chapter 5 appendix (05b): data-free distillation (DAFL)",
            "",
            md_table(["student, 32/128 units", "test accuracy", "seconds (median)"], rows),
            "",
            f"Seeds {', '.join(str(s) for s in results['per_seed'])} ({mode} mode). "
            "The student is the structured-"
            f"magnitude cut of each seed's baseline; the data-free rows use {dafl['steps']} "
            f"steps of {dafl['batch_size']} sequences of {dafl['seq_len']} embeddings "
            f"(alpha {dafl['alpha']}, beta {dafl['beta']}, as in the paper; the losses are "
            "scaled as in its reference code: the activation loss a mean over examples and "
            "features, the entropy in log base 10). DAFL generator "
            f"minus random words, per seed: {per_seed} points (median "
            f"{100 * gain['median']:+.1f})"
            f"; paired over seeds, median difference {versus['interval']}: "
            f"{versus['verdict']} (sign test over the {len(results['per_seed'])} seeds: "
            f"p = {versus['p_value']:.2g}).",
        ]
    )
