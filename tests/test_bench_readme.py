"""The README's benchmark block is written from the benchmark's JSON, verdicts included."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools" / "bench"))
import readme  # noqa: E402


def spread(*values: float) -> dict:
    return {
        "median": sorted(values)[len(values) // 2],
        "min": min(values),
        "max": max(values),
        "values": list(values),
    }


def report(**sections) -> dict:
    machine = {
        "date": "2026-01-01",
        "processor": "x86_64",
        "cpu_count": 2,
        "torch": "2.13.0",
        "python": "3.11.2",
    }
    return {
        "mode": "full",
        "machine": machine,
        "sections": {k: {"results": v, "seconds": 1.0} for k, v in sections.items()},
    }


def test_every_target_row_says_met_or_not_met():
    r = report(
        sec_01_baseline={
            "test_accuracy": spread(0.955, 0.962, 0.946),
            "train_seconds": spread(45.0, 50.0, 70.0),
        },
        sec_02_magnitude={
            "summary": {
                "0.9": {
                    "magnitude": {"drop_points": spread(0.2, 0.5, 1.4)},
                    "target_drop_points": 1.0,
                    "met": True,
                },
                "0.98": {
                    "magnitude": {"drop_points": spread(2.0, 3.0, 4.0)},
                    "target_drop_points": None,
                    "met": None,
                },
            },
            "explorer": {"median_ms": 300.0},
        },
        sec_05b_data_free={
            "recipe": {"units": 32},
            "summary": {
                "generator": spread(0.9, 0.85, 0.93),
                "random_words": spread(0.8),
                "real_data": spread(0.91),
            },
        },
        sec_99_notebooks={
            "01_baseline_rnn.ipynb": 100.0,
            "make warm, after chapter 1": 90.0,
            "05b_data_free_distillation.ipynb": 200.0,
            "06_compare_and_deploy.ipynb": 300.0,
        },
    )
    rows = readme.rows(r)
    by_target = {row[1]: row for row in rows}
    assert by_target["dense test accuracy >= 94 %"][2:] == ["95.5 % (94.6–96.2)", "met"]
    assert by_target["baseline training <= 60 s"][3] == "met"  # the median counts
    assert by_target["AGP 90 %: drop <= 1.0 pt"][3] == "met"
    assert by_target["AGP 98 %: drop (reported)"][3] == "—"
    assert by_target["sparsity explorer update <= 250 ms"][3] == "**not met**"
    assert by_target["notebook 01 headless <= 2 min"][2:] == ["1.7 min", "met"]
    assert by_target["notebook 06 headless <= 4 min"][2:] == ["5.0 min", "**not met**"]
    assert by_target["make warm, after chapter 1"][2:] == ["1.5 min", "—"]
    assert by_target["notebook 05b headless <= 4 min"] == ["5b", "notebook 05b headless <= 4 min",
                                                           "3.3 min", "met"]  # fmt: skip
    assert by_target["data-free distillation, 32/128 units: test accuracy"][2:] == [
        "DAFL 90.0 % (85.0–93.0); random words 80.0 %; real data 91.0 %",
        "—",
    ]


def test_chapter_3_quotes_every_criterion_both_snips_included():
    r = report(
        sec_03_gradient={
            "test_accuracy": {
                c: {"0.9": spread(0.9, 0.88, 0.91), "0.98": spread(0.5)}
                for c in ("magnitude", "taylor", "snip", "snip_layerwise")
            }
        }
    )
    rows = readme.rows(r)
    assert [row[1] for row in rows] == [
        f"{c}: test accuracy (%)" for c in ("magnitude", "taylor", "snip", "snip_layerwise")
    ]
    assert rows[3] == [
        "3",
        "snip_layerwise: test accuracy (%)",
        "90 %: 90.0 (88.0–91.0), 98 %: 50.0",
        "—",
    ]


def test_update_replaces_only_the_block(tmp_path):
    page = tmp_path / "README.md"
    page.write_text(f"# Title\n\nbefore\n{readme.START}\nold\n{readme.END}\nafter\n")
    r = report(sec_01_baseline={"test_accuracy": spread(0.95), "train_seconds": spread(40.0)})
    readme.update_readme(r, page)
    text = page.read_text()
    assert text.startswith("# Title\n\nbefore\n") and text.endswith(f"{readme.END}\nafter\n")
    assert "old" not in text and "| 1 | dense test accuracy >= 94 % | 95.0 % | met |" in text
    assert "`make bench BENCH_ARGS=--publish`" in text
    assert not list(tmp_path.glob(".*partial"))


def test_a_readme_without_markers_is_refused(tmp_path):
    page = tmp_path / "README.md"
    page.write_text("# no markers\n")
    with pytest.raises(ValueError, match="BENCH:START"):
        readme.update_readme(report(), page)
    assert page.read_text() == "# no markers\n"


def test_the_course_readme_has_the_markers():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert text.count(readme.START) == 1 and text.count(readme.END) == 1


def test_the_committed_benchmark_renders_the_readme_table():
    """The README's block is what readme.py makes of benchmarks/latest.json, to the letter."""
    report = json.loads((ROOT / "benchmarks" / "latest.json").read_text(encoding="utf-8"))
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    committed = text.split(readme.START, 1)[1].split(readme.END, 1)[0]
    assert committed == f"\n{readme.block(report)}\n"
    rows = {row[1]: row for row in readme.rows(report)}
    assert rows["GAL, 32/128 units: drop <= 2 pt"][2] == "1.9 pt (1.2–2.1)"


def test_pct_and_the_spreads_of_the_sections():
    from common import latency_note, pct

    assert pct(spread(0.9531, 0.9412, 0.9623)) == "95.3 % (94.1-96.2)"
    assert pct(spread(0.95)) == "95.0 %"
    assert latency_note(3, 20) == (
        "Latency: one thread, 3 interleaved rounds of 20 runs, full-length inputs"
    )


def test_the_verdict_grid_gives_one_row_per_question_with_every_budget():
    from course_utils.experiments.unit_grid import QUESTIONS, grid_verdicts

    rows = []
    for units in (64, 16):
        for method, scores in (
            ("group_lasso", (0.95, 0.94, 0.96)),
            ("unit_magnitude", (0.93, 0.93, 0.95)),
        ):
            rows += [
                {
                    "method": method,
                    "units": units,
                    "seed": seed,
                    "dense_test": 0.95,
                    "test_before": s,
                    "valid_accuracy": s,
                    "test_accuracy": s,
                    "seconds": 1.0,
                }
                for seed, s in enumerate(scores)
            ]
    verdicts = [dict(v) for v in grid_verdicts(rows)]
    question = next(q for a, b, q in QUESTIONS if (a, b) == ("group_lasso", "unit_magnitude"))
    assert readme.rows(report(sec_05c_unit_grid={"verdicts": verdicts})) == [
        [
            "4",
            f"{question} (paired over 3 seeds)",
            "64 units: better (+1.0 pt, +1.0 to +2.0); 16 units: better (+1.0 pt, +1.0 to +2.0)",
            "—",
        ]
    ]


def test_the_sparse_path_row_reads_every_thread_count_at_95_percent_and_batch_64():
    def row(threads, speedup):
        return {
            "threads": threads,
            "sparsity": 0.95,
            "batch": 64,
            "sparse speed-up": speedup,
            "structured units": 15,
            "structured speed-up": 7.25,
        }

    other = dict(row(1, 9.0), batch=1)  # another batch size: not read
    got = readme.rows(report(sec_06b_sparse={"rows": [row(1, 1.41), row(2, 0.72), other]}))
    assert got == [
        [
            "6",
            "sparse path, 95 % sparse, batch 64: >= 1.5x over dense masked",
            "1 thread(s): 1.41x (structured, 15 units: 7.2x); "
            "2 thread(s): 0.72x (structured, 15 units: 7.2x)",
            "**not met**",
        ]
    ]
    met = readme.rows(report(sec_06b_sparse={"rows": [row(1, 1.6), row(2, 1.5)]}))
    assert met[0][3] == "met"
