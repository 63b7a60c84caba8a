"""Chapters 4 and 5's verdict grid: rows stored as they finish, resumed, keyed; verdicts."""

import dataclasses
import json
import random
import warnings

import pytest
import torch

from course_utils.experiments import unit_grid
from course_utils.experiments.baseline import BaselineConfig, get_baseline
from course_utils.experiments.gan_comparison import UnitBudget
from course_utils.pruning.gan import GALConfig
from course_utils.train import evaluate

TINY = BaselineConfig(
    max_len=24, hidden_size=6, embed_dim=6, epochs=1, max_vocab=500, batch_size=64
)
BUDGET = UnitBudget(
    units=3,
    gal=dataclasses.replace(GALConfig(), epochs=1, mask_every=1),
    gl_epochs=1,
    ft_epochs=1,
    taylor_batches=2,
    train_batches=3,
)
METHODS = ("gal_topk", "unit_magnitude", unit_grid.SCRATCH)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


def baseline_for(cache):
    return lambda seed: get_baseline(TINY, seed=seed, cache_dir=cache, progress=False)


@pytest.fixture(scope="module")
def scratch_cache(cache, monkeypatch_module):
    monkeypatch_module.setenv("COURSE_CACHE", str(cache))
    return cache


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def run(store, cache, **kwargs):
    options = {"seeds": (0, 1), "units": (3,), "methods": METHODS, "budget": BUDGET}
    options.update(kwargs)
    return unit_grid.run_grid(store=store, baseline=baseline_for(cache), progress=False, **options)


def plain(rows):
    return [{k: v for k, v in r.items() if k not in ("stored", "seconds")} for r in rows]


def test_rows_are_stored_as_they_finish_and_read_back(scratch_cache, tmp_path):
    first = run(tmp_path, scratch_cache)
    assert len(first) == 2 * len(METHODS)
    assert not any(r["stored"] for r in first)
    assert len(list(tmp_path.glob("row-*.json"))) == len(first)
    assert [(r["seed"], r["units"], r["method"]) for r in first] == [
        (s, 3, m) for s in (0, 1) for m in METHODS
    ]
    again = run(tmp_path, scratch_cache)
    assert all(r["stored"] for r in again)
    assert plain(again) == plain(first)


def test_an_interrupted_grid_runs_only_what_is_missing(scratch_cache, tmp_path):
    first = run(tmp_path, scratch_cache)
    files = sorted(tmp_path.glob("row-*.json"))
    files[0].unlink()
    files[1].write_text("{not json")
    with pytest.warns(UserWarning, match="not usable"):
        again = run(tmp_path, scratch_cache)
    assert sum(not r["stored"] for r in again) == 2
    assert plain(again) == plain(first)  # the same numbers when run again


@pytest.mark.parametrize(
    "damage",
    [
        lambda entry: {**entry, "key": "0" * 64},
        lambda entry: {**entry, "row": {**entry["row"], "test_accuracy": "high"}},
        lambda entry: {**entry, "row": {**entry["row"], "test_accuracy": float("nan")}},
        lambda entry: {**entry, "row": [1, 2]},
        lambda entry: {**entry, "padding": "x" * (70 << 10)},
    ],
)
def test_a_damaged_row_is_run_again_with_a_warning(scratch_cache, tmp_path, damage):
    options = {"seeds": (0,), "units": (3,), "methods": ("unit_magnitude",)}
    first = run(tmp_path, scratch_cache, **options)
    (path,) = tmp_path.glob("row-*.json")
    path.write_text(json.dumps(damage(json.loads(path.read_text())), allow_nan=True))
    with pytest.warns(UserWarning, match="not usable"):
        again = run(tmp_path, scratch_cache, **options)
    assert not again[0]["stored"] and plain(again) == plain(first)


def test_another_recipe_or_baseline_is_another_key(scratch_cache, tmp_path):
    dense = baseline_for(scratch_cache)(0)
    key = unit_grid.row_key("gal_topk", 3, BUDGET, dense)
    assert key == unit_grid.row_key("gal_topk", 3, dataclasses.replace(BUDGET, units=5), dense)
    assert key != unit_grid.row_key("gal_topk", 2, BUDGET, dense)
    assert key != unit_grid.row_key("gal", 3, BUDGET, dense)
    assert key != unit_grid.row_key("gal_topk", 3, dataclasses.replace(BUDGET, ft_epochs=2), dense)
    other = baseline_for(scratch_cache)(1)
    assert key != unit_grid.row_key("gal_topk", 3, BUDGET, other)
    retrained = baseline_for(scratch_cache)(0)
    with torch.no_grad():
        retrained.model.classifier.bias.add_(1e-3)
    assert key != unit_grid.row_key("gal_topk", 3, BUDGET, retrained)


def test_scratch_row_is_the_small_lstm_trained_with_the_baseline_recipe(scratch_cache):
    dense = baseline_for(scratch_cache)(1)
    row = unit_grid.grid_row(unit_grid.SCRATCH, dense, 2, BUDGET, progress=False)
    small = get_baseline(
        dataclasses.replace(TINY, hidden_size=2), seed=1, cache_dir=scratch_cache, progress=False
    )
    assert small.model.rnn.hidden_size == 2 and small.config.epochs == TINY.epochs
    assert row["test_accuracy"] == evaluate(small.model, small.loader("test"))["accuracy"]
    assert row["test_before"] == row["test_accuracy"]
    assert row["dense_test"] == evaluate(dense.model, dense.loader("test"))["accuracy"]
    assert (row["method"], row["units"], row["seed"]) == ("scratch", 2, 1)


def test_variants_change_only_what_they_name():
    method, budget = unit_grid.variant_budget("gal_topk", BUDGET)
    assert method == "gal" and budget == dataclasses.replace(BUDGET, gal_budget=False)
    method, budget = unit_grid.variant_budget("gal_no_adv_topk", BUDGET)
    assert method == "gal_no_adv" and not budget.gal_budget
    method, budget = unit_grid.variant_budget("gal_features", BUDGET)
    assert method == "gal" and budget.gal == dataclasses.replace(
        BUDGET.gal, d_input="logits+features", d_feature_noise=unit_grid.FEATURE_NOISE
    )
    assert unit_grid.variant_budget("unit_taylor", BUDGET) == ("unit_taylor", BUDGET)
    with pytest.raises(ValueError, match="unknown grid method='nope'"):
        unit_grid.variant_budget("nope", BUDGET)


def test_the_grid_keeps_the_callers_random_state(scratch_cache, tmp_path):
    options = {"seeds": (0,), "units": (2,)}
    run(tmp_path, scratch_cache, **options)  # cache the baselines first
    torch.manual_seed(5)
    random.seed(5)
    expected = (torch.rand(1), random.random())
    torch.manual_seed(5)
    random.seed(5)
    run(tmp_path / "other", scratch_cache, **options)
    assert torch.equal(torch.rand(1), expected[0]) and random.random() == expected[1]


def test_bad_grid_arguments_are_named(scratch_cache, tmp_path):
    with pytest.raises(ValueError, match="unknown grid method='magnitude_agp'"):
        run(tmp_path, scratch_cache, methods=("magnitude_agp",))
    with pytest.raises(ValueError, match="units"):
        run(tmp_path, scratch_cache, units=(0,))
    with pytest.raises(TypeError, match="budget must be a UnitBudget"):
        run(tmp_path, scratch_cache, budget={"units": 3})
    with pytest.raises(ValueError, match="must not be empty"):
        run(tmp_path, scratch_cache, seeds=())


# --- verdicts from rows (hand-made rows, no training) --------------------------------------------


def rows_for(a_scores, b_scores, units=32, a="gal", b="gal_no_adv"):
    rows = []
    for name, scores in ((a, a_scores), (b, b_scores)):
        for seed, score in enumerate(scores):
            rows.append(
                {
                    "method": name,
                    "units": units,
                    "seed": seed,
                    "dense_test": 0.95,
                    "test_before": score - 0.05,
                    "valid_accuracy": score,
                    "test_accuracy": score,
                    "seconds": 1.0,
                }
            )
    return rows


QUESTION = unit_grid.QUESTIONS[0]


def test_verdicts_per_budget_follow_the_paired_bootstrap():
    rows = rows_for([0.95, 0.94, 0.96, 0.93, 0.95], [0.93, 0.93, 0.95, 0.92, 0.94], units=64)
    rows += rows_for([0.95, 0.94, 0.96, 0.93, 0.90], [0.93, 0.93, 0.95, 0.92, 0.94], units=16)
    table = unit_grid.grid_verdicts(rows, [QUESTION])
    assert [(v["units"], v["verdict"]) for v in table] == [
        (64, "better"),
        (16, "no clear difference"),
    ]
    assert table[0]["seeds"] == 5 and table[0]["difference"] == pytest.approx(1.0)
    assert table[0]["median a"] == pytest.approx(95.0) and table[0]["interval"] == "+1.0 to +2.0"
    sentence = unit_grid.answer(table, QUESTION[2])
    assert sentence.startswith(QUESTION[2] + " only at some budgets: GAL")
    assert "better at 1 and worse at 0 of 2" in sentence
    assert "64 units: +1.0 points (+1.0 to +2.0), better" in sentence


@pytest.mark.parametrize(
    "a, b, start",
    [
        ([0.95, 0.94, 0.96], [0.93, 0.93, 0.95], "yes, at every budget"),
        ([0.93, 0.93, 0.95], [0.95, 0.94, 0.96], "no: "),
        ([0.95, 0.93, 0.96], [0.93, 0.94, 0.95], "not measurably"),
    ],
)
def test_answers_say_what_every_budget_says(a, b, start):
    table = unit_grid.grid_verdicts(rows_for(a, b), [QUESTION])
    assert unit_grid.answer(table, QUESTION[2]).startswith(f"{QUESTION[2]} {start}")


def test_grid_table_gives_median_and_range_per_budget():
    rows = rows_for([0.95, 0.94, 0.96], [0.93, 0.93, 0.95], units=32)
    table = unit_grid.grid_table(rows)
    assert table[0]["32 units"] == "95.0 (94.0-96.0)" and table[0]["seeds"] == 3
    assert table[1]["method"] == unit_grid.grid_label("gal_no_adv")


def test_published_rows_are_read_as_checked_json_only(tmp_path):
    rows = rows_for([0.95, 0.94], [0.93, 0.93])
    path = tmp_path / "latest.json"
    path.write_text(json.dumps({"sections": {"sec_05c_unit_grid": {"results": {"rows": rows}}}}))
    assert unit_grid.load_rows(path) == rows
    path.write_text(json.dumps({"sections": {}}))
    with pytest.raises(ValueError, match="no grid rows"):
        unit_grid.load_rows(path)
    bad = [{**rows[0], "seed": "0"}]
    path.write_text(json.dumps({"sections": {"sec_05c_unit_grid": {"results": {"rows": bad}}}}))
    with pytest.raises(ValueError, match=r"rows\[0\]\['seed'\] must be a int"):
        unit_grid.load_rows(path)


def test_verdicts_need_rows_of_both_methods():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = unit_grid.grid_verdicts(rows_for([0.9], [0.8], b="group_lasso"), [QUESTION])
    assert len(table) == 0
    with pytest.raises(ValueError, match="no verdict rows"):
        unit_grid.answer(table, QUESTION[2])


def test_a_missing_benchmark_says_how_to_make_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="make bench BENCH_ARGS=--publish"):
        unit_grid.load_rows(tmp_path / "latest.json")
    from course_utils.settings import PUBLISHED_BENCHMARK

    assert PUBLISHED_BENCHMARK.parent.name == "benchmarks"


def test_choice_is_the_simplest_method_no_other_clearly_beats():
    rows = rows_for([0.95, 0.94, 0.96], [0.95, 0.93, 0.95], a="gal", b="unit_magnitude")
    rows += rows_for([0.90, 0.89, 0.91], [0.97, 0.96, 0.97], a="unit_taylor", b="scratch")
    (line,) = unit_grid.choice(rows)
    assert line["best"] == "gal" and line["clearly behind"] == ["unit_taylor"]
    assert line["simplest not behind"] == "unit_magnitude"  # effort 0, not clearly behind
    assert line["from scratch"] == "worse"  # the control is never the chosen method
    sentence = unit_grid.choice_sentence(line)
    assert sentence.startswith("32 units: best median GAL (GAN-guided masks) 95.0 %")
    assert "the simplest method not clearly behind: structured magnitude" in sentence
    assert sentence.endswith("trained from scratch: worse.")
    clear = rows_for([0.95, 0.94, 0.96], [0.93, 0.93, 0.95], a="gal", b="unit_magnitude")
    (line,) = unit_grid.choice(clear)
    assert line["simplest not behind"] == "gal" and line["clearly behind"] == ["unit_magnitude"]
