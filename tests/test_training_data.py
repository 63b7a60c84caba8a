"""What the pruning functions train on: a TrainingData (a Baseline) or a loader pair.

The first N training batches come from one function, ``first_batches``; chapter 3's budget,
chapter 5's budget and the zoo all use it and must draw exactly the batches, in the order
and with the global random draws, that their own loops drew before.
"""

import copy

import pytest
import torch

from course_utils.experiments.baseline import Baseline
from course_utils.experiments.comparison import FineTuneBudget
from course_utils.experiments.gan_comparison import UnitBudget
from course_utils.pruning.criteria import first_batch
from course_utils.pruning.finetune import training_loaders
from course_utils.text import make_loader
from course_utils.train import FirstBatches, LoaderPair, TrainingData, first_batches
from course_utils.widgets.common import validation_batches


class Splits:
    """A TrainingData of the synthetic task: only ``loader``, like a Baseline's."""

    def __init__(self, datasets, seed=0):
        self.datasets, self.seed = datasets, seed

    def loader(self, split, batch_size=None, *, shuffle=None, seed=None):
        shuffle = split == "train" if shuffle is None else shuffle
        seed = self.seed if seed is None else seed
        return make_loader(self.datasets[split], batch_size or 8, shuffle=shuffle, seed=seed)


@pytest.fixture
def data(synthetic_data):
    _, train, valid = synthetic_data
    return Splits({"train": train, "valid": valid, "test": valid})


def same_batches(a, b) -> bool:
    a, b = list(a), list(b)
    return len(a) == len(b) and all(
        all(torch.equal(x, y) for x, y in zip(p, q, strict=True)) for p, q in zip(a, b, strict=True)
    )


def draws_after(call):
    """``(result, the global random state after)`` of ``call`` from a fixed state."""
    torch.manual_seed(1234)
    result = call()
    return result, torch.get_rng_state()


def untouched_state():  # noqa: N802
    """The global random state of :func:`draws_after` when the call draws nothing."""
    return draws_after(lambda: None)[1]


# How the three experiments cut the training data before first_batches existed.
def snapshot_by_loop(baseline, count, seed):
    batches = []
    for batch in baseline.loader("train", seed=seed):
        if len(batches) == count:
            break
        batches.append(batch)
    return batches, baseline.loader("valid")


def view_by_loop(baseline, count, split, **kwargs):
    loader = baseline.loader(split, kwargs.pop("batch_size", None), **kwargs)
    if split != "train":
        return loader
    batches = []
    for b in loader:
        if len(batches) == count:
            break
        batches.append(b)
    return batches


def test_a_baseline_a_cut_and_a_pair_are_training_data():
    assert issubclass(Baseline, TrainingData)  # structurally: it has loader(split, ...)
    assert isinstance(FirstBatches(Splits({}), 2), TrainingData)
    pair = LoaderPair([1], [2])
    assert not isinstance(pair, TrainingData) and pair == ([1], [2]) and pair.train == [1]
    assert not isinstance([[1], [2]], TrainingData)


def test_training_loaders_takes_training_data_or_a_pair(data):
    train, valid = training_loaders(data, seed=3)
    assert same_batches(train, data.loader("train", seed=3))
    assert same_batches(valid, data.loader("valid"))
    batches = list(data.loader("train"))
    for pair in ((batches, valid), [batches, valid], LoaderPair(batches, valid)):
        got = training_loaders(pair, seed=5)  # a pair has one batch order: seed is not used
        assert isinstance(got, LoaderPair) and got.train is batches and got.valid is valid
    for wrong in (42, [batches], object()):
        with pytest.raises(TypeError, match="data must be a Baseline or a .train_loader"):
            training_loaders(wrong)
    with pytest.raises(TypeError, match="data must be a Baseline or a .train_loader"):
        first_batch(object(), 4, 0)
    with pytest.raises(TypeError, match="data must be a Baseline or a validation loader"):
        validation_batches(42, None)
    assert sum(len(b[2]) for b in validation_batches(data, 10)) == 10  # its validation split


@pytest.mark.parametrize("count", [1, 3, 10_000])
def test_the_first_batches_are_those_each_experiment_drew_before(data, count):
    # chapter 3's budget and the zoo: drawn once, for one seed
    (old_train, old_valid), old_state = draws_after(lambda: snapshot_by_loop(data, count, 7))
    (train, valid), state = draws_after(lambda: FineTuneBudget(train_batches=count).data(data, 7))
    assert same_batches(train, old_train) and same_batches(valid, old_valid)
    # the old loop moved the caller's global stream; the library call gives it back untouched
    assert not torch.equal(old_state, untouched_state()) and torch.equal(state, untouched_state())
    assert len(train) == min(count, len(data.loader("train")))
    # chapter 5's budget: a view that cuts each training loader it is asked for
    view = UnitBudget(train_batches=count).data(data)
    assert view == first_batches(data, count) == FirstBatches(data, count)
    for split, kwargs in (("train", {"seed": 3}), ("train", {"batch_size": 16}), ("valid", {})):
        old, old_state = draws_after(lambda: view_by_loop(data, count, split, **dict(kwargs)))  # noqa: B023
        new, state = draws_after(lambda: view.loader(split, **kwargs))  # noqa: B023
        assert same_batches(new, old) and torch.equal(state, untouched_state()), (split, kwargs)


def test_first_batches_checks_its_arguments(data):
    assert first_batches(data, None) is data
    assert FineTuneBudget().data(data, 0) is data and UnitBudget().data(data) is data
    with pytest.raises(ValueError, match="count must be a positive int"):
        first_batches(data, 0)
    with pytest.raises(TypeError, match="data must have a loader"):
        first_batches([[], []], 2)
    cut = first_batches(copy.copy(data), 2)
    assert len(cut.loader("train")) == 2 and len(training_loaders(cut).train) == 2
