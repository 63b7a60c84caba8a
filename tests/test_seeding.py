"""No library function moves the learner's random streams.

A notebook calls ``set_seed`` once and expects the next cells to repeat. A library
function that takes a ``seed`` must leave Python's, NumPy's and PyTorch's global streams
as it found them: either it is wrapped in :func:`course_utils.seeding.keeps_global_rng`,
or it draws only from a generator of its own. The first tests read the source (every
function that seeds is wrapped; every function that takes a seed is wrapped or listed
below with the reason); the next ones call each entry point on tiny data and compare
the global states before and after; the last ones pin what the wrapper itself does.
"""

from __future__ import annotations

import ast
import copy
import functools
import importlib
import inspect
import itertools
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from course_utils.measure import num_threads
from course_utils.seeding import global_rng_state, keeps_global_rng, set_seed

PACKAGE = "course_utils"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE

# Calls that set a global stream (seeding.py itself is where set_seed lives).
SEEDING_CALLS = {
    "set_seed",
    "seeding.set_seed",
    "random.seed",
    "random.setstate",
    "np.random.seed",
    "numpy.random.seed",
    "np.random.set_state",
    "torch.manual_seed",
    "torch.random.manual_seed",
    "torch.set_rng_state",
    "torch.cuda.manual_seed",
    "torch.cuda.manual_seed_all",
}

OWN_GENERATOR = "draws only from a generator of its own, seeded with ``seed``"
NO_DRAWS = "draws nothing: the seed only fixes an order, names a cache entry or is passed on"
LOADER = (
    "draws nothing itself; as in any loop over a DataLoader, PyTorch takes one number from "
    "its global stream each time a loader starts (the base seed of worker processes)"
)
# Public functions that take a seed (or read one from a config) without the wrapper.
ALLOWED = {
    "data.stratified_split": NO_DRAWS + " (a hash of seed and text)",
    "data.load_bbc_news": NO_DRAWS + " (a hash of seed and text)",
    "data.load_online_dataset": NO_DRAWS + " (a hash of seed and text)",
    "data.load_dataset": NO_DRAWS + " (a hash of seed and text)",
    "text.make_loader": OWN_GENERATOR + " (the batch order)",
    "train.TrainingData.loader": NO_DRAWS + " (the protocol of a loader with its own generator)",
    "measure.measure_latency": OWN_GENERATOR + " (the random token ids)",
    "deploy.robustness.add_typos": OWN_GENERATOR + " (random.Random(seed))",
    "deploy.robustness.drop_words": OWN_GENERATOR + " (random.Random(seed))",
    "deploy.robustness.noisy_texts": OWN_GENERATOR + " (random.Random per text)",
    "deploy.robustness.accuracy_under_noise": OWN_GENERATOR + " (through noisy_texts)",
    "pruning.magnitude.random_scores": OWN_GENERATOR,
    "pruning.magnitude.prune": OWN_GENERATOR + " (random_scores, for criterion='random')",
    "pruning.data_free.nearest_words": OWN_GENERATOR + " (the noise for the generator)",
    "pruning.schedules.AGPPruner.__init__": NO_DRAWS + " (stored for __call__)",
    "pruning.schedules.AGPPruner.__call__": OWN_GENERATOR + " (prune with seed + step)",
    "pruning.finetune.training_loaders": NO_DRAWS + " (the loaders' own generators)",
    "experiments.baseline.BaselineConfig.key": NO_DRAWS + " (a cache key)",
    "experiments.baseline.Baseline.loader": NO_DRAWS + " (the loader's own generator)",
    "widgets.common.basic_scores": OWN_GENERATOR + " (random_scores)",
    "verdicts.bootstrap_medians": OWN_GENERATOR + " (random.Random(seed), beyond 8 values)",
    "verdicts.paired_seeds": OWN_GENERATOR + " (through bootstrap_medians)",
    "experiments.unit_grid.row_key": NO_DRAWS + " (a store key)",
    "experiments.comparison.paired_claim": NO_DRAWS + " (seed names which run to read)",
}


# --- reading the source -------------------------------------------------------------


@functools.cache
def module_files() -> list[tuple[str, ast.Module]]:
    """``(dotted name inside the package, tree)`` for every module: ``"pruning.gan"``."""
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found.append((".".join(parts), ast.parse(path.read_text(encoding="utf-8"))))
    return found


def dotted(node: ast.AST) -> str:
    """``"torch.manual_seed"`` for ``torch.manual_seed``; ``""`` for anything not a name."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = dotted(node.value)
        return f"{base}.{node.attr}" if base else ""
    return ""


def is_wrapped_in_source(function: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    return any(dotted(d).split(".")[-1] == "keeps_global_rng" for d in function.decorator_list)


def unwrapped_seeding_calls(module: str, tree: ast.Module) -> list[str]:
    """Seeding calls that no enclosing function's ``@keeps_global_rng`` covers."""
    found = []

    def visit(node: ast.AST, covered: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                visit(child, covered or is_wrapped_in_source(child))
                continue
            if isinstance(child, ast.Call) and dotted(child.func) in SEEDING_CALLS and not covered:
                found.append(f"{PACKAGE}/{module}:{child.lineno}: `{ast.unparse(child)}`")
            visit(child, covered)

    visit(tree, False)
    return found


def params(function: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    args = function.args
    return [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs]


def takes_a_seed(function: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """A ``seed``/``seeds`` parameter, or a parameter whose ``.seed`` it reads (a config)."""
    names = params(function)
    if {"seed", "seeds"} & set(names):
        return True
    return any(
        isinstance(node, ast.Attribute)
        and node.attr in {"seed", "seeds"}
        and isinstance(node.value, ast.Name)
        and node.value.id in names
        for node in ast.walk(function)
    )


def public_functions(tree: ast.Module) -> list[tuple[str, ast.FunctionDef]]:
    """Top-level functions and methods of top-level classes that a learner can call."""
    found = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            if not node.name.startswith("_"):
                found.append((node.name, node))
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and (
                    not item.name.startswith("_") or item.name in {"__init__", "__call__"}
                ):
                    found.append((f"{node.name}.{item.name}", item))
    return found


def seeded_functions() -> dict[str, tuple[str, str]]:
    """Every public function or method that takes a seed: ``{"module.qualname": (module,
    qualname)}``, e.g. ``"pruning.gan.train_gal": ("pruning.gan", "train_gal")``."""
    return {
        f"{module}.{name}": (module, name)
        for module, tree in module_files()
        if module != "seeding"
        for name, function in public_functions(tree)
        if takes_a_seed(function)
    }


WRAPPER_CODE = keeps_global_rng(lambda: None).__code__


def is_wrapped(module: str, qualname: str) -> bool:
    """Whether the live object is ``keeps_global_rng``'s wrapper (read with inspect)."""
    obj: object = importlib.import_module(f"{PACKAGE}.{module}")
    for name in qualname.split("."):
        obj = inspect.getattr_static(obj, name)
    obj = getattr(obj, "__func__", obj)  # staticmethod, classmethod
    while obj is not None:
        if getattr(obj, "__code__", None) is WRAPPER_CODE:
            return True
        obj = getattr(obj, "__wrapped__", None)
    return False


def test_every_function_that_seeds_is_wrapped():
    found = [
        call
        for module, tree in module_files()
        if module != "seeding"
        for call in unwrapped_seeding_calls(module.replace(".", "/") + ".py", tree)
    ]
    assert not found, "seeding outside @keeps_global_rng:\n" + "\n".join(found)


def test_every_function_that_takes_a_seed_is_wrapped_or_has_its_own_generator():
    seeded = seeded_functions()
    missing = [n for n in sorted(seeded) if not is_wrapped(*seeded[n]) and n not in ALLOWED]
    assert not missing, (
        "these take a seed but are not wrapped in @keeps_global_rng: wrap them, or, if "
        "they draw only from a generator of their own, add them to ALLOWED with the "
        "reason:\n" + "\n".join(missing)
    )


def test_the_allowed_list_is_up_to_date():
    seeded = seeded_functions()
    stale = [f"{n}: takes no seed any more" for n in sorted(ALLOWED) if n not in seeded]
    stale += [
        f"{n}: now wrapped" for n in sorted(ALLOWED) if n in seeded and is_wrapped(*seeded[n])
    ]
    assert not stale, "remove from ALLOWED:\n" + "\n".join(stale)


def test_the_source_checks_see_the_wrapped_functions():
    """Guard against checks that pass because they found nothing."""
    seeded = seeded_functions()
    for name in ("pruning.finetune.finetune", "pruning.gan.train_gal"):
        assert name in seeded and is_wrapped(*seeded[name])
    initial = "experiments.baseline.Baseline.initial_model"  # reads self.seed
    assert initial in seeded and is_wrapped(*seeded[initial])
    assert not is_wrapped("text", "make_loader")


def test_the_seeding_check_reports_an_unwrapped_call():
    tree = ast.parse(
        "import torch\n"
        "@keeps_global_rng\n"
        "def fine(seed):\n"
        "    def inner():\n"
        "        torch.manual_seed(seed)\n"  # covered by fine's wrapper
        "    inner()\n"
        "def leaks(seed):\n"
        "    set_seed(seed)\n"
        "    torch.Generator().manual_seed(seed)\n"  # its own generator: fine
    )
    assert unwrapped_seeding_calls("toy.py", tree) == ["course_utils/toy.py:8: `set_seed(seed)`"]


# --- calling each entry point -------------------------------------------------------


def same_state(a: tuple, b: tuple) -> list[str]:
    """The streams whose states differ (empty when all four are the same)."""
    (py_a, np_a, torch_a, cuda_a), (py_b, np_b, torch_b, cuda_b) = a, b
    differ = []
    if py_a != py_b:
        differ.append("Python's random")
    if np_a[0] != np_b[0] or not np.array_equal(np_a[1], np_b[1]) or np_a[2:] != np_b[2:]:
        differ.append("NumPy's")
    if not torch.equal(torch_a, torch_b):
        differ.append("PyTorch's")
    if len(cuda_a) != len(cuda_b) or not all(map(torch.equal, cuda_a, cuda_b)):
        differ.append("CUDA's")
    return differ


def assert_keeps_streams(call, what: str):
    """Run ``call()`` from a state no function would seed to; the state must not move."""
    set_seed(20_240_601)
    random.random(), np.random.rand(), torch.rand(1)
    before = global_rng_state()
    result = call()
    moved = same_state(before, global_rng_state())
    assert not moved, f"{what} changed the global random state of: {', '.join(moved)}"
    return result


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models run fastest on one thread, above all on a shared machine."""
    with num_threads(1):
        yield


TINY = {"max_len": 24, "hidden_size": 6, "embed_dim": 6, "epochs": 1, "max_vocab": 500}


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    """A tiny baseline, trained and cached, then loaded from the cache: both kept streams."""
    from course_utils.experiments.baseline import BaselineConfig, get_baseline

    config = BaselineConfig(**TINY, batch_size=64)
    folder = tmp_path_factory.mktemp("cache")
    trained = assert_keeps_streams(
        lambda: get_baseline(config, seed=3, cache_dir=folder, progress=False), "get_baseline"
    )
    cached = assert_keeps_streams(
        lambda: get_baseline(config, seed=3, cache_dir=folder, progress=False),
        "get_baseline from the cache",
    )
    assert not trained.from_cache and cached.from_cache
    return cached


def test_get_baseline_and_initial_model_keep_the_streams(baseline):
    first = assert_keeps_streams(baseline.initial_model, "Baseline.initial_model")
    again = baseline.initial_model()
    assert all(map(torch.equal, first.parameters(), again.parameters()))


def pruning_calls():
    """``(name, call(baseline))`` for each pruning entry point, on one epoch of tiny data."""
    from course_utils.pruning import (
        agp_pruning,
        finetune,
        iterative_pruning,
        lottery_ticket,
        one_shot_pruning,
    )
    from course_utils.pruning.criteria import gradual_pruning, snip_pruning
    from course_utils.pruning.groups import hidden_unit_groups
    from course_utils.pruning.regularization import train_group_lasso

    quiet = {"progress": False}
    return {
        "one_shot_pruning": lambda b: one_shot_pruning(
            b.copy_model(), b, 0.5, epochs=1, seed=1, **quiet
        ),
        "iterative_pruning": lambda b: iterative_pruning(
            b.copy_model(), b, 0.6, rounds=2, epochs_per_round=1, seed=1, **quiet
        ),
        "agp_pruning": lambda b: agp_pruning(
            b.copy_model(), b, 0.6, epochs=1, prune_epochs=0.5, frequency=4, seed=1, **quiet
        ),
        "finetune": lambda b: finetune(b.copy_model(), b, epochs=1, seed=1, **quiet),
        "lottery_ticket": lambda b: lottery_ticket(
            b.initial_model(), b, 0.5, epochs=1, rewind_step=2, reinit_seed=4, seed=1, **quiet
        ),
        "gradual_pruning": lambda b: gradual_pruning(
            b.copy_model(), b, 0.5, criterion="movement", epochs=1, seed=1, **quiet
        ),
        "snip_pruning": lambda b: snip_pruning(
            b.initial_model(), b, 0.5, epochs=1, batch_size=16, seed=1, **quiet
        ),
        "train_group_lasso": lambda b: train_group_lasso(
            model := b.copy_model(),
            hidden_unit_groups(model),
            b,
            lam=0.1,
            epochs=1,
            seed=1,
            **quiet,
        ),
    }


@pytest.mark.parametrize("name", list(pruning_calls()))
def test_pruning_entry_points_keep_the_streams(baseline, name):
    assert_keeps_streams(lambda: pruning_calls()[name](baseline), name)


@pytest.fixture
def teacher_and_loaders(baseline):
    """The baseline as a teacher, with its first few training and validation batches."""
    train = list(itertools.islice(baseline.loader("train"), 4))
    valid = list(itertools.islice(baseline.loader("valid"), 2))
    return baseline.model.eval(), train, valid


def test_gal_and_its_widget_keep_the_streams(teacher_and_loaders):
    from course_utils.pruning.gan import GALConfig, train_gal
    from course_utils.widgets.gan import train_lambda_grid

    teacher, train, valid = teacher_and_loaders
    config = GALConfig(epochs=1, lam=0.01, seed=2)
    assert_keeps_streams(lambda: train_gal(teacher, train, valid, config, progress=False), "GAL")
    assert_keeps_streams(
        lambda: train_lambda_grid(teacher, train, valid, [0.01], config, progress=False),
        "train_lambda_grid",
    )


def test_data_free_distillation_keeps_the_streams(teacher_and_loaders):
    from course_utils.pruning.data_free import DAFLConfig, distill_data_free

    teacher, _, valid = teacher_and_loaders
    config = DAFLConfig(steps=3, batch_size=8, seq_len=8, channels=8, eval_every=2, seed=2)
    student = copy.deepcopy(teacher)
    assert_keeps_streams(
        lambda: distill_data_free(teacher, student, config, valid_loader=valid, progress=False),
        "distill_data_free",
    )


def test_exercise_checks_that_draw_keep_the_streams():
    from course_utils.exercises import ch3, ch5
    from course_utils.pruning.data_free import embedded_forward

    checks = {
        ch3.check_taylor_importance: lambda w, grads: torch.stack(
            [(g * w).abs() for g in grads]
        ).mean(0),
        ch3.check_movement_update: lambda scores, w, g, lr: scores - lr * g * w,
        ch5.check_embedded_logits: lambda model, embedded: embedded_forward(model, embedded)[0],
    }
    for check, answer in checks.items():
        result = assert_keeps_streams(lambda: check(answer), check.__name__)  # noqa: B023
        assert result.passed, (check.__name__, result)


# --- what the wrapper does ----------------------------------------------------------


def draws() -> list[float]:
    return [random.random(), float(np.random.rand()), float(torch.rand(1))]


def make_pair(wrap):
    """A seeding function that calls another seeding one, like lottery_ticket and finetune."""

    @wrap
    def inner(seed=None):
        if seed is not None:
            set_seed(seed)
        return draws()

    @wrap
    def outer(seed):
        set_seed(seed)
        return [draws(), inner(), draws(), inner(seed + 1), draws()]

    return outer


def test_nested_calls_share_one_stream_as_without_the_wrapper():
    set_seed(5)
    want = make_pair(lambda f: f)(7)

    set_seed(5)
    got = make_pair(keeps_global_rng)(7)
    after = draws()
    assert got == want, "the inner calls must draw from the outer call's stream"
    set_seed(5)
    assert after == draws(), "and the caller's stream is where it was before the call"


def test_the_streams_come_back_after_an_exception():
    @keeps_global_rng
    def fails(seed):
        set_seed(seed)
        draws()
        raise RuntimeError("inside")

    set_seed(9)
    before = global_rng_state()
    with pytest.raises(RuntimeError, match="inside"):
        fails(1)
    assert not same_state(before, global_rng_state())
    # the failed call's scope is closed: the next call opens (and restores) its own
    assert_keeps_streams(lambda: make_pair(keeps_global_rng)(3), "the next call")
