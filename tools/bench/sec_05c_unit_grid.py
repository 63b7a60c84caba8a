"""Chapters 4 and 5: the verdict grid, structured methods at three budgets over five seeds.

Every method of chapter 5's comparison (GAL, its ablation, group lasso, structured
magnitude, structured Taylor), three GAL variants, structured Taylor in the paper's gate
form, and an LSTM of each size trained from scratch (Liu et al. 2019), at 64, 32 and 16 of
the baseline's 128 hidden units, on five baseline seeds. Every pruned model gets the same
recipe as chapter 5's benchmark section (:data:`sec_05_gan.settings`), with ``units``
replaced. Each question of ``unit_grid.QUESTIONS`` is answered per budget from paired
differences per seed and the exact bootstrap interval of their median
(``course_utils.verdicts.paired_seeds``). Accuracy only, no timings: finished rows are
stored in ``build/bench/grid-<mode>/`` as they complete, so an interrupted run resumes.
With ``--workers N`` the rows run as Ray tasks, N at once, one thread each (run_grid's
``workers``); a row is the same as the serial loop's at that thread count, and either way
resumes the other's store.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from common import md_table, section
from sec_05_gan import settings as gan_settings

from course_utils.experiments.unit_grid import (
    CHAPTER_4,
    CHAPTER_5,
    FEATURE_NOISE,
    GRID_METHODS,
    GRID_SEEDS,
    GRID_UNITS,
    SCRATCH,
    answer,
    choice,
    choice_sentence,
    grid_table,
    grid_verdicts,
    run_grid,
)

__all__ = ["STORE", "markdown", "run", "settings"]

STORE = Path(__file__).resolve().parents[2] / "build" / "bench"


def settings(mode: str) -> dict:
    budget = gan_settings(mode)["budget"]
    if mode == "full":
        return {"seeds": GRID_SEEDS, "units": GRID_UNITS, "methods": GRID_METHODS, "budget": budget}
    methods = ("gal", "gal_no_adv", "group_lasso", "unit_magnitude", SCRATCH)
    return {"seeds": (0,), "units": (32,), "methods": methods, "budget": budget}


def run(mode: str, workers: int | None = None, address: str | None = None) -> dict:
    cfg = settings(mode)
    workers = workers or 1
    threads = 1 if workers > 1 else torch.get_num_threads()
    rows = run_grid(
        cfg["seeds"],
        cfg["units"],
        cfg["methods"],
        budget=cfg["budget"],
        store=STORE / f"grid-{mode}",
        progress=False,
        workers=workers,
        threads=threads,
        address=address,
    )
    verdicts = grid_verdicts(rows)
    results = {
        "recipe": {
            "seeds": list(cfg["seeds"]),
            "units": list(cfg["units"]),
            "methods": list(cfg["methods"]),
            "budget": cfg["budget"].describe(units=_or(cfg["units"])),
            "gal": dataclasses.asdict(cfg["budget"].gal),
            "threads": threads,
            "workers": workers,
            "row_threads": sorted({r["threads"] for r in rows if "threads" in r}),
        },
        "rows": [{k: v for k, v in r.items() if k != "stored"} for r in rows],
        "rows_from_store": sum(r["stored"] for r in rows),
        "verdicts": [dict(v) for v in verdicts],
        "choice": [dict(line) for line in choice(rows)],
        "answers": {
            q: answer(verdicts, q) for _, _, q in (*CHAPTER_4, *CHAPTER_5) if _has(verdicts, q)
        },
    }
    return {"results": results, "markdown": markdown(results, mode)}


def _has(verdicts, question: str) -> bool:
    return any(v["question"] == question for v in verdicts)


def markdown(results: dict, mode: str) -> str:
    r = results
    rows = r["rows"]
    accuracy = grid_table(rows)
    header = list(accuracy[0])
    table = md_table(header, [[line[h] for h in header] for line in accuracy])
    verdicts = md_table(
        [
            "question",
            "units",
            "median A / B (%)",
            "paired difference, 95 % interval (points)",
            "sign test p",
            "verdict",
        ],
        [
            [
                v["question"],
                v["units"],
                f"{v['median a']:.1f} / {v['median b']:.1f}",
                f"{v['difference']:+.1f} ({v['interval']})",
                f"{v['sign test p']:.2g}" if "sign test p" in v else "",
                v["verdict"],
            ]
            for v in r["verdicts"]
        ],
    )
    chapter_4 = [r["answers"][q] for _, _, q in CHAPTER_4 if q in r["answers"]]
    chapter_5 = [r["answers"][q] for _, _, q in CHAPTER_5 if q in r["answers"]]
    chapter_5 += [f"Which to use? {choice_sentence(line)}" for line in r.get("choice", [])]
    seeds = ", ".join(str(s) for s in r["recipe"]["seeds"])
    closing = (
        f"Seeds {seeds} ({mode} mode), {_engine(r['recipe'])}. Test accuracy after "
        f"fine-tuning; the from-scratch row is an LSTM of that size trained with the dense "
        f"baseline's own recipe (Liu et al. 2019), no fine-tuning. {r['recipe']['budget']} "
        "Variants: 'D sees logits + hidden features' gives the discriminator the pooled "
        f"hidden features too (instance noise {FEATURE_NOISE} on them, 2.0 on the logits); "
        "'fixed λ, top-k masks' trains without the unit budget and keeps "
        "each slot's largest masks. A verdict is 'better' or 'worse' only when the 95 % "
        "bootstrap interval of the median paired difference excludes 0: with "
        f"{len(r['recipe']['seeds'])} seeds, only when every seed agrees, which two equal "
        f"methods do by chance with probability {2 / 2 ** len(r['recipe']['seeds']):.2g} "
        "(the sign test's p): it is the most these seeds can say, not proof."
    )
    return section(
        "Chapters 4 and 5: the verdict grid (test accuracy %, median (min-max) over seeds)",
        table,
        verdicts,
        "Chapter 4, answered from this grid:\n\n" + "\n".join(f"- {a}" for a in chapter_4)
        if chapter_4
        else None,
        "Chapter 5, answered from this grid:\n\n" + "\n".join(f"- {a}" for a in chapter_5)
        if chapter_5
        else None,
        closing,
    )


def _engine(recipe: dict) -> str:
    """``"2 threads"``, or ``"2 Ray workers of 1 thread each"``, and the thread counts of
    rows read from the store that differ."""
    workers, threads = recipe.get("workers", 1), recipe["threads"]
    each = f"{threads} thread{'s' if threads > 1 else ''}"
    text = each if workers == 1 else f"{workers} Ray workers of {each} each"
    other = [t for t in recipe.get("row_threads", []) if t != threads]
    if other:  # rows read from a store that an earlier run filled at another thread count
        text += f" (some rows from the store ran at {' or '.join(map(str, other))} threads)"
    return text


def _or(units) -> str:
    """``"64, 32 or 16"``."""
    names = [str(u) for u in units]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
