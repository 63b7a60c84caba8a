"""Helpers shared by the benchmark sections."""

from __future__ import annotations

from collections.abc import Sequence

from course_utils.report import median_range, median_spread

__all__ = [
    "latency_note",
    "md_table",
    "median_spread",
    "met_words",
    "pct",
    "section",
    "seeds",
    "speed_and_sizes",
    "speed_table",
]


def seeds(mode: str) -> list[int]:
    """Seeds for medians: three in full mode, one in quick mode."""
    return [0, 1, 2] if mode == "full" else [0]


def pct(summary: dict) -> str:
    """``95.3 % (94.1-96.2)`` from a median_spread summary of fractions."""
    return median_range(summary, scale=100, unit=" %")


def section(title: str, *paragraphs: str | None) -> str:
    """A section of the report in Markdown: ``## title``, then each paragraph (a table or
    a text; None is left out), separated by blank lines."""
    return "\n\n".join([f"## {title}", *(p for p in paragraphs if p is not None)])


def met_words(targets_met: dict) -> dict:
    """``"met"`` or ``"NOT met"`` for each target."""
    return {k: "met" if v else "NOT met" for k, v in targets_met.items()}


def latency_note(rounds: int, repeats: int) -> str:
    """How latency was measured, for a section's closing paragraph (no final stop)."""
    return f"Latency: one thread, {rounds} interleaved rounds of {repeats} runs, full-length inputs"


def md_table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def speed_and_sizes(timed: dict, latency: dict) -> tuple[dict, dict]:
    """Speed-ups against ``latency["dense"]`` (same run) and the sizes of each timed model."""
    from course_utils.measure import count_parameters, size_on_disk, state_without_embedding

    speedup = {
        name: {bs: latency["dense"][bs] / latency[name][bs] for bs in (1, 64)} for name in timed
    }
    sizes = {
        name: {
            "file": size_on_disk(m),
            "without_embedding": size_on_disk(state_without_embedding(m)),
            "params_without_embedding": count_parameters(m)["total_without_embedding"],
        }
        for name, m in timed.items()
    }
    return speedup, sizes


def speed_table(lat: dict, speedup: dict, sizes: dict) -> str:
    """Markdown: latency at batch 1 and 64 with speed-ups, file size, size without embedding."""
    header = [
        "model (seed 0)",
        "batch 1 (ms)",
        "speed-up",
        "batch 64 (ms)",
        "speed-up",
        "file (MB)",
        "without embedding (KB)",
    ]
    rows = [
        [
            name,
            f"{lat[name][1]:.2f}",
            f"{speedup[name][1]:.1f}x",
            f"{lat[name][64]:.1f}",
            f"{speedup[name][64]:.1f}x",
            f"{sizes[name]['file']['raw_bytes'] / 1e6:.2f}",
            f"{sizes[name]['without_embedding']['raw_bytes'] / 1e3:.0f}",
        ]
        for name in lat
    ]
    return md_table(header, rows)
