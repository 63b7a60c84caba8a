"""Chapter 3: test accuracy of each pruning criterion at high sparsity, equal budget.

Magnitude, Taylor, movement and random prune the trained baseline along the same cubic
schedule inside the same fine-tuning budget, with the same sparsity in each tensor;
SNIP prunes the baseline's initialization and trains from scratch for the baseline's
epochs plus that budget, twice: as in the paper (one ranking over all tensors) and
layerwise, which shows what SNIP's allocation across tensors buys. The embedding is
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
from course_utils.report import median_range

__all__ = [
    "CHALLENGERS",
    "LONGER_CRITERIA",
    "LONGER_SPARSITIES",
    "accuracy_by",
    "accuracy_table",
    "claims",
    "markdown",
    "run",
]

CHALLENGERS = ("taylor", "movement", "snip", "snip_layerwise")
"""The criteria the claim compares with magnitude."""
LONGER_CRITERIA = ("magnitude", "taylor", "movement")
LONGER_SPARSITIES = (0.95, 0.98)


def accuracy_by(rows: list[dict], criteria, sparsities) -> dict:
    """``{criterion: {"0.9": median_spread of test accuracy over seeds}}``."""
    return {
        c: {
            f"{s:g}": median_spread(
                [r["test_accuracy"] for r in rows if r["criterion"] == c and r["sparsity"] == s]
            )
            for s in sparsities
        }
        for c in criteria
    }


def accuracy_table(by_criterion: dict) -> str:
    """Markdown: one row per criterion, ``median (min-max)`` test accuracy per sparsity."""
    sparsities = list(next(iter(by_criterion.values())))
    return md_table(
        ["criterion", *(f"{100 * float(s):g} % sparse" for s in sparsities)],
        [
            [c, *(median_range(cells[s], scale=100) for s in sparsities)]
            for c, cells in by_criterion.items()
        ],
    )


def claims(rows: list[dict]) -> dict:
    """The verdicts computed from the grid's rows: each challenger against magnitude
    (``verdicts``, ``claim``) and SNIP as in the paper against its layerwise variant
    (``allocation``: what SNIP's allocation across tensors buys)."""
    return {
        "verdicts": {
            c: [dict(v) for v in compare_medians(rows, c, "magnitude")] for c in CHALLENGERS
        },
        "claim": describe_claim(rows, CHALLENGERS),
        "allocation": describe_claim(rows, ["snip"], "snip_layerwise"),
    }


def run(mode: str) -> dict:
    full = mode == "full"
    sparsities = (0.9, 0.95, 0.98) if full else (0.9, 0.98)
    budget = FineTuneBudget() if full else FineTuneBudget(scratch_epochs=2)
    baselines = [get_baseline(seed=s) for s in seeds(mode)]
    comparison = compare_criteria(
        baselines, ALL_CRITERIA, sparsities, budget=budget, progress=False
    )
    rows = [dict(r) for r in comparison.rows]
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
            "test_accuracy": accuracy_by(longer_rows, LONGER_CRITERIA, LONGER_SPARSITIES),
            "claim": describe_claim(longer_rows, ["taylor", "movement"]),
        }
    results = {
        "rows": rows,
        "test_accuracy": accuracy_by(rows, ALL_CRITERIA, sparsities),
        "dense_test_accuracy": median_spread([b.metrics["test_accuracy"] for b in baselines]),
        **claims(rows),
        "budget": budget.describe(baselines[0]),
        "seeds": [b.seed for b in baselines],
        "longer_budget": longer,
    }
    return {"results": results, "markdown": markdown(results)}


def markdown(results: dict) -> str:
    longer = results["longer_budget"]
    text = "\n".join(
        [
            "## Chapter 3: pruning criteria at equal budget (test accuracy %, median (min-max))",
            "",
            f"Dense baseline: {median_range(results['dense_test_accuracy'], scale=100)} %. "
            f"Seeds: {', '.join(str(s) for s in results['seeds'])}. Pruned: the recurrent and "
            "classifier weights; the embedding stays dense. The gradual criteria and "
            "snip_layerwise give each tensor the same sparsity (layerwise); snip ranks the "
            "scores of all tensors together, as in the paper, so the sparsity of each tensor "
            "follows from its ranking.",
            "",
            accuracy_table(results["test_accuracy"]),
            "",
            f"Budget. {results['budget']}",
            "",
            'Random is the floor. The claim "gradient-based criteria handle high sparsity '
            'better than magnitude", as these numbers answer it (better/worse only when every '
            "seed agrees):",
            "",
            *(f"- {line}" for line in results["claim"].splitlines()),
            "",
            "What the allocation buys: snip vs snip_layerwise at each sparsity (the same "
            "scores, one ranking over all tensors against the same sparsity in each):",
            "",
            *(f"- {line}" for line in results["allocation"].splitlines()),
        ]
    )
    if longer is not None:
        text += "\n".join(
            [
                "",
                "",
                "Longer budget (3 fine-tuning epochs, same schedule shape), test accuracy %:",
                "",
                accuracy_table(longer["test_accuracy"]),
                "",
                f"Budget. {longer['budget']}",
                "",
                *(f"- {line}" for line in longer["claim"].splitlines()),
            ]
        )
    return text
