"""Chapter 4: group lasso, then removing hidden units: accuracy, CPU speed-up, size.

Recipe (the notebook's): Adam with the ISS group-lasso penalty in the loss for a few
epochs, keep the hidden units with the largest group norms, remove the rest
(``remove_hidden_units``), fine-tune. Control: the same removal and fine-tuning straight
from the baseline. Reference: an LSTM of the small size trained from scratch. Latency of
the dense, 90 %-unstructured (masked dense) and shrunk models is measured in this run,
interleaved over rounds, one thread.
"""

from __future__ import annotations

import statistics

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
from course_utils.measure import (
    compare_latency,
)
from course_utils.pruning import (
    hidden_unit_groups,
    prune,
    remove_hidden_units,
    select_units_by_norm,
    train_group_lasso,
)
from course_utils.report import median_range
from course_utils.seeding import set_seed
from course_utils.train import evaluate, train_model

__all__ = ["LAMBDA", "TARGETS", "UNITS", "fine_tune", "markdown", "one_seed", "run", "settings"]

UNITS = 32  # of 128: 25 %
LAMBDA = 0.05
TARGETS = {"max_drop_points": 2.0, "speedup_b64": 3.0, "speedup_b1": 1.5}


def settings(mode: str) -> dict:
    if mode == "full":
        return {"gl_epochs": 3, "ft_epochs": 5, "rounds": 3, "repeats": 20}
    return {"gl_epochs": 1, "ft_epochs": 2, "rounds": 2, "repeats": 10}


def fine_tune(model, baseline, epochs: int, seed: int) -> float:
    set_seed(seed)
    train_model(
        model,
        baseline.loader("train", seed=seed),
        baseline.loader("valid"),
        epochs=epochs,
        lr=1e-3,
        desc="fine-tune",
    )
    model.eval()
    return evaluate(model, baseline.loader("test"))["accuracy"]


def one_seed(seed: int, cfg: dict) -> tuple[dict, dict]:
    b = get_baseline(seed=seed)
    dense = b.model.eval()
    test = b.loader("test")
    out = {"dense": evaluate(dense, test)["accuracy"]}

    model = b.copy_model()
    record = train_group_lasso(
        model, hidden_unit_groups(model), b, lam=LAMBDA, epochs=cfg["gl_epochs"], seed=seed
    )
    model.eval()
    out["group_lasso_all_units"] = evaluate(model, test)["accuracy"]
    shrunk = remove_hidden_units(model, select_units_by_norm(model, UNITS))
    out["shrunk_before_ft"] = evaluate(shrunk, test)["accuracy"]
    out["shrunk"] = fine_tune(shrunk, b, cfg["ft_epochs"], seed)
    out["group_lasso_valid_accuracy"] = record["valid_accuracy"]

    control = remove_hidden_units(dense, select_units_by_norm(dense, UNITS))
    out["control_before_ft"] = evaluate(control, test)["accuracy"]
    out["control"] = fine_tune(control, b, cfg["ft_epochs"], seed)

    small = get_baseline(seed=seed, hidden_size=UNITS)  # trained once, then cached
    out["small_from_scratch"] = small.metrics["test_accuracy"]
    return out, {"dense": dense, "shrunk": shrunk, "max_len": b.config.max_len, "baseline": b}


def run(mode: str) -> dict:
    cfg = settings(mode)
    per_seed, models = {}, None
    for seed in seeds(mode):
        per_seed[seed], found = one_seed(seed, cfg)
        models = models or found
    b = models["baseline"]
    sparse = b.copy_model()
    prune(sparse, 0.9)
    timed = {"dense": models["dense"], "90 % unstructured": sparse, "shrunk": models["shrunk"]}
    latency = compare_latency(
        timed, seq_len=models["max_len"], rounds=cfg["rounds"], repeats=cfg["repeats"]
    )
    drops = [100 * (r["dense"] - r["shrunk"]) for r in per_seed.values()]
    control_drops = [100 * (r["dense"] - r["control"]) for r in per_seed.values()]
    speedup, sizes = speed_and_sizes(timed, latency)
    results = {
        "recipe": {"lambda": LAMBDA, "units": UNITS, **cfg},
        "per_seed": per_seed,
        "dense": median_spread([r["dense"] for r in per_seed.values()]),
        "shrunk": median_spread([r["shrunk"] for r in per_seed.values()]),
        "control": median_spread([r["control"] for r in per_seed.values()]),
        "small_from_scratch": median_spread([r["small_from_scratch"] for r in per_seed.values()]),
        "drop_points": median_spread(drops),
        "control_drop_points": median_spread(control_drops),
        "latency_ms": latency,
        "speedup": speedup,
        "sizes": sizes,
        "targets": TARGETS,
        "targets_met": {
            "accuracy": statistics.median(drops) <= TARGETS["max_drop_points"],
            "speedup_b64": speedup["shrunk"][64] >= TARGETS["speedup_b64"],
            "speedup_b1": speedup["shrunk"][1] >= TARGETS["speedup_b1"],
        },
    }
    return {"results": results, "markdown": markdown(results, mode)}


def markdown(results: dict, mode: str) -> str:
    r, lat, sp, sz = results, results["latency_ms"], results["speedup"], results["sizes"]
    drop, cdrop = (
        median_range(r[k], between=" to ", always_range=True)
        for k in ("drop_points", "control_drop_points")
    )
    seeds_used = ", ".join(str(s) for s in r["per_seed"])
    accuracy = md_table(
        ["model", "hidden units", "test accuracy (median, min-max)", "drop vs dense (points)"],
        [
            ["dense baseline", 128, pct(r["dense"]), ""],
            [
                f"group lasso (λ={LAMBDA}) + remove + fine-tune",
                UNITS,
                pct(r["shrunk"]),
                drop,
            ],
            [
                "control: remove by norm + fine-tune",
                UNITS,
                pct(r["control"]),
                cdrop,
            ],
            [f"LSTM-{UNITS} trained from scratch", UNITS, pct(r["small_from_scratch"]), ""],
        ],
    )
    speed = speed_table(lat, sp, sz)
    met = met_words(r["targets_met"])
    closing = (
        f"Seeds {seeds_used} ({mode} mode: {r['recipe']['gl_epochs']} group-lasso epochs, "
        f"{r['recipe']['ft_epochs']} fine-tuning epochs). "
        f"{latency_note(r['recipe']['rounds'], r['recipe']['repeats'])}. Targets: within "
        f"{TARGETS['max_drop_points']:.0f} points with {UNITS}/128 units "
        f"({met['accuracy']}); speed-up >= {TARGETS['speedup_b64']:.0f}x at batch 64 "
        f"({met['speedup_b64']}) and >= {TARGETS['speedup_b1']}x at batch 1 "
        f"({met['speedup_b1']})."
    )
    return section("Chapter 4: group lasso and physically smaller LSTMs", accuracy, speed, closing)
