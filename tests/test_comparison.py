"""The equal-budget comparison of criteria, its summaries and its verdict."""

import copy
import math

import pytest
import torch

from course_utils.experiments import comparison
from course_utils.experiments.baseline import BaselineConfig, get_baseline
from course_utils.experiments.comparison import (
    FineTuneBudget,
    compare_criteria,
    compare_medians,
    describe_claim,
    summarize,
)
from course_utils.pruning import get_masks, select
from course_utils.pruning.criteria import first_batch
from course_utils.pruning.gradient import snip_scores

# --- the comparison on a tiny real baseline ----------------------------------------------------


@pytest.fixture(scope="module")
def tiny_baseline(tmp_path_factory):
    config = BaselineConfig(
        max_len=16, hidden_size=4, embed_dim=4, epochs=1, max_vocab=300, batch_size=128
    )
    return get_baseline(config, seed=1, cache_dir=tmp_path_factory.mktemp("c"), progress=False)


def test_compare_criteria_gives_every_criterion_the_same_budget(tiny_baseline, monkeypatch):
    before = copy.deepcopy(tiny_baseline.model.state_dict())
    measured = []  # (masks, accuracy counted by hand) of each model the test split scores
    original = comparison.predict

    def predict_and_record(model, loader, *args, **kwargs):
        assert loader.dataset is tiny_baseline.datasets["test"]
        correct = count = 0
        was_training = model.training
        model.eval()
        with torch.no_grad():
            for tokens, lengths, labels in loader:
                correct += int((model(tokens, lengths).argmax(1) == labels).sum())
                count += len(labels)
        model.train(was_training)
        masks = {n: m.clone() for n, m in get_masks(model).items()}
        measured.append((masks, correct / count))
        return original(model, loader, *args, **kwargs)

    monkeypatch.setattr(comparison, "predict", predict_and_record)
    budget = FineTuneBudget(epochs=1, frequency=2)
    result = compare_criteria(tiny_baseline, sparsities=(0.5, 0.9), budget=budget, progress=False)
    monkeypatch.undo()
    rows = result.rows
    gradual = ("magnitude", "random", "taylor", "movement")
    assert [(r["criterion"], r["sparsity"]) for r in rows] == [
        (c, s) for s in (0.5, 0.9) for c in (*gradual, "snip", "snip_layerwise")
    ]
    for r in rows:
        snip = r["criterion"].startswith("snip")
        assert r["epochs"] == (2 if snip else 1)  # baseline 1 + budget 1
        assert r["seed"] == 1
        masks = result.masks[(r["criterion"], r["sparsity"], 1)]
        pruned = {n: int((~m).sum()) for n, m in masks.items()}
        if r["criterion"] == "snip":  # the paper's: one ranking over all tensors
            total = sum(m.numel() for m in masks.values())
            assert sum(pruned.values()) == round(r["sparsity"] * total)
        else:  # the same sparsity in each tensor, SNIP's layerwise variant included
            assert pruned == {n: round(r["sparsity"] * m.numel()) for n, m in masks.items()}
    # test accuracy is measured once per row, on the final pruned model (its masks)
    assert len(measured) == len(rows)
    for r, (masks, accuracy) in zip(rows, measured, strict=True):
        assert r["test_accuracy"] == accuracy
        final = result.masks[(r["criterion"], r["sparsity"], 1)]
        assert masks.keys() == final.keys()
        assert all(torch.equal(masks[n], final[n]) for n in final)
    for name, value in tiny_baseline.model.state_dict().items():
        assert torch.equal(value, before[name]), name  # the baseline is untouched
    text = budget.describe(tiny_baseline)
    assert "SNIP" in text and "SNIP" not in budget.describe(tiny_baseline, snip=False)
    assert "2 epoch(s)" in text and f"{len(tiny_baseline.loader('train'))} Adam steps" in text
    with pytest.raises(ValueError, match="unknown criterion='obd'"):
        compare_criteria(tiny_baseline, ["obd"], [0.5])
    with pytest.raises(ValueError, match="sparsity must be in"):
        compare_criteria(tiny_baseline, ["magnitude"], [1.5])


def test_snip_ranks_globally_whatever_the_scope_of_the_gradual_criteria(tiny_baseline):
    budget = FineTuneBudget(train_batches=2, scratch_epochs=1)
    runs = {
        scope: compare_criteria(
            tiny_baseline, ["snip", "snip_layerwise"], [0.9], budget=budget, scope=scope
        ).masks
        for scope in ("layerwise", "global")
    }
    batch = first_batch(tiny_baseline, budget.snip_batch_size, 1)
    names = list(runs["global"][("snip", 0.9, 1)])
    scores = snip_scores(tiny_baseline.initial_model(), batch, names=names)
    want = {
        "snip": select(scores, 0.9, "global"),
        "snip_layerwise": select(scores, 0.9, "layerwise"),
    }
    for masks in runs.values():
        for criterion, expected in want.items():
            got = masks[(criterion, 0.9, 1)]
            assert all(torch.equal(got[n], expected[n]) for n in names), criterion
    per_tensor = {n: 1 - m.float().mean().item() for n, m in want["snip"].items()}
    assert max(per_tensor.values()) - min(per_tensor.values()) > 0.01  # allocation differs


def test_budget_bad_input():
    with pytest.raises(ValueError, match="epochs must be a positive int"):
        FineTuneBudget(epochs=0)
    with pytest.raises(ValueError, match="lr must be > 0"):
        FineTuneBudget(lr=0)
    with pytest.raises(ValueError, match="ramp_end must be > warmup"):
        FineTuneBudget(warmup=0.5, ramp_end=0.4)


# --- summaries and the verdict -------------------------------------------------------------


def rows_from(values):
    return [
        {"criterion": c, "sparsity": s, "seed": i, "test_accuracy": v}
        for (c, s), vs in values.items()
        for i, v in enumerate(vs)
    ]


def test_summaries_and_verdicts_follow_the_numbers():
    rows = rows_from(
        {
            ("magnitude", 0.9): [0.90, 0.91, 0.92],
            ("taylor", 0.9): [0.95, 0.96, 0.94],  # every seed above every magnitude seed
            ("magnitude", 0.98): [0.60, 0.70, 0.80],
            ("taylor", 0.98): [0.75, 0.65, 0.90],  # higher median, overlapping ranges
            ("movement", 0.9): [0.50, 0.55, 0.52],
            ("movement", 0.98): [0.85, 0.86, 0.84],
        }
    )
    table = summarize(rows)
    assert table[0] == {
        "criterion": "magnitude",
        "90 %": "91.0 (90.0-92.0)",
        "98 %": "70.0 (60.0-80.0)",
    }
    verdicts = compare_medians(rows, "taylor")
    assert [v["verdict"] for v in verdicts] == ["better", "no clear difference"]
    assert verdicts[0]["difference"] == pytest.approx(0.04)
    assert [v["verdict"] for v in compare_medians(rows, "movement")] == ["worse", "better"]
    text = describe_claim(rows, ["taylor", "movement", "snip"])
    assert "taylor beats magnitude at 1 of 2" in text and "movement vs magnitude: mixed" in text
    assert "snip" not in text  # no rows, no sentence
    one_seed = rows_from({("magnitude", 0.9): [0.90], ("taylor", 0.9): [0.905]})
    assert compare_medians(one_seed, "taylor", margin=0.01)[0]["verdict"] == "no clear difference"
    assert compare_medians(one_seed, "taylor")[0]["verdict"] == "better"
    assert math.isclose(compare_medians(one_seed, "taylor")[0]["difference"], 0.005)


def test_a_quick_budget_uses_the_first_training_batches(tiny_baseline):
    budget = FineTuneBudget(train_batches=2, scratch_epochs=1)
    train, valid = budget.data(tiny_baseline, seed=1)
    assert len(train) == 2 and len(valid) == len(tiny_baseline.loader("valid"))
    first = next(iter(tiny_baseline.loader("train", seed=1)))
    assert all(torch.equal(a, b) for a, b in zip(train[0], first, strict=True))
    assert "first 2 training batches" in budget.describe(tiny_baseline)
    result = compare_criteria(tiny_baseline, ["movement", "snip"], [0.7], budget=budget)
    assert [r["epochs"] for r in result.rows] == [1, 1]
    with pytest.raises(ValueError, match="train_batches must be a positive int"):
        FineTuneBudget(train_batches=0)


def test_paired_claim_reads_the_articles_where_two_criteria_disagree():
    from course_utils.experiments.comparison import CriteriaComparison, paired_claim
    from course_utils.report import Table

    labels = torch.zeros(40, dtype=torch.long)
    right, wrong = torch.zeros(40, dtype=torch.long), torch.ones(40, dtype=torch.long)
    magnitude = right.clone()
    magnitude[:12] = 1  # magnitude misses 12 articles
    taylor = right.clone()  # taylor gets every one: 12 vs 0 disagreements, p = 0.0005
    movement = magnitude.clone()
    movement[12:14] = 1  # two more misses: 0 vs 2, no clear difference
    result = CriteriaComparison(
        Table(),
        predictions={
            ("magnitude", 0.9, 0): magnitude,
            ("taylor", 0.9, 0): taylor,
            ("movement", 0.9, 0): movement,
            ("magnitude", 0.5, 0): right,
            ("taylor", 0.5, 0): wrong,  # 0 vs 40: worse
        },
        test_labels={0: labels},
    )
    text = paired_claim(result, ["taylor", "movement"]).splitlines()
    assert text[0] == (
        "taylor vs magnitude (seed 0): 50 %: -100.0 pts, 0 vs 40 articles -> worse; "
        "90 %: +30.0 pts, 12 vs 0 articles -> better"
    )
    assert text[1] == (
        "movement vs magnitude (seed 0): 90 %: -5.0 pts, 0 vs 2 articles -> no clear difference"
    )
    result.test_labels[1] = labels
    with pytest.raises(ValueError, match=r"the comparison has seeds \[0, 1\]: pass seed="):
        paired_claim(result)
