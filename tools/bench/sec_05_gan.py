"""Chapter 5: GAN-guided pruning (GAL) at equal hidden size, against every other method.

Recipe (``UnitBudget()`` and ``GALConfig()`` defaults; chapter 5's notebook runs the same
with one GAL epoch and four fine-tuning epochs fewer, to fit its time budget): each baseline
seed is pruned to 32 of its 128 hidden units by GAL with a unit budget (λ grows from 0.1 by
1.03 per mask step until 32 units are left), by GAL without the discriminator (the
ablation: distillation + L1 masks, same budget), by group lasso (chapter 4), by structured magnitude
(ISS group norms) and by structured Taylor (chapter 3); every pruned model then gets the
same distillation fine-tuning (keeping the state before it when that is better on
validation). Each seed is compared with its own dense model. Latency of the dense and
the GAL-pruned model (seed 0) is measured in this run, interleaved over rounds, one
thread, full-length inputs. In full mode, the growth rate's choice is shown too: GAL on
seed 0 with each rate of ``GROWTH_CHOICES``, judged by validation accuracy at the end of GAL
(no test numbers involved).
"""

from __future__ import annotations

import dataclasses

from common import (
    latency_note,
    md_table,
    median_spread,
    met_words,
    pct,
    section,
    seeds,
    speed_and_sizes,
    speed_table,
)

from course_utils import get_baseline
from course_utils.experiments.gan_comparison import (
    UnitBudget,
    adversarial_verdict,
    compare_unit_pruning,
    gal_for,
)
from course_utils.experiments.methods import METHODS
from course_utils.measure import (
    compare_latency,
)
from course_utils.pruning.gan import GALConfig
from course_utils.report import median_range

__all__ = ["GROWTH_CHOICES", "TARGETS", "UNITS", "growth_choice", "markdown", "run", "settings"]

UNITS = 32  # of 128: 25 %
TARGETS = {"max_drop_points": 2.0, "speedup_b64": 3.0}
GROWTH_CHOICES = (1.03, 1.06)  # λ growth per mask step, chosen on seed 0 by validation


def settings(mode: str) -> dict:
    if mode == "full":
        # chapter 4's benchmark budget: 3 group-lasso and 5 fine-tuning epochs
        budget = UnitBudget(units=UNITS, gl_epochs=3, ft_epochs=5)
        return {"budget": budget, "rounds": 3, "repeats": 20, "growth": GROWTH_CHOICES}
    quick = UnitBudget(
        units=UNITS,
        gal=dataclasses.replace(GALConfig(), epochs=2),
        gl_epochs=1,
        ft_epochs=1,
        train_batches=30,
    )
    return {"budget": quick, "rounds": 2, "repeats": 10, "growth": ()}


def run(mode: str) -> dict:
    cfg = settings(mode)
    budget = cfg["budget"]
    baselines = [get_baseline(seed=s) for s in seeds(mode)]
    models: dict = {}
    rows = compare_unit_pruning(baselines, budget=budget, models=models, progress=False)
    first = baselines[0]
    growth = growth_choice(first, budget, cfg["growth"])
    timed = {"dense": first.model.eval(), f"GAL, {UNITS} units": models[("gal", first.seed)]}
    latency = compare_latency(
        timed, seq_len=first.config.max_len, rounds=cfg["rounds"], repeats=cfg["repeats"]
    )
    methods = list(dict.fromkeys(r["method"] for r in rows))
    per_method = {}
    for method in methods:
        mine = [r for r in rows if r["method"] == method]
        per_method[method] = {
            "test_before": median_spread([r["test_before"] for r in mine]),
            "test": median_spread([r["test_accuracy"] for r in mine]),
            "drop_points": median_spread(
                [100 * (r["dense_test"] - r["test_accuracy"]) for r in mine]
            ),
            "kept_epochs": [r["kept_epoch"] for r in mine],
        }
    verdict = adversarial_verdict(rows)
    verdict_before = adversarial_verdict(rows, "test_before")
    speedup, sizes = speed_and_sizes(timed, latency)
    gal_name = f"GAL, {UNITS} units"
    results = {
        "recipe": {
            "units": UNITS,
            "budget": budget.describe(),
            "gal": dataclasses.asdict(budget.gal),
            "rounds": cfg["rounds"],
            "repeats": cfg["repeats"],
        },
        "rows": [dict(r) for r in rows],
        "dense": median_spread([r["dense_test"] for r in rows if r["method"] == methods[0]]),
        "methods": per_method,
        "adversarial": {k: v for k, v in verdict.items() if k != "sentence"},
        "adversarial_before_ft": {k: v for k, v in verdict_before.items() if k != "sentence"},
        "verdict": verdict["sentence"],
        "verdict_before_ft": verdict_before["sentence"],
        "growth_choice": growth,
        "latency_ms": latency,
        "speedup": speedup,
        "sizes": sizes,
        "targets": TARGETS,
        "targets_met": {
            "accuracy": per_method["gal"]["drop_points"]["median"] <= TARGETS["max_drop_points"],
            "not_worse_than_ablation": verdict["verdict"] != "worse",
            "speedup_b64": speedup[gal_name][64] >= TARGETS["speedup_b64"],
        },
    }
    return {"results": results, "markdown": markdown(results, mode)}


def growth_choice(baseline, budget: UnitBudget, rates) -> list[dict]:
    """GAL on one seed for each λ growth rate: validation accuracy and units at the end."""
    rows = []
    for rate in rates:
        trial = dataclasses.replace(budget, gal=dataclasses.replace(budget.gal, lam_growth=rate))
        result = gal_for(baseline, trial, progress=False)
        h = result.history
        rows.append(
            {
                "lam_growth": rate,
                "budget_met_step": min(h["budget_met_step"].values(), default=None),
                "steps": len(h["step"]),
                "units_alive": sum(result.units_alive().values()),
                "valid_accuracy": h["valid_accuracy"][result.best_epoch - 1],
            }
        )
    return rows


def markdown(results: dict, mode: str) -> str:
    r, lat, sp, sz = results, results["latency_ms"], results["speedup"], results["sizes"]
    seeds_used = ", ".join(str(s) for s in dict.fromkeys(row["seed"] for row in r["rows"]))

    def drop(summary: dict) -> str:
        return median_range(summary, between=" to ")

    accuracy = md_table(
        [
            "method",
            "hidden units",
            "test before fine-tuning",
            "test after",
            "drop vs own dense (points)",
        ],
        [["dense baseline", 128, pct(r["dense"]), pct(r["dense"]), ""]]
        + [
            [
                METHODS[m].long_label,
                UNITS,
                pct(v["test_before"]),
                pct(v["test"]),
                drop(v["drop_points"]),
            ]
            for m, v in r["methods"].items()
        ],
    )
    speed = speed_table(lat, sp, sz)
    growth = ""
    if r.get("growth_choice"):
        chosen = dataclasses.asdict(GALConfig())["lam_growth"]
        growth = md_table(
            [
                "λ growth per mask step (seed 0)",
                "budget met at step",
                "units alive",
                "validation accuracy at the end of GAL",
            ],
            [
                [
                    f"{g['lam_growth']:g}"
                    + (" (the default)" if g["lam_growth"] == chosen else ""),
                    "not met"
                    if g["budget_met_step"] is None
                    else f"{g['budget_met_step']} of {g['steps']}",
                    g["units_alive"],
                    f"{100 * g['valid_accuracy']:.1f} %",
                ]
                for g in r["growth_choice"]
            ],
        )
    met = met_words(r["targets_met"])
    closing = (
        f"Seeds {seeds_used} ({mode} mode). {r['recipe']['budget']} "
        f"{latency_note(r['recipe']['rounds'], r['recipe']['repeats'])}. "
        f"Targets: GAL within {TARGETS['max_drop_points']:.0f} points "
        f"of dense with {UNITS}/128 units, median over seeds ({met['accuracy']}); not "
        f"worse than the ablation beyond the seed spread ({met['not_worse_than_ablation']}); "
        f"speed-up >= {TARGETS['speedup_b64']:.0f}x at batch 64 ({met['speedup_b64']})."
    )
    return section(
        "Chapter 5: GAN-guided pruning (GAL) at equal hidden size",
        accuracy,
        f"After fine-tuning: {r['verdict']}",
        f"Before fine-tuning: {r['verdict_before_ft']}",
        growth or None,
        speed,
        closing,
    )
