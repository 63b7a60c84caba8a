"""The course benchmark: ``make bench`` (full) or ``make bench BENCH_ARGS=--quick``.

Runs every section below in one process, on the CPU, one after another, and writes
``build/bench/bench.json`` and ``bench.md``; ``--publish`` also copies them to
``benchmarks/latest.*`` (what the README quotes). Each section lives in its own module
(``sec_*.py`` beside this file) and returns ``{"results": ..., "markdown": ...}``.
Speed-ups are always ratios of two timings taken in the same run.

``--workers N`` runs the accuracy grid (``sec_05c_unit_grid``) as Ray tasks, N at once, on
a local Ray instance or, with ``--address`` (or ``$RAY_ADDRESS``), on a cluster, and adds
``sec_05d_grid_workers`` (that grid's wall time against the serial loop). Ray is shut down
when the grid is done: the timing sections after it run alone, as without workers.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import inspect
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch
from readme import update_readme

__all__ = ["machine_info", "main", "render", "run_section", "tables", "write_report"]

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SECTIONS = sorted(p.stem for p in HERE.glob("sec_*.py"))
WITH_WORKERS = ("sec_05d_grid_workers",)
"""Sections run only with ``--workers`` (and then by default)."""


def machine_info() -> dict:
    return {
        "date": datetime.date.today().isoformat(),
        "python": platform.python_version(),
        "torch": str(torch.__version__),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }


LATEST = ("latest.json", "latest.md")


def write_report(
    out: Path, report: dict, markdown: list[str], names: tuple = ("bench.json", "bench.md")
) -> None:
    """Write the JSON report and the Markdown tables into ``out``, each replaced atomically."""
    out.mkdir(parents=True, exist_ok=True)
    for name, text in zip(
        names,
        (json.dumps(report, indent=2) + "\n", "\n".join(markdown).rstrip() + "\n"),
        strict=True,
    ):
        partial = out / f".{name}.partial"
        partial.write_text(text)
        partial.replace(out / name)


def tables(report: dict, quick: bool) -> list[str]:
    """The Markdown page: a header with the command and the machine, then each section."""
    m = report["machine"]
    lines = [
        f"# Benchmark ({report['mode']} mode)",
        "",
        f"Command: `make bench{' BENCH_ARGS=--quick' if quick else ''}`. "
        f"Machine: {m['processor']}, {m['cpu_count']} cores, torch {m['torch']}, "
        f"Python {m['python']}, {m['date']}.",
        "",
    ]
    for section in report["sections"].values():
        lines += [section["markdown"], ""]
    return lines


def render(section: dict, module, mode: str) -> None:
    """Rewrite ``section["markdown"]`` from its stored results with ``module.markdown``."""
    takes_mode = len(inspect.signature(module.markdown).parameters) > 1
    args = (section["results"], mode) if takes_mode else (section["results"],)
    section["markdown"] = module.markdown(*args).strip()


def run_section(module, mode: str, workers: int | None, address: str | None) -> dict:
    """``module.run(mode)``, with ``workers`` and ``address`` for a section that takes them
    (the grid's); every other section runs as without them, in this process alone."""
    takes = inspect.signature(module.run).parameters
    engine = {"workers": workers, "address": address} if "workers" in takes else {}
    return module.run(mode, **engine)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer seeds and grid points")
    parser.add_argument(
        "--only", nargs="*", default=None, help="section names, e.g. sec_01_baseline sec_06_deploy"
    )
    parser.add_argument("--out", default=str(ROOT / "build" / "bench"))
    parser.add_argument("--publish", action="store_true", help="copy results to benchmarks/")
    parser.add_argument(
        "--render",
        action="store_true",
        help="with --only: rewrite the published sections' text from their stored results "
        "(after a change to a section's wording; nothing is run)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="run the accuracy grid as Ray tasks, this many at once (pip install -e '.[scale]')",
    )
    parser.add_argument(
        "--address",
        default=None,
        help="with --workers: the Ray cluster to submit the grid to (default $RAY_ADDRESS, "
        "else a local instance)",
    )
    args = parser.parse_args(argv)
    mode = "quick" if args.quick else "full"
    os.environ.setdefault("COURSE_PROGRESS", "0")
    sys.path.insert(0, str(HERE))
    if args.workers is not None and args.workers < 1:
        parser.error(f"--workers must be at least 1, got {args.workers}")
    if args.address and not args.workers:
        parser.error("--address needs --workers N")
    scaled = bool(args.workers and args.workers > 1)
    chosen = args.only or [s for s in SECTIONS if scaled or s not in WITH_WORKERS]
    unknown = set(chosen) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; available: {SECTIONS}")
    if not scaled and set(chosen) & set(WITH_WORKERS):
        parser.error(f"{', '.join(WITH_WORKERS)} needs --workers N (N >= 2)")
    report = {"mode": mode, "machine": machine_info(), "sections": {}}
    published = {"mode": mode, "machine": report["machine"], "sections": {}}
    latest = ROOT / "benchmarks" / "latest.json"
    if args.publish and args.only and latest.exists():  # re-run some sections, keep the rest
        published = json.loads(latest.read_text())
        if published["mode"] != mode:
            parser.error(f"benchmarks/latest.json is a {published['mode']} run, this is {mode}")
        published["machine"] = report["machine"]
    out = Path(args.out)
    if args.render:
        if not (args.only and latest.exists()):
            parser.error("--render needs --only and a published benchmarks/latest.json")
        published = json.loads(latest.read_text())  # its machine and date stay the run's
        if published["mode"] != mode:
            parser.error(f"benchmarks/latest.json is a {published['mode']} run, this is {mode}")
        for name in chosen:
            render(published["sections"][name], importlib.import_module(name), mode)
        write_report(ROOT / "benchmarks", published, tables(published, args.quick), LATEST)
        update_readme(json.loads(json.dumps(published)))
        print(f"[bench] rewrote the text of {', '.join(chosen)} in benchmarks/latest.*")
        return 0
    for name in chosen:
        start = time.perf_counter()
        print(f"[bench] {name} ...", flush=True)
        section = run_section(importlib.import_module(name), mode, args.workers, args.address)
        seconds = time.perf_counter() - start
        report["sections"][name] = {
            "results": section["results"],
            "seconds": seconds,
            "markdown": section["markdown"].strip(),
        }
        print(f"[bench] {name} done in {seconds:.0f} s", flush=True)
        write_report(out, report, tables(report, args.quick))  # a crash keeps the rest
        if args.publish:  # later sections (the notebooks) read what is published so far
            published["sections"][name] = report["sections"][name]
            published["sections"] = {
                k: published["sections"][k] for k in SECTIONS if k in published["sections"]
            }
            write_report(ROOT / "benchmarks", published, tables(published, args.quick), LATEST)
            try:
                update_readme(json.loads(json.dumps(published)))  # keys as in latest.json
            except (KeyError, TypeError, ValueError) as err:  # the tables are still written
                print(f"[bench] README not updated: {type(err).__name__}: {err}", flush=True)
    print(f"[bench] wrote {out / 'bench.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
