"""Magnitude pruning against torch.nn.utils.prune (the oracle), exact counts, bad input."""

import copy
import importlib
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.nn.utils import prune as torch_prune

from course_utils import pruning
from course_utils.models import RNNClassifier
from course_utils.pruning import (
    get_masks,
    magnitude_scores,
    prunable_parameters,
    prune,
    pruned_names,
    pruned_sparsity,
    random_scores,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models run fastest on one thread


configs = st.fixed_dictionaries(
    {
        "cell": st.sampled_from(["lstm", "gru", "rnn"]),
        "num_layers": st.integers(1, 3),
        "bidirectional": st.booleans(),
        "hidden_size": st.integers(2, 6),
        "embed_dim": st.integers(2, 5),
    }
)
sparsities = st.floats(0.0, 0.99, allow_nan=False)


def tie_free_model(config, seed):
    """A model whose prunable weights are all distinct and differ in scale per tensor."""
    torch.manual_seed(seed)
    model = RNNClassifier(25, 3, **config)
    params = prunable_parameters(model)
    total = sum(p.numel() for p in params.values())
    values = (torch.randperm(total).float() + 1) / total
    start = 0
    with torch.no_grad():
        for k, p in enumerate(params.values()):
            chunk = values[start : start + p.numel()] * (k + 1)
            signs = torch.where(torch.rand(p.numel()) < 0.5, -1.0, 1.0)
            p.copy_((chunk * signs).reshape(p.shape))
            start += p.numel()
    return model


def relative(weight):
    """|w| / RMS(w): the scores that scope="global_normalized" compares."""
    w = weight.detach().abs()
    return w / w.pow(2).mean().sqrt()


def owner_of(model, name):
    """``(module, attribute)`` holding the parameter ``name``: what torch_prune takes."""
    path, _, attr = name.rpartition(".")
    return model.get_submodule(path), attr


def torch_masks(model, names):
    """The masks torch.nn.utils.prune left on ``model`` (buffers ``<attr>_mask``)."""
    masks = {}
    for name in names:
        owner, attr = owner_of(model, name)
        masks[name] = getattr(owner, attr + "_mask").bool()
    return masks


@settings(max_examples=30, deadline=None)
@given(config=configs, sparsity=sparsities, seed=st.integers(0, 10_000))
def test_layerwise_masks_equal_torch_l1_unstructured(config, sparsity, seed):
    model = tie_free_model(config, seed)
    ours = copy.deepcopy(model)
    masks = prune(ours, sparsity, scope="layerwise", include_embedding=True)
    theirs = copy.deepcopy(model)
    for name in prunable_parameters(model):
        owner, attr = owner_of(theirs, name)
        torch_prune.l1_unstructured(owner, attr, amount=sparsity)
    expected = torch_masks(theirs, list(prunable_parameters(model)))
    assert masks.keys() == expected.keys()
    for name, mask in masks.items():
        assert torch.equal(mask, expected[name]), name
        assert int((~mask).sum()) == round(sparsity * mask.numel())  # exact count


@settings(max_examples=30, deadline=None)
@given(
    config=configs,
    sparsity=sparsities,
    seed=st.integers(0, 10_000),
    include_embedding=st.booleans(),
)
def test_global_masks_equal_torch_global_unstructured(config, sparsity, seed, include_embedding):
    model = tie_free_model(config, seed)
    ours = copy.deepcopy(model)
    masks = prune(ours, sparsity, scope="global", include_embedding=include_embedding)
    theirs = copy.deepcopy(model)
    names = list(prunable_parameters(model, include_embedding=include_embedding))
    torch_prune.global_unstructured(
        [owner_of(theirs, n) for n in names],
        pruning_method=torch_prune.L1Unstructured,
        amount=sparsity,
    )
    expected = torch_masks(theirs, names)
    assert masks.keys() == expected.keys()
    for name in names:
        assert torch.equal(masks[name], expected[name]), name
    total = sum(m.numel() for m in masks.values())
    assert sum(int((~m).sum()) for m in masks.values()) == round(sparsity * total)


@settings(max_examples=20, deadline=None)
@given(
    config=configs,
    first=sparsities,
    second=sparsities,
    scope=st.sampled_from(["layerwise", "global", "global_normalized"]),
    criterion=st.sampled_from(["magnitude", "random"]),
)
def test_already_pruned_weights_stay_pruned(config, first, second, scope, criterion):
    model = tie_free_model(config, 0)
    before = {n: m.clone() for n, m in prune(model, first, scope=scope).items()}
    after = prune(model, second, scope=scope, criterion=criterion, seed=1)
    for name, mask in after.items():
        assert not (mask & ~before[name]).any(), f"{name}: a pruned weight came back"
    # the new target counts the old zeros: exactly the larger of the two targets remains
    if scope == "layerwise":
        for name, mask in after.items():
            n = mask.numel()
            assert int((~mask).sum()) == max(round(first * n), round(second * n)), name
    else:
        zeros = sum(int((~m).sum()) for m in after.values())
        total = sum(m.numel() for m in after.values())
        assert zeros == max(round(first * total), round(second * total))


def test_iterative_magnitude_pruning_equals_one_shot_when_weights_do_not_change():
    model = tie_free_model(
        {"cell": "lstm", "num_layers": 1, "bidirectional": False, "hidden_size": 4, "embed_dim": 3},
        0,
    )
    iterative, one_shot = copy.deepcopy(model), copy.deepcopy(model)
    for s in (0.3, 0.6, 0.8):
        masks = prune(iterative, s)
    expected = prune(one_shot, 0.8)
    assert all(torch.equal(masks[n], expected[n]) for n in masks)


def test_per_tensor_targets():
    model = tie_free_model(
        {"cell": "gru", "num_layers": 2, "bidirectional": True, "hidden_size": 4, "embed_dim": 3}, 0
    )
    masks = prune(model, {"rnn.weight_hh_l1_reverse": 0.75, "embedding.weight": 0.5})
    assert (~masks["rnn.weight_hh_l1_reverse"]).float().mean() == 0.75
    assert int((~masks["embedding.weight"]).sum()) == round(0.5 * 25 * 3)
    assert masks["rnn.weight_ih_l0"].all() and masks["classifier.weight"].all()


def test_include_and_exclude_the_embedding(tiny_model):
    prune(tiny_model, 0.5)
    assert "embedding.weight" not in get_masks(tiny_model)
    assert "rnn.weight_ih_l0" in get_masks(tiny_model)
    prune(tiny_model, 0.5, include_embedding=True)
    assert get_masks(tiny_model)["embedding.weight"].float().mean() == 0.5


def test_names_restricts_pruning(tiny_model):
    masks = prune(tiny_model, 0.5, names=["classifier.weight"])
    assert list(masks) == ["classifier.weight"] == list(get_masks(tiny_model))


def test_global_threshold_pitfall_default_initialization():
    """nn.Embedding starts N(0, 1), the LSTM U(-1/sqrt(H), 1/sqrt(H)): one global threshold
    removes every recurrent weight before it removes half of the embedding."""
    torch.manual_seed(0)
    model = RNNClassifier(500, 3, embed_dim=16, hidden_size=16)  # embed_init_std=None
    masks = prune(copy.deepcopy(model), 0.5, scope="global", include_embedding=True)
    # 8000 embedding + 2 x 1024 recurrent + 48 classifier weights = 10096; 5048 are pruned.
    # The 2096 weights below 1/sqrt(16) = 0.25 go first, then 2952 embedding weights:
    # all 5048 survivors are embedding weights (63 % of the embedding)
    assert not masks["rnn.weight_hh_l0"].any() and not masks["rnn.weight_ih_l0"].any()
    assert not masks["classifier.weight"].any()
    assert int(masks["embedding.weight"].sum()) == 10096 - 5048
    fair = prune(copy.deepcopy(model), 0.5, scope="global_normalized", include_embedding=True)
    # one threshold on |w| / RMS(w): every pruned weight lies below every kept one
    params = prunable_parameters(model)
    pruned_max = max(float(relative(params[n])[~m].max()) for n, m in fair.items())
    kept_min = min(float(relative(params[n])[m].min()) for n, m in fair.items())
    assert pruned_max <= kept_min
    assert sum(int((~m).sum()) for m in fair.values()) == 5048
    # and the recurrent tensors now keep a share of their own
    assert 0 < int(fair["rnn.weight_hh_l0"].sum()) < 1024


def test_random_criterion_is_seeded_and_exact(tiny_model):
    a = prune(copy.deepcopy(tiny_model), 0.6, criterion="random", seed=3)
    b = prune(copy.deepcopy(tiny_model), 0.6, criterion="random", seed=3)
    c = prune(copy.deepcopy(tiny_model), 0.6, criterion="random", seed=4)
    assert all(torch.equal(a[n], b[n]) for n in a)
    assert any(not torch.equal(a[n], c[n]) for n in a)
    for mask in a.values():
        assert int((~mask).sum()) == round(0.6 * mask.numel())


def test_scores_are_kept_apart_from_selection(tiny_model):
    scores = magnitude_scores(tiny_model)
    assert torch.equal(scores["rnn.weight_hh_l0"], tiny_model.rnn.weight_hh_l0.abs())
    inverted = {n: -s for n, s in scores.items()}  # keep the SMALLEST weights instead
    masks = prune(copy.deepcopy(tiny_model), 0.5, scores=inverted)
    w = tiny_model.rnn.weight_hh_l0.abs()
    assert w[masks["rnn.weight_hh_l0"]].max() <= w[~masks["rnn.weight_hh_l0"]].min()
    assert set(random_scores(tiny_model, ["classifier.weight"])) == {"classifier.weight"}


# --- bad input ---------------------------------------------------------------------


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, float("nan"), float("inf")])
def test_sparsity_outside_0_1_is_refused(tiny_model, bad):
    with pytest.raises(ValueError, match=r"sparsity must be in \[0, 1\)"):
        prune(tiny_model, bad)


@pytest.mark.parametrize("bad", ["0.5", None, True])
def test_sparsity_of_the_wrong_type_is_refused(tiny_model, bad):
    with pytest.raises(TypeError, match="sparsity must be a number"):
        prune(tiny_model, bad)


def test_bad_per_tensor_targets_are_refused(tiny_model):
    with pytest.raises(ValueError, match="sparsity for 'classifier.weight' must be in"):
        prune(tiny_model, {"classifier.weight": 1.2})
    with pytest.raises(ValueError, match="sparsity has tensor name 'rnn.weight_hh_l9'"):
        prune(tiny_model, {"rnn.weight_hh_l9": 0.5})


def test_unknown_criterion_and_scope_are_refused(tiny_model):
    with pytest.raises(ValueError, match="unknown criterion='size'"):
        prune(tiny_model, 0.5, criterion="size")
    with pytest.raises(ValueError, match="unknown scope='local'"):
        prune(tiny_model, 0.5, scope="local")
    assert get_masks(tiny_model) == {}  # nothing happened


def test_unknown_tensor_names_are_refused(tiny_model):
    with pytest.raises(ValueError, match="names has tensor name 'rnn.weight_hh_l7'.*prunable"):
        prune(tiny_model, 0.5, names=["rnn.weight_hh_l7"])
    with pytest.raises(ValueError, match="not a prunable weight"):
        prune(tiny_model, 0.5, names=["rnn.bias_ih_l0"])
    with pytest.raises(ValueError, match="names is empty"):
        prune(tiny_model, 0.5, names=[])
    with pytest.raises(TypeError, match="list of tensor names"):
        prune(tiny_model, 0.5, names="classifier.weight")
    with pytest.raises(ValueError, match="scores lacks tensors"):
        prune(tiny_model, 0.5, names=["classifier.weight"], scores={"x": torch.ones(1)})


def test_exact_sparsity_on_the_real_shapes():
    model = RNNClassifier(1000, 5, embed_dim=64, hidden_size=128)
    for s in (0.5, 0.8, 0.9, 0.95, 0.98):
        masks = prune(copy.deepcopy(model), s)
        for name, mask in masks.items():
            assert int((~mask).sum()) == round(s * mask.numel()), (name, s)
        assert math.isclose(
            sum(int((~m).sum()) for m in masks.values()) / sum(m.numel() for m in masks.values()),
            s,
            abs_tol=1e-4,
        )


def test_pruned_names_default_to_the_weight_matrices_and_check_the_ones_given(tiny_model):
    assert pruned_names(tiny_model) == list(
        prunable_parameters(tiny_model, include_embedding=False)
    )
    assert pruned_names(tiny_model, include_embedding=True)[0] == "embedding.weight"
    assert pruned_names(tiny_model, names=("classifier.weight",)) == ["classifier.weight"]
    with pytest.raises(ValueError, match="names is empty"):
        pruned_names(tiny_model, names=[])
    with pytest.raises(ValueError, match="does not exist"):
        pruned_names(tiny_model, names=["rnn.nope"])
    prune(tiny_model, 0.25, names=["classifier.weight"])
    weight = tiny_model.classifier.weight
    assert pruned_sparsity(tiny_model, ["classifier.weight"]) == round(0.25 * weight.numel()) / (
        weight.numel()
    )


FLAT_MODULES = [
    "masking",
    "pruning.selection",
    "pruning.magnitude",
    "pruning.finetune",
    "pruning.schedules",
    "pruning.lottery",
    "pruning.sensitivity",
    "pruning.gradient",
    "pruning.criteria",
    "pruning.groups",
    "pruning.regularization",
    "pruning.structured",
]


def test_the_package_holds_every_public_name_of_chapters_2_to_4_and_not_chapter_5s():
    # the rule of course_utils/pruning/__init__.py: chapters 2-4 flat, chapter 5 as modules
    for module_name in FLAT_MODULES:
        module = importlib.import_module(f"course_utils.{module_name}")
        for name in module.__all__:
            if name.isupper():  # registries and defaults stay in their module
                continue
            assert name in pruning.__all__, f"{module_name}.{name} is not in pruning.__all__"
            assert getattr(pruning, name) is getattr(module, name), name
    assert all(hasattr(pruning, name) for name in pruning.__all__)
    for module_name in ("gan", "soft_masks", "data_free"):
        module = importlib.import_module(f"course_utils.pruning.{module_name}")
        flattened = (set(module.__all__) - {"soft_threshold"}) & set(pruning.__all__)
        assert not flattened, f"chapter 5's {module_name} names in pruning: {flattened}"
