"""Chapter 3's benchmark section: its verdicts and text follow the rows of the grid."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools" / "bench"))
import sec_03_gradient as sec  # noqa: E402

from course_utils.pruning.criteria import ALL_CRITERIA  # noqa: E402
from course_utils.report import median_spread  # noqa: E402

SPARSITIES = (0.9, 0.98)
ACCURACY = {  # test accuracy of seeds 0, 1, 2
    "magnitude": {0.9: [0.80, 0.82, 0.81], 0.98: [0.30, 0.35, 0.32]},
    "random": {0.9: [0.50, 0.52, 0.51], 0.98: [0.24, 0.24, 0.24]},
    "taylor": {0.9: [0.90, 0.91, 0.92], 0.98: [0.70, 0.72, 0.71]},
    "movement": {0.9: [0.79, 0.83, 0.80], 0.98: [0.60, 0.62, 0.61]},
    "snip": {0.9: [0.88, 0.89, 0.87], 0.98: [0.60, 0.40, 0.55]},
    "snip_layerwise": {0.9: [0.84, 0.85, 0.83], 0.98: [0.50, 0.45, 0.58]},
}


def fake_rows() -> list[dict]:
    return [
        {"criterion": c, "sparsity": s, "seed": seed, "test_accuracy": acc}
        for c in ALL_CRITERIA
        for s in SPARSITIES
        for seed, acc in enumerate(ACCURACY[c][s])
    ]


def test_both_snips_are_judged_and_the_allocation_line_follows_the_numbers():
    rows = fake_rows()
    found = sec.claims(rows)
    assert list(found["verdicts"]) == ["taylor", "movement", "snip", "snip_layerwise"]
    claim = found["claim"].splitlines()
    assert [line.split()[0] for line in claim] == ["taylor", "movement", "snip", "snip_layerwise"]
    assert claim[3].startswith("snip_layerwise beats magnitude at 2 of 2 sparsities")
    # every SNIP seed above every layerwise seed at 90 %; the seeds overlap at 98 %
    assert found["allocation"] == (
        "snip beats snip_layerwise at 1 of 2 sparsities (median test accuracy; "
        "90 %: +4.0 pts (better); 98 %: +5.0 pts (no clear difference))"
    )
    results = {
        "rows": rows,
        "test_accuracy": sec.accuracy_by(rows, ALL_CRITERIA, SPARSITIES),
        "dense_test_accuracy": median_spread([0.96, 0.95, 0.97]),
        **found,
        "budget": "One epoch.",
        "seeds": [0, 1, 2],
        "longer_budget": None,
    }
    text = sec.markdown(results)
    table = [line for line in text.splitlines() if line.startswith("| snip")]
    assert [line.split(" | ")[0] for line in table] == ["| snip", "| snip_layerwise"]
    assert "snip ranks the scores of all tensors together, as in the paper" in text
    assert "What the allocation buys: snip vs snip_layerwise at each sparsity" in text
    after = text.split("What the allocation buys")[1]
    assert f"- {found['allocation']}" in after and f"- {claim[3]}" in text
