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

from course_utils.deploy.compress import LOSSLESS

ROOT = Path(__file__).resolve().parents[2]
START, END = "<!-- BENCH:START -->", "<!-- BENCH:END -->"
NOTEBOOK_LIMITS_MIN = {"01": 2, "02": 3, "03": 3, "04": 3, "05": 4, "06": 4}


def _spread(s: dict, scale: float = 100.0, unit: str = "") -> str:
    if len(s["values"]) == 1:
        return f"{scale * s['median']:.1f}{unit}"
    return f"{scale * s['median']:.1f}{unit} ({scale * s['min']:.1f}–{scale * s['max']:.1f})"


def _verdict(ok: bool | None) -> str:
    return "—" if ok is None else ("met" if ok else "**not met**")


def rows(report: dict) -> list[list[str]]:
    """[chapter, target, measured, verdict] for every section present in ``report``."""
    sec = {k: v["results"] for k, v in report["sections"].items()}
    out: list[list[str]] = []

    def add(chapter: str, target: str, measured: str, ok: bool | None) -> None:
        out.append([chapter, target, measured, _verdict(ok)])

    if "sec_01_baseline" in sec:
        acc, secs = sec["sec_01_baseline"]["test_accuracy"], sec["sec_01_baseline"]["train_seconds"]
        add("1", "dense test accuracy >= 94 %", _spread(acc, unit=" %"), acc["median"] >= 0.94)
        add("1", "baseline training <= 60 s", _spread(secs, 1, " s"), secs["median"] <= 60)
    if "sec_02_magnitude" in sec:
        r = sec["sec_02_magnitude"]
        for sparsity, row in r["summary"].items():
            target, name = row["target_drop_points"], f"AGP {100 * float(sparsity):g} %: drop"
            goal = f"{name} <= {target} pt" if target else f"{name} (reported)"
            add("2", goal, _spread(row["magnitude"]["drop_points"], 1, " pt"), row["met"])
        ms = r["explorer"]["median_ms"]
        add("2", "sparsity explorer update <= 250 ms", f"{ms:.0f} ms", ms <= 250)
    if "sec_03_gradient" in sec:
        for criterion, by_sparsity in sec["sec_03_gradient"]["test_accuracy"].items():
            cells = ", ".join(f"{100 * float(s):g} %: {_spread(v)}" for s, v in by_sparsity.items())
            add("3", f"{criterion}: test accuracy (%)", cells, None)
    if "sec_04_structured" in sec:
        r = sec["sec_04_structured"]
        met, units = r["targets_met"], r["recipe"]["units"]
        drop = _spread(r["drop_points"], 1, " pt")
        add("4", f"group lasso, {units}/128 units: drop <= 2 pt", drop, met["accuracy"])
        for bs, goal in ((64, 3), (1, 1.5)):
            x = r["speedup"]["shrunk"][str(bs)]
            add("4", f"shrunk vs dense, batch {bs}: >= {goal}x", f"{x:.1f}x", met[f"speedup_b{bs}"])
    if "sec_05_gan" in sec:
        r = sec["sec_05_gan"]
        met, units = r["targets_met"], r["recipe"]["units"]
        drop = _spread(r["methods"]["gal"]["drop_points"], 1, " pt")
        add("5", f"GAL, {units}/128 units: drop <= 2 pt", drop, met["accuracy"])
        adv = r["adversarial"]
        versus = (
            f"{adv['verdict']}: median difference {100 * adv['median_difference']:+.1f} pt, "
            f"widest seed range {100 * adv['largest_range']:.1f} pt"
        )
        add(
            "5", "GAL not worse than the ablation without D", versus, met["not_worse_than_ablation"]
        )
        speed = next(v for k, v in r["speedup"].items() if k.startswith("GAL"))["64"]
        add("5", "GAL vs dense, batch 64: >= 3x", f"{speed:.1f}x", met["speedup_b64"])
    if "sec_05b_data_free" in sec:
        r = sec["sec_05b_data_free"]
        s, units = r["summary"], r["recipe"]["units"]
        dafl, words = _spread(s["generator"], unit=" %"), _spread(s["random_words"], unit=" %")
        real = _spread(s["real_data"], unit=" %")
        measured = f"DAFL {dafl}; random words {words}; real data {real}"
        add("5b", f"data-free distillation, {units}/128 units: test accuracy", measured, None)
    if "sec_06_deploy" in sec:
        r = sec["sec_06_deploy"]
        met, seeds = r["targets_met"], r["per_seed"].values()
        lossless = min(max(v["ratio"][f] for f in LOSSLESS) for v in seeds)
        int8 = min(v["ratio"]["bitmask_int8"] for v in seeds)
        drop = _spread(r["drop_points"], 1, " pt")
        add("6", "90 %-sparse model (embedding too): drop <= 1 pt", drop, met["accuracy"])
        add("6", "... lossless file >= 6x smaller than dense fp32", f"{lossless:.1f}x (worst seed)",
            met["lossless_ratio"])  # fmt: skip
        add("6", "... pruned + int8 >= 10x smaller", f"{int8:.1f}x (worst seed)", met["int8_ratio"])
    for name, seconds in sec.get("sec_99_notebooks", {}).items():
        number = name.split("_")[0]  # "01" ... "05b" ... "06"
        limit = NOTEBOOK_LIMITS_MIN.get(number[:2]) if name.endswith(".ipynb") else None
        if limit is None:  # the cache warm-up between chapters 1 and 2
            add("", name, f"{seconds / 60:.1f} min", None)
            continue
        goal = f"notebook {number} headless <= {limit} min"
        add(number.lstrip("0"), goal, f"{seconds / 60:.1f} min", seconds <= 60 * limit)
    return out


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
