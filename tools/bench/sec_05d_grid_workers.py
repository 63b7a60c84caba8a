"""The verdict grid through Ray: wall time with workers against the serial loop.

Runs only with ``--workers N`` (``make bench BENCH_ARGS="--workers 2"``). A small grid of
the verdict grid's kind (the quick methods at 32 units, with chapter 5's quick budget) is
run three times, each into an empty store and an empty model cache (so every run trains
its from-scratch LSTMs too; the dense baselines are read from the course cache): serially
at this process's thread count, through Ray with ``N`` workers of one thread each, and
serially at one thread. The speed-up is the ratio of the first two wall times (Ray's start
included); the third checks that every row the workers computed equals the serial row at
the same thread count.
"""

from __future__ import annotations

import os
import tempfile
import time

import torch
from common import md_table, section
from sec_05_gan import settings as gan_settings

from course_utils.experiments.baseline import get_baseline
from course_utils.experiments.unit_grid import SCRATCH, run_grid
from course_utils.settings import cache_dir

__all__ = ["markdown", "run", "settings"]

EXPECTED = 1.5
"""The speed-up expected of two workers on two cores."""


def settings(mode: str) -> dict:
    methods = ("gal", "gal_no_adv", "group_lasso", "unit_magnitude", SCRATCH)
    seeds = (0, 1, 2, 3) if mode == "full" else (0,)
    return {
        "seeds": seeds,
        "units": (32,),
        "methods": methods,
        "budget": gan_settings("quick")["budget"],
    }


def _timed(cfg: dict, **engine) -> tuple[float, list[dict]]:
    """Wall time and rows of one grid run into a fresh store and a fresh model cache."""
    course_cache = cache_dir()
    dense = {s: get_baseline(seed=s, cache_dir=course_cache, progress=False) for s in cfg["seeds"]}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["COURSE_CACHE"] = tmp  # the from-scratch LSTMs are trained in every run
        try:
            start = time.perf_counter()
            rows = run_grid(
                cfg["seeds"],
                cfg["units"],
                cfg["methods"],
                budget=cfg["budget"],
                store=os.path.join(tmp, "store"),
                baseline=dense.__getitem__,
                progress=False,
                **engine,
            )
            seconds = time.perf_counter() - start
        finally:
            os.environ["COURSE_CACHE"] = str(course_cache)
    return seconds, [{k: v for k, v in r.items() if k not in ("seconds", "stored")} for r in rows]


def run(mode: str, workers: int | None = None, address: str | None = None) -> dict:
    if not workers or workers < 2:
        raise ValueError("sec_05d_grid_workers needs --workers N (N >= 2)")
    cfg = settings(mode)
    threads = torch.get_num_threads()
    serial, serial_rows = _timed(cfg)
    ray, ray_rows = _timed(cfg, workers=workers, threads=1, address=address)
    one, one_rows = _timed(cfg, threads=1)
    results = {
        "grid": {
            "seeds": list(cfg["seeds"]),
            "units": list(cfg["units"]),
            "methods": list(cfg["methods"]),
            "rows": len(ray_rows),
        },
        "cpu_count": os.cpu_count(),
        "serial": {"threads": threads, "seconds": serial},
        "ray": {"workers": workers, "threads": 1, "seconds": ray, "cluster": bool(address)},
        "serial_one_thread": {"threads": 1, "seconds": one},
        "speedup": serial / ray,
        "rows_identical_to_one_thread": ray_rows == one_rows,
        "rows_identical_to_default_threads": ray_rows == serial_rows,
    }
    return {"results": results, "markdown": markdown(results)}


def markdown(results: dict) -> str:
    r = results
    table = md_table(
        ["run", "workers x threads", "wall time (s)", "speed-up"],
        [
            [
                "serial loop",
                f"1 x {r['serial']['threads']}",
                f"{r['serial']['seconds']:.0f}",
                "1.00",
            ],
            [
                "Ray tasks" + (" (cluster)" if r["ray"]["cluster"] else " (local)"),
                f"{r['ray']['workers']} x 1",
                f"{r['ray']['seconds']:.0f}",
                f"{r['speedup']:.2f}",
            ],
            [
                "serial loop",
                "1 x 1",
                f"{r['serial_one_thread']['seconds']:.0f}",
                f"{r['serial']['seconds'] / r['serial_one_thread']['seconds']:.2f}",
            ],
        ],
    )
    g = r["grid"]
    met = "reached" if r["speedup"] >= EXPECTED else "NOT reached"
    same = "identical" if r["rows_identical_to_one_thread"] else "NOT identical"
    default = "identical too" if r["rows_identical_to_default_threads"] else "not identical"
    workers = r["ray"]["workers"]
    ideal = r["serial_one_thread"]["seconds"] / workers
    closing = (
        f"{g['rows']} rows ({', '.join(g['methods'])} at {g['units'][0]} units, seeds "
        f"{', '.join(str(s) for s in g['seeds'])}, chapter 5's quick budget) on "
        f"{r['cpu_count']} cores, each run into an empty store and model cache; Ray's start "
        f"is part of its wall time. The {EXPECTED}x expected of two workers on two cores is "
        f"{met}. With no cost at all, {workers} one-thread workers would take the one-thread "
        f"time / {workers} ({ideal:.0f} s): {r['serial']['seconds'] / ideal:.2f}x the serial "
        "loop, which already spreads each row over the cores with threads "
        f"({r['serial_one_thread']['seconds'] / r['serial']['seconds']:.2f}x faster than one "
        f"thread). Ray took {r['ray']['seconds'] - ideal:.0f} s more than that: its start (its "
        "processes, then each worker importing torch), its processes sharing the cores, and "
        "the last rows finishing one worker at a time. Every row through Ray is "
        f"{same} to the serial loop's at one thread (accuracy and every other field but the "
        f"timing); to the serial loop's at {r['serial']['threads']} threads they are "
        f"{default}: compare at one thread count."
    )
    return section("The verdict grid on Ray: workers against the serial loop", table, closing)
