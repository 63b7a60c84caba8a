"""Write the benchmark's key figures into README.md, between its BENCH markers.

Reads benchmarks/latest.json (what `make bench BENCH_ARGS=--publish` wrote) and replaces
the text between ``<!-- BENCH:START -->`` and ``<!-- BENCH:END -->`` with one table: each
issue target, the measured value and whether it is met. `run.py --publish` calls it; it
can also be run alone: ``python tools/bench/readme.py``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from sec_06b_sparse import TARGET

from course_utils.deploy.compress import LOSSLESS
from course_utils.experiments.unit_grid import CHAPTER_4
from course_utils.report import median_range

__all__ = ["SECTION_ROWS", "block", "rows", "update_readme"]

ROOT = Path(__file__).resolve().parents[2]
START, END = "<!-- BENCH:START -->", "<!-- BENCH:END -->"
NOTEBOOK_LIMITS_MIN = {"01": 2, "02": 3, "03": 3, "04": 3, "05": 4, "06": 4}


def _spread(s: dict, scale: float = 100.0, unit: str = "") -> str:
    return median_range(s, scale=scale, unit=unit, between="–")


def _verdict(ok: bool | None) -> str:
    return "—" if ok is None else ("met" if ok else "**not met**")


def _chapter_1(r: dict) -> list[tuple]:
    acc, secs = r["test_accuracy"], r["train_seconds"]
    return [
        ("1", "dense test accuracy >= 94 %", _spread(acc, unit=" %"), acc["median"] >= 0.94),
        ("1", "baseline training <= 60 s", _spread(secs, 1, " s"), secs["median"] <= 60),
    ]


def _chapter_2(r: dict) -> list[tuple]:
    out = []
    for sparsity, row in r["summary"].items():
        target, name = row["target_drop_points"], f"AGP {100 * float(sparsity):g} %: drop"
        goal = f"{name} <= {target} pt" if target else f"{name} (reported)"
        out.append(("2", goal, _spread(row["magnitude"]["drop_points"], 1, " pt"), row["met"]))
    ms = r["explorer"]["median_ms"]
    return [*out, ("2", "sparsity explorer update <= 250 ms", f"{ms:.0f} ms", ms <= 250)]


def _chapter_3(r: dict) -> list[tuple]:
    return [
        (
            "3",
            f"{criterion}: test accuracy (%)",
            ", ".join(f"{100 * float(s):g} %: {_spread(v)}" for s, v in by_sparsity.items()),
            None,
        )
        for criterion, by_sparsity in r["test_accuracy"].items()
    ]


def _chapter_4(r: dict) -> list[tuple]:
    met, units = r["targets_met"], r["recipe"]["units"]
    drop = _spread(r["drop_points"], 1, " pt")
    out = [("4", f"group lasso, {units}/128 units: drop <= 2 pt", drop, met["accuracy"])]
    control = _spread(r["control_drop_points"], 1, " pt")
    out.append(
        ("4", f"control: the baseline cut to {units} units, same fine-tuning", control, None)
    )
    scratch = _spread(r["small_from_scratch"], unit=" %")
    out.append(("4", f"control: LSTM-{units} trained from scratch, test accuracy", scratch, None))
    for bs, goal in ((64, 3), (1, 1.5)):
        x = r["speedup"]["shrunk"][str(bs)]
        out.append(
            ("4", f"shrunk vs dense, batch {bs}: >= {goal}x", f"{x:.1f}x", met[f"speedup_b{bs}"])
        )
    return out


def _chapter_5(r: dict) -> list[tuple]:
    met, units, adv = r["targets_met"], r["recipe"]["units"], r["adversarial"]
    drop = _spread(r["methods"]["gal"]["drop_points"], 1, " pt")
    versus = (
        f"{adv['verdict']}: median difference {100 * adv['median_difference']:+.1f} pt, "
        f"widest seed range {100 * adv['largest_range']:.1f} pt"
    )
    speed = next(v for k, v in r["speedup"].items() if k.startswith("GAL"))["64"]
    return [
        ("5", f"GAL, {units}/128 units: drop <= 2 pt", drop, met["accuracy"]),
        ("5", "GAL not worse than the ablation without D", versus, met["not_worse_than_ablation"]),
        ("5", "GAL vs dense, batch 64: >= 3x", f"{speed:.1f}x", met["speedup_b64"]),
    ]


def _chapter_5b(r: dict) -> list[tuple]:
    s, units = r["summary"], r["recipe"]["units"]
    dafl, words = _spread(s["generator"], unit=" %"), _spread(s["random_words"], unit=" %")
    real = _spread(s["real_data"], unit=" %")
    measured = f"DAFL {dafl}; random words {words}; real data {real}"
    return [("5b", f"data-free distillation, {units}/128 units: test accuracy", measured, None)]


def _verdict_grid(r: dict) -> list[tuple]:
    """One row per question of the grid: its verdict at each budget, paired over seeds."""
    chapter_4 = {q for _, _, q in CHAPTER_4}
    out = []
    for question in dict.fromkeys(v["question"] for v in r["verdicts"]):
        mine = [v for v in r["verdicts"] if v["question"] == question]
        measured = "; ".join(
            f"{v['units']} units: {v['verdict']} ({v['difference']:+.1f} pt, {v['interval']})"
            for v in mine
        )
        seeds = mine[0]["seeds"]
        chapter = "4" if question in chapter_4 else "5"
        out.append((chapter, f"{question} (paired over {seeds} seeds)", measured, None))
    return sorted(out, key=lambda row: row[0])  # chapter 4's questions first


def _grid_workers(r: dict) -> list[tuple]:
    """The verdict grid as Ray tasks against the serial loop (a run with --workers)."""
    ray, same = r["ray"], r["rows_identical_to_one_thread"]
    target = (
        f"grid on {ray['workers']} Ray workers x 1 thread: >= 1.5x the serial loop "
        f"({r['serial']['threads']} threads), rows identical to a serial run at 1 thread"
    )
    measured = f"{r['speedup']:.2f}x, rows {'identical' if same else 'NOT identical'}"
    return [("4-5", target, measured, r["speedup"] >= 1.5 and same)]


def _chapter_6(r: dict) -> list[tuple]:
    met, seeds = r["targets_met"], r["per_seed"].values()
    lossless = min(max(v["ratio"][f] for f in LOSSLESS) for v in seeds)
    int8 = min(v["ratio"]["bitmask_int8"] for v in seeds)
    drop = _spread(r["drop_points"], 1, " pt")
    return [
        ("6", "90 %-sparse model (embedding too): drop <= 1 pt", drop, met["accuracy"]),
        (
            "6",
            "... lossless file >= 6x smaller than dense fp32",
            f"{lossless:.1f}x (worst seed)",
            met["lossless_ratio"],
        ),  # fmt: skip
        ("6", "... pruned + int8 >= 10x smaller", f"{int8:.1f}x (worst seed)", met["int8_ratio"]),
    ]


def _sparse_path(r: dict) -> list[tuple]:
    """The sparse path's aim (1.5x at 95 % and batch 64), at every thread count measured."""
    aim = TARGET  # sec_06b_sparse's: the speed-up aimed at, its sparsity and batch size
    at = [x for x in r["rows"] if x["sparsity"] == aim["sparsity"] and x["batch"] == aim["batch"]]
    if not at:
        return []
    measured = "; ".join(
        f"{x['threads']} thread(s): {x['sparse speed-up']:.2f}x "
        f"(structured, {x['structured units']} units: {x['structured speed-up']:.1f}x)"
        for x in at
    )
    ok = all(x["sparse speed-up"] >= aim["speed_up"] for x in at)
    goal = (
        f"sparse path, {100 * aim['sparsity']:g} % sparse, batch {aim['batch']}: "
        f">= {aim['speed_up']}x over dense masked"
    )
    return [("6", goal, measured, ok)]


def _onnx(r: dict) -> list[tuple]:
    """ONNX Runtime's outputs against eager PyTorch, and its speed at batch 64."""
    if "skipped" in r:
        return [("6", "ONNX Runtime section", "not run (the deploy extra is not installed)", None)]
    checks = r["checks"]
    largest = max(c["max_abs_diff"] for c in checks)
    same = all(c["same labels"] == 1.0 for c in checks)
    dense = {t["precision"]: t for t in r["timings"] if t["model"] == "dense"}
    measured = (
        f"{len(checks)} models, same labels: {'all' if same else 'not all'}, largest logit "
        f"difference {largest:.1e}; dense at batch 64, ONNX Runtime over PyTorch: fp32 "
        f"{dense['fp32']['ONNX Runtime speed-up b64']:.2f}x, int8 "
        f"{dense['int8']['ONNX Runtime speed-up b64']:.2f}x"
    )
    goal = "ONNX Runtime: same labels as eager PyTorch, logits within 1e-4"
    return [("6", goal, measured, same and largest < 1e-4)]


def _notebooks(r: dict) -> list[tuple]:
    out = []
    for name, seconds in r.items():
        number = name.split("_")[0]  # "01" ... "05b" ... "06"
        limit = NOTEBOOK_LIMITS_MIN.get(number[:2]) if name.endswith(".ipynb") else None
        if limit is None:  # the cache warm-up between chapters 1 and 2
            out.append(("", name, f"{seconds / 60:.1f} min", None))
            continue
        goal = f"notebook {number} headless <= {limit} min"
        out.append((number.lstrip("0"), goal, f"{seconds / 60:.1f} min", seconds <= 60 * limit))
    return out


SECTION_ROWS = {
    "sec_01_baseline": _chapter_1,
    "sec_02_magnitude": _chapter_2,
    "sec_03_gradient": _chapter_3,
    "sec_04_structured": _chapter_4,
    "sec_05_gan": _chapter_5,
    "sec_05b_data_free": _chapter_5b,
    "sec_05c_unit_grid": _verdict_grid,
    "sec_05d_grid_workers": _grid_workers,
    "sec_06_deploy": _chapter_6,
    "sec_06b_sparse": _sparse_path,
    "sec_06c_onnx": _onnx,
    "sec_99_notebooks": _notebooks,
}
"""The README rows of each benchmark section, in the order the table shows them."""


def rows(report: dict) -> list[list[str]]:
    """[chapter, target, measured, verdict] for every section present in ``report``."""
    sec = {k: v["results"] for k, v in report["sections"].items()}
    return [
        [chapter, target, measured, _verdict(ok)]
        for name, section_rows in SECTION_ROWS.items()
        if name in sec
        for chapter, target, measured, ok in section_rows(sec[name])
    ]


def block(report: dict) -> str:
    m = report["machine"]
    mode = report["mode"]
    command = (
        "make bench BENCH_ARGS=--publish"
        if mode == "full"
        else ("make bench BENCH_ARGS='--quick --publish'")
    )
    lines = [
        f"Made by `{command}` ({mode} mode) on {m['date']}: {m['processor']}, "
        f"{m['cpu_count']} cores, torch {m['torch']}, Python {m['python']}. Accuracies are "
        "medians over seeds (min–max in brackets); drops are in points of test accuracy "
        "against the same seed's dense baseline; speed-ups are ratios of two timings from the "
        "same run. Every table: [benchmarks/latest.md](benchmarks/latest.md).",
        "",
        "| chapter | target | measured | |",
        "|---|---|---|---|",
    ]
    lines += ["| " + " | ".join(r) + " |" for r in rows(report)]
    return "\n".join(lines)


def update_readme(report: dict, readme: Path = ROOT / "README.md") -> None:
    """Replace the text between the BENCH markers of ``readme`` with :func:`block`."""
    text = readme.read_text(encoding="utf-8")
    if START not in text or END not in text:
        raise ValueError(f"{readme} has no {START} ... {END} block")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    partial = readme.with_name(f".{readme.name}.partial")
    partial.write_text(f"{head}{START}\n{block(report)}\n{END}{tail}", encoding="utf-8")
    partial.replace(readme)


if __name__ == "__main__":
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "benchmarks" / "latest.json"
    update_readme(json.loads(path.read_text(encoding="utf-8")))
