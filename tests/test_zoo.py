"""The zoo of pruned models: each method runs, results are cached safely and keyed."""

import copy
import pickle
import warnings

import pytest
import torch
from helpers import same_weights

from course_utils.experiments import zoo
from course_utils.experiments.baseline import BaselineConfig, get_baseline
from course_utils.pruning import get_masks, overall_sparsity

TINY = BaselineConfig(
    max_len=24, hidden_size=6, embed_dim=6, epochs=1, max_vocab=500, batch_size=64
)


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    return get_baseline(TINY, cache_dir=tmp_path_factory.mktemp("cache"), progress=False)


def make(method, amount, folder, baseline, **kwargs):
    options = {"budget": "tiny", "baseline": baseline, "cache_dir": folder, "progress": False}
    return zoo.pruned_model(method, amount, **options, **kwargs)


@pytest.mark.parametrize("method", zoo.UNSTRUCTURED)
def test_unstructured_methods_reach_their_sparsity(method, baseline, tmp_path):
    pruned = make(method, 0.75, tmp_path, baseline)
    model = pruned.model
    assert not get_masks(model) and not model.training  # permanent, eval mode
    assert overall_sparsity(model) == pytest.approx(0.75, abs=0.01)
    assert overall_sparsity(model, include_embedding=True) < 0.2  # embedding untouched
    assert 0 <= pruned.metrics["test_accuracy"] <= 1 and not pruned.from_cache
    assert pruned.label.endswith("75 %")
    assert not same_weights(model, baseline.model)


def test_embedding_can_be_pruned_too(baseline, tmp_path):
    pruned = make("magnitude_agp", 0.9, tmp_path, baseline, include_embedding=True)
    assert overall_sparsity(pruned.model, include_embedding=True) == pytest.approx(0.9, abs=0.01)
    assert "embedding too" in pruned.label


@pytest.mark.parametrize("method", zoo.STRUCTURED)
def test_structured_methods_return_smaller_models(method, baseline, tmp_path):
    pruned = make(method, 3, tmp_path, baseline)
    assert pruned.model.rnn.hidden_size == 3 and pruned.structured
    assert pruned.model.classifier.in_features == 3
    assert pruned.label.endswith("3 units")


def test_a_retrained_baseline_does_not_reuse_the_cache(baseline, tmp_path):
    """Same config and seed, other weights (e.g. trained with another thread count)."""
    first = make("magnitude_oneshot", 0.8, tmp_path, baseline)
    changed = copy.copy(baseline)
    changed.model = baseline.copy_model()
    with torch.no_grad():
        changed.model.classifier.bias.add_(0.01)
    again = make("magnitude_oneshot", 0.8, tmp_path, changed)
    assert not again.from_cache and not first.from_cache
    assert make("magnitude_oneshot", 0.8, tmp_path, baseline).from_cache


def test_second_call_loads_the_same_model_from_cache(baseline, tmp_path):
    first = make("taylor", 0.8, tmp_path, baseline)
    second = make("taylor", 0.8, tmp_path, baseline)
    assert second.from_cache and not first.from_cache
    assert same_weights(first.model, second.model) and first.metrics == second.metrics
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 1 and files[0].endswith(".safetensors")  # nothing half-written


def test_cache_key_depends_on_recipe_and_amount(baseline, tmp_path):
    make("magnitude_oneshot", 0.8, tmp_path, baseline)
    make("magnitude_oneshot", 0.9, tmp_path, baseline)
    make("magnitude_oneshot", 0.8, tmp_path, baseline, include_embedding=True)
    assert len(list(tmp_path.glob("*.safetensors"))) == 3
    assert zoo.recipe("snip", "full")["epochs"] is None  # the baseline's epochs + 1
    assert zoo.recipe("magnitude_agp", "short")["epochs"] < zoo.recipe("magnitude_agp")["epochs"]


def test_snip_ranks_globally_and_a_model_cached_with_the_layerwise_recipe_is_not_reused(
    baseline, tmp_path, monkeypatch
):
    assert zoo.recipe("snip")["scope"] == "global"  # SNIP as in the paper (chapter 3)
    ours = zoo.recipe

    def layerwise_recipe(method, budget="full"):  # the recipe before SNIP ranked globally
        return {**ours(method, budget), "scope": "layerwise"}

    monkeypatch.setattr(zoo, "recipe", layerwise_recipe)
    old = make("snip", 0.75, tmp_path, baseline)
    monkeypatch.undo()
    new = make("snip", 0.75, tmp_path, baseline)
    assert not old.from_cache and not new.from_cache  # another recipe, another key
    assert len(list(tmp_path.glob("pruned-snip-*.safetensors"))) == 2
    assert new.recipe["scope"] == "global" and old.recipe["scope"] == "layerwise"

    names = ("rnn.weight_ih_l0", "rnn.weight_hh_l0", "classifier.weight")

    def zeros(pruned):  # the number of exact zeros in each pruned tensor
        state = pruned.model.state_dict()
        return [int((state[n] == 0).sum()) for n in names]

    sizes = [baseline.model.state_dict()[n].numel() for n in names]
    assert zeros(old) == [round(0.75 * n) for n in sizes]  # the same sparsity in each tensor
    assert zeros(new) != zeros(old)  # one ranking over all tensors: another allocation
    assert sum(zeros(new)) == pytest.approx(0.75 * sum(sizes), abs=1)


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("damage", ["truncate", "pickle"])
def test_damaged_cache_is_rebuilt_without_running_code(baseline, tmp_path, damage):
    first = make("magnitude_oneshot", 0.7, tmp_path, baseline)
    path = next(tmp_path.glob("*.safetensors"))
    marker = tmp_path / "pwned"
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:1000])
    else:  # a malicious pickle in place of the entry
        path.write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.warns(UserWarning, match="not usable"):
        rebuilt = make("magnitude_oneshot", 0.7, tmp_path, baseline)
    assert not marker.exists()
    assert not rebuilt.from_cache and same_weights(rebuilt.model, first.model)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert make("magnitude_oneshot", 0.7, tmp_path, baseline).from_cache


def test_pareto_front_keeps_only_undominated_points():
    costs = [1.0, 2.0, 2.0, 3.0, 0.5, 4.0]
    scores = [0.90, 0.95, 0.93, 0.95, 0.80, 0.97]
    assert zoo.pareto_front(costs, scores) == [4, 0, 1, 5]
    assert zoo.pareto_front([1.0, 1.0], [0.5, 0.5]) == [0, 1]  # ties dominate neither
    with pytest.raises(ValueError, match="length"):
        zoo.pareto_front([1.0], [])


def test_bad_arguments_are_named(baseline, tmp_path):
    with pytest.raises(ValueError, match="method='prune_all'"):
        make("prune_all", 0.5, tmp_path, baseline)
    with pytest.raises(ValueError, match="sparsity in \\(0, 1\\)"):
        make("taylor", 1.2, tmp_path, baseline)
    with pytest.raises(ValueError, match="hidden units kept"):
        make("gal", 0.5, tmp_path, baseline)
    with pytest.raises(ValueError, match="include_embedding"):
        make("group_lasso", 3, tmp_path, baseline, include_embedding=True)
    with pytest.raises(ValueError, match="seed=1"):
        make("taylor", 0.5, tmp_path, baseline, seed=1)
    with pytest.raises(ValueError, match="budget='huge'"):
        zoo.recipe("taylor", "huge")
    assert torch.is_tensor(baseline.model.embedding.weight)  # the baseline is untouched


def test_warm_cache_covers_every_baseline_the_chapters_load_in_full_mode():
    """The notebooks' own constants must match WARM_BASELINES, or a class trains in class."""
    import json
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]

    def source(name: str) -> str:
        cells = json.loads((root / "notebooks" / name).read_text())["cells"]
        return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")

    race = re.search(
        r"race_epochs, race_len = \(1, 100\) if FAST else \((\d+), (\d+)\)",
        source("01_baseline_rnn.ipynb"),
    )
    assert race, "chapter 1's race line changed: update zoo.RACE and this test"
    assert {"epochs": int(race[1]), "max_len": int(race[2])} == {
        k: zoo.RACE[k] for k in ("epochs", "max_len")
    }
    units = re.search(r"^UNITS = (\d+)", source("04_regularization_structured.ipynb"), re.M)
    assert units and int(units[1]) == zoo.SMALL_UNITS
    for cell in ("rnn", "lstm", "gru"):
        assert {"seed": 0, "cell": cell, **zoo.RACE} in zoo.WARM_BASELINES
    assert {"seed": 0, "hidden_size": zoo.SMALL_UNITS} in zoo.WARM_BASELINES
    seeds = re.search(
        r"SEEDS = \[SEED\] if FAST else \[([\d, ]+)\]", source("05_gan_guided_pruning.ipynb")
    )
    assert seeds and tuple(int(s) for s in seeds[1].split(",")) == zoo.WARM_SEEDS
