"""Chapter 3: test accuracy of each pruning criterion at high sparsity, equal budget.

Magnitude, Taylor, movement and random prune the trained baseline along the same cubic
schedule inside the same fine-tuning budget; SNIP prunes the baseline's initialization
and trains from scratch for the baseline's epochs plus that budget. The embedding is
not pruned (see chapter 3). Median and min-max over the baseline seeds. Full mode also
repeats the trained-model criteria at 95 and 98 % with a three times longer budget, to
see whether the verdict depends on the budget.
"""

from __future__ import annotations

from common import md_table, median_spread, seeds

from course_utils import get_baseline
from course_utils.experiments.comparison import (
    FineTuneBudget,
    compare_criteria,
    compare_medians,
    describe_claim,
)
from course_utils.pruning.criteria import ALL_CRITERIA

LONGER_CRITERIA = ("magnitude", "taylor", "movement")
LONGER_SPARSITIES = (0.95, 0.98)


def run(mode: str) -> dict:
    full = mode == "full"
    sparsities = (0.9, 0.95, 0.98) if full else (0.9, 0.98)
    budget = FineTuneBudget() if full else FineTuneBudget(scratch_epochs=2)
    baselines = [get_baseline(seed=s) for s in seeds(mode)]
    comparison = compare_criteria(
        baselines, ALL_CRITERIA, sparsities, budget=budget, progress=False
    )
    rows = [dict(r) for r in comparison.rows]
    summary = {
        c: {
            f"{s:g}": median_spread(
                [r["test_accuracy"] for r in rows if r["criterion"] == c and r["sparsity"] == s]
            )
            for s in sparsities
        }
        for c in ALL_CRITERIA
    }
    verdicts = {
        c: [dict(v) for v in compare_medians(rows, c, "magnitude")]
        for c in ("taylor", "movement", "snip")
    }
    dense = median_spread([b.metrics["test_accuracy"] for b in baselines])
    claim = describe_claim(rows)
    longer = None
    if full:  # does the verdict survive a longer fine-tuning budget?
        longer_budget = FineTuneBudget(epochs=3)
        longer_rows = [
            dict(r)
            for r in compare_criteria(
                baselines, LONGER_CRITERIA, LONGER_SPARSITIES, budget=longer_budget, progress=False
            ).rows
        ]
        longer = {
            "budget": longer_budget.describe(baselines[0], snip=False),
            "rows": longer_rows,
            "test_accuracy": {
                c: {
                    f"{s:g}": median_spread(
                        [
                            r["test_accuracy"]
                            for r in longer_rows
                            if r["criterion"] == c and r["sparsity"] == s
                        ]
                    )
                    for s in LONGER_SPARSITIES
                }
                for c in LONGER_CRITERIA
            },
            "claim": describe_claim(longer_rows, ["taylor", "movement"]),
        }
    results = {
        "rows": rows,
        "test_accuracy": summary,
        "dense_test_accuracy": dense,
        "verdicts": verdicts,
        "claim": claim,
        "budget": budget.describe(baselines[0]),
        "seeds": [b.seed for b in baselines],
        "longer_budget": longer,
    }

    def cell(summary_: dict) -> str:
        values = summary_["values"]
        if len(values) == 1:
            return f"{100 * values[0]:.1f}"
        return (
            f"{100 * summary_['median']:.1f} "
            f"({100 * summary_['min']:.1f}-{100 * summary_['max']:.1f})"
        )

    table = md_table(
        ["criterion", *(f"{100 * s:g} % sparse" for s in sparsities)],
        [[c, *(cell(summary[c][f"{s:g}"]) for s in sparsities)] for c in ALL_CRITERIA],
    )
    markdown = "\n".join(
        [
            "## Chapter 3: pruning criteria at equal budget (test accuracy %, median (min-max))",
            "",
            f"Dense baseline: {cell(dense)} %. Seeds: "
            f"{', '.join(str(b.seed) for b in baselines)}. Pruned: the recurrent and classifier "
            "weights, the same sparsity in each tensor (layerwise); the embedding stays dense.",
            "",
            table,
            "",
            f"Budget. {results['budget']}",
            "",
            'Random is the floor. The claim "gradient-based criteria handle high sparsity '
            'better than magnitude", as these numbers answer it (better/worse only when every '
            "seed agrees):",
            "",
            *(f"- {line}" for line in claim.splitlines()),
        ]
    )
    if longer is not None:
        markdown += "\n".join(
            [
                "",
                "",
                "Longer budget (3 fine-tuning epochs, same schedule shape), test accuracy %:",
                "",
                md_table(
                    ["criterion", *(f"{100 * s:g} % sparse" for s in LONGER_SPARSITIES)],
                    [
                        [
                            c,
                            *(
                                cell(longer["test_accuracy"][c][f"{s:g}"])
                                for s in LONGER_SPARSITIES
                            ),
                        ]
                        for c in LONGER_CRITERIA
                    ],
                ),
                "",
                f"Budget. {longer['budget']}",
                "",
                *(f"- {line}" for line in longer["claim"].splitlines()),
            ]
        )
    return {"results": results, "markdown": markdown}
