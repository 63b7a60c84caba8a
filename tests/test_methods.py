"""One registry of pruning methods: every experiment names its methods there, unambiguously."""

import pytest

from course_utils.experiments import zoo
from course_utils.experiments.gan_comparison import UNIT_METHODS
from course_utils.experiments.methods import KINDS, METHODS, Method, get_method, method_names
from course_utils.pruning.criteria import SNIP_SCOPES
from course_utils.pruning.magnitude import CRITERIA


def test_every_method_an_experiment_runs_resolves_with_its_kind():
    for name in zoo.UNSTRUCTURED:
        assert get_method(name).kind == "unstructured"
    for name in (*zoo.STRUCTURED, *UNIT_METHODS):
        assert get_method(name).kind == "structured"
    assert set(zoo.ZOO_METHODS) <= set(METHODS) and set(UNIT_METHODS) <= set(METHODS)
    for name, _, _ in zoo.LINEUP:
        assert get_method(name, zoo.ZOO_METHODS).name == name
    # chapter 5 compares every structured method but unit_taylor's gate form, run by name
    assert UNIT_METHODS == tuple(m for m in method_names("structured") if m != "unit_taylor_gate")
    assert "unit_taylor_gate" in method_names("structured")
    assert method_names() == method_names("unstructured") + method_names("structured")


def test_names_and_labels_say_one_thing_each():
    assert all(m.name == name for name, m in METHODS.items())
    for field in ("label", "long_label"):
        values = [getattr(m, field) for m in METHODS.values()]
        assert len(set(values)) == len(values), field
    # a structured method never borrows a score criterion's name: "taylor" is one thing
    structured = set(method_names("structured"))
    assert not structured & set(CRITERIA)
    assert {"unit_taylor", "unit_taylor_gate", "unit_magnitude"} <= structured
    for m in METHODS.values():
        assert m.kind in KINDS and m.chapter in range(1, 7) and m.description, m.name


def test_snip_and_its_layerwise_variant_are_two_methods():
    names = list(METHODS)
    assert names[names.index("snip") + 1] == "snip_layerwise"
    snip, variant = METHODS["snip"], METHODS["snip_layerwise"]
    assert variant.label == "SNIP, layerwise" and variant.kind == "unstructured"
    assert (variant.chapter, variant.effort) == (snip.chapter, snip.effort)
    assert set(SNIP_SCOPES) <= set(METHODS)  # chapter 3's SNIP criteria name methods
    assert "snip_layerwise" not in zoo.ZOO_METHODS  # chapter 6 runs SNIP as in the paper


def test_an_unknown_name_lists_the_choices():
    with pytest.raises(ValueError, match=r"unknown method='prune_all'; choose from \['magnitude_"):
        get_method("prune_all")
    with pytest.raises(ValueError, match=r"unknown method='taylor'; choose from \['gal'"):
        get_method("taylor", UNIT_METHODS)  # a real method, but not one that keeps units
    with pytest.raises(ValueError, match="unknown method='magnitude'"):
        get_method("magnitude")  # the criterion's name is not a method
    with pytest.raises(ValueError, match="unknown kind='pruned'"):
        method_names("pruned")
    with pytest.raises(ValueError, match="unknown kind='global'"):
        Method("x", "x", "global", 2, "x")


def test_labels_are_what_the_tables_print():
    assert Method("x", "short", "structured", 4, "d").long_label == "short"
    assert METHODS["gal"].label == "GAN-guided (GAL)"  # chapter 6's line-up
    assert METHODS["gal"].long_label == "GAL (GAN-guided masks)"  # chapter 5's table
    assert METHODS["unit_magnitude"].long_label == "structured magnitude (group norm)"
